"""The original SyncNet v2 (Chung & Zisserman) in Paddle, its MFCC features, and its converter.

This is the embedding model behind the published LSE-D / LSE-C numbers. Its weights
(``syncnet_v2.model`` from joonson/syncnet_python) convert with
``tools/convert_weights.py --arch syncnet_v2``. The topology and parameter names follow the
published ``SyncNetModel``:

* audio stream ``netcnnaud`` (2-D convs on a (1, 13, 20) MFCC patch = 0.2 s) -> 512, then
  ``netfcaud`` 512 -> 512 -> 1024;
* lip stream ``netcnnlip`` (3-D convs, first kernel 5x7x7 over five 224x224 BGR frames in
  0..255) -> 512, then ``netfclip`` 512 -> 512 -> 1024.

Embeddings are not normalised; the protocol uses Euclidean distance. Audio features are
``python_speech_features.mfcc`` with its defaults (13 coefficients, 25 ms windows every 10 ms,
26 filters, 512-point FFT, pre-emphasis 0.97, lifter 22, log energy as coefficient 0), applied
to 16-bit sample values, re-implemented here with numpy/scipy.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np

from ..utils.convert import register_converter
from ..utils.errors import ConfigError, WeightsError
from ..data.contract import SYNC_T
from .sync_scorer import SYNC_SCORERS, SyncScorer, batched, build_embedding, embedding_layer, \
    euclidean_distance

MFCC_PER_FRAME = 4  # 100 MFCC frames per second over 25 video frames per second
MFCC_WINDOW = 20  # MFCC frames in one audio window (0.2 s = 5 video frames)
FACE_SIZE = 224

if TYPE_CHECKING:
    import paddle

# A frequency (or mel) value or an array of them; the conversions work elementwise.
Frequencies = Union[float, np.ndarray]


# ---------------------------------------------------------------------------------------------
# MFCC (python_speech_features semantics)
# ---------------------------------------------------------------------------------------------

def hz_to_mel(hz: Frequencies) -> np.ndarray:
    """Hz -> mel on the HTK scale (python_speech_features' formula)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def mel_to_hz(mel: Frequencies) -> np.ndarray:
    """Inverse of ``hz_to_mel``."""
    return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


def mfcc_filterbank(num_filters: int = 26, nfft: int = 512, sample_rate: int = 16000, low_hz: float = 0.0,
                    high_hz: Optional[float] = None) -> np.ndarray:
    """(num_filters, nfft // 2 + 1) triangular mel filters on FFT bins, peak 1 at each centre.

    Band edges are equally spaced in mel and snapped down to FFT bins with
    floor((nfft + 1) * hz / sample_rate), which is what python_speech_features does.
    """
    high_hz = high_hz or sample_rate / 2
    mels = np.linspace(hz_to_mel(low_hz), hz_to_mel(high_hz), num_filters + 2)
    bins = np.floor((nfft + 1) * mel_to_hz(mels) / sample_rate)
    bank = np.zeros((num_filters, nfft // 2 + 1))
    for j in range(num_filters):
        left, centre, right = bins[j], bins[j + 1], bins[j + 2]
        rising = np.arange(int(left), int(centre))
        falling = np.arange(int(centre), int(right))
        bank[j, rising] = (rising - left) / (centre - left)
        bank[j, falling] = (right - falling) / (right - centre)
    return bank


def frame_signal(signal: np.ndarray, frame_len: int, frame_step: int) -> np.ndarray:
    """Cut ``signal`` into (num_frames, frame_len) frames, zero-padding the tail.

    There is always at least one frame; otherwise 1 + ceil((N - frame_len) / frame_step).
    """
    length = len(signal)
    if length <= frame_len:
        num_frames = 1
    else:
        num_frames = 1 + int(math.ceil((length - frame_len) / frame_step))
    padded = np.zeros((num_frames - 1) * frame_step + frame_len)
    padded[:length] = signal
    index = np.arange(frame_len)[None, :] + frame_step * np.arange(num_frames)[:, None]
    return padded[index]


def mfcc(signal: np.ndarray, sample_rate: int = 16000, win_sec: float = 0.025, step_sec: float = 0.01,
         num_ceps: int = 13, num_filters: int = 26, nfft: int = 512, preemph: float = 0.97,
         ceplifter: float = 22, append_energy: bool = True) -> np.ndarray:
    """MFCC features exactly as ``python_speech_features.mfcc`` computes them.

    Args:
        signal: (N,) samples (SyncNet feeds 16-bit integer values, not [-1, 1] floats).
    Returns:
        (num_frames, num_ceps) float64; num_frames = 1 + ceil((N - 400) / 160) at 16 kHz.
    """
    from scipy.fftpack import dct

    signal = np.asarray(signal, np.float64).reshape(-1)
    emphasised = np.append(signal[0], signal[1:] - preemph * signal[:-1])
    # python_speech_features rounds half up; both lengths are whole numbers at 16 kHz anyway.
    frames = frame_signal(emphasised, int(math.floor(win_sec * sample_rate + 0.5)),
                          int(math.floor(step_sec * sample_rate + 0.5)))
    power = np.square(np.abs(np.fft.rfft(frames, nfft))) / nfft
    eps = np.finfo(float).eps
    energy = power.sum(axis=1)
    energy = np.where(energy == 0, eps, energy)
    feat = power @ mfcc_filterbank(num_filters, nfft, sample_rate).T
    feat = np.where(feat == 0, eps, feat)
    ceps = dct(np.log(feat), type=2, axis=1, norm="ortho")[:, :num_ceps]
    if ceplifter > 0:
        ceps = ceps * (1 + (ceplifter / 2.0) * np.sin(np.pi * np.arange(num_ceps) / ceplifter))
    if append_energy:
        ceps[:, 0] = np.log(energy)
    return ceps


# ---------------------------------------------------------------------------------------------
# the network
# ---------------------------------------------------------------------------------------------

def _build_network(embedding_dim: int) -> paddle.nn.Layer:
    import paddle.nn as nn

    class SyncNetV2(nn.Layer):
        """SyncNet v2: ``forward_aud`` (N,1,13,20) -> (N,1024), ``forward_lip`` (N,3,5,224,224) -> (N,1024).

        Sequential indices match the original so parameter names do too (``netcnnaud.0.weight``...);
        pooling and ReLU layers occupy their indices just as in the original.
        """

        def __init__(self) -> None:
            super().__init__()
            self.netcnnaud = nn.Sequential(
                nn.Conv2D(1, 64, 3, padding=1), nn.BatchNorm2D(64), nn.ReLU(),
                nn.MaxPool2D(1, 1),
                nn.Conv2D(64, 192, 3, padding=1), nn.BatchNorm2D(192), nn.ReLU(),
                nn.MaxPool2D(3, stride=(1, 2)),
                nn.Conv2D(192, 384, 3, padding=1), nn.BatchNorm2D(384), nn.ReLU(),
                nn.Conv2D(384, 256, 3, padding=1), nn.BatchNorm2D(256), nn.ReLU(),
                nn.Conv2D(256, 256, 3, padding=1), nn.BatchNorm2D(256), nn.ReLU(),
                nn.MaxPool2D(3, stride=2),
                nn.Conv2D(256, 512, (5, 4)), nn.BatchNorm2D(512), nn.ReLU(),
            )
            self.netfcaud = nn.Sequential(
                nn.Linear(512, 512), nn.BatchNorm1D(512), nn.ReLU(), nn.Linear(512, embedding_dim))
            self.netfclip = nn.Sequential(
                nn.Linear(512, 512), nn.BatchNorm1D(512), nn.ReLU(), nn.Linear(512, embedding_dim))
            self.netcnnlip = nn.Sequential(
                nn.Conv3D(3, 96, (5, 7, 7), stride=(1, 2, 2)), nn.BatchNorm3D(96), nn.ReLU(),
                nn.MaxPool3D((1, 3, 3), stride=(1, 2, 2)),
                nn.Conv3D(96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)),
                nn.BatchNorm3D(256), nn.ReLU(),
                nn.MaxPool3D((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
                nn.Conv3D(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3D(256), nn.ReLU(),
                nn.Conv3D(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3D(256), nn.ReLU(),
                nn.Conv3D(256, 256, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3D(256), nn.ReLU(),
                nn.MaxPool3D((1, 3, 3), stride=(1, 2, 2)),
                nn.Conv3D(256, 512, (1, 6, 6)), nn.BatchNorm3D(512), nn.ReLU(),
            )

        def forward_aud(self, mfcc_patches: paddle.Tensor) -> paddle.Tensor:
            feat = self.netcnnaud(mfcc_patches)
            return self.netfcaud(feat.reshape([feat.shape[0], -1]))

        def forward_lip(self, frames: paddle.Tensor) -> paddle.Tensor:
            feat = self.netcnnlip(frames)
            return self.netfclip(feat.reshape([feat.shape[0], -1]))

        def forward(self, mfcc_patches: paddle.Tensor, frames: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor]:
            return self.forward_aud(mfcc_patches), self.forward_lip(frames)

    return SyncNetV2()


def SyncNetV2(embedding_dim: int = 1024) -> paddle.nn.Layer:
    """Build the SyncNet v2 network (Paddle is imported lazily, so the MFCC code needs no paddle)."""
    return _build_network(embedding_dim)


# ---------------------------------------------------------------------------------------------
# weights conversion
# ---------------------------------------------------------------------------------------------

# Linear layers: PyTorch stores (out, in), Paddle (in, out).
LINEAR_WEIGHTS = ("netfcaud.0.weight", "netfcaud.3.weight", "netfclip.0.weight", "netfclip.3.weight")


def convert_syncnet_v2(torch_state: Mapping[str, Any]) -> Dict[str, np.ndarray]:
    """Map a PyTorch SyncNet v2 state dict to Paddle layouts (``--arch syncnet_v2``).

    The generic steps of ``ppgan.utils.convert`` have already stripped ``module.``, renamed the
    batch-norm statistics and dropped ``num_batches_tracked``; names are otherwise identical
    because the Sequential indices match, so only the Linear weights need transposing.

    Args:
        torch_state: {name: ndarray} from ``syncnet_v2.model`` after the generic steps.
    Returns:
        {name: ndarray} loadable into ``SyncNetV2()``.
    """
    return {key: (np.ascontiguousarray(np.asarray(value).T) if key in LINEAR_WEIGHTS
                  else np.asarray(value))
            for key, value in torch_state.items()}


register_converter("syncnet_v2", network_factory=SyncNetV2)(convert_syncnet_v2)


# ---------------------------------------------------------------------------------------------
# the LSE scorer
# ---------------------------------------------------------------------------------------------

class SyncNetV2Scorer(SyncScorer):
    """SyncNet v2 as the LSE embedding model, following the published evaluation exactly.

    Frames: whole face crops resized to 224x224, BGR values 0..255; audio: MFCC of 16-bit
    samples, window v = MFCC columns 4v .. 4v+19. Usable length L = min(frames, samples // 640)
    and, like the reference, windows start at frames 0 .. L-6 (L - 5 windows).

    Args:
        net: a ``SyncNetV2`` with converted weights; batch_size: windows per forward pass;
        engine: "auto" | "static" | "dynamic"; threads: CPU threads of the static engine.
    """

    name = "syncnet_v2"
    face_size = FACE_SIZE
    required_fps: float = 25.0  # the protocol scores 25 fps video only
    distance = staticmethod(euclidean_distance)

    def __init__(self, net: paddle.nn.Layer, batch_size: int = 20, engine: str = "auto",
                 threads: Optional[int] = None) -> None:
        self.net = net
        self.net.eval()
        self.batch_size = int(batch_size)
        # forward_lip / forward_aud as single-input layers (static program or dynamic graph)
        self.embed_lips = build_embedding(embedding_layer(net.netcnnlip, net.netfclip),
                                          (3, SYNC_T, FACE_SIZE, FACE_SIZE), engine, threads)
        self.embed_audio = build_embedding(embedding_layer(net.netcnnaud, net.netfcaud),
                                           (1, 13, MFCC_WINDOW), engine, threads)

    def num_windows(self, num_frames: int, num_samples: int, fps: float) -> int:
        if abs(fps - self.required_fps) > 1e-3:
            raise ConfigError(f"syncnet_v2 scores 25 fps video only (got {fps:g} fps): "
                              f"the evaluation resamples video to 25 fps first")
        return max(0, min(num_frames, num_samples // 640) - SYNC_T)

    def video_features(self, faces: np.ndarray, num_windows: int) -> np.ndarray:
        faces = np.asarray(faces)
        out = []
        for start, stop in batched(num_windows, self.batch_size):
            index = np.arange(start, stop)[:, None] + np.arange(SYNC_T)[None, :]
            # (B, 5, H, W, 3) -> (B, 3, 5, H, W), values 0..255 as the original feeds them
            clip = faces[index].transpose(0, 4, 1, 2, 3).astype(np.float32)
            out.append(self.embed_lips(clip))
        return np.concatenate(out)

    def audio_features(self, wav: np.ndarray, fps: float, num_windows: int) -> np.ndarray:
        # The reference reads int16 wav samples; our decoder gives value / 32768.
        ceps = mfcc(np.asarray(wav, np.float64) * 32768.0).T.astype(np.float32)  # (13, M)
        out = []
        for start, stop in batched(num_windows, self.batch_size):
            patches = np.stack([ceps[:, MFCC_PER_FRAME * v:MFCC_PER_FRAME * v + MFCC_WINDOW]
                                for v in range(start, stop)])[:, None]
            out.append(self.embed_audio(patches))
        return np.concatenate(out)



def load_syncnet_v2(weights: str) -> paddle.nn.Layer:
    """SyncNet v2 with converted weights (``tools/convert_weights.py --arch syncnet_v2``)."""
    from ..utils.weights import load_weights

    net = SyncNetV2()
    load_weights(net, weights, strict=True)
    net.eval()
    return net


@SYNC_SCORERS.register("syncnet_v2")
def build_syncnet_v2_scorer(weights: Optional[str] = None, net: Optional[paddle.nn.Layer] = None,
                            batch_size: int = 20, engine: str = "auto") -> SyncNetV2Scorer:
    """``{name: syncnet_v2, weights: syncnet_v2.pdparams}``: the original protocol's model."""
    if net is None:
        if not weights:
            raise WeightsError("the syncnet_v2 scorer needs converted weights: run "
                               "tools/convert_weights.py --src syncnet_v2.model --arch syncnet_v2 "
                               "--out syncnet_v2.pdparams and pass that file")
        net = load_syncnet_v2(weights)
    return SyncNetV2Scorer(net, batch_size=batch_size, engine=engine)

