"""Oracle metrics of dubbed synthetic clips: how close generated mouths are to the true ones.

On the synthetic corpus the exact ground truth of a dubbing is known (``ppgan.corpus_tools.oracle``):
clip A's face and head poses with the mouth shapes of clip B, whose audio drives the generator.
Three rows compare frames with that oracle:

* **generated**: the generator's dubbed video;
* **input unchanged (floor)**: A's own frames, as if the generator returned its input;
* **oracle (ceiling)**: the oracle itself, through the same H.264 encoding as the generated
  video (so the ceiling shows what the codec alone costs).

Per row: ``lower_psnr`` / ``lower_ssim`` (the lower half of the face crop, where the mouth is;
PSNR from each video's mean squared error, then averaged over videos; SSIM averaged over frames,
then videos) and ``opening_corr``: the Pearson correlation, pooled over every frame of every
video, between the row's mouth opening and the oracle's, both measured by ``mouth_opening``.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from ..utils.errors import DataError

ORACLE_ROW_NAMES = ("generated", "input unchanged (floor)", "oracle (ceiling)")
ORACLE_ROW_KEYS = ("generated", "floor", "ceiling")

# Where the synthetic corpus draws the mouth in a face crop, as fractions of its side: centred,
# 0.64-0.88 of the height at the widest opening; the window stays inside the face at every pose.
MOUTH_ROWS = (0.55, 0.92)
MOUTH_COLUMNS = (0.38, 0.62)
# The open mouth's inside is the dark cavity (BGR 35, 20, 60) plus the white upper teeth, which
# cover the cavity's top third: counting only dark pixels would make a wide-open mouth with
# teeth measure smaller than a half-open one without. Skin, lips and tongue are neither.
CAVITY_MAX = 85  # every channel below: dark cavity (skin and lips have a channel >= 100)
TEETH_MIN = 215  # every channel above: teeth (the lightest skin has a channel <= 182)


def mouth_opening(frames: np.ndarray) -> np.ndarray:
    """Vertical extent of the open mouth's inside, per frame.

    Counts the rows of the mouth window (``MOUTH_ROWS`` x ``MOUTH_COLUMNS``) holding at least one
    cavity or teeth pixel: closed lips give ~0, the widest opening ~0.2 of the crop's height.

    Args:
        frames: (T, S, S, 3) uint8 BGR face crops (one (S, S, 3) crop is also accepted).
    Returns:
        (T,) float64 opening as a fraction of the crop's height.
    """
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise DataError(f"mouth_opening needs (T, S, S, 3) BGR frames, got shape {frames.shape}")
    height, width = frames.shape[1:3]
    window = frames[:, int(MOUTH_ROWS[0] * height):int(MOUTH_ROWS[1] * height),
                    int(MOUTH_COLUMNS[0] * width):int(np.ceil(MOUTH_COLUMNS[1] * width))]
    inside = (window.max(axis=-1) < CAVITY_MAX) | (window.min(axis=-1) > TEETH_MIN)
    return inside.any(axis=2).sum(axis=1) / float(height)


def lower_half(frames: np.ndarray) -> np.ndarray:
    """(T, S - S//2, S, 3): the lower half of face crops, where the generator draws the mouth."""
    frames = np.asarray(frames)
    return frames[:, frames.shape[1] // 2:]


def pearson(a: Union[Sequence[float], np.ndarray], b: Union[Sequence[float], np.ndarray]) -> Optional[float]:
    """Pearson correlation of two equal-length series; None when either is constant."""
    x = np.asarray(a, np.float64)
    y = np.asarray(b, np.float64)
    if len(x) != len(y) or len(x) < 2:
        raise DataError(f"correlation needs two series of equal length >= 2, got {len(x)} and {len(y)}")
    x, y = x - x.mean(), y - y.mean()
    denom = np.sqrt(np.sum(x * x) * np.sum(y * y))
    return None if denom == 0 else float(np.sum(x * y) / denom)


def codec_round_trip(frames: np.ndarray, fps: float = 25.0) -> np.ndarray:
    """The frames after the predictor's H.264 encoding (``VideoWriter`` defaults) and decoding."""
    from ..utils.video import VideoWriter, read_video

    folder = tempfile.mkdtemp(prefix="ppgan-oracle-")
    try:
        path = os.path.join(folder, "frames.mp4")
        with VideoWriter(path, fps) as writer:
            for frame in frames:
                writer.write(frame)
        decoded = read_video(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return decoded[:, :frames.shape[1], :frames.shape[2]]  # drop the padding of odd sides


def compare_with_oracle(frames: np.ndarray, oracle_frames: np.ndarray) -> Dict[str, Any]:
    """One video against its oracle.

    Args:
        frames, oracle_frames: (T, S, S, 3) uint8 BGR face crops of equal shape.
    Returns:
        dict: lower_psnr (dB, inf when identical), lower_ssim, opening (T,) and oracle_opening
        (T,) arrays, opening_corr (None when either opening is constant), frames.
    """
    from .image import frame_ssim

    frames, oracle_frames = np.asarray(frames), np.asarray(oracle_frames)
    if frames.shape != oracle_frames.shape:
        raise DataError(f"frames {frames.shape} and oracle {oracle_frames.shape} differ in shape: "
                        f"compare videos of the same length and crop size")
    gen, ref = lower_half(frames), lower_half(oracle_frames)
    mse = float(np.mean((gen.astype(np.float64) - ref.astype(np.float64)) ** 2))
    psnr = float("inf") if mse == 0 else float(10.0 * np.log10(255.0 ** 2 / mse))
    ssim = float(np.mean([frame_ssim(g, r) for g, r in zip(gen, ref)]))
    opening, oracle_opening = mouth_opening(frames), mouth_opening(oracle_frames)
    return {"lower_psnr": psnr, "lower_ssim": ssim, "opening": opening,
            "oracle_opening": oracle_opening, "opening_corr": pearson(opening, oracle_opening)
            if len(opening) > 1 else None, "frames": len(frames)}


def oracle_row(name: str, comparisons: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Aggregate ``compare_with_oracle`` results of several videos into one report row.

    Returns:
        dict(name, num_videos, lower_psnr, lower_ssim, opening_corr, opening_corr_mean):
        ``opening_corr`` pools every frame of every video, ``opening_corr_mean`` averages the
        per-video correlations that exist. Missing values are None.
    """
    row: Dict[str, Any] = {"name": name, "num_videos": len(comparisons), "lower_psnr": None, "lower_ssim": None,
           "opening_corr": None, "opening_corr_mean": None}
    if not comparisons:
        return row
    row["lower_psnr"] = float(np.mean([c["lower_psnr"] for c in comparisons]))
    row["lower_ssim"] = float(np.mean([c["lower_ssim"] for c in comparisons]))
    opening = np.concatenate([c["opening"] for c in comparisons])
    oracle_opening = np.concatenate([c["oracle_opening"] for c in comparisons])
    if len(opening) > 1:
        row["opening_corr"] = pearson(opening, oracle_opening)
    per_video = [c["opening_corr"] for c in comparisons if c["opening_corr"] is not None]
    row["opening_corr_mean"] = float(np.mean(per_video)) if per_video else None
    return row
