"""Datasets over the preprocessed corpus layout, and the loaders that feed them to the trainer.

``corpus`` reads a corpus (filelists, clips, mel and frame caches; ``frame_cache`` is the cache
file format), ``windows`` turns its clips into reproducible sample windows, ``lrs2`` holds the two
registered datasets, ``builder`` the registry and loaders. The tools that write corpora live in
``ppgan.corpus_tools``.
"""

from .builder import DATASETS  # noqa: F401
from .builder import build_dataloader, build_dataset  # noqa: F401
from . import lrs2  # noqa: F401  (registers SyncNetDataset and Wav2LipDataset)
