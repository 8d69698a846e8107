"""The synthetic talking-face corpus: drawn faces whose mouths follow the same hidden phoneme track
as a formant-synthesised voice, written in the preprocessed LRS2 layout.

One hidden track of units (open, rounded and spread vowels, a closed nasal, silence), each 2-6
video frames long at 25 fps, drives both sides:

* audio: a harmonic source at the speaker's pitch (slow drift plus jitter) shaped by the unit's
  formant resonances, with short crossfades between units; silence is exactly zero, the nasal is a
  weak low murmur, open vowels are the loudest;
* video: per frame, a face (per-speaker skin, face shape, hair, eyes with blinks, small head motion)
  whose mouth height, width and roundness are the unit's, blended on the frames either side of
  a unit boundary.

Video frame i covers audio samples [i * 640, (i + 1) * 640), so lip-sync is learnable and
measurable. Everything derives from the seed: clip (s, c) uses the generator seeded with
(seed, s, c), so a clip does not change when more speakers or clips are requested.
"""

import dataclasses
import json
import os
import shutil

import numpy as np

from ..data.contract import FACE_SIZE, check_face_size
from ..utils.audio import SAMPLE_RATE, melspectrogram, save_wav, to_pcm16
from ..utils.errors import ConfigError, DataError
from .frame_cache import write_frame_cache, write_jpg

FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640
MIN_UNIT_FRAMES, MAX_UNIT_FRAMES = 2, 6
_CROSSFADE = 120  # samples (7.5 ms) of amplitude ramp centred on each unit boundary
_MAX_HARMONIC_HZ = 7400  # keep the source inside the mel range (55-7600 Hz)
_TRANSITION_BLEND = 0.15  # share of the neighbouring unit's mouth shape on each side of a boundary


@dataclasses.dataclass(frozen=True)
class Unit:
    """One hidden phoneme-like unit: how it sounds and how the mouth looks while it lasts.

    formants: (F1, F2, F3) Hz for an average adult tract; gains: their relative strengths;
    loudness: RMS of the voiced signal before the speaker's scale (0 = silence);
    height, width, roundness: mouth shape in [0, 1].
    """

    name: str
    kind: str
    formants: tuple
    gains: tuple
    loudness: float
    height: float
    width: float
    roundness: float
    weight: float  # how often the unit is drawn


UNITS = (
    Unit("a", "open", (730, 1090, 2440), (1.0, 0.7, 0.3), 0.30, 1.00, 0.62, 0.15, 0.22),
    Unit("o", "rounded", (570, 840, 2410), (1.0, 0.6, 0.2), 0.22, 0.65, 0.40, 0.80, 0.12),
    Unit("u", "rounded", (300, 870, 2240), (1.0, 0.4, 0.15), 0.16, 0.45, 0.28, 1.00, 0.10),
    Unit("e", "spread", (530, 1840, 2480), (1.0, 0.8, 0.4), 0.17, 0.45, 0.85, 0.00, 0.12),
    Unit("i", "spread", (270, 2290, 3010), (1.0, 0.7, 0.5), 0.10, 0.22, 0.95, 0.00, 0.12),
    Unit("m", "closed", (250, 1100, 2200), (1.0, 0.04, 0.02), 0.03, 0.00, 0.45, 0.00, 0.16),
    Unit("_", "silence", (0, 0, 0), (0.0, 0.0, 0.0), 0.00, 0.12, 0.58, 0.40, 0.16),
)
_FORMANT_BANDWIDTHS = (90.0, 120.0, 170.0)
_SKIN_TONES = ((170, 200, 240), (150, 180, 230), (120, 160, 210), (90, 130, 185), (60, 95, 145))


@dataclasses.dataclass(frozen=True)
class Speaker:
    """Per-speaker voice and look. Colours are BGR; face sizes are fractions of the crop side."""

    name: str
    pitch_hz: float
    formant_scale: float
    loudness: float
    skin: tuple
    background: tuple
    hair: tuple
    lips: tuple
    iris: tuple
    face_rx: float
    face_ry: float
    harmonic_phases: tuple  # fixed per voice; random phases keep the waveform's peaks low


def _colour(values):
    return tuple(int(np.clip(v, 0, 255)) for v in values)


def random_speaker(rng, name="speaker00"):
    """Draw one speaker's voice (pitch, tract length, loudness) and look (colours, face shape)."""
    low_voice = rng.random() < 0.5
    skin = np.array(_SKIN_TONES[rng.integers(len(_SKIN_TONES))]) + rng.integers(-12, 13, 3)
    background = rng.integers(20, 236, 3)
    # Keep the background clearly away from the skin so the face outline is always visible.
    if np.abs(background - skin).sum() < 150:
        background = (background + 128) % 256
    return Speaker(
        name=name,
        pitch_hz=float(rng.uniform(95, 140) if low_voice else rng.uniform(170, 230)),
        formant_scale=float(rng.uniform(0.92, 1.0) if low_voice else rng.uniform(1.05, 1.15)),
        loudness=float(rng.uniform(0.85, 1.15)),
        skin=_colour(skin),
        background=_colour(background),
        hair=_colour(rng.integers(10, 90, 3)),
        lips=_colour(skin * np.array([0.55, 0.55, 0.85]) + np.array([10, 0, 40])),
        iris=_colour(rng.integers(30, 150, 3)),
        face_rx=float(rng.uniform(0.34, 0.40)),
        face_ry=float(rng.uniform(0.43, 0.48)),
        harmonic_phases=tuple(float(p) for p in rng.uniform(0, 2 * np.pi, 64)),
    )


def sample_unit_track(rng, num_frames):
    """(T,) int array of unit indices into ``UNITS``: runs of 2-6 frames, never the same unit twice
    in a row (so every run boundary is a visible and audible change)."""
    weights = np.array([unit.weight for unit in UNITS])
    track = np.empty(num_frames, dtype=np.int64)
    position, previous = 0, -1
    while position < num_frames:
        probabilities = weights.copy()
        if previous >= 0:
            probabilities[previous] = 0.0
        unit = int(rng.choice(len(UNITS), p=probabilities / probabilities.sum()))
        length = int(rng.integers(MIN_UNIT_FRAMES, MAX_UNIT_FRAMES + 1))
        track[position:position + length] = unit
        position += length
        previous = unit
    return track


def mouth_shapes(track):
    """(T, 3) mouth [height, width, roundness] per frame.

    Lips move during a transition, so the frames on either side of a unit boundary are blended
    symmetrically: the last frame of a unit moves ``_TRANSITION_BLEND`` towards the next shape
    (anticipation) and the first frame of the next keeps that much of the previous one.
    """
    shapes = np.array([[u.height, u.width, u.roundness] for u in UNITS])[track]
    blended = shapes.copy()
    starts = np.flatnonzero(track[1:] != track[:-1]) + 1
    blended[starts] += _TRANSITION_BLEND * (shapes[starts - 1] - shapes[starts])
    blended[starts - 1] += _TRANSITION_BLEND * (shapes[starts] - shapes[starts - 1])
    return blended


def _smooth_curve(rng, num_samples, knots_per_second, amount):
    """(N,) slow random curve in [-amount, amount]: random knots, linearly interpolated."""
    knots = int(num_samples / SAMPLE_RATE * knots_per_second) + 2
    values = rng.uniform(-amount, amount, knots)
    return np.interp(np.linspace(0, knots - 1, num_samples), np.arange(knots), values)


def _harmonic_amplitudes(unit, speaker, num_harmonics):
    """(K,) amplitudes of harmonics 1..K for ``unit`` in ``speaker``'s voice, scaled to its RMS."""
    if unit.loudness == 0:
        return np.zeros(num_harmonics)
    frequencies = speaker.pitch_hz * np.arange(1, num_harmonics + 1)
    envelope = np.zeros(num_harmonics)
    for formant, gain, bandwidth in zip(unit.formants, unit.gains, _FORMANT_BANDWIDTHS):
        centre = formant * speaker.formant_scale
        envelope += gain / (1.0 + ((frequencies - centre) / (bandwidth / 2)) ** 2)
    # A gentle source tilt keeps energy between formants, like a real glottal spectrum.
    amplitudes = envelope + 0.02 / np.arange(1, num_harmonics + 1)
    rms = np.sqrt(0.5 * np.sum(amplitudes ** 2))
    return amplitudes * (unit.loudness * speaker.loudness / rms)


def synthesize_audio(rng, speaker, track):
    """Voice for a unit track.

    Args:
        track: (T,) unit indices, one per video frame.
    Returns:
        (T * 640,) float32 waveform at 16 kHz in [-1, 1]; samples of frame i are [i*640, (i+1)*640).
    """
    num_samples = len(track) * SAMPLES_PER_FRAME
    # Pitch: slow intonation drift (+-6 %) plus faster jitter (+-1 %).
    pitch = speaker.pitch_hz * (1.0 + _smooth_curve(rng, num_samples, 3, 0.06)
                                + _smooth_curve(rng, num_samples, 60, 0.01))
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    num_harmonics = min(len(speaker.harmonic_phases), int(_MAX_HARMONIC_HZ / pitch.max()))
    table = np.stack([_harmonic_amplitudes(unit, speaker, num_harmonics) for unit in UNITS])  # (U, K)

    # Per-sample weight of each unit, crossfaded over a short ramp centred on each boundary.
    one_hot = np.zeros((len(UNITS), num_samples))
    one_hot[np.repeat(track, SAMPLES_PER_FRAME), np.arange(num_samples)] = 1.0
    padded = np.pad(one_hot, ((0, 0), (_CROSSFADE // 2, _CROSSFADE - _CROSSFADE // 2)), mode="edge")
    cumulative = np.cumsum(np.pad(padded, ((0, 0), (1, 0))), axis=1)
    weights = (cumulative[:, _CROSSFADE:] - cumulative[:, :-_CROSSFADE])[:, :num_samples] / _CROSSFADE
    amplitudes = table.T @ weights  # (K, N)

    wav = np.zeros(num_samples)
    for k in range(num_harmonics):
        wav += amplitudes[k] * np.sin((k + 1) * phase + speaker.harmonic_phases[k])
    # A little breath noise in voiced parts only: silence must stay exactly silent.
    loudness = np.array([u.loudness for u in UNITS]) @ weights
    wav += 0.04 * loudness * rng.standard_normal(num_samples)
    peak = np.abs(wav).max()
    if peak > 0.95:
        wav *= 0.95 / peak
    return wav.astype(np.float32)


@dataclasses.dataclass
class _Pose:
    dx: float  # head offset, pixels
    dy: float
    scale: float
    eye_open: float  # 1 open, 0 closed


def _head_poses(rng, num_frames, img_size):
    """Per-frame small head motion (a couple of pixels, +-2 % scale) and blinks every 1.5-4 s."""
    t = np.arange(num_frames) / FPS
    unit = img_size / FACE_SIZE  # the drawing is designed at 96 px and scales with the crop
    dx = rng.uniform(0.5, 1.5) * unit * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t + rng.uniform(0, 6.3))
    dy = rng.uniform(0.5, 1.2) * unit * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t + rng.uniform(0, 6.3))
    scale = 1.0 + 0.02 * np.sin(2 * np.pi * rng.uniform(0.1, 0.4) * t + rng.uniform(0, 6.3))
    eye_open = np.ones(num_frames)
    blink = rng.uniform(0.2, 2.0)
    while blink * FPS < num_frames:
        start = int(blink * FPS)
        eye_open[start:start + 3] = (0.4, 0.0, 0.5)[:len(eye_open[start:start + 3])]
        blink += rng.uniform(1.5, 4.0)
    return [_Pose(*values) for values in zip(dx, dy, scale, eye_open)]


_SHIFT = 4  # cv2 drawing with 4 fractional bits: sub-pixel positions keep small motion smooth


def _fixed(value):
    return int(round(value * (1 << _SHIFT)))


def _ellipse(image, centre, axes, colour, thickness=-1, start=0, end=360):
    import cv2

    cv2.ellipse(image, (_fixed(centre[0]), _fixed(centre[1])),
                (max(_fixed(axes[0]), 1), max(_fixed(axes[1]), 1)), 0, start, end, colour,
                thickness, cv2.LINE_AA, _SHIFT)


def _draw_mouth(image, centre, shape, speaker, size):
    """Lips, and when open the dark cavity, upper teeth and tongue, in the face's lower half."""
    height, width, roundness = shape
    half_width = size * (0.06 + 0.12 * width)
    half_height = size * 0.10 * height
    lip = size * (0.016 + 0.018 * roundness)  # rounded lips pout: thicker
    _ellipse(image, centre, (half_width + lip, half_height + lip), speaker.lips)
    if half_height < 0.6:
        # Pressed lips: a dark seam across the mouth.
        _ellipse(image, centre, (half_width, 0.35), (40, 30, 70))
        return
    _ellipse(image, centre, (half_width, half_height), (35, 20, 60))
    if height > 0.2:
        teeth_centre = (centre[0], centre[1] - 0.6 * half_height)
        _ellipse(image, teeth_centre, (0.75 * half_width, 0.32 * half_height), (235, 240, 245))
        tongue_centre = (centre[0], centre[1] + 0.55 * half_height)
        _ellipse(image, tongue_centre, (0.6 * half_width, 0.35 * half_height), (90, 80, 185))


def _face_geometry(speaker, pose, img_size):
    """(size, cx, cy, rx, ry) of a face drawn at ``pose``: scaled side, centre and half axes."""
    size = img_size * pose.scale
    cx, cy = img_size * 0.5 + pose.dx, img_size * 0.53 + pose.dy
    return size, cx, cy, speaker.face_rx * size, speaker.face_ry * size


def mouth_box(speaker, shape, pose, img_size):
    """(left, top, right, bottom) float pixel bounds of the lips drawn for ``shape`` at ``pose``
    (anti-aliasing may touch one more pixel on each side)."""
    size, cx, cy, _, ry = _face_geometry(speaker, pose, img_size)
    height, width, roundness = shape
    lip = size * (0.016 + 0.018 * roundness)
    half_width = size * (0.06 + 0.12 * width) + lip
    half_height = max(size * 0.10 * height, 0.35) + lip
    centre_y = cy + 0.5 * ry
    return cx - half_width, centre_y - half_height, cx + half_width, centre_y + half_height


def draw_face(speaker, shape, pose, img_size):
    """Render one face crop.

    Args:
        shape: mouth [height, width, roundness] in [0, 1].
        pose: head offset/scale and eye openness.
    Returns:
        (img_size, img_size, 3) BGR uint8; the mouth lies in the lower half.
    """
    import cv2

    size, cx, cy, rx, ry = _face_geometry(speaker, pose, img_size)
    image = np.empty((img_size, img_size, 3), np.uint8)
    image[:] = speaker.background
    _ellipse(image, (cx, cy - 0.25 * ry), (1.08 * rx, 0.85 * ry), speaker.hair)  # hair behind
    _ellipse(image, (cx, cy), (rx, ry), speaker.skin)
    _ellipse(image, (cx, cy - 0.55 * ry), (1.02 * rx, 0.5 * ry), speaker.hair, start=180, end=360)
    shade = _colour(np.array(speaker.skin) * 0.75)
    for side in (-1, 1):
        eye = (cx + side * 0.38 * rx, cy - 0.15 * ry)
        brow = (eye[0] - 0.15 * rx, eye[1] - 0.17 * ry, eye[0] + 0.15 * rx, eye[1] - 0.2 * ry)
        cv2.line(image, (_fixed(brow[0]), _fixed(brow[1])), (_fixed(brow[2]), _fixed(brow[3])),
                 speaker.hair, max(1, int(round(size / 48))), cv2.LINE_AA, _SHIFT)
        if pose.eye_open > 0.15:
            _ellipse(image, eye, (0.17 * rx, 0.09 * ry * pose.eye_open), (245, 245, 245))
            _ellipse(image, eye, (0.07 * rx, min(0.07 * rx, 0.09 * ry * pose.eye_open)), speaker.iris)
        else:
            _ellipse(image, eye, (0.17 * rx, 0.4), shade)
    _ellipse(image, (cx, cy + 0.15 * ry), (0.08 * rx, 0.12 * ry), shade)  # nose
    _draw_mouth(image, (cx, cy + 0.5 * ry), shape, speaker, size)
    return image


@dataclasses.dataclass
class ClipPlan:
    """Everything the frames of one clip are drawn from (what the oracle stores per clip).

    speaker: the ``Speaker``; track: (T,) unit indices into ``UNITS``; poses: T head poses;
    img_size: side of the crops; raw: where the crop sits in its raw video, if any.
    """

    speaker: Speaker
    track: np.ndarray
    poses: list
    img_size: int
    raw: dict = None  # the raw video's layout (``plan_raw_layout``) when one was written

    @property
    def num_frames(self):
        return len(self.track)


def render_faces(speaker, shapes, poses, img_size):
    """(T, img_size, img_size, 3) uint8 BGR frames: frame i draws ``shapes[i]`` at ``poses[i]``."""
    return np.stack([draw_face(speaker, shape, pose, img_size) for shape, pose in zip(shapes, poses)])


def plan_clip(rng, speaker, num_frames, img_size=FACE_SIZE):
    """Draw a clip's hidden track, its voice and its head poses (in this order from ``rng``).

    Returns:
        (ClipPlan, wav (T * 640,) float32 16 kHz).
    """
    if num_frames < 1:
        raise ConfigError(f"a synthetic clip needs at least one frame, got {num_frames}")
    track = sample_unit_track(rng, num_frames)
    wav = synthesize_audio(rng, speaker, track)
    poses = _head_poses(rng, num_frames, img_size)
    return ClipPlan(speaker=speaker, track=track, poses=poses, img_size=int(img_size)), wav


def synthesize_clip_plan(rng, speaker, num_frames, img_size=FACE_SIZE):
    """``plan_clip`` and the frames it draws: (ClipPlan, frames (T, S, S, 3) uint8, wav)."""
    plan, wav = plan_clip(rng, speaker, num_frames, img_size)
    frames = render_faces(speaker, mouth_shapes(plan.track), plan.poses, img_size)
    return plan, frames, wav


def synthesize_clip(rng, speaker, num_frames, img_size=FACE_SIZE):
    """One talking-face clip in memory.

    Returns:
        frames: (T, img_size, img_size, 3) uint8 BGR face crops;
        wav: (T * 640,) float32 16 kHz audio, frame i <-> samples [i*640, (i+1)*640);
        mouth_open: (T,) float mouth height in [0, 1] (the drawn opening, blends included).
    """
    plan, frames, wav = synthesize_clip_plan(rng, speaker, num_frames, img_size)
    return frames, wav, mouth_shapes(plan.track)[:, 0].copy()


def plan_raw_layout(rng, frame_size, crop):
    """Where a raw video's crop sits and what surrounds it (drawn from ``rng`` in this order).

    Returns:
        dict: frame_size [H, W]; box [top, bottom, left, right] of the crop (bottom/right
        exclusive); gradient [top colour, bottom colour]; blocks [[x, y, w, h, [b, g, r]], ...].
    """
    height, width = frame_size
    top = int(rng.integers(0, height - crop + 1))
    left = int(rng.integers(0, width - crop + 1))
    gradient = [[int(v) for v in rng.integers(30, 226, 3)] for _ in range(2)]
    blocks = []
    for _ in range(3):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(8, max(9, width // 3))), int(rng.integers(8, max(9, height // 3)))
        blocks.append([x, y, w, h, list(_colour(rng.integers(0, 256, 3)))])
    return {"frame_size": [int(height), int(width)], "box": [top, top + crop, left, left + crop],
            "gradient": gradient, "blocks": blocks}


def draw_raw_scene(layout):
    """(H, W, 3) uint8 static backdrop of a raw video (``plan_raw_layout``): a gradient and blocks."""
    import cv2

    height, width = layout["frame_size"]
    top, bottom = (np.array(c, np.float64) for c in layout["gradient"])
    ramp = np.linspace(0, 1, height)[:, None, None]
    scene = np.broadcast_to(top * (1 - ramp) + bottom * ramp, (height, width, 3)).astype(np.uint8).copy()
    for x, y, w, h, colour in layout["blocks"]:
        cv2.rectangle(scene, (x, y), (x + w, y + h), tuple(int(v) for v in colour), -1)
    return scene


def compose_raw_frame(scene, face, box):
    """A raw frame: ``face`` pasted into a copy of ``scene`` at ``box`` = [top, bottom, left, right]."""
    top, bottom, left, right = box
    raw = scene.copy()
    raw[top:bottom, left:right] = face
    return raw


def split_clips(keys_by_speaker, fractions, rng):
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
    result = {"val": [], "test": []}
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


def _check_params(speakers, clips, seed, min_frames, max_frames, img_size, raw_videos, raw_frame_size):
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


def _prepare_staging(out_dir, overwrite):
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


def _publish(staging, out_dir):
    """Move the finished corpus into place (replacing an old one only now that the new one exists)."""
    out_dir = os.path.abspath(out_dir)
    if os.path.isdir(out_dir):
        old = f"{staging}.old"
        os.rename(out_dir, old)
        os.rename(staging, out_dir)
        shutil.rmtree(old)
    else:
        os.rename(staging, out_dir)


def _write_clip(folder, frames, wav):
    """Write {0..T-1}.jpg, their frame cache, audio.wav and mel.npy; returns the stored samples."""
    os.makedirs(folder)
    decoded = [write_jpg(os.path.join(folder, f"{index}.jpg"), frame) for index, frame in enumerate(frames)]
    write_frame_cache(folder, np.stack(decoded))  # the frames as the JPEGs decode, not as drawn
    stored = to_pcm16(wav).astype(np.float32) / 32768.0  # what decoding the wav gives back
    save_wav(os.path.join(folder, "audio.wav"), stored)
    mel = melspectrogram(stored)
    np.save(os.path.join(folder, "mel.npy"), mel)
    return stored


def make_synthetic_corpus(out_dir, speakers=4, clips=6, seed=0, min_frames=50, max_frames=75,
                          img_size=FACE_SIZE, raw_videos=False, raw_frame_size=(160, 160),
                          splits=(0.7, 0.15, 0.15), progress=True, overwrite=False):
    """Write a synthetic corpus in the preprocessed LRS2 layout.

    Layout under ``out_dir``: ``<speaker>/<clip>/{0..T-1}.jpg`` (img_size^2 BGR crops),
    ``frames_<img_size>_<signature>.npy`` (their frame cache, see ``frame_cache``),
    ``audio.wav`` (16 kHz mono int16, T * 640 samples), ``mel.npy`` ((80, 1 + T*640 // 200), the
    ``melspectrogram`` of the wav's samples), ``oracle.json`` (what its frames are drawn from, for
    ``ppgan.datasets.oracle``); ``train.txt``, ``val.txt``, ``test.txt`` (lines
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

    from .oracle import write_clip_plan  # the oracle module builds on this one

    _check_params(speakers, clips, seed, min_frames, max_frames, img_size, raw_videos, raw_frame_size)
    staging = _prepare_staging(out_dir, overwrite)
    try:
        lengths, boxes, keys_by_speaker = {}, {}, []
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


def _write_raw_video(staging, key, frames, stored_wav, layout):
    """Paste the crops into the layout's scene and write the mp4; returns the box."""
    from ..utils.video import write_video

    scene = draw_raw_scene(layout)
    path = os.path.join(staging, "raw", f"{key}.mp4")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_video(path, (compose_raw_frame(scene, frame, layout["box"]) for frame in frames), FPS,
                audio=stored_wav, audio_codec="flac")
    return layout["box"]
