"""What a run needs before its model is built: a checked config, a device, seeds; and the
weights digest that shows two runs ended with the same weights."""

import hashlib
import random

import numpy as np
import paddle

from ..utils.errors import ConfigError
from ..utils.registry import closest

# Every key a training config may hold, with the sub-keys of the blocks the trainer reads.
CONFIG_KEYS = {
    "total_iters": None, "output_dir": None, "seed": None, "model": None, "dataset": None,
    "optimizer": None, "lr_scheduler": None, "enable_visualdl": None, "to_static": None,
    "onednn": None, "threads": None, "find_unused_parameters": None,
    "dataroot": None,  # one corpus for every dataset block (ppgan.utils.config)
    "validate": ("interval", "max_eval_steps", "final"),
    "log_config": ("interval", "visual_interval"),
    "snapshot_config": ("interval", "keep_last", "best_metric", "best_mode"),
}


def check_config(cfg, where="the config"):
    """Fail on unknown or misspelt keys of the trainer's part of the config."""
    def unknown(key, options, block):
        hint = closest(key, options)
        hint = f"; did you mean {hint!r}?" if hint else f"; allowed: {', '.join(options)}"
        return ConfigError(f"unknown key {block + key!r} in {where}{hint}")

    for key, value in cfg.items():
        if key not in CONFIG_KEYS:
            raise unknown(key, list(CONFIG_KEYS), "")
        subkeys = CONFIG_KEYS[key]
        if subkeys and value is not None:
            if not isinstance(value, dict):
                raise ConfigError(f"{key} in {where} must be a mapping with keys {subkeys}")
            for sub in value:
                if sub not in subkeys:
                    raise unknown(sub, list(subkeys), f"{key}.")
    for key in ("total_iters", "model", "dataset", "optimizer", "lr_scheduler"):
        if key not in cfg:
            raise ConfigError(f"{where} lacks the required key {key!r}")
    if not isinstance(cfg.total_iters, int) or cfg.total_iters <= 0:
        raise ConfigError(f"total_iters in {where} must be a positive integer, "
                          f"got {cfg.total_iters!r}")
    if "train" not in (cfg.dataset or {}):
        raise ConfigError(f"dataset in {where} needs a 'train' block")
    if (cfg.get("validate") or {}).get("interval") and "test" not in cfg.dataset:
        raise ConfigError(f"validate.interval is set in {where} but dataset has no 'test' block "
                          f"to evaluate on; add one or set validate.interval: 0")


def resolve_device(device):
    """'auto' | 'cpu' | 'gpu' -> the Paddle device actually used ('cpu' or 'gpu')."""
    if device not in ("auto", "cpu", "gpu"):
        raise ConfigError(f"--device must be auto, cpu or gpu, got {device!r}")
    has_gpu = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if device == "gpu" and not has_gpu:
        raise ConfigError("--device gpu: this Paddle build has no CUDA support or no GPU is "
                          "visible; use --device cpu (or auto)")
    return "gpu" if device == "gpu" or (device == "auto" and has_gpu) else "cpu"


def seed_everything(seed):
    """Seed Python's, numpy's and Paddle's random generators with ``seed``."""
    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


def weights_digest(state_dicts):
    """Short SHA-1 over every tensor of {net: state dict} (same weights <=> same digest)."""
    digest = hashlib.sha1()
    for net_name in sorted(state_dicts):
        for key, value in sorted(state_dicts[net_name].items()):
            digest.update(f"{net_name}.{key}".encode())
            digest.update(np.ascontiguousarray(value.numpy()).tobytes())
    return digest.hexdigest()[:16]
