"""Build the shared learning-rate scheduler from the ``lr_scheduler`` config block."""

from __future__ import annotations

from typing import Any, Mapping

import paddle

from ..utils.registry import build_from_config
from .lr_schedulers import LRSCHEDULERS


def build_lr_scheduler(cfg: Mapping[str, Any]) -> paddle.optimizer.lr.LRScheduler:
    """``{name: ConstantLR, learning_rate: 1e-4}`` -> a Paddle LRScheduler (per-iteration)."""
    return build_from_config(cfg, LRSCHEDULERS, where="lr_scheduler")
