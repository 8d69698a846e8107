"""Face detection behind one interface (DETECTORS), box padding, smoothing and tracking."""

from .builder import DETECTORS  # noqa: F401
from .detector import BoxDetector, FaceDetector, build_detector  # noqa: F401
