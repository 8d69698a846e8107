"""Build the shared learning-rate scheduler from the ``lr_scheduler`` config block."""

from ..utils.registry import build_from_config
from .lr_schedulers import LRSCHEDULERS


def build_lr_scheduler(cfg):
    """``{name: ConstantLR, learning_rate: 1e-4}`` -> a Paddle LRScheduler (per-iteration)."""
    return build_from_config(cfg, LRSCHEDULERS, where="lr_scheduler")
