"""Registry for datasets."""

from ..utils.registry import Registry

DATASETS = Registry("dataset")
