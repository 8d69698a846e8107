"""Self-describing checkpoints: the inference spec round trip, flag-free export, and one
alignment for the CLI and --evaluate-only."""

import argparse
import os
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest

from ppgan.engine.checkpoint import FORMAT, VERSION
from ppgan.inference.spec import (
    SPEC_KEY, check_spec, mel_parameters, reference_spec, spec_from_config, spec_of_weights)
from ppgan.utils.config import load_config
from ppgan.utils.errors import ConfigError, WeightsError
from ppgan.utils.weights import read_weights_file, save_weights_file
from tests import REPO_ROOT

REPO = str(REPO_ROOT)
DEMO_WAV2LIP = os.path.join(REPO, "configs", "demo", "wav2lip.yaml")
WIDTH = 0.125


def tiny_config(offset=-1, corpus="data/none"):
    return load_config(DEMO_WAV2LIP, [f"model.generator.width_mult={WIDTH}",
                                      "model.discriminator.width_mult=0.125",
                                      f"dataset.train.mel_frame_offset={offset}",
                                      f"dataset.test.mel_frame_offset={offset}",
                                      f"dataset.train.dataroot={corpus}",
                                      f"dataset.test.dataroot={corpus}"])


def write_checkpoint(path, cfg):
    """Our checkpoint layout (the parts inference reads) with a random tiny generator."""
    from ppgan.models.generators.wav2lip import Wav2Lip
    from ppgan.utils.config import to_plain

    paddle.seed(1)
    net = Wav2Lip(width_mult=WIDTH)
    save_weights_file({"format": FORMAT, "version": VERSION, "iteration": 3,
                       "nets": {"netG": net.state_dict()}, "config": to_plain(cfg),
                       SPEC_KEY: spec_from_config(cfg)}, str(path))
    return net


def test_spec_from_config_says_everything_inference_needs():
    spec = spec_from_config(tiny_config(offset=-1))
    assert spec["generator"]["name"] == "Wav2Lip" and spec["generator"]["width_mult"] == WIDTH
    assert spec["img_size"] == 96 and spec["generator"]["img_size"] == 96
    assert spec["mel_frame_offset"] == -1 and spec["fps"] == 25.0
    assert spec["expert"] == {"width_mult": 0.125, "img_size": 96}
    assert spec["mel"] == mel_parameters() and spec["source"] == "training"
    assert spec_from_config(tiny_config(offset=0))["mel_frame_offset"] == 0
    expert_run = spec_from_config(load_config(os.path.join(REPO, "configs", "demo", "syncnet.yaml")))
    assert expert_run["generator"] is None and expert_run["expert"]["width_mult"] == 0.25


def test_spec_round_trip_through_checkpoint_and_export(tmp_path):
    from ppgan.apps.generator_loader import load_generator
    from ppgan.inference.generator import StaticGenerator

    cfg = tiny_config(offset=-1)
    checkpoint = tmp_path / "iter_3_checkpoint.pdparams"
    net = write_checkpoint(checkpoint, cfg)
    stored = spec_of_weights(read_weights_file(str(checkpoint)), str(checkpoint))
    assert stored == spec_from_config(cfg)
    # the generator is rebuilt at its width from the spec alone
    generator = load_generator(str(checkpoint), engine="dynamic")
    assert generator.spec == stored and generator.img_size == 96

    # export without --width-mult or -c: the program carries the spec and the config
    prefix = str(tmp_path / "exported" / "gen")
    result = subprocess.run([sys.executable, os.path.join(REPO, "tools", "export_model.py"),
                             "--checkpoint", str(checkpoint), "--output", prefix],
                            capture_output=True, text=True, cwd=REPO, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    static = StaticGenerator(prefix, threads=1)
    assert static.spec == stored and static.config["model"]["generator"]["width_mult"] == WIDTH
    rng = np.random.RandomState(0)
    mels, faces = rng.randn(2, 1, 80, 16).astype("float32"), rng.rand(2, 6, 96, 96).astype("float32")
    net.eval()
    with paddle.no_grad():
        want = net(paddle.to_tensor(mels), paddle.to_tensor(faces)).numpy()
    np.testing.assert_allclose(static(mels, faces), want, atol=1e-4, rtol=0)
    assert load_generator(prefix).spec == stored  # the exported program as --checkpoint_path


def test_foreign_files_get_the_reference_spec(tmp_path):
    from ppgan.apps.generator_loader import load_generator
    from ppgan.models.generators.wav2lip import Wav2Lip

    flat = tmp_path / "wav2lip_hq_like.pdparams"
    paddle.save(Wav2Lip(width_mult=0.25).state_dict(), str(flat))  # PaddleGAN's flat layout
    spec = load_generator(str(flat), engine="dynamic").spec
    assert spec == reference_spec(0.25)
    assert spec["mel_frame_offset"] == 0 and spec["generator"]["width_mult"] == 0.25


def test_a_spec_this_build_cannot_run_is_refused():
    spec = spec_from_config(tiny_config())
    with pytest.raises(WeightsError, match="other mel parameters \\(hop_size\\)"):
        check_spec(dict(spec, mel=dict(spec["mel"], hop_size=160)), "ckpt.pdparams")
    with pytest.raises(WeightsError, match="another version"):
        check_spec(dict(spec, version=99), "ckpt.pdparams")


class Generated(Exception):
    """Raised by the patched generation step once the predictor's alignment is known."""


def evaluate_only_offset(weights, corpus, monkeypatch, tmp_path):
    """The mel offset --evaluate-only generates with for ``weights`` (config trains at -1)."""
    import ppgan.apps.evaluate as evaluation
    from ppgan.engine.run import run
    from ppgan.models.discriminators.syncnet import SyncNetColor

    expert = tmp_path / "expert.pdparams"
    save_weights_file(SyncNetColor(width_mult=0.125).state_dict(), str(expert))
    seen = []

    def stop(predictor, *args, **kwargs):
        seen.append(predictor.mel_frame_offset)
        raise Generated

    monkeypatch.setattr(evaluation, "generate_split_videos", stop)
    overrides = [f"model.generator.width_mult={WIDTH}", "model.discriminator.width_mult=0.125",
                 f"dataset.train.dataroot={corpus}", f"dataset.test.dataroot={corpus}",
                 "dataset.train.mel_frame_offset=-1", "dataset.test.mel_frame_offset=-1",
                 f"model.syncnet_weights={expert}", "dataset.test.batch_size=2",
                 "validate.max_eval_steps=1", "enable_visualdl=false"]
    with pytest.raises(Generated):
        run(DEMO_WAV2LIP, overrides, load=str(weights), evaluate_only=True,
            output_dir=str(tmp_path / "run"), device="cpu")
    return seen[0]


def cli_offset(weights):
    """The mel offset tools/wav2lip.py generates with for ``weights`` (its own option parsing)."""
    from ppgan.apps.predictor_args import add_predictor_arguments, predictor_options
    from ppgan.apps.wav2lip_predictor import Wav2LipPredictor

    args = add_predictor_arguments(argparse.ArgumentParser()).parse_args(
        ["--checkpoint_path", str(weights), "--engine", "dynamic"])
    return Wav2LipPredictor(**predictor_options(args), progress=False).mel_frame_offset


def test_cli_and_evaluate_only_generate_at_the_same_alignment(synthetic_corpus, monkeypatch, tmp_path):
    from ppgan.models.generators.wav2lip import Wav2Lip

    ours = tmp_path / "ours.pdparams"
    write_checkpoint(ours, tiny_config(offset=-1, corpus=synthetic_corpus))
    assert cli_offset(ours) == evaluate_only_offset(ours, synthetic_corpus, monkeypatch, tmp_path) == -1
    # a PaddleGAN-style file: the reference inference alignment in both, whatever the config says
    flat = tmp_path / "flat.pdparams"
    paddle.save(Wav2Lip(width_mult=WIDTH).state_dict(), str(flat))
    assert cli_offset(flat) == evaluate_only_offset(flat, synthetic_corpus, monkeypatch, tmp_path) == 0


def test_a_still_face_runs_at_the_checkpoints_fps_unless_told(tmp_path):
    from ppgan.apps import Wav2LipPredictor
    from ppgan.models.generators.wav2lip import Wav2Lip
    from ppgan.utils.audio import save_wav
    from ppgan.utils.config import to_plain

    cfg = tiny_config()
    checkpoint = tmp_path / "iter_3_checkpoint.pdparams"
    paddle.seed(1)
    save_weights_file({"format": FORMAT, "version": VERSION, "iteration": 3,
                       "nets": {"netG": Wav2Lip(width_mult=WIDTH).state_dict()},
                       "config": to_plain(cfg), SPEC_KEY: dict(spec_from_config(cfg), fps=30.0)},
                      str(checkpoint))
    image = tmp_path / "face.png"
    cv2.imwrite(str(image), np.full((120, 120, 3), 128, np.uint8))
    audio = tmp_path / "speech.wav"
    save_wav(str(audio), np.random.RandomState(0).uniform(-0.3, 0.3, 16000).astype("float32"), 16000)
    options = dict(checkpoint_path=str(checkpoint), box=(10, 110, 10, 110), engine="dynamic",
                   progress=False)
    trained_rate = Wav2LipPredictor(**options).run(str(image), str(audio), str(tmp_path / "a.mp4"))
    assert trained_rate.fps == 30.0 and trained_rate.frames == 30    # 1 s of audio at 30 fps
    told = Wav2LipPredictor(fps=20, **options).run(str(image), str(audio), str(tmp_path / "b.mp4"))
    assert told.fps == 20.0 and told.frames == 20
    with pytest.raises(ConfigError, match="--fps must be between"):
        Wav2LipPredictor(fps=0.1, **options)
