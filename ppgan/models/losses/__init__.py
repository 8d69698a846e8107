"""Losses."""

from .gan_loss import GANLoss  # noqa: F401
from .recon_loss import ReconLoss  # noqa: F401
from .sync_loss import SyncLoss, sync_probability  # noqa: F401
