"""What a run needs before its model is built: a checked config, a device, seeds; and the
weights digest that shows two runs ended with the same weights."""

import hashlib
import random
from typing import Any, Dict, Mapping

import numpy as np
import paddle

from ..utils.errors import ConfigError
from .settings import TrainerSettings

def check_config(cfg: Mapping[str, Any], where: str = "the config") -> TrainerSettings:
    """The trainer's settings of ``cfg``, checked, defaults filled in (``engine.settings``).

    Raises:
        ConfigError: an unknown or misspelt key, a missing one, a wrong type or value.
    """
    return TrainerSettings.from_config(cfg, where)


def resolve_device(device: str) -> str:
    """'auto' | 'cpu' | 'gpu' -> the Paddle device actually used ('cpu' or 'gpu')."""
    if device not in ("auto", "cpu", "gpu"):
        raise ConfigError(f"--device must be auto, cpu or gpu, got {device!r}")
    has_gpu = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if device == "gpu" and not has_gpu:
        raise ConfigError("--device gpu: this Paddle build has no CUDA support or no GPU is "
                          "visible; use --device cpu (or auto)")
    return "gpu" if device == "gpu" or (device == "auto" and has_gpu) else "cpu"


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and Paddle's random generators with ``seed``."""
    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


def weights_digest(state_dicts: Mapping[str, Dict[str, Any]]) -> str:
    """Short SHA-1 over every tensor of {net: state dict} (same weights <=> same digest)."""
    digest = hashlib.sha1()
    for net_name in sorted(state_dicts):
        for key, value in sorted(state_dicts[net_name].items()):
            digest.update(f"{net_name}.{key}".encode())
            digest.update(np.ascontiguousarray(value.numpy()).tobytes())
    return digest.hexdigest()[:16]
