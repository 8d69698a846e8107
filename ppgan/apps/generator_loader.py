"""Turn whatever the user gives as ``--checkpoint_path`` into a generator function
``(mels (N, 1, 80, 16), faces (N, 6, S, S)) -> (N, 3, S, S) float32 ndarray`` whose ``img_size``
attribute is the face size S it was built for.

Accepted: an exported inference program (prefix, ``.json`` or ``.pdmodel``), this project's
training checkpoint (the generator is built from the config stored inside), a flat generator
state dict (PaddleGAN's ``wav2lip_hq.pdparams``, a converted PyTorch file; the width and the face
size are read from the tensor shapes). On CPU the loaded network is exported to a temporary
inference program and run by Paddle Inference with oneDNN on all cores, which is several times
faster than the dynamic graph; the dynamic graph is the fallback (and the engine on GPU). The
engine itself is ``ppgan.inference``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

from ..data.contract import FACE_SIZE
from ..inference.engine import ENGINES, check_engine  # noqa: F401  (ENGINES: the CLI's choices)
from ..inference.generator import (DynamicGenerator, GeneratorOnFirstUse, StaticGenerator, export_generator,
                                   generator_runner)
from ..inference.spec import reference_spec, spec_of_weights
from ..utils.errors import ConfigError, WeightsError
from ..utils.logger import get_logger
from ..utils.weights_home import find_released_weights, missing_weights_message

if TYPE_CHECKING:
    import paddle

    from ..inference.generator import GeneratorRunner

# A file name as str or path object (``os.fspath`` reads both).
PathLike = Union[str, "os.PathLike[str]"]

RELEASED_GENERATOR = "wav2lip_hq.pdparams"  # PaddleGAN's, looked up when no path is given
_PROGRAM_SUFFIXES = (".json", ".pdmodel", ".pdiparams")
# The deepest face-encoder conv has 512 * width_mult output channels: the most precise width probe
# (narrow layers are clamped to a minimum channel count).
_DEEPEST_CHANNELS = 512


def exported_prefix(path: PathLike) -> Optional[str]:
    """The program prefix when ``path`` names an exported generator, else None."""
    name = os.fspath(path)
    stem, extension = os.path.splitext(name)
    if extension in _PROGRAM_SUFFIXES and os.path.isfile(stem + ".pdiparams"):
        return stem
    if not os.path.isfile(name) and os.path.isfile(name + ".pdiparams"):
        return name
    return None


def generator_width(state: Mapping[str, Any]) -> float:
    """Width multiplier of a Wav2Lip state dict ``{name: array}``, or 1.0 when it cannot tell
    (strict loading then reports what does not fit)."""
    from ..models.probe import wav2lip_deepest_encoder_key

    key = wav2lip_deepest_encoder_key(state)
    if key is not None and key in state and getattr(state[key], "ndim", 0) == 4:
        return state[key].shape[0] / _DEEPEST_CHANNELS
    return 1.0


def generator_with_spec(weights: Any, path: str) -> Tuple[paddle.nn.Layer, Dict[str, Any]]:
    """Build the generator a read weights object describes, load it strictly, and say how to run it.

    Args:
        weights: what ``read_weights_file`` returned.
        path: its file name, for messages.
    Returns:
        (``Wav2Lip`` (or the configured generator) in eval mode, its inference spec
        (``ppgan.inference.spec``): our checkpoint's own, else the reference spec).
    Raises:
        WeightsError: no generator state inside, it does not fit (wrong architecture), or the
            spec is one this build cannot run.
    """
    from ..models.builder import build_generator
    from ..utils.weights import load_weights, select_state_dict

    spec = spec_of_weights(weights, path)
    state = select_state_dict(weights, None, path)
    if spec.get("generator") and spec["source"] == "training":
        net = build_generator(dict(spec["generator"]))
    else:
        from ..models.probe import wav2lip_img_size

        width, img_size = generator_width(state), wav2lip_img_size(state) or FACE_SIZE
        spec = reference_spec(width, img_size=img_size)
        net = build_generator({"name": "Wav2Lip", "width_mult": width, "img_size": img_size})
    expected = net.state_dict()
    found = sum(1 for key, value in expected.items()
                if key in state and tuple(state[key].shape) == tuple(value.shape))
    if found < len(expected) / 2:
        # Not a generator at all (an expert, a discriminator): say what it is in one line
        # instead of listing hundreds of mismatched keys.
        raise WeightsError(f"{path} holds {describe_weights(weights, state)}, not a "
                           f"{type(net).__name__} generator ({found} of {len(expected)} generator "
                           f"weights found); give a generator checkpoint (a Wav2Lip training "
                           f"checkpoint, wav2lip_hq.pdparams or a converted wav2lip .pth)")
    # A multi-net checkpoint yields its only net or netG; anything that does not fit fails here.
    load_weights(net, state, strict=True, where=os.fspath(path))
    net.eval()
    return net, spec


def describe_weights(weights: Any, state: Mapping[str, Any]) -> str:
    """A few words on what a weights file holds, for error messages."""
    from ..utils.weights import CHECKPOINT_FORMAT

    if isinstance(weights, dict) and weights.get("format") == CHECKPOINT_FORMAT:
        model = (weights.get("config") or {}).get("model", {}).get("name", "an unknown model")
        return f"a training checkpoint of {model} (nets {', '.join(sorted(weights.get('nets', {})))})"
    if any(key.startswith("face_encoder.") for key in state) and \
            not any(key.startswith("face_encoder_blocks.") for key in state):
        return f"a lip-sync expert (SyncNet) state dict of {len(state)} entries"
    return f"a state dict of {len(state)} entries (first: {next(iter(state))})"


def wrap_generator(generator: Any) -> Callable[..., Any]:
    """A ``paddle.nn.Layer`` becomes a ``DynamicGenerator``; other callables are used as given."""
    import paddle

    if isinstance(generator, paddle.nn.Layer):
        return DynamicGenerator(generator)
    if not callable(generator):
        raise ConfigError(f"generator must be a paddle Layer or a callable, got {type(generator).__name__}")
    return generator


def build_export_generator(width_mult: float = 1.0, config: Optional[str] = None,
                           overrides: Sequence[str] = ()) -> paddle.nn.Layer:
    """The generator to export: from a config's ``model.generator`` block, else ``Wav2Lip``."""
    from ..models.builder import build_generator
    if config is None:
        return build_generator({"name": "Wav2Lip", "width_mult": width_mult})
    from ..utils.config import load_config
    cfg = load_config(config, overrides)
    if "generator" not in cfg.get("model", {}):
        raise ConfigError(f"{config} has no model.generator block to export")
    return build_generator(cfg.model.generator)


def export_from_weights(weights: PathLike, path_prefix: str, net_name: Optional[str] = None,
                        width_mult: Optional[float] = None, config: Optional[str] = None,
                        overrides: Sequence[str] = ()) -> Tuple[str, str]:
    """Load a generator from ``weights`` (any supported file) and export it with its spec.

    Without ``width_mult`` / ``config`` the network is the one the file describes (our
    checkpoints' inference spec; the width the tensors show for other files). Giving either
    builds that network instead (for files whose architecture cannot be read from them).

    Returns:
        (program path, parameters path).
    """
    from ..utils.weights import load_weights, read_weights_file

    if config is not None and width_mult is not None:
        raise ConfigError("give either a config or a width multiplier, not both")
    obj = read_weights_file(weights)
    if width_mult is None and config is None and net_name is None:
        net, spec = generator_with_spec(obj, os.fspath(weights))
    else:
        net = build_export_generator(1.0 if width_mult is None else width_mult, config, overrides)
        load_weights(net, weights, net_name=net_name)  # by path: errors name the file
        spec = spec_of_weights(obj, os.fspath(weights))
        spec = dict(spec, generator={**(spec.get("generator") or {}), **_generator_block(net)},
                    img_size=int(getattr(net, "img_size", spec["img_size"])))
    config_stored = obj.get("config") if isinstance(obj, dict) else None
    return export_generator(net, path_prefix, spec=spec, config=config_stored)


def _generator_block(net: paddle.nn.Layer) -> Dict[str, Any]:
    """The ``generator`` entry of a spec for a built ``Wav2Lip``."""
    state = {key: value for key, value in net.state_dict().items()}
    return {"name": type(net).__name__, "width_mult": float(generator_width(state)),
            "img_size": int(getattr(net, "img_size", 96))}


def _set_device(device: str) -> None:
    import paddle

    if not str(device).startswith(("cpu", "gpu")):
        raise ConfigError(f"device must be 'cpu' or 'gpu' (optionally gpu:N), got {device!r}")
    if str(device).startswith("gpu") and not paddle.device.is_compiled_with_cuda():
        raise ConfigError("--device gpu needs a CUDA build of paddlepaddle; this one is CPU-only")
    paddle.set_device(device)


def load_generator(checkpoint_path: Optional[PathLike], device: str = "cpu", threads: Optional[int] = None,
                   engine: str = "auto", precision: str = "fp32") -> GeneratorRunner:
    """Load the generator a checkpoint path names.

    Args:
        checkpoint_path: weights file, training checkpoint or exported program (see module doc);
            None: PaddleGAN's ``wav2lip_hq.pdparams`` where its tools cache it
            (``ppgan.utils.weights_home``).
        device: "cpu" or "gpu".
        threads: CPU threads for the inference engine (default: all cores); for the dynamic
            graph only when given.
        engine: "auto", "static" (inference program, CPU) or "dynamic".
        precision: "fp32" or "bf16" for the inference program (``ppgan.inference``; falls back
            to fp32 with one log line where unsupported). The dynamic graph is always fp32.
    Returns:
        callable (mels (N,1,80,16), faces (N,6,S,S)) -> (N,3,S,S) float32 ndarray in [0, 1],
        with ``img_size`` (S) and ``spec`` (the inference spec: mel offset, fps, ...) attributes.
    Raises:
        ConfigError: no checkpoint given or cached, bad device / engine.
        WeightsError: unreadable file or a network of another architecture.
    """
    check_engine(engine, precision)
    if not checkpoint_path:
        checkpoint_path = find_released_weights(RELEASED_GENERATOR)
        if checkpoint_path is None:
            raise ConfigError(missing_weights_message(RELEASED_GENERATOR, "--checkpoint_path"))
        get_logger().info("generator weights: %s", checkpoint_path)
    from ..utils.weights import read_weights_file

    prefix = exported_prefix(checkpoint_path)
    if prefix is not None:
        if engine == "dynamic" or str(device).startswith("gpu"):
            raise ConfigError(f"{checkpoint_path} is an exported CPU inference program; give the "
                              f"weights file for the dynamic engine or the GPU")
        return StaticGenerator(prefix, threads=threads, precision=precision)
    if not os.path.exists(checkpoint_path):
        raise WeightsError(f"checkpoint not found: {checkpoint_path}")
    _set_device(device)
    net, spec = generator_with_spec(read_weights_file(checkpoint_path), os.fspath(checkpoint_path))
    if engine == "dynamic" or (engine == "auto" and str(device).startswith("gpu")):
        if threads:
            import paddle
            paddle.base.core.set_num_threads(int(threads))
        generator: Union[DynamicGenerator, GeneratorOnFirstUse] = DynamicGenerator(net)
    else:
        generator = generator_runner(net, engine, threads, precision)
    generator.spec = spec
    return generator
