"""THE lip-sync inference path: the CLI (``tools/wav2lip.py``), the Python API and evaluation all
run ``Wav2LipPredictor``.

Pipeline of ``run(face, audio, outfile)``:

1. audio -> 16 kHz mono -> mel (80, T); the output has one frame per 1/fps of audio
   (``num_video_frames``), so its duration equals the audio's within one frame;
2. pass 1 streams the face video once and tracks one face per frame (``faceutils.track``),
   keeping only the boxes; the no-face policy and temporal smoothing then see the whole track;
3. pass 2 streams the frames again in output order - forward, and when the audio outlasts the
   video, backward and forward again (ping-pong, so motion never jumps) - and in batches crops the
   faces, runs the generator on [masked face, face] + the frame's 16-step mel window, pastes the
   mouth region back with a feathered mask and encodes H.264 + AAC (the input audio) with PyAV.

Only a batch of frames is ever held, so memory does not grow with the video's length. The output
is written to a temporary file beside ``outfile`` and renamed on success.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar, Union

import numpy as np

from ..faceutils.boxes import pad_box
from ..faceutils.detector import BoxDetector, FaceDetector, build_detector
from ..faceutils.track import NO_FACE_POLICIES, FaceTrack, FaceTracker, finalize_track, \
    is_out_of_memory
from ..data.contract import FACE_SIZE, INFERENCE_MEL_FRAME_OFFSET, MEL_STEP_SIZE, crop_face, generator_faces, \
    mel_windows
from ..inference.spec import DEFAULT_FPS
from ..utils.audio import load_audio, melspectrogram, num_video_frames
from ..utils.errors import ConfigError, MediaError
from ..utils.logger import get_logger
from ..utils.weights_home import find_released_weights, missing_weights_message
from ..utils.background_writer import ENCODERS, FrameWriter, open_video_writer
from ..utils.video import CONTAINER_FORMATS, IMAGE_EXTENSIONS, is_image_file, \
    probe_video, read_image, video_rotation
from .face_paste import paste_face
from .frame_io import FrameSource, prepare_frame
from .generator_loader import load_generator, wrap_generator
from .still_face import StillFaceGenerator, still_face_generator

if TYPE_CHECKING:  # imported where used: GPEN's module loads only with --face_enhancement
    from .face_enhance import FaceEnhancer

BLEND_MODES = ("feather", "hard")
STAGES = ("decode", "detect", "generate", "blend", "enhance", "encode")
# PaddleGAN's detector names: "sfd" is its name for S3FD.
DETECTOR_ALIASES: Dict[Optional[str], str] = {"sfd": "s3fd"}
# PaddleGAN's release file names, found where its tools cache them (utils.weights_home).
RELEASED_S3FD = "s3fd_paddle.pdparams"
# Frame rates a still face may be given: below 1 fps the mouth cannot follow speech; above 120
# each second of audio only costs more generator calls (100000 fps ran for minutes).
FPS_RANGE = (1.0, 120.0)
# A media file name as str or path object.
PathLike = Union[str, "os.PathLike[str]"]
# Wall seconds per stage name (``STAGES``).
StageSeconds = Dict[str, float]
# One output frame waiting for the generator: (output index, face box or None, frame).
BatchItem = Tuple[int, Optional[np.ndarray], np.ndarray]
_Item = TypeVar("_Item")
_Result = TypeVar("_Result")
# Image types FFmpeg cannot decode here; anything else unknown is tried as a video.
UNSUPPORTED_IMAGE_EXTENSIONS = (".svg", ".heic", ".heif", ".avif", ".jxl", ".psd", ".ico", ".eps",
                                ".raw", ".dng", ".cr2", ".nef", ".arw")


@dataclasses.dataclass
class Wav2LipResult:
    """What ``Wav2LipPredictor.run`` did.

    frames: output frames written; fps: their rate; source_frames: distinct input frames used;
    faces_detected / faces_interpolated / frames_kept: over those source frames, how many had a
    detected face, a box filled in between detections, or no face (left unchanged);
    seconds: wall time per stage (decode, detect, generate, blend, enhance, encode; with the
    child-process encoder, "encode" is the hand-over and the final wait); precision: what the
    generator computed in ("fp32" or "bf16"; what "auto" chose).
    """

    outfile: str
    frames: int
    fps: float
    source_frames: int
    faces_detected: int
    faces_interpolated: int
    frames_kept: int
    seconds: StageSeconds
    precision: str = "fp32"

    @property
    def total_seconds(self) -> float:
        """The stages' seconds summed."""
        return float(sum(self.seconds.values()))


def _same_file(path: str, other: str) -> bool:
    """True when two names reach the same file (symlinks, hard links, other spellings)."""
    if os.path.realpath(path) == os.path.realpath(other):
        return True
    try:
        return os.path.samefile(path, other)
    except OSError:  # ``other`` does not exist yet
        return False


def _checked_fps(fps: float) -> float:
    """``fps`` if it is within ``FPS_RANGE``, else ``ConfigError`` (also for nan and inf)."""
    if not FPS_RANGE[0] <= fps <= FPS_RANGE[1]:
        raise ConfigError(f"--fps must be between {FPS_RANGE[0]:g} and {FPS_RANGE[1]:g} "
                          f"frames per second, got {fps:g}")
    return fps


def _four_ints(value: Any, name: str) -> Tuple[int, int, int, int]:
    """``value`` as exactly four ints, else ``ConfigError`` naming the option ``name``."""
    try:
        values = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 4:
        raise ConfigError(f"{name} must be 4 integers (top bottom left right), got {value!r}")
    return values


class Wav2LipPredictor:
    """Lip-sync a face video or image to an audio track.

    Args:
        checkpoint_path: generator weights - this project's checkpoint, PaddleGAN's
            ``wav2lip_hq.pdparams``, a converted PyTorch file - or an exported inference program
            (prefix, ``.json`` or ``.pdmodel``). Default: PaddleGAN's ``wav2lip_hq.pdparams`` where
            its tools cache it (``ppgan.utils.weights_home``); nothing is downloaded.
        static: use only the first frame of the face input. Images are always static.
        fps: frame rate for still images (videos keep their own). Default: the checkpoint's
            training fps from its inference spec (25 for PaddleGAN / original weights).
        pads: (top, bottom, left, right) pixels added around detected faces. Default: (0, 10, 0, 0).
        face_det_batch_size: frames per detector call (halves on out-of-memory). Default: 16.
        wav2lip_batch_size: frames per generator call (halves on out-of-memory). Default: 32;
            the reference's 128 is no faster on CPU and holds 4x the frames and activations.
        resize_factor: divide the frame size by this integer first. Default: 1.
        crop: (top, bottom, left, right) region kept after resizing/rotating; -1 = to the edge.
        box: fixed face box (top, bottom, left, right); all -1 = detect faces.
        rotate: turn frames 90 degrees clockwise, overriding a video's rotation metadata
            (without it, videos stored sideways by phones are turned upright by that metadata).
        nosmooth: do not average boxes over a centred 5-frame window.
        detect_every: search faces in every k-th frame and interpolate the boxes in between
            (halves detection time at the default 2). Default: 2.
        face_detector: "haar", "s3fd" or "sfd" (PaddleGAN's name for s3fd); default: s3fd when
            ``face_detector_weights`` is given, else haar. PaddleGAN's "blazeface" is refused.
        face_detector_weights: weights file of the s3fd detector; default for s3fd: PaddleGAN's
            ``s3fd_paddle.pdparams`` where its tools cache it (``ppgan.utils.weights_home``).
        no_face: frames without a face: "interpolate" (fill gaps up to 1 s between detections,
            keep longer gaps unchanged), "keep" (leave them unchanged) or "error".
        device: "cpu" or "gpu". Default: "cpu".
        threads: CPU threads of the inference engine; default: all cores.
        blend: "feather" (soft mask over the lower face) or "hard" (paste the whole box).
        mel_frame_offset: shift the audio window by this many video frames. Default: what the
            generator's inference spec says (the offset a checkpoint of ours was trained with;
            0, the reference inference, for PaddleGAN / original weights and bare networks).
        generator: an in-memory generator (``paddle.nn.Layer`` or a callable
            ``(mels (N,1,80,16), faces (N,6,S,S)) -> (N,3,S,S)``) used instead of a checkpoint;
            S is its ``img_size`` attribute (96 when it has none).
        engine: "auto" (exported program with oneDNN on CPU, dynamic graph elsewhere or if export
            fails), "static" or "dynamic". Default: "auto".
        precision: "fp32", "bf16" or "auto": the inference program's arithmetic
            (``ppgan.inference``); bf16 falls back to fp32 with one log line where the CPU or
            Paddle cannot run it; auto times each supported precision on the first batch and keeps
            the fastest within the quality guard (``inference.auto_precision``).
        encoder: "inline" (encode in this process) or "process" (in a child process,
            overlapping generation: faster only where the generator leaves cores idle; on 2 cores
            the extra frame copies made it slower, benchmarks/BENCHMARKS.md). Default: "inline".
        progress: show progress bars.
        face_enhancement: restore each output face region with GPEN (``apps.face_enhance``).
        face_enhancement_weights: GPEN weights; default: PaddleGAN's ``GPEN-512.pdparams`` where
            its tools cache it.
    """

    def __init__(self, checkpoint_path: Optional[PathLike] = None, static: bool = False, fps: Optional[float] = None,
                 pads: Sequence[int] = (0, 10, 0, 0), face_det_batch_size: int = 16, wav2lip_batch_size: int = 32,
                 resize_factor: int = 1, crop: Sequence[int] = (0, -1, 0, -1),
                 box: Sequence[int] = (-1, -1, -1, -1), rotate: bool = False, nosmooth: bool = False,
                 detect_every: int = 2, face_detector: Optional[str] = None,
                 face_detector_weights: Optional[str] = None, no_face: str = "interpolate", device: str = "cpu",
                 threads: Optional[int] = None, blend: str = "feather", mel_frame_offset: Optional[int] = None,
                 generator: Any = None, engine: str = "auto", progress: bool = True,
                 face_enhancement: bool = False, face_enhancement_weights: Optional[str] = None,
                 precision: str = "fp32", encoder: str = "inline") -> None:
        self.static = bool(static)
        self.encoder = encoder
        # None until the generator's spec is read: a still face then runs at the training fps.
        self.fps = None if fps is None else float(fps)
        self.pads = _four_ints(pads, "pads")
        self.crop = _four_ints(crop, "crop")
        self.box = _four_ints(box, "box")
        self.resize_factor = int(resize_factor)
        self.rotate = bool(rotate)
        self.smooth_window = 1 if nosmooth else 5
        self.detect_every = int(detect_every)
        self.no_face = no_face
        self.blend = blend
        self.face_det_batch_size = int(face_det_batch_size)
        self.batch_size = int(wav2lip_batch_size)
        self.progress = progress
        self.threads = None if threads is None else int(threads)
        self._check_options()
        self.detector, self.window_detector = self._build_detectors(face_detector, face_detector_weights)
        self.enhancer: Optional[FaceEnhancer] = None
        if face_enhancement or face_enhancement_weights:
            from .face_enhance import FaceEnhancer
            self.enhancer = FaceEnhancer(face_enhancement_weights)
        self.generator: Callable[..., Any]
        if generator is not None:
            self.generator = wrap_generator(generator)
        else:
            self.generator = load_generator(checkpoint_path, device=device, threads=threads,
                                            engine=engine, precision=precision)
        # One checkpoint generates at one alignment wherever it runs: the spec's, unless overridden.
        spec = getattr(self.generator, "spec", None) or {}
        if mel_frame_offset is None:
            mel_frame_offset = spec.get("mel_frame_offset", INFERENCE_MEL_FRAME_OFFSET)
        self.mel_frame_offset = int(mel_frame_offset)
        if self.fps is None:
            # A still face has no frame rate of its own: use the one the checkpoint was trained
            # at, so its mel windows step as in training (25 for PaddleGAN / original weights).
            self.fps = _checked_fps(float(spec.get("fps", DEFAULT_FPS)))
        # The face size the generator was built for: crops are cut and pasted back at it.
        self.img_size = int(getattr(self.generator, "img_size", FACE_SIZE))

    def _check_options(self) -> None:
        if self.fps is not None:  # checked before any weights are loaded
            _checked_fps(self.fps)
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be at least 1 (leave it out to use all cores), "
                              f"got {self.threads}")
        if self.resize_factor < 1:
            raise ConfigError(f"resize_factor must be an integer >= 1, got {self.resize_factor}")
        if min(self.face_det_batch_size, self.batch_size, self.detect_every) < 1:
            raise ConfigError("face_det_batch_size, wav2lip_batch_size and detect_every must be >= 1")
        if self.no_face not in NO_FACE_POLICIES:
            raise ConfigError(f"no_face must be one of {', '.join(NO_FACE_POLICIES)}, got {self.no_face!r}")
        if self.blend not in BLEND_MODES:
            raise ConfigError(f"blend must be one of {', '.join(BLEND_MODES)}, got {self.blend!r}")
        if self.encoder not in ENCODERS:
            raise ConfigError(f"encoder must be one of {', '.join(ENCODERS)}, got {self.encoder!r}")

    def _build_detectors(self, name: Optional[str],
                         weights: Optional[str]) -> Tuple[FaceDetector, Optional[FaceDetector]]:
        """(detector, detector for tracking windows); see ``faceutils.track``."""
        if any(v != -1 for v in self.box):
            return build_detector("box", box=self.box), None
        name = DETECTOR_ALIASES.get(name, name) or ("s3fd" if weights else "haar")
        if name == "blazeface":
            raise ConfigError("the blazeface face detector is not available here: use "
                              "--face_detector sfd (S3FD, PaddleGAN's default) or haar")
        if name == "box":
            raise ConfigError("the box face detector needs --box top bottom left right")
        if weights and name != "s3fd":
            raise ConfigError(f"face detector weights are for s3fd, not {name!r}")
        if name == "haar":
            # In a tracking window the face spans ~40 % of the side: skipping smaller scales
            # makes the cascade about twice as fast there.
            return build_detector("haar"), build_detector("haar", min_size_ratio=0.25)
        if name == "s3fd" and not weights:
            weights = find_released_weights(RELEASED_S3FD)
            if weights is None:
                raise ConfigError(missing_weights_message(RELEASED_S3FD, "--face_detector_weights"))
        return build_detector(name, **({"weights": weights} if weights else {})), None

    # ------------------------------------------------------------------ the run

    def run(self, face: PathLike, audio: PathLike, outfile: PathLike) -> Wav2LipResult:
        """Lip-sync ``face`` (video or image) to ``audio`` and write ``outfile`` (.mp4/.mov/.mkv).

        Returns:
            Wav2LipResult.
        Raises:
            MediaError: missing/unreadable media, no frames, no audio, no face anywhere, ...
            ConfigError: a bad option or output extension.
        """
        seconds = dict.fromkeys(STAGES, 0.0)
        face, audio, outfile = os.fspath(face), os.fspath(audio), os.fspath(outfile)
        self.check_paths(face, audio, outfile)
        started = time.perf_counter()
        wav = load_audio(audio)
        mel = melspectrogram(wav)
        seconds["decode"] += time.perf_counter() - started
        source, fps = self._open_source(face)
        num_frames = num_video_frames(wav.size, fps)
        if num_frames == 0:
            raise MediaError(f"audio {audio} is too short ({wav.size / 16000:.3f} s) for one video "
                             f"frame at {fps:g} fps")
        track = self._track_faces(source, num_frames, seconds)
        still = self._still_of(source, track, seconds)
        frames = self._render(source, track, mel, wav, fps, num_frames, outfile, seconds, still)
        precision = str(getattr(still if still is not None else self.generator, "precision", "fp32"))
        result = Wav2LipResult(outfile=outfile, frames=frames, fps=fps, source_frames=len(track.boxes),
                               faces_detected=track.detected, faces_interpolated=track.interpolated,
                               frames_kept=track.kept, seconds=seconds, precision=precision)
        get_logger().info(
            "wrote %s: %d frames at %.3f fps; faces detected %d, interpolated %d, kept %d of %d "
            "source frames; %s", outfile, frames, fps, track.detected, track.interpolated,
            track.kept, len(track.boxes), ", ".join(f"{k} {v:.2f}s" for k, v in seconds.items()))
        return result

    @staticmethod
    def check_paths(face: PathLike, audio: PathLike, outfile: PathLike) -> None:
        """Fail fast (before any model is loaded) on missing inputs or an unusable output name.

        Raises:
            MediaError: ``face`` or ``audio`` is not a file.
            ConfigError: ``outfile`` is not .mp4 / .m4v / .mov / .mkv.
        """
        face, audio, outfile = os.fspath(face), os.fspath(audio), os.fspath(outfile)
        if os.path.splitext(outfile)[1].lower() not in CONTAINER_FORMATS:
            raise ConfigError(f"cannot write {outfile}: use one of {', '.join(CONTAINER_FORMATS)}")
        for flag, path, what in (("--face", face, "a video or image"), ("--audio", audio, "an audio or video")):
            if os.path.isdir(path):
                raise MediaError(f"{flag} {path} is a folder; give {what} file")
            if not os.path.isfile(path):
                raise MediaError(f"{flag[2:]} file not found: {path}")
            if _same_file(path, outfile):
                raise ConfigError(f"--outfile {outfile} is the same file as {flag} {path}: writing "
                                  f"it would replace your input; choose another output name")
        if os.path.isdir(outfile):
            raise ConfigError(f"--outfile {outfile} is a folder; give a file name such as "
                              f"{os.path.join(outfile, 'result.mp4')}")

    def _open_source(self, face: str) -> Tuple[FrameSource, float]:
        """The frame source and its frame rate (the container's, or ``fps`` for stills)."""
        # --rotate overrides; otherwise a video is turned upright by its own rotation metadata.
        rotation = 90 if self.rotate else 0
        if not self.rotate and not is_image_file(face) and \
                os.path.splitext(face)[1].lower() not in UNSUPPORTED_IMAGE_EXTENSIONS:
            rotation = video_rotation(face)
            if rotation:
                get_logger().info("%s is stored turned: rotating its frames %d degrees clockwise "
                                  "(its rotation metadata)", face, rotation)
        prepare = functools.partial(prepare_frame, resize_factor=self.resize_factor,
                                    rotate=rotation, crop=self.crop)
        if is_image_file(face):
            # fps is set by the end of __init__ (from the option or the generator's spec).
            return FrameSource.from_image(read_image(face), prepare), self.fps  # type: ignore[return-value]
        extension = os.path.splitext(face)[1].lower()
        if extension in UNSUPPORTED_IMAGE_EXTENSIONS:
            raise MediaError(f"{face}: {extension} images are not supported; convert it to one of "
                             f"{', '.join(IMAGE_EXTENSIONS)}, or give a video")
        info = probe_video(face)
        return FrameSource(face, info.fps, prepare, first_only=self.static), info.fps

    def _track_faces(self, source: FrameSource, num_frames: Optional[int], seconds: StageSeconds) -> FaceTrack:
        """Pass 1: one box per source frame that the output will use (FaceTrack)."""
        if isinstance(self.detector, BoxDetector):
            return self._fixed_box_track(source, num_frames, seconds)
        tracker = FaceTracker(self.detector, batch_size=self.face_det_batch_size,
                              window_detector=self.window_detector, detect_every=self.detect_every)
        shape: Optional[Tuple[int, ...]] = None
        batch: List[np.ndarray] = []
        bar = self._progress_bar(num_frames, "finding faces")
        for frame in _timed(source.forward(limit=num_frames), seconds, "decode"):
            shape = frame.shape
            batch.append(frame)
            if len(batch) == self.face_det_batch_size:
                _call_timed(seconds, "detect", tracker.update, batch)
                bar.update(len(batch))
                batch = []
        _call_timed(seconds, "detect", tracker.update, batch)
        bar.close()
        if shape is None:
            raise MediaError(f"no frames could be decoded from {source.path}")
        return finalize_track(tracker.raw_boxes, shape, self.pads, self.smooth_window, self.no_face,
                              max_gap=max(1, int(round(source.fps))), source=source.path)

    def _fixed_box_track(self, source: FrameSource, num_frames: Optional[int], seconds: StageSeconds) -> FaceTrack:
        """--box: the same box on every frame; counting the frames needs one decoding pass."""
        count, shape = 0, None
        for frame in _timed(source.forward(limit=num_frames), seconds, "decode"):
            count, shape = count + 1, frame.shape
        if shape is None:
            raise MediaError(f"no frames could be decoded from {source.path}")
        dummy = np.zeros(shape, np.uint8)
        x1, y1, x2, y2 = self.detector.detect_batch([dummy])[0][0, :4]
        box = pad_box([x1, y1, x2, y2], (0, 0, 0, 0), shape)
        return FaceTrack(boxes=[box] * count, detected=count, interpolated=0, kept=0)

    def _still_of(self, source: FrameSource, track: FaceTrack, seconds: StageSeconds) -> Optional[StillFaceGenerator]:
        """The still-face generator when ``track`` is one frame with a face (else None)."""
        if len(track.boxes) != 1 or track.boxes[0] is None:
            return None
        started = time.perf_counter()
        frame = next(iter(source.forward(limit=1)))
        still = self.still_generator(crop_face(frame, track.boxes[0], self.img_size))
        seconds["generate"] += time.perf_counter() - started
        return still

    def _render(self, source: FrameSource, track: FaceTrack, mel: np.ndarray, wav: np.ndarray, fps: float,
                num_frames: int, outfile: str, seconds: StageSeconds,
                still: Optional[StillFaceGenerator]) -> int:
        """Pass 2: generate (``still`` for a cached still face), paste back and encode
        ``num_frames`` frames; returns the count."""
        folder = os.path.dirname(os.path.abspath(outfile))
        os.makedirs(folder, exist_ok=True)
        bar = self._progress_bar(num_frames, "lip-sync")
        shared = len(track.boxes) == 1  # a still: the same array comes back for every frame
        with open_video_writer(self.encoder, outfile, fps, audio=wav) as writer:
            batch: List[BatchItem] = []
            order = source.pingpong(num_frames, len(track.boxes))
            for index, (source_index, frame) in enumerate(_timed(order, seconds, "decode")):
                batch.append((index, track.boxes[source_index], frame))
                if len(batch) == self.batch_size:
                    self._finish_batch(batch, mel, fps, writer, seconds, still, shared)
                    bar.update(len(batch))
                    batch = []
            if batch:
                self._finish_batch(batch, mel, fps, writer, seconds, still, shared)
                bar.update(len(batch))
            bar.close()
            written = writer.frames_written
            started = time.perf_counter()
        seconds["encode"] += time.perf_counter() - started  # flushing the encoders
        return written

    def _progress_bar(self, total: Optional[int], description: str) -> Any:
        """A tqdm bar over ``total`` frames (tqdm ships no types)."""
        from tqdm import tqdm

        # disable=None: bars only on a terminal, so logs and captured stderr stay clean.
        return tqdm(total=total, desc=description, unit="frame", leave=False,
                    disable=None if self.progress else True)

    def _finish_batch(self, batch: Sequence[BatchItem], mel: np.ndarray, fps: float, writer: FrameWriter,
                      seconds: StageSeconds, still: Optional[StillFaceGenerator], shared_frames: bool) -> None:
        """Generate (with ``still`` for a cached still face), paste back (and enhance) the faces
        of ``batch`` and encode its frames."""
        started = time.perf_counter()
        with_face = [(index, box, frame) for index, box, frame in batch if box is not None]
        if with_face:
            crops = np.stack([crop_face(frame, box, self.img_size) for _, box, frame in with_face])
            windows = mel_windows(mel, [index for index, _, _ in with_face], fps, self.mel_frame_offset)
            faces = self._generate(crops, windows, still)
            seconds["generate"] += time.perf_counter() - started
            started = time.perf_counter()
            pasted = {index: paste_face(frame, box, face, self.blend, inplace=not shared_frames)
                      for (index, box, frame), face in zip(with_face, faces)}
            seconds["blend"] += time.perf_counter() - started
            if self.enhancer is not None:
                started = time.perf_counter()
                self.enhancer.enhance_regions([pasted[index] for index, _, _ in with_face],
                                              [box for _, box, _ in with_face])
                seconds["enhance"] += time.perf_counter() - started
        else:
            pasted = {}
        started = time.perf_counter()
        for index, _, frame in batch:
            writer.write(pasted.get(index, frame))
        seconds["encode"] += time.perf_counter() - started

    def still_generator(self, crop: np.ndarray) -> Optional[StillFaceGenerator]:
        """The generator for one fixed face, its face encoder run once (``still_face``); None when
        the network is not at hand (an exported program or a plain callable was given).

        Args:
            crop: (S, S, 3) uint8 BGR face.
        """
        faces = generator_inputs(crop[None], np.zeros((1, 80, MEL_STEP_SIZE), np.float32))[1]
        return still_face_generator(self.generator, faces)

    def _generate(self, crops: np.ndarray, mels: np.ndarray,
                  still: Optional[StillFaceGenerator] = None) -> np.ndarray:
        """Run the generator (``still`` instead when every crop is its face), halving the batch
        on out-of-memory.

        Args:
            crops: (N, S, S, 3) uint8 BGR faces; mels: (N, 80, 16) windows.
        Returns:
            (N, S, S, 3) float32 BGR faces in [0, 255].
        """
        outputs: List[np.ndarray] = []
        start = 0
        while start < len(crops):
            stop = min(len(crops), start + self.batch_size)
            try:
                if still is not None:
                    outputs.append(still(np.ascontiguousarray(mels[start:stop, None], dtype=np.float32)))
                else:
                    outputs.append(self.generator(*generator_inputs(crops[start:stop], mels[start:stop])))
            except (MemoryError, RuntimeError) as exc:
                if not is_out_of_memory(exc) or self.batch_size == 1:
                    raise
                self.batch_size = max(1, self.batch_size // 2)
                get_logger().warning("out of memory: generator batch lowered to %d", self.batch_size)
                continue
            start = stop
        return np.concatenate(outputs).transpose(0, 2, 3, 1) * 255.0


# ---------------------------------------------------------------------- frame and face helpers

def generator_inputs(crops: np.ndarray, mels: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Network inputs for a batch.

    Args:
        crops: (N, S, S, 3) uint8 BGR faces; mels: (N, 80, 16).
    Returns:
        mels (N, 1, 80, 16) float32 and faces (N, 6, S, S) float32 in [0, 1]: the face with its
        lower half zeroed, then the face itself as the reference (as the reference inference does).
    """
    planes = crops.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(mels[:, None], dtype=np.float32), generator_faces(planes, planes)


def _timed(iterable: Iterable[_Item], seconds: StageSeconds, stage: str) -> Iterator[_Item]:
    """Yield from ``iterable``, adding the time spent producing each item to ``seconds[stage]``."""
    iterator = iter(iterable)
    while True:
        started = time.perf_counter()
        try:
            item = next(iterator)
        except StopIteration:
            seconds[stage] += time.perf_counter() - started
            return
        seconds[stage] += time.perf_counter() - started
        yield item


def _call_timed(seconds: StageSeconds, stage: str, function: Callable[..., _Result], *args: Any) -> _Result:
    """``function(*args)``, adding its wall time to ``seconds[stage]``."""
    started = time.perf_counter()
    result = function(*args)
    seconds[stage] += time.perf_counter() - started
    return result

