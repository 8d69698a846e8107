"""The synthetic talking-face corpus writer: drawn faces (``synthetic_faces``) whose mouths follow
the same hidden phoneme track as a formant-synthesised voice (``synthetic_voice``), written in the
preprocessed LRS2 layout with each clip's plan for the oracle (``oracle``).

Video frame i covers audio samples [i * 640, (i + 1) * 640), so lip-sync is learnable and
measurable. Everything derives from the seed: clip (s, c) uses the generator seeded with
(seed, s, c), so a clip does not change when more speakers or clips are requested.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from ..data.contract import FACE_SIZE, check_face_size
from ..datasets.frame_cache import write_frame_cache, write_jpg
from ..utils.audio import SAMPLE_RATE, melspectrogram, save_wav, to_pcm16
from ..utils.errors import ConfigError, DataError
from .oracle import write_clip_plan
from .synthetic_faces import compose_raw_frame, draw_raw_scene, plan_raw_layout, synthesize_clip_plan
from .synthetic_voice import FPS, random_speaker


def split_clips(keys_by_speaker: Sequence[Sequence[str]], fractions: Sequence[float],
                rng: np.random.Generator) -> Dict[str, List[str]]:
    """Assign clips to train / val / test, every split non-empty.

    Val and test clips are taken one per speaker in turn, never a speaker's last clip while any
    speaker still has two or more, so every speaker keeps training data whenever possible.

    Args:
        keys_by_speaker: list (per speaker) of lists of "<speaker>/<clip>" keys.
        fractions: (train, val, test) shares.
    Returns:
        {"train": [...], "val": [...], "test": [...]} sorted key lists.
    """
    total = sum(len(keys) for keys in keys_by_speaker)
    if total < 3:
        raise ConfigError(f"the corpus needs at least 3 clips for train/val/test splits, got {total}")
    share = np.asarray(fractions, dtype=np.float64)
    if share.shape != (3,) or (share < 0).any() or share.sum() <= 0:
        raise ConfigError(f"splits must be three non-negative shares (train, val, test), got {fractions}")
    share = share / share.sum()
    counts = {name: max(1, int(round(total * share[i]))) for i, name in ((1, "val"), (2, "test"))}
    while counts["val"] + counts["test"] > total - 1:
        counts["val" if counts["val"] >= counts["test"] else "test"] -= 1
    remaining = [list(rng.permutation(keys)) for keys in keys_by_speaker]
    result: Dict[str, List[str]] = {"val": [], "test": []}
    turn = 0
    for name in ("test", "val"):
        while len(result[name]) < counts[name]:
            spare = [i for i, keys in enumerate(remaining) if len(keys) > 1]
            candidates = spare or [i for i, keys in enumerate(remaining) if keys]
            speaker = candidates[turn % len(candidates)]
            result[name].append(remaining[speaker].pop())
            turn += 1
    result["train"] = [key for keys in remaining for key in keys]
    return {name: sorted(result[name]) for name in ("train", "val", "test")}


def _check_params(speakers: int, clips: int, seed: int, min_frames: int, max_frames: int, img_size: int,
                  raw_videos: bool, raw_frame_size: Sequence[int]) -> None:
    """ConfigError for parameters no corpus can be made with."""
    if speakers < 1 or clips < 1:
        raise ConfigError(f"need at least 1 speaker and 1 clip, got speakers={speakers} clips={clips}")
    if seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed}")
    if not 1 <= min_frames <= max_frames:
        raise ConfigError(f"need 1 <= min_frames <= max_frames, got {min_frames} and {max_frames}")
    if check_face_size(img_size) < 32:
        raise ConfigError(f"img_size must be at least 32 pixels, got {img_size}")
    if raw_videos and (raw_frame_size[0] < img_size or raw_frame_size[1] < img_size
                       or raw_frame_size[0] % 2 or raw_frame_size[1] % 2):
        raise ConfigError(f"raw_frame_size {tuple(raw_frame_size)} must be even and at least "
                          f"img_size ({img_size}) on both sides")


def _prepare_staging(out_dir: str, overwrite: bool) -> str:
    """Fresh hidden folder beside ``out_dir``; the corpus appears under its name only when complete."""
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise DataError(f"output folder {out_dir} already exists and is not empty: "
                        "choose another --out or pass --overwrite")
    parent, name = os.path.split(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".{name}.partial{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    return staging


def _publish(staging: str, out_dir: str) -> None:
    """Move the finished corpus into place (replacing an old one only now that the new one exists)."""
    out_dir = os.path.abspath(out_dir)
    if os.path.isdir(out_dir):
        old = f"{staging}.old"
        os.rename(out_dir, old)
        os.rename(staging, out_dir)
        shutil.rmtree(old)
    else:
        os.rename(staging, out_dir)


def _write_clip(folder: str, frames: np.ndarray, wav: np.ndarray) -> np.ndarray:
    """Write {0..T-1}.jpg, their frame cache, audio.wav and mel.npy; returns the stored samples."""
    os.makedirs(folder)
    decoded = [write_jpg(os.path.join(folder, f"{index}.jpg"), frame) for index, frame in enumerate(frames)]
    write_frame_cache(folder, np.stack(decoded))  # the frames as the JPEGs decode, not as drawn
    stored = to_pcm16(wav).astype(np.float32) / 32768.0  # what decoding the wav gives back
    save_wav(os.path.join(folder, "audio.wav"), stored)
    mel = melspectrogram(stored)
    np.save(os.path.join(folder, "mel.npy"), mel)
    return stored


def make_synthetic_corpus(out_dir: str, speakers: int = 4, clips: int = 6, seed: int = 0, min_frames: int = 50,
                          max_frames: int = 75, img_size: int = FACE_SIZE, raw_videos: bool = False,
                          raw_frame_size: Tuple[int, int] = (160, 160),
                          splits: Sequence[float] = (0.7, 0.15, 0.15), progress: bool = True,
                          overwrite: bool = False) -> Dict[str, Any]:
    """Write a synthetic corpus in the preprocessed LRS2 layout.

    Layout under ``out_dir``: ``<speaker>/<clip>/{0..T-1}.jpg`` (img_size^2 BGR crops),
    ``frames_<img_size>_<signature>.npy`` (their frame cache, see ``frame_cache``),
    ``audio.wav`` (16 kHz mono int16, T * 640 samples), ``mel.npy`` ((80, 1 + T*640 // 200), the
    ``melspectrogram`` of the wav's samples), ``oracle.json`` (what its frames are drawn from, for
    ``ppgan.corpus_tools.oracle``); ``train.txt``, ``val.txt``, ``test.txt`` (lines
    ``<speaker>/<clip>``, all non-empty); ``corpus.json`` (seed, parameters, clip lengths, splits).
    With ``raw_videos``: ``raw/<speaker>/<clip>.mp4`` (25 fps H.264, the crop pasted at a fixed
    position in a ``raw_frame_size`` = (height, width) frame, FLAC audio bit-exact to audio.wav) and
    ``raw/boxes.json`` mapping ``<speaker>/<clip>`` to [top, bottom, left, right] (bottom/right
    exclusive: ``frame[top:bottom, left:right]`` is the crop).

    The corpus is built in a hidden folder beside ``out_dir`` and renamed into place when complete.

    Returns:
        summary dict: out_dir, speakers, clips, frames, seconds, splits (sizes), raw_videos.
    Raises:
        ConfigError: bad parameters. DataError: ``out_dir`` is not empty and ``overwrite`` is False.
    """
    from tqdm import tqdm

    _check_params(speakers, clips, seed, min_frames, max_frames, img_size, raw_videos, raw_frame_size)
    staging = _prepare_staging(out_dir, overwrite)
    try:
        lengths: Dict[str, int] = {}
        boxes: Dict[str, List[int]] = {}
        keys_by_speaker: List[List[str]] = []
        bar = tqdm(total=speakers * clips, desc="synthetic corpus", unit="clip", disable=not progress)
        for s in range(speakers):
            speaker = random_speaker(np.random.default_rng([seed, s]), name=f"speaker{s:02d}")
            keys_by_speaker.append([])
            for c in range(clips):
                key = f"{speaker.name}/{c:05d}"
                rng = np.random.default_rng([seed, s, c])
                num_frames = int(rng.integers(min_frames, max_frames + 1))
                plan, frames, wav = synthesize_clip_plan(rng, speaker, num_frames, img_size)
                stored = _write_clip(os.path.join(staging, key), frames, wav)
                if raw_videos:
                    plan.raw = plan_raw_layout(rng, raw_frame_size, img_size)
                    boxes[key] = _write_raw_video(staging, key, frames, stored, plan.raw)
                write_clip_plan(os.path.join(staging, key), plan)
                lengths[key] = num_frames
                keys_by_speaker[-1].append(key)
                bar.update(1)
        bar.close()
        split_lists = split_clips(keys_by_speaker, splits, np.random.default_rng([seed, 1 << 20]))
        for name, keys in split_lists.items():
            with open(os.path.join(staging, f"{name}.txt"), "w") as f:
                f.write("".join(f"{key}\n" for key in keys))
        if raw_videos:
            with open(os.path.join(staging, "raw", "boxes.json"), "w") as f:
                f.write("{\n" + ",\n".join(f' "{key}": {json.dumps(boxes[key])}' for key in sorted(boxes))
                        + "\n}\n")
        summary = {
            "speakers": speakers, "clips": len(lengths), "frames": int(sum(lengths.values())),
            "seconds": sum(lengths.values()) / FPS,
            "splits": {name: len(keys) for name, keys in split_lists.items()},
            "raw_videos": bool(raw_videos),
        }
        params = {"speakers": speakers, "clips": clips, "seed": seed, "min_frames": min_frames,
                  "max_frames": max_frames, "img_size": img_size, "raw_videos": bool(raw_videos),
                  "raw_frame_size": list(raw_frame_size), "splits": list(splits),
                  "fps": FPS, "sample_rate": SAMPLE_RATE}
        with open(os.path.join(staging, "corpus.json"), "w") as f:
            json.dump({"format": 1, "params": params, "num_frames": lengths, "summary": summary},
                      f, indent=1, sort_keys=True)
        _publish(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dict(summary, out_dir=os.path.abspath(out_dir))


def _write_raw_video(staging: str, key: str, frames: np.ndarray, stored_wav: np.ndarray,
                     layout: Dict[str, Any]) -> List[int]:
    """Paste the crops into the layout's scene and write the mp4; returns the box."""
    from ..utils.video import write_video

    scene = draw_raw_scene(layout)
    path = os.path.join(staging, "raw", f"{key}.mp4")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_video(path, (compose_raw_frame(scene, frame, layout["box"]) for frame in frames), FPS,
                audio=stored_wav, audio_codec="flac")
    return layout["box"]
