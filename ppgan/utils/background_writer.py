"""``VideoWriter`` in a child process, so H.264/AAC encoding overlaps the caller's work.

Paddle Inference holds the GIL while it runs, so an encoding thread would wait for the
generator; a process does not. Frames and audio go through a bounded queue (a slow encoder
makes ``write`` wait instead of piling frames up in memory); the child owns the output file with
``VideoWriter``'s guarantees (temporary file, renamed on success, removed on any failure).
The child is started with "spawn": it never inherits the parent's oneDNN/OpenMP threads.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from .errors import MediaError
from .video import CloseOrAbort, VideoWriter

_JOIN_SECONDS = 60
# Where H.264/AAC encoding runs: inline in the caller's process, or a child process overlapping
# the caller's work (Paddle Inference holds the GIL, so a thread would not overlap).
ENCODERS = ("inline", "process")


def _serve(path: str, fps: float, options: Dict[str, Any], inbox: Any, outbox: Any) -> None:
    """Child process: run a VideoWriter from messages until "close" or "abort"."""
    writer: Optional[VideoWriter] = None
    failure: Optional[str] = None
    busy = 0.0
    while True:
        kind, payload = inbox.get()
        if kind == "abort" or (kind == "close" and failure is not None):
            if writer is not None:
                writer.abort()
            outbox.put(("error", failure) if failure else ("aborted", None))
            return
        if failure is not None:
            continue  # drain: the parent learns of the failure at its next call
        started = time.perf_counter()
        try:
            if writer is None:
                writer = VideoWriter(path, fps, **options)
            # Queue messages: ("frame", image), ("audio", samples), ("close" | "abort", None).
            if kind == "frame":
                writer.write(payload)
            elif kind == "audio":
                writer.add_audio(payload)
            elif kind == "close":
                writer.close()
                busy += time.perf_counter() - started
                outbox.put(("done", (writer.frames_written, busy)))
                return
        except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
            failure = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if writer is not None:
                writer.abort()
                writer = None
            if kind == "close":
                outbox.put(("error", failure))
                return
            continue
        busy += time.perf_counter() - started


class BackgroundVideoWriter(CloseOrAbort):
    """``VideoWriter``'s interface (write, add_audio, close, abort, context manager), encoding in a
    child process.

    Args:
        path, fps, **options: as ``VideoWriter`` (``live_audio=True`` for ``add_audio``).
        max_pending: frames queued at most before ``write`` waits. Default: 16.
    Attributes:
        frames_written: frames handed over so far.
        encode_seconds: the child's busy time (known after ``close``).
    """

    def __init__(self, path: str, fps: float, max_pending: int = 16, **options: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self.path = str(path)
        self.frames_written = 0
        self.encode_seconds: Optional[float] = None
        self._inbox = context.Queue(maxsize=max_pending)
        self._outbox = context.Queue()
        self._process = context.Process(target=_serve, args=(self.path, fps, options, self._inbox,
                                                              self._outbox), daemon=True)
        self._process.start()
        self._closed = False

    def _send(self, kind: str, payload: Any = None) -> None:
        """Queue one message for the child, waiting while the queue is full (the child is slower)."""
        if self._closed:
            raise RuntimeError(f"BackgroundVideoWriter for {self.path} is already closed")
        while True:
            try:
                self._inbox.put((kind, payload), timeout=1.0)
                return
            except queue.Full:
                if not self._process.is_alive():
                    self._closed = True
                    raise MediaError(f"cannot write {self.path}: the encoding process ended "
                                     f"(exit code {self._process.exitcode})") from None

    def write(self, frame: np.ndarray) -> None:
        """Queue one (H, W, 3) uint8 BGR frame."""
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frames must be (H, W, 3) uint8 BGR, got {frame.dtype} {frame.shape}")
        self._send("frame", np.ascontiguousarray(frame))
        self.frames_written += 1

    def add_audio(self, samples: np.ndarray) -> None:
        """Queue mono float samples for a ``live_audio`` track."""
        self._send("audio", np.asarray(samples, dtype=np.float32).reshape(-1))

    def close(self) -> None:
        """Wait for the child to finish the file.

        Raises:
            MediaError: the child failed (its first error's message), or nothing was written.
        """
        if self._closed:
            return
        self._send("close")
        self._closed = True
        status, payload = self._result()
        if status != "done":
            raise MediaError(payload or f"cannot write {self.path}: the encoding process failed")
        self.frames_written, self.encode_seconds = payload

    def abort(self) -> None:
        """Drop the output: the child removes its temporary file."""
        if self._closed:
            return
        self._closed = True
        try:
            self._inbox.put(("abort", None), timeout=5.0)
            self._result()
        except (queue.Full, MediaError):
            pass
        finally:
            if self._process.is_alive():
                self._process.terminate()

    def _result(self) -> Tuple[str, Any]:
        """The child's answer ``(status, payload)``, waiting at most ``_JOIN_SECONDS``."""
        try:
            result = self._outbox.get(timeout=_JOIN_SECONDS)
        except queue.Empty:
            self._process.terminate()
            raise MediaError(f"cannot write {self.path}: the encoding process did not answer") from None
        self._process.join(_JOIN_SECONDS)
        return result


# Either writer: the same interface, encoding inline or in a child process.
FrameWriter = Union[VideoWriter, BackgroundVideoWriter]


def open_video_writer(encoder: str, path: str, fps: float, **options: Any) -> FrameWriter:
    """A ``VideoWriter`` (``encoder`` "inline") or ``BackgroundVideoWriter`` ("process") for
    ``path``; ``options`` as ``VideoWriter``'s."""
    if encoder == "process":
        return BackgroundVideoWriter(path, fps, **options)
    if encoder == "inline":
        return VideoWriter(path, fps, **options)
    raise ValueError(f"encoder must be one of {', '.join(ENCODERS)}, got {encoder!r}")
