"""Training-speed path for CPU: every ``nn.Conv2D`` runs as a tiny static oneDNN program.

Paddle's dynamic-graph CPU convolution (im2col + GEMM) and its gradient are about 3.5x slower
than oneDNN's, and dynamic mode never uses oneDNN. Compiling a whole network to a static
oneDNN program is not usable for training in Paddle 3.3.1 (batch-norm running statistics stay
at 0/1, batch-norm and ReLU gradients fall back to oneDNN's slow reference kernels, transposed
convolutions refuse training, some programs crash). So only the convolutions are compiled: each
``nn.Conv2D`` gets its own one-op static program (forward and backward use oneDNN's fast
kernels), while batch norm, activations, residual additions and everything else stay dynamic
with Paddle's plain kernels - batch-norm statistics and every other op behave exactly as in
dynamic mode, and convolution results differ from it by float rounding only (~1e-6 relative).

    from ppgan.modules.onednn_conv import onednn_kernels, use_onednn_convolutions
    use_onednn_convolutions(net)          # in place; parameters, names and outputs unchanged
    with onednn_kernels():                # forward AND backward inside: both are compiled here
        loss = criterion(net(x)); loss.backward()

The layers keep their class's parameters and state-dict keys; only their ``forward`` changes.
Outside ``onednn_kernels()``, without autograd (``paddle.no_grad``: a program traced there would
have no backward) or off CPU, a switched layer runs Paddle's dynamic kernel as before.
"""

import contextlib

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

# Flag name of Paddle 3.x; older builds spell it FLAGS_use_mkldnn.
_ONEDNN_FLAG = "FLAGS_use_onednn"
# The lower bound of the identity ``maximum`` that ends every program (see _ConvProgram).
_FLOAT32_LOWEST = -3.4028234e38


def onednn_available():
    """True when this Paddle build has oneDNN and runs on CPU (the only place it helps)."""
    compiled = paddle.base.core.is_compiled_with_onednn() if hasattr(
        paddle.base.core, "is_compiled_with_onednn") else paddle.base.core.is_compiled_with_mkldnn()
    return bool(compiled) and paddle.get_device() == "cpu"


def _onednn_flag():
    return bool(paddle.get_flags([_ONEDNN_FLAG])[_ONEDNN_FLAG])


@contextlib.contextmanager
def onednn_kernels(enabled=True):
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
    """The static program of one convolution without its bias, ending in an identity maximum.

    Shaped by Paddle 3.3.1 oneDNN quirks: a program whose output comes straight from a oneDNN
    kernel crashes when its outputs are created, so it ends in ``maximum`` against the lowest
    float (an identity with no oneDNN kernel); stride, padding and dilation are read from the
    layer, so they are program constants (list arguments crash it too). The bias is added
    outside: oneDNN's gradient of a broadcast add is a slow reference reduction.
    """

    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x):
        conv = self.conv
        y = F.conv2d(x, conv.weight, None, stride=conv._stride, padding=conv._padding,
                     dilation=conv._dilation, groups=conv._groups, data_format=conv._data_format)
        return paddle.maximum(y, paddle.full([1], _FLOAT32_LOWEST, dtype=y.dtype))


class OneDNNConv2D(nn.Conv2D):
    """``nn.Conv2D`` whose autograd calls inside ``onednn_kernels()`` on CPU run through a
    cached static oneDNN program.

    Never constructed directly: ``use_onednn_convolutions`` switches existing layers to it, so
    parameters, names and the constructor stay those of ``nn.Conv2D``.
    Shapes: (N, C_in, H, W) -> (N, C_out, H', W'), exactly as ``nn.Conv2D``.
    """

    def forward(self, x):
        if not (paddle.is_grad_enabled() and _onednn_flag() and x.place.is_cpu_place()):
            return super().forward(x)
        # One program per gradient pattern: which of input / weight need a gradient decides
        # the backward program, and the frozen expert (weights fixed) differs from trained nets.
        key = (x.stop_gradient, self.weight.stop_gradient)
        programs = self.__dict__.setdefault("_onednn_programs", {})
        if key not in programs:
            programs[key] = paddle.jit.to_static(_ConvProgram(self), full_graph=True)
        y = programs[key](x)
        return y if self.bias is None else y + self.bias.reshape([1, -1, 1, 1])


def _eligible(layer):
    # NCHW, ungrouped, zero padding: what the Wav2Lip nets use and the tests check.
    return (type(layer) is nn.Conv2D and layer._data_format == "NCHW" and layer._groups == 1
            and layer._padding_mode == "zeros")


def use_onednn_convolutions(net):
    """Switch every plain ``nn.Conv2D`` inside ``net`` to ``OneDNNConv2D`` (in place).

    Returns the number of layers switched (0 when oneDNN is unavailable or not on CPU).
    Transposed convolutions stay dynamic: Paddle's oneDNN transposed convolution is inference
    only.
    """
    if not onednn_available():
        return 0
    switched = 0
    for layer in net.sublayers(include_self=True):
        if _eligible(layer):
            # Same object, same parameters and keys; only the class (its forward) changes.
            layer.__class__ = OneDNNConv2D
            switched += 1
    return switched
