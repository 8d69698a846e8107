"""A toy model and dataset for trainer tests: no lip-sync nets, no corpus, a run in seconds.

``ToyRegression`` fits y = x . w with a Linear -> BatchNorm1D -> ReLU -> Linear net (batch norm,
so statistics, their rank averaging and static-mode updates are exercised too) on ``ToyPairs``,
a fixed set of random (x, y) pairs whose per-sample noise is drawn from (seed, epoch, index) like
the real datasets' draws. ``toy_config`` gives a complete training config around them.
"""

import numpy as np
import paddle
import yaml

from ppgan.datasets.builder import DATASETS
from ppgan.models.base_model import BaseModel, MetricSums, to_tensor
from ppgan.models.builder import MODELS
from ppgan.utils.config import AttrDict

FEATURES = 8


@DATASETS.register()
class ToyPairs(paddle.io.Dataset):
    """``size`` pairs {x: (FEATURES,), y: (1,)} float32; training draws fresh noise per epoch."""

    def __init__(self, size=64, noise=0.1, is_train=True, seed=0, config_dir=None):
        rng = np.random.RandomState(1 if is_train else 2)  # fixed data, distinct splits
        self.x = rng.randn(size, FEATURES).astype("float32")
        self.y = self.x @ np.linspace(-1.0, 1.0, FEATURES, dtype="float32")[:, None]
        self.noise, self.is_train, self.seed, self.epoch = noise, is_train, seed, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.x)

    def __getitem__(self, index):
        noise = 0.0
        if self.is_train:
            noise = np.random.default_rng([self.seed, self.epoch, index]).normal() * self.noise
        return {"x": self.x[index], "y": (self.y[index] + noise).astype("float32")}


@MODELS.register()
class ToyRegression(BaseModel):
    """One trained net ``net`` and one optimizer ``optimizer``; evaluation reports ``mse``."""

    optimizer_keys = ("optimizer",)

    def __init__(self, hidden=16):
        super().__init__()
        self.add_net("net", paddle.nn.Sequential(
            paddle.nn.Linear(FEATURES, hidden), paddle.nn.BatchNorm1D(hidden), paddle.nn.ReLU(),
            paddle.nn.Linear(hidden, 1)))
        self.sums = MetricSums()

    def setup_input(self, batch):
        self.x, self.y = to_tensor(batch["x"]), to_tensor(batch["y"])

    def train_iter(self, optimizers):
        loss = ((self.nets["net"](self.x) - self.y) ** 2).mean()
        self.backward_and_step(loss, optimizers, "optimizer")
        return {"mse_loss": float(loss)}

    def test_iter(self):
        with paddle.no_grad():
            loss = ((self.net("net")(self.x) - self.y) ** 2).mean()
        self.sums.add("mse_loss", float(loss), self.y.shape[0])

    def eval_metrics(self):
        return self.sums.means()


def toy_config(out, overrides=None):
    """A training config of the toy (6 iterations, eval + checkpoint every 3, lr decaying from
    iteration 2); ``overrides`` ({dotted key: value}) on top. Returns an AttrDict."""
    cfg = {"total_iters": 6, "output_dir": str(out), "seed": 0, "enable_visualdl": False,
           "model": {"name": "ToyRegression", "hidden": 16},
           "dataset": {"train": {"name": "ToyPairs", "size": 64, "batch_size": 8},
                       "test": {"name": "ToyPairs", "size": 16, "batch_size": 8}},
           "optimizer": {"optimizer": {"name": "Adam", "net_names": ["net"]}},
           "lr_scheduler": {"name": "LinearDecay", "learning_rate": 1e-2, "decay_iters": 4,
                            "start_iter": 2},
           "validate": {"interval": 3, "max_eval_steps": 1},
           "log_config": {"interval": 1},
           "snapshot_config": {"interval": 3, "keep_last": 1, "best_metric": "mse_loss"}}
    for key, value in (overrides or {}).items():
        *path, last = key.split(".")
        block = cfg
        for part in path:
            block = block.setdefault(part, {})
        block[last] = value
    return AttrDict(cfg)


def write_toy_config(path, out, overrides=None):
    """``toy_config`` written as a YAML file (for ``ppgan.engine.run.run``); returns its path."""
    from ppgan.utils.config import to_plain
    path.write_text(yaml.safe_dump(to_plain(toy_config(out, overrides))))
    return str(path)
