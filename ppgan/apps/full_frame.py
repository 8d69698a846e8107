"""A full-frame check of the CLI path on the synthetic corpus: a clip's face moving inside a larger
scene, lip-synced with face detection, scored against the oracle drawn into the same scene.

``write_scene_inputs`` renders one corpus clip as a raw video (the clip's crops pasted into a
static scene, the crop drifting slowly so the face tracker has to follow it) and its first frame
as a still image; ``score_scene_result`` crops a lip-synced result at the known face boxes and
compares it with the oracle of the dubbing (``ppgan.metrics.oracle``).
"""

from __future__ import annotations

import os
from typing import Any, Dict, Sequence, Tuple

import numpy as np

from ..corpus_tools.oracle import dub_source_indices, load_clip_plan, render_oracle
from ..corpus_tools.synthetic_faces import compose_raw_frame, draw_raw_scene, plan_raw_layout
from ..corpus_tools.synthetic_voice import FPS
from ..metrics.oracle import compare_with_oracle
from ..utils.errors import DataError


def drifting_boxes(rng: np.random.Generator, num_frames: int, frame_size: Tuple[int, int],
                   base_box: Sequence[int], amplitude: int) -> np.ndarray:
    """(T, 4) int [top, bottom, left, right] per frame: ``base_box`` moved along a slow smooth path
    of up to ``amplitude`` pixels each way, always inside the frame."""
    height, width = frame_size
    top, bottom, left, right = base_box
    t = np.arange(num_frames) / FPS
    dy = amplitude * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0, 2 * np.pi))
    dx = amplitude * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0, 2 * np.pi))
    dy = np.clip(np.round(dy).astype(int), -top, height - bottom)
    dx = np.clip(np.round(dx).astype(int), -left, width - right)
    return np.stack([top + dy, bottom + dy, left + dx, right + dx], axis=1)


def write_scene_inputs(dataroot: str, face_key: str, out_dir: str, seed: int = 0,
                       frame_size: Tuple[int, int] = (256, 256), drift: int = 8) -> Dict[str, Any]:
    """Render clip ``face_key`` inside a scene: ``<out_dir>/input_video.mp4`` (with the clip's
    audio) and ``<out_dir>/input_still.png`` (its first frame).

    Returns:
        dict: video, still (paths), boxes ((T, 4) per source frame), frame_size.
    """
    import cv2

    from ..utils.audio import load_audio
    from ..utils.video import write_video

    plan = load_clip_plan(os.path.join(dataroot, face_key))
    crop = plan.img_size
    if frame_size[0] < crop + 2 * drift or frame_size[1] < crop + 2 * drift:
        raise DataError(f"a {frame_size[1]}x{frame_size[0]} scene is too small for {crop}-pixel "
                        f"faces drifting {drift} pixels")
    rng = np.random.default_rng([seed, 1 << 21])
    layout = plan_raw_layout(rng, (frame_size[0] - 2 * drift, frame_size[1] - 2 * drift), crop)
    layout["frame_size"] = [int(v) for v in frame_size]
    layout["box"] = [v + drift for v in layout["box"]]  # the base position, away from the edges
    boxes = drifting_boxes(rng, plan.num_frames, frame_size, layout["box"], drift)
    scene = draw_raw_scene(layout)
    faces = render_oracle(plan, plan)
    frames = [compose_raw_frame(scene, face, box) for face, box in zip(faces, boxes)]
    os.makedirs(out_dir, exist_ok=True)
    video = os.path.join(out_dir, "input_video.mp4")
    write_video(video, frames, FPS, audio=load_audio(os.path.join(dataroot, face_key, "audio.wav")))
    still = os.path.join(out_dir, "input_still.png")
    if not cv2.imwrite(still, frames[0]):
        raise DataError(f"could not write {still}")
    return {"video": video, "still": still, "boxes": boxes, "frame_size": list(frame_size)}


def score_scene_result(result_video: str, dataroot: str, face_key: str, audio_key: str, boxes: np.ndarray,
                       still: bool = False) -> Dict[str, Any]:
    """Compare a lip-synced scene video with the oracle at the known face boxes.

    Args:
        result_video: the predictor's output for ``write_scene_inputs``' video (or still) driven by
            ``audio_key``'s audio.
        boxes: the per-source-frame boxes of ``write_scene_inputs``.
        still: the input was the still image (source frame 0 throughout).
    Returns:
        dict: ``compare_with_oracle`` numbers of the generated crops (lower_psnr, lower_ssim,
        opening_corr, frames) and the crops themselves: ``generated`` and ``oracle`` (T, S, S, 3).
    """
    from ..utils.video import read_video

    face_plan = load_clip_plan(os.path.join(dataroot, face_key))
    audio_plan = load_clip_plan(os.path.join(dataroot, audio_key))
    frames = read_video(result_video)
    if len(frames) != audio_plan.num_frames:
        raise DataError(f"{result_video} has {len(frames)} frames, the audio of {audio_key} covers "
                        f"{audio_plan.num_frames}")
    sources = dub_source_indices(len(frames), face_plan.num_frames, still)
    crops = np.stack([frame[top:bottom, left:right]
                      for frame, (top, bottom, left, right) in zip(frames, boxes[sources])])
    oracle = render_oracle(face_plan, audio_plan, still=still)
    scores = compare_with_oracle(crops, oracle)
    return {"lower_psnr": scores["lower_psnr"], "lower_ssim": scores["lower_ssim"],
            "opening_corr": scores["opening_corr"], "frames": scores["frames"],
            "generated": crops, "oracle": oracle}


def face_detected(video: str, detector_name: str = "haar", samples: int = 5) -> float:
    """Share of ``samples`` evenly spaced frames of ``video`` in which the detector finds a face."""
    from ..faceutils.detector import build_detector
    from ..utils.video import read_video

    frames = read_video(video)
    picks = np.linspace(0, len(frames) - 1, min(samples, len(frames))).astype(int)
    found = build_detector(detector_name).detect_batch([frames[i] for i in picks])
    return float(np.mean([len(boxes) > 0 for boxes in found]))
