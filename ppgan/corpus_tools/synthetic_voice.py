"""The hidden unit track of the synthetic corpus and the voices that speak it.

One hidden track of units (open, rounded and spread vowels, a closed nasal, silence), each 2-6
video frames long at 25 fps, drives both the audio (here) and the mouth (``synthetic_faces``):
a harmonic source at the speaker's pitch (slow drift plus jitter) shaped by the unit's formant
resonances, with short crossfades between units; silence is exactly zero, the nasal is a weak
low murmur, open vowels are the loudest. Video frame i covers audio samples [i * 640, (i + 1) * 640).
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Tuple

import numpy as np

from ..utils.audio import SAMPLE_RATE

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
    formants: Tuple[float, float, float]
    gains: Tuple[float, float, float]
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
    skin: Tuple[int, ...]  # BGR colours
    background: Tuple[int, ...]
    hair: Tuple[int, ...]
    lips: Tuple[int, ...]
    iris: Tuple[int, ...]
    face_rx: float
    face_ry: float
    harmonic_phases: Tuple[float, ...]  # fixed per voice; random phases keep the waveform's peaks low


def bgr_tuple(values: Iterable[float]) -> Tuple[int, ...]:
    """Three numbers clipped to 0..255 as an int tuple: a colour OpenCV draws with."""
    return tuple(int(np.clip(v, 0, 255)) for v in values)


def random_speaker(rng: np.random.Generator, name: str = "speaker00") -> Speaker:
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
        skin=bgr_tuple(skin),
        background=bgr_tuple(background),
        hair=bgr_tuple(rng.integers(10, 90, 3)),
        lips=bgr_tuple(skin * np.array([0.55, 0.55, 0.85]) + np.array([10, 0, 40])),
        iris=bgr_tuple(rng.integers(30, 150, 3)),
        face_rx=float(rng.uniform(0.34, 0.40)),
        face_ry=float(rng.uniform(0.43, 0.48)),
        harmonic_phases=tuple(float(p) for p in rng.uniform(0, 2 * np.pi, 64)),
    )


def sample_unit_track(rng: np.random.Generator, num_frames: int) -> np.ndarray:
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


def mouth_shapes(track: np.ndarray) -> np.ndarray:
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


def _smooth_curve(rng: np.random.Generator, num_samples: int, knots_per_second: float, amount: float) -> np.ndarray:
    """(N,) slow random curve in [-amount, amount]: random knots, linearly interpolated."""
    knots = int(num_samples / SAMPLE_RATE * knots_per_second) + 2
    values = rng.uniform(-amount, amount, knots)
    return np.interp(np.linspace(0, knots - 1, num_samples), np.arange(knots), values)


def _harmonic_amplitudes(unit: Unit, speaker: Speaker, num_harmonics: int) -> np.ndarray:
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


def synthesize_audio(rng: np.random.Generator, speaker: Speaker, track: np.ndarray) -> np.ndarray:
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
