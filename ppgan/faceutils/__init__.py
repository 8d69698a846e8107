"""Face detection behind one interface (DETECTORS), box padding, smoothing and tracking."""

from .builder import DETECTORS  # noqa: F401
from .detector import BoxDetector, FaceDetector, build_detector  # noqa: F401
from . import haar, s3fd  # noqa: F401,E402  (register the haar and s3fd detectors, s3fd converter)
