"""Training the SyncNet lip-sync expert (reference ``color_syncnet_train.py``; PaddleGAN has none).

Batches hold ``face`` (B, 15, 48, 96) lower halves of 5 frames, ``mel`` (B, 1, 80, 16) and
``label`` (B, 1): 1 when the mel window belongs to those frames, 0 when it is shifted. The loss
is the cosine-BCE of the two embeddings; evaluation reports that loss and the accuracy of
thresholding the cosine at 0.5.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

from ..utils.errors import ConfigError
from .base_model import Batch, BaseModel, MetricSums, Optimizers, apply_init, to_tensor
from .builder import MODELS, build_discriminator
from .losses import SyncLoss, sync_probability


@MODELS.register()
class SyncNetModel(BaseModel):
    """The expert as a trainable model: one net ``netS``, one optimizer ``optimizer_S``.

    Args:
        syncnet: network block, e.g. ``{name: SyncNetColor, width_mult: 1.0}``.
        init_type: weight init of the expert: 'normal', 'kaiming' or None (Paddle's default
            init, like the reference which keeps PyTorch's defaults). Default: None.
    """

    optimizer_keys: Tuple[str, ...] = ("optimizer_S",)

    def __init__(self, syncnet: Mapping[str, Any], init_type: Optional[str] = None) -> None:
        super().__init__()
        if not isinstance(syncnet, dict):
            raise ConfigError("model.syncnet must be a network block like {name: SyncNetColor}")
        net = build_discriminator(syncnet, where="model.syncnet")
        apply_init(net, init_type, where="model.init_type")
        self.add_net("netS", net)
        self.sync_loss = SyncLoss()
        self.sums = MetricSums()

    def setup_input(self, batch: Batch) -> None:
        self.face = to_tensor(batch["face"])
        self.mel = to_tensor(batch["mel"])
        self.label = to_tensor(batch["label"])

    def train_iter(self, optimizers: Optimizers) -> Dict[str, float]:
        with self.autocast():
            audio_emb, face_emb = self.nets["netS"](self.mel, self.face)
            loss = self.sync_loss(audio_emb.astype("float32"), face_emb.astype("float32"),
                                  self.label)
        self.backward_and_step(loss, optimizers, "optimizer_S")
        return {"sync_loss": float(loss)}

    def test_iter(self) -> None:
        import paddle
        with paddle.no_grad():
            audio_emb, face_emb = self.net("netS")(self.mel, self.face)
            prob = sync_probability(audio_emb, face_emb)
            loss = self.sync_loss(audio_emb, face_emb, self.label)
            correct = ((prob > 0.5).astype("float32") == self.label).astype("float32").mean()
        count = self.label.shape[0]
        self.sums.add("sync_loss", float(loss), count)
        self.sums.add("accuracy", float(correct), count)

    def eval_metrics(self) -> Dict[str, float]:
        return self.sums.means()
