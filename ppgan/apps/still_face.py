"""Generator for one fixed face (a still avatar): the face encoder runs once.

The generator's face encoder sees only the face input, which for a still avatar is the same for
every frame; its seven outputs (the decoder's skip connections) are computed once and fed, with
each batch of mel windows, to a network made of the audio encoder and the decoder. With the
published generator that skips 0.62 of its 7.93 GFLOP per frame. The dynamic graph gives
bit-identical faces; on CPU the network is exported as its own inference program
(``ppgan.inference``, cached on disk per weights), whose results differ from the full program's
only by float rounding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

import numpy as np

if TYPE_CHECKING:
    import paddle


def face_activations(net: paddle.nn.Layer, faces: np.ndarray) -> List[np.ndarray]:
    """The face encoder's block outputs for ``faces`` (1, 6, S, S): the decoder's skip inputs,
    each (1, C_k, S_k, S_k) float32."""
    import paddle

    outputs, x = [], paddle.to_tensor(faces)
    with paddle.no_grad():
        for block in net.face_encoder_blocks:
            x = block(x)
            outputs.append(np.ascontiguousarray(x.numpy(), dtype=np.float32))
    return outputs


def _still_layer(net: paddle.nn.Layer, shapes: Sequence[Tuple[int, ...]]) -> paddle.nn.Layer:
    """A ``paddle.nn.Layer`` mapping mel windows (N, 1, 80, 16) and one face's encoder
    activations, flattened and concatenated into (1, sum of their sizes), to faces (N, 3, S, S)
    through ``net`` (a Wav2Lip). ``shapes`` are the activations' (C, H, W).

    The activations are an input, not buffers: the exported program then depends only on the
    weights, so the disk cache (``inference.program_cache``) serves every face of a checkpoint.
    One flat input because Paddle's export takes a fixed argument list and the number of
    activations grows with the face size.
    """
    import paddle

    class StillFace(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, audio: paddle.Tensor, flat_skips: paddle.Tensor) -> paddle.Tensor:
            count = paddle.shape(audio)[0]
            skips, start = [], 0
            for channels, height, width in shapes:
                size = channels * height * width
                # Row 0 only: callers that tile every input to a batch (the auto-precision probe)
                # may send copies of the same row.
                skips.append(paddle.reshape(flat_skips[0:1, start:start + size], [1, channels, height, width]))
                start += size
            x = self.net.audio_encoder(audio)
            for k, block in enumerate(self.net.face_decoder_blocks):
                skip = skips[len(skips) - 1 - k]
                wide = paddle.expand(skip, [count, skip.shape[1], skip.shape[2], skip.shape[3]])
                x = paddle.concat([block(x), wide], axis=1)
            return self.net.output_block(x)

    layer = StillFace()
    layer.eval()
    return layer


class StillFaceGenerator:
    """Callable ``mels (N, 1, 80, 16) float32 -> (N, 3, S, S) float32 in [0, 1]`` for one face.

    Args:
        net: the Wav2Lip generator (a ``paddle.nn.Layer``).
        faces: (1, 6, S, S) float32 generator face input (``generator_inputs``).
        engine, threads, precision: as ``ppgan.inference.build_runner`` ("auto" exports the
            network to an inference program on CPU and falls back to the dynamic graph).
    Attributes:
        engine: "static" or "dynamic", what runs.
    """

    def __init__(self, net: paddle.nn.Layer, faces: np.ndarray, engine: str = "auto", threads: Optional[int] = None,
                 precision: str = "fp32") -> None:
        from ..inference.engine import DynamicRunner, build_runner, check_engine

        check_engine(engine, precision)
        faces = np.ascontiguousarray(faces, dtype=np.float32)
        if faces.ndim != 4 or faces.shape[:2] != (1, 6):
            raise ValueError(f"expected one (1, 6, S, S) face input, got {faces.shape}")
        self.img_size = faces.shape[-1]
        skips = face_activations(net, faces)
        self._flat_skips = np.concatenate([skip.reshape(1, -1) for skip in skips], axis=1)
        shapes = [tuple(int(v) for v in skip.shape[1:]) for skip in skips]
        inputs = {"mel": (1, 80, 16), "skips": (self._flat_skips.shape[1],)}
        self._run = build_runner(_still_layer(net, shapes), inputs, engine, threads, precision,
                                 what="still-face generator", cache=True)
        self.engine = "dynamic" if isinstance(self._run, DynamicRunner) else "static"

    @property
    def precision(self) -> str:
        """What the network computes in ("auto" until an auto runner's first call)."""
        return self._run.precision

    def __call__(self, mels: np.ndarray) -> np.ndarray:
        mels = np.ascontiguousarray(mels, dtype=np.float32)
        if mels.ndim != 4 or mels.shape[1:] != (1, 80, 16):
            raise ValueError(f"expected mels (N, 1, 80, 16), got {mels.shape}")
        return self._run(mels, self._flat_skips)


def still_face_generator(generator: object, faces: np.ndarray) -> Optional[StillFaceGenerator]:
    """A ``StillFaceGenerator`` on the same engine, threads and precision as the predictor's
    loaded generator, or None when the network is not at hand (an exported program given as the
    checkpoint, or a plain callable).

    Args:
        generator: ``Wav2LipPredictor.generator``.
        faces: (1, 6, S, S) float32 face input.
    """
    from ..inference.generator import DynamicGenerator, GeneratorOnFirstUse

    if isinstance(generator, GeneratorOnFirstUse):
        return StillFaceGenerator(generator.net, faces, generator.requested, generator.threads,
                                  generator.requested_precision)
    if isinstance(generator, DynamicGenerator):
        return StillFaceGenerator(generator.net, faces, "dynamic")
    return None
