"""Streaming lip-sync: a fixed avatar (photo or video) driven by audio that arrives in chunks.

    stream = Wav2LipStream(checkpoint_path="wav2lip_hq.pdparams")
    stream.prepare("avatar.mp4")            # once per avatar: faces found, crops cached
    for chunk in microphone():              # 16 kHz mono float32, any length
        for frame in stream.push(chunk):    # frames as soon as their 0.2 s mel window is final
            show(frame.image, frame.timestamp)
    for frame in stream.finish():           # the last frames (they need the end of the audio)
        show(frame.image, frame.timestamp)
    stream.reset()                          # next utterance, same avatar

What ``prepare`` caches depends only on the avatar: the face boxes of every source frame (tracked,
smoothed and with the no-face policy applied exactly as ``Wav2LipPredictor`` does over the whole
video), the S x S face crops (uint8) and, for a still, the face encoder's activations
(``still_face``); with ``batch_size="auto"`` it also measures the fastest generator batch. Output frames
follow the predictor's ping-pong order over the source frames, indefinitely.

Audio goes through ``utils.mel_stream.MelStream``, whose mel equals ``melspectrogram`` of all the
samples pushed, so frame i is generated from the same window as in ``Wav2LipPredictor.run``: it
is emitted once mel steps up to ``mel_index(i) + 16`` are final (about 0.21 s of audio after the
frame's start) and once frame i is certainly part of the output (``num_video_frames`` of the
samples so far exceeds i). Only the mel steps still needed are kept, so memory does not grow
with the length of the audio.

Difference from ``run``: the predictor tracks faces over the frames the audio will use; a stream
does not know its length, so it tracks the whole avatar video. When the audio is shorter than
the video, the boxes of the last few frames used can therefore differ slightly (smoothing and
interpolation see later frames).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import sys
import time
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple, Union

import numpy as np

from ..data.contract import MEL_SILENCE, MEL_STEP_SIZE, crop_face, pad_mel
from ..utils.audio import mel_index, num_video_frames
from ..utils.errors import ConfigError, MediaError
from ..utils.mel_stream import MelStream
from .batch_size import measure_batch_size
from .face_paste import paste_face
from .still_face import StillFaceGenerator
from .wav2lip_predictor import STAGES, Wav2LipPredictor


@dataclasses.dataclass
class StreamFrame:
    """One output frame: its index, presentation time ``index / fps`` in seconds, and the
    (H, W, 3) uint8 BGR image."""

    index: int
    timestamp: float
    image: np.ndarray


@dataclasses.dataclass
class Avatar:
    """What ``Wav2LipStream.prepare`` found: frame rate, source frames, frame size (H, W), and
    how many frames had a detected / interpolated / no face."""

    fps: float
    source_frames: int
    frame_size: Tuple[int, ...]
    faces_detected: int
    faces_interpolated: int
    frames_kept: int


class Wav2LipStream:
    """Lip-sync a prepared avatar to audio pushed in chunks (see the module docstring).

    Args:
        predictor: a ``Wav2LipPredictor`` whose options, detectors and generator are used;
            built from ``options`` when not given.
        batch_size: frames per generator call: an int, "auto" (measured on the avatar at
            ``prepare``, see ``batch_size.measure_batch_size``) or None (the predictor's).
        cache_still_face: for a still avatar, run the face encoder once (``still_face``).
        **options: ``Wav2LipPredictor`` arguments (checkpoint_path, box, pads, engine, ...).
    Attributes:
        seconds: wall time per stage (decode, detect, generate, blend, encode) since ``reset``.
        prepare_seconds: the same for the last ``prepare`` (plus "measure" for batch sizing).
        batch_rates: frames/s per batch size measured by ``prepare`` (empty unless "auto").
    """

    def __init__(self, predictor: Optional[Wav2LipPredictor] = None, batch_size: Union[int, str, None] = None,
                 cache_still_face: bool = True, **options: Any) -> None:
        if predictor is None:
            options.setdefault("progress", False)
            predictor = Wav2LipPredictor(**options)
        elif options:
            raise TypeError("give either a predictor or predictor options, not both")
        if batch_size not in (None, "auto") and not (isinstance(batch_size, int) and batch_size >= 1):
            raise ConfigError(f"batch_size must be a positive integer, 'auto' or None, got {batch_size!r}")
        self.predictor = predictor
        self.requested_batch_size = batch_size
        self.batch_size: int = predictor.batch_size if batch_size is None or batch_size == "auto" else int(batch_size)
        self.cache_still_face = bool(cache_still_face)
        self.batch_rates: Dict[int, float] = {}
        self.prepare_seconds: Dict[str, float] = {}
        self._still: Optional[StillFaceGenerator] = None
        self.seconds = dict.fromkeys(STAGES, 0.0)
        # The avatar's state is None until ``prepare`` and the audio's until ``reset``; every method
        # reading them runs after those (``_require_avatar``), hence Any rather than Optional.
        self.avatar: Any = None  # an Avatar once prepared
        self._boxes: Any = None
        self._crops: Any = None
        self._source: Any = None
        self._mel: Any = None
        self._frames: Any = None

    # ------------------------------------------------------------------ avatar

    def prepare(self, face: Union[str, "os.PathLike[str]"]) -> Avatar:
        """Find and cache everything that depends only on the avatar, then ``reset``.

        Args:
            face: a video or still image path (``--static`` semantics follow the predictor).
        Returns:
            Avatar.
        Raises:
            MediaError: unreadable face input, no face anywhere, ...
        """
        predictor = self.predictor
        face = str(face)
        if not os.path.isfile(face):
            raise MediaError(f"face file not found: {face}")
        seconds = dict.fromkeys(STAGES, 0.0)
        source, fps = predictor._open_source(face)
        crops: List[Optional[np.ndarray]]
        shape: Optional[Tuple[int, ...]]
        # The whole video is tracked: the stream's length is unknown (see the module docstring).
        track = predictor._track_faces(source, None, seconds)
        crops, shape = [], None
        started = time.perf_counter()
        for frame, box in zip(source.forward(limit=len(track.boxes)), track.boxes):
            shape = frame.shape[:2]
            crops.append(None if box is None else crop_face(frame, box, predictor.img_size))
        seconds["decode"] += time.perf_counter() - started
        if len(crops) != len(track.boxes):
            raise MediaError(f"{face} yielded {len(crops)} frames where {len(track.boxes)} were read "
                             f"before: the file changed or is damaged")
        self._source, self._boxes, self._crops = source, track.boxes, crops
        self._still = None
        started = time.perf_counter()
        if self.cache_still_face and len(crops) == 1 and crops[0] is not None:
            self._still = predictor.still_generator(crops[0])
        seconds["generate"] += time.perf_counter() - started
        started = time.perf_counter()
        if self.requested_batch_size == "auto":
            self.batch_size, self.batch_rates = self._measure_batch_size()
            seconds["measure"] = time.perf_counter() - started
        elif any(crop is not None for crop in crops):
            # the export, oneDNN's kernels and an auto precision's probe, before any audio waits
            self._generate(*self._silent_batch(1))
            seconds["warm-up"] = time.perf_counter() - started
        # A track has at least one frame (finalize_track raises otherwise), so shape is set.
        self.avatar = Avatar(fps=fps, source_frames=len(track.boxes), frame_size=tuple(shape),  # type: ignore[arg-type]
                             faces_detected=track.detected, faces_interpolated=track.interpolated,
                             frames_kept=track.kept)
        self.reset()
        self.prepare_seconds = seconds
        return self.avatar

    def _measure_batch_size(self) -> Tuple[int, Dict[int, float]]:
        """Time the generator on this avatar's faces (silent mel windows) at doubling sizes."""
        return measure_batch_size(lambda batch: self._generate(*batch), self._silent_batch,
                                  largest=max(1, self.predictor.batch_size))

    def _silent_batch(self, count: int) -> Tuple[np.ndarray, np.ndarray]:
        """``count`` of the avatar's face crops (N, S, S, 3) with silent mel windows (N, 80, 16)."""
        with_face = [crop for crop in self._crops if crop is not None]
        crops = np.stack([with_face[i % len(with_face)] for i in range(count)])
        return crops, np.full((count, 80, MEL_STEP_SIZE), MEL_SILENCE, np.float32)

    @property
    def precision(self) -> str:
        """What the generator computes in (the still-face network's, for a cached still)."""
        generator = self._still if self._still is not None else self.predictor.generator
        return str(getattr(generator, "precision", "fp32"))

    def reset(self) -> None:
        """Start a new audio stream on the prepared avatar (from its first frame)."""
        if self.avatar is None:
            raise MediaError("no avatar prepared: call prepare(face) first")
        self._mel = MelStream()
        self._mel_buffer = np.zeros((80, 0), np.float32)  # steps [_mel_start, _mel.steps)
        self._mel_start = 0
        self._next = 0  # next output frame index
        # Source frames in ping-pong order, for as long as the audio lasts. The first is decoded
        # now: opening the video and decoding up to it would otherwise delay the first frame.
        frames = self._source.pingpong(sys.maxsize, len(self._boxes))
        self._frames = itertools.chain([next(frames)], frames)
        self.seconds = dict.fromkeys(STAGES, 0.0)

    # ------------------------------------------------------------------ audio

    def push(self, samples: np.ndarray) -> List[StreamFrame]:
        """Add 16 kHz mono float32 samples; returns the frames that became ready (list of
        StreamFrame, in order, possibly empty)."""
        self._require_avatar()
        started = time.perf_counter()
        self._append_mel(self._mel.push(samples))
        ready = self._ready_frames()
        self.seconds["decode"] += time.perf_counter() - started
        return self._render(ready, final_steps=None)

    def finish(self) -> List[StreamFrame]:
        """End of the audio: returns the remaining frames (list of StreamFrame).

        The stream has produced ``num_video_frames(samples, fps)`` frames in all; call ``reset``
        to start another one.
        """
        self._require_avatar()
        if self._mel.samples == 0:
            raise MediaError("no audio was pushed before finish()")
        self._append_mel(self._mel.finish())
        total = num_video_frames(self._mel.samples, self.avatar.fps)
        return self._render(total, final_steps=self._mel.steps)

    def frames(self, chunks: Iterable[np.ndarray]) -> Iterator[StreamFrame]:
        """Yield StreamFrame for an iterable of audio chunks, then finish."""
        for chunk in chunks:
            yield from self.push(chunk)
        yield from self.finish()

    @property
    def buffered_mel_steps(self) -> int:
        """Mel steps currently held (bounded by the window span, whatever the audio length)."""
        return self._mel_buffer.shape[1]

    def _require_avatar(self) -> None:
        if self._mel is None:
            raise MediaError("no avatar prepared: call prepare(face) first")

    def _append_mel(self, columns: np.ndarray) -> None:
        if columns.shape[1]:
            self._mel_buffer = np.concatenate([self._mel_buffer, columns], axis=1)

    def _window_start(self, index: int) -> int:
        """First mel step of frame ``index``'s window, before the end clamp."""
        return max(0, mel_index(index + self.predictor.mel_frame_offset, self.avatar.fps))

    def _ready_frames(self) -> int:
        """Frames [0, n) whose window steps are final and that the audio so far certainly has."""
        certain = num_video_frames(self._mel.samples, self.avatar.fps)
        n = self._next
        while n < certain and self._window_start(n) + MEL_STEP_SIZE <= self._mel.steps:
            n += 1
        return n

    def _windows(self, indices: List[int], final_steps: Optional[int]) -> np.ndarray:
        """(N, 80, 16) windows of the frames ``indices`` (the contract's edge policy when the
        total is known)."""
        mel, start = self._mel_buffer, self._mel_start
        if final_steps is not None and final_steps < MEL_STEP_SIZE:
            mel = pad_mel(mel)  # nothing was dropped yet: the buffer is the whole mel
        last = max(final_steps, MEL_STEP_SIZE) - MEL_STEP_SIZE if final_steps is not None else None
        out = np.empty((len(indices), mel.shape[0], MEL_STEP_SIZE), np.float32)
        for n, index in enumerate(indices):
            first = self._window_start(index)
            if last is not None:
                first = min(first, last)
            out[n] = mel[:, first - start:first - start + MEL_STEP_SIZE]
        return out

    def _drop_used_mel(self) -> None:
        """Forget steps no later frame reads (windows start no earlier than the next frame's,
        and at the end at most 16 steps before the last)."""
        keep_from = min(self._window_start(self._next), self._mel.steps - MEL_STEP_SIZE)
        if keep_from > self._mel_start:
            self._mel_buffer = self._mel_buffer[:, keep_from - self._mel_start:].copy()
            self._mel_start = keep_from

    # ------------------------------------------------------------------ frames

    def _render(self, stop: int, final_steps: Optional[int]) -> List[StreamFrame]:
        """Generate, paste back and return frames [self._next, stop)."""
        out: List[StreamFrame] = []
        while self._next < stop:
            count = min(self.batch_size, stop - self._next)
            indices = list(range(self._next, self._next + count))
            out.extend(self._render_batch(indices, final_steps))
            self._next += count
            self._drop_used_mel()
        return out

    def _render_batch(self, indices: List[int], final_steps: Optional[int]) -> List[StreamFrame]:
        """Frames ``indices``: source frames in ping-pong order, their faces generated and pasted."""
        seconds = self.seconds
        started = time.perf_counter()
        sources = [next(self._frames) for _ in indices]
        windows = self._windows(indices, final_steps)
        seconds["decode"] += time.perf_counter() - started
        with_face = [n for n, (source_index, _) in enumerate(sources) if self._boxes[source_index] is not None]
        faces = None
        if with_face:
            started = time.perf_counter()
            crops = np.stack([self._crops[sources[n][0]] for n in with_face])
            faces = self._generate(crops, windows[with_face])
            seconds["generate"] += time.perf_counter() - started
        started = time.perf_counter()
        shared = len(self._boxes) == 1  # a still: every source frame is the same array
        images = [frame.copy() if shared else frame for _, frame in sources]
        if faces is not None:
            for face, n in zip(faces, with_face):
                box = self._boxes[sources[n][0]]
                images[n] = paste_face(images[n], box, face, self.predictor.blend, inplace=True)
        seconds["blend"] += time.perf_counter() - started
        if faces is not None and self.predictor.enhancer is not None:
            started = time.perf_counter()
            self.predictor.enhancer.enhance_regions([images[n] for n in with_face],
                                                    [self._boxes[sources[n][0]] for n in with_face])
            seconds["enhance"] += time.perf_counter() - started
        fps = self.avatar.fps
        return [StreamFrame(index=i, timestamp=i / fps, image=image) for i, image in zip(indices, images)]

    def _generate(self, crops: np.ndarray, windows: np.ndarray) -> np.ndarray:
        """(N, S, S, 3) uint8 crops + (N, 80, 16) windows -> (N, S, S, 3) float32 faces in [0, 255]."""
        return self.predictor._generate(crops, windows, self._still)

