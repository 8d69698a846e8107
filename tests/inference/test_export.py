"""Exporting the generator to an inference program and running it with Paddle Inference."""

import os
import subprocess
import sys

import numpy as np
import paddle
import pytest

from ppgan.models.generators.wav2lip import Wav2Lip
from ppgan.utils.errors import WeightsError
from ppgan.inference.generator import StaticGenerator, export_generator
from ppgan.utils.weights import CHECKPOINT_FORMAT, save_weights_file
from tests import REPO_ROOT

REPO = str(REPO_ROOT)
SMALL = 0.25


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A small random generator (with non-trivial batch-norm statistics) and its export."""
    paddle.seed(11)
    net = Wav2Lip(SMALL)
    rng = np.random.RandomState(0)
    for key, value in net.state_dict().items():
        if key.endswith("_mean"):
            value.set_value(rng.uniform(-0.2, 0.2, value.shape).astype("float32"))
        elif key.endswith("_variance"):
            value.set_value(rng.uniform(0.5, 1.5, value.shape).astype("float32"))
    prefix = str(tmp_path_factory.mktemp("export") / "gen")
    program, params = export_generator(net, prefix)
    return net, prefix, program, params


def sample(n, seed):
    rng = np.random.RandomState(seed)
    return rng.randn(n, 1, 80, 16).astype("float32"), rng.rand(n, 6, 96, 96).astype("float32")


@pytest.mark.parametrize("use_onednn", [True, False])
def test_exported_program_matches_dynamic_mode(exported, use_onednn):
    net, prefix, program, params = exported
    assert os.path.isfile(program) and os.path.isfile(params)
    assert not [f for f in os.listdir(os.path.dirname(prefix)) if f.startswith(".")]  # staging gone
    static = StaticGenerator(prefix, threads=1, use_onednn=use_onednn)
    net.eval()
    for n, seed in ((3, 1), (1, 2)):  # the batch size is dynamic
        mels, faces = sample(n, seed)
        with paddle.no_grad():
            want = net(paddle.to_tensor(mels), paddle.to_tensor(faces)).numpy()
        got = static(mels, faces)
        assert got.shape == (n, 3, 96, 96)
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


def test_static_generator_bad_input(exported, tmp_path):
    _, prefix, _, _ = exported
    with pytest.raises(WeightsError, match="exported generator file not found.*tools/export_model.py"):
        StaticGenerator(str(tmp_path / "nothing"))
    static = StaticGenerator(prefix, threads=1)
    mels, faces = sample(2, 3)
    with pytest.raises(ValueError, match="same N"):
        static(mels[:1], faces)
    with pytest.raises(ValueError, match=r"faces \(N,6,96,96\)"):
        static(mels, faces[:, :3])


def run_export_tool(*args):
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", "export_model.py"), *args],
                          capture_output=True, text=True, cwd=REPO, stdin=subprocess.DEVNULL)


def test_export_tool_from_training_checkpoint(exported, tmp_path):
    net, _, _, _ = exported
    checkpoint = str(tmp_path / "ckpt.pdparams")
    save_weights_file({"format": CHECKPOINT_FORMAT, "nets": {"netG": net.state_dict()}}, checkpoint)
    prefix = str(tmp_path / "out" / "wav2lip")
    result = run_export_tool("--checkpoint", checkpoint, "--width-mult", str(SMALL), "--output", prefix)
    assert result.returncode == 0, result.stderr
    mels, faces = sample(2, 4)
    net.eval()
    with paddle.no_grad():
        want = net(paddle.to_tensor(mels), paddle.to_tensor(faces)).numpy()
    np.testing.assert_allclose(StaticGenerator(prefix, threads=1)(mels, faces), want, atol=1e-4, rtol=0)

    # without --width-mult the width is read from the tensors
    result = run_export_tool("--checkpoint", checkpoint, "--output", str(tmp_path / "auto" / "wav2lip"))
    assert result.returncode == 0, result.stderr
    np.testing.assert_allclose(StaticGenerator(str(tmp_path / "auto" / "wav2lip"), threads=1)(mels, faces),
                               want, atol=1e-4, rtol=0)

    # a width that does not fit these weights: one error line, nothing written
    bad_prefix = str(tmp_path / "bad" / "wav2lip")
    result = run_export_tool("--checkpoint", checkpoint, "--width-mult", "1.0", "--output", bad_prefix)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in result.stderr
    assert "ckpt.pdparams does not fit Wav2Lip" in errors[0]
    assert not os.path.exists(bad_prefix + ".json") and not os.path.exists(bad_prefix + ".pdiparams")


def test_export_from_config_block(exported, tmp_path):
    from ppgan.utils.errors import ConfigError
    from ppgan.apps.generator_loader import export_from_weights
    net, _, _, _ = exported
    weights = str(tmp_path / "flat.pdparams")
    paddle.save(net.state_dict(), weights)  # a flat PaddleGAN-style generator dict
    config = tmp_path / "gen.yaml"
    config.write_text(f"model:\n  generator:\n    name: Wav2Lip\n    width_mult: {SMALL}\n")
    program, params = export_from_weights(weights, str(tmp_path / "cfg" / "gen"), config=str(config))
    assert os.path.isfile(program) and os.path.isfile(params)
    config.write_text("model:\n  name: Wav2LipModel\n")
    with pytest.raises(ConfigError, match="no model.generator block"):
        export_from_weights(weights, str(tmp_path / "none" / "gen"), config=str(config))
    assert not os.path.exists(tmp_path / "none")
