"""Learning-rate schedulers built from the ``lr_scheduler`` config block (LRSCHEDULERS).

Every scheduler counts **iterations**: the trainer steps it once after each training iteration,
so ``last_epoch`` is the number of finished iterations and resuming restores it exactly through
``state_dict`` / ``set_state_dict`` (Paddle's LRScheduler protocol).
"""

from __future__ import annotations

import paddle

from ..utils.errors import ConfigError
from ..utils.registry import Registry

LRSCHEDULERS = Registry("lr_scheduler")


@LRSCHEDULERS.register()
class ConstantLR(paddle.optimizer.lr.LRScheduler):
    """The same learning rate at every iteration (the reference Wav2Lip schedule).

    Args:
        learning_rate (float): the rate.
    """

    def __init__(self, learning_rate: float, last_epoch: int = -1) -> None:
        super().__init__(float(learning_rate), last_epoch)

    def get_lr(self) -> float:
        return self.base_lr


@LRSCHEDULERS.register()
class LinearDecay(paddle.optimizer.lr.LRScheduler):
    """Constant for ``start_iter`` iterations, then linear down to ``end_lr`` over ``decay_iters``.

    Args:
        learning_rate (float): rate before the decay starts.
        start_iter (int): iterations at the full rate. Default: 0.
        decay_iters (int): length of the linear ramp in iterations (> 0).
        end_lr (float): rate at the end of the ramp and after it. Default: 0.0.
    """

    def __init__(self, learning_rate: float, decay_iters: int, start_iter: int = 0, end_lr: float = 0.0,
                 last_epoch: int = -1) -> None:
        if int(decay_iters) <= 0:
            raise ConfigError(f"lr_scheduler.decay_iters must be a positive number of "
                              f"iterations, got {decay_iters}")
        self.start_iter = int(start_iter)
        self.decay_iters = int(decay_iters)
        self.end_lr = float(end_lr)
        super().__init__(float(learning_rate), last_epoch)

    def get_lr(self) -> float:
        progress = min(max(self.last_epoch - self.start_iter, 0) / self.decay_iters, 1.0)
        return self.base_lr + (self.end_lr - self.base_lr) * progress


# Paddle's own schedulers keep their argument names; their counts are iterations here too.
LRSCHEDULERS.register("MultiStepDecay")(paddle.optimizer.lr.MultiStepDecay)
LRSCHEDULERS.register("CosineAnnealingDecay")(paddle.optimizer.lr.CosineAnnealingDecay)
