"""Optimizers and learning-rate schedulers built from config."""

from .lr_schedulers import LRSCHEDULERS  # noqa: F401
from .optimizers import OPTIMIZERS, build_optimizers, trainable_parameters  # noqa: F401
from .builder import build_lr_scheduler  # noqa: F401
