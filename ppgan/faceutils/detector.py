"""The face-detector interface, its build function, and the fixed-box detector.

A detector takes a batch of BGR uint8 frames and returns, per frame, a ``(K, 5)`` array of
``[x1, y1, x2, y2, score]`` boxes in that frame's pixels. Detectors register in ``DETECTORS``
(``box`` here; ``haar`` and ``s3fd`` in their own modules) and are built by ``build_detector``.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

import numpy as np

from ..utils.errors import ConfigError
from ..utils.registry import build_from_config
from .builder import DETECTORS


class FaceDetector:
    """Base class: subclasses implement ``detect_batch``."""

    def detect_batch(self, frames: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Detect faces in a batch of frames.

        Args:
            frames: list of (H, W, 3) BGR uint8 arrays (sizes may differ).
        Returns:
            list of (K, 5) float arrays [x1, y1, x2, y2, score], one per frame.
        """
        raise NotImplementedError  # abstract


@DETECTORS.register("box")
class BoxDetector(FaceDetector):
    """A fixed face box given by the user: ``box = (top, bottom, left, right)`` in pixels.

    Like the reference ``--box`` flag; a bottom or right of -1 means the frame's full extent.
    """

    def __init__(self, box: Optional[Sequence[int]]) -> None:
        if box is None or len(box) != 4:
            raise ConfigError(f"the box detector needs box = top bottom left right, got {box!r}")
        self.box = [int(v) for v in box]

    def detect_batch(self, frames: Sequence[np.ndarray]) -> List[np.ndarray]:
        """One (1, 5) detection per frame: the box clipped to the frame, score 1."""
        top, bottom, left, right = self.box
        out = []
        for frame in frames:
            h, w = frame.shape[:2]
            y2 = h if bottom < 0 else min(bottom, h)
            x2 = w if right < 0 else min(right, w)
            y1, x1 = max(0, top), max(0, left)
            if y2 <= y1 or x2 <= x1:
                raise ConfigError(f"box {self.box} (top bottom left right) lies outside a "
                                  f"{w}x{h} frame")
            out.append(np.array([[x1, y1, x2, y2, 1.0]], dtype=np.float64))
        return out


def build_detector(name: str, **kwargs: Any) -> FaceDetector:
    """Build a registered detector by name, e.g. ``build_detector("box", box=[0, 96, 0, 96])``."""
    return build_from_config(dict(name=name, **kwargs), DETECTORS, where="face_detector")
