"""Binary cross-entropy on probabilities that reports a diverged run instead of crashing."""

from __future__ import annotations

import paddle
import paddle.nn.functional as F


def bce_on_probabilities(prob: paddle.Tensor, target: paddle.Tensor) -> paddle.Tensor:
    """Mean BCE of probabilities (N, 1) in [0, 1] against 0/1 targets of the same shape.

    Paddle's BCE kernel raises an "illegal input" error on NaN, which would hide a diverged run
    behind an obscure message; a NaN probability gives a NaN loss here, which the trainer's
    NaN guard reports by name and iteration.
    """
    if bool(paddle.isnan(prob).any()):
        return prob.mean()
    return F.binary_cross_entropy(prob, target)
