"""Wav2Lip with the visual-quality discriminator (reference ``hq_wav2lip_train.py``).

Each iteration is a generator step, then a discriminator step:

- G: ``w * sync + disc_wt * adv + (1 - w - disc_wt) * L1`` where ``adv = BCE(D(g), real)``;
  gradients flow through D into G; the gradients D's own weights get here are discarded.
- D: ``BCE(D(y), real) + BCE(D(g.detach()), fake)``: D never sends gradients into G.

The sync-loss weight schedule is the one of ``Wav2LipModel``.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

import paddle

from ..utils.errors import ConfigError
from .base_model import Optimizers, apply_init
from .builder import MODELS, build_discriminator
from .losses import GANLoss
from .wav2lip_model import Wav2LipModel, check_same_face_size


def split_real_fake(prob: paddle.Tensor, steps: int, batch: int) -> Tuple[paddle.Tensor, paddle.Tensor]:
    """Split D's output for the batch ``concat([real, fake])`` back into (real, fake).

    D unrolls clips time-major, so for 2B clips of T frames its (T * 2B, 1) output is ordered
    [t0: real 0..B-1, fake 0..B-1, t1: ...].
    """
    prob = prob.reshape([steps, 2, batch])
    return prob[:, 0].reshape([-1, 1]), prob[:, 1].reshape([-1, 1])


@MODELS.register()
class Wav2LipModelHq(Wav2LipModel):
    """Generator ``netG``, frozen expert ``netDS`` and visual-quality discriminator ``netDH``.

    Args (besides those of ``Wav2LipModel``, with ``discriminator_sync`` for the expert):
        discriminator_hq: the quality critic's network block, e.g. ``{name: Wav2LipDiscQual}``.
        disc_wt: weight of the adversarial term in the generator loss. Default: 0.07.
        syncnet_wt_target: Default: 0.03 (the reference HQ value).
        disc_init_type: init of netDH, 'normal' / 'kaiming' / None. Default: 'kaiming'.
    """

    optimizer_keys: Tuple[str, ...] = ("optimizer_G", "optimizer_DH")
    expert_name = "netDS"
    expert_key = "model.discriminator_sync"

    def __init__(self, generator: Mapping[str, Any], discriminator_sync: Mapping[str, Any],
                 discriminator_hq: Mapping[str, Any], syncnet_weights: Optional[str] = None,
                 syncnet_net_name: Optional[str] = None, syncnet_wt: float = 0.0,
                 syncnet_wt_target: float = 0.03, syncnet_wt_threshold: float = 0.75,
                 disc_wt: float = 0.07, init_type: Optional[str] = "kaiming",
                 disc_init_type: Optional[str] = "kaiming", config_dir: Optional[str] = None,
                 recon_loss: str = "l1", recon_lower_weight: float = 1.0) -> None:
        if not 0.0 <= float(disc_wt) <= 1.0 or float(disc_wt) + float(syncnet_wt_target) > 1.0:
            raise ConfigError(f"model.disc_wt must be in [0, 1] with disc_wt + syncnet_wt_target "
                              f"<= 1, got {disc_wt} and {syncnet_wt_target}")
        super().__init__(generator, discriminator_sync, syncnet_weights, syncnet_net_name,
                         syncnet_wt, syncnet_wt_target, syncnet_wt_threshold, init_type,
                         config_dir, recon_loss, recon_lower_weight)
        netDH = build_discriminator(discriminator_hq, where="model.discriminator_hq")
        check_same_face_size(self.net("netG"), netDH, "model.discriminator_hq")
        self.add_net("netDH", apply_init(netDH, disc_init_type, where="model.disc_init_type"))
        self.disc_wt = float(disc_wt)
        self.gan_loss = GANLoss()

    def train_iter(self, optimizers: Optimizers) -> Dict[str, float]:
        w, dw = self.syncnet_wt, self.disc_wt
        with self.autocast():
            g, losses = self.generator_losses()
            # The plain layer, not its DataParallel wrapper: the D gradients this backward
            # leaves are local and thrown away below, never all-reduced.
            losses["perceptual_loss"] = self.gan_loss(self.net("netDH")(g).astype("float32"), True)
        loss_g = (self.sync_term(losses) + dw * losses["perceptual_loss"]
                  + (1.0 - w - dw) * losses[self.recon_loss.name])
        self.backward_and_step(loss_g, optimizers, "optimizer_G")
        optimizers["optimizer_DH"].clear_grad()

        with self.autocast():
            # One pass over real and detached fake clips: one DataParallel forward per backward.
            prob = self.nets["netDH"](paddle.concat([self.y, g.detach()], axis=0))
            real, fake = split_real_fake(prob.astype("float32"), g.shape[2], g.shape[0])
            losses["disc_real_loss"] = self.gan_loss(real, True)
            losses["disc_fake_loss"] = self.gan_loss(fake, False)
        self.backward_and_step(losses["disc_real_loss"] + losses["disc_fake_loss"], optimizers,
                               "optimizer_DH")
        self.keep_visuals(g)
        logged = {name: float(value) for name, value in losses.items()}
        logged["syncnet_wt"] = w
        return logged

    def extra_test_stats(self, g: paddle.Tensor, count: int) -> None:
        critic = self.net("netDH")
        fake_prob = critic(g)
        self.sums.add("perceptual_loss", float(self.gan_loss(fake_prob, True)), count)
        self.sums.add("disc_fake_loss", float(self.gan_loss(fake_prob, False)), count)
        self.sums.add("disc_real_loss", float(self.gan_loss(critic(self.y), True)), count)
