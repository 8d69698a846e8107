"""Audio decoding (PyAV) and THE mel spectrogram used everywhere in the project.

The mel follows the reference Wav2Lip features exactly: pre-emphasis 0.97; STFT with n_fft 800,
hop 200, window 800, Hann, centred with *reflect* padding; magnitude; Slaney mel with 80 bands
from 55 to 7600 Hz; 20*log10(max(1e-5, x)) - 20 dB; symmetric normalisation clipped to [-4, 4].
At 16 kHz that is 80 mel frames per second, and video frame i at ``fps`` starts at mel index
``int(80 * i / fps)``; the networks see 16-step windows (0.2 s, 5 frames at 25 fps), cut by
``ppgan.data.contract``.
"""

from __future__ import annotations

import functools
import os
import wave
from typing import Any, List, Union, overload

import numpy as np

from .errors import MediaError

SAMPLE_RATE = 16000
N_FFT = 800
HOP_SIZE = 200
WIN_SIZE = 800
NUM_MELS = 80
FMIN = 55
FMAX = 7600
PREEMPHASIS = 0.97
REF_LEVEL_DB = 20
MIN_LEVEL_DB = -100
MAX_ABS_VALUE = 4.0
MEL_FPS = SAMPLE_RATE / HOP_SIZE  # 80 mel frames per second
MEL_STEP_SIZE = 16  # mel frames in one network window


_DECODE_BLOCK = 32768  # samples per resampling call in load_audio


def _mono(frame: Any) -> np.ndarray:
    """(N,) float32 average of a planar float frame's channels."""
    return frame.to_ndarray().mean(axis=0, dtype=np.float32)


def load_audio(path: Union[str, "os.PathLike[str]"], sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode any audio file, or the audio track of a video, to mono float32 at ``sample_rate``.

    Args:
        path: wav, mp3, m4a/aac, flac, mp4, ... (anything FFmpeg inside PyAV decodes).
    Returns:
        (N,) float32 array in [-1, 1]; several channels are averaged (as librosa's to_mono does).
    Raises:
        MediaError: missing or unreadable file, no audio stream, or no samples.
    """
    import av

    path = str(path)
    if not os.path.isfile(path):
        raise MediaError(f"audio file not found: {path}")
    chunks: List[np.ndarray] = []
    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise MediaError(f"no audio stream in {path}: give a file that carries sound")
            stream = container.streams.audio[0]
            # Resample with the channels kept, then average them: FFmpeg's own stereo->mono
            # downmix scales by 1/sqrt(2) per channel, which makes a stereo recording 3 dB louder
            # than its mono twin and pushes full-scale stereo past [-1, 1].
            resampler = av.AudioResampler(format="fltp", layout=None, rate=sample_rate)
            # Decoded frames are small (~1k samples) and each resample call has a fixed cost, so
            # gather them into large blocks first (2-3x faster; the resampler's output is the same).
            fifo = av.AudioFifo()
            for frame in container.decode(stream):
                frame.pts = None  # the fifo only concatenates; it must not police timestamps
                fifo.write(frame)
                while fifo.samples >= _DECODE_BLOCK:
                    chunks.extend(_mono(out) for out in resampler.resample(fifo.read(_DECODE_BLOCK)))
            tail = fifo.read()
            if tail is not None:
                chunks.extend(_mono(out) for out in resampler.resample(tail))
            chunks.extend(_mono(out) for out in resampler.resample(None))
    except MediaError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"cannot read audio from {path}: {exc}") from None
    wav = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if wav.size == 0:
        raise MediaError(f"audio file {path} holds no samples: give a non-empty recording")
    return wav


def to_pcm16(wav: np.ndarray) -> np.ndarray:
    """Quantise float audio in [-1, 1] to 16-bit PCM, the inverse of how decoding scales it.

    Decoders (PyAV/FFmpeg) map an int16 sample k to k / 32768, so scaling by 32768 here (and
    clipping to the int16 range) makes ``load_audio`` -> ``to_pcm16`` -> decode bit-exact;
    scaling by 32767 would shift every sample above half scale by one step per round trip.

    Args:
        wav: (N,) float array.
    Returns:
        (N,) int16 array.
    """
    scaled = np.round(np.asarray(wav, np.float64) * 32768.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def save_wav(path: str, wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono float audio in [-1, 1] as 16-bit PCM wav (atomically: temp file + rename)."""
    pcm = to_pcm16(wav).astype("<i2")
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with wave.open(tmp, "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(sample_rate)
            f.writeframes(pcm.tobytes())
        os.replace(tmp, path)
    except BaseException:
        # A failed write (full disk, bad folder) must not leave a half file behind.
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def preemphasis(wav: np.ndarray, coef: float = PREEMPHASIS) -> np.ndarray:
    """y[n] = x[n] - coef * x[n-1] with y[0] = x[0] (a first-order FIR, zero initial state)."""
    wav = np.asarray(wav, dtype=np.float64)
    out = wav.copy()
    out[1:] -= coef * wav[:-1]
    return out


# Slaney's mel scale (librosa's default, htk=False): linear up to 1 kHz, logarithmic above.
_LINEAR_HZ_PER_MEL = 200.0 / 3
_LOG_START_HZ = 1000.0
_LOG_START_MEL = _LOG_START_HZ / _LINEAR_HZ_PER_MEL
_LOG_STEP = np.log(6.4) / 27.0


def hz_to_mel(hz: Union[float, np.ndarray]) -> np.ndarray:
    """Slaney mel of frequencies in Hz (float64, any shape)."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / _LINEAR_HZ_PER_MEL
    logarithmic = _LOG_START_MEL + np.log(np.maximum(hz, _LOG_START_HZ) / _LOG_START_HZ) / _LOG_STEP
    return np.where(hz >= _LOG_START_HZ, logarithmic, linear)


def mel_to_hz(mel: Union[float, np.ndarray]) -> np.ndarray:
    """Frequencies in Hz of Slaney mels (float64, any shape): the inverse of ``hz_to_mel``."""
    mel = np.asarray(mel, dtype=np.float64)
    linear = _LINEAR_HZ_PER_MEL * mel
    logarithmic = _LOG_START_HZ * np.exp(_LOG_STEP * (mel - _LOG_START_MEL))
    return np.where(mel >= _LOG_START_MEL, logarithmic, linear)


@functools.lru_cache(maxsize=None)
def mel_basis() -> np.ndarray:
    """(80, 401) float32 Slaney mel filter bank (area-normalised), computed once.

    Triangles between mel-spaced edge frequencies, each scaled by 2 / its width in Hz, in the
    order and precision of ``librosa.filters.mel`` (each row rounded to float32, then scaled), so
    the bank is the one the reference features were computed with; numpy only, because importing
    librosa (numba, scipy.signal) costs about a second at every start of the CLI.
    """
    fft_hz = np.fft.rfftfreq(N_FFT, d=1.0 / SAMPLE_RATE)                       # (401,)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(FMIN), hz_to_mel(FMAX), NUM_MELS + 2))
    widths = np.diff(edges_hz)
    ramps = edges_hz[:, None] - fft_hz[None, :]                                # (82, 401)
    rising, falling = -ramps[:-2] / widths[:-1, None], ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]  # computed in float64, stored float32
    return weights


def hann_window(size: int = WIN_SIZE) -> np.ndarray:
    """(size,) float64 periodic Hann window, as ``scipy.signal.get_window("hann", size)``
    evaluates it (the window librosa's stft uses)."""
    angles = np.linspace(-np.pi, np.pi, size + 1)
    return (0.5 + 0.5 * np.cos(angles))[:size]


def stft_magnitude(wav: np.ndarray) -> np.ndarray:
    """|STFT| of a 1-D signal: frames centred on every 200th sample (reflect-padded by 400),
    Hann window, 800-point real FFT.

    Args:
        wav: (N,) float64 samples (pre-emphasised).
    Returns:
        (401, 1 + N // 200) float64 magnitudes.
    """
    padded = np.pad(wav, N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_SIZE]   # (T, 800)
    return frame_magnitudes(frames).T


def frame_magnitudes(frames: np.ndarray) -> np.ndarray:
    """(T, 800) float64 samples, one STFT frame per row -> (T, 401) |FFT| of the Hann-windowed rows."""
    return np.abs(np.fft.rfft(frames * _WINDOW, n=N_FFT, axis=1))


def melspectrogram(wav: np.ndarray) -> np.ndarray:
    """Mel spectrogram of 16 kHz mono audio, exactly as the reference Wav2Lip computes it.

    Args:
        wav: (N,) float array at 16 kHz.
    Returns:
        (80, num_mel_steps(N)) float32 array with values in [-4, 4] (silence gives -4).
    Raises:
        MediaError: not a non-empty 1-D array.
    """
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1 or wav.size == 0:
        raise MediaError(f"melspectrogram needs a non-empty 1-D waveform, got shape {wav.shape}")
    return normalised_mel(np.dot(mel_basis(), stft_magnitude(preemphasis(wav))))


def normalised_mel(mel: np.ndarray) -> np.ndarray:
    """Mel magnitudes (80, T) -> the network's features: dB (floor 1e-5, minus 20 dB),
    scaled symmetrically and clipped to [-4, 4], float32."""
    db = 20.0 * np.log10(np.maximum(1e-5, mel)) - REF_LEVEL_DB
    normalised = (2 * MAX_ABS_VALUE) * ((db - MIN_LEVEL_DB) / -MIN_LEVEL_DB) - MAX_ABS_VALUE
    return np.clip(normalised, -MAX_ABS_VALUE, MAX_ABS_VALUE).astype(np.float32)


_WINDOW = hann_window()


def num_mel_steps(num_samples: int) -> int:
    """Length of the mel of ``num_samples`` samples: 1 + N // 200 (centred frames)."""
    return 1 + int(num_samples) // HOP_SIZE


@overload
def mel_index(frame_index: int, fps: float) -> int: ...
@overload
def mel_index(frame_index: np.ndarray, fps: float) -> np.ndarray: ...
def mel_index(frame_index: Union[int, np.ndarray], fps: float) -> Union[int, np.ndarray]:
    """First mel step of video frame ``frame_index`` at ``fps``: int(80 * i / fps).

    Args:
        frame_index: an int, or an array of them (negative ones truncate towards zero, like int()).
    Returns:
        int, or an int64 array of the same shape.
    """
    if np.ndim(frame_index) == 0:
        return int(MEL_FPS * frame_index / fps)
    return np.trunc(MEL_FPS * np.asarray(frame_index, dtype=np.float64) / fps).astype(np.int64)


def num_video_frames(num_samples: int, fps: float, sample_rate: int = SAMPLE_RATE) -> int:
    """How many video frames at ``fps`` the given number of audio samples covers (rounded)."""
    return int(round(num_samples * fps / sample_rate))
