"""The lip-sync data contract: what a face crop, a window and a mel window are, everywhere.

Preprocessing, the frame cache, the datasets, the training models, the predictor and the LSE
scorer all build their arrays with these functions, so the same frame and audio give the same
network input whichever path produced it (``tests/data/test_contract.py`` checks that end to end).

- **Face size** ``S``: square BGR crops; ``FACE_SIZE`` = 96 is the published networks' size.
  The networks also take ``96 * 2^a * 3^b`` (192, 288, 384, ...): ``face_size_factors`` says
  which extra stages bring such a face down to 96.
- **Resampling**: ``resize_face`` is the one resize of faces (crop -> S, stored crop -> S,
  generated face -> box): area averaging when shrinking (no aliasing), bilinear otherwise
  (area "enlarging" replicates pixels into blocks).
- **Lower half**: rows ``S // 2`` onwards (``S`` is even). The generator's target has them
  zeroed (``generator_faces``); the expert and the quality discriminator see only them
  (``lower_half_stack``, ``lower_half``).
- **Windows**: ``SYNC_T`` = 5 consecutive frames; stacked on channels time-major (frame t in
  channels 3t..3t+2) for the expert.
- **Mel windows**: video frame i at ``fps`` starts at mel step ``mel_index(i + offset, fps)``
  = int(80 * (i + offset) / fps) and spans ``MEL_STEP_SIZE`` = 16 steps (0.2 s). The expert's
  window for the T frames starting at s is the one at s (offset 0). The generator's per-frame
  windows use a frame offset: the reference trains with ``TRAIN_MEL_FRAME_OFFSET`` = -1 and
  infers with ``INFERENCE_MEL_FRAME_OFFSET`` = 0.
- **Looping**: a face video shorter than the audio plays 0..n-1, n-2..1, 0..n-1, ...
  (``pingpong_index``), in the predictor and in the synthetic corpus's oracle renders alike.
- **Edge policy** (one for every reader): a window that would start before the first mel step
  or end after the last is moved inside (clamped); a mel shorter than one window is first
  padded at the end with silence (-4, the mel of digital silence). Datasets and the scorer only
  ask for windows that fit (``mel_window_fits``), so only inference ever sees a clamped window.

Layouts: images are (H, W, 3) uint8 BGR; network faces are channels-first float32 in [0, 1].
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Sequence, Tuple, TypeVar, Union

import numpy as np

from ..utils.audio import MAX_ABS_VALUE, MEL_STEP_SIZE, mel_index
from ..utils.errors import ConfigError

FACE_SIZE = 96                  # side of the published networks' face crops
SYNC_T = 5                      # frames per window (the expert's input, a generator training clip)
TRAIN_MEL_FRAME_OFFSET = -1     # reference training: frame f's mel window starts at frame f - 1
INFERENCE_MEL_FRAME_OFFSET = 0  # reference inference: at frame f itself
MEL_SILENCE = -MAX_ABS_VALUE    # mel value of digital silence (the normalised floor)
STAGE_FACTORS = (2, 3)          # downsampling factors of the stages that bring a face to 96
RESIZE_POLICY = "area-down-linear-up"  # named in frame-cache signatures: a change rebuilds caches

if TYPE_CHECKING:  # paddle only for the hints: the contract itself is numpy and cv2
    import paddle

# The half/stack helpers slice numpy arrays and paddle tensors alike and return the same kind.
Faces = TypeVar("Faces", np.ndarray, "paddle.Tensor")

__all__ = ["FACE_SIZE", "SYNC_T", "MEL_STEP_SIZE", "TRAIN_MEL_FRAME_OFFSET", "INFERENCE_MEL_FRAME_OFFSET",
           "check_face_size", "face_size_factors", "resize_face", "crop_face", "to_unit_float",
           "upper_half", "lower_half", "mask_lower_half", "generator_faces", "expert_face_shape", "lower_half_stack", "mel_index",
           "mel_window_fits", "pad_mel", "mel_window", "mel_windows"]


# --------------------------------------------------------------------------------- face size

def check_face_size(img_size: int, where: str = "img_size") -> int:
    """``img_size`` as an int if it is a usable crop side (positive and even, so halves are exact).

    Raises:
        ConfigError: naming ``where``.
    """
    if isinstance(img_size, bool) or not isinstance(img_size, (int, np.integer)) or img_size <= 0 \
            or img_size % 2:
        raise ConfigError(f"{where} must be a positive even integer (pixels), got {img_size!r}")
    return int(img_size)


def face_size_factors(img_size: int, where: str = "img_size") -> Tuple[int, ...]:
    """Downsampling factors of the stages that bring an ``img_size`` face to 96, first stage first.

    Factors of 2 come first (they are the cheaper stages at full resolution), then factors of 3:
    192 -> (2,), 288 -> (3,), 384 -> (2, 2), 576 -> (2, 3); 96 -> () (the published network).

    Raises:
        ConfigError: ``img_size`` is not 96 * 2^a * 3^b.
    """
    size = check_face_size(img_size, where)
    ratio, remainder = divmod(size, FACE_SIZE)
    factors = []
    for factor in STAGE_FACTORS:
        while remainder == 0 and ratio % factor == 0:
            factors.append(factor)
            ratio //= factor
    if remainder or ratio != 1:
        raise ConfigError(f"{where} must be 96 times a product of 2s and 3s (96, 192, 288, 384, "
                          f"576, ...) for the networks, got {img_size!r}")
    return tuple(factors)


# --------------------------------------------------------------------------------- resampling

def resize_face(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """THE face resampling: ``image`` (h, w, C) -> (height, width, C), same dtype.

    Area averaging when both sides shrink or stay, bilinear when either side grows.
    An image already at the size is returned as it is.
    """
    import cv2

    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    interpolation = cv2.INTER_AREA if height <= h and width <= w else cv2.INTER_LINEAR
    return cv2.resize(image, (int(width), int(height)), interpolation=interpolation)


def crop_face(frame: np.ndarray, box: Union[Sequence[int], np.ndarray], img_size: int) -> np.ndarray:
    """The ``[x1, y1, x2, y2]`` box of ``frame`` (H, W, 3) resized to (img_size, img_size, 3).

    The box must lie inside the frame (``faceutils.boxes.pad_box`` clips boxes to it).
    """
    x1, y1, x2, y2 = (int(v) for v in box)
    return resize_face(frame[y1:y2, x1:x2], img_size, img_size)


def to_unit_float(pixels: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """uint8 pixels as float32 in [0, 1], into ``out`` when given, else into a new C-ordered array."""
    if out is None:
        out = np.empty(pixels.shape, dtype=np.float32)  # C order whatever the input's strides are
    return np.multiply(pixels, np.float32(1.0 / 255.0), out=out, dtype=np.float32)


# --------------------------------------------------------------------------------- lower half

def upper_half(faces: Faces) -> Faces:
    """The rows above the lower half: ``faces[..., :H // 2, :]`` (numpy or paddle; a view for numpy)."""
    return faces[..., :faces.shape[-2] // 2, :]


def lower_half(faces: Faces) -> Faces:
    """The lower-half rows of faces whose last two axes are (H, W): ``faces[..., H // 2:, :]``.

    Works on numpy arrays and paddle tensors alike (a view for numpy).
    """
    return faces[..., faces.shape[-2] // 2:, :]


def mask_lower_half(faces: np.ndarray) -> np.ndarray:
    """Zero the lower half of (..., H, W) faces in place (what the generator has to draw); returns them."""
    faces[..., faces.shape[-2] // 2:, :] = 0
    return faces


def generator_faces(target: np.ndarray, reference: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """The generator's face input: the masked target then the reference, on channels.

    Args:
        target, reference: (N, 3, ..., S, S) uint8 BGR (e.g. (N, 3, S, S) frames or
            (N, 3, T, S, S) clips; any strides).
        out: optional (N, 6, ..., S, S) float32 array to fill.
    Returns:
        (N, 6, ..., S, S) float32 in [0, 1]; channels 0-2 the target with its lower half zeroed.
    """
    if target.shape != reference.shape or target.ndim < 4 or target.shape[1] != 3:
        raise ValueError(f"need target and reference of one (N, 3, ..., S, S) shape, got "
                         f"{target.shape} and {reference.shape}")
    if out is None:
        out = np.empty((target.shape[0], 6) + target.shape[2:], dtype=np.float32)
    masked = out[:, :3]
    to_unit_float(upper_half(target), out=upper_half(masked))  # the lower half is not read at all
    mask_lower_half(masked)
    to_unit_float(reference, out=out[:, 3:])
    return out


def expert_face_shape(img_size: int, steps: int = SYNC_T) -> Tuple[int, int, int]:
    """(3 * steps, S/2, S): the shape of one ``lower_half_stack`` sample of S x S faces."""
    return 3 * steps, img_size - img_size // 2, img_size


def lower_half_stack(faces: Faces) -> Faces:
    """The expert's face input: lower halves of T frames stacked on channels, in time order.

    Args:
        faces: (B, 3, T, H, W) clips (the generator's clip layout), numpy array or paddle tensor,
            any dtype.
    Returns:
        (B, 3T, H/2, W) of the same kind and dtype; frame t in channels 3t..3t+2.
    """
    batch, channels, steps, height, width = faces.shape
    lower = lower_half(faces)
    return lower.transpose([0, 2, 1, 3, 4]).reshape([batch, steps * channels, height - height // 2, width])


# --------------------------------------------------------------------------------- mel windows

def mel_window_fits(frames: Union[int, Sequence[int], np.ndarray], fps: float, mel_length: int, offset: int = 0,
                    steps: int = MEL_STEP_SIZE) -> Union[bool, np.ndarray]:
    """Whether the window of each video frame lies inside a mel of ``mel_length`` steps.

    Args:
        frames: int or (N,) ints; ``offset`` is added to each (the frame offset).
    Returns:
        bool, or (N,) bool array.
    """
    start = mel_index(np.asarray(frames) + offset, fps)
    return (start >= 0) & (start + steps <= mel_length)


def pad_mel(mel: np.ndarray, steps: int = MEL_STEP_SIZE) -> np.ndarray:
    """A (80, L) mel padded at the end with silence to at least ``steps`` steps (else ``mel``)."""
    if mel.shape[1] >= steps:
        return mel
    pad = np.full((mel.shape[0], steps - mel.shape[1]), MEL_SILENCE, dtype=mel.dtype)
    return np.concatenate([mel, pad], axis=1)


def mel_window(mel: np.ndarray, frame: int, fps: float, offset: int = 0,
               steps: int = MEL_STEP_SIZE) -> np.ndarray:
    """The (80, steps) mel window of video frame ``frame`` (+ ``offset``), edge policy applied.

    Args:
        mel: (80, L) spectrogram (``utils.audio.melspectrogram``).
    Returns:
        (80, steps) view of ``mel`` (a new array when ``mel`` is shorter than one window).
    """
    mel = pad_mel(mel, steps)
    start = min(max(0, mel_index(int(frame) + offset, fps)), mel.shape[1] - steps)
    return mel[:, start:start + steps]


def mel_windows(mel: np.ndarray, frames: Union[Sequence[int], np.ndarray], fps: float, offset: int = 0,
                steps: int = MEL_STEP_SIZE, out: Optional[np.ndarray] = None) -> np.ndarray:
    """``mel_window`` of each frame: (N,) frames -> (N, 80, steps) float32 (into ``out`` if given)."""
    frames = np.asarray(frames).reshape(-1)
    if out is None:
        out = np.empty((len(frames), mel.shape[0], steps), dtype=np.float32)
    for n, frame in enumerate(frames):
        out[n] = mel_window(mel, frame, fps, offset, steps)
    return out


def pingpong_index(output_index: int, num_source: int) -> int:
    """Source frame shown at ``output_index`` when playing 0..n-1, n-2..1, 0..n-1, ..."""
    if num_source <= 1:
        return 0
    position = output_index % (2 * (num_source - 1))
    return position if position < num_source else 2 * (num_source - 1) - position
