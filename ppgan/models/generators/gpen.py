"""GPEN (Yang et al., "GAN Prior Embedded Network for Blind Face Restoration", CVPR 2021): the
face-restoration network behind PaddleGAN's ``--face_enhancement``.

A convolutional encoder shrinks the degraded face (B, 3, S, S) step by step to 4 x 4; its last
feature map becomes one style vector, and every encoder feature map is handed to the StyleGAN2
decoder of the same resolution, where it is concatenated to the decoder's features (GPEN's
"noise" inputs). The decoder draws the restored face (B, 3, S, S) in [-1, 1].

Parameter and buffer names follow PaddleGAN's ``GPEN`` exactly, so its released
``GPEN-512.pdparams`` loads strictly. Two computations differ in form but not in value from
that implementation: a modulated convolution scales the input channels by the style and the
output channels by the demodulation factor instead of building one weight per sample (the whole
batch then shares one convolution), and the FIR filters run as depthwise convolutions.
"""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..builder import GENERATORS

BLUR_KERNEL = (1, 3, 3, 1)
LEAKY_SLOPE = 0.2
LEAKY_GAIN = math.sqrt(2.0)  # keeps activations' variance through leaky ReLU (StyleGAN2)


def channels_at(resolution: int, channel_multiplier: int = 2) -> int:
    """Feature channels of GPEN / StyleGAN2 at a square ``resolution`` (4 ... 1024)."""
    return 512 if resolution <= 32 else 16384 // resolution * channel_multiplier


def fir_kernel(taps: Sequence[float], gain: float = 1.0) -> np.ndarray:
    """The separable 2-D FIR filter ``outer(taps, taps)`` normalised to sum ``gain``: (K, K)."""
    kernel = np.outer(np.asarray(taps, np.float32), np.asarray(taps, np.float32))
    return (kernel / kernel.sum() * gain).astype(np.float32)


def upfirdn2d(x: paddle.Tensor, kernel: paddle.Tensor, up: int = 1, down: int = 1,
              pad: Tuple[int, int] = (0, 0)) -> paddle.Tensor:
    """Upsample by zero insertion, pad, filter with ``kernel`` (true convolution), downsample.

    Args:
        x: (N, C, H, W) tensor; kernel: (K, K) tensor; up, down: integer factors;
        pad: (before, after) on both spatial axes, applied after upsampling.
    Returns:
        (N, C, (H*up + before + after - K) // down + 1, same for W).
    """
    n, c, h, w = x.shape
    if up > 1:
        # Each sample followed by up-1 zeros, along the columns and then the rows.
        x = paddle.concat([x.unsqueeze(-1), paddle.zeros([n, c, h, w, up - 1], x.dtype)], -1)
        x = x.reshape([n, c, h, 1, w * up])
        x = paddle.concat([x, paddle.zeros([n, c, h, up - 1, w * up], x.dtype)], 3)
        x = x.reshape([n, c, h * up, w * up])
    before, after = pad
    x = F.pad(x, [max(before, 0), max(after, 0), max(before, 0), max(after, 0)])
    if min(before, after) < 0:
        height, width = x.shape[2], x.shape[3]
        x = x[:, :, max(-before, 0):height - max(-after, 0), max(-before, 0):width - max(-after, 0)]
    size = kernel.shape[0]
    # conv2d correlates; flipping makes it the convolution the FIR design assumes.
    weight = paddle.flip(kernel, [0, 1]).reshape([1, 1, size, size]).tile([c, 1, 1, 1])
    return F.conv2d(x, weight, stride=down, groups=c)


class Blur(nn.Layer):
    """FIR blur with fixed padding; its kernel is not saved (PaddleGAN's is not either)."""

    def __init__(self, pad: Tuple[int, int], gain: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("kernel", paddle.to_tensor(fir_kernel(BLUR_KERNEL, gain)),
                             persistable=False)
        self.pad = (int(pad[0]), int(pad[1]))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Layer):
    """2x FIR upsampling of the RGB skip path; its kernel is saved (as in the released weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("kernel", paddle.to_tensor(fir_kernel(BLUR_KERNEL, 4.0)))
        spare = len(BLUR_KERNEL) - 2
        self.pad = ((spare + 1) // 2 + 1, spare // 2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return upfirdn2d(x, self.kernel, up=2, pad=self.pad)


def fused_leaky_relu(x: paddle.Tensor, bias: paddle.Tensor) -> paddle.Tensor:
    """leaky_relu(x + bias per channel) * sqrt(2); x: (N, C, ...) or (N, C)."""
    shape = [1, bias.shape[0]] + [1] * (x.ndim - 2)
    return F.leaky_relu(x + bias.reshape(shape), LEAKY_SLOPE) * LEAKY_GAIN


class FusedLeakyReLU(nn.Layer):
    """``fused_leaky_relu`` with a learnt per-channel bias."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = self.create_parameter([channels], default_initializer=nn.initializer.Constant(0.0))

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return fused_leaky_relu(x, self.bias)


class EqualConv2D(nn.Layer):
    """Convolution whose weights are stored at unit variance and scaled by 1/sqrt(fan-in)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True) -> None:
        super().__init__()
        self.weight = self.create_parameter([out_channels, in_channels, kernel_size, kernel_size],
                                            default_initializer=nn.initializer.Normal())
        self.bias = (self.create_parameter([out_channels], default_initializer=nn.initializer.Constant(0.0))
                     if bias else None)
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.stride, self.padding = stride, padding

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class EqualLinear(nn.Layer):
    """Linear layer with equalised learning rate; weight stored (in, out) as Paddle's Linear.

    ``lr_mul`` scales both weight and bias at run time (the mapping network's is 0.01), and
    ``activation`` adds the fused leaky ReLU.
    """

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activation: bool = False) -> None:
        super().__init__()
        self.weight = self.create_parameter([in_dim, out_dim], default_initializer=nn.initializer.Normal(
            std=1.0 / lr_mul))
        self.bias = self.create_parameter([out_dim], default_initializer=nn.initializer.Constant(bias_init))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        out = F.linear(x, self.weight * self.scale)
        if self.activation:
            return fused_leaky_relu(out, self.bias * self.lr_mul)
        return out + self.bias * self.lr_mul


class ConvLayer(nn.Sequential):
    """[blur,] equalised conv, fused leaky ReLU: the encoder's layers (PaddleGAN's index layout)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, downsample: bool = False) -> None:
        layers: List[nn.Layer] = []
        if downsample:
            spare = len(BLUR_KERNEL) - 2 + kernel_size - 1
            layers.append(Blur(((spare + 1) // 2, spare // 2)))
            layers.append(EqualConv2D(in_channels, out_channels, kernel_size, stride=2, bias=False))
        else:
            layers.append(EqualConv2D(in_channels, out_channels, kernel_size,
                                      padding=kernel_size // 2, bias=False))
        layers.append(FusedLeakyReLU(out_channels))
        super().__init__(*layers)


class ModulatedConv2D(nn.Layer):
    """StyleGAN2's style-modulated convolution, optionally 2x upsampling (transposed conv + blur).

    forward(x (N, Cin, H, W), style (N, style_dim)) -> (N, Cout, H or 2H, W or 2W).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
                 demodulate: bool = True, upsample: bool = False) -> None:
        super().__init__()
        self.weight = self.create_parameter([1, out_channels, in_channels, kernel_size, kernel_size],
                                            default_initializer=nn.initializer.Normal())
        self.modulation = EqualLinear(style_dim, in_channels, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.demodulate, self.upsample = demodulate, upsample
        self.padding = kernel_size // 2
        if upsample:
            spare = len(BLUR_KERNEL) - 2 - (kernel_size - 1)
            self.blur = Blur(((spare + 1) // 2 + 1, spare // 2 + 1), gain=4.0)

    def forward(self, x: paddle.Tensor, style: paddle.Tensor) -> paddle.Tensor:
        style = self.modulation(style)  # (N, Cin)
        weight = self.weight[0] * self.scale  # (Cout, Cin, K, K)
        x = x * style.unsqueeze(-1).unsqueeze(-1)
        if self.upsample:
            out = F.conv2d_transpose(x, weight.transpose([1, 0, 2, 3]), stride=2)
            out = self.blur(out)
        else:
            out = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            # 1 / ||weight * style|| over (Cin, K, K), per sample and output channel.
            energy = paddle.matmul(style * style, (weight * weight).sum([2, 3]).transpose([1, 0]))
            out = out * paddle.rsqrt(energy + 1e-8).unsqueeze(-1).unsqueeze(-1)
        return out


class NoiseInjection(nn.Layer):
    """Appends ``weight * features`` (GPEN's encoder features at this resolution) as channels."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = self.create_parameter([1], default_initializer=nn.initializer.Constant(0.0))

    def forward(self, x: paddle.Tensor, features: paddle.Tensor) -> paddle.Tensor:
        return paddle.concat([x, self.weight * features], axis=1)


class StyledConv(nn.Layer):
    """Modulated conv, then the encoder features appended as channels, then fused leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, style_dim: int,
                 upsample: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv2D(in_channels, out_channels, kernel_size, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channels * 2)

    def forward(self, x: paddle.Tensor, style: paddle.Tensor, features: paddle.Tensor) -> paddle.Tensor:
        return self.activate(self.noise(self.conv(x, style), features))


class ToRGB(nn.Layer):
    """1x1 modulated conv to RGB plus the upsampled RGB of the previous resolution."""

    def __init__(self, in_channels: int, style_dim: int, upsample: bool = True) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample()
        self.conv = ModulatedConv2D(in_channels, 3, 1, style_dim, demodulate=False)
        self.bias = self.create_parameter([1, 3, 1, 1], default_initializer=nn.initializer.Constant(0.0))

    def forward(self, x: paddle.Tensor, style: paddle.Tensor,
                skip: Optional[paddle.Tensor] = None) -> paddle.Tensor:
        out = self.conv(x, style) + self.bias
        return out if skip is None else out + self.upsample(skip)


class PixelNorm(nn.Layer):
    """Each sample divided by its root-mean-square over channels."""

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x * paddle.rsqrt(paddle.mean(x * x, 1, keepdim=True) + 1e-8)


class ConstantInput(nn.Layer):
    """The decoder's learnt (1, C, 4, 4) start, repeated over the batch."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.input = self.create_parameter([1, channels, 4, 4], default_initializer=nn.initializer.Normal())

    def forward(self, batch: int) -> paddle.Tensor:
        return self.input.tile([batch, 1, 1, 1])


class StyleDecoder(nn.Layer):
    """StyleGAN2's synthesis network in GPEN's concatenating form (named ``generator`` in GPEN).

    forward(w (N, style_dim) before the mapping network, features: encoder maps from 4x4 up to
    S x S) -> (N, 3, S, S).
    """

    def __init__(self, size: int, style_dim: int, n_mlp: int, channel_multiplier: int = 2,
                 lr_mlp: float = 0.01) -> None:
        super().__init__()
        self.style = nn.Sequential(PixelNorm(), *[
            EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation=True) for _ in range(n_mlp)])
        log_size = int(math.log2(size))
        base = channels_at(4, channel_multiplier)
        self.input = ConstantInput(base)
        self.conv1 = StyledConv(base, base, 3, style_dim)
        self.to_rgb1 = ToRGB(base * 2, style_dim, upsample=False)
        self.convs, self.to_rgbs = nn.LayerList(), nn.LayerList()
        # Unused by GPEN (its noise is the encoder's features) but saved in the released weights.
        self.noises = nn.Layer()
        for index in range((log_size - 2) * 2 + 1):
            side = 2 ** ((index + 5) // 2)
            self.noises.register_buffer(f"noise_{index}", paddle.zeros([1, 1, side, side]))
        in_channels = base
        for level in range(3, log_size + 1):
            out_channels = channels_at(2 ** level, channel_multiplier)
            self.convs.append(StyledConv(in_channels * 2, out_channels, 3, style_dim, upsample=True))
            self.convs.append(StyledConv(out_channels * 2, out_channels, 3, style_dim))
            self.to_rgbs.append(ToRGB(out_channels * 2, style_dim))
            in_channels = out_channels

    def forward(self, w: paddle.Tensor, features: Sequence[paddle.Tensor]) -> paddle.Tensor:
        style = self.style(w)  # the same style drives every layer (no mixing at inference)
        out = self.conv1(self.input(style.shape[0]), style, features[0])
        skip = self.to_rgb1(out, style)
        for level, to_rgb in enumerate(self.to_rgbs, start=1):
            out = self.convs[2 * level - 2](out, style, features[level])
            out = self.convs[2 * level - 1](out, style, features[level])
            skip = to_rgb(out, style, skip)
        return skip


@GENERATORS.register()
class GPEN(nn.Layer):
    """GPEN face restoration.

    Args:
        size: face side S (a power of two, 16 ... 1024); PaddleGAN's release: 512.
        style_dim: style vector length (512); n_mlp: mapping-network depth (8);
        channel_multiplier: widens resolutions above 32 (2).
    forward(faces (N, 3, S, S) RGB in [-1, 1]) -> (N, 3, S, S) restored, about [-1, 1].
    """

    def __init__(self, size: int = 512, style_dim: int = 512, n_mlp: int = 8, channel_multiplier: int = 2,
                 lr_mlp: float = 0.01) -> None:
        super().__init__()
        log_size = int(math.log2(size))
        if 2 ** log_size != size or not 16 <= size <= 1024:
            raise ValueError(f"GPEN size must be a power of two in 16..1024, got {size}")
        self.size = size
        self.generator = StyleDecoder(size, style_dim, n_mlp, channel_multiplier, lr_mlp)
        channels = channels_at(size, channel_multiplier)
        self.ecd0 = nn.Sequential(ConvLayer(3, channels, 1))
        for index, level in enumerate(range(log_size, 2, -1), start=1):
            out_channels = channels_at(2 ** (level - 1), channel_multiplier)
            setattr(self, f"ecd{index}", nn.Sequential(ConvLayer(channels, out_channels, 3, downsample=True)))
            channels = out_channels
        self.encoder_depth = log_size - 1
        self.final_linear = nn.Sequential(EqualLinear(channels * 16, style_dim, activation=True))

    def forward(self, faces: paddle.Tensor) -> paddle.Tensor:
        features, x = [], faces
        for index in range(self.encoder_depth):
            x = getattr(self, f"ecd{index}")(x)
            features.append(x)
        w = self.final_linear(x.reshape([x.shape[0], -1]))
        return self.generator(w, features[::-1])
