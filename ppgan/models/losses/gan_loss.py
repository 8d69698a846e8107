"""Adversarial loss for discriminators that output probabilities (the visual-quality critic)."""

from __future__ import annotations

import paddle

from .bce import bce_on_probabilities


class GANLoss:
    """Binary cross-entropy against an all-real or all-fake target.

    Call with (probabilities (N, 1) in [0, 1], target_is_real: bool) and get a scalar tensor.
    For the generator's adversarial term call it on D(generated) with ``target_is_real=True``.
    """

    def __call__(self, prob: paddle.Tensor, target_is_real: bool) -> paddle.Tensor:
        target = paddle.ones_like(prob) if target_is_real else paddle.zeros_like(prob)
        return bce_on_probabilities(prob, target)
