"""Datasets over the preprocessed LRS2 layout and the synthetic corpus writer."""

from .builder import DATASETS  # noqa: F401
