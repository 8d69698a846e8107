"""Optional augmentation of face windows, identical across every frame of one sample.

Lip-sync is learnt from how the mouth moves from frame to frame, so a window must not flicker:
one set of parameters is drawn per sample (from the sample's own seeded generator, so it is
reproducible) and applied to all of its frames. For the generator that includes the reference
window, so target and reference stay in the same colour and geometry.

Config (``augment:`` in a dataset block; omitted, ``null`` or ``{}`` means off)::

    augment: {brightness: 0.1, contrast: 0.1, saturation: 0.1, scale: 0.05, shift: 0.05}

Each value v draws uniformly from [-v, v]: brightness is added (images in [0, 1]), contrast and
saturation multiply by 1 + draw, scale zooms by 1 + draw about the centre, and shift moves by
draw * side in x and y independently.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from ..utils.errors import ConfigError

# Above these the crops stop looking like the faces the detector produces at inference time.
_LIMITS = {"brightness": 0.5, "contrast": 0.5, "saturation": 0.5, "scale": 0.3, "shift": 0.3}
# ITU-R BT.601 luma weights in BGR order, the ones OpenCV's grey conversion uses.
_LUMA_BGR = np.array([0.114, 0.587, 0.299], dtype=np.float32)


class WindowAugment:
    """Colour jitter and a small scale/shift, drawn once per sample.

    Args:
        brightness: max absolute offset added to [0, 1] pixels. Default: 0.
        contrast: max relative contrast change about the window's mean. Default: 0.
        saturation: max relative saturation change. Default: 0.
        scale: max relative zoom about the centre. Default: 0.
        shift: max translation as a fraction of the side, per axis. Default: 0.
    """

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0, scale: float = 0.0,
                 shift: float = 0.0) -> None:
        self.ranges = dict(brightness=brightness, contrast=contrast, saturation=saturation,
                           scale=scale, shift=shift)
        for key, value in self.ranges.items():
            if not isinstance(value, (int, float)) or not 0 <= value <= _LIMITS[key]:
                raise ConfigError(f"augment.{key} must be a number in [0, {_LIMITS[key]}], got {value!r}")

    def sample(self, rng: np.random.Generator) -> Dict[str, float]:
        """Draw one parameter set from ``rng`` (a ``numpy.random.Generator``)."""
        draw = {key: float(rng.uniform(-v, v)) if v > 0 else 0.0 for key, v in self.ranges.items()}
        # shift has two axes; the second draw is only taken when shifting is on.
        draw["shift_y"] = float(rng.uniform(-self.ranges["shift"], self.ranges["shift"])) \
            if self.ranges["shift"] > 0 else 0.0
        return draw

    def apply(self, frames: np.ndarray, params: Dict[str, float]) -> np.ndarray:
        """Apply one parameter set to every frame.

        Args:
            frames: (N, H, W, 3) float32 BGR in [0, 1].
            params: a dict from ``sample``.
        Returns:
            (N, H, W, 3) float32 BGR in [0, 1] (a new array).
        """
        out = self._warp(frames, params)
        if params["saturation"]:
            grey = (out @ _LUMA_BGR)[..., None]
            out = grey + (1.0 + params["saturation"]) * (out - grey)
        if params["contrast"]:
            mean = out.mean(dtype=np.float64)
            out = mean + (1.0 + params["contrast"]) * (out - mean)
        if params["brightness"]:
            out = out + params["brightness"]
        return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)

    @staticmethod
    def _warp(frames: np.ndarray, params: Dict[str, float]) -> np.ndarray:
        """The frames zoomed and shifted by ``params`` (a float32 copy when neither applies)."""
        import cv2

        zoom = 1.0 + params["scale"]
        height, width = frames.shape[1:3]
        dx, dy = params["shift"] * width, params["shift_y"] * height
        if zoom == 1.0 and dx == 0.0 and dy == 0.0:
            return frames.astype(np.float32, copy=True)
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        matrix = np.array([[zoom, 0.0, (1 - zoom) * cx + dx],
                           [0.0, zoom, (1 - zoom) * cy + dy]], dtype=np.float64)
        # Reflected borders: black bars would be an easy cue the networks could latch on to.
        return np.stack([cv2.warpAffine(frame, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_REFLECT_101) for frame in frames])


def build_augment(cfg: Any) -> Optional[WindowAugment]:
    """``WindowAugment`` from a config mapping; None, False or an empty mapping turn it off."""
    if not cfg:
        return None
    if not isinstance(cfg, dict):
        raise ConfigError(f"augment must be a mapping such as {{brightness: 0.1, scale: 0.05}}, got {cfg!r}")
    unknown = sorted(set(cfg) - set(_LIMITS))
    if unknown:
        raise ConfigError(f"unknown augment key {unknown[0]!r}; accepted: {', '.join(_LIMITS)}")
    return WindowAugment(**cfg)
