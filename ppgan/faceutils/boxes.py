"""Face-box helpers shared by preprocessing and inference.

Boxes are float arrays ``[x1, y1, x2, y2]`` in pixels of the frame they were found in.
Per-frame detections are ``(K, 5)`` arrays ``[x1, y1, x2, y2, score]`` (K may be 0).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

# One ``[x1, y1, x2, y2]`` box: an array or any sequence of four numbers.
Box = Union[np.ndarray, Sequence[float]]


def box_area(box: Box) -> float:
    """Area of an ``[x1, y1, x2, y2]`` box (0 for an empty or inverted one)."""
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``[x1, y1, x2, y2]`` boxes."""
    ix1, iy1 = max(a[0], b[0]), max(a[1], b[1])
    ix2, iy2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, ix2 - ix1) * max(0.0, iy2 - iy1)
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


def pick_face(detections: np.ndarray, previous: Optional[Box] = None,
              min_iou: float = 0.3) -> Optional[np.ndarray]:
    """Choose one face among a frame's detections.

    Rule: when the previous frame had a face and one of these overlaps it (IoU >= ``min_iou``),
    keep following that one (so a second person entering the shot does not steal the mouth);
    otherwise take the largest box.

    Args:
        detections: (K, 5) array of [x1, y1, x2, y2, score].
        previous: the box chosen in the previous frame, or None.
    Returns:
        (4,) float array, or None when K == 0.
    """
    detections = np.asarray(detections, dtype=np.float64).reshape(-1, 5)
    if len(detections) == 0:
        return None
    boxes = detections[:, :4]
    if previous is not None:
        overlaps = [box_iou(previous, b) for b in boxes]
        best = int(np.argmax(overlaps))
        if overlaps[best] >= min_iou:
            return boxes[best].copy()
    areas = [box_area(b) for b in boxes]
    return boxes[int(np.argmax(areas))].copy()


def pad_box(box: Box, pads: Sequence[int], frame_shape: Sequence[int]) -> np.ndarray:
    """Grow a box by ``pads = (top, bottom, left, right)`` pixels and clip it to the frame.

    Args:
        box: [x1, y1, x2, y2].
        frame_shape: (H, W, ...) of the frame.
    Returns:
        (4,) int array [x1, y1, x2, y2] with 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H.
    """
    top, bottom, left, right = pads
    h, w = frame_shape[:2]
    x1 = int(np.clip(round(box[0] - left), 0, w - 1))
    y1 = int(np.clip(round(box[1] - top), 0, h - 1))
    x2 = int(np.clip(round(box[2] + right), x1 + 1, w))
    y2 = int(np.clip(round(box[3] + bottom), y1 + 1, h))
    return np.array([x1, y1, x2, y2], dtype=np.int64)


def fill_missing(boxes: Sequence[Optional[Box]], max_gap: int
                 ) -> Tuple[List[Optional[np.ndarray]], int, List[Tuple[int, int]]]:
    """Interpolate missing boxes linearly between the nearest found neighbours.

    Gaps of at most ``max_gap`` frames that have a found box on both sides are filled; a gap at
    the start or end of at most ``max_gap`` frames copies its one neighbour. Longer gaps stay None.

    Args:
        boxes: list of (4,) arrays or None, one per frame.
    Returns:
        (filled list, number of frames filled, list of (start, end) long gaps left as None).
    """
    arrays = [None if b is None else np.asarray(b, dtype=np.float64) for b in boxes]
    known = {i: b for i, b in enumerate(arrays) if b is not None}  # frame -> its found box
    found = sorted(known)
    filled, long_gaps = 0, []
    if not found:
        return arrays, 0, ([(0, len(arrays))] if arrays else [])
    out = list(arrays)
    edges = [(-1, found[0])] + list(zip(found[:-1], found[1:])) + [(found[-1], len(arrays))]
    for before, after in edges:
        gap = after - before - 1
        if gap <= 0:
            continue
        if gap > max_gap:
            long_gaps.append((before + 1, after))
            continue
        for i in range(before + 1, after):
            if before < 0:
                out[i] = known[after].copy()
            elif after >= len(arrays):
                out[i] = known[before].copy()
            else:
                t = (i - before) / (after - before)
                out[i] = (1 - t) * known[before] + t * known[after]
            filled += 1
    return out, filled, long_gaps


def smooth_boxes(boxes: np.ndarray, window: int = 5) -> np.ndarray:
    """Average each box over a centred window of ``window`` frames (shrunk at the ends).

    Args:
        boxes: (T, 4) array with no missing entries.
    Returns:
        (T, 4) float array.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if window <= 1 or len(boxes) <= 1:
        return boxes.copy()
    half = window // 2
    out = np.empty_like(boxes)
    for i in range(len(boxes)):
        lo, hi = max(0, i - half), min(len(boxes), i + half + 1)
        out[i] = boxes[lo:hi].mean(axis=0)
    return out
