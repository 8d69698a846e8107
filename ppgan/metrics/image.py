"""Image quality of reconstructions: PSNR and SSIM (scikit-image) over paired video frames."""

from __future__ import annotations

from typing import Any, Dict, Iterable, Optional

import numpy as np

from ..utils.errors import DataError


def frame_ssim(generated: np.ndarray, reference: np.ndarray) -> float:
    """Mean SSIM of one (H, W, 3) uint8 frame against its reference (colour channels averaged)."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(reference, generated, channel_axis=-1, data_range=255))


class PairedFrameMetrics:
    """Accumulates PSNR and SSIM over the frame pairs of one video, streaming.

    PSNR is taken over the whole video (from the mean squared error of all its frames), so a few
    identical frames cannot make the average infinite; SSIM is the mean of per-frame SSIM.
    """

    def __init__(self, name: str = "video") -> None:
        self.name = name
        self.squared_error = 0.0
        self.values = 0
        self.ssim_sum = 0.0
        self.frames = 0

    def update(self, generated: np.ndarray, reference: np.ndarray) -> None:
        """Add one pair of (H, W, 3) uint8 frames of equal size."""
        if generated.shape != reference.shape:
            raise DataError(f"{self.name}: generated frame {generated.shape[1]}x"
                            f"{generated.shape[0]} differs from reference frame "
                            f"{reference.shape[1]}x{reference.shape[0]}; compare videos of one size")
        diff = generated.astype(np.float64) - reference.astype(np.float64)
        self.squared_error += float(np.sum(diff * diff))
        self.values += diff.size
        self.ssim_sum += frame_ssim(generated, reference)
        self.frames += 1

    def result(self) -> Optional[Dict[str, Any]]:
        """dict(psnr=dB (inf if every pair is identical), ssim, frames); None if nothing was added."""
        if self.frames == 0:
            return None
        mse = self.squared_error / self.values
        psnr = float("inf") if mse == 0 else float(10.0 * np.log10(255.0 ** 2 / mse))
        return {"psnr": psnr, "ssim": self.ssim_sum / self.frames, "frames": self.frames}


def video_psnr_ssim(generated_frames: Iterable[np.ndarray], reference_frames: Iterable[np.ndarray],
                    name: str = "video") -> Optional[Dict[str, Any]]:
    """PSNR / SSIM of two frame sequences, paired in order up to the shorter one.

    Args:
        generated_frames, reference_frames: iterables of (H, W, 3) uint8 frames.
    Returns:
        dict(psnr, ssim, frames) or None when either sequence is empty.
    """
    metrics = PairedFrameMetrics(name)
    for generated, reference in zip(generated_frames, reference_frames):
        metrics.update(np.asarray(generated), np.asarray(reference))
    return metrics.result()
