"""Haar-cascade face detector: OpenCV's bundled frontal-face cascade, no weights to download.

opencv-python(-headless) 4.x ships the cascade XML files in ``cv2.data.haarcascades``; 5.x ships
none and has no ``CascadeClassifier``, which is why the project pins OpenCV below 5.
"""

from __future__ import annotations

import os
from typing import List, Sequence

import numpy as np

from ..utils.errors import ConfigError
from .builder import DETECTORS
from .detector import FaceDetector

DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"


def _cascade_path(cascade: str) -> str:
    """Resolve a bare cascade file name against OpenCV's bundled folder."""
    import cv2

    if os.path.isfile(cascade):
        return cascade
    folder = getattr(getattr(cv2, "data", None), "haarcascades", "") or ""
    return os.path.join(folder, cascade)


@DETECTORS.register("haar")
class HaarDetector(FaceDetector):
    """Frontal faces with a Viola-Jones cascade.

    Args:
        cascade: file name inside ``cv2.data.haarcascades`` or a path to a cascade XML.
            Default: "haarcascade_frontalface_default.xml".
        scale_factor: step between pyramid scales. Default: 1.1.
        min_neighbors: overlapping raw hits needed to keep a face; higher = fewer false faces.
            Default: 5.
        min_size_ratio: smallest face searched, as a fraction of the image's shorter side. Small
            faces cannot be lip-synced usefully anyway, and skipping them makes the search much
            cheaper. Default: 0.1.
    Scores are the cascade's final-stage confidences (larger is surer; not probabilities).
    """

    def __init__(self, cascade: str = DEFAULT_CASCADE, scale_factor: float = 1.1, min_neighbors: int = 5,
                 min_size_ratio: float = 0.1) -> None:
        import cv2

        if not hasattr(cv2, "CascadeClassifier"):
            raise ConfigError("this OpenCV build has no CascadeClassifier (OpenCV 5.x): install "
                              "opencv-python-headless<5 for the haar face detector")
        path = _cascade_path(cascade)
        classifier = cv2.CascadeClassifier(path) if os.path.isfile(path) else None
        if classifier is None or classifier.empty():
            raise ConfigError(f"cannot load Haar cascade {cascade!r} (looked at {path}): "
                              f"opencv-python-headless 4.x bundles {DEFAULT_CASCADE}")
        if not scale_factor > 1.0:
            raise ConfigError(f"haar scale_factor must be > 1, got {scale_factor}")
        self.classifier = classifier
        self.scale_factor = float(scale_factor)
        self.min_neighbors = int(min_neighbors)
        self.min_size_ratio = float(min_size_ratio)

    def detect_batch(self, frames: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Detect faces in each frame.

        Args:
            frames: list of (H, W, 3) BGR uint8 arrays.
        Returns:
            list of (K, 5) float arrays [x1, y1, x2, y2, score].
        """
        return [self._detect_one(frame) for frame in frames]

    def _detect_one(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        side = max(24, int(self.min_size_ratio * min(gray.shape[:2])))
        if side > min(gray.shape[:2]):
            return np.zeros((0, 5), dtype=np.float64)
        rects, _, weights = self.classifier.detectMultiScale3(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(side, side), outputRejectLevels=True)
        if len(rects) == 0:
            return np.zeros((0, 5), dtype=np.float64)
        xywh = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(weights, dtype=np.float64).reshape(-1)
        return np.column_stack([xywh[:, 0], xywh[:, 1], xywh[:, 0] + xywh[:, 2],
                                xywh[:, 1] + xywh[:, 3], scores])
