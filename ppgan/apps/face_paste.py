"""Pasting generated faces back into frames (the crops come from ``ppgan.data.contract.crop_face``).

The generator redraws only the lower half of its S x S input (the upper half is masked out of
the target and comes back blurred), so by default only the lower face is pasted, with a mask
that fades to zero at the box's edges: no rectangular seam, eyes untouched. ``hard`` pastes the
whole box as the reference inference does.
"""

from __future__ import annotations

import functools
from typing import Sequence, Union

import numpy as np

from ..data.contract import resize_face


def _smoothstep(t: Union[float, np.ndarray]) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@functools.lru_cache(maxsize=64)
def feather_mask(height: int, width: int) -> np.ndarray:
    """(height, width, 1) float32 weights of the generated face when pasting back.

    1 over the lower face, where the generator redraws the mouth; falling smoothly to 0 above the
    nose line (the generator only reproduces the upper half, blurred) and towards the
    box's sides and bottom, so no seam shows.
    """
    # Pixel centres from 0 (first row / column) to 1 (last), so the box's edge pixels get exactly 0.
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)
    vertical = _smoothstep((y - 0.40) / 0.18) * _smoothstep((1.0 - y) / 0.10)
    horizontal = _smoothstep(x / 0.15) * _smoothstep((1.0 - x) / 0.15)
    return (vertical[:, None] * horizontal[None, :])[:, :, None].astype(np.float32)


def paste_face(frame: np.ndarray, box: Union[Sequence[int], np.ndarray], face: np.ndarray, mode: str = "feather",
               inplace: bool = False) -> np.ndarray:
    """Paste a generated face back into the frame.

    Args:
        frame: (H, W, 3) uint8; box: [x1, y1, x2, y2]; face: (S, S, 3) float in [0, 255].
        mode: "feather" blends with ``feather_mask``; "hard" replaces the whole box (reference).
        inplace: write into ``frame`` (saves a full-frame copy) instead of a copy of it.
    Returns:
        (H, W, 3) uint8 frame.
    """
    x1, y1, x2, y2 = (int(v) for v in box)
    out = frame if inplace else frame.copy()
    resized = resize_face(face.astype(np.float32), x2 - x1, y2 - y1)
    if mode == "hard":
        out[y1:y2, x1:x2] = np.clip(resized + 0.5, 0, 255).astype(np.uint8)
        return out
    region = out[y1:y2, x1:x2].astype(np.float32)
    blended = region + feather_mask(y2 - y1, x2 - x1) * (resized - region)
    out[y1:y2, x1:x2] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    return out
