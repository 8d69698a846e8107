"""Frames of the face input, streamed forward, backward and in ping-pong order.

A video is never held whole: forward reading decodes one frame at a time; backward reading
decodes blocks of at most ``block_bytes`` (seeking to the keyframe before each block) and yields
each block reversed. That is what lets audio longer than the video play the frames forward and
back without keeping the clip in memory.
"""

from __future__ import annotations

import itertools
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..data.contract import resize_face
from ..utils.errors import ConfigError, MediaError
from ..utils.video import frame_to_bgr, iter_frames

_BLOCK_BYTES = 256 * 1024 * 1024  # frames decoded at once when reading backward

# What ``FrameSource`` applies to every decoded frame: (H, W, 3) uint8 -> prepared frame.
Prepare = Callable[[np.ndarray], np.ndarray]


def prepare_frame(frame: np.ndarray, resize_factor: int = 1, rotate: Union[bool, int] = False,
                  crop: Sequence[int] = (0, -1, 0, -1)) -> np.ndarray:
    """Downscale by an integer factor, rotate clockwise, then crop (in that order).

    Args:
        frame: (H, W, 3) uint8.
        rotate: clockwise degrees (0, 90, 180, 270); True means 90 (``--rotate``).
        crop: (top, bottom, left, right); -1 for bottom/right means the frame's edge.
    Returns:
        (H', W', 3) uint8 (a view when only cropping).
    """
    import cv2

    if resize_factor > 1:
        h, w = frame.shape[:2]
        frame = resize_face(frame, max(1, w // resize_factor), max(1, h // resize_factor))
    degrees = 90 if rotate is True else int(rotate or 0) % 360
    if degrees:
        code = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180,
                270: cv2.ROTATE_90_COUNTERCLOCKWISE}[degrees]
        frame = cv2.rotate(frame, code)
    top, bottom, left, right = crop
    h, w = frame.shape[:2]
    bottom, right = (h if bottom == -1 else bottom), (w if right == -1 else right)
    if not (0 <= top < bottom <= h and 0 <= left < right <= w):
        raise ConfigError(f"crop {crop} (top bottom left right) does not fit a {w}x{h} frame")
    return frame[top:bottom, left:right]


class FrameSource:
    """Prepared (resized / rotated / cropped) BGR frames of a video or still image.

    Args:
        path: the video file.
        fps: its frame rate.
        prepare: function applied to every decoded (H, W, 3) uint8 frame.
        first_only: behave as a one-frame video made of the first frame (``--static``).
        block_bytes: memory budget of one backward-reading block.
    """

    def __init__(self, path: str, fps: float, prepare: Prepare, first_only: bool = False,
                 block_bytes: int = _BLOCK_BYTES) -> None:
        self.path = path
        self.fps = float(fps)
        self.prepare = prepare
        self.first_only = first_only
        self.block_bytes = block_bytes
        self._image: Optional[np.ndarray] = None
        self._frame_bytes: Optional[int] = None
        self._first_time: Optional[float] = None

    @classmethod
    def from_image(cls, image: np.ndarray, prepare: Prepare, path: str = "the image") -> FrameSource:
        """A one-frame source holding an already decoded (H, W, 3) uint8 image."""
        source = cls(path, 25.0, prepare, first_only=True)
        source._image = prepare(image)
        return source

    def forward(self, limit: Optional[int] = None) -> Iterator[np.ndarray]:
        """Yield prepared frames from the first on (at most ``limit``)."""
        frames: Iterator[np.ndarray]
        if self._image is not None:
            frames = iter([self._image])
        else:
            frames = (self.prepare(f) for f in iter_frames(self.path))
            if self.first_only:
                frames = itertools.islice(frames, 1)
        for frame in itertools.islice(frames, limit):
            self._frame_bytes = frame.nbytes
            yield frame

    def pingpong(self, num_output: int, num_source: int) -> Iterator[Tuple[int, np.ndarray]]:
        """Yield ``(source index, frame)`` for ``num_output`` frames in ping-pong order.

        ``num_source`` is how many frames the source has (at least as many as are needed when
        ``num_output <= num_source``).
        """
        if num_source < 1:
            raise MediaError(f"no frames could be decoded from {self.path}")
        produced = 0
        if num_source == 1:  # a still: decode once, show it num_output times
            frame = next(iter(self.forward(limit=1)))
            for _ in range(num_output):
                yield 0, frame
            return
        while produced < num_output:
            want = min(num_source, num_output - produced)
            runs: List[Tuple[range, Iterator[np.ndarray]]] = [(range(want), self.forward(limit=want))]
            back = min(num_source - 2, num_output - produced - want)
            if back > 0:  # frames n-2 down to n-1-back
                runs.append((range(num_source - 2, num_source - 2 - back, -1),
                             self.backward(num_source - 2, num_source - 1 - back)))
            for indices, frames in runs:
                count = 0
                for index, frame in zip(indices, frames):
                    yield index, frame
                    count += 1
                if count < len(indices):
                    raise MediaError(f"{self.path} yielded {count} frames where {len(indices)} were "
                                     f"read before: the file changed or is damaged")
                produced += count

    def backward(self, high: int, low: int) -> Iterator[np.ndarray]:
        """Yield prepared frames ``high, high-1, ..., low`` (inclusive)."""
        block = 64 if not self._frame_bytes else max(4, min(512, self.block_bytes // self._frame_bytes))
        stop = high + 1
        while stop > low:
            start = max(low, stop - block)
            yield from reversed(self._decode_range(start, stop))
            stop = start

    def _decode_range(self, start: int, stop: int) -> List[np.ndarray]:
        """Prepared frames [start, stop), seeking to the keyframe before ``start``.

        Frame indices are read from timestamps (constant frame rate). When they do not line up
        (variable rate, missing timestamps, a seek that overshot) the range is decoded again from
        the first frame, counting frames exactly as forward reading does.
        """
        frames = self._decode_range_seeking(start, stop)
        if frames is None:
            frames = [self.prepare(f) for f in itertools.islice(iter_frames(self.path), start, stop)]
        if len(frames) != stop - start:
            raise MediaError(f"cannot re-read frames {start}-{stop - 1} of {self.path}: the file "
                             f"changed or is damaged")
        return frames

    def _decode_range_seeking(self, start: int, stop: int) -> Optional[List[np.ndarray]]:
        """``_decode_range`` by seeking; None when timestamps cannot place the frames."""
        import av

        try:
            first_time = self._first_frame_time()
            if first_time is None:
                return None
            with av.open(self.path) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                target = first_time + (start - 0.5) / self.fps
                if start > 0 and stream.time_base:
                    container.seek(int(target / stream.time_base), stream=stream, backward=True,
                                   any_frame=False)
                frames: List[np.ndarray] = []
                expected: Optional[int] = None
                for frame in container.decode(stream):
                    if frame.time is None:
                        return None
                    index = int(round((frame.time - first_time) * self.fps))
                    if expected is None and index > start:
                        return None  # landed after the range: no usable keyframe before it
                    if expected is not None and index != expected:
                        return None  # timestamps are not one frame apart
                    expected = index + 1
                    if index >= stop:
                        break
                    if index >= start:
                        frames.append(self.prepare(frame_to_bgr(frame)))
                return frames
        except av.error.FFmpegError as exc:
            raise MediaError(f"cannot decode {self.path} while reading it backward: {exc}") from None

    def _first_frame_time(self) -> Optional[float]:
        """Timestamp in seconds of the first decoded frame (None when it has none)."""
        import av

        if self._first_time is None:
            with av.open(self.path) as container:
                frame = next(container.decode(container.streams.video[0]), None)
                self._first_time = frame.time if frame is not None else None
        return self._first_time
