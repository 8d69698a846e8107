"""PyTorch -> Paddle conversion: numerical parity with same-topology torch models, formats, CLI.

Skipped only when torch cannot be imported (CI installs it from requirements-dev.txt).
"""

import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

from ppgan.models.discriminators.syncnet import SyncNetColor
from ppgan.models.discriminators.wav2lip_disc_qual import Wav2LipDiscQual
from ppgan.models.generators.wav2lip import Wav2Lip
from ppgan.apps.convert_weights import convert_checkpoint
from ppgan.utils.convert import CONVERTERS
from ppgan.utils.errors import WeightsError
from ppgan.utils.weights import load_weights, read_weights_file
from tests import REPO_ROOT

torch = pytest.importorskip("torch")
REPO = str(REPO_ROOT)

from benchmarks.torch_reference import build_torch_network  # noqa: E402  (after the torch skip)

SMALL = 0.25
PADDLE_CLASSES = {"wav2lip": Wav2Lip, "syncnet": SyncNetColor, "disc": Wav2LipDiscQual}


def random_torch_network(arch, width_mult, seed=0, img_size=96):
    """A torch network with random weights AND random batch-norm statistics, in eval mode."""
    torch.manual_seed(seed)
    net = build_torch_network(arch, width_mult, img_size)
    with torch.no_grad():
        for module in net.modules():
            if arch == "disc" and isinstance(module, torch.nn.Conv2d):
                # He init keeps activations from fading through the deep unnormalised disc
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                module.bias.uniform_(-0.1, 0.1)
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.3, 0.3)
                module.running_mean.uniform_(-0.3, 0.3)
                module.running_var.uniform_(0.5, 2.0)
                module.num_batches_tracked.fill_(123)
    return net.eval()


def save_like_the_original(net, path, legacy=False):
    """The original training scripts' layout, with DataParallel's ``module.`` prefix."""
    state = {f"module.{k}": v for k, v in net.state_dict().items()}
    torch.save({"state_dict": state, "optimizer": {"state": {}, "param_groups": []},
                "global_step": 42, "global_epoch": 3}, path,
               _use_new_zipfile_serialization=not legacy)


def inputs(arch, seed=0, size=96):
    rng = np.random.RandomState(seed)
    if arch == "wav2lip":
        return (rng.randn(2, 3, 1, 80, 16).astype("float32"), rng.rand(2, 6, 3, size, size).astype("float32"))
    if arch == "syncnet":
        return (rng.randn(3, 1, 80, 16).astype("float32"), rng.rand(3, 15, size // 2, size).astype("float32"))
    return (rng.rand(2, 3, 2, size, size).astype("float32"),)


def run_torch(net, arrays):
    with torch.no_grad():
        out = net(*[torch.from_numpy(a) for a in arrays])
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


def run_paddle(net, arrays):
    with paddle.no_grad():
        out = net(*[paddle.to_tensor(a) for a in arrays])
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


@pytest.mark.parametrize("arch", ["wav2lip", "syncnet", "disc"])
def test_converted_networks_match_pytorch(tmp_path, arch):
    torch_net = random_torch_network(arch, SMALL)
    path = str(tmp_path / f"{arch}.pth")
    save_like_the_original(torch_net, path)
    paddle_net = PADDLE_CLASSES[arch](SMALL)
    state = convert_checkpoint(path, arch, network=paddle_net)
    assert not any("running" in k or "num_batches" in k or k.startswith("module.") for k in state)
    assert load_weights(paddle_net, state).ok
    paddle_net.eval()
    arrays = inputs(arch)
    expected, got = run_torch(torch_net, arrays), run_paddle(paddle_net, arrays)
    for want, have in zip(expected, got):
        assert want.shape == have.shape
        assert want.std() > 1e-3  # outputs actually vary, so the comparison means something
        np.testing.assert_allclose(have, want, atol=1e-4, rtol=0)
    if arch != "disc":  # control: without the running statistics the outputs differ
        stats_zeroed = {k: (np.zeros_like(v) if k.endswith("_mean") else v) for k, v in state.items()}
        load_weights(paddle_net, stats_zeroed)
        off = run_paddle(paddle_net, arrays)
        assert max(np.abs(o - w).max() for o, w in zip(off, expected)) > 1e-3


@pytest.mark.parametrize("arch", ["wav2lip", "syncnet", "disc"])
@pytest.mark.parametrize("size", [192, 288])
def test_larger_faces_match_the_torch_reference(tmp_path, arch, size):
    # The torch reference builds the extra stages from its own description: agreeing here makes
    # it a fair yardstick for the larger-face training-step benchmark (benchmarks/train_step.py).
    torch_net = random_torch_network(arch, 0.125, img_size=size)
    path = str(tmp_path / f"{arch}_{size}.pth")
    save_like_the_original(torch_net, path)
    paddle_net = PADDLE_CLASSES[arch](0.125, img_size=size)
    assert load_weights(paddle_net, convert_checkpoint(path, arch, network=paddle_net)).ok
    paddle_net.eval()
    arrays = inputs(arch, size=size)
    for want, have in zip(run_torch(torch_net, arrays), run_paddle(paddle_net, arrays)):
        assert want.shape == have.shape and want.std() > 1e-3
        np.testing.assert_allclose(have, want, atol=1e-4, rtol=0)


def test_legacy_format_converts_like_zip(tmp_path):
    torch_net = random_torch_network("syncnet", SMALL, seed=1)
    zip_path, legacy_path = str(tmp_path / "zip.pth"), str(tmp_path / "legacy.pth")
    save_like_the_original(torch_net, zip_path)
    save_like_the_original(torch_net, legacy_path, legacy=True)
    assert not open(legacy_path, "rb").read(2) == b"PK"
    network = SyncNetColor(SMALL)
    from_zip = convert_checkpoint(zip_path, "syncnet", network=network)
    from_legacy = convert_checkpoint(legacy_path, "syncnet", network=network)
    assert from_zip.keys() == from_legacy.keys()
    for key in from_zip:
        np.testing.assert_array_equal(from_zip[key], from_legacy[key])
    whole = read_weights_file(legacy_path)
    assert whole["global_step"] == 42 and whole["global_epoch"] == 3


def test_unusual_tensor_layouts_read_exactly(tmp_path):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    tensors = {"transposed": base.t(), "view": base[1:3, 2:], "half": base.half(),
               "bfloat16": base.to(torch.bfloat16), "long": torch.arange(5), "scalar": torch.tensor(2.5),
               "empty": torch.zeros(0, 3), "bool": torch.tensor([True, False])}
    for legacy in (False, True):
        path = str(tmp_path / f"layouts{legacy}.pth")
        torch.save(tensors, path, _use_new_zipfile_serialization=not legacy)
        back = read_weights_file(path)
        for key, tensor in tensors.items():
            want = tensor.float().numpy() if key == "bfloat16" else tensor.numpy()
            assert back[key].shape == want.shape and back[key].dtype == want.dtype, key
            np.testing.assert_array_equal(back[key], want, err_msg=key)


def test_published_size_networks_convert_key_for_key(tmp_path):
    torch_names = {"_mean": "running_mean", "_variance": "running_var"}
    for arch, entries in (("wav2lip", 302), ("syncnet", 186), ("disc", 28)):
        torch_state = build_torch_network(arch).state_dict()
        path = str(tmp_path / f"{arch}_full.pth")
        torch.save(torch_state, path)  # a bare state dict, no prefix
        state = convert_checkpoint(path, arch)  # checked against the published Paddle network
        assert len(state) == entries
        for key, value in state.items():
            prefix, _, leaf = key.rpartition(".")
            want = torch_state[f"{prefix}.{torch_names.get(leaf, leaf)}"].numpy()
            np.testing.assert_array_equal(value, want, err_msg=key)
        os.remove(path)


def test_wrong_arch_and_unknown_arch(tmp_path):
    path = str(tmp_path / "expert.pth")
    save_like_the_original(random_torch_network("syncnet", SMALL), path)
    with pytest.raises(WeightsError, match=r"expert\.pth does not fit --arch wav2lip .*check --arch"):
        convert_checkpoint(path, "wav2lip", network=Wav2Lip(SMALL))
    with pytest.raises(Exception, match="unknown weights converter name 'wav2lipp'"):
        convert_checkpoint(path, "wav2lipp")
    assert {"wav2lip", "syncnet", "disc"} <= set(CONVERTERS.names())


def run_tool(*args):
    # Block torch in the child as if it were not installed: conversion must work without it. (A
    # None in sys.modules would also block it, but breaks scipy's check for torch arrays.)
    code = ("import sys, runpy\n"
            "class NoTorch:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'torch':\n"
            "            raise ModuleNotFoundError(\"No module named 'torch'\", name=name)\n"
            "sys.meta_path.insert(0, NoTorch()); sys.argv = sys.argv[1:]\n"
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    return subprocess.run([sys.executable, "-c", code, os.path.join(REPO, "tools", "convert_weights.py"),
                           *args], capture_output=True, text=True, cwd=REPO, stdin=subprocess.DEVNULL)


def test_convert_tool_without_torch(tmp_path):
    src = str(tmp_path / "disc.pth")
    save_like_the_original(random_torch_network("disc", 1.0), src, legacy=True)
    out = str(tmp_path / "disc.pdparams")
    result = run_tool("--src", src, "--arch", "disc", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "28 entries" in result.stdout
    assert load_weights(Wav2LipDiscQual(), out).loaded == 28
    assert len(paddle.load(out)) == 28

    wrong = str(tmp_path / "wrong.pdparams")
    result = run_tool("--src", src, "--arch", "syncnet", "--out", wrong)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in result.stderr
    assert "disc.pth does not fit --arch syncnet" in errors[0] and not os.path.exists(wrong)
