"""Drawn faces of the synthetic corpus: head poses, the face and mouth drawing, clip plans, raw scenes.

Per frame a face (per-speaker skin, face shape, hair, eyes with blinks, small head motion) whose
mouth height, width and roundness are the unit's of ``synthetic_voice``, blended on the frames
either side of a unit boundary. A ``ClipPlan`` holds everything a clip's frames are drawn from
(the oracle stores it per clip); raw scenes place a crop in a larger frame.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..data.contract import FACE_SIZE
from ..utils.errors import ConfigError
from .synthetic_voice import FPS, Speaker, bgr_tuple, mouth_shapes, sample_unit_track, synthesize_audio


@dataclasses.dataclass
class HeadPose:
    """Where the head is in one frame (offset and scale of the drawing) and how open its eyes are."""

    dx: float  # head offset, pixels
    dy: float
    scale: float
    eye_open: float  # 1 open, 0 closed


def _head_poses(rng: np.random.Generator, num_frames: int, img_size: int) -> List[HeadPose]:
    """Per-frame small head motion (a couple of pixels, +-2 % scale) and blinks every 1.5-4 s."""
    t = np.arange(num_frames) / FPS
    unit = img_size / FACE_SIZE  # the drawing is designed at 96 px and scales with the crop
    dx = rng.uniform(0.5, 1.5) * unit * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t + rng.uniform(0, 6.3))
    dy = rng.uniform(0.5, 1.2) * unit * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t + rng.uniform(0, 6.3))
    scale = 1.0 + 0.02 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t + rng.uniform(0, 6.3))
    eye_open = np.ones(num_frames)
    blink = rng.uniform(0.2, 2.0)
    while blink * FPS < num_frames:
        start = int(blink * FPS)
        eye_open[start:start + 3] = (0.4, 0.0, 0.5)[:len(eye_open[start:start + 3])]
        blink += rng.uniform(1.5, 4.0)
    return [HeadPose(*values) for values in zip(dx, dy, scale, eye_open)]


_SHIFT = 4  # cv2 drawing with 4 fractional bits: sub-pixel positions keep small motion smooth


def _fixed(value: float) -> int:
    """``value`` in OpenCV's fixed-point subpixel units (``_SHIFT`` fractional bits)."""
    return int(round(value * (1 << _SHIFT)))


def _ellipse(image: np.ndarray, centre: Sequence[float], axes: Sequence[float], colour: Tuple[int, ...],
             thickness: int = -1, start: int = 0, end: int = 360) -> None:
    """An anti-aliased ellipse with subpixel centre and axes."""
    import cv2

    cv2.ellipse(image, (_fixed(centre[0]), _fixed(centre[1])),
                (max(_fixed(axes[0]), 1), max(_fixed(axes[1]), 1)), 0, start, end, colour,
                thickness, cv2.LINE_AA, _SHIFT)


def _draw_mouth(image: np.ndarray, centre: Tuple[float, float], shape: Sequence[float], speaker: Speaker,
                size: float) -> None:
    """Lips, and when open the dark cavity, upper teeth and tongue, in the face's lower half."""
    height, width, roundness = shape
    half_width = size * (0.06 + 0.12 * width)
    half_height = size * 0.10 * height
    lip = size * (0.016 + 0.018 * roundness)  # rounded lips pout: thicker
    _ellipse(image, centre, (half_width + lip, half_height + lip), speaker.lips)
    if half_height < 0.6:
        # Pressed lips: a dark seam across the mouth.
        _ellipse(image, centre, (half_width, 0.35), (40, 30, 70))
        return
    _ellipse(image, centre, (half_width, half_height), (35, 20, 60))
    if height > 0.2:
        teeth_centre = (centre[0], centre[1] - 0.6 * half_height)
        _ellipse(image, teeth_centre, (0.75 * half_width, 0.32 * half_height), (235, 240, 245))
        tongue_centre = (centre[0], centre[1] + 0.55 * half_height)
        _ellipse(image, tongue_centre, (0.6 * half_width, 0.35 * half_height), (90, 80, 185))


def _face_geometry(speaker: Speaker, pose: HeadPose, img_size: int) -> Tuple[float, float, float, float, float]:
    """(size, cx, cy, rx, ry) of a face drawn at ``pose``: scaled side, centre and half axes."""
    size = img_size * pose.scale
    cx, cy = img_size * 0.5 + pose.dx, img_size * 0.53 + pose.dy
    return size, cx, cy, speaker.face_rx * size, speaker.face_ry * size


def mouth_box(speaker: Speaker, shape: Sequence[float], pose: HeadPose,
              img_size: int) -> Tuple[float, float, float, float]:
    """(left, top, right, bottom) float pixel bounds of the lips drawn for ``shape`` at ``pose``
    (anti-aliasing may touch one more pixel on each side)."""
    size, cx, cy, _, ry = _face_geometry(speaker, pose, img_size)
    height, width, roundness = shape
    lip = size * (0.016 + 0.018 * roundness)
    half_width = size * (0.06 + 0.12 * width) + lip
    half_height = max(size * 0.10 * height, 0.35) + lip
    centre_y = cy + 0.5 * ry
    return cx - half_width, centre_y - half_height, cx + half_width, centre_y + half_height


def draw_face(speaker: Speaker, shape: Sequence[float], pose: HeadPose, img_size: int) -> np.ndarray:
    """Render one face crop.

    Args:
        shape: mouth [height, width, roundness] in [0, 1].
        pose: head offset/scale and eye openness.
    Returns:
        (img_size, img_size, 3) BGR uint8; the mouth lies in the lower half.
    """
    import cv2

    size, cx, cy, rx, ry = _face_geometry(speaker, pose, img_size)
    image = np.empty((img_size, img_size, 3), np.uint8)
    image[:] = speaker.background
    _ellipse(image, (cx, cy - 0.25 * ry), (1.08 * rx, 0.85 * ry), speaker.hair)  # hair behind
    _ellipse(image, (cx, cy), (rx, ry), speaker.skin)
    _ellipse(image, (cx, cy - 0.55 * ry), (1.02 * rx, 0.5 * ry), speaker.hair, start=180, end=360)
    shade = bgr_tuple(np.array(speaker.skin) * 0.75)
    for side in (-1, 1):
        eye = (cx + side * 0.38 * rx, cy - 0.15 * ry)
        brow = (eye[0] - 0.15 * rx, eye[1] - 0.17 * ry, eye[0] + 0.15 * rx, eye[1] - 0.2 * ry)
        cv2.line(image, (_fixed(brow[0]), _fixed(brow[1])), (_fixed(brow[2]), _fixed(brow[3])),
                 speaker.hair, max(1, int(round(size / 48))), cv2.LINE_AA, _SHIFT)
        if pose.eye_open > 0.15:
            _ellipse(image, eye, (0.17 * rx, 0.09 * ry * pose.eye_open), (245, 245, 245))
            _ellipse(image, eye, (0.07 * rx, min(0.07 * rx, 0.09 * ry * pose.eye_open)), speaker.iris)
        else:
            _ellipse(image, eye, (0.17 * rx, 0.4), shade)
    _ellipse(image, (cx, cy + 0.15 * ry), (0.08 * rx, 0.12 * ry), shade)  # nose
    _draw_mouth(image, (cx, cy + 0.5 * ry), shape, speaker, size)
    return image


@dataclasses.dataclass
class ClipPlan:
    """Everything the frames of one clip are drawn from (what the oracle stores per clip).

    speaker: the ``Speaker``; track: (T,) unit indices into ``UNITS``; poses: T head poses;
    img_size: side of the crops; raw: where the crop sits in its raw video, if any.
    """

    speaker: Speaker
    track: np.ndarray
    poses: List[HeadPose]
    img_size: int
    raw: Optional[Dict[str, Any]] = None  # the raw video's layout (``plan_raw_layout``) when one was written

    @property
    def num_frames(self) -> int:
        """T, the clip's length in frames."""
        return len(self.track)


def render_faces(speaker: Speaker, shapes: np.ndarray, poses: Sequence[HeadPose],
                 img_size: int) -> np.ndarray:
    """(T, img_size, img_size, 3) uint8 BGR frames: frame i draws ``shapes[i]`` at ``poses[i]``."""
    return np.stack([draw_face(speaker, shape, pose, img_size) for shape, pose in zip(shapes, poses)])


def plan_clip(rng: np.random.Generator, speaker: Speaker, num_frames: int,
              img_size: int = FACE_SIZE) -> Tuple[ClipPlan, np.ndarray]:
    """Draw a clip's hidden track, its voice and its head poses (in this order from ``rng``).

    Returns:
        (ClipPlan, wav (T * 640,) float32 16 kHz).
    """
    if num_frames < 1:
        raise ConfigError(f"a synthetic clip needs at least one frame, got {num_frames}")
    track = sample_unit_track(rng, num_frames)
    wav = synthesize_audio(rng, speaker, track)
    poses = _head_poses(rng, num_frames, img_size)
    return ClipPlan(speaker=speaker, track=track, poses=poses, img_size=int(img_size)), wav


def synthesize_clip_plan(rng: np.random.Generator, speaker: Speaker, num_frames: int,
                         img_size: int = FACE_SIZE) -> Tuple[ClipPlan, np.ndarray, np.ndarray]:
    """``plan_clip`` and the frames it draws: (ClipPlan, frames (T, S, S, 3) uint8, wav)."""
    plan, wav = plan_clip(rng, speaker, num_frames, img_size)
    frames = render_faces(speaker, mouth_shapes(plan.track), plan.poses, img_size)
    return plan, frames, wav


def synthesize_clip(rng: np.random.Generator, speaker: Speaker, num_frames: int,
                    img_size: int = FACE_SIZE) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One talking-face clip in memory.

    Returns:
        frames: (T, img_size, img_size, 3) uint8 BGR face crops;
        wav: (T * 640,) float32 16 kHz audio, frame i <-> samples [i*640, (i+1)*640);
        mouth_open: (T,) float mouth height in [0, 1] (the drawn opening, blends included).
    """
    plan, frames, wav = synthesize_clip_plan(rng, speaker, num_frames, img_size)
    return frames, wav, mouth_shapes(plan.track)[:, 0].copy()


def plan_raw_layout(rng: np.random.Generator, frame_size: Sequence[int], crop: int) -> Dict[str, Any]:
    """Where a raw video's crop sits and what surrounds it (drawn from ``rng`` in this order).

    Returns:
        dict: frame_size [H, W]; box [top, bottom, left, right] of the crop (bottom/right
        exclusive); gradient [top colour, bottom colour]; blocks [[x, y, w, h, [b, g, r]], ...].
    """
    height, width = frame_size
    top = int(rng.integers(0, height - crop + 1))
    left = int(rng.integers(0, width - crop + 1))
    gradient = [[int(v) for v in rng.integers(30, 226, 3)] for _ in range(2)]
    blocks = []
    for _ in range(3):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(8, max(9, width // 3))), int(rng.integers(8, max(9, height // 3)))
        blocks.append([x, y, w, h, list(bgr_tuple(rng.integers(0, 256, 3)))])
    return {"frame_size": [int(height), int(width)], "box": [top, top + crop, left, left + crop],
            "gradient": gradient, "blocks": blocks}


def draw_raw_scene(layout: Dict[str, Any]) -> np.ndarray:
    """(H, W, 3) uint8 static backdrop of a raw video (``plan_raw_layout``): a gradient and blocks."""
    import cv2

    height, width = layout["frame_size"]
    top, bottom = (np.array(c, np.float64) for c in layout["gradient"])
    ramp = np.linspace(0, 1, height)[:, None, None]
    scene = np.broadcast_to(top * (1 - ramp) + bottom * ramp, (height, width, 3)).astype(np.uint8).copy()
    for x, y, w, h, colour in layout["blocks"]:
        cv2.rectangle(scene, (x, y), (x + w, y + h), tuple(int(v) for v in colour), -1)
    return scene


def compose_raw_frame(scene: np.ndarray, face: np.ndarray, box: Sequence[int]) -> np.ndarray:
    """A raw frame: ``face`` pasted into a copy of ``scene`` at ``box`` = [top, bottom, left, right]."""
    top, bottom, left, right = box
    raw = scene.copy()
    raw[top:bottom, left:right] = face
    return raw
