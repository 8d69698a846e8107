"""One face per frame over a video stream: batched detection, tracking, the no-face policy and
temporal smoothing.

Which face, when a frame shows several: the first face taken is the largest one; after that the
face overlapping the previous frame's box (IoU >= 0.3) is followed, so a second person entering
the shot does not steal the lip-sync; when the followed face is lost, the largest face again.

Speed: a frame is first searched only in a small square around the previous frame's face (the
region scaled so the face is about ``roi_size / 2.5`` pixels wide), which is many times cheaper than
a full-frame search - more so with a ``window_detector`` that only looks for faces of about that
size; only when that finds nothing overlapping the previous face is the whole frame searched,
downscaled so its longer side is at most ``detect_size`` pixels. Boxes are mapped back to
full-frame pixels. With ``detect_every = k`` only every k-th frame is searched; the frames in
between take the box interpolated between their searched neighbours (faces move little in 1/12 s
and boxes are smoothed over 5 frames anyway).
"""

from __future__ import annotations

import bisect
import dataclasses
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, TypeGuard, Union

import numpy as np

from ..utils.errors import ConfigError, MediaError
from .boxes import box_iou, fill_missing, pad_box, pick_face, smooth_boxes
from .detector import FaceDetector

NO_FACE_POLICIES = ("interpolate", "keep", "error")
_TRACK_MIN_IOU = 0.3
_ROI_SCALE = 2.5  # side of the tracking window, in face sizes
NOT_SEARCHED = "not searched"  # raw-box entry of a frame skipped by ``detect_every``

# One frame's raw entry: a (4,) box, None (searched, no face) or ``NOT_SEARCHED``.
RawBox = Union[np.ndarray, None, str]
# A tracking window: (x0, y0, side) in frame pixels.
Window = Tuple[float, float, float]


@dataclasses.dataclass
class FaceTrack:
    """Final per-frame face boxes of a clip.

    boxes: one entry per frame, an int array [x1, y1, x2, y2] (padded, smoothed, inside the
        frame) or None for a frame left unchanged because no face could be placed in it.
    detected / interpolated / kept: how many frames had a box from the detections (searched
        frames, and frames skipped by ``detect_every`` between two of them), a box filled in by
        the no-face policy, and no box at all.
    """

    boxes: List[Optional[np.ndarray]]
    detected: int
    interpolated: int
    kept: int


def is_out_of_memory(exc: BaseException) -> bool:
    """True for the errors Python, Paddle and OpenCV raise when memory runs out."""
    text = str(exc).replace(" ", "").lower()
    return isinstance(exc, MemoryError) or "outofmemory" in text or "resourceexhausted" in text


def _is_box(entry: object) -> TypeGuard[np.ndarray]:
    return isinstance(entry, np.ndarray)


class FaceTracker:
    """Feed frames in order with ``update``; read ``raw_boxes``: per frame a (4,) array, None (no
    face) or ``NOT_SEARCHED``.

    Args:
        detector: a ``FaceDetector``.
        batch_size: frames per ``detect_batch`` call; halves itself on out-of-memory. Default: 16.
        detect_size: longest side of a frame for the full-frame search. Default: 480.
        roi_size: side of the square tracking window given to the detector; 0 disables tracking
            windows (every frame is searched whole). Default: 128.
        window_detector: detector for the tracking windows, where a face spans about 40 % of
            the side (e.g. a Haar detector with a larger minimum face); default: ``detector``.
        detect_every: search every k-th frame only (the first frame always). Default: 1.
    """

    def __init__(self, detector: FaceDetector, batch_size: int = 16, detect_size: int = 480, roi_size: int = 128,
                 window_detector: Optional[FaceDetector] = None, detect_every: int = 1) -> None:
        if batch_size < 1 or detect_size < 32 or roi_size < 0 or detect_every < 1:
            raise ConfigError(f"face tracker needs batch_size >= 1, detect_size >= 32, roi_size >= 0 "
                              f"and detect_every >= 1, got {batch_size}, {detect_size}, {roi_size}, "
                              f"{detect_every}")
        self.detector = detector
        self.batch_size = int(batch_size)
        self.detect_size = int(detect_size)
        self.roi_size = int(roi_size)
        self.window_detector = window_detector or detector
        self.detect_every = int(detect_every)
        self.raw_boxes: List[RawBox] = []
        self._previous: Optional[np.ndarray] = None    # box (or None) of the last searched frame
        self._last_found: Optional[np.ndarray] = None  # the last box found at all

    def update(self, frames: Iterable[np.ndarray]) -> None:
        """Detect one face in each of ``frames`` (list of (H, W, 3) BGR uint8), in order."""
        batch = list(frames)
        start = len(self.raw_boxes)
        picked = [i for i in range(len(batch)) if (start + i) % self.detect_every == 0]
        entries: List[RawBox] = [NOT_SEARCHED] * len(batch)
        for i, box in zip(picked, self._search([batch[i] for i in picked])):
            entries[i] = box
        self.raw_boxes += entries

    def _search(self, frames: List[np.ndarray]) -> List[Optional[np.ndarray]]:
        """One box (or None) per frame, following the face of the previously searched frames."""
        if not frames:
            return []
        previous, last_found = self._previous, self._last_found
        roi_hits: List[Optional[np.ndarray]] = [None] * len(frames)
        if last_found is not None and self.roi_size:
            window = _roi_window(last_found, self.roi_size)
            crops = [_extract(frame, window, self.roi_size) for frame in frames]
            roi_hits = [_to_frame(dets, window, self.roi_size)
                        for dets in self._detect(crops, self.window_detector)]
        full: Dict[int, np.ndarray] = {}  # frame index -> its full-frame detections
        needs_full = [i for i, hits in enumerate(roi_hits) if hits is None or len(hits) == 0]
        full.update(zip(needs_full, self._detect_full([frames[i] for i in needs_full])))
        boxes: List[Optional[np.ndarray]] = []
        for i, frame in enumerate(frames):
            # A face lost for a few frames is picked up again where it was last seen.
            box = _follow(roi_hits[i], previous if previous is not None else last_found)
            if box is None:
                if i not in full:  # the window found something, but not the followed face
                    full[i] = self._detect_full([frame])[0]
                box = pick_face(full[i], previous, min_iou=_TRACK_MIN_IOU)
            previous, last_found = box, (box if box is not None else last_found)
            boxes.append(box)
        self._previous, self._last_found = previous, last_found
        return boxes

    def _detect_full(self, frames: List[np.ndarray]) -> List[np.ndarray]:
        """Full-frame detections, searched on downscaled copies, in full-frame pixels."""
        import cv2

        if not frames:
            return []
        small, scales = [], []
        for frame in frames:
            scale = min(1.0, self.detect_size / max(frame.shape[:2]))
            scales.append(scale)
            small.append(frame if scale == 1.0 else cv2.resize(
                frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
        results = self._detect(small, self.detector)
        return [np.column_stack([dets[:, :4] / scale, dets[:, 4:]])
                for dets, scale in zip(results, scales)]

    def _detect(self, images: List[np.ndarray], detector: FaceDetector) -> List[np.ndarray]:
        """``detector.detect_batch`` in chunks of ``batch_size``, halving it on out-of-memory."""
        results: List[np.ndarray] = []
        start = 0
        while start < len(images):
            chunk = images[start:start + self.batch_size]
            try:
                found = detector.detect_batch(chunk)
            except (MemoryError, RuntimeError) as exc:
                if not is_out_of_memory(exc) or self.batch_size == 1:
                    raise
                self.batch_size //= 2
                continue
            results += [np.asarray(d, dtype=np.float64).reshape(-1, 5) for d in found]
            start += len(chunk)
        return results


def _follow(hits: Optional[np.ndarray], previous: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """The window detection that continues the previous face, or None."""
    if hits is None or len(hits) == 0 or previous is None:
        return None
    overlaps = [box_iou(previous, b) for b in hits[:, :4]]
    best = int(np.argmax(overlaps))
    return hits[best, :4].copy() if overlaps[best] >= _TRACK_MIN_IOU else None


def _roi_window(box: np.ndarray, roi_size: int) -> Window:
    """Square window (x0, y0, side) around ``box``, ``_ROI_SCALE`` face sizes wide."""
    side = max(box[2] - box[0], box[3] - box[1]) * _ROI_SCALE
    side = max(side, float(roi_size))  # never upsample tiny faces beyond 1:1
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return cx - side / 2, cy - side / 2, side


def _extract(frame: np.ndarray, window: Window, roi_size: int) -> np.ndarray:
    """The window resampled to (roi_size, roi_size, 3); parts outside the frame are black."""
    import cv2

    x0, y0, side = window
    scale = roi_size / side
    h, w = frame.shape[:2]
    left, top = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    right, bottom = min(w, int(np.ceil(x0 + side))), min(h, int(np.ceil(y0 + side)))
    out = np.zeros((roi_size, roi_size, 3), dtype=np.uint8)
    if right <= left or bottom <= top:
        return out
    ox, oy = int(round((left - x0) * scale)), int(round((top - y0) * scale))
    cw = min(roi_size - ox, max(1, int(round((right - left) * scale))))
    ch = min(roi_size - oy, max(1, int(round((bottom - top) * scale))))
    if cw <= 0 or ch <= 0:
        return out
    out[oy:oy + ch, ox:ox + cw] = cv2.resize(frame[top:bottom, left:right], (cw, ch),
                                             interpolation=cv2.INTER_AREA)
    return out


def _to_frame(detections: np.ndarray, window: Window, roi_size: int) -> np.ndarray:
    """Map (K, 5) window-pixel detections back to frame pixels."""
    x0, y0, side = window
    factor = side / roi_size
    out = np.array(detections, dtype=np.float64).reshape(-1, 5)
    out[:, [0, 2]] = out[:, [0, 2]] * factor + x0
    out[:, [1, 3]] = out[:, [1, 3]] * factor + y0
    return out


def resolve_unsearched(raw_boxes: Sequence[RawBox]) -> List[Optional[np.ndarray]]:
    """Give frames skipped by ``detect_every`` a box from the searched frames around them.

    Between two searched frames that both have a face the box is interpolated linearly; after
    the last searched frame its box is copied; next to a searched frame without a face the
    skipped frame has no face either.

    Args:
        raw_boxes: list of (4,) arrays, None or ``NOT_SEARCHED``.
    Returns:
        list of (4,) arrays or None.
    """
    searched = [i for i, b in enumerate(raw_boxes) if b is not NOT_SEARCHED]
    out: List[Optional[np.ndarray]] = [b if _is_box(b) else None for b in raw_boxes]  # skipped: set below
    for i, entry in enumerate(raw_boxes):
        if entry is not NOT_SEARCHED:
            continue
        k = bisect.bisect(searched, i)
        before = raw_boxes[searched[k - 1]] if k > 0 else None
        if k == len(searched):
            out[i] = before.copy() if _is_box(before) else None
            continue
        after = raw_boxes[searched[k]]
        if _is_box(before) and _is_box(after):
            t = (i - searched[k - 1]) / (searched[k] - searched[k - 1])
            out[i] = (1 - t) * before + t * after
        else:
            out[i] = None
    return out


def finalize_track(raw_boxes: Sequence[RawBox], frame_shape: Sequence[int],
                   pads: Sequence[int] = (0, 10, 0, 0), smooth_window: int = 5, no_face: str = "interpolate",
                   max_gap: int = 25, source: str = "the video") -> FaceTrack:
    """Apply the no-face policy, padding and smoothing to raw per-frame boxes.

    Args:
        raw_boxes: list of (4,) [x1, y1, x2, y2] arrays, None (no face) or ``NOT_SEARCHED``,
            one per frame.
        frame_shape: (H, W, ...) of the frames.
        pads: (top, bottom, left, right) pixels added around each face. Default: (0, 10, 0, 0).
        smooth_window: boxes are averaged over this many frames centred on each (1 = off).
        no_face: "interpolate" fills gaps of at most ``max_gap`` frames between (or next to)
            detections and leaves longer gaps unchanged; "keep" leaves every faceless frame
            unchanged; "error" fails on the first faceless frame.
        source: how to name the clip in error messages.
    Returns:
        FaceTrack.
    Raises:
        MediaError: no face in any frame, or a faceless frame under "error".
    """
    if no_face not in NO_FACE_POLICIES:
        raise ConfigError(f"no_face must be one of {', '.join(NO_FACE_POLICIES)}, got {no_face!r}")
    resolved = resolve_unsearched(raw_boxes)
    total = len(resolved)
    missing = [i for i, b in enumerate(resolved) if b is None]
    if total == 0 or len(missing) == total:
        raise MediaError(f"no face found in any of the {total} frame(s) of {source}: use footage with "
                         f"a clearly visible frontal face, turn sideways footage upright with --rotate, or give the "
                         f"face's position with --box")
    if missing and no_face == "error":
        raise MediaError(f"no face in {len(missing)} of {total} frames of {source} (first at frame "
                         f"{missing[0]}): use --no_face interpolate or keep, or give --box")
    boxes, filled = list(resolved), 0
    if no_face == "interpolate":
        boxes, filled, _ = fill_missing(resolved, max_gap)
    padded = [None if b is None else pad_box(b, pads, frame_shape) for b in boxes]
    final: List[Optional[np.ndarray]] = [None] * total
    for start, stop in _runs(padded):
        run = [b for b in padded[start:stop] if b is not None]  # all of them: a run has no None
        smoothed = smooth_boxes(np.stack(run), max(1, int(smooth_window)))
        for offset, box in enumerate(np.round(smoothed).astype(np.int64)):
            final[start + offset] = box
    kept = sum(b is None for b in final)
    return FaceTrack(boxes=final, detected=total - len(missing), interpolated=filled, kept=kept)


def _runs(boxes: Sequence[Optional[np.ndarray]]) -> List[Tuple[int, int]]:
    """(start, stop) of each maximal run of non-None entries."""
    runs: List[Tuple[int, int]] = []
    start: Optional[int] = None
    for i, box in enumerate(list(boxes) + [None]):
        if box is not None and start is None:
            start = i
        elif box is None and start is not None:
            runs.append((start, i))
            start = None
    return runs
