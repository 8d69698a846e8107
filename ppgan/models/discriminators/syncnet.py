"""The SyncNet lip-sync expert (colour version, Wav2Lip paper section 3.2).

It embeds 5 consecutive lower-half face crops and the matching 0.2 s mel window into the same
space; the cosine similarity of the two embeddings is the probability that they are in sync.
Default arguments build the published topology with PaddleGAN's parameter names: 186
state-dict entries, 16,435,072 trainable parameters (``syncnet.pdparams``, ``lipsync_expert.pth``).
"""

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ...modules.conv import ConvBNRelu, audio_encoder, channel_scaler, residual_units
from ..builder import DISCRIMINATORS


@DISCRIMINATORS.register()
class SyncNetColor(nn.Layer):
    """Audio-visual sync expert.

    Args:
        width_mult: scales every internal channel count (1.0 = the published network).
    """

    def __init__(self, width_mult=1.0):
        super().__init__()
        c = channel_scaler(width_mult)
        c32, c64, c128, c256, c512 = (c(n) for n in (32, 64, 128, 256, 512))
        self.face_encoder = nn.Sequential(
            ConvBNRelu(15, c32, 7, 1, 3),                                      # 48x96
            ConvBNRelu(c32, c64, 5, (1, 2), 1), *residual_units(c64, 2),       # 46x47
            ConvBNRelu(c64, c128, 3, 2, 1), *residual_units(c128, 3),          # 23x24
            ConvBNRelu(c128, c256, 3, 2, 1), *residual_units(c256, 2),         # 12x12
            ConvBNRelu(c256, c512, 3, 2, 1), *residual_units(c512, 2),         # 6x6
            ConvBNRelu(c512, c512, 3, 2, 1),                                   # 3x3
            ConvBNRelu(c512, c512, 3, 1, 0),                                   # 1x1
            ConvBNRelu(c512, c512, 1, 1, 0))
        self.audio_encoder = audio_encoder(c, residuals_at_256=2)

    def forward(self, audio_sequences, face_sequences):
        """Embed a mel window and a stack of lower-half faces.

        Args:
            audio_sequences: (B, 1, 80, 16) mel window.
            face_sequences: (B, 15, 48, 96): 5 BGR lower halves stacked on channels, in time order.
        Returns:
            (audio_embedding, face_embedding), each (B, D) with D = 512 * width_mult, L2-normalised
            and non-negative (the encoders end in ReLU), so their cosine similarity is in [0, 1].
        """
        audio = paddle.flatten(self.audio_encoder(audio_sequences), 1)
        face = paddle.flatten(self.face_encoder(face_sequences), 1)
        return F.normalize(audio, p=2, axis=1), F.normalize(face, p=2, axis=1)
