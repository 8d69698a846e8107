"""PaddleGAN's inference flags on tools/wav2lip.py, the released-weights lookup, and GPEN face
enhancement checked against PaddleGAN's own GPEN (the ``ppgan`` package from PyPI) on random
weights."""

import os

import numpy as np
import pytest

from ppgan.utils.cli import run_main
from tests.integration.paddlegan_reference import reference_available, run_reference
from tests.apps.test_predictor import astronaut, make_speech, make_tiny_weights, write_image
from tests import REPO_ROOT, load_tool

REPO_ROOT = str(REPO_ROOT)
needs_reference = pytest.mark.skipif(not reference_available(),
                                     reason="PaddleGAN's ppgan is not in .venv/paddlegan-ref")


@pytest.fixture(scope="module")
def tool():
    return load_tool("wav2lip")


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compat_media")
    return {"weights": make_tiny_weights(folder / "tiny.pdparams"),
            "speech": make_speech(folder / "speech.wav", 0.4),
            "photo": write_image(folder / "astronaut.png", astronaut(128))}


@pytest.fixture
def weights_home(tmp_path, monkeypatch):
    """An empty home (no ~/.cache) and an empty $PPGAN_HOME: nothing cached unless a test puts it."""
    home, cache = tmp_path / "home", tmp_path / "ppgan_home"
    home.mkdir(), cache.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PPGAN_HOME", str(cache))
    return cache


def tiny_gpen_state(size=16, seed=0):
    """A random GPEN state dict with every parameter non-trivial (biases and noise weights too)."""
    import paddle
    from ppgan.models.generators.gpen import GPEN

    paddle.seed(seed)
    net = GPEN(size=size, style_dim=32, n_mlp=2, channel_multiplier=1)
    rng = np.random.default_rng(seed)
    for name, value in net.state_dict().items():
        if "kernel" not in name:
            scale = 1.0 if value.ndim >= 2 else 0.3
            value.set_value((rng.standard_normal(value.shape) * scale).astype(np.float32))
    return net


def run_tool(tool, capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        run_main(tool.main, argv)
    return exit_info.value.code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


# ------------------------------------------------------------------------------ flags

@pytest.mark.parametrize("argv, expected", [([], False), (["--static"], True), (["--static", "True"], True),
                                            (["--static", "False"], False), (["--static", "false"], False)])
def test_static_takes_a_bare_flag_and_true_or_false(tool, argv, expected):
    args = tool.parse_args(["--face", "f.mp4", "--audio", "a.wav"] + argv)
    assert args.static is expected


def test_static_rejects_other_words(tool):
    with pytest.raises(SystemExit):
        tool.parse_args(["--face", "f.mp4", "--audio", "a.wav", "--static", "maybe"])


def test_cpu_flag_overrides_the_device(tool, media, tmp_path, capsys):
    out = tmp_path / "cpu.mp4"
    code, errors = run_tool(tool, capsys, ["--face", media["photo"], "--audio", media["speech"],
                                           "--checkpoint_path", media["weights"], "--outfile", str(out),
                                           "--box", "30", "100", "30", "100", "--engine", "dynamic",
                                           "--device", "gpu", "--cpu"])
    assert code == 0, errors
    assert out.is_file()


def test_without_checkpoint_the_cached_release_is_used(tool, media, weights_home, tmp_path, capsys):
    import shutil

    shutil.copy(media["weights"], weights_home / "wav2lip_hq.pdparams")
    out = tmp_path / "cached.mp4"
    code, errors = run_tool(tool, capsys, ["--face", media["photo"], "--audio", media["speech"],
                                           "--outfile", str(out), "--box", "30", "100", "30", "100",
                                           "--engine", "dynamic"])
    assert code == 0, errors
    assert out.is_file()


def test_paddlegans_own_cache_folder_is_searched(media, weights_home, monkeypatch):
    import shutil
    from ppgan.utils.weights_home import find_released_weights

    monkeypatch.delenv("PPGAN_HOME")
    cache = weights_home.parent / "home" / ".cache" / "paddle" / "hapi" / "weights"
    cache.mkdir(parents=True)
    shutil.copy(media["weights"], cache / "wav2lip_hq.pdparams")
    assert find_released_weights("wav2lip_hq.pdparams") == str(cache / "wav2lip_hq.pdparams")


@pytest.mark.parametrize("flags, words", [
    ([], ["--checkpoint_path", "wav2lip_hq.pdparams", "PPGAN_HOME", "nothing is downloaded"]),
    (["--face_detector", "sfd"], ["--face_detector_weights", "s3fd_paddle.pdparams"]),
    (["--face_detector", "blazeface"], ["blazeface", "--face_detector sfd"]),
    (["--face_enhancement"], ["--face_enhancement_weights", "GPEN-512.pdparams"]),
])
def test_missing_release_weights_give_one_line(tool, media, weights_home, tmp_path, capsys, flags, words):
    if flags:  # the generator itself is given, so the line is about the detector / enhancer
        flags = flags + ["--checkpoint_path", media["weights"]]
    out = tmp_path / "results" / "out.mp4"
    code, errors = run_tool(tool, capsys, ["--face", media["photo"], "--audio", media["speech"],
                                           "--outfile", str(out)] + flags)
    assert code == 2 and len(errors) == 1 and errors[0].startswith("error: "), errors
    assert all(word in errors[0] for word in words), errors[0]
    assert not (tmp_path / "results").exists()


def test_sfd_is_s3fd_with_the_cached_release(weights_home):
    import paddle
    from ppgan.apps import Wav2LipPredictor
    from ppgan.faceutils.s3fd import S3FD, S3FDDetector
    from ppgan.utils.weights import save_weights_file

    paddle.seed(0)
    save_weights_file(S3FD().state_dict(), str(weights_home / "s3fd_paddle.pdparams"))
    predictor = Wav2LipPredictor(generator=lambda mels, faces: faces[:, 3:], face_detector="sfd",
                                 progress=False)
    assert isinstance(predictor.detector, S3FDDetector)


# ------------------------------------------------------------------------------ GPEN

def test_gpen_config_is_read_from_the_weights():
    from ppgan.apps.face_enhance import gpen_config
    from ppgan.models.generators.gpen import GPEN

    for config in (dict(size=16, style_dim=32, n_mlp=2, channel_multiplier=2),
                   dict(size=64, style_dim=16, n_mlp=3, channel_multiplier=1)):
        state = GPEN(**config).state_dict()
        assert gpen_config(state) == config


def test_blend_mask_fades_to_the_edges():
    from ppgan.apps.face_enhance import blend_mask

    mask = blend_mask(512)
    assert mask.shape == (512, 512) and mask[256, 256] > 0.999 and mask[0, 0] < 0.02
    assert np.allclose(mask, mask.T) and mask[256, 26] < 0.6 < mask[256, 60]


@needs_reference
def test_enhancer_steps_match_paddlegans_face_enhancement(tmp_path):
    """PaddleGAN's FaceEnhancement around a fixed stand-in network (the networks themselves are
    compared above): same mask, same scaling and blending (it rounds down to uint8 where we
    round)."""
    from ppgan.apps.face_enhance import FaceEnhancer
    from tests.integration.paddlegan_reference import stand_in_restore

    images = np.random.default_rng(3).uniform(0, 255, (2, 512, 512, 3)).astype(np.float32)
    np.savez(tmp_path / "job.npz", weights=np.array("unused"), images=images.transpose(0, 3, 1, 2),
             stand_in=np.array(1))
    done = run_reference(tmp_path / "job.npz", tmp_path / "out.npz")
    assert done.returncode == 0, done.stderr[-3000:]
    reference = np.load(tmp_path / "out.npz")
    enhancer = FaceEnhancer.__new__(FaceEnhancer)
    enhancer.net, enhancer.size, enhancer.batch_size = stand_in_restore, 512, 2
    from ppgan.apps.face_enhance import blend_mask
    enhancer.mask = blend_mask(512)[:, :, None]
    assert np.abs(enhancer.mask[:, :, 0] - reference["mask"]).max() < 1e-6
    assert np.abs(enhancer.restore(images) - reference["enhanced"]).max() <= 1.0 + 1e-3


@needs_reference
@pytest.mark.skipif(not os.environ.get("PPGAN_SLOW_TESTS"), reason="3 minutes on 2 cores: set PPGAN_SLOW_TESTS=1")
def test_512_enhancer_matches_paddlegans_face_enhancement(tmp_path):
    """PaddleGAN's FaceEnhancement at its only size (512, random weights): same mask, same
    restored faces for the same RGB input (it rounds down to uint8 where we round)."""
    import paddle
    from ppgan.apps.face_enhance import FaceEnhancer
    from ppgan.models.generators.gpen import GPEN

    paddle.seed(0)
    net = GPEN(size=512, style_dim=512, n_mlp=8, channel_multiplier=2)
    rng = np.random.default_rng(2)
    for name, value in net.state_dict().items():
        if name.endswith("noise.weight"):  # the released weights' noise strengths are not zero
            value.set_value(np.full(value.shape, 0.1, np.float32))
    paddle.save(net.state_dict(), str(tmp_path / "GPEN-512.pdparams"))
    del net
    images = rng.uniform(0, 255, (1, 512, 512, 3)).astype(np.float32)
    np.savez(tmp_path / "job.npz", weights=np.array(str(tmp_path / "GPEN-512.pdparams")),
             images=images.transpose(0, 3, 1, 2))
    done = run_reference(tmp_path / "job.npz", tmp_path / "out.npz")
    assert done.returncode == 0, done.stderr[-3000:]
    reference = np.load(tmp_path / "out.npz")
    enhancer = FaceEnhancer(str(tmp_path / "GPEN-512.pdparams"))
    assert np.abs(enhancer.mask[:, :, 0] - reference["mask"]).max() < 1e-6
    ours = enhancer.restore(images)
    assert np.abs(ours - reference["enhanced"]).max() <= 1.0 + 1e-3


@needs_reference
@pytest.mark.parametrize("size", [16, 64])
def test_gpen_matches_paddlegans_gpen(size, tmp_path):
    import paddle

    net = tiny_gpen_state(size)
    paddle.save(net.state_dict(), str(tmp_path / "gpen.pdparams"))
    faces = np.random.default_rng(1).uniform(-1, 1, (2 if size < 64 else 1, 3, size, size)).astype(np.float32)
    np.savez(tmp_path / "job.npz", config=np.array([size, 32, 2, 1]),
             weights=np.array(str(tmp_path / "gpen.pdparams")), faces=faces)
    done = run_reference(tmp_path / "job.npz", tmp_path / "out.npz")
    assert done.returncode == 0, done.stderr[-3000:]
    reference = np.load(tmp_path / "out.npz")
    ours_keys = sorted(f"{k}:{tuple(v.shape)}" for k, v in net.state_dict().items())
    assert ours_keys == list(reference["keys"])  # same names and shapes: released weights load strictly
    net.eval()
    with paddle.no_grad():
        ours = net(paddle.to_tensor(faces)).numpy()
    scale = np.abs(reference["restored"]).max()
    assert np.abs(ours - reference["restored"]).max() <= 1e-5 * scale


def test_face_enhancement_changes_only_the_face_box(tool, media, weights_home, tmp_path, capsys):
    from ppgan.utils.video import read_video
    from ppgan.utils.weights import save_weights_file

    save_weights_file(tiny_gpen_state(16).state_dict(), str(weights_home / "GPEN-512.pdparams"))
    outputs = {}
    for name, extra in (("plain", []), ("enhanced", ["--face_enhancement"])):
        out = tmp_path / f"{name}.mp4"
        code, errors = run_tool(tool, capsys, ["--face", media["photo"], "--audio", media["speech"],
                                               "--checkpoint_path", media["weights"], "--outfile",
                                               str(out), "--box", "30", "100", "30", "100",
                                               "--engine", "dynamic"] + extra)
        assert code == 0, errors
        outputs[name] = read_video(str(out)).astype(np.float32)
    difference = np.abs(outputs["enhanced"] - outputs["plain"]).mean(axis=(0, 3))
    inside = difference[40:90, 40:90].mean()
    outside = np.concatenate([difference[:20].ravel(), difference[110:].ravel()]).mean()
    assert inside > 5.0 and outside < 1.0, (inside, outside)
