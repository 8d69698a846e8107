"""Score dubbed videos of synthetic clips against the oracle (``ppgan.metrics.oracle``).

A dubbed video shows the face of clip A driven by the audio of clip B (``pairs``: (A, B) keys of
the corpus). For each, the oracle (A's face with B's mouths), the floor (A's frames unchanged)
and the ceiling (the oracle through the video codec) are drawn from the clips' stored plans and
compared with the generated frames. Used by ``evaluate_generator_on_split`` (hence
``tools/main.py --evaluate-only`` and the demo) and ``tools/evaluate.py --oracle``.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..corpus_tools.oracle import load_clip_plan, render_oracle, source_frames
from ..metrics.oracle import (ORACLE_ROW_KEYS, ORACLE_ROW_NAMES, codec_round_trip,
                              compare_with_oracle, oracle_row)
from ..utils.errors import DataError
from .clips import crop_face, iter_clip_frames

PAIRS_FILE = "pairs.json"  # written beside dubbed videos: which clip's audio drove each face

# (face clip key, audio clip key): the audio of the second clip drove the face of the first.
Pair = Tuple[str, str]


def write_pairs(folder: str, pairs: Iterable[Sequence[str]]) -> str:
    """Record ``[[face key, audio key], ...]`` in ``<folder>/pairs.json``; returns its path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, PAIRS_FILE)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump([list(pair) for pair in pairs], f, indent=1)
    os.replace(tmp, path)
    return path


def read_pairs(folder: str) -> List[Pair]:
    """The (face key, audio key) pairs of ``write_pairs``.

    Raises:
        DataError: no pairs.json (the videos were not written by the evaluation) or a bad one.
    """
    path = os.path.join(folder, PAIRS_FILE)
    if not os.path.isfile(path):
        raise DataError(f"{folder} has no {PAIRS_FILE} naming the audio clip of each dubbed video: "
                        f"score videos written by the evaluation (its dubbed/ folder), or use "
                        f"--generator to regenerate them")
    try:
        with open(path) as f:
            pairs = [(str(face), str(audio)) for face, audio in json.load(f)]
    except (OSError, ValueError, TypeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if not pairs:
        raise DataError(f"{path} lists no videos")
    return pairs


def score_dubbed_video(video: str, dataroot: str, face_key: str, audio_key: str,
                       box: Optional[Sequence[int]] = None, still: bool = False) -> Dict[str, Any]:
    """Generated, floor and ceiling comparisons of one dubbed video.

    Args:
        video: the generated video; its frames (cropped to ``box`` = (top, bottom, left, right)
            when given) are the face crops.
        dataroot: the synthetic corpus holding ``face_key`` and ``audio_key``.
        still: the face input was a still of the face clip's first frame.
    Returns:
        dict: ``generated``, ``floor``, ``ceiling`` (``compare_with_oracle`` results) and
        ``frames``.
    Raises:
        DataError: frame count or crop size differs from the oracle's.
    """

    frames_iter, fps = iter_clip_frames(video)
    frames = np.stack([crop_face(frame, box) for frame in frames_iter])
    face_plan = load_clip_plan(os.path.join(dataroot, face_key))
    audio_plan = load_clip_plan(os.path.join(dataroot, audio_key))
    if len(frames) != audio_plan.num_frames:
        raise DataError(f"{video} has {len(frames)} frames, the audio of {audio_key} covers "
                        f"{audio_plan.num_frames}: was it driven by that clip's audio?")
    oracle = render_oracle(face_plan, audio_plan, still=still)
    if frames.shape != oracle.shape:
        raise DataError(f"{video}: face crops are {frames.shape[2]}x{frames.shape[1]}, the corpus "
                        f"draws {oracle.shape[2]}x{oracle.shape[1]}; pass the face box")
    floor = codec_round_trip(source_frames(face_plan, len(frames), still=still), fps)
    return {"generated": compare_with_oracle(frames, oracle),
            "floor": compare_with_oracle(floor, oracle),
            "ceiling": compare_with_oracle(codec_round_trip(oracle, fps), oracle),
            "frames": len(frames)}


def _entry(video: str, face_key: str, audio_key: str, scores: Dict[str, Any]) -> Dict[str, Any]:
    """One video's JSON entry: its keys, frame count, the three rows' numbers and opening series."""
    entry: Dict[str, Any] = {"video": video, "face": face_key, "audio": audio_key, "frames": scores["frames"]}
    for key in ORACLE_ROW_KEYS:
        score = scores[key]
        entry[key] = {name: score[name] for name in ("lower_psnr", "lower_ssim", "opening_corr")}
        entry[key]["opening"] = [round(float(v), 4) for v in score["opening"]]
    entry["oracle_opening"] = [round(float(v), 4) for v in scores["generated"]["oracle_opening"]]
    return entry


def evaluate_oracle(videos_dir: str, dataroot: str, pairs: Optional[Iterable[Pair]] = None,
                    box: Optional[Sequence[int]] = None, still: bool = False,
                    progress: bool = True) -> Dict[str, Any]:
    """Oracle rows for a folder of dubbed videos of a synthetic corpus.

    Args:
        videos_dir: holds ``<face key>.mp4`` for every pair.
        dataroot: the synthetic corpus (clips carry ``oracle.json``).
        pairs: (face key, audio key) list; default: ``<videos_dir>/pairs.json``.
        box, still: see ``score_dubbed_video``.
    Returns:
        dict: ``rows`` (generated, input unchanged, oracle: ``oracle_row`` dicts), ``per_video``
        (per-video numbers and the opening series), ``summary`` {generated, floor, ceiling: the
        row without its name}.
    """
    from tqdm import tqdm

    todo = list(pairs) if pairs is not None else read_pairs(videos_dir)
    scores: List[Dict[str, Any]] = []
    per_video: List[Dict[str, Any]] = []
    for face_key, audio_key in tqdm(todo, desc="oracle metrics", unit="video", disable=not progress):
        video = os.path.join(videos_dir, face_key + ".mp4")
        if not os.path.isfile(video):
            raise DataError(f"dubbed video {video} is missing (face {face_key}, audio {audio_key})")
        result = score_dubbed_video(video, dataroot, face_key, audio_key, box=box, still=still)
        scores.append(result)
        per_video.append(_entry(video, face_key, audio_key, result))
    rows = [oracle_row(name, [s[key] for s in scores])
            for key, name in zip(ORACLE_ROW_KEYS, ORACLE_ROW_NAMES)]
    summary = {key: {k: v for k, v in row.items() if k != "name"}
               for key, row in zip(ORACLE_ROW_KEYS, rows)}
    return {"rows": rows, "per_video": per_video, "summary": summary}
