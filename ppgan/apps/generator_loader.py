"""Turn whatever the user gives as ``--checkpoint_path`` into a generator function
``(mels (N, 1, 80, 16), faces (N, 6, 96, 96)) -> (N, 3, 96, 96) float32 ndarray``.

Accepted: an exported inference program (prefix, ``.json`` or ``.pdmodel``), this project's
training checkpoint (the generator is built from the config stored inside), a flat generator
state dict (PaddleGAN's ``wav2lip_hq.pdparams``, a converted PyTorch file; the width is read from
the tensor shapes). On CPU the loaded network is exported to a temporary inference program and run
by Paddle Inference with oneDNN on all cores, which is several times faster than the dynamic
graph; the dynamic graph is the fallback (and the engine on GPU).
"""

import os
import shutil
import tempfile

from ..utils.errors import ConfigError, WeightsError
from ..utils.logger import get_logger

ENGINES = ("auto", "static", "dynamic")
_PROGRAM_SUFFIXES = (".json", ".pdmodel", ".pdiparams")
# The deepest face-encoder conv has 512 * width_mult output channels: the most precise width probe.
_WIDTH_PROBES = (("face_encoder_blocks.6.0.conv_block.0.weight", 512),
                 ("face_encoder_blocks.0.0.conv_block.0.weight", 16))


def exported_prefix(path):
    """The program prefix when ``path`` names an exported generator, else None."""
    path = os.fspath(path)
    stem, extension = os.path.splitext(path)
    if extension in _PROGRAM_SUFFIXES and os.path.isfile(stem + ".pdiparams"):
        return stem
    if not os.path.isfile(path) and os.path.isfile(path + ".pdiparams"):
        return path
    return None


def generator_width(state):
    """Width multiplier of a Wav2Lip state dict ``{name: array}``, or 1.0 when it cannot tell
    (strict loading then reports what does not fit)."""
    for key, channels in _WIDTH_PROBES:
        if key in state and getattr(state[key], "ndim", 0) == 4:
            return state[key].shape[0] / channels
    return 1.0


def build_generator_for(weights, path):
    """Build the generator that a read weights object describes and load it strictly.

    Args:
        weights: what ``read_weights_file`` returned.
        path: its file name, for messages.
    Returns:
        A ``Wav2Lip`` (or the configured generator) in eval mode.
    Raises:
        WeightsError: no generator state inside, or it does not fit (wrong architecture).
    """
    from ..models.builder import build_generator
    from ..utils.weights import load_weights, select_state_dict

    config = weights.get("config") if isinstance(weights, dict) else None
    block = config.get("model", {}).get("generator") if isinstance(config, dict) else None
    if isinstance(block, dict) and "name" in block:
        net = build_generator(dict(block))
    else:
        state = select_state_dict(weights, None, path)
        net = build_generator({"name": "Wav2Lip", "width_mult": generator_width(state)})
    # A multi-net checkpoint yields its only net or netG; anything that does not fit fails here.
    load_weights(net, weights, net_name=None, strict=True)
    net.eval()
    return net


class DynamicGenerator:
    """Run a ``paddle.nn.Layer`` generator in eval mode without gradients; restores train mode."""

    def __init__(self, net):
        self.net = net

    def __call__(self, mels, faces):
        import paddle

        was_training = self.net.training
        self.net.eval()
        try:
            with paddle.no_grad():
                out = self.net(paddle.to_tensor(mels), paddle.to_tensor(faces))
            return out.numpy()
        finally:
            if was_training:
                self.net.train()


def wrap_generator(generator):
    """A ``paddle.nn.Layer`` becomes a ``DynamicGenerator``; other callables are used as given."""
    import paddle

    if isinstance(generator, paddle.nn.Layer):
        return DynamicGenerator(generator)
    if not callable(generator):
        raise ConfigError(f"generator must be a paddle Layer or a callable, got {type(generator).__name__}")
    return generator


def to_static(net, threads=None):
    """Export ``net`` to a temporary inference program and load it with oneDNN."""
    from ..utils.export import StaticGenerator, export_generator

    folder = tempfile.mkdtemp(prefix="ppgan-wav2lip-")
    try:
        export_generator(net, os.path.join(folder, "generator"))
        return StaticGenerator(os.path.join(folder, "generator"), threads=threads)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # the predictor holds the program in memory


class ExportOnFirstUse:
    """Runs a loaded network through an inference program exported at the first call.

    Exporting takes seconds, so it waits until frames are actually ready: bad input fails fast.
    With ``required=False`` an export failure is logged and the dynamic graph is used instead.
    ``engine`` tells which one ran ("static" / "dynamic"; None before the first call).
    """

    def __init__(self, net, threads=None, required=False):
        self.net, self.threads, self.required = net, threads, required
        self.engine, self._run = None, None

    def __call__(self, mels, faces):
        if self._run is None:
            self._run, self.engine = self._prepare()
        return self._run(mels, faces)

    def _prepare(self):
        try:
            return to_static(self.net, self.threads), "static"
        except Exception as exc:  # noqa: BLE001 - any export failure falls back to the same net
            if self.required:
                raise
            reason = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else type(exc).__name__
            get_logger().warning("inference-program export failed (%s); using the dynamic graph", reason)
            return DynamicGenerator(self.net), "dynamic"


def _set_device(device):
    import paddle

    if not str(device).startswith(("cpu", "gpu")):
        raise ConfigError(f"device must be 'cpu' or 'gpu' (optionally gpu:N), got {device!r}")
    if str(device).startswith("gpu") and not paddle.device.is_compiled_with_cuda():
        raise ConfigError("--device gpu needs a CUDA build of paddlepaddle; this one is CPU-only")
    paddle.set_device(device)


def load_generator(checkpoint_path, device="cpu", threads=None, engine="auto"):
    """Load the generator a checkpoint path names.

    Args:
        checkpoint_path: weights file, training checkpoint or exported program (see module doc).
        device: "cpu" or "gpu".
        threads: CPU threads for the inference engine (default: all cores); for the dynamic
            graph only when given.
        engine: "auto", "static" (inference program, CPU) or "dynamic".
    Returns:
        callable (mels (N,1,80,16), faces (N,6,96,96)) -> (N,3,96,96) float32 ndarray in [0, 1].
    Raises:
        ConfigError: no checkpoint, bad device / engine.
        WeightsError: unreadable file or a network of another architecture.
    """
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if not checkpoint_path:
        raise ConfigError("no generator checkpoint given: pass --checkpoint_path with a weights "
                          "file (wav2lip_hq.pdparams, a converted .pth, a training checkpoint) or "
                          "an exported program; nothing is downloaded")
    from ..utils.export import StaticGenerator
    from ..utils.weights import read_weights_file

    prefix = exported_prefix(checkpoint_path)
    if prefix is not None:
        if engine == "dynamic" or str(device).startswith("gpu"):
            raise ConfigError(f"{checkpoint_path} is an exported CPU inference program; give the "
                              f"weights file for the dynamic engine or the GPU")
        return StaticGenerator(prefix, threads=threads)
    if not os.path.exists(checkpoint_path):
        raise WeightsError(f"checkpoint not found: {checkpoint_path}")
    _set_device(device)
    net = build_generator_for(read_weights_file(checkpoint_path), os.fspath(checkpoint_path))
    if engine == "static" or (engine == "auto" and str(device).startswith("cpu")):
        return ExportOnFirstUse(net, threads, required=engine == "static")
    if threads:
        import paddle
        paddle.base.core.set_num_threads(int(threads))
    return DynamicGenerator(net)
