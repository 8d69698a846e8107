"""Convolution units shared by the Wav2Lip networks, and the audio encoder they have in common.

Every unit keeps its layers in a ``conv_block`` Sequential, so the state-dict keys are
``<unit>.conv_block.0.weight`` (conv), ``<unit>.conv_block.1._mean`` (batch norm) and so on:
exactly PaddleGAN's names, and the original PyTorch names up to the batch-norm statistics.
Changing the attribute names here would break every released weights file.
"""

from __future__ import annotations

from typing import Callable, List, Sequence, Tuple, Union

import paddle
import paddle.nn as nn

from ..utils.errors import ConfigError

# The smallest channel count a width multiplier may produce: below this, batch-norm statistics
# of the narrowest layers become too noisy for the demo networks to train at all.
MIN_CHANNELS = 4

# A kernel size, stride or padding: one int for both axes, or (height, width).
IntOrPair = Union[int, Tuple[int, int]]
# ``channel_scaler``'s result: published channel count -> scaled count.
ChannelScaler = Callable[[int], int]


def channel_scaler(width_mult: float) -> ChannelScaler:
    """Return ``scale(channels) -> int`` for a width multiplier.

    ``width_mult=1.0`` returns the channel counts unchanged (the published topology); smaller
    values shrink every internal layer for demos and tests, never below ``MIN_CHANNELS``.
    """
    if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) or width_mult <= 0:
        raise ConfigError(f"width_mult must be a positive number, got {width_mult!r}")
    if width_mult == 1.0:
        return lambda channels: channels
    return lambda channels: max(MIN_CHANNELS, int(round(channels * width_mult)))


class ConvBNRelu(nn.Layer):
    """Conv2D (with bias) -> BatchNorm2D [-> + input] -> ReLU.

    Args:
        in_channels, out_channels, kernel_size, stride, padding: as ``paddle.nn.Conv2D``.
        residual: add the input before the ReLU (needs ``in_channels == out_channels`` and a
            shape-preserving conv). Default: False.
    Shapes: (N, in_channels, H, W) -> (N, out_channels, H', W').
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair, stride: IntOrPair = 1,
                 padding: IntOrPair = 0, residual: bool = False) -> None:
        super().__init__()
        if residual and in_channels != out_channels:
            raise ValueError(f"a residual unit needs in_channels == out_channels, "
                             f"got {in_channels} -> {out_channels}")
        self.conv_block = nn.Sequential(
            nn.Conv2D(in_channels, out_channels, kernel_size, stride, padding),
            nn.BatchNorm2D(out_channels))
        self.residual = residual
        self.act = nn.ReLU()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return self.act(out)


class ConvTransposeBNRelu(nn.Layer):
    """Conv2DTranspose (with bias) -> BatchNorm2D -> ReLU; the decoder's upsampling unit.

    The transposed weight is stored as (in_channels, out_channels, kH, kW), the same layout
    as PyTorch's ConvTranspose2d, so converted weights need no transposition.
    Shapes: (N, in_channels, H, W) -> (N, out_channels, H', W').
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair, stride: IntOrPair = 1,
                 padding: IntOrPair = 0, output_padding: IntOrPair = 0) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.Conv2DTranspose(in_channels, out_channels, kernel_size, stride, padding,
                               output_padding=output_padding),
            nn.BatchNorm2D(out_channels))
        self.act = nn.ReLU()

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.act(self.conv_block(x))


class ConvLeakyRelu(nn.Layer):
    """Conv2D (with bias) -> LeakyReLU(0.01), no normalisation: the visual-quality
    discriminator's unit (a GAN critic is usually kept free of batch statistics).

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H', W').
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair, stride: IntOrPair = 1,
                 padding: IntOrPair = 0) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.Conv2D(in_channels, out_channels, kernel_size, stride, padding))
        self.act = nn.LeakyReLU(0.01)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.act(self.conv_block(x))


def residual_units(channels: int, count: int) -> List[ConvBNRelu]:
    """``count`` shape-preserving residual ConvBNRelu units (3x3, stride 1, padding 1)."""
    return [ConvBNRelu(channels, channels, 3, 1, 1, residual=True) for _ in range(count)]


def audio_encoder(scale: ChannelScaler, residuals_at_256: int = 1) -> nn.Sequential:
    """The mel-window encoder of the generator (one residual at 256 channels) and of the
    SyncNet expert (two). A flat Sequential, so keys read ``audio_encoder.<i>.conv_block...``.

    Args:
        scale: channel scaler from ``channel_scaler``.
        residuals_at_256: residual units after the 128->256 conv. Default: 1 (generator).
    Shapes: (N, 1, 80, 16) -> (N, scale(512), 1, 1).
    """
    c32, c64, c128, c256, c512 = (scale(c) for c in (32, 64, 128, 256, 512))
    return nn.Sequential(
        ConvBNRelu(1, c32, 3, 1, 1), *residual_units(c32, 2),
        ConvBNRelu(c32, c64, 3, (3, 1), 1), *residual_units(c64, 2),       # 80x16 -> 27x16
        ConvBNRelu(c64, c128, 3, 3, 1), *residual_units(c128, 2),          # -> 9x6
        ConvBNRelu(c128, c256, 3, (3, 2), 1), *residual_units(c256, residuals_at_256),  # -> 3x3
        ConvBNRelu(c256, c512, 3, 1, 0),                                   # -> 1x1
        ConvBNRelu(c512, c512, 1, 1, 0))


# Kernel, stride and padding of the convolutions that change resolution by an exact factor.
# Factor 2 is the published networks' stride-2 3x3 conv; factor 3 uses a 5x5 kernel so that
# neighbouring windows overlap (a 3x3 stride-3 kernel would tile the image with no overlap).
_RESAMPLE_KERNELS = {2: (3, 1, 1), 3: (5, 1, 0)}  # factor -> (kernel, padding, output padding)


def downsample_args(factor: int) -> Tuple[int, int, int]:
    """(kernel, stride, padding) of a conv that divides an H divisible by ``factor`` exactly by it."""
    kernel, padding, _ = _RESAMPLE_KERNELS[factor]
    return kernel, factor, padding


def resample_factor(kernel: int) -> int:
    """The resampling factor whose conv has a ``kernel`` x ``kernel`` kernel (inverse of the table)."""
    for factor, (size, _, _) in _RESAMPLE_KERNELS.items():
        if size == kernel:
            return factor
    raise ValueError(f"no resampling stage has a {kernel}x{kernel} kernel")


def upsample_args(factor: int) -> Tuple[int, int, int, int]:
    """(kernel, stride, padding, output_padding) of a transposed conv multiplying H by ``factor``.

    The mirror of ``downsample_args``: (H - 1) * factor - 2 * padding + kernel + output_padding
    = factor * H.
    """
    kernel, padding, output_padding = _RESAMPLE_KERNELS[factor]
    return kernel, factor, padding, output_padding


def check_input_size(images: paddle.Tensor, height: int, width: int, net_name: str) -> None:
    """Raise ValueError unless the last two axes of ``images`` are (height, width).

    A face of the wrong size otherwise fails deep inside the network (at a skip concatenation
    or the 1x1 embedding) with a message about tensor shapes. Dimensions unknown while a static
    program is traced (negative) pass.
    """
    got_h, got_w = images.shape[-2], images.shape[-1]
    if (got_h >= 0 and got_h != height) or (got_w >= 0 and got_w != width):
        raise ValueError(f"{net_name} built for {height}x{width} inputs got {got_h}x{got_w} "
                         f"(input shape {list(images.shape)}); set img_size to the face size")
