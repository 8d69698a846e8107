"""Model classes: losses, the frozen expert, the sync-weight schedule, G/D alternation."""

import math

import numpy as np
import paddle
import pytest

from ppgan.models import SyncNetModel, Wav2LipModel, Wav2LipModelHq  # noqa: F401
from ppgan.models.discriminators.syncnet import SyncNetColor
from ppgan.models.generators.wav2lip import Wav2Lip
from ppgan.models.losses import GANLoss, ReconLoss, SyncLoss
from ppgan.models.wav2lip_hq_model import split_real_fake
from ppgan.solver import build_optimizers
from ppgan.utils.errors import ConfigError, WeightsError
from ppgan.utils.weights import save_weights_file

WIDTH = 0.125  # every channel count at its floor of 4-64: fast, same code paths


@pytest.fixture(scope="module")
def expert_file(tmp_path_factory):
    """A tiny random expert saved as a flat weights file (what PaddleGAN ships)."""
    paddle.seed(1)
    path = tmp_path_factory.mktemp("expert") / "syncnet.pdparams"
    save_weights_file(SyncNetColor(WIDTH).state_dict(), str(path))
    return str(path)


def g_batch(batch=2, seed=0):
    rng = np.random.RandomState(seed)
    return {"x": rng.rand(batch, 6, 5, 96, 96).astype("float32"),
            "indiv_mels": rng.uniform(-4, 4, (batch, 5, 1, 80, 16)).astype("float32"),
            "mel": rng.uniform(-4, 4, (batch, 1, 80, 16)).astype("float32"),
            "y": rng.rand(batch, 3, 5, 96, 96).astype("float32")}


def make_model(expert_file, cls=Wav2LipModel, **kwargs):
    paddle.seed(0)
    nets = {"generator": {"name": "Wav2Lip", "width_mult": WIDTH}}
    if cls is Wav2LipModelHq:
        nets.update(discriminator_sync={"name": "SyncNetColor", "width_mult": WIDTH},
                    discriminator_hq={"name": "Wav2LipDiscQual", "width_mult": WIDTH})
    else:
        nets["discriminator"] = {"name": "SyncNetColor", "width_mult": WIDTH}
    model = cls(**nets, syncnet_weights=expert_file, **kwargs)
    opt_cfg = {key: {"name": "Adam", "net_names": [f"net{key.split('_')[1]}"]}
               for key in cls.optimizer_keys}
    optimizers = build_optimizers(opt_cfg, model.trained_nets(), 1e-3, cls.optimizer_keys)
    model.train()
    return model, optimizers


def snapshot(net):
    return {k: v.numpy().copy() for k, v in net.state_dict().items()}


def changed(before, net):
    return [k for k, v in net.state_dict().items() if not np.array_equal(before[k], v.numpy())]


# ---------------------------------------------------------------------------- losses
def test_sync_loss_is_bce_of_the_cosine():
    loss = SyncLoss()
    a = paddle.to_tensor([[1.0, 0.0], [0.6, 0.8]])
    v = paddle.to_tensor([[1.0, 0.0], [0.8, 0.6]])  # cosines 1.0 and 0.96
    ones = paddle.ones([2, 1])
    expected = -(math.log(1.0 - 1e-12) + math.log(0.96)) / 2
    assert float(loss(a, v, ones)) == pytest.approx(expected, abs=1e-5)
    assert float(loss(a, v)) == pytest.approx(expected, abs=1e-5)  # default label: in sync
    half = paddle.to_tensor([[math.sqrt(0.5), math.sqrt(0.5)]])
    assert float(loss(half, paddle.to_tensor([[0.0, 1.0]]), paddle.zeros([1, 1]))) == \
        pytest.approx(-math.log(1 - math.sqrt(0.5)), abs=1e-5)


@pytest.mark.parametrize("norm", ["l1", "mse"])
def test_recon_loss_weights_the_lower_rows(norm):
    rng = np.random.RandomState(0)
    prediction, target = rng.rand(2, 3, 1, 5, 4).astype("float32"), rng.rand(2, 3, 1, 5, 4).astype("float32")
    difference = prediction - target
    error = np.abs(difference) if norm == "l1" else difference ** 2
    plain = ReconLoss(norm)(paddle.to_tensor(prediction), paddle.to_tensor(target))
    assert float(plain) == pytest.approx(error.mean(), rel=1e-6)
    # Odd height 5: rows 0-1 are the upper half, rows 2-4 the lower (where the mouth is).
    p = paddle.to_tensor(prediction, stop_gradient=False)
    weighted = ReconLoss(norm, lower_weight=3.0)(p, paddle.to_tensor(target))
    per_pixel = np.ones_like(error)
    per_pixel[..., 2:, :] = 3.0
    assert float(weighted) == pytest.approx((error * per_pixel).sum() / per_pixel.sum(), rel=1e-6)
    weighted.backward()
    # d/dp of the weighted mean: weight * sign(difference) for L1, weight * 2 * difference for MSE
    slope = np.sign(difference) if norm == "l1" else 2 * difference
    np.testing.assert_allclose(p.grad.numpy(), per_pixel * slope / per_pixel.sum(), rtol=1e-5, atol=1e-9)


def test_recon_loss_rejects_bad_settings():
    with pytest.raises(ValueError, match="lower_weight"):
        ReconLoss(lower_weight=0.0)
    with pytest.raises(ValueError, match="l1, mse"):
        ReconLoss("l2")


@pytest.mark.parametrize("norm", ["l1", "mse"])
def test_recon_loss_trains_and_leaves_eval_l1_plain(expert_file, norm):
    with pytest.raises(ConfigError, match="model.recon_loss / model.recon_lower_weight"):
        make_model(expert_file, recon_lower_weight=-1.0)
    with pytest.raises(ConfigError, match="model.recon_loss"):
        make_model(expert_file, recon_loss="huber")
    model, optimizers = make_model(expert_file, syncnet_wt_target=0.0, recon_loss=norm,
                                   recon_lower_weight=4.0)
    batch = g_batch()
    batch["y"][..., 48:, :] = 0.0  # a black lower half: its error differs from the upper half's
    model.setup_input(batch)
    with paddle.no_grad():  # the step's own forward: same weights, same batch statistics
        before = model.net("netG")(model.indiv_mels, model.x)
    expected = float(ReconLoss(norm, lower_weight=4.0)(before, model.y))
    assert expected != pytest.approx(float(ReconLoss(norm)(before, model.y)), rel=1e-3)
    logged = model.train_iter(optimizers)
    assert set(logged) == {f"{norm}_loss", "syncnet_wt"}
    assert logged[f"{norm}_loss"] == pytest.approx(expected, rel=1e-5)
    model.eval()
    model.test_iter()
    with paddle.no_grad():
        after = model.net("netG")(model.indiv_mels, model.x)
    assert model.eval_metrics()["l1_loss"] == pytest.approx(float(ReconLoss()(after, model.y)), rel=1e-5)


def test_gan_loss_targets():
    gan = GANLoss()
    prob = paddle.to_tensor([[0.9], [0.8]])
    assert float(gan(prob, True)) == pytest.approx(-(math.log(0.9) + math.log(0.8)) / 2, abs=1e-6)
    assert float(gan(prob, False)) == pytest.approx(-(math.log(0.1) + math.log(0.2)) / 2, abs=1e-5)


def test_split_real_fake_undoes_the_time_major_unroll():
    steps, batch = 5, 3
    # D output order for concat([real, fake]) of 2B clips: t-major, then clip index.
    labels = np.array([[1.0] * batch + [0.0] * batch for _ in range(steps)]).reshape(-1, 1)
    real, fake = split_real_fake(paddle.to_tensor(labels.astype("float32")), steps, batch)
    assert real.shape == [steps * batch, 1] and float(real.min()) == 1.0
    assert float(fake.max()) == 0.0


# ---------------------------------------------------------------------------- expert handling
def test_frozen_expert_passes_gradient_but_never_changes(expert_file):
    # Weight 1.0: the generator loss is the sync loss alone, so netG can only move through it.
    model, optimizers = make_model(expert_file, syncnet_wt=1.0)
    expert, generator = model.net("netD"), model.net("netG")
    expert_before, g_before = snapshot(expert), snapshot(generator)
    model.setup_input(g_batch())
    logged = model.train_iter(optimizers)
    assert set(logged) == {"l1_loss", "sync_loss", "syncnet_wt"} and logged["syncnet_wt"] == 1.0
    assert not expert.training and generator.training
    assert changed(expert_before, expert) == []           # weights AND batch-norm statistics
    assert len(changed(g_before, generator)) > 100         # sync-loss gradient reached netG
    assert set(optimizers["optimizer_G"]._parameter_list) & set(expert.parameters()) == set()


def test_weight_zero_for_good_skips_the_expert_but_keeps_the_update(expert_file, monkeypatch):
    # Target 0 too: the sync term can never move netG, so the step must not pay an expert pass,
    # and the generator update must be the same as with the (no-grad) expert pass it replaces.
    updated = {}
    for target in (0.01, 0.0):
        model, optimizers = make_model(expert_file, syncnet_wt=0.0, syncnet_wt_target=target)
        calls = []
        original = model.expert_sync_loss
        monkeypatch.setattr(model, "expert_sync_loss", lambda g: calls.append(1) or original(g))
        model.setup_input(g_batch())
        logged = model.train_iter(optimizers)
        assert len(calls) == (1 if target else 0)
        assert ("sync_loss" in logged) == bool(target)
        updated[target] = snapshot(model.net("netG"))
    for name, value in updated[0.0].items():
        np.testing.assert_array_equal(value, updated[0.01][name])


def test_single_frame_windows_train_l1_only(expert_file):
    # T = 1 windows (dataset.train.syncnet_T: 1): the L1 step runs, and a sync loss, which needs
    # the expert's 5 frames, fails with a config error instead of a shape error.
    model, optimizers = make_model(expert_file, syncnet_wt=0.0, syncnet_wt_target=0.0)
    batch = {key: value[:, :, :1] if key in ("x", "y") else value[:, :1] if key == "indiv_mels"
             else value for key, value in g_batch().items()}
    model.setup_input(batch)
    before = snapshot(model.net("netG"))
    assert set(model.train_iter(optimizers)) == {"l1_loss", "syncnet_wt"}
    assert len(changed(before, model.net("netG"))) > 100
    synced, optimizers = make_model(expert_file, syncnet_wt=0.5)
    synced.setup_input(batch)
    with pytest.raises(ConfigError, match="syncnet_T"):
        synced.train_iter(optimizers)


def test_expert_is_never_data_parallel_and_has_no_optimizer(expert_file):
    model, _ = make_model(expert_file)
    assert set(model.trained_nets()) == {"netG"} and model.frozen == {"netD"}
    with pytest.raises(ConfigError, match="not a trainable net"):
        build_optimizers({"optimizer_G": {"name": "Adam", "net_names": ["netG", "netD"]}},
                         model.trained_nets(), 1e-3, ("optimizer_G",))


def test_missing_or_wrong_expert_file_fails_at_startup(tmp_path, expert_file):
    nets = {"generator": {"name": "Wav2Lip", "width_mult": WIDTH},
            "discriminator": {"name": "SyncNetColor", "width_mult": WIDTH}}
    with pytest.raises(WeightsError, match="model.syncnet_weights.*not found"):
        Wav2LipModel(**nets, syncnet_weights=str(tmp_path / "nope.pdparams"))
    with pytest.raises(ConfigError, match="model.syncnet_weights is not set"):
        Wav2LipModel(**nets)
    generator_file = tmp_path / "generator.pdparams"
    save_weights_file(Wav2Lip(WIDTH).state_dict(), str(generator_file))
    with pytest.raises(WeightsError, match="another architecture"):
        Wav2LipModel(**nets, syncnet_weights=str(generator_file))
    wider = {**nets, "discriminator": {"name": "SyncNetColor", "width_mult": 0.25}}
    with pytest.raises(WeightsError, match="shape"):
        Wav2LipModel(**wider, syncnet_weights=expert_file)


# ---------------------------------------------------------------------------- sync-weight schedule
def test_sync_weight_switches_once_on_the_eval_loss_and_is_state(expert_file):
    model, _ = make_model(expert_file, syncnet_wt=0.0, syncnet_wt_target=0.01,
                          syncnet_wt_threshold=0.75)
    def evaluate(sync_loss):
        model.sums.add("sync_loss", sync_loss, 4)
        model.sums.add("l1_loss", 0.1, 4)
        return model.eval_metrics()

    metrics = evaluate(0.80)
    assert model.update_schedules(metrics) == {"syncnet_wt": 0.0}   # 0.80 >= 0.75: stays off
    metrics = evaluate(0.70)
    assert model.syncnet_wt == 0.0 and metrics["syncnet_wt"] == 0.0  # measuring changes nothing
    assert metrics["sync_loss"] == pytest.approx(0.70)
    assert model.update_schedules(metrics) == {"syncnet_wt": 0.01}  # the explicit switch
    assert model.update_schedules(evaluate(0.90)) == {"syncnet_wt": 0.01}  # permanent
    fresh, _ = make_model(expert_file)
    fresh.set_state_dict(model.state_dict())
    assert fresh.syncnet_wt == 0.01


def test_eval_reports_l1_sync_and_psnr(expert_file):
    model, _ = make_model(expert_file)
    model.eval()
    model.setup_input(g_batch(seed=3))
    model.test_iter()
    metrics = model.eval_metrics()
    assert set(metrics) == {"l1_loss", "sync_loss", "window_psnr", "syncnet_wt"}
    assert 0 < metrics["l1_loss"] < 1 and 0 < metrics["window_psnr"] < 60 and metrics["sync_loss"] > 0


# ---------------------------------------------------------------------------- HQ alternation
class SpyOptimizer:
    """Records which parameters hold a gradient whenever the wrapped optimizer steps."""

    def __init__(self, inner, watched):
        self.inner, self.watched, self.grads_at_step = inner, watched, []

    def step(self):
        self.grads_at_step.append([p.grad is not None and float(p.grad.abs().sum()) > 0
                                   for p in self.watched])
        self.inner.step()

    def clear_grad(self):
        self.inner.clear_grad()


def test_hq_alternates_g_and_d_and_d_sees_detached_output(expert_file):
    model, optimizers = make_model(expert_file, cls=Wav2LipModelHq, syncnet_wt=0.0)
    g_params = [p for p in model.net("netG").parameters() if not p.stop_gradient]
    d_params = [p for p in model.net("netDH").parameters() if not p.stop_gradient]
    spies = {"optimizer_G": SpyOptimizer(optimizers["optimizer_G"], d_params),
             "optimizer_DH": SpyOptimizer(optimizers["optimizer_DH"], g_params)}
    d_before, g_before = snapshot(model.net("netDH")), snapshot(model.net("netG"))
    model.setup_input(g_batch())
    logged = model.train_iter(spies)
    assert {"l1_loss", "sync_loss", "perceptual_loss", "disc_real_loss",
            "disc_fake_loss"} <= set(logged)
    assert all(np.isfinite(v) for v in logged.values())
    # The D step found no gradient on netG: D's loss saw g.detach().
    assert spies["optimizer_DH"].grads_at_step == [[False] * len(g_params)]
    assert len(spies["optimizer_G"].grads_at_step) == 1
    assert changed(g_before, model.net("netG")) and changed(d_before, model.net("netDH"))


def test_hq_rejects_weights_that_do_not_sum_to_one(expert_file):
    with pytest.raises(ConfigError, match="disc_wt"):
        make_model(expert_file, cls=Wav2LipModelHq, disc_wt=0.99, syncnet_wt_target=0.03)


# ---------------------------------------------------------------------------- expert model
def test_syncnet_model_step_and_eval():
    paddle.seed(0)
    model = SyncNetModel(syncnet={"name": "SyncNetColor", "width_mult": WIDTH})
    optimizers = build_optimizers({"optimizer_S": {"name": "Adam", "net_names": ["netS"]}},
                                  model.trained_nets(), 1e-3, ("optimizer_S",))
    rng = np.random.RandomState(0)
    batch = {"face": rng.rand(4, 15, 48, 96).astype("float32"),
             "mel": rng.uniform(-4, 4, (4, 1, 80, 16)).astype("float32"),
             "label": np.array([[1], [0], [1], [0]], dtype="float32")}
    model.train()
    model.setup_input(batch)
    assert set(model.train_iter(optimizers)) == {"sync_loss"}
    model.eval()
    model.test_iter()
    metrics = model.eval_metrics()
    assert set(metrics) == {"sync_loss", "accuracy"}
    assert metrics["accuracy"] in (0.0, 0.25, 0.5, 0.75, 1.0)
