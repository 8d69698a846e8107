"""Hostile outputs and corpora (issue 14): a file where the run folder belongs and a full disk
(item 4), a torn last line in train_log.jsonl (item 5), filelist entries outside the corpus
(item 12)."""

import errno
import io
import os

import numpy as np
import pytest

from ppgan.datasets.lrs2 import SyncNetDataset
from ppgan.engine.trainer import Trainer
from ppgan.utils import atomic
from ppgan.utils.errors import ConfigError, DataError, OutputError
from ppgan.utils.weights import save_weights_file

from tests.engine.test_engine import train_log
from tests.engine.toy import toy_config
from tests import REPO_ROOT


class _FullDisk(io.RawIOBase):
    """A file object whose writes fail with ENOSPC after ``room`` bytes, as on a full disk."""

    def __init__(self, stream, room):
        self.stream, self.room = stream, room

    def writable(self):
        return True

    def write(self, data):
        if len(data) > self.room:
            self.stream.write(bytes(data[:self.room]))
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.stream.write(data)

    def fileno(self):
        return self.stream.fileno()

    def close(self):
        self.stream.close()
        super().close()


@pytest.fixture
def full_disk(monkeypatch):
    """Make every ``atomic_write`` run out of space after 100 bytes."""
    real_fdopen = os.fdopen

    def fdopen(handle, mode="r", *args, **kwargs):
        stream = real_fdopen(handle, "wb")
        wrapped = _FullDisk(stream, 100)
        return io.TextIOWrapper(io.BufferedWriter(wrapped), encoding="utf-8") if "b" not in mode \
            else io.BufferedWriter(wrapped)

    monkeypatch.setattr(atomic.os, "fdopen", fdopen)


# ------------------------------------------------------------------ item 4
def test_output_dir_that_is_a_file_is_refused(tmp_path):
    blocker = tmp_path / "run"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="output_dir .*run is a file, not a folder"):
        Trainer(toy_config(blocker, {"total_iters": 1}))
    assert blocker.read_text() == "not a folder"


def test_full_disk_leaves_no_empty_or_replaced_files(tmp_path, full_disk):
    out = tmp_path / "run"
    with pytest.raises(OutputError, match=r"cannot write .*config.yaml: No space left on device; "
                                          r"free some space"):
        Trainer(toy_config(out, {"total_iters": 1})).write_config()  # what train() and --evaluate-only do first
    # No config.yaml (not even an empty one) and no temporary file. log.txt is written by the
    # plain logger, which this simulated disk does not fill: it may exist, but never empty.
    left = os.listdir(out)
    assert set(left) <= {"log.txt"} and all((out / name).stat().st_size > 0 for name in left)

    weights = tmp_path / "weights.pdparams"
    weights.write_bytes(b"the old file")
    with pytest.raises(OutputError, match="weights.pdparams: No space left"):
        save_weights_file({"w": np.zeros(1000, "float32")}, str(weights))
    assert weights.read_bytes() == b"the old file" and sorted(os.listdir(tmp_path)) == ["run", "weights.pdparams"]


def test_export_on_a_full_disk_fails_and_replaces_nothing(tmp_path, monkeypatch):
    import paddle

    from ppgan.inference.generator import export_generator
    from ppgan.models.generators.wav2lip import Wav2Lip

    real_save = paddle.jit.save

    def save_then_truncate(layer, path, **kwargs):  # Paddle's writer on a full disk
        real_save(layer, path, **kwargs)
        with open(path + ".pdiparams", "r+b") as f:
            f.truncate(4096)

    monkeypatch.setattr(paddle.jit, "save", save_then_truncate)
    folder = tmp_path / "inference"
    folder.mkdir()
    for suffix in (".json", ".pdiparams"):
        (folder / f"gen{suffix}").write_bytes(b"old export")
    with pytest.raises(OutputError, match=r"gen.pdiparams: only 4096 of at least \d+ bytes were "
                                          r"written \(is the disk full\?\)"):
        export_generator(Wav2Lip(0.125), str(folder / "gen"))
    assert sorted(os.listdir(folder)) == ["gen.json", "gen.pdiparams"]
    assert (folder / "gen.pdiparams").read_bytes() == b"old export"


# ------------------------------------------------------------------ item 5
def test_resume_drops_a_torn_last_log_line(tmp_path):
    out = tmp_path / "run"
    settings = {"validate.interval": 0, "snapshot_config.interval": 1, "snapshot_config.keep_last": 5}
    Trainer(toy_config(out, {"total_iters": 2, **settings})).train()
    log = out / "train_log.jsonl"
    with open(log, "a") as f:
        f.write('{"iter": 3, "lr": 0.00')  # what a kill mid-write leaves
    cfg = toy_config(out, {"total_iters": 3, **settings})
    trainer = Trainer(cfg)
    trainer.resume(str(out))
    trainer.train()
    assert [record["iter"] for record in train_log(out)] == [1, 2, 3]
    assert "dropped a torn last line" in (out / "log.txt").read_text()
    # damage anywhere else is named, not guessed at
    lines = log.read_text().splitlines()
    log.write_text("\n".join([lines[0], "garbage", *lines[1:]]) + "\n")
    resumed = Trainer(cfg)
    resumed.resume(str(out / "iter_2_checkpoint.pdparams"))
    from ppgan.utils.errors import TrainingError
    with pytest.raises(TrainingError, match="train_log.jsonl line 2 is not a training log record"):
        resumed.train()


# ------------------------------------------------------------------ item 12
def test_filelist_entries_outside_the_corpus_are_refused(synthetic_corpus, tmp_path):
    outside = tmp_path / "outside" / "clip"
    outside.mkdir(parents=True)
    inside = (synthetic_corpus / "train.txt").read_text().split()[0]
    for entry in ("../outside/clip", str(outside), f"{inside}/../../../outside/clip"):
        listing = tmp_path / "list.txt"
        listing.write_text(f"{inside}\n{entry}\n")
        with pytest.raises(DataError, match=f"lists '{entry}', which is outside the corpus folder"):
            SyncNetDataset(str(synthetic_corpus), str(listing))
    assert os.listdir(outside) == []  # nothing read or cached there
    listing.write_text(f"{inside}\n./{inside}\n")  # other spellings inside the corpus are fine
    assert len(SyncNetDataset(str(synthetic_corpus), str(listing)).clip_keys) == 2


# ------------------------------------------------------------------ item 16
def test_tools_print_only_their_own_error_line_and_known_warnings_are_silenced(tmp_path):
    import subprocess
    import sys

    root = str(REPO_ROOT)
    done = subprocess.run([sys.executable, os.path.join(root, "tools", "convert_weights.py"),
                           "--src", str(tmp_path / "absent.pth"), "--arch", "wav2lip",
                           "--out", str(tmp_path / "out.pdparams")],
                          capture_output=True, text=True, timeout=300, cwd=root)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"error: weights file not found: {tmp_path / 'absent.pth'}"]
    # each silenced message, raised as Paddle raises it, is hidden; any other warning stays
    from ppgan.utils.quiet import HARMLESS_WARNINGS
    script = "import ppgan, warnings\n" + "".join(
        f"warnings.warn_explicit({prefix + ' (details)'!r}, UserWarning, 'paddle/x.py', 1, "
        f"module='paddle.x')\n" for prefix, _ in HARMLESS_WARNINGS) + \
        "warnings.warn_explicit('something new', UserWarning, 'paddle/x.py', 1, module='paddle.x')\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=root, env=dict(os.environ, PYTHONPATH=root))
    assert done.returncode == 0 and done.stderr.strip() == "paddle/x.py:1: UserWarning: something new"
