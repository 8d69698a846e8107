"""Finding and reading the clips an evaluation scores: videos and preprocessed clip folders."""

from __future__ import annotations

import os
import re
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..utils.audio import load_audio
from ..utils.errors import DataError, MediaError
from ..utils.video import iter_frames, probe_video, read_image

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
CORPUS_FPS = 25.0  # preprocessed clip folders hold 25 fps frames (LRS2 layout)

# A face region (top, bottom, left, right); -1 for bottom / right means the frame's edge.
FaceBox = Sequence[int]


def is_clip_folder(path: str) -> bool:
    """True for a preprocessed clip folder (``0.jpg``, ... and ``audio.wav``)."""
    return os.path.isfile(os.path.join(path, "audio.wav")) and os.path.isfile(
        os.path.join(path, "0.jpg"))


def find_clips(folder: str, allow_folders: bool = False) -> Dict[str, str]:
    """Videos (and, with ``allow_folders``, preprocessed clip folders) under ``folder``.

    Returns:
        {key: path} with key = path relative to ``folder`` without extension, '/'-separated.
    """
    if not os.path.isdir(folder):
        raise DataError(f"folder not found: {folder}")
    found: Dict[str, str] = {}
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        if allow_folders and is_clip_folder(root):
            found[os.path.relpath(root, folder).replace(os.sep, "/")] = root
            dirs[:] = []
            continue
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            if ext.lower() in VIDEO_EXTENSIONS and not stem.startswith("."):
                key = os.path.relpath(os.path.join(root, stem), folder).replace(os.sep, "/")
                found[key] = os.path.join(root, name)
    return found


def numbered_frames(folder: str) -> List[str]:
    """Paths of a clip folder's ``<i>.jpg`` frames in frame order."""
    names = [n for n in os.listdir(folder) if re.fullmatch(r"\d+\.jpg", n)]
    return [os.path.join(folder, n) for n in sorted(names, key=lambda n: int(n[:-4]))]


def iter_clip_frames(path: str, fps: Optional[float] = None) -> Tuple[Iterator[np.ndarray], float]:
    """BGR uint8 frames of a video file or a preprocessed clip folder, and its frame rate.

    Returns:
        (iterator of (H, W, 3) uint8, fps). ``fps`` resamples a video (syncnet_v2 needs 25).
    """
    if os.path.isdir(path):
        return (read_image(p) for p in numbered_frames(path)), CORPUS_FPS
    info = probe_video(path)
    return iter_frames(path, fps=fps), float(fps or info.fps)


def clip_audio(path: str) -> np.ndarray:
    """(N,) float32 16 kHz audio of a video file or of a clip folder's audio.wav."""
    return load_audio(os.path.join(path, "audio.wav") if os.path.isdir(path) else path)


def crop_face(frame: np.ndarray, box: Optional[FaceBox]) -> np.ndarray:
    """The face region of a frame: the whole frame when ``box`` is None, else
    ``frame[top:bottom, left:right]`` for ``box = (top, bottom, left, right)`` (-1 = to the edge)."""
    if box is None:
        return frame
    top, bottom, left, right = box
    height, width = frame.shape[:2]
    crop = frame[max(0, top):height if bottom < 0 else bottom,
                 max(0, left):width if right < 0 else right]
    if crop.size == 0:
        raise MediaError(f"face box {tuple(box)} (top bottom left right) lies outside a "
                         f"{width}x{height} frame")
    return crop
