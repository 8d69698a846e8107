"""Datasets over the preprocessed LRS2 layout and the synthetic corpus writer."""

from .builder import DATASETS  # noqa: F401
from .builder import build_dataloader, build_dataset  # noqa: F401
from . import lrs2  # noqa: F401  (registers SyncNetDataset and Wav2LipDataset)
