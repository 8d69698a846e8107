"""Training the Wav2Lip generator against the frozen lip-sync expert (``wav2lip_train.py``).

Batches hold ``x`` (B, 6, T, H, W) = masked target frames + reference frames, ``indiv_mels``
(B, T, 1, 80, 16), ``mel`` (B, 1, 80, 16) and the target frames ``y`` (B, 3, T, H, W): T = 5
(``dataset.syncnet_T``) whenever the sync loss is computed; a pixel-loss-only run may train on T = 1.

Loss: ``w * sync + (1 - w) * pixel``, the pixel loss L1 unless ``model.recon_loss`` is ``mse``.
The sync-loss weight ``w`` is a schedule: it starts at ``syncnet_wt`` and, the first time the eval
sync loss (averaged over all ranks) falls below ``syncnet_wt_threshold``, jumps to
``syncnet_wt_target`` for good: the training loop calls ``update_schedules`` after each evaluation
(``eval_metrics`` itself changes nothing). It is part of the model state, so checkpoints carry it
and a resumed run continues with the same weight.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple, Union

import paddle

from ..data.contract import SYNC_T, lower_half_stack
from ..utils.config_paths import resolve_config_path
from ..utils.errors import ConfigError
from ..utils.logger import get_logger
from .base_model import Batch, BaseModel, MetricSums, Optimizers, apply_init, to_tensor
from .builder import MODELS, build_discriminator, build_generator
from .losses import ReconLoss, SyncLoss


def psnr(prediction: paddle.Tensor, target: paddle.Tensor) -> float:
    """Mean over the batch of per-clip PSNR in dB for images in [0, 1]: (B, ...) x2 -> float."""
    mse = ((prediction - target) ** 2).reshape([prediction.shape[0], -1]).mean(axis=1)
    return float((10.0 * paddle.log10(1.0 / mse.clip(min=1e-10))).mean())


def check_same_face_size(generator: paddle.nn.Layer, other: paddle.nn.Layer, where: str) -> None:
    """Raise ConfigError unless ``other`` judges faces of the generator's ``img_size``.

    Checked when the model is built: a mismatch would otherwise surface as a shape error at the
    first training step, after the datasets and the expert weights were loaded.
    """
    expected, got = getattr(generator, "img_size", None), getattr(other, "img_size", None)
    if expected != got:
        raise ConfigError(f"{where}.img_size is {got} but model.generator.img_size is {expected}: "
                          f"the networks must be built for one face size")


@MODELS.register()
class Wav2LipModel(BaseModel):
    """Generator ``netG`` trained with a pixel loss (L1) + sync loss through the frozen expert ``netD``.

    Args:
        generator: network block, e.g. ``{name: Wav2Lip, width_mult: 1.0}``.
        discriminator: the expert's network block, e.g. ``{name: SyncNetColor}``.
        syncnet_weights: file with the trained expert (our SyncNet checkpoint, PaddleGAN's
            ``syncnet.pdparams`` or a converted ``lipsync_expert.pth``). Required.
        syncnet_net_name: which net to take from a multi-net checkpoint. Default: the only one.
        syncnet_wt: starting sync-loss weight. Default: 0.0.
        syncnet_wt_target: weight once the eval sync loss is low enough. Default: 0.01.
        syncnet_wt_threshold: eval sync loss below which the weight switches. Default: 0.75.
        init_type: generator init, 'normal' / 'kaiming' / None. Default: 'normal'.
        config_dir: folder of the config file, to resolve a relative ``syncnet_weights`` (working
            directory, then beside the config: ``ppgan.utils.config_paths``).
        recon_loss: the training pixel loss, ``l1`` (the reference's) or ``mse`` (``ReconLoss``).
            Default: 'l1'.
        recon_lower_weight: weight of the lower half's pixels (where the mouth is drawn) in the
            training pixel loss against the upper half's, which the masked input already shows.
            Default: 1.0 (plain mean). Evaluation always reports the plain L1, whatever the
            training loss, so runs stay comparable.
    """

    optimizer_keys: Tuple[str, ...] = ("optimizer_G",)
    evaluator: Optional[str] = "LipSyncEvaluation"  # ppgan.apps.lipsync_evaluation
    expert_name = "netD"
    expert_key = "model.discriminator"

    def __init__(self, generator: Mapping[str, Any], discriminator: Mapping[str, Any],
                 syncnet_weights: Optional[str] = None, syncnet_net_name: Optional[str] = None,
                 syncnet_wt: float = 0.0, syncnet_wt_target: float = 0.01, syncnet_wt_threshold: float = 0.75,
                 init_type: Optional[str] = "normal", config_dir: Optional[str] = None,
                 recon_loss: str = "l1", recon_lower_weight: float = 1.0) -> None:
        super().__init__()
        for key, value in (("syncnet_wt", syncnet_wt), ("syncnet_wt_target", syncnet_wt_target)):
            if not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"model.{key} must be within [0, 1], got {value}")
        netG = build_generator(generator, where="model.generator")
        self.add_net("netG", apply_init(netG, init_type, where="model.init_type"))
        expert = build_discriminator(discriminator, where=self.expert_key)
        check_same_face_size(netG, expert, self.expert_key)
        self.add_net(self.expert_name, expert, frozen=True)
        # Unset stays None: load_frozen_weights says what the key must point to.
        weights = resolve_config_path(syncnet_weights, "syncnet_weights", config_dir) if syncnet_weights else None
        self.load_frozen_weights(self.expert_name, weights, "model.syncnet_weights", net_name=syncnet_net_name)
        self.syncnet_wt = float(syncnet_wt)
        self.syncnet_wt_target = float(syncnet_wt_target)
        self.syncnet_wt_threshold = float(syncnet_wt_threshold)
        # Training loss only: evaluation keeps the plain L1, comparable across runs.
        try:
            self.recon_loss = ReconLoss(str(recon_loss), lower_weight=float(recon_lower_weight))
        except ValueError as exc:  # the loss owns the rules; the config gets its keys named
            raise ConfigError(f"model.recon_loss / model.recon_lower_weight: {exc}") from None
        self.l1_loss = ReconLoss()
        self.sync_loss = SyncLoss()
        self.sums = MetricSums()
        self.visuals: Dict[str, paddle.Tensor] = {}

    # ------------------------------------------------------------------ steps
    def setup_input(self, batch: Batch) -> None:
        self.x = to_tensor(batch["x"])
        self.indiv_mels = to_tensor(batch["indiv_mels"])
        self.mel = to_tensor(batch["mel"])
        self.y = to_tensor(batch["y"])

    def expert_sync_loss(self, faces: paddle.Tensor) -> paddle.Tensor:
        """Sync loss of generated (B, 3, T, H, W) faces against the batch's mel window.

        Raises:
            ConfigError: the windows are not the expert's ``SYNC_T`` frames (single-frame
                training windows can train the L1 term only).
        """
        if faces.shape[2] != SYNC_T:
            raise ConfigError(f"the expert's sync loss needs {SYNC_T}-frame windows but this batch "
                              f"has {faces.shape[2]}: dataset.test.syncnet_T must stay {SYNC_T}, and "
                              f"shorter training windows (dataset.train.syncnet_T) need "
                              f"model.syncnet_wt and model.syncnet_wt_target of 0 (L1 only)")
        audio_emb, face_emb = self.nets[self.expert_name](self.mel, lower_half_stack(faces))
        return self.sync_loss(audio_emb.astype("float32"), face_emb.astype("float32"))

    def generator_losses(self) -> Tuple[paddle.Tensor, Dict[str, paddle.Tensor]]:
        """Forward netG; returns (generated (B, 3, T, H, W), {pixel loss ('l1_loss' or
        'mse_loss', ``self.recon_loss.name``), 'sync_loss'} tensors)."""
        g = self.nets["netG"](self.indiv_mels, self.x)
        losses = {self.recon_loss.name: self.recon_loss(g.astype("float32"), self.y)}
        if self.syncnet_wt > 0:
            losses["sync_loss"] = self.expert_sync_loss(g)
        elif self.syncnet_wt_target > 0:
            # Weight 0 for now: the term cannot move netG, but its value is logged beside the
            # eval loss that decides when the weight switches on.
            with paddle.no_grad():
                losses["sync_loss"] = self.expert_sync_loss(g)
        # Weight 0 for good (target 0, as in the L1-only demo recipe): no expert forward at all,
        # a saving of one expert pass per step; evaluation still scores the sync loss.
        return g, losses

    def sync_term(self, losses: Mapping[str, paddle.Tensor]) -> Union[float, paddle.Tensor]:
        """``syncnet_wt * sync_loss``, or 0.0 when the step computed no sync loss (weight 0)."""
        return self.syncnet_wt * losses["sync_loss"] if "sync_loss" in losses else 0.0

    def train_iter(self, optimizers: Optimizers) -> Dict[str, float]:
        with self.autocast():
            g, losses = self.generator_losses()
        w = self.syncnet_wt
        loss_g = self.sync_term(losses) + (1.0 - w) * losses[self.recon_loss.name]
        self.backward_and_step(loss_g, optimizers, "optimizer_G")
        self.keep_visuals(g)
        logged = {name: float(value) for name, value in losses.items()}
        logged["syncnet_wt"] = w
        return logged

    def keep_visuals(self, g: paddle.Tensor, max_items: int = 4) -> None:
        """Keep the first clips of the batch for the visual-sample hook (no graph kept)."""
        self.visuals = {"reference": self.x[:max_items, 3:], "masked_input": self.x[:max_items, :3],
                        "generated": g[:max_items].detach().astype("float32"),
                        "target": self.y[:max_items]}

    def test_iter(self) -> None:
        with paddle.no_grad():
            g = self.net("netG")(self.indiv_mels, self.x)
            count = self.y.shape[0]
            self.sums.add("l1_loss", float(self.l1_loss(g, self.y)), count)
            self.sums.add("sync_loss", float(self.expert_sync_loss(g)), count)
            # Generated faces against their targets on eval windows (the reference faces come
            # from elsewhere in the clip); not the whole-clip reconstruction PSNR of evaluation.
            self.sums.add("window_psnr", psnr(g, self.y), count)
            self.extra_test_stats(g, count)

    def extra_test_stats(self, g: paddle.Tensor, count: int) -> None:
        """Subclass hook for more evaluation statistics on the generated batch."""

    def eval_metrics(self) -> Dict[str, float]:
        """{l1_loss, sync_loss, window_psnr, (HQ: critic losses), syncnet_wt (the weight the
        evaluated step trained with)}, averaged over ranks; the schedule is left alone."""
        metrics = self.sums.means()
        metrics["syncnet_wt"] = self.syncnet_wt
        return metrics

    def update_schedules(self, metrics: Mapping[str, float]) -> Dict[str, float]:
        """The sync-loss weight switch on the eval ``sync_loss``; returns {'syncnet_wt': weight}."""
        self.update_sync_schedule(metrics["sync_loss"])
        return {"syncnet_wt": self.syncnet_wt}

    def update_sync_schedule(self, eval_sync_loss: float) -> None:
        """Switch the sync-loss weight on (once, permanently) when the eval loss is low enough.

        ``eval_sync_loss`` is already averaged over ranks, so every rank decides the same.
        """
        if self.syncnet_wt != self.syncnet_wt_target and eval_sync_loss < self.syncnet_wt_threshold:
            get_logger().info(f"eval sync loss {eval_sync_loss:.4f} < {self.syncnet_wt_threshold}: "
                              f"sync-loss weight {self.syncnet_wt} -> {self.syncnet_wt_target}")
            self.syncnet_wt = self.syncnet_wt_target

    def visual_items(self) -> Dict[str, paddle.Tensor]:
        return dict(self.visuals)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> Dict[str, Any]:
        state = super().state_dict()
        state["syncnet_wt"] = self.syncnet_wt
        return state

    def set_state_dict(self, state: Optional[Mapping[str, Any]]) -> None:
        super().set_state_dict(state)
        state = state or {}
        if "syncnet_wt" in state:
            self.syncnet_wt = float(state["syncnet_wt"])
