"""The SyncNet lip-sync expert (colour version, Wav2Lip paper section 3.2).

It embeds 5 consecutive lower-half face crops and the matching 0.2 s mel window into the same
space; the cosine similarity of the two embeddings is the probability that they are in sync.
Default arguments build the published topology with PaddleGAN's parameter names: 186
state-dict entries, 16,435,072 trainable parameters (``syncnet.pdparams``, ``lipsync_expert.pth``).
For faces larger than 96 px, stages after the stem bring the S/2 x S lower halves down to 48 x 96
first (``contract.face_size_factors``); the rest is the published encoder.
"""

from __future__ import annotations

from typing import Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ...data.contract import FACE_SIZE, SYNC_T, expert_face_shape, face_size_factors
from ...modules.conv import (ConvBNRelu, audio_encoder, channel_scaler, check_input_size,
                             downsample_args, residual_units)
from ...utils.convert import keep_names, register_converter
from ..builder import DISCRIMINATORS


@DISCRIMINATORS.register()
class SyncNetColor(nn.Layer):
    """Audio-visual sync expert.

    Args:
        width_mult: scales every internal channel count (1.0 = the published network).
        img_size: side S of the faces whose lower halves (S/2 x S) it embeds; 96 * 2^a * 3^b.
            Default: 96 (the published network). Each extra stage inserts a ``c(32)``-channel
            resampling conv and one residual unit after the stem (``face_encoder`` indices
            after 0 shift by two per stage).
    """

    def __init__(self, width_mult: float = 1.0, img_size: int = FACE_SIZE) -> None:
        super().__init__()
        factors = face_size_factors(img_size, "SyncNetColor img_size")
        self.img_size = int(img_size)
        # (height, width) of one lower half; fixed here so forward() calls no helper (dy2static)
        self.face_hw = expert_face_shape(self.img_size)[1:]
        c = channel_scaler(width_mult)
        c32, c64, c128, c256, c512 = (c(n) for n in (32, 64, 128, 256, 512))
        extra = [unit for factor in factors                                    # S/2 x S -> 48x96
                 for unit in (ConvBNRelu(c32, c32, *downsample_args(factor)), *residual_units(c32, 1))]
        self.face_encoder = nn.Sequential(
            ConvBNRelu(3 * SYNC_T, c32, 7, 1, 3),                              # S/2 x S
            *extra,
            ConvBNRelu(c32, c64, 5, (1, 2), 1), *residual_units(c64, 2),       # 46x47
            ConvBNRelu(c64, c128, 3, 2, 1), *residual_units(c128, 3),          # 23x24
            ConvBNRelu(c128, c256, 3, 2, 1), *residual_units(c256, 2),         # 12x12
            ConvBNRelu(c256, c512, 3, 2, 1), *residual_units(c512, 2),         # 6x6
            ConvBNRelu(c512, c512, 3, 2, 1),                                   # 3x3
            ConvBNRelu(c512, c512, 3, 1, 0),                                   # 1x1
            ConvBNRelu(c512, c512, 1, 1, 0))
        self.audio_encoder = audio_encoder(c, residuals_at_256=2)

    def forward(self, audio_sequences: paddle.Tensor,
                face_sequences: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor]:
        """Embed a mel window and a stack of lower-half faces.

        Args:
            audio_sequences: (B, 1, 80, 16) mel window.
            face_sequences: (B, 15, S/2, S): 5 BGR lower halves stacked on channels, in time
                order (``contract.lower_half_stack``).
        Returns:
            (audio_embedding, face_embedding), each (B, D) with D = 512 * width_mult, L2-normalised
            and non-negative (the encoders end in ReLU), so their cosine similarity is in [0, 1].
        """
        check_input_size(face_sequences, self.face_hw[0], self.face_hw[1], "SyncNetColor")
        audio = paddle.flatten(self.audio_encoder(audio_sequences), 1)
        face = paddle.flatten(self.face_encoder(face_sequences), 1)
        return F.normalize(audio, p=2, axis=1), F.normalize(face, p=2, axis=1)


# The original PyTorch checkpoint of the lip-sync expert (``--arch syncnet``): this network keeps the original
# module names, so the generic conversion steps suffice.
register_converter("syncnet", network_factory=SyncNetColor)(keep_names)
