"""Datasets over the preprocessed corpus layout, and the loaders that feed them to the trainer.

``lrs2`` holds the two registered datasets, ``frame_cache`` the per-clip cache format; the tools
that write corpora live in ``ppgan.corpus_tools``.
"""

from .builder import DATASETS  # noqa: F401
from .builder import build_dataloader, build_dataset  # noqa: F401
from . import lrs2  # noqa: F401  (registers SyncNetDataset and Wav2LipDataset)
