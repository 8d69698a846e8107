"""The mel spectrogram of audio that arrives in chunks, equal to ``melspectrogram`` of the whole.

``utils.audio.melspectrogram`` centres its STFT frames: mel step t is computed from the
pre-emphasised samples [200 t - 400, 200 t + 400), reflected at both ends of the signal. So a
step is final as soon as the samples up to 200 t + 400 have arrived (the end reflection only
touches the last two steps), and the first two steps only need the start reflection, which the
first 401 samples already fix. ``MelStream`` computes every step once it is final, keeps only the
last window's worth of samples, and at ``finish`` adds the steps that need the end reflection.
Each step goes through the same operations as in ``melspectrogram`` (pre-emphasis in float64,
Hann window, real FFT, magnitude, Slaney filter bank, dB, normalisation), one column at a time,
so the result does not depend on how the audio was cut into chunks.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .audio import HOP_SIZE, N_FFT, NUM_MELS, PREEMPHASIS, frame_magnitudes, mel_basis, \
    normalised_mel, num_mel_steps
from .errors import MediaError

_HALF = N_FFT // 2  # centring pad of the STFT: 400 samples


def mel_columns(frames: np.ndarray) -> np.ndarray:
    """Mel steps of windowed-frame inputs.

    Args:
        frames: (T, 800) float64 pre-emphasised samples, one row per mel step.
    Returns:
        (80, T) float32 normalised mel in [-4, 4].
    """
    spec = frame_magnitudes(frames)   # (T, 401)
    basis = mel_basis().astype(np.float64)
    # One matrix-vector product per step: a matrix product over several steps may sum in another
    # order depending on how many there are, and streamed steps must not depend on chunking.
    mel = np.stack([basis @ row for row in spec], axis=1) if len(spec) else np.zeros((NUM_MELS, 0))
    return normalised_mel(mel)


class MelStream:
    """Push 16 kHz mono samples in chunks of any length; read mel steps as they become final.

    ``push`` and ``finish`` return the new steps (80, k) float32; ``steps`` counts all steps
    produced so far. Memory is bounded: only the last 800 pre-emphasised samples are kept.
    After ``finish`` the steps concatenated equal ``melspectrogram`` of all samples pushed
    (``num_mel_steps(samples)`` of them).
    """

    def __init__(self) -> None:
        self.samples = 0          # samples pushed
        self.steps = 0            # mel steps produced
        self.finished = False
        self._last_raw: Optional[float] = None     # last raw sample (pre-emphasis state)
        self._tail = np.zeros(0, np.float64)  # pre-emphasised samples [_tail_start, samples)
        self._tail_start = 0
        self._head = np.zeros(0, np.float64)  # the first _HALF + 1 pre-emphasised samples
        mel_basis()  # built once per process: now, not in the first push of a live stream

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Add samples; returns the mel steps they made final, (80, k) float32 (k may be 0).

        Raises:
            MediaError: not a 1-D array of finite values, or the stream is finished.
        """
        if self.finished:
            raise MediaError("audio pushed after the stream was finished")
        chunk = np.asarray(samples, dtype=np.float32).reshape(-1) if np.ndim(samples) <= 1 else None
        if chunk is None:
            raise MediaError("audio chunks must be 1-D (mono) arrays of 16 kHz samples")
        if not np.isfinite(chunk).all():
            raise MediaError("audio chunk holds NaN or infinite samples")
        if chunk.size == 0:
            return np.zeros((NUM_MELS, 0), np.float32)
        raw = chunk.astype(np.float64)
        emphasised = raw.copy()
        emphasised[1:] -= PREEMPHASIS * raw[:-1]
        if self._last_raw is not None:
            emphasised[0] -= PREEMPHASIS * self._last_raw
        self._last_raw = raw[-1]
        if self._head.size <= _HALF:
            self._head = np.concatenate([self._head, emphasised[:_HALF + 1 - self._head.size]])
        self._tail = np.concatenate([self._tail, emphasised])
        self.samples += chunk.size
        # Step t is final when samples up to 200 t + 400 are in, and (for the start reflection)
        # at least 401 samples have arrived.
        ready = (self.samples - _HALF) // HOP_SIZE + 1 if self.samples > _HALF else 0
        return self._emit(ready, None)

    def finish(self) -> np.ndarray:
        """End of audio: returns the remaining steps (those touching the end reflection).

        Raises:
            MediaError: no samples were pushed.
        """
        if self.finished:
            return np.zeros((NUM_MELS, 0), np.float32)
        if self.samples == 0:
            raise MediaError("no audio was pushed: a mel needs at least one sample")
        self.finished = True
        return self._emit(num_mel_steps(self.samples), self.samples)

    def _sample(self, positions: np.ndarray, total: Optional[int]) -> np.ndarray:
        """Pre-emphasised samples at padded positions (reflected at the start, and at the end
        when ``total`` is known)."""
        positions = np.abs(positions)                 # start reflection: -p -> p
        if total is not None:
            positions = np.where(positions >= total, 2 * (total - 1) - positions, positions)
        if total is not None and total <= _HALF:
            # Short signals: reflections may bounce more than once (librosa pads with numpy's
            # reflect mode, which repeats); fold positions into [0, total).
            period = max(1, 2 * (total - 1))
            folded = np.mod(positions, period)
            positions = np.where(folded >= total, period - folded, folded)
        values = np.empty(positions.shape, np.float64)
        in_head = positions < self._head.size
        values[in_head] = self._head[positions[in_head]]
        rest = ~in_head
        values[rest] = self._tail[positions[rest] - self._tail_start]
        return values

    def _emit(self, ready: int, total: Optional[int]) -> np.ndarray:
        """Mel steps [steps, ready) from the samples held (``total`` known once finished)."""
        if ready <= self.steps:
            return np.zeros((NUM_MELS, 0), np.float32)
        starts = np.arange(self.steps, ready) * HOP_SIZE - _HALF
        positions = starts[:, None] + np.arange(N_FFT)[None, :]
        columns = mel_columns(self._sample(positions, total))
        self.steps = ready
        # Keep what the next steps read: from the next step's first sample on (the start
        # reflection reads the separately kept head).
        keep_from = max(0, self.steps * HOP_SIZE - _HALF - N_FFT)
        if keep_from > self._tail_start:
            self._tail = self._tail[keep_from - self._tail_start:].copy()
            self._tail_start = keep_from
        return columns
