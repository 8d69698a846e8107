"""Lip-sync error LSE-D / LSE-C (the SyncNet offset protocol) and expert sync-pair accuracy.

The protocol is the one joonson/syncnet_python runs and the Wav2Lip benchmark reports:

1. embed every 5-frame video window i and the audio window that starts at the same time;
2. for every offset d in -vshift..+vshift (vshift = 15 frames, 31 offsets) measure the distance
   between video window i and audio window i + d; the audio features are zero-padded by vshift
   on both sides, so windows near the edges are compared with zero vectors (as the reference does);
3. ``mdist[d]`` = mean of those distances over all windows i;
4. **LSE-D** = min(mdist), **LSE-C** = median(mdist) - min(mdist), **AV offset** = the d at the argmin.

A data set's score is the arithmetic mean of the per-video LSE-D and LSE-C.

Sign convention: a positive AV offset means the audio is *delayed* relative to the video (the
sound belonging to frame i is heard at frame i + d). syncnet_python prints the opposite sign
(``vshift - argmin``); the minimum distance and the confidence do not depend on it.

The embedding model is pluggable (``SYNC_SCORERS``): ``expert`` is our trained ``SyncNetColor``
(cosine distance of its normalised embeddings), ``syncnet_v2`` the original SyncNet v2
(Euclidean distance, MFCC audio, 224-px frames; see ``ppgan.metrics.syncnet_v2``). This module
takes a built network; ``ppgan.models.lse_scorers`` builds either one from weights or a config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from ..data.contract import (FACE_SIZE, MEL_STEP_SIZE, SYNC_T, expert_face_shape, lower_half_stack,
                             mel_window_fits, mel_windows, to_unit_float)
from ..utils.audio import melspectrogram, num_mel_steps
from ..utils.errors import DataError
from .sync_scorer import (  # noqa: F401  (the protocol's public names live here too)
    ENGINES, SYNC_SCORERS, SyncScorer, batched, build_embedding, cosine_distance, embedding_layer,
    euclidean_distance)

if TYPE_CHECKING:
    import paddle

VSHIFT = 15  # offsets searched on each side, in video frames (the reference's --vshift)

# A row-wise distance: (N, D), (N, D) -> (N,).
Distance = Callable[[np.ndarray, np.ndarray], np.ndarray]


# ---------------------------------------------------------------------------------------------
# distances and the offset protocol (pure numpy)
# ---------------------------------------------------------------------------------------------

def offset_distances(video_feats: np.ndarray, audio_feats: np.ndarray, distance: Distance,
                     vshift: int = VSHIFT) -> np.ndarray:
    """Distances between every video window and the audio windows ``vshift`` either side.

    Args:
        video_feats: (W, D) embeddings of video windows 0..W-1.
        audio_feats: (W, D) embeddings of the audio windows starting at the same frames.
        distance: row-wise distance function ``(N, D), (N, D) -> (N,)``.
    Returns:
        (W, 2 * vshift + 1) array; column k holds the distance to audio window i + k - vshift
        (a zero vector where that window does not exist).
    """
    video_feats = np.asarray(video_feats, np.float64)
    audio_feats = np.asarray(audio_feats, np.float64)
    if video_feats.ndim != 2 or video_feats.shape != audio_feats.shape or len(video_feats) == 0:
        raise ValueError(f"need matching non-empty (W, D) video and audio features, got "
                         f"{video_feats.shape} and {audio_feats.shape}")
    num_windows, dim = video_feats.shape
    pad = np.zeros((vshift, dim))
    padded = np.concatenate([pad, audio_feats, pad])
    # One column per offset keeps memory at O(W * D) even for long videos.
    return np.stack([distance(video_feats, padded[k:k + num_windows])
                     for k in range(2 * vshift + 1)], axis=1)


@dataclass
class LSEResult:
    """The protocol's outcome for one video.

    Attributes:
        offsets: (2 * vshift + 1,) int offsets d (positive = audio delayed).
        mdist: (2 * vshift + 1,) mean distance per offset.
        num_windows: how many 5-frame windows were averaged.
    """

    offsets: np.ndarray
    mdist: np.ndarray
    num_windows: int

    @property
    def lse_d(self) -> float:
        """LSE-D: the minimum mean distance (lower is better synced)."""
        return float(self.mdist.min())

    @property
    def lse_c(self) -> float:
        """LSE-C: median minus minimum of the mean distances (higher is more confident)."""
        return float(np.median(self.mdist) - self.mdist.min())

    @property
    def av_offset(self) -> int:
        """The offset at the minimum mean distance, in frames (positive = audio delayed)."""
        return int(self.offsets[int(np.argmin(self.mdist))])

    def to_dict(self) -> Dict[str, Any]:
        """The result as JSON-ready values (``mdist`` as a list)."""
        return {"lse_d": self.lse_d, "lse_c": self.lse_c, "av_offset": self.av_offset,
                "num_windows": int(self.num_windows), "mdist": [float(v) for v in self.mdist]}


def lse_from_distances(dists: np.ndarray, vshift: int = VSHIFT) -> LSEResult:
    """Reduce a (W, 2 * vshift + 1) distance table to an ``LSEResult`` (mean over windows)."""
    dists = np.asarray(dists, np.float64)
    return LSEResult(offsets=np.arange(-vshift, vshift + 1), mdist=dists.mean(axis=0),
                     num_windows=len(dists))


def lse_from_features(video_feats: np.ndarray, audio_feats: np.ndarray, distance: Distance,
                      vshift: int = VSHIFT) -> LSEResult:
    """The whole protocol on precomputed (W, D) video and audio window embeddings."""
    return lse_from_distances(offset_distances(video_feats, audio_feats, distance, vshift), vshift)


def aggregate_lse(results: Sequence[LSEResult]) -> Optional[Dict[str, Any]]:
    """Data-set score: means over videos.

    Args:
        results: list of ``LSEResult``.
    Returns:
        dict with ``lse_d``, ``lse_c`` (means), ``mdist`` (mean curve over videos, list),
        ``offsets``, ``num_videos`` and ``av_offsets`` (per video); None for an empty list.
    """
    if not results:
        return None
    return {
        "lse_d": float(np.mean([r.lse_d for r in results])),
        "lse_c": float(np.mean([r.lse_c for r in results])),
        "mdist": [float(v) for v in np.mean([r.mdist for r in results], axis=0)],
        "offsets": [int(v) for v in results[0].offsets],
        "num_videos": len(results),
        "av_offsets": [r.av_offset for r in results],
    }


def sync_pair_accuracy(video_feats: np.ndarray, audio_feats: np.ndarray, min_offset: int = 5,
                       threshold: float = 0.5, seed: int = 0) -> Dict[str, Any]:
    """How well an expert tells in-sync from off-sync (video, audio) window pairs.

    Every window i gives one in-sync pair (video i, audio i) and one off-sync pair (video i,
    audio j) with |j - i| >= ``min_offset`` drawn from a seeded generator. A pair is judged
    in sync when the cosine similarity of the embeddings exceeds ``threshold`` (the expert is
    trained with BCE on that similarity, so 0.5 is its decision boundary).

    Args:
        video_feats, audio_feats: (W, D) embeddings of the same clip's windows.
    Returns:
        dict: ``accuracy`` (balanced over both kinds), ``in_sync_accuracy``,
        ``off_sync_accuracy``, ``pairs`` (number of pairs scored).
    """
    video_feats = np.asarray(video_feats, np.float64)
    audio_feats = np.asarray(audio_feats, np.float64)
    rng = np.random.default_rng(seed)
    num_windows = len(video_feats)
    positive = 1.0 - cosine_distance(video_feats, audio_feats) > threshold
    negatives = []
    for i in range(num_windows):
        choices = [j for j in range(num_windows) if abs(j - i) >= min_offset]
        if choices:
            negatives.append((i, choices[rng.integers(len(choices))]))
    if not negatives:
        raise DataError(f"a clip of {num_windows} windows has no off-sync pair at least "
                        f"{min_offset} frames apart: use longer clips")
    vi, aj = np.array(negatives).T
    negative = 1.0 - cosine_distance(video_feats[vi], audio_feats[aj]) <= threshold
    return {"accuracy": float((positive.mean() + negative.mean()) / 2),
            "in_sync_accuracy": float(positive.mean()),
            "off_sync_accuracy": float(negative.mean()),
            "pairs": int(len(positive) + len(negative))}


# ---------------------------------------------------------------------------------------------
# embedding models
# ---------------------------------------------------------------------------------------------

class ExpertScorer(SyncScorer):
    """Our lip-sync expert (``SyncNetColor``) as the LSE embedding model.

    Face input: lower halves of 5 consecutive S x S crops stacked on channels, (15, S/2, S),
    BGR in [0, 1]; audio: the 16-step mel window of frame i (``ppgan.data.contract``). Distance:
    1 - cosine of the L2-normalised embeddings.

    Args:
        net: a ``SyncNetColor`` (any width and size); it is put in eval mode.
        batch_size: windows per forward pass.
        engine: "auto" | "static" | "dynamic" (see ``build_embedding``).
        threads: CPU threads of the static engine (default: all cores).
    """

    name = "expert"
    pair_threshold: Optional[float] = 0.5  # trained with BCE on the cosine similarity

    def __init__(self, net: paddle.nn.Layer, batch_size: int = 64, engine: str = "auto",
                 threads: Optional[int] = None) -> None:
        self.net = net
        self.net.eval()
        self.face_size = int(getattr(net, "img_size", FACE_SIZE))
        self.batch_size = int(batch_size)
        # The same flatten + L2 normalisation as SyncNetColor.forward, one stream at a time.
        self.embed_face = build_embedding(embedding_layer(net.face_encoder, normalize=True),
                                          expert_face_shape(self.face_size), engine, threads)
        self.embed_audio = build_embedding(embedding_layer(net.audio_encoder, normalize=True),
                                           (1, 80, MEL_STEP_SIZE), engine, threads)

    def num_windows(self, num_frames: int, num_samples: int, fps: float) -> int:
        mel_frames = num_mel_steps(num_samples)
        count = 0
        while count + SYNC_T <= num_frames and mel_window_fits(count, fps, mel_frames):
            count += 1
        return count

    def face_windows(self, faces: np.ndarray, start: int, stop: int) -> np.ndarray:
        """The expert's face input of windows ``start .. stop - 1``.

        Args:
            faces: (T, S, S, 3) uint8 BGR crops of the clip.
        Returns:
            (stop - start, 3 * SYNC_T, S/2, S) float32 in [0, 1] (``contract.lower_half_stack``).
        """
        planes = np.asarray(faces).transpose(0, 3, 1, 2)  # (T, 3, S, S) view
        index = np.arange(start, stop)[:, None] + np.arange(SYNC_T)[None, :]
        return to_unit_float(lower_half_stack(planes[index].transpose(0, 2, 1, 3, 4)))

    def audio_windows(self, mel: np.ndarray, fps: float, start: int, stop: int) -> np.ndarray:
        """(stop - start, 1, 80, 16) mel windows of frames ``start .. stop - 1`` (offset 0)."""
        return mel_windows(mel, np.arange(start, stop), fps)[:, None]

    def video_features(self, faces: np.ndarray, num_windows: int) -> np.ndarray:
        return np.concatenate([self.embed_face(self.face_windows(faces, start, stop))
                               for start, stop in batched(num_windows, self.batch_size)])

    def audio_features(self, wav: np.ndarray, fps: float, num_windows: int) -> np.ndarray:
        mel = melspectrogram(wav)
        return np.concatenate([self.embed_audio(self.audio_windows(mel, fps, start, stop))
                               for start, stop in batched(num_windows, self.batch_size)])


def clip_features(scorer: SyncScorer, faces: np.ndarray, wav: np.ndarray, fps: float,
                  name: str = "clip") -> Tuple[np.ndarray, np.ndarray]:
    """Video and own-audio window embeddings of one clip.

    Args:
        faces: (T, S, S, 3) uint8 BGR crops at ``scorer.face_size``.
        wav: (N,) float32 16 kHz audio.
        name: the clip's file, for the error message.
    Returns:
        (video_feats (W, D), audio_feats (W, D)).
    Raises:
        DataError: the clip is too short for one window.
    """
    count = scorer.num_windows(len(faces), len(wav), fps)
    if count < 1:
        raise DataError(f"{name} ({len(faces)} frames / {len(wav) / 16000:.2f} s) is too short "
                        f"for one {SYNC_T}-frame sync window: score clips of at least 0.3 s")
    return scorer.video_features(faces, count), scorer.audio_features(wav, fps, count)


def score_clip(scorer: SyncScorer, faces: np.ndarray, wav: np.ndarray, fps: float,
               vshift: int = VSHIFT) -> LSEResult:
    """LSE of one clip (its frames against its own audio): an ``LSEResult``."""
    video_feats, audio_feats = clip_features(scorer, faces, wav, fps)
    return lse_from_features(video_feats, audio_feats, scorer.distance, vshift)
