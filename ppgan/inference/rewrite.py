"""Export-time rewrites: the same function, as layers every backend precision can run.

Paddle 3.3.1's oneDNN bf16 path fails (a bare ``std::exception`` at the first run) on a
transposed convolution with stride 1, while stride-2 ones and plain convolutions run. Wav2Lip's
decoder has one such layer (1x1 -> 3x3), so the whole generator could not run in bf16.

A stride-1 transposed convolution is exactly a convolution of the same input padded by
``k - 1 - p`` with the kernel flipped in both spatial axes and its in / out channel axes swapped.
``direct_convolutions`` swaps those layers in for the duration of an export: the fp32 program
computes the same numbers (up to summation order, ~1e-6) and now runs in bf16 too.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, List, Tuple

import paddle.nn as nn


def rewritable(layer: nn.Layer) -> bool:
    """True for a ``Conv2DTranspose`` that ``as_direct_conv`` turns into an exact ``Conv2D``."""
    if not isinstance(layer, nn.Conv2DTranspose):
        return False
    output_padding = layer.output_padding
    padding = getattr(layer, "_updated_padding", None)
    return (list(layer._stride) == [1, 1] and list(layer._dilation) == [1, 1]
            and layer._groups == 1 and layer._data_format == "NCHW"
            and output_padding in (0, None, [0, 0], (0, 0))
            and getattr(layer, "_padding_algorithm", "EXPLICIT") == "EXPLICIT"
            and isinstance(padding, (list, tuple)) and len(padding) == 2
            and all(0 <= p <= k - 1 for p, k in zip(padding, layer._kernel_size)))


def as_direct_conv(layer: nn.Conv2DTranspose) -> nn.Conv2D:
    """The ``Conv2D`` computing what the stride-1 transposed conv ``layer`` computes.

    Shapes: (N, C_in, H, W) -> (N, C_out, H + k - 1 - 2p, W + k - 1 - 2p) for both.
    """
    weight = layer.weight.numpy()                       # (C_in, C_out, kH, kW)
    kernel = [int(k) for k in layer._kernel_size]
    padding = [k - 1 - int(p) for k, p in zip(kernel, layer._updated_padding)]
    conv = nn.Conv2D(weight.shape[0], weight.shape[1], kernel, 1, padding,
                     bias_attr=layer.bias is not None)
    conv.weight.set_value(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).copy())
    if layer.bias is not None:
        conv.bias.set_value(layer.bias.numpy())
    conv.eval()
    return conv


@contextlib.contextmanager
def direct_convolutions(layer: nn.Layer) -> Iterator[int]:
    """Within the block, every ``rewritable`` sublayer of ``layer`` is its ``as_direct_conv``.

    The original layers come back afterwards (also on error), so a trained network is untouched.
    Yields the number of layers swapped.
    """
    swapped: List[Tuple[nn.Layer, str, nn.Layer]] = []
    try:
        for parent in [layer, *layer.sublayers()]:
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Conv2DTranspose) and rewritable(child):
                    # Sequential and LayerList run their children from this dict, and attribute
                    # access (self.conv) reads it too, so one assignment reroutes every caller.
                    parent._sub_layers[name] = as_direct_conv(child)
                    swapped.append((parent, name, child))
        yield len(swapped)
    finally:
        for parent, name, child in swapped:
            parent._sub_layers[name] = child

