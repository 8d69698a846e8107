"""oneDNN convolution programs (ppgan.modules.onednn_conv): same results as the dynamic graph."""

import numpy as np
import paddle
import paddle.nn as nn
import pytest

from ppgan.models.discriminators.syncnet import SyncNetColor
from ppgan.models.losses import SyncLoss
from ppgan.models.generators.wav2lip import Wav2Lip
from ppgan.modules.onednn_conv import (OneDNNConv2D, OneDNNConv2DTranspose, onednn_available, onednn_kernels,
                                       use_onednn_convolutions)

pytestmark = pytest.mark.skipif(not onednn_available(), reason="needs Paddle with oneDNN on CPU")

# (in_channels, out_channels, kernel, stride, padding, bias, input (N, C, H, W) spatial size)
CONV_CASES = [
    (1, 4, 3, 1, 1, True, (20, 16)),            # the audio encoder's first layer
    (6, 8, 7, 1, 3, True, (24, 24)),            # the face encoders' first layer
    (8, 8, 3, (3, 1), 1, True, (20, 16)),       # the audio encoder's uneven strides
    (8, 16, 5, (1, 2), 1, True, (12, 24)),
    (16, 16, 3, 2, 1, False, (9, 9)),
    (16, 32, 1, 1, 0, True, (1, 1)),
]


def twin_convs(cin, cout, kernel, stride, padding, bias):
    """A dynamic conv and a switched copy holding the same weights."""
    plain = nn.Conv2D(cin, cout, kernel, stride, padding, bias_attr=None if bias else False)
    fast = nn.Conv2D(cin, cout, kernel, stride, padding, bias_attr=None if bias else False)
    fast.set_state_dict(plain.state_dict())
    assert use_onednn_convolutions(fast) == 1
    return plain, fast


def step(layer, x, grad_out, onednn):
    """Forward + backward of sum(layer(x) * grad_out): (output, dx, dweight, dbias) arrays."""
    with onednn_kernels(onednn):
        y = layer(x)
        (y * grad_out).sum().backward()
    grads = [x.grad, layer.weight.grad, layer.bias.grad if layer.bias is not None else None]
    result = [y.numpy()] + [g.numpy().copy() if g is not None else None for g in grads]
    x.clear_grad()
    layer.clear_gradients()
    return result


def assert_same_step(got, want):
    """``step`` results agree within 1e-5 of each array's largest value (None where want is None)."""
    for name, w, g in zip(("output", "dx", "dweight", "dbias"), want, got):
        if w is None:
            assert g is None
            continue
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-5 * np.abs(w).max(), err_msg=name)


@pytest.mark.parametrize("case", CONV_CASES)
def test_convolution_and_its_gradients_match_dynamic_mode(case):
    cin, cout, kernel, stride, padding, bias, size = case
    rng = np.random.RandomState(0)
    paddle.seed(0)
    plain, fast = twin_convs(cin, cout, kernel, stride, padding, bias)
    x = paddle.to_tensor(rng.randn(3, cin, *size).astype("float32"), stop_gradient=False)
    grad_out = paddle.to_tensor(rng.randn(*plain(x).shape).astype("float32"))
    want = step(plain, x, grad_out, onednn=False)
    for _ in range(2):                      # the second call reuses the compiled program
        assert_same_step(step(fast, x, grad_out, onednn=True), want)
    assert len(fast._onednn_programs) == 1  # one program per gradient pattern, built once


# (in_channels, out_channels, kernel, stride, padding, output_padding, bias, input spatial size)
TRANSPOSED_CASES = [
    (16, 8, 3, 1, 0, 0, True, (1, 1)),      # the generator's first decoder layer: 1x1 -> 3x3
    (12, 6, 3, 2, 1, 1, True, (6, 6)),      # its upsampling layers: 2x
    (8, 4, 4, 2, 1, 0, False, (5, 7)),
    (8, 4, 3, (2, 1), (1, 0), (1, 0), True, (5, 4)),
]


@pytest.mark.parametrize("case", TRANSPOSED_CASES)
def test_transposed_convolution_gradients_match_dynamic_mode(case):
    cin, cout, kernel, stride, padding, output_padding, bias, size = case
    rng = np.random.RandomState(4)
    paddle.seed(4)
    plain = nn.Conv2DTranspose(cin, cout, kernel, stride, padding, output_padding=output_padding,
                               bias_attr=None if bias else False)
    fast = nn.Conv2DTranspose(cin, cout, kernel, stride, padding, output_padding=output_padding,
                              bias_attr=None if bias else False)
    fast.set_state_dict(plain.state_dict())
    assert use_onednn_convolutions(fast) == 1 and isinstance(fast, OneDNNConv2DTranspose)
    x = paddle.to_tensor(rng.randn(3, cin, *size).astype("float32"), stop_gradient=False)
    grad_out = paddle.to_tensor(rng.randn(*plain(x).shape).astype("float32"))
    want = step(plain, x, grad_out, onednn=False)
    for _ in range(2):
        assert_same_step(step(fast, x, grad_out, onednn=True), want)
    assert "_onednn_adjoint" in fast.__dict__  # the gradients did come from the program
    # Input without gradient (nothing to compute for the adjoint): Paddle's own path.
    frozen = step(fast, paddle.to_tensor(x.numpy()), grad_out, onednn=True)
    np.testing.assert_allclose(frozen[2], want[2], rtol=0, atol=1e-5 * np.abs(want[2]).max())


def test_generator_switches_every_convolution():
    net = Wav2Lip(width_mult=0.125)
    plain = sum(type(layer) is nn.Conv2D for layer in net.sublayers())
    transposed = sum(type(layer) is nn.Conv2DTranspose for layer in net.sublayers())
    assert transposed == 6 and use_onednn_convolutions(net) == plain + transposed


def test_switch_keeps_parameters_and_falls_back_outside_the_scope():
    paddle.seed(1)
    net = SyncNetColor(width_mult=0.125)
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    switched = use_onednn_convolutions(net)
    assert switched == 31                           # every convolution of the expert
    after = net.state_dict()
    assert list(after) == list(before)
    for key, value in before.items():
        np.testing.assert_array_equal(after[key].numpy(), value)
    conv = net.face_encoder[0].conv_block[0]
    assert isinstance(conv, OneDNNConv2D) and isinstance(conv, nn.Conv2D)
    assert use_onednn_convolutions(net) == 0        # already switched: nothing left to do

    x = paddle.to_tensor(np.random.RandomState(1).rand(2, 15, 48, 96).astype("float32"))
    plain = nn.Conv2D(15, conv._out_channels, 7, 1, 3)
    plain.set_state_dict(conv.state_dict())
    want = plain(x).numpy()
    np.testing.assert_array_equal(conv(x).numpy(), want)            # outside onednn_kernels
    with onednn_kernels(), paddle.no_grad():
        np.testing.assert_array_equal(conv(x).numpy(), want)        # no autograd: dynamic
    assert not getattr(conv, "_onednn_programs", None)              # nothing compiled
    assert not paddle.get_flags(["FLAGS_use_onednn"])["FLAGS_use_onednn"]  # flag restored


def test_frozen_expert_passes_the_same_input_gradient():
    """The generator's sync loss backpropagates through the frozen expert (eval mode, fixed
    weights): the face encoder passes the same gradient to its input. (Compared before the
    embedding's L2 normalisation: with random weights some embeddings are nearly zero, and
    normalising those amplifies any rounding difference.)"""
    rng = np.random.RandomState(2)
    paddle.seed(2)
    plain = SyncNetColor(width_mult=0.25)
    fast = SyncNetColor(width_mult=0.25)
    fast.set_state_dict(plain.state_dict())
    use_onednn_convolutions(fast)
    face = rng.rand(4, 15, 48, 96).astype("float32")
    weights = paddle.to_tensor(rng.randn(4, 128, 1, 1).astype("float32"))
    results = []
    for net, onednn in ((plain, False), (fast, True)):
        net.eval()
        for param in net.parameters():
            param.stop_gradient = True
        faces = paddle.to_tensor(face, stop_gradient=False)
        with onednn_kernels(onednn):
            embedding = net.face_encoder(faces)
            (embedding * weights).sum().backward()
        results.append((embedding.numpy(), faces.grad.numpy()))
    (emb_d, grad_d), (emb_f, grad_f) = results
    assert np.abs(grad_d).max() > 0
    np.testing.assert_allclose(emb_f, emb_d, rtol=0, atol=1e-4 * np.abs(emb_d).max())
    np.testing.assert_allclose(grad_f, grad_d, rtol=0, atol=1e-4 * np.abs(grad_d).max())


def test_training_step_matches_dynamic_mode_and_updates_batch_norm():
    """Train mode: same loss and batch-norm running statistics; gradients agree to the rounding
    sensitivity of batch norm on a small batch (measured 7e-4 relative; float32 dynamic mode
    itself is 1.5e-3 off a float64 run of the expert at batch 16)."""
    rng = np.random.RandomState(3)
    paddle.seed(3)
    mel = paddle.to_tensor(rng.uniform(-4, 4, (8, 1, 80, 16)).astype("float32"))
    face = paddle.to_tensor(rng.rand(8, 15, 48, 96).astype("float32"))
    label = paddle.to_tensor((rng.rand(8, 1) > 0.5).astype("float32"))
    plain = SyncNetColor(width_mult=0.25)
    fast = SyncNetColor(width_mult=0.25)
    fast.set_state_dict(plain.state_dict())
    use_onednn_convolutions(fast)
    runs = []
    for net, onednn in ((plain, False), (fast, True)):
        net.train()
        with onednn_kernels(onednn):
            loss = SyncLoss()(*net(mel, face), label)
            loss.backward()
        grads = {n: p.grad.numpy() for n, p in net.named_parameters()
                 if p.grad is not None and not n.endswith("conv_block.0.bias")}
        runs.append((float(loss), grads, {k: v.numpy() for k, v in net.state_dict().items()}))
    (loss_d, grads_d, state_d), (loss_f, grads_f, state_f) = runs
    np.testing.assert_allclose(loss_f, loss_d, rtol=1e-5)
    for key in state_d:
        if key.endswith("._mean") or key.endswith("._variance"):
            start = 1.0 if key.endswith("._variance") else 0.0
            assert np.abs(state_d[key] - start).max() > 1e-4, key   # the statistics moved
            np.testing.assert_allclose(state_f[key], state_d[key], rtol=1e-4, atol=1e-5,
                                       err_msg=key)
    assert set(grads_f) == set(grads_d) and grads_d
    difference = sum(((grads_f[n] - grads_d[n]) ** 2).sum() for n in grads_d)
    norm = sum((grads_d[n] ** 2).sum() for n in grads_d)
    assert np.sqrt(difference / norm) < 5e-3
