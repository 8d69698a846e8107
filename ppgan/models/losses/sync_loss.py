"""The lip-sync loss: the cosine similarity of the expert's embeddings, scored with BCE."""

from __future__ import annotations

from typing import Optional

import paddle
import paddle.nn.functional as F

from .bce import bce_on_probabilities


def sync_probability(audio_emb: paddle.Tensor, face_emb: paddle.Tensor) -> paddle.Tensor:
    """How in-sync the expert finds each pair.

    Args:
        audio_emb, face_emb: (B, D) non-negative, L2-normalised embeddings.
    Returns:
        (B, 1) cosine similarity, in [0, 1] because both embeddings are non-negative.
    """
    similarity = F.cosine_similarity(audio_emb, face_emb, axis=1)
    # Rounding can push the cosine a hair outside [0, 1], which Paddle's BCE kernel rejects.
    return similarity.clip(0.0, 1.0).unsqueeze(1)


class SyncLoss:
    """Cosine-BCE: BCE(cos(audio_emb, face_emb), label), as in the reference expert and generator.

    Call with (audio_emb (B, D), face_emb (B, D), label (B, 1) of 0/1) and get a scalar tensor.
    ``label=None`` means "all in sync" (the generator's sync loss).
    """

    def __call__(self, audio_emb: paddle.Tensor, face_emb: paddle.Tensor,
                 label: Optional[paddle.Tensor] = None) -> paddle.Tensor:
        prob = sync_probability(audio_emb, face_emb)
        if label is None:
            label = paddle.ones_like(prob)
        return bce_on_probabilities(prob, label.astype(prob.dtype))
