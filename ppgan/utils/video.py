"""Video and still-image I/O: PyAV for every video (read, probe, write, mux), OpenCV for stills.

Frames are (H, W, 3) BGR uint8 arrays everywhere, the layout OpenCV and the reference weights use.
Reading streams frames one at a time, so memory does not grow with the video's length; only
``read_video`` gathers a whole clip, for callers that explicitly want that.
Writing goes to a temporary file beside the destination and is renamed on success, so a failed
or empty write never leaves a half-written video behind.
"""

from __future__ import annotations

import dataclasses
import fractions
import os
from typing import Any, Iterable, Iterator, List, Literal, Optional, Tuple, Type, TypeVar, Union

import numpy as np

from .audio import SAMPLE_RATE, to_pcm16
from .errors import ConfigError, MediaError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# Output containers that carry H.264 video plus an audio track.
CONTAINER_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
# Timestamps from containers are rounded (often to 1 ms); instants closer than this are "the same".
_TIME_TOLERANCE = 5e-4
_AUDIO_CHUNK = 1024  # samples per encoded audio frame; PyAV re-chunks to the codec's frame size

# PyAV containers, streams and frames. PyAV is imported where it runs (importing this module stays
# cheap), so these private helpers take them as Any.
AVObject = Any
# A media file name as str or path object (``str()`` reads both).
PathLike = Union[str, "os.PathLike[str]"]


def is_image_file(path: PathLike) -> bool:
    """True when ``path`` has a still-image extension (jpg, jpeg, png, bmp, webp, tif, tiff)."""
    return os.path.splitext(str(path))[1].lower() in IMAGE_EXTENSIONS


def read_image(path: PathLike) -> np.ndarray:
    """Read a still image as BGR.

    Returns:
        (H, W, 3) uint8 BGR array (grey images are expanded, alpha is dropped).
    Raises:
        MediaError: missing file, unsupported extension, or undecodable content.
    """
    import cv2

    path = str(path)
    if not is_image_file(path):
        raise MediaError(f"{path} is not a supported image: use one of {', '.join(IMAGE_EXTENSIONS)}")
    if not os.path.isfile(path):
        raise MediaError(f"image file not found: {path}")
    # imdecode on the raw bytes, because imread cannot open non-ASCII paths on every platform.
    image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise MediaError(f"cannot decode image {path}: the file is corrupt or not really an image")
    return image


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What ``probe_video`` learns from a container without decoding it.

    ``num_frames`` is the container's count, or an estimate from the duration; it may be 0 when the
    container states neither, so callers that need the exact count must decode.
    """

    fps: float
    num_frames: int
    width: int
    height: int
    duration: float
    has_audio: bool


def _open_input(path: PathLike) -> AVObject:
    """Open a media file for reading, turning every failure into a one-line MediaError."""
    import av

    path = str(path)
    if not os.path.isfile(path):
        raise MediaError(f"video file not found: {path}")
    try:
        return av.open(path)
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise MediaError(f"cannot read video {path}: {exc}") from None


def _video_stream(container: AVObject, path: PathLike) -> AVObject:
    if not container.streams.video:
        container.close()
        raise MediaError(f"no video stream in {path}: give a video file (or an image for a still face)")
    return container.streams.video[0]


def _stream_fps(stream: AVObject, path: PathLike) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or float(rate) <= 0:
        raise MediaError(f"cannot tell the frame rate of {path}: re-encode it with a constant frame rate")
    return float(rate)


def _stream_duration(stream: AVObject, container: AVObject) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000.0  # container duration is in AV_TIME_BASE (microseconds)
    return 0.0


def probe_video(path: PathLike) -> VideoInfo:
    """Read a video's metadata (no frame decoding).

    Returns:
        VideoInfo(fps, num_frames, width, height, duration seconds, has_audio).
    Raises:
        MediaError: missing or unreadable file, or no video stream.
    """
    container = _open_input(path)
    with container:
        stream = _video_stream(container, path)
        fps = _stream_fps(stream, path)
        duration = _stream_duration(stream, container)
        num_frames = int(stream.frames or 0) or int(round(duration * fps))
        # No codec context means FFmpeg found a stream it cannot decode (an SVG, say).
        context = stream.codec_context
        width, height = (context.width, context.height) if context is not None else (0, 0)
        if not width or not height:
            raise MediaError(f"cannot tell the frame size of {path}: the video stream looks corrupt")
        return VideoInfo(fps=fps, num_frames=num_frames, width=int(width), height=int(height),
                         duration=duration, has_audio=bool(container.streams.audio))


def video_rotation(path: PathLike) -> int:
    """Clockwise quarter-turn (0, 90, 180 or 270 degrees) that shows a video upright.

    Phone recordings store frames sideways with a display matrix saying how to turn them; players
    apply it, decoders do not. PyAV exposes it on decoded frames (counter-clockwise degrees), so
    the first frame is decoded. A video without the matrix, or one that cannot be decoded, gives 0.

    Raises:
        MediaError: missing or unreadable file, or no video stream.
    """
    import av

    container = _open_input(path)
    with container:
        stream = _video_stream(container, path)
        try:
            frame = next(container.decode(stream), None)
        except (av.error.FFmpegError, ValueError):
            return 0
        counter_clockwise = getattr(frame, "rotation", 0) or 0
    return int(round(-counter_clockwise / 90.0)) % 4 * 90


def bgr_to_video_frame(frame: np.ndarray) -> AVObject:
    """(H, W, 3) BGR uint8 with even sides -> yuv420p VideoFrame.

    OpenCV's BT.601 conversion is used in both directions because PyAV's default swscale path
    is biased (mid-grey 128 came back as 123-126), which would tint every generated video."""
    import av
    import cv2

    yuv = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_BGR2YUV_I420)
    # cv2's stubs drop the dtype: the I420 image of a uint8 frame is uint8.
    return av.VideoFrame.from_ndarray(yuv, format="yuv420p")  # type: ignore[arg-type]


def frame_to_bgr(frame: AVObject) -> np.ndarray:
    """Decoded VideoFrame -> (H, W, 3) BGR uint8 (OpenCV conversion for yuv420p, see above)."""
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        import cv2
        return cv2.cvtColor(frame.to_ndarray(format="yuv420p"), cv2.COLOR_YUV2BGR_I420)
    return frame.to_ndarray(format="bgr24")


def _decode_timed(container: AVObject, stream: AVObject, path: PathLike,
                  source_fps: float) -> Iterator[Tuple[float, np.ndarray]]:
    """Yield (seconds since the first frame, (H, W, 3) BGR uint8) for every decoded frame."""
    import av

    start = None
    index = 0
    try:
        for frame in container.decode(stream):
            # Frames without timestamps (raw streams) are spaced by the nominal rate.
            time = frame.time if frame.time is not None else index / source_fps
            start = time if start is None else start
            yield time - start, frame_to_bgr(frame)
            index += 1
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot decode frame {index} of {path}: {exc}") from None
    finally:
        container.close()


def _resample(timed_frames: Iterable[Tuple[float, np.ndarray]], fps: float, source_fps: float) -> Iterator[np.ndarray]:
    """Bring frames to ``fps``: output instant k/fps shows the source frame on screen at that time.

    A source frame is on screen from its timestamp until the next frame's, and the last one for one
    nominal frame period, so frames are repeated (slower source) or dropped (faster source).
    """
    step = 1.0 / fps
    index = 0
    shown, shown_time = None, 0.0
    for time, image in timed_frames:
        if shown is not None:
            while index * step < time - _TIME_TOLERANCE:
                yield shown
                index += 1
        shown, shown_time = image, time
    if shown is None:
        return
    end = shown_time + 1.0 / source_fps
    while index * step < end - _TIME_TOLERANCE:
        yield shown
        index += 1


def iter_frames(path: PathLike, fps: Optional[float] = None) -> Iterator[np.ndarray]:
    """Decode a video lazily, one frame at a time.

    Args:
        path: any video PyAV can open.
        fps: target frame rate; when given and different from the source's, frames are dropped or
            repeated by presentation time (for example to bring a 30 fps video to 25 fps).
    Returns:
        An iterator of (H, W, 3) BGR uint8 frames. The file is opened (and checked) immediately.
    Raises:
        MediaError: missing or unreadable file, no video stream, or a frame that cannot be decoded.
        ConfigError: a non-positive ``fps``.
    """
    if fps is not None and not fps > 0:
        raise ConfigError(f"target fps must be positive, got {fps}")
    container = _open_input(path)
    stream = _video_stream(container, path)
    stream.thread_type = "AUTO"  # frame-threaded decoding: same frames, faster on several cores
    try:
        source_fps = _stream_fps(stream, path)
    except MediaError:
        container.close()
        raise
    timed = _decode_timed(container, stream, path, source_fps)
    if fps is None or abs(fps - source_fps) <= 1e-3 * fps:
        return (image for _, image in timed)
    return _resample(timed, fps, source_fps)


def read_video(path: PathLike, fps: Optional[float] = None, max_frames: Optional[int] = None) -> np.ndarray:
    """Decode a whole video (or its first ``max_frames``) into memory.

    Returns:
        (T, H, W, 3) BGR uint8 array.
    Raises:
        MediaError: as ``iter_frames``, or when the video has no decodable frame.
    """
    frames: List[np.ndarray] = []
    for image in iter_frames(path, fps=fps):
        if max_frames is not None and len(frames) >= max_frames:
            break
        frames.append(image)
    if not frames:
        raise MediaError(f"no frames could be decoded from {path}")
    return np.stack(frames)


def _frame_rate(fps: float) -> fractions.Fraction:
    """fps as an exact fraction; 29.97002997 becomes 30000/1001 as the NTSC rates are."""
    return fractions.Fraction(fps).limit_denominator(1001)


def _audio_frame_format(codec_name: str) -> str:
    """Packed sample format fed to the encoder: int16 for codecs that take it (so lossless codecs
    store exactly the int16 samples a wav would), float otherwise (PyAV converts to the codec's layout)."""
    import av

    try:
        formats = {fmt.name for fmt in (av.codec.Codec(codec_name, "w").audio_formats or ())}
    except (av.error.FFmpegError, ValueError) as exc:
        raise MediaError(f"unknown audio codec {codec_name!r}: {exc}") from None
    if not formats:
        raise MediaError(f"{codec_name!r} is not an audio encoder: use aac, flac or alac")
    return "s16" if formats & {"s16", "s16p"} else "flt"


class CloseOrAbort:
    """Context-manager protocol of the video writers: ``close()`` (publish the file) when the block
    ends normally, ``abort()`` (leave no file) when it raises, so no half-written video survives."""

    def __enter__(self: _Writer) -> _Writer:
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 traceback: Any) -> Literal[False]:
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    def close(self) -> None:
        """Publish the file."""
        raise NotImplementedError  # abstract: every writer implements it

    def abort(self) -> None:
        """Leave no file behind."""
        raise NotImplementedError  # abstract: every writer implements it


_Writer = TypeVar("_Writer", bound=CloseOrAbort)


class VideoWriter(CloseOrAbort):
    """Write BGR frames as H.264 (yuv420p) with an optional mono audio track, atomically.

    Use as a context manager::

        with VideoWriter("out.mp4", 25, audio=wav) as writer:
            for frame in frames:
                writer.write(frame)

    Frames must all have the first frame's size. yuv420p needs even sides, so an odd height or width
    is PADDED by one row/column repeating the edge pixels (the file is then one pixel larger; no
    pixel of the input is lost). Audio (float mono in [-1, 1] at ``sample_rate``) is interleaved
    with the video as frames arrive and the rest is written at the end, whether it is shorter or
    longer than the video; with ``live_audio=True`` the samples arrive later through ``add_audio``
    (a live source), and only those not yet encoded are held. ``audio_codec`` "aac" (default) is lossy; "flac" or "alac" store the
    int16 samples bit-exactly (``load_audio`` of the result equals ``load_audio`` of a wav written by
    ``save_wav``). Everything goes to a hidden temporary file in the destination folder that is
    renamed on success and removed on any error or when no frame was written.
    """

    def __init__(self, path: PathLike, fps: float, audio: Optional[np.ndarray] = None,
                 sample_rate: int = SAMPLE_RATE, crf: int = 20, audio_codec: str = "aac",
                 preset: str = "veryfast", live_audio: bool = False) -> None:
        self.path = str(path)
        folder, name = os.path.split(os.path.abspath(self.path))
        extension = os.path.splitext(name)[1].lower()
        if extension not in CONTAINER_FORMATS:
            raise MediaError(f"cannot write {self.path}: use one of {', '.join(CONTAINER_FORMATS)}")
        if not os.path.isdir(folder):
            raise MediaError(f"cannot write {self.path}: folder {folder} does not exist")
        if not fps > 0:
            raise ConfigError(f"video fps must be positive, got {fps}")
        self.fps = float(fps)
        self.sample_rate = int(sample_rate)
        self.crf = crf
        self.preset = preset
        self.audio_codec = audio_codec
        self.live_audio = bool(live_audio)
        if audio is not None and self.live_audio:
            raise ConfigError("give the audio track or live_audio=True, not both")
        # Samples not encoded yet: [_audio_done, _audio_done + _pending.size) of the track.
        self._pending = np.zeros(0, np.float32)
        self._has_audio = audio is not None or self.live_audio
        if audio is not None:
            self._pending = np.asarray(audio, dtype=np.float32).reshape(-1)
            if self._pending.size == 0:
                raise MediaError(f"cannot write {self.path}: the audio to mux is empty")
        if self._has_audio:
            self._audio_format = _audio_frame_format(audio_codec)
        self.frames_written = 0
        self._format = CONTAINER_FORMATS[extension]
        self._tmp = os.path.join(folder, f".{name}.partial{os.getpid()}{extension}")
        # PyAV objects, created by ``_open`` at the first frame (None before).
        self._container: AVObject = None
        self._video: AVObject = None
        self._audio_stream: AVObject = None
        self._audio_done = 0
        self._size: Optional[Tuple[int, ...]] = None  # (height, width) of the frames given, before even-padding
        self._closed = False

    def _open(self, height: int, width: int) -> None:
        """Create the container and its streams for frames of ``height`` x ``width``."""
        import av

        try:
            self._container = av.open(self._tmp, mode="w", format=self._format)
            self._video = self._container.add_stream("libx264", rate=_frame_rate(self.fps))
            self._video.height = height + height % 2
            self._video.width = width + width % 2
            self._video.pix_fmt = "yuv420p"
            self._video.options = {"crf": str(self.crf), "preset": self.preset}
            if self._has_audio:
                self._audio_stream = self._container.add_stream(self.audio_codec, rate=self.sample_rate)
                self._audio_stream.layout = "mono"
        except (av.error.FFmpegError, ValueError) as exc:
            self.abort()
            raise MediaError(f"cannot create {self.path}: {exc}") from None

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) BGR uint8 frame."""
        import av

        if self._closed:
            raise RuntimeError(f"VideoWriter for {self.path} is already closed")
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frames must be (H, W, 3) uint8 BGR, got {frame.dtype} {frame.shape}")
        if self._size is None:
            self._size = frame.shape[:2]
            self._open(*self._size)
        elif frame.shape[:2] != self._size:
            raise ValueError(f"frame {self.frames_written} is {frame.shape[:2]}, the video is {self._size}")
        height, width = self._size
        if height % 2 or width % 2:
            frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        video_frame = bgr_to_video_frame(frame)
        video_frame.pts = self.frames_written
        video_frame.time_base = 1 / _frame_rate(self.fps)
        try:
            self._container.mux(self._video.encode(video_frame))
            self.frames_written += 1
            # Keep audio level with the video so the muxer never buffers a whole track.
            self._write_audio(int(round(self.frames_written * self.sample_rate / self.fps)))
        except av.error.FFmpegError as exc:
            self.abort()
            raise MediaError(f"cannot write {self.path}: {exc}") from None

    def _write_audio(self, until: int) -> None:
        """Encode audio samples [already written, until) into the audio track."""
        import av

        if self._audio_stream is None:
            return
        until = min(until, self._audio_done + self._pending.size)
        while self._audio_done < until:
            stop = min(until, self._audio_done + _AUDIO_CHUNK)
            chunk, self._pending = self._pending[:stop - self._audio_done], self._pending[stop - self._audio_done:]
            samples = to_pcm16(chunk) if self._audio_format == "s16" else np.clip(chunk, -1.0, 1.0)
            audio_frame = av.AudioFrame.from_ndarray(samples[None, :], format=self._audio_format,
                                                     layout="mono")
            audio_frame.sample_rate = self.sample_rate
            audio_frame.pts = self._audio_done
            audio_frame.time_base = fractions.Fraction(1, self.sample_rate)
            self._container.mux(self._audio_stream.encode(audio_frame))
            self._audio_done = stop

    def add_audio(self, samples: np.ndarray) -> None:
        """Append mono float samples in [-1, 1] to a ``live_audio`` track.

        They are encoded as the video reaches them (or at ``close``), so audio may run ahead of
        the frames; only the samples not yet encoded are held.
        """
        if not self.live_audio:
            raise ConfigError("add_audio needs a VideoWriter created with live_audio=True")
        if self._closed:
            raise RuntimeError(f"VideoWriter for {self.path} is already closed")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._pending = np.concatenate([self._pending, samples])
        if self._container is not None:  # frames already written: catch the audio up with them
            self._write_audio(int(round(self.frames_written * self.sample_rate / self.fps)))

    def close(self) -> None:
        """Flush the encoders and move the finished file into place.

        Raises:
            MediaError: no frame was written (nothing is left on disk), or the muxer failed.
        """
        import av

        if self._closed:
            return
        if self.frames_written == 0:
            self.abort()
            raise MediaError(f"no frames were given for {self.path}: nothing was written")
        try:
            self._container.mux(self._video.encode(None))
            if self._audio_stream is not None:
                self._write_audio(self._audio_done + self._pending.size)
                self._container.mux(self._audio_stream.encode(None))
            self._container.close()
            os.replace(self._tmp, self.path)
        except (av.error.FFmpegError, OSError) as exc:
            self.abort()
            raise MediaError(f"cannot finish {self.path}: {exc}") from None
        self._closed = True

    def abort(self) -> None:
        """Drop everything written so far: close quietly and remove the temporary file."""
        self._closed = True
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - the file is being thrown away; its errors are moot
                pass
            self._container = None
        if os.path.exists(self._tmp):
            os.remove(self._tmp)


def write_video(path: PathLike, frames: Iterable[np.ndarray], fps: float, audio: Optional[np.ndarray] = None,
                **writer_options: Any) -> int:
    """Write an iterable of (H, W, 3) BGR uint8 frames (and optional mono audio) to ``path``.

    Returns:
        The number of frames written. See ``VideoWriter`` for the options and guarantees.
    """
    with VideoWriter(path, fps, audio=audio, **writer_options) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.frames_written
