"""The trainer: exact resume, checkpoints, hooks, the NaN guard, static mode, config checks.

Trainer mechanics run on the toy model of ``toy.py`` (seconds); the lip-sync models here test
what is theirs: the loader workers on real clips, the sync-weight switch, oneDNN convolutions and
the expert learning."""

import glob
import json
import os

import cv2
import numpy as np
import paddle
import pytest

from ppgan.engine.checkpoint import load_checkpoint
from ppgan.engine.hooks import make_grid
from ppgan.engine.batches import EpochBatches
from ppgan.engine.setup import check_config
from ppgan.engine.trainer import Trainer
from ppgan.models.builder import EVALUATORS, MODELS
from ppgan.models.discriminators.syncnet import SyncNetColor
from ppgan.solver import build_lr_scheduler, build_optimizers
from ppgan.utils.config import load_config
from ppgan.utils.errors import ConfigError, TrainingError, WeightsError
from ppgan.utils.weights import save_weights_file

from tests.engine.toy import ToyRegression, toy_config, write_toy_config
from tests import REPO_ROOT

REPO = str(REPO_ROOT)
TIMING_KEYS = ("batch_cost", "reader_cost", "ips")


def demo_config(name, corpus, out, overrides=()):
    """A demo config pointed at the test corpus, tiny and quiet; returns (cfg, path)."""
    path = os.path.join(REPO, "configs", "demo", f"{name}.yaml")
    base = [f"dataset.train.dataroot={corpus}", f"dataset.test.dataroot={corpus}",
            f"output_dir={out}", "enable_visualdl=false", "log_config.interval=1",
            "validate.max_eval_steps=1", "dataset.train.batch_size=4", "dataset.test.batch_size=4"]
    return load_config(path, base + list(overrides)), path


def syncnet_config(corpus, out, overrides=()):
    # Paddle's default init, not the demo's Kaiming: these tests were sized for its small weights.
    return demo_config("syncnet", corpus, out, ["model.syncnet.width_mult=0.125",
                                                "model.init_type=null"] + list(overrides))


def train_log(out):
    with open(os.path.join(out, "train_log.jsonl")) as f:
        return [{k: v for k, v in json.loads(line).items() if k not in TIMING_KEYS} for line in f]


def final_state(out, iteration):
    ckpt = load_checkpoint(os.path.join(out, f"iter_{iteration}_checkpoint.pdparams"))
    return ckpt


def assert_same_tree(a, b, where="checkpoint"):
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for key in a:
            assert_same_tree(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b, err_msg=where)
    else:
        assert a == b, where


# ---------------------------------------------------------------------------- exact resume
def test_resume_reaches_the_same_weights_losses_and_lr(tmp_path):
    Trainer(toy_config(tmp_path / "straight", {"enable_visualdl": True})).train()
    Trainer(toy_config(tmp_path / "split", {"total_iters": 3})).train()
    resumed = Trainer(toy_config(tmp_path / "split"))
    resumed.resume(str(tmp_path / "split"))  # a folder: its newest checkpoint (iter 3)
    assert resumed.iteration == 3
    resumed.train()

    a, b = train_log(tmp_path / "straight"), train_log(tmp_path / "split")
    assert [r["iter"] for r in a] == [1, 2, 3, 4, 5, 6] and a == b
    assert len({r["lr"] for r in a}) > 2                       # the schedule really moved
    end_a, end_b = final_state(tmp_path / "straight", 6), final_state(tmp_path / "split", 6)
    for key in ("nets", "optimizers", "lr_schedulers", "model_state"):
        assert_same_tree(end_a[key], end_b[key], key)
    # keep_last=1: only the newest periodic checkpoint stays, plus best.pdparams.
    names = sorted(os.path.basename(p)
                   for p in glob.glob(str(tmp_path / "straight" / "*.pdparams")))
    assert names == ["best.pdparams", "iter_6_checkpoint.pdparams"]
    best = load_checkpoint(str(tmp_path / "straight" / "best.pdparams"))
    assert best["hooks"]["CheckpointHook"]["best"]["iter"] in (3, 6)
    assert best["metrics"]["mse_loss"] == best["hooks"]["CheckpointHook"]["best"]["value"]

    from visualdl import LogReader
    record = glob.glob(str(tmp_path / "straight" / "visualdl" / "*"))[0]
    steps = [r.id for r in LogReader(file_path=record).get_data("scalar", "train/mse_loss")]
    assert steps == [1, 2, 3, 4, 5, 6]                          # the real global step


def test_loader_workers_train_exactly_as_the_in_process_loader(synthetic_corpus, tmp_path):
    # Same windows, same per-sample draws, same order: 2 worker processes change nothing but speed.
    runs = {}
    for workers in (0, 2):
        out = str(tmp_path / f"workers{workers}")
        cfg, path = syncnet_config(synthetic_corpus, out, [
            "total_iters=4", "validate.interval=4", "snapshot_config.interval=4",
            f"dataset.train.num_workers={workers}", f"dataset.test.num_workers={workers}"])
        Trainer(cfg, path).train()
        runs[workers] = (train_log(out), final_state(out, 4)["nets"])
    assert [r["iter"] for r in runs[0][0]] == [1, 2, 3, 4]
    assert runs[0][0] == runs[2][0]
    assert_same_tree(runs[0][1], runs[2][1], "nets")


def test_epoch_batches_resume_mid_epoch_and_across_epochs():
    class Numbers(paddle.io.Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return np.array([i], dtype="int64")

    def loader():
        sampler = paddle.io.DistributedBatchSampler(Numbers(), 2, shuffle=True, drop_last=True)
        return paddle.io.DataLoader(Numbers(), batch_sampler=sampler)

    def take(batches, n):
        return [next(batches).numpy().ravel().tolist() for _ in range(n)]

    full = take(EpochBatches(loader(), 0), 13)
    assert take(EpochBatches(loader(), 7), 6) == full[7:]       # epoch 1 (5 batches/epoch)
    assert sorted(sum(full[:5], [])) == list(range(10)) and full[:5] != full[5:10]


def test_truncated_checkpoint_is_reported(tmp_path):
    trainer = Trainer(toy_config(tmp_path / "run", {"total_iters": 1}))
    trainer.train()
    ckpt = tmp_path / "run" / "iter_1_checkpoint.pdparams"
    data = ckpt.read_bytes()
    cut = tmp_path / "cut.pdparams"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="corrupt or truncated"):
        trainer.resume(str(cut))
    weights_only = tmp_path / "flat.pdparams"
    save_weights_file(ToyRegression().net("net").state_dict(), str(weights_only))
    with pytest.raises(WeightsError, match="use --load"):
        trainer.resume(str(weights_only))
    trainer.load(str(weights_only))                              # a flat file is fine for --load


# ---------------------------------------------------------------------------- sync-weight schedule
def test_sync_weight_switch_survives_resume(synthetic_corpus, tmp_path):
    paddle.seed(3)
    expert = tmp_path / "expert.pdparams"
    save_weights_file(SyncNetColor(0.125).state_dict(), str(expert))
    common = [f"model.syncnet_weights={expert}", "model.discriminator.width_mult=0.125",
              "dataset.train.batch_size=2", "dataset.test.batch_size=2",
              "model.syncnet_wt=0.0", "model.syncnet_wt_target=0.01",  # the reference schedule
              "dataset.train.syncnet_T=5",                  # its 5-frame windows (the demo trains on 1)
              "model.syncnet_wt_threshold=100.0",           # any eval loss switches it on
              "validate.interval=2", "snapshot_config.interval=2", "log_config.visual_interval=2"]
    first, path = demo_config("wav2lip", synthetic_corpus, str(tmp_path / "g"),
                              common + ["total_iters=2", "enable_visualdl=true"])
    trainer = Trainer(first, path)
    trainer.train()
    assert trainer.model.syncnet_wt == 0.01
    grid = cv2.imread(str(tmp_path / "g" / "visual" / "iter_2.png"))
    assert grid.shape == (2 * 4 * 96, 5 * 96, 3)     # 2 clips x (ref, masked, generated, target)
    from visualdl import LogReader
    record = glob.glob(str(tmp_path / "g" / "visualdl" / "*"))[0]
    assert "train/samples" in LogReader(file_path=record).get_tags()["image"]
    ckpt = load_checkpoint(str(tmp_path / "g" / "iter_2_checkpoint.pdparams"))
    assert ckpt["model_state"]["syncnet_wt"] == 0.01 and ckpt["metrics"]["syncnet_wt"] == 0.01
    assert set(ckpt["nets"]) == {"netG", "netD"} and set(ckpt["optimizers"]) == {"optimizer_G"}

    second, _ = demo_config("wav2lip", synthetic_corpus, str(tmp_path / "g"),
                            common + ["total_iters=3"])
    resumed = Trainer(second, path)
    assert resumed.model.syncnet_wt == 0.0
    resumed.resume(str(tmp_path / "g" / "iter_2_checkpoint.pdparams"))
    assert resumed.model.syncnet_wt == 0.01
    resumed.train()
    log = train_log(tmp_path / "g")
    assert [r["syncnet_wt"] for r in log] == [0.0, 0.0, 0.01]   # iteration 3 used the switch


# ---------------------------------------------------------------------------- NaN guard
@MODELS.register()
class NanFromIterationThree(ToyRegression):
    """The toy whose targets turn NaN from its third batch on (a real NaN loss)."""

    calls = 0

    def setup_input(self, batch):
        super().setup_input(batch)
        NanFromIterationThree.calls += 1
        if NanFromIterationThree.calls >= 3:
            self.y = self.y * float("nan")


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    out = tmp_path / "nan"
    cfg = toy_config(out, {"total_iters": 5, "snapshot_config.interval": 1,
                           "snapshot_config.keep_last": 5, "validate.interval": 0,
                           "model.name": "NanFromIterationThree"})
    with pytest.raises(TrainingError, match=r"mse_loss is nan at iteration 3.*iter_2_checkpoint"):
        Trainer(cfg).train()
    saved = sorted(os.path.basename(p) for p in glob.glob(str(out / "iter_*")))
    assert saved == ["iter_1_checkpoint.pdparams", "iter_2_checkpoint.pdparams"]
    assert load_checkpoint(str(out / "iter_2_checkpoint.pdparams"))["iteration"] == 2


# ---------------------------------------------------------------------------- static graph
def test_to_static_training_matches_dynamic_and_updates_batch_norm(tmp_path):
    results = {}
    for static in (False, True):
        out = tmp_path / f"static_{static}"
        trainer = Trainer(toy_config(out, {"total_iters": 3, "validate.interval": 0,
                                           "to_static": static, "onednn": False}))
        trainer.train()
        results[static] = (train_log(out), trainer.model.net("net").state_dict())
    assert results[True][0] == results[False][0]                     # same losses, bit for bit
    dynamic, static = results[False][1], results[True][1]
    means = [k for k in static if k.endswith("._mean")]
    assert means and all(np.abs(static[k].numpy()).sum() > 0 for k in means)  # stats moved
    for key in dynamic:
        np.testing.assert_allclose(static[key].numpy(), dynamic[key].numpy(), rtol=0, atol=1e-6)


def test_onednn_training_matches_dynamic_and_updates_batch_norm(synthetic_corpus, tmp_path):
    """oneDNN convolutions (the CPU default) train like the dynamic graph up to float rounding.

    Two SGD steps only: this tiny net on batches of 4 is chaotic - in plain dynamic mode a
    1e-7 relative nudge of the initial weights already changes the third loss by 4% - so
    longer runs would compare chaos, not kernels. Per-layer parity is in test_onednn_conv.py.
    """
    results = {}
    for onednn in (False, True):
        out = str(tmp_path / f"onednn_{onednn}")
        cfg, path = syncnet_config(synthetic_corpus, out, ["total_iters=2", "validate.interval=0",
                                                           "lr_scheduler.learning_rate=0.01",
                                                           f"onednn={str(onednn).lower()}"])
        cfg.optimizer.optimizer_S = {"name": "SGD", "net_names": ["netS"]}  # no Adam betas
        trainer = Trainer(cfg, path)
        assert trainer.onednn is onednn
        trainer.train()
        results[onednn] = ([r["sync_loss"] for r in train_log(out)],
                           trainer.model.net("netS").state_dict())
    np.testing.assert_allclose(results[True][0], results[False][0], rtol=2e-4)
    dynamic, fast = results[False][1], results[True][1]
    assert list(fast) == list(dynamic)                                # same keys, same order
    for key in dynamic:
        if key.endswith("._mean") or key.endswith("._variance"):
            start = 1.0 if key.endswith("._variance") else 0.0
            assert np.abs(dynamic[key].numpy() - start).max() > 1e-3, key  # statistics update
            np.testing.assert_allclose(fast[key].numpy(), dynamic[key].numpy(), rtol=0,
                                       atol=1e-3, err_msg=key)
        else:
            # Two steps of lr 0.01 with gradients that agree to rounding: a few 1e-4 at most.
            np.testing.assert_allclose(fast[key].numpy(), dynamic[key].numpy(), rtol=0,
                                       atol=2e-3, err_msg=key)


def test_onednn_and_to_static_exclude_each_other(tmp_path):
    with pytest.raises(ConfigError, match="onednn and to_static are both true"):
        Trainer(toy_config(tmp_path, {"to_static": True, "onednn": True}))
    with pytest.raises(ConfigError, match="onednn .* must be true, false or null"):
        Trainer(toy_config(tmp_path, {"onednn": "yes please"}))


# ---------------------------------------------------------------------------- the expert learns
def test_expert_learns_above_chance_on_held_out_clips(synthetic_corpus, tmp_path):
    cfg, path = syncnet_config(synthetic_corpus, str(tmp_path / "learn"),
                               ["total_iters=100", "validate.interval=100",
                                "validate.max_eval_steps=0", "dataset.test.filelist=test",
                                "dataset.train.batch_size=8", "snapshot_config.interval=0",
                                "log_config.interval=50", "to_static=true"])
    cfg.lr_scheduler = {"name": "LinearDecay", "learning_rate": 3e-3, "decay_iters": 50,
                        "start_iter": 50}
    trainer = Trainer(cfg, path)
    trainer.train()
    metrics = trainer.eval_result["metrics"]
    # Held-out clips, half in sync and half shifted by >= 5 frames: chance is 0.5.
    assert metrics["accuracy"] >= 0.65, metrics
    assert metrics["sync_loss"] < 0.69, metrics


# ---------------------------------------------------------------------------- config checks
def test_config_keys_are_checked(tmp_path):
    check_config(toy_config(tmp_path))
    for key, value, message in [
            ("log_config", {"interval": 1, "visiual_interval": 5},
             "did you mean 'visual_interval'"),
            ("total_iter", 5, "did you mean 'total_iters'"),
            ("total_iters", 0, "positive integer"),
            ("snapshot_config", {"interval": 1, "keep": 2}, "'snapshot_config.keep'"),
            ("validate", {"interval": "often"}, "validate.interval in .* must be an integer"),
            ("validate", 5, "validate in .* must be a mapping with keys interval"),
            ("snapshot_config", {"best_mode": "up"}, "best_mode in .* must be min or max"),
            ("enable_visualdl", "yes", "enable_visualdl in .* must be true or false")]:
        bad = toy_config(tmp_path)
        bad[key] = value
        with pytest.raises(ConfigError, match=message):
            check_config(bad, where="toy.yaml")
    with pytest.raises(ConfigError, match="toy.yaml lacks the required key 'optimizer'"):
        check_config({k: v for k, v in toy_config(tmp_path).items() if k != "optimizer"},
                     where="toy.yaml")
    # The schema supplies the defaults: of a missing block, of its missing keys, of a null value.
    bare = toy_config(tmp_path, {"snapshot_config": {"interval": 7}, "seed": None})
    del bare["log_config"]
    settings = check_config(bare)
    assert (settings.log_config.interval, settings.log_config.visual_interval) == (10, 0)
    assert (settings.snapshot_config.interval, settings.snapshot_config.keep_last) == (7, 3)
    assert settings.seed == 0 and settings.validate.interval == 3


def test_optimizer_and_scheduler_config_errors():
    nets = {"netG": paddle.nn.Linear(2, 2), "netDH": paddle.nn.Linear(2, 2)}
    required = ("optimizer_G", "optimizer_DH")
    good = {"optimizer_G": {"name": "Adam", "net_names": ["netG"], "beta1": 0.5},
            "optimizer_DH": {"name": "Adam", "net_names": ["netDH"]}}
    optimizers = build_optimizers(good, nets, 1e-3, required)
    assert set(optimizers) == set(required) and optimizers["optimizer_G"]._beta1 == 0.5
    cases = [({"optimizer_G": good["optimizer_G"]}, "missing \\['optimizer_DH'\\]"),
             ({**good, "optimizer_D": good["optimizer_DH"]}, "not used by this model"),
             ({**good, "optimizer_DH": {"name": "Adam", "net_names": ["netG"]}}, "in both"),
             ({**good, "optimizer_DH": {"name": "Adam"}}, "needs 'net_names"),
             ({**good, "optimizer_DH": {"name": "Adam", "net_names": ["netDH"],
                                        "learning_rate": 1.0}}, "lr_scheduler block"),
             ({**good, "optimizer_DH": {"name": "Adamm", "net_names": ["netDH"]}},
              "Did you mean 'Adam'"),
             ({**good, "optimizer_DH": {"name": "Adam", "net_names": ["netDH"], "bta1": 0.5}},
              "did you mean 'beta1'")]
    for cfg, message in cases:
        with pytest.raises(ConfigError, match=message):
            build_optimizers(cfg, nets, 1e-3, required)
    with pytest.raises(ConfigError, match="decay_iters"):
        build_lr_scheduler({"name": "LinearDecay", "learning_rate": 1.0, "decay_iters": 0})
    schedule = build_lr_scheduler({"name": "LinearDecay", "learning_rate": 1.0, "decay_iters": 4,
                                   "start_iter": 2, "end_lr": 0.2})
    rates = []
    for _ in range(8):
        rates.append(round(schedule.last_lr, 6))
        schedule.step()
    assert rates == [1.0, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2, 0.2]


def test_visual_grid_layout():
    items = {"reference": np.zeros((2, 3, 5, 8, 6), np.float32),
             "generated": np.ones((2, 3, 5, 8, 6), np.float32)}
    grid = make_grid(items)
    assert grid.shape == (2 * 2 * 8, 5 * 6, 3) and grid.dtype == np.uint8
    assert grid[:8].max() == 0 and grid[8:16].min() == 255      # clip 0: reference, generated


# ---------------------------------------------------------------------------- offline evaluation
@EVALUATORS.register()
class EchoEvaluation:
    """Records what the engine hands an offline evaluator."""

    key = "echo"

    def __call__(self, run):
        return {"split": run.split, "max_clips": run.max_clips, "output_dir": run.output_dir,
                "nets": sorted(run.model.nets)}


@MODELS.register()
class ToyWithEvaluation(ToyRegression):
    evaluator = "EchoEvaluation"


def test_evaluate_only_runs_the_evaluation_the_model_names(tmp_path):
    from ppgan.engine.evaluation import build_evaluator
    from ppgan.engine.run import run

    config = write_toy_config(tmp_path / "toy.yaml", tmp_path / "run",
                              {"model.name": "ToyWithEvaluation", "total_iters": 1})
    run(config, device="cpu")
    run(resume=str(tmp_path / "run"), evaluate_only=True, max_clips=3, device="cpu")
    folder = tmp_path / "run" / "eval" / "iter_1_checkpoint"
    report = json.loads((folder / "eval_metrics.json").read_text())
    assert report["echo"] == {"split": "test", "max_clips": 3, "output_dir": str(folder),
                              "nets": ["net"]}
    assert "mse_loss" in report["metrics"]
    assert build_evaluator(ToyRegression()) is None              # names none: metrics alone
    unregistered = ToyRegression()
    unregistered.evaluator = "NoSuchEvaluation"
    with pytest.raises(ConfigError, match="'NoSuchEvaluation', which is not registered.*import "
                                          "the package that registers it"):
        build_evaluator(unregistered)
