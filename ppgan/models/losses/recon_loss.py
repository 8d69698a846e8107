"""Pixel reconstruction loss."""

from __future__ import annotations

import paddle
import paddle.nn.functional as F



class L1Loss:
    """Mean absolute error between two tensors of the same shape (e.g. (B, 3, T, H, W) frames)."""

    def __call__(self, prediction: paddle.Tensor, target: paddle.Tensor) -> paddle.Tensor:
        return F.l1_loss(prediction, target)
