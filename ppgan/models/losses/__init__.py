"""Losses."""

from .gan_loss import GANLoss  # noqa: F401
from .recon_loss import L1Loss  # noqa: F401
from .sync_loss import SyncLoss, sync_probability  # noqa: F401
