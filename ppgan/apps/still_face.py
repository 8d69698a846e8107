"""Generator for one fixed face (a still avatar): the face encoder runs once.

The generator's face encoder sees only the face input, which for a still avatar is the same for
every frame; its seven outputs (the decoder's skip connections) are computed once and stored in
a network that takes only the mel windows. With the published generator that skips 0.62 of its
7.93 GFLOP per frame. The dynamic graph gives bit-identical faces; on CPU the network is
exported as its own inference program (oneDNN), whose results differ from the full program's
only by float rounding.
"""

import os
import shutil
import tempfile

import numpy as np

from ..utils.errors import ConfigError
from ..utils.logger import get_logger


def _still_layer(net, faces):
    """A ``paddle.nn.Layer`` mapping mel windows (N, 1, 80, 16) to faces (N, 3, S, S) for the
    fixed ``faces`` (1, 6, S, S) input of ``net`` (a Wav2Lip)."""
    import paddle

    class StillFace(paddle.nn.Layer):
        def __init__(self):
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

        def forward(self, audio):
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
        engine: "static" (export and run with Paddle Inference + oneDNN) or "dynamic".
        threads: CPU threads of the static engine; default: all cores.
    """

    def __init__(self, net, faces, engine="static", threads=None):
        if engine not in ("static", "dynamic"):
            raise ConfigError(f"engine must be 'static' or 'dynamic', got {engine!r}")
        faces = np.ascontiguousarray(faces, dtype=np.float32)
        if faces.ndim != 4 or faces.shape[:2] != (1, 6):
            raise ValueError(f"expected one (1, 6, S, S) face input, got {faces.shape}")
        self.engine = engine
        self.img_size = faces.shape[-1]
        self._layer = _still_layer(net, faces)
        self._predictor = self._export(threads) if engine == "static" else None

    def _export(self, threads):
        import paddle

        folder = tempfile.mkdtemp(prefix="ppgan-still-")
        try:
            prefix = os.path.join(folder, "still")
            spec = [paddle.static.InputSpec([None, 1, 80, 16], "float32", "mel")]
            paddle.jit.save(self._layer, prefix, input_spec=spec)
            config = paddle.inference.Config(prefix + ".json", prefix + ".pdiparams")
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(threads or os.cpu_count() or 1)
            config.enable_onednn()
            config.disable_glog_info()
            return paddle.inference.create_predictor(config)
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # the predictor holds the program

    def __call__(self, mels):
        mels = np.ascontiguousarray(mels, dtype=np.float32)
        if mels.ndim != 4 or mels.shape[1:] != (1, 80, 16):
            raise ValueError(f"expected mels (N, 1, 80, 16), got {mels.shape}")
        if self._predictor is None:
            import paddle
            with paddle.no_grad():
                return self._layer(paddle.to_tensor(mels)).numpy()
        handle = self._predictor.get_input_handle(self._predictor.get_input_names()[0])
        handle.reshape(mels.shape)
        handle.copy_from_cpu(mels)
        self._predictor.run()
        return self._predictor.get_output_handle(self._predictor.get_output_names()[0]).copy_to_cpu()


def still_face_generator(generator, faces):
    """A ``StillFaceGenerator`` for the predictor's loaded generator, or None when the network is
    not at hand (an exported program given as the checkpoint, or a plain callable).

    Args:
        generator: ``Wav2LipPredictor.generator`` (``ExportOnFirstUse``, ``DynamicGenerator``, ...).
        faces: (1, 6, S, S) float32 face input.
    """
    from .generator_loader import DynamicGenerator, ExportOnFirstUse

    if isinstance(generator, ExportOnFirstUse):
        try:
            return StillFaceGenerator(generator.net, faces, "static", generator.threads)
        except Exception as exc:  # noqa: BLE001 - as ExportOnFirstUse: the dynamic graph still works
            if generator.required:
                raise
            get_logger().warning("still-face program export failed (%s); using the dynamic graph",
                                 str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else
                                 type(exc).__name__)
            return StillFaceGenerator(generator.net, faces, "dynamic")
    if isinstance(generator, DynamicGenerator):
        return StillFaceGenerator(generator.net, faces, "dynamic")
    return None
