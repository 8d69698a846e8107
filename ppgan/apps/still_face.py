"""Generator for one fixed face (a still avatar): the face encoder runs once.

The generator's face encoder sees only the face input, which for a still avatar is the same for
every frame; its seven outputs (the decoder's skip connections) are computed once and stored in
a network that takes only the mel windows. With the published generator that skips 0.62 of its
7.93 GFLOP per frame. The dynamic graph gives bit-identical faces; on CPU the network is
exported as its own inference program (``ppgan.inference``), whose results differ from the
full program's only by float rounding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np

if TYPE_CHECKING:
    import paddle


def _still_layer(net: paddle.nn.Layer, faces: np.ndarray) -> paddle.nn.Layer:
    """A ``paddle.nn.Layer`` mapping mel windows (N, 1, 80, 16) to faces (N, 3, S, S) for the
    fixed ``faces`` (1, 6, S, S) input of ``net`` (a Wav2Lip)."""
    import paddle

    class StillFace(paddle.nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.net = net
            skips, x = [], paddle.to_tensor(faces)
            with paddle.no_grad():
                for block in net.face_encoder_blocks:
                    x = block(x)
                    skips.append(x)
            # Buffers, so an exported program carries them as parameters.
            for index, skip in enumerate(skips):
                self.register_buffer(f"skip{index}", skip, persistable=True)
            self.num_skips = len(skips)

        def forward(self, audio: paddle.Tensor) -> paddle.Tensor:
            count = paddle.shape(audio)[0]
            x = self.net.audio_encoder(audio)
            for k, block in enumerate(self.net.face_decoder_blocks):
                skip = getattr(self, f"skip{self.num_skips - 1 - k}")
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
        self._run = build_runner(_still_layer(net, faces), {"mel": (1, 80, 16)}, engine, threads,
                                 precision, what="still-face generator")
        self.engine = "dynamic" if isinstance(self._run, DynamicRunner) else "static"

    @property
    def precision(self) -> str:
        """What the network computes in ("auto" until an auto runner's first call)."""
        return self._run.precision

    def __call__(self, mels: np.ndarray) -> np.ndarray:
        mels = np.ascontiguousarray(mels, dtype=np.float32)
        if mels.ndim != 4 or mels.shape[1:] != (1, 80, 16):
            raise ValueError(f"expected mels (N, 1, 80, 16), got {mels.shape}")
        return self._run(mels)


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
