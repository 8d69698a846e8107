"""Faults around training and checkpoints (issue 14): NaN/Inf weights (item 1), damaged weight
bytes (item 9), temporary files left by kill -9 (item 14) and fsync before rename (item 17)."""

import glob
import os
import shutil

import numpy as np
import paddle
import pytest

from ppgan.datasets.frame_cache import UnreadableFrame
from ppgan.datasets.lrs2 import SyncNetDataset
from ppgan.engine import checkpoint as ckpt_io
from ppgan.engine.trainer import Trainer
from ppgan.models.builder import MODELS
from ppgan.models.discriminators.syncnet import SyncNetColor
from ppgan.utils import atomic
from ppgan.utils.errors import TrainingError, WeightsError
from ppgan.utils.weights import load_weights, read_weights_file, save_weights_file

from tests.engine.toy import ToyRegression, toy_config


# ------------------------------------------------------------------ item 1: NaN/Inf weights
@MODELS.register()
class NanWeightsFromIterationTwo(ToyRegression):
    """The toy whose first weight turns NaN after its second step while every loss stays finite
    (what relu does to NaN activations)."""

    calls = 0

    def train_iter(self, optimizers=None):
        losses = super().train_iter(optimizers)
        NanWeightsFromIterationTwo.calls += 1
        if NanWeightsFromIterationTwo.calls >= 2:
            weight = next(iter(self.net("net").parameters()))
            weight.set_value(np.full(weight.shape, np.nan, "float32"))
        return losses


def test_nan_weights_stop_training_before_any_checkpoint(tmp_path):
    out = tmp_path / "run"
    cfg = toy_config(out, {"total_iters": 4, "snapshot_config.interval": 1,
                           "snapshot_config.keep_last": 5, "validate.interval": 0,
                           "model.name": "NanWeightsFromIterationTwo"})
    with pytest.raises(TrainingError, match=r"weight net\..* is NaN/Inf at iteration 2 .*"
                                            r"iter_1_checkpoint"):
        Trainer(cfg).train()
    assert [os.path.basename(p) for p in glob.glob(str(out / "*.pdparams"))] == \
        ["iter_1_checkpoint.pdparams"]
    assert not glob.glob(str(out / ".*.tmp"))

    # the writer itself refuses, whoever calls it
    nets = {"netS": {"w": np.array([1.0, np.inf], "float32")}}
    target = tmp_path / "direct.pdparams"
    with pytest.raises(TrainingError, match="refusing to write .*netS has NaN/Inf weights"):
        ckpt_io.save_checkpoint(str(target), {"nets": nets})
    assert not target.exists()


def test_nan_weights_are_refused_by_every_loader(tmp_path):
    net = SyncNetColor(0.125)
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    first = next(iter(state))
    state[first] = state[first].copy()
    state[first].flat[3] = np.nan
    path = tmp_path / "diverged.pdparams"
    save_weights_file(state, str(path))
    with pytest.raises(WeightsError, match=f"diverged.pdparams holds NaN/Inf values in 1 of its "
                                           f"weights \\({first}\\)"):
        load_weights(SyncNetColor(0.125), str(path))


def test_a_non_finite_mel_cache_is_rebuilt_or_named(synthetic_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(synthetic_corpus, corpus)
    data = SyncNetDataset(str(corpus), "train", is_train=False)
    clip_dir = data.clip_dirs[0]
    good = np.load(os.path.join(clip_dir, "mel.npy"))
    bad = good.copy()
    bad[5, 7] = np.nan
    np.save(os.path.join(clip_dir, "mel.npy"), bad)
    rebuilt = SyncNetDataset(str(corpus), "train", is_train=False).mel(0)
    assert np.isfinite(rebuilt).all() and rebuilt.shape == good.shape
    assert np.isnan(np.load(os.path.join(clip_dir, "mel.npy"))).any()  # the corpus is not written
    SyncNetDataset(str(corpus), "train", is_train=False, cache_dir=str(corpus)).mel(0)
    assert np.isfinite(np.load(os.path.join(clip_dir, "mel.npy"))).all()  # written back when asked
    np.save(os.path.join(clip_dir, "mel.npy"), bad)
    os.remove(os.path.join(clip_dir, "audio.wav"))
    with pytest.raises(UnreadableFrame, match="mel.npy: the mel cache holds NaN/Inf"):
        SyncNetDataset(str(corpus), "train", is_train=False).mel(0)


# ------------------------------------------------------------------ item 9: checksums
def test_damaged_weight_bytes_in_our_checkpoints_are_detected(tmp_path):
    weights = np.arange(4096, dtype="float32")
    path = tmp_path / "ckpt.pdparams"
    ckpt_io.save_checkpoint(str(path), {"nets": {"netS": {"w": weights}}, "iteration": 3})
    assert read_weights_file(str(path))["checksum"].startswith("sha256:")
    data = bytearray(path.read_bytes())
    where = bytes(data).find(weights.tobytes()[4000:4016])
    assert where > 0
    data[where + 2] ^= 0x10  # one flipped bit inside the weights: the pickle still parses
    damaged = tmp_path / "damaged.pdparams"
    damaged.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="damaged.pdparams is damaged: its weights no longer "
                                           "match the checksum"):
        read_weights_file(str(damaged))
    # a foreign file (no checksum) with the same flip loads as before
    flat = tmp_path / "flat.pdparams"
    paddle.save({"w": paddle.to_tensor(weights)}, str(flat))
    data = bytearray(flat.read_bytes())
    data[bytes(data).find(weights.tobytes()[4000:4016]) + 2] ^= 0x10
    flat.write_bytes(bytes(data))
    assert read_weights_file(str(flat))["w"].shape == (4096,)


# ------------------------------------------------------------------ items 14 and 17
def test_checkpoint_writes_fsync_before_rename_and_stale_temps_go(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd)))
    monkeypatch.setattr(atomic.os, "replace",
                        lambda a, b: (events.append("replace"), real_replace(a, b)))
    save_weights_file({"w": np.zeros(3, "float32")}, str(tmp_path / "w.pdparams"))
    assert events == ["fsync", "replace", "fsync"]  # data, rename, folder
    monkeypatch.undo()

    out = tmp_path / "run"
    out.mkdir()
    # what kill -9 leaves mid-write, plus files that are not ours
    stale = [out / ".iter_5_checkpoint.pdparams.k3j2x_1a.tmp", out / ".best.pdparams.zz9q.tmp"]
    kept = [out / ".notes.txt.abc.tmp", out / "iter_5_checkpoint.pdparams.bak"]
    for path in stale + kept:
        path.write_bytes(b"partial")
    Trainer(toy_config(out, {"total_iters": 1, "validate.interval": 0})).train()
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept)
    assert (out / "iter_1_checkpoint.pdparams").exists()


# ------------------------------------------------------------------ items 10, 11 and 13
def test_resuming_a_finished_run_says_so(tmp_path):
    from ppgan.utils.errors import ConfigError
    cfg = toy_config(tmp_path / "run", {"total_iters": 1, "validate.interval": 0})
    Trainer(cfg).train()
    again = Trainer(cfg)
    again.resume(str(tmp_path / "run"))
    with pytest.raises(ConfigError, match="already at iteration 1 of total_iters 1: nothing to "
                                          "train; raise total_iters"):
        again.train()


def test_demo_width_exports_and_expert_files_are_named(tmp_path):
    from ppgan.apps.generator_loader import export_from_weights, generator_with_spec
    from ppgan.models.generators.wav2lip import Wav2Lip
    # item 11: the width is read from the weights, no flag needed
    path = tmp_path / "demo_width.pdparams"
    save_weights_file(Wav2Lip(0.25).state_dict(), str(path))
    program, params = export_from_weights(str(path), str(tmp_path / "out" / "gen"))
    assert os.path.isfile(program) and os.path.isfile(params)
    # an expert's training checkpoint given as a generator: one short line naming the file
    expert = tmp_path / "expert.pdparams"
    ckpt_io.save_checkpoint(str(expert), {
        "nets": {"netS": SyncNetColor(0.125).state_dict()},
        "config": {"model": {"name": "SyncNetModel"}}})
    with pytest.raises(WeightsError, match=r"expert.pdparams holds a training checkpoint of "
                                           r"SyncNetModel \(nets netS\), not a Wav2Lip generator") as err:
        generator_with_spec(read_weights_file(str(expert)), str(expert))
    assert len(str(err.value)) < 400
