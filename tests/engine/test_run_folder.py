"""The run folder: --resume continues with the stored config, Ctrl-C saves a checkpoint, one
continuous VisualDL log across resumes, --evaluate-only in its own subfolder, validate.final."""

import os
import signal

import numpy as np
import pytest

from ppgan.engine import hooks as hooks_module
from ppgan.engine import trainer as trainer_module
from ppgan.engine.run import changed_keys, run
from ppgan.engine.signals import TrainingInterrupted
from ppgan.utils.errors import WeightsError
from ppgan.utils.weights import read_weights_file

from tests.engine.toy import write_toy_config

TOTAL = 4
# validate.interval beyond the run and final: false -> no evaluation at all
SETTINGS = {"total_iters": TOTAL, "validate.interval": 100, "validate.final": False,
            "snapshot_config.interval": 2, "snapshot_config.keep_last": 5,
            "enable_visualdl": True}


class SignalAt(hooks_module.Hook):
    """Send this process ``signum`` when iteration ``at`` has finished (as Ctrl-C would)."""

    def __init__(self, at, signum):
        self.at, self.signum = at, signum

    def after_iter(self, trainer):
        if trainer.state.iteration == self.at:
            os.kill(os.getpid(), self.signum)


def nets(path):
    return read_weights_file(str(path))["nets"]


def assert_same_nets(a, b):
    assert a.keys() == b.keys()
    for name in a:
        for key in a[name]:
            np.testing.assert_array_equal(np.asarray(a[name][key]), np.asarray(b[name][key]),
                                          err_msg=f"{name}.{key}")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run of the toy model, and one stopped by SIGINT at iteration 3 then
    resumed without -o."""
    root = tmp_path_factory.mktemp("runs")
    straight, broken = root / "straight", root / "broken"
    config = write_toy_config(root / "toy.yaml", root / "unused", SETTINGS)
    run(config, output_dir=str(straight), device="cpu")

    build_hooks = trainer_module.Trainer._build_hooks
    patch = pytest.MonkeyPatch()
    patch.setattr(trainer_module.Trainer, "_build_hooks",
                  lambda self: build_hooks(self) + [SignalAt(3, signal.SIGINT)])
    with pytest.raises(TrainingInterrupted, match="SIGINT at iteration 3"):
        run(config, output_dir=str(broken), device="cpu")
    patch.undo()
    interrupted = sorted(os.listdir(broken))
    config_before = (broken / "config.yaml").read_text()
    # a failed resume attempt (weights that do not fit the changed width) leaves config.yaml alone
    with pytest.raises(WeightsError):
        run(resume=str(broken), overrides=["model.hidden=32"], device="cpu")
    assert (broken / "config.yaml").read_text() == config_before
    run(resume=str(broken), device="cpu")  # no -c, no -o: the stored config
    return {"straight": straight, "broken": broken, "interrupted": interrupted}


def test_ctrl_c_writes_a_checkpoint_at_the_current_iteration(runs):
    assert "iter_3_checkpoint.pdparams" in runs["interrupted"]
    assert "iter_4_checkpoint.pdparams" not in runs["interrupted"]
    log = (runs["broken"] / "log.txt").read_text()
    assert "SIGINT received" in log and "resumed from" in log


def test_resume_without_overrides_matches_the_uninterrupted_run(runs):
    assert_same_nets(nets(runs["straight"] / "iter_4_checkpoint.pdparams"),
                     nets(runs["broken"] / "iter_4_checkpoint.pdparams"))


def test_visualdl_shows_one_continuous_run(runs):
    from visualdl import LogReader

    folder = runs["broken"] / "visualdl"
    files = [f for f in os.listdir(folder) if "vdlrecords" in f]
    assert files == ["vdlrecords.run.log"]
    reader = LogReader(file_path=str(folder / files[0]))
    tags = reader.get_tags()
    loss_tag = next(t for t in tags["scalar"] if t.startswith("train/") and "loss" in t)
    steps = [record.id for record in reader.get_data("scalar", loss_tag)]
    assert steps == list(range(1, TOTAL + 1))


def test_no_evaluation_makes_the_last_checkpoint_best(runs):
    for name in ("straight", "broken"):
        folder = runs[name]
        log = (folder / "log.txt").read_text()
        assert "eval at iter" not in log  # validate.final: false skipped the last-iteration eval
        assert "best.pdparams is the last checkpoint (iteration 4)" in log
        assert_same_nets(nets(folder / "best.pdparams"), nets(folder / "iter_4_checkpoint.pdparams"))


def test_evaluate_only_writes_its_own_folder(runs):
    folder = runs["broken"]
    config = (folder / "config.yaml").read_bytes()
    vdl = {f: os.path.getmtime(folder / "visualdl" / f) for f in os.listdir(folder / "visualdl")}
    run(resume=str(folder / "iter_4_checkpoint.pdparams"), evaluate_only=True, device="cpu")
    out = folder / "eval" / "iter_4_checkpoint"
    assert (out / "eval_metrics.json").is_file() and (out / "config.yaml").is_file()
    assert (folder / "config.yaml").read_bytes() == config
    assert {f: os.path.getmtime(folder / "visualdl" / f) for f in os.listdir(folder / "visualdl")} == vdl


def test_changed_keys_lists_every_difference():
    old = {"a": 1, "b": {"c": 2, "d": 3}}
    assert changed_keys(old, {"a": 1, "b": {"c": 5, "d": 3}, "e": 0}) == ["b.c: 2 -> 5", "e: '(unset)' -> 0"]
    assert changed_keys(old, old) == []
