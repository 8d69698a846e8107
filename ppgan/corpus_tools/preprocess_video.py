"""Turn one talking-face video into clips of the corpus layout the datasets read (the whole tree of
LRS2's ``main/<spk>/<clip>.mp4`` or any folder of videos is driven by ``preprocess``).

Per video: decode with PyAV at ``fps`` (frames are dropped or repeated when the source rate
differs), detect faces in batches, keep one face per frame (following the previous one), fill
short detection gaps by interpolating the box, smooth the boxes over time, crop with padding,
resize, and write ``<out>/<key>/{i}.jpg`` with the clip's frame cache (the crops as the JPEGs
decode, one uint8 ``.npy``; see ``frame_cache``), ``audio.wav`` (16 kHz mono) and its mel cache
``mel.npy``. ``key`` is the video's path under the input root without extension. A gap
longer than ``max_gap`` frames splits the clip into ``<key>_part<k>`` pieces (or drops the video
with ``long_gaps="drop"``); pieces shorter than ``min_frames`` are dropped. Everything is counted.

Each finished video leaves ``<out>/.preprocess/<key>.json`` (what resumed runs skip). A video's
output is written to ``<out>/.partial/`` and moved into place only when complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..data.contract import FACE_SIZE, check_face_size, crop_face
from ..datasets.frame_cache import FrameCacheWriter, write_jpg
from ..faceutils.boxes import fill_missing, pad_box, pick_face, smooth_boxes
from ..faceutils.detector import FaceDetector, build_detector
from ..utils.audio import SAMPLE_RATE, load_audio, melspectrogram, save_wav
from ..utils.errors import ConfigError, DataError, MediaError
from ..utils.video import iter_frames, probe_video

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".flv", ".mpg", ".mpeg")
STATUS_DIR = ".preprocess"
STAGING_DIR = ".partial"
_IN_MEMORY_BYTES = 512 << 20  # videos decoding to more than this are decoded twice instead


@dataclasses.dataclass
class PreprocessOptions:
    """How videos become crops.

    Attributes:
        fps: output frame rate. Default: 25.
        img_size: side of the saved square crops; 0 keeps each crop's own size. Default: 96.
        pads: (top, bottom, left, right) pixels added around each detected box. Default: 0s.
        smooth_window: frames averaged when smoothing boxes (1 = off). Default: 5.
        max_gap: longest run of frames without a face that is filled by interpolation. Default: 5.
        min_frames: shortest piece of a clip that is kept. Default: 15.
        long_gaps: "split" the clip at a longer gap, or "drop" the whole video. Default: split.
        detect_batch: frames per detector call. Default: 32.
        jpeg_quality: quality of the saved crops. Default: 95.
        frame_cache: also write each clip's uint8 frame cache (needs img_size > 0; the datasets
            build missing ones only into their ``cache_dir``). Default: True.
    """

    fps: float = 25.0
    img_size: int = FACE_SIZE
    pads: Tuple[int, ...] = (0, 0, 0, 0)
    smooth_window: int = 5
    max_gap: int = 5
    min_frames: int = 15
    long_gaps: str = "split"
    detect_batch: int = 32
    jpeg_quality: int = 95
    frame_cache: bool = True

    def check(self) -> None:
        """ConfigError for options no video can be preprocessed with."""
        if not self.fps > 0:
            raise ConfigError(f"need fps > 0, got fps={self.fps}")
        if self.img_size != 0:  # 0 keeps every crop's own size
            check_face_size(self.img_size, "img_size")
        if len(self.pads) != 4:
            raise ConfigError(f"pads must be four integers (top bottom left right), got {self.pads}")
        if self.smooth_window < 1 or self.max_gap < 0 or self.min_frames < 1 or self.detect_batch < 1:
            raise ConfigError("need smooth_window >= 1, max_gap >= 0, min_frames >= 1 and detect_batch >= 1")
        if self.long_gaps not in ("split", "drop"):
            raise ConfigError(f"long_gaps must be 'split' or 'drop', got {self.long_gaps!r}")


@dataclasses.dataclass
class VideoResult:
    """Outcome of one video: status is done, resumed (done earlier), skipped or failed."""

    key: str
    status: str
    reason: str = ""
    clips: List[str] = dataclasses.field(default_factory=list)
    frames: int = 0  # crops written
    interpolated: int = 0  # frames whose box was interpolated from neighbours
    dropped: int = 0  # decoded frames not written (long gaps, short pieces)


@dataclasses.dataclass
class DetectorSpec:
    """Which detector to use: a registered one by name, or one fixed box per clip."""

    name: str = "haar"
    kwargs: Dict[str, Any] = dataclasses.field(default_factory=dict)
    boxes: Optional[Dict[str, List[int]]] = None  # key -> [top, bottom, left, right]
    boxes_path: str = ""

    def build(self, key: str, cache: Dict[str, FaceDetector]) -> FaceDetector:
        """The detector for video ``key``: its fixed box, else the named one (built once per ``cache``)."""
        if self.boxes is not None:
            if key not in self.boxes:
                raise DataError(f"no box for {key} in {self.boxes_path}: add it or use --detector")
            return build_detector("box", box=self.boxes[key])
        if "detector" not in cache:
            cache["detector"] = build_detector(self.name, **self.kwargs)
        return cache["detector"]


def load_boxes_json(path: str) -> Dict[str, List[int]]:
    """``{"<key>": [top, bottom, left, right], ...}`` as written beside the synthetic raw videos."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            boxes = json.load(f)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read boxes file {path}: {exc}") from None
    if not isinstance(boxes, dict) or not all(isinstance(b, list) and len(b) == 4 for b in boxes.values()):
        raise ConfigError(f"{path} must map each clip key to [top, bottom, left, right]")
    return boxes


def find_videos(data_root: str) -> List[Tuple[str, str]]:
    """All videos under ``data_root`` as sorted (key, path); LRS2's ``main/`` is entered if present."""
    if not os.path.isdir(data_root):
        raise DataError(f"input folder {data_root} does not exist: pass the folder holding the videos")
    root = os.path.join(data_root, "main") if os.path.isdir(os.path.join(data_root, "main")) else data_root
    found: Dict[str, str] = {}
    for folder, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            if ext.lower() not in VIDEO_EXTENSIONS:
                continue
            key = os.path.relpath(os.path.join(folder, stem), root).replace(os.sep, "/")
            if key in found:
                raise DataError(f"two videos map to the clip {key} ({found[key]} and {name}): rename one")
            found[key] = os.path.join(folder, name)
    return sorted(found.items())


def status_path(out_root: str, key: str) -> str:
    """``<out_root>/.preprocess/<key>.json``: the record a finished video leaves."""
    return os.path.join(out_root, STATUS_DIR, key + ".json")


def write_json(path: str, data: Any) -> None:
    """Write ``data`` as JSON atomically (temp file renamed into place), creating its folder."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


def _detect_boxes(path: str, detector: FaceDetector, options: PreprocessOptions, keep_frames: bool
                  ) -> Tuple[List[Optional[np.ndarray]], Optional[List[np.ndarray]], int]:
    """Decode once, detecting in batches. Returns (boxes per frame or None, frames or None, count)."""
    boxes: List[Optional[np.ndarray]] = []
    kept: List[np.ndarray] = []
    batch: List[np.ndarray] = []
    previous: Optional[np.ndarray] = None

    def flush() -> None:
        nonlocal previous
        for detections in detector.detect_batch(batch):
            box = pick_face(detections, previous)
            previous = box if box is not None else previous
            boxes.append(box)
        batch.clear()

    for frame in iter_frames(path, fps=options.fps):
        batch.append(frame)
        if keep_frames:
            kept.append(frame)
        if len(batch) == options.detect_batch:
            flush()
    if batch:
        flush()
    return boxes, (kept if keep_frames else None), len(boxes)


def _pieces(boxes: List[Optional[np.ndarray]], min_frames: int) -> Tuple[List[Tuple[int, int]], int]:
    """Maximal runs [start, end) of frames that have a box, split into (kept, dropped_frames)."""
    runs: List[Tuple[int, int]] = []
    start: Optional[int] = None
    for i, box in enumerate(boxes + [None]):
        if box is not None and start is None:
            start = i
        elif box is None and start is not None:
            runs.append((start, i))
            start = None
    kept = [(a, b) for a, b in runs if b - a >= min_frames]
    return kept, len(boxes) - sum(b - a for a, b in kept)


def _crop(frame: np.ndarray, box: np.ndarray, options: PreprocessOptions) -> np.ndarray:
    """The padded box of ``frame``, resized to ``options.img_size`` (kept at its size when 0)."""
    x1, y1, x2, y2 = box = pad_box(box, options.pads, frame.shape)
    if not options.img_size:
        return frame[y1:y2, x1:x2]
    return crop_face(frame, box, options.img_size)


def _write_pieces(path: str, frames: Optional[Sequence[np.ndarray]], pieces: Sequence[Tuple[int, int]],
                  boxes: Sequence[Optional[np.ndarray]], wav: np.ndarray, staging: str, names: Sequence[str],
                  options: PreprocessOptions) -> None:
    """Write every kept piece's crops, frame cache, audio and mel into ``staging/<name>``."""
    piece_of = np.full(len(boxes), -1)
    smoothed: List[Optional[np.ndarray]] = [None] * len(boxes)  # set for the frames of a piece
    for k, (a, b) in enumerate(pieces):
        piece_of[a:b] = k
        # A piece spans frames that all have a box (``_pieces``).
        smoothed[a:b] = list(smooth_boxes(np.stack(boxes[a:b]), options.smooth_window))  # type: ignore[arg-type]
        os.makedirs(os.path.join(staging, names[k]))
    source = frames if frames is not None else iter_frames(path, fps=options.fps)
    with contextlib.ExitStack() as open_caches:
        # Rows are streamed to disk as the crops are made: a long video never sits in memory twice.
        caches = []
        if options.frame_cache and options.img_size:  # crops kept at their own sizes cannot be stacked
            caches = [open_caches.enter_context(FrameCacheWriter(os.path.join(staging, name), b - a,
                                                                 options.img_size))
                      for name, (a, b) in zip(names, pieces)]
        for i, frame in enumerate(source):
            if i >= len(boxes):
                break
            k = piece_of[i]
            if k >= 0:
                target = os.path.join(staging, names[k], f"{i - pieces[k][0]}.jpg")
                try:
                    # frame i is in piece k, so it has a box
                    decoded = write_jpg(target, _crop(frame, smoothed[i], options),  # type: ignore[arg-type]
                                        options.jpeg_quality)
                except OSError as exc:
                    raise MediaError(f"cannot write {target} ({exc}): is the output disk full?") from None
                if caches:
                    caches[k].append(decoded)
        for cache in caches:
            cache.commit()  # a piece that decoded short the second time gets no cache (JPEGs are read)
    per_frame = SAMPLE_RATE / options.fps
    for k, (a, b) in enumerate(pieces):
        # A piece reaching the clip's first or last frame keeps the audio up to that edge.
        begin = 0 if a == 0 else int(round(a * per_frame))
        end = len(wav) if b == len(boxes) else int(round(b * per_frame))
        if end - begin < per_frame:
            raise MediaError(f"the audio of {path} ends before its frame {a}: audio and video lengths differ")
        save_wav(os.path.join(staging, names[k], "audio.wav"), wav[begin:end])
        np.save(os.path.join(staging, names[k], "mel.npy"), melspectrogram(wav[begin:end]))


def process_video(key: str, path: str, out_root: str, detector: FaceDetector, options: PreprocessOptions) -> VideoResult:
    """Preprocess one video into ``out_root`` (see the module docstring).

    Returns:
        VideoResult with status "done" or "skipped" (and why).
    Raises:
        MediaError: unreadable video, no audio stream, no decodable frame.
    """
    info = probe_video(path)
    if not info.has_audio:
        raise MediaError(f"no audio stream in {path}")
    wav = load_audio(path)
    expected_frames = max(info.duration * options.fps, info.num_frames * options.fps / info.fps)
    # Short videos are decoded once and kept; long or unknown-length ones are decoded again to crop.
    keep = 0 < info.width * info.height * 3 * expected_frames <= _IN_MEMORY_BYTES
    boxes, frames, count = _detect_boxes(path, detector, options, keep)
    if count == 0:
        raise MediaError(f"no frame could be decoded from {path}")
    boxes, interpolated, long_gaps = fill_missing(boxes, options.max_gap)
    if all(box is None for box in boxes):
        return VideoResult(key, "skipped", "no face found in any frame", dropped=count)
    if long_gaps and options.long_gaps == "drop":
        longest = max(b - a for a, b in long_gaps)
        return VideoResult(key, "skipped", f"no face for {longest} frames in a row (more than "
                           f"max_gap {options.max_gap})", dropped=count)
    pieces, dropped = _pieces(boxes, options.min_frames)
    if not pieces:
        return VideoResult(key, "skipped", f"no piece with a face is {options.min_frames} frames long",
                           dropped=count)
    names = [key] if len(pieces) == 1 else [f"{key}_part{k}" for k in range(len(pieces))]
    staging = os.path.join(out_root, STAGING_DIR, f"{key.replace('/', '__')}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _write_pieces(path, frames, pieces, boxes, wav, staging, names, options)
        for name in names:
            target = os.path.join(out_root, name)
            shutil.rmtree(target, ignore_errors=True)  # left by a run that died before its status file
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(os.path.join(staging, name), target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result = VideoResult(key, "done", clips=names, frames=sum(b - a for a, b in pieces),
                         interpolated=interpolated, dropped=dropped)
    write_json(status_path(out_root, key), dataclasses.asdict(result))
    return result
