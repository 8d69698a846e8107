"""Weight initialisation for networks trained from scratch.

``normal`` is what PaddleGAN's ``Wav2LipModel`` applies to the generator (convolutions
N(0, 0.02), batch-norm scales N(1, 0.02), biases 0); ``kaiming`` is what ``Wav2LipModelHq``
applies to the generator and the visual-quality discriminator (He-uniform, fan-in, ReLU gain).
Batch-norm running statistics are left at their (0, 1) starting values.
"""

from __future__ import annotations

from typing import Union

import paddle.nn as nn
from paddle.nn import initializer

from ..utils.errors import ConfigError

INIT_TYPES = ("normal", "kaiming")
_CONV_TYPES = (nn.Conv2D, nn.Conv2DTranspose, nn.Linear)
_NORM_TYPES = (nn.BatchNorm2D, nn.BatchNorm1D, nn.BatchNorm)


def init_weights(net: nn.Layer, init_type: str = "normal", init_gain: float = 0.02) -> nn.Layer:
    """Re-initialise every convolution, linear and batch-norm layer of ``net`` in place.

    Args:
        net: a ``paddle.nn.Layer``.
        init_type: ``"normal"`` (N(0, init_gain) weights) or ``"kaiming"`` (He-uniform,
            fan-in). Default: "normal".
        init_gain: standard deviation for ``normal`` weights and batch-norm scales. Default: 0.02.
    Returns:
        ``net``, for chaining.
    Raises:
        ConfigError: an unknown ``init_type``.
    """
    if init_type not in INIT_TYPES:
        raise ConfigError(f"unknown init_type {init_type!r}; choose one of {', '.join(INIT_TYPES)}")
    weight_init: Union[initializer.Normal, initializer.KaimingUniform]
    if init_type == "normal":
        weight_init = initializer.Normal(0.0, init_gain)
    else:
        weight_init = initializer.KaimingUniform(negative_slope=0.0, nonlinearity="relu")
    zeros = initializer.Constant(0.0)
    for layer in net.sublayers(include_self=True):
        if isinstance(layer, _CONV_TYPES):
            weight_init(layer.weight)
            if layer.bias is not None:
                zeros(layer.bias)
        elif isinstance(layer, _NORM_TYPES):
            # Paddle types norm parameters as optional (weight_attr=False drops them); every norm
            # layer of our nets is affine, so both exist.
            initializer.Normal(1.0, init_gain)(layer.weight)  # type: ignore[arg-type]
            zeros(layer.bias)  # type: ignore[arg-type]
    return net
