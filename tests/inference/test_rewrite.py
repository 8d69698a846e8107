"""Export-time rewrites (ppgan.inference.rewrite): stride-1 transposed convs as exact convs."""

import numpy as np
import paddle
import pytest

from ppgan.inference.engine import StaticRunner, export_program
from ppgan.inference.rewrite import as_direct_conv, direct_convolutions, rewritable


@pytest.mark.parametrize("kernel, padding", [(3, 0), (3, 1), (5, 2), (4, 0), (3, 2)])
def test_stride_one_transposed_conv_equals_its_direct_conv(kernel, padding):
    paddle.seed(kernel * 10 + padding)
    transposed = paddle.nn.Conv2DTranspose(5, 7, kernel, 1, padding)
    assert rewritable(transposed)
    x = paddle.to_tensor(np.random.RandomState(0).randn(2, 5, 6, 9).astype("float32"))
    want, got = transposed(x).numpy(), as_direct_conv(transposed)(x).numpy()
    assert want.shape == got.shape == (2, 7, 6 + kernel - 1 - 2 * padding, 9 + kernel - 1 - 2 * padding)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_other_layers_are_left_alone():
    assert not rewritable(paddle.nn.Conv2DTranspose(4, 4, 3, 2, 1, output_padding=1))  # upsampling
    assert not rewritable(paddle.nn.Conv2DTranspose(4, 4, 3, 1, 0, groups=2))
    assert not rewritable(paddle.nn.Conv2DTranspose(4, 4, 3, 1, 0, dilation=2))
    assert not rewritable(paddle.nn.Conv2D(4, 4, 3))


def test_export_uses_the_rewrite_and_gives_the_network_back(tmp_path):
    from ppgan.models.generators.wav2lip import Wav2Lip

    paddle.seed(0)
    net = Wav2Lip(width_mult=0.125)
    net.eval()
    before = [type(layer).__name__ for layer in net.sublayers()]
    with direct_convolutions(net) as swapped:
        assert swapped == 1  # the decoder's 1x1 -> 3x3 block
        assert sum(isinstance(layer, paddle.nn.Conv2DTranspose) for layer in net.sublayers()) == 5
    assert [type(layer).__name__ for layer in net.sublayers()] == before
    prefix = str(tmp_path / "gen")
    export_program(net, prefix, {"mel": (1, 80, 16), "faces": (6, 96, 96)})
    assert b"conv2d_transpose" in open(prefix + ".json", "rb").read()  # the stride-2 ones remain
    rng = np.random.RandomState(1)
    mels, faces = rng.randn(2, 1, 80, 16).astype("float32"), rng.rand(2, 6, 96, 96).astype("float32")
    with paddle.no_grad():
        want = net(paddle.to_tensor(mels), paddle.to_tensor(faces)).numpy()
    np.testing.assert_allclose(StaticRunner(prefix, threads=1)(mels, faces), want, atol=1e-4, rtol=0)
