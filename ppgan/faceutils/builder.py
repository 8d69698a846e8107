"""Registry for face detectors."""

from ..utils.registry import Registry

DETECTORS = Registry("face detector")
