"""What every LSE embedding model shares: the scorer interface and registry, the two distances,
and the embedding streams run on the inference engine (``ppgan.inference``).

``lse.py`` (the protocol, our expert) and ``syncnet_v2.py`` (the original SyncNet) both build on
this module and neither imports the other at load time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator, Optional, Sequence, Tuple

import numpy as np

from ..data.contract import FACE_SIZE, resize_face
from ..inference.engine import ENGINES, build_runner
from ..utils.registry import Registry

if TYPE_CHECKING:
    import paddle

    from ..inference.engine import Runner

SYNC_SCORERS = Registry("sync scorer")

__all__ = ["ENGINES", "SYNC_SCORERS", "SyncScorer", "batched", "build_embedding", "cosine_distance",
           "embedding_layer", "euclidean_distance"]


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise 1 - cos(a, b); a zero vector (the protocol's edge padding) has cos 0.

    Args:
        a, b: (N, D) arrays.
    Returns:
        (N,) float64 distances in [0, 2].
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    denom = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dot = np.sum(a * b, axis=1)
    cos = np.divide(dot, denom, out=np.zeros_like(dot), where=denom > 0)
    return 1.0 - cos


def euclidean_distance(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Row-wise ||a - b + eps||, exactly what torch's ``pairwise_distance`` (SyncNet) computes.

    Args:
        a, b: (N, D) arrays.
    Returns:
        (N,) float64 distances.
    """
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64) + eps
    return np.linalg.norm(diff, axis=1)


class SyncScorer:
    """An audio-visual embedding model used by the protocol.

    Subclasses set ``face_size`` (square input size), ``distance`` (row-wise function),
    ``required_fps`` (None = any frame rate), ``pair_threshold`` and implement the three
    methods below.
    """

    name = "base"
    face_size = FACE_SIZE
    required_fps: Optional[float] = None
    distance: Callable[[np.ndarray, np.ndarray], np.ndarray] = staticmethod(cosine_distance)
    pair_threshold: Optional[float] = None  # cosine-similarity boundary for sync-pair accuracy (experts only)

    def num_windows(self, num_frames: int, num_samples: int, fps: float) -> int:
        """How many 5-frame windows have both video frames and audio features."""
        raise NotImplementedError  # abstract

    def video_features(self, faces: np.ndarray, num_windows: int) -> np.ndarray:
        """(T, S, S, 3) uint8 BGR face crops -> (num_windows, D) float32 embeddings."""
        raise NotImplementedError  # abstract

    def audio_features(self, wav: np.ndarray, fps: float, num_windows: int) -> np.ndarray:
        """(N,) float32 16 kHz audio -> (num_windows, D) embeddings of the windows at frames 0.."""
        raise NotImplementedError  # abstract

    def prepare_frame(self, face: np.ndarray) -> np.ndarray:
        """Resize one BGR face crop to the model's input size (the contract's ``resize_face``)."""
        return np.ascontiguousarray(resize_face(face, self.face_size, self.face_size))


def batched(count: int, batch_size: int) -> Iterator[Tuple[int, int]]:
    """``(start, stop)`` ranges covering ``0 .. count - 1`` in steps of ``batch_size``."""
    for start in range(0, count, batch_size):
        yield start, min(count, start + batch_size)


def embedding_layer(trunk: paddle.nn.Layer, head: Optional[paddle.nn.Layer] = None,
                    normalize: bool = False) -> paddle.nn.Layer:
    """A Layer computing ``normalize?(head?(flatten(trunk(x))))``: one embedding stream of a
    sync model, so the static program and the dynamic fallback run the same layers."""
    import paddle
    import paddle.nn as nn
    import paddle.nn.functional as F

    class Embedding(nn.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.trunk, self.head, self.normalize = trunk, head, normalize

        def forward(self, x: paddle.Tensor) -> paddle.Tensor:
            emb = paddle.flatten(self.trunk(x), 1)
            if self.head is not None:
                emb = self.head(emb)
            return F.normalize(emb, p=2, axis=1) if self.normalize else emb

    layer = Embedding()
    # A new Layer starts in train mode; the runner would restore that mode after each call and
    # put the shared trunk's batch norms into training.
    layer.eval()
    return layer


def build_embedding(layer: paddle.nn.Layer, input_shape: Sequence[int], engine: str = "auto",
                    threads: Optional[int] = None, precision: str = "fp32") -> Runner:
    """A callable ``(N, *input_shape) ndarray -> (N, D) ndarray`` running ``layer``.

    ``engine``: "static" (Paddle Inference + oneDNN, CPU), "dynamic", or "auto" (static on CPU,
    dynamic elsewhere or when the export fails - the reason is logged once); see
    ``ppgan.inference.build_runner``.
    """
    return build_runner(layer, {"x": tuple(input_shape)}, engine, threads, precision,
                        what="sync scorer")
