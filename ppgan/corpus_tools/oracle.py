"""The oracle of the synthetic corpus: the exact ground truth of a dubbing.

Every synthetic clip stores ``oracle.json`` beside its frames: its speaker's look, its hidden unit
track, its head poses (and, with raw videos, where the crop sits in the larger frame). From two
clips' plans the oracle draws what a perfect lip-sync model would output when clip A's face is
driven by clip B's audio: A's speaker at A's poses with the mouth shapes of B's track.

Frame alignment follows ``Wav2LipPredictor``: the output has one frame per frame of B's audio, and
output frame i shows source frame ``pingpong_index(i, len(A))`` (forward, backward, forward ...
when B is longer), or source frame 0 for a still image. Driven by its own audio, the oracle of a
clip is exactly the frames the corpus drew (before JPEG compression).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, Iterable, List, Optional

import numpy as np

from ..data.contract import pingpong_index
from ..utils.errors import DataError
from .synthetic_faces import ClipPlan, HeadPose, compose_raw_frame, draw_raw_scene, render_faces
from .synthetic_voice import UNITS, Speaker, mouth_shapes

PLAN_FILE = "oracle.json"
PLAN_FORMAT = 1


def plan_to_dict(plan: ClipPlan) -> Dict[str, Any]:
    """A JSON-ready dict of a ``ClipPlan`` (floats are stored exactly: JSON keeps their repr)."""
    poses = {field.name: [float(getattr(p, field.name)) for p in plan.poses]
             for field in dataclasses.fields(HeadPose)}
    data = {"format": PLAN_FORMAT, "img_size": int(plan.img_size),
            "speaker": dataclasses.asdict(plan.speaker),
            # unit names make the track readable and let a reader check it has the same units
            "units": [unit.name for unit in UNITS],
            "track": [int(u) for u in plan.track], "poses": poses}
    if plan.raw is not None:
        data["raw"] = plan.raw
    return data


def plan_from_dict(data: Any, source: str = "the plan") -> ClipPlan:
    """The ``ClipPlan`` of ``plan_to_dict``'s output.

    Raises:
        DataError: another format, other units, or missing / inconsistent fields.
    """
    try:
        if data.get("format") != PLAN_FORMAT:
            raise DataError(f"{source} has oracle format {data.get('format')!r}; this code reads "
                            f"format {PLAN_FORMAT}: regenerate the corpus")
        if data["units"] != [unit.name for unit in UNITS]:
            raise DataError(f"{source} was written with units {data['units']}, this code draws "
                            f"{[u.name for u in UNITS]}: regenerate the corpus")
        speaker_fields: Dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data["speaker"].items()}
        speaker = Speaker(**speaker_fields)
        track = np.asarray(data["track"], dtype=np.int64)
        columns = [data["poses"][field.name] for field in dataclasses.fields(HeadPose)]
    except (KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"{source} is not a synthetic clip's oracle plan ({type(exc).__name__}: "
                        f"{exc})") from None
    if len(track) == 0 or any(len(c) != len(track) for c in columns) or track.min() < 0 \
            or track.max() >= len(UNITS):
        raise DataError(f"{source}: track and poses disagree in length or hold unknown units")
    poses = [HeadPose(*values) for values in zip(*columns)]
    return ClipPlan(speaker=speaker, track=track, poses=poses, img_size=int(data["img_size"]),
                    raw=data.get("raw"))


def write_clip_plan(clip_dir: str, plan: ClipPlan) -> str:
    """Write ``<clip_dir>/oracle.json`` (through a temporary name, never half a file)."""
    path = os.path.join(clip_dir, PLAN_FILE)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(plan_to_dict(plan), f, separators=(",", ":"))
    os.replace(tmp, path)
    return path


def load_clip_plan(clip_dir: str) -> ClipPlan:
    """The ``ClipPlan`` stored in a synthetic clip folder.

    Raises:
        DataError: the folder has no ``oracle.json`` (not a synthetic clip, or written before
            the oracle existed) or it is unreadable.
    """
    path = os.path.join(clip_dir, PLAN_FILE)
    if not os.path.isfile(path):
        raise DataError(f"{clip_dir} has no {PLAN_FILE}: the oracle needs a synthetic corpus "
                        f"written by this version (tools/make_synthetic_data.py)")
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    return plan_from_dict(data, source=path)


def is_synthetic_corpus(dataroot: str, keys: Iterable[str]) -> bool:
    """True when every clip ``dataroot/<key>`` carries an oracle plan."""
    listed = list(keys)
    return bool(listed) and all(os.path.isfile(os.path.join(dataroot, k, PLAN_FILE)) for k in listed)


def dub_source_indices(num_output: int, num_source: int, still: bool = False) -> np.ndarray:
    """(num_output,) source frame shown at each output frame, as ``Wav2LipPredictor`` plays it."""
    if still:
        return np.zeros(num_output, dtype=np.int64)
    return np.array([pingpong_index(i, num_source) for i in range(num_output)], dtype=np.int64)


def render_oracle(face_plan: ClipPlan, audio_plan: ClipPlan, still: bool = False,
                  num_frames: Optional[int] = None) -> np.ndarray:
    """The ground truth of dubbing: ``face_plan``'s speaker and poses, ``audio_plan``'s mouths.

    Args:
        face_plan: the clip whose face is driven; audio_plan: the clip whose audio drives it
            (the same plan gives the clip itself).
        still: the face is a still image of the face clip's first frame (``--static``).
        num_frames: output frames (default: one per frame of the audio clip).
    Returns:
        (T, S, S, 3) uint8 BGR crops at the face clip's ``img_size``.
    """
    count = audio_plan.num_frames if num_frames is None else int(num_frames)
    if not 1 <= count <= audio_plan.num_frames:
        raise DataError(f"the oracle has {audio_plan.num_frames} frames of mouth shapes, "
                        f"{count} were asked for")
    sources = dub_source_indices(count, face_plan.num_frames, still)
    shapes = mouth_shapes(audio_plan.track)[:count]
    poses = [face_plan.poses[i] for i in sources]
    return render_faces(face_plan.speaker, shapes, poses, face_plan.img_size)


def source_frames(face_plan: ClipPlan, num_frames: int, still: bool = False) -> np.ndarray:
    """(T, S, S, 3) the face clip's own frames in output order: the input left unchanged (floor)."""
    sources = dub_source_indices(num_frames, face_plan.num_frames, still)
    shapes = mouth_shapes(face_plan.track)[sources]
    return render_faces(face_plan.speaker, shapes, [face_plan.poses[i] for i in sources],
                        face_plan.img_size)


def raw_oracle_frames(face_plan: ClipPlan, faces: np.ndarray) -> np.ndarray:
    """Full raw frames: oracle crops ``faces`` pasted into the face clip's raw scene.

    Raises:
        DataError: the clip was written without a raw video.
    """
    if face_plan.raw is None:
        raise DataError("this clip has no raw video layout: write the corpus with --raw-videos")
    scene = draw_raw_scene(face_plan.raw)
    return np.stack([compose_raw_frame(scene, face, face_plan.raw["box"]) for face in faces])
