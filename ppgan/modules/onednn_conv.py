"""Training-speed path for CPU: convolutions run as tiny static oneDNN programs.

Paddle's dynamic-graph CPU convolution (im2col + GEMM) and its gradient are about 3.5x slower
than oneDNN's, and dynamic mode never uses oneDNN. Compiling a whole network to a static
oneDNN program is not usable for training in Paddle 3.3.1 (batch-norm running statistics stay
at 0/1, batch-norm and ReLU gradients fall back to oneDNN's slow reference kernels, transposed
convolutions refuse training, some programs crash). So only the convolutions are compiled: each
``nn.Conv2D`` gets its own one-op static program (forward and backward use oneDNN's fast
kernels), while batch norm, activations, residual additions and everything else stay dynamic
with Paddle's plain kernels - batch-norm statistics and every other op behave exactly as in
dynamic mode, and convolution results differ from it by float rounding only (~1e-6 relative).
Each ``nn.Conv2DTranspose`` keeps Paddle's dynamic forward, and its two gradients come from one
oneDNN program of the plain convolution it is the adjoint of (about 2/3 of its cost).

    from ppgan.modules.onednn_conv import onednn_kernels, use_onednn_convolutions
    use_onednn_convolutions(net)          # in place; parameters, names and outputs unchanged
    with onednn_kernels():                # forward AND backward inside: both are compiled here
        loss = criterion(net(x)); loss.backward()

The layers keep their class's parameters and state-dict keys; only their ``forward`` changes.
Outside ``onednn_kernels()``, without autograd (``paddle.no_grad``: a program traced there would
have no backward) or off CPU, a switched layer runs Paddle's dynamic kernel as before.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Iterator, Optional, Tuple, Union

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

if TYPE_CHECKING:
    from paddle._typing import Size2  # what Conv2DTranspose.forward takes as output_size

# Flag name of Paddle 3.x; older builds spell it FLAGS_use_mkldnn.
_ONEDNN_FLAG = "FLAGS_use_onednn"


def onednn_available() -> bool:
    """True when this Paddle build has oneDNN and runs on CPU (the only place it helps)."""
    compiled = paddle.base.core.is_compiled_with_onednn() if hasattr(
        paddle.base.core, "is_compiled_with_onednn") else paddle.base.core.is_compiled_with_mkldnn()
    return bool(compiled) and paddle.get_device() == "cpu"


def _onednn_flag() -> bool:
    return bool(paddle.get_flags([_ONEDNN_FLAG])[_ONEDNN_FLAG])


@contextlib.contextmanager
def onednn_kernels(enabled: bool = True) -> Iterator[None]:
    """Let static programs compiled inside the block use oneDNN kernels (no-op if not enabled).

    Paddle picks kernels when a program first runs, and a backward program first runs at
    ``backward()``: so both the forward and the backward of a step belong inside. The flag is
    global and is restored on exit, so static programs compiled elsewhere (e.g. whole-net
    ``to_static``, whose oneDNN training path is broken) keep Paddle's plain kernels.
    Dynamic-graph ops ignore the flag.
    """
    if not enabled:
        yield
        return
    previous = _onednn_flag()
    paddle.set_flags({_ONEDNN_FLAG: True})
    try:
        yield
    finally:
        paddle.set_flags({_ONEDNN_FLAG: previous})


class _ConvProgram(nn.Layer):
    """The static program of one bias-free convolution (weight passed in), ending in a copy.

    Shaped by Paddle 3.3.1 oneDNN quirks: a program whose output comes straight from a oneDNN
    kernel crashes when its outputs are created, so it ends in ``assign``, a plain copy with no
    oneDNN kernel (cheaper than the ``maximum`` against the lowest float used before; ``scale``
    and ``reshape`` crash); stride, padding and dilation are attributes of
    this layer, so they are program constants (list arguments crash it too). Biases are added
    outside (``_ChannelBias``): oneDNN's gradient of a broadcast add is a slow reference reduction.
    """

    def __init__(self, stride: Any, padding: Any, dilation: Any) -> None:
        # Whatever the source conv layer stores (int or list), passed to F.conv2d unchanged.
        super().__init__()
        self.stride, self.padding, self.dilation = stride, padding, dilation

    def forward(self, x: paddle.Tensor, weight: paddle.Tensor) -> paddle.Tensor:
        y = F.conv2d(x, weight, None, stride=self.stride, padding=self.padding, dilation=self.dilation)
        return paddle.assign(y)


class _ChannelBias(paddle.autograd.PyLayer):
    """(N, C, H, W) + bias (C,) through matrix products, with the same result as the broadcast add.

    Paddle's CPU broadcast add and its bias gradient (a reduction over N, H, W) run several
    times slower than a same-shape add and do not use a second thread: on the expert they were
    a sixth of a training step. As a rank-1 update of the (N*C, H*W) matrix (``addmm``) the add
    is exact and about 3x faster, and the bias gradient becomes one matrix-vector product.
    """

    @staticmethod
    def forward(ctx: Any, y: paddle.Tensor, bias: paddle.Tensor) -> paddle.Tensor:
        n, c, h, w = y.shape
        ctx.needs_bias_grad = not bias.stop_gradient
        per_row = bias.reshape([1, c]).expand([n, c]).reshape([n * c, 1])
        out = paddle.addmm(y.reshape([n * c, h * w]), per_row, paddle.ones([1, h * w], dtype=y.dtype))
        return out.reshape([n, c, h, w])

    # The override ignore: Paddle's stub returns tensors only, PyLayer takes None for an input
    # that needs no gradient (the frozen bias).
    @staticmethod
    def backward(ctx: Any, dy: paddle.Tensor) -> Tuple[paddle.Tensor, Optional[paddle.Tensor]]:  # type: ignore[override]
        if not ctx.needs_bias_grad:
            return dy, None
        n, c, h, w = dy.shape
        per_row = paddle.matmul(dy.reshape([n * c, h * w]), paddle.ones([h * w, 1], dtype=dy.dtype))
        return dy, per_row.reshape([n, c]).sum(axis=0)


def _add_bias(y: paddle.Tensor, bias: Optional[paddle.Tensor]) -> paddle.Tensor:
    return y if bias is None else _ChannelBias.apply(y, bias)


def _conv_program(layer: Union[nn.Conv2D, nn.Conv2DTranspose]) -> _ConvProgram:
    """A compiled ``_ConvProgram`` with ``layer``'s stride, padding and dilation."""
    return paddle.jit.to_static(_ConvProgram(layer._stride, layer._padding, layer._dilation), full_graph=True)


def _autograd_on_cpu_onednn(x: paddle.Tensor) -> bool:
    return paddle.is_grad_enabled() and _onednn_flag() and x.place.is_cpu_place()


class OneDNNConv2D(nn.Conv2D):
    """``nn.Conv2D`` whose autograd calls inside ``onednn_kernels()`` on CPU run through a
    cached static oneDNN program.

    Never constructed directly: ``use_onednn_convolutions`` switches existing layers to it, so
    parameters, names and the constructor stay those of ``nn.Conv2D``.
    Shapes: (N, C_in, H, W) -> (N, C_out, H', W'), exactly as ``nn.Conv2D``.
    """

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        if not _autograd_on_cpu_onednn(x):
            return super().forward(x)
        # One program per gradient pattern: which of input / weight need a gradient decides
        # the backward program, and the frozen expert (weights fixed) differs from trained nets.
        key = (x.stop_gradient, self.weight.stop_gradient)
        programs = self.__dict__.setdefault("_onednn_programs", {})
        if key not in programs:
            programs[key] = _conv_program(self)
        return _add_bias(programs[key](x, self.weight), self.bias)


class _TransposedConvolution(paddle.autograd.PyLayer):
    """A transposed convolution whose gradients are computed by one oneDNN convolution program.

    A transposed convolution with weight W is the adjoint of the plain convolution with the same
    W, stride and padding: so its input gradient is that convolution of the output gradient dy,
    and its weight gradient is that convolution's weight gradient for input dy and output
    gradient x. One program run (forward + weight backward) gives both. The forward stays
    Paddle's dynamic kernel: the oneDNN transposed convolution refuses training programs.
    """

    @staticmethod
    def forward(ctx: Any, x: paddle.Tensor, weight: paddle.Tensor, layer: nn.Conv2DTranspose) -> paddle.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.adjoint = layer.__dict__["_onednn_adjoint"]
        return F.conv2d_transpose(x, weight, stride=layer._stride, padding=layer._padding,
                                  # Paddle types the attribute like ``padding``; it holds the constructor's int / pair.
                                  output_padding=layer.output_padding,  # type: ignore[arg-type]
                                  dilation=layer._dilation)

    @staticmethod
    def backward(ctx: Any, dy: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor]:
        x, weight = ctx.saved_tensor()
        with paddle.enable_grad():
            free_weight = weight.detach()
            free_weight.stop_gradient = False
            dx = ctx.adjoint(dy.detach(), free_weight)  # (N, C_in, H, W), the shape of x
            (dweight,) = paddle.grad([dx], [free_weight], grad_outputs=[x])
        return dx.detach(), dweight


class OneDNNConv2DTranspose(nn.Conv2DTranspose):
    """``nn.Conv2DTranspose`` whose gradients, inside ``onednn_kernels()`` on CPU, come from a
    oneDNN convolution program (see ``_TransposedConvolution``); forward is unchanged.

    Switched to by ``use_onednn_convolutions``, like ``OneDNNConv2D``.
    Shapes: (N, C_in, H, W) -> (N, C_out, H', W'), exactly as ``nn.Conv2DTranspose``.
    """

    def forward(self, x: paddle.Tensor, output_size: Optional[Size2] = None) -> paddle.Tensor:
        if output_size is not None or x.stop_gradient or self.weight.stop_gradient \
                or not _autograd_on_cpu_onednn(x):
            return super().forward(x, output_size)
        if "_onednn_adjoint" not in self.__dict__:
            self.__dict__["_onednn_adjoint"] = _conv_program(self)  # the adjoint: same stride, padding
        return _add_bias(_TransposedConvolution.apply(x, self.weight, self), self.bias)


_SWITCHES = {nn.Conv2D: OneDNNConv2D, nn.Conv2DTranspose: OneDNNConv2DTranspose}


def _eligible(layer: nn.Layer) -> bool:
    # NCHW, ungrouped, zero padding: what the Wav2Lip nets use and the tests check. Transposed
    # convolutions also need numeric padding and no dilation, for their adjoint convolution.
    if type(layer) is nn.Conv2D:
        return layer._data_format == "NCHW" and layer._groups == 1 and layer._padding_mode == "zeros"
    if type(layer) is nn.Conv2DTranspose:
        padding, dilation = layer._padding, layer._dilation
        numeric = isinstance(padding, int) or (isinstance(padding, (list, tuple)) and len(padding) == 2
                                               and all(isinstance(p, int) for p in padding))
        undilated = all(d == 1 for d in (dilation if isinstance(dilation, (list, tuple)) else [dilation]))
        return layer._data_format == "NCHW" and layer._groups == 1 and numeric and undilated
    return False


def use_onednn_convolutions(net: nn.Layer) -> int:
    """Switch every plain ``nn.Conv2D`` / ``nn.Conv2DTranspose`` inside ``net`` to its oneDNN
    variant (in place).

    Returns the number of layers switched (0 when oneDNN is unavailable or not on CPU).
    """
    if not onednn_available():
        return 0
    switched = 0
    for layer in net.sublayers(include_self=True):
        if _eligible(layer):
            # Same object, same parameters and keys; only the class (its forward) changes.
            layer.__class__ = _SWITCHES[type(layer)]
            switched += 1
    return switched
