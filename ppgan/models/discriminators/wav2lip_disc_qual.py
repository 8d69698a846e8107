"""The visual-quality discriminator of Wav2Lip's GAN variant (``wav2lip_hq``).

It judges only the lower half of each generated face, where the generator redraws the mouth.
Default arguments build the published topology with PaddleGAN's parameter names: 28 state-dict
entries, 14,113,793 trainable parameters (the original ``visual_quality_disc.pth`` converts).
For faces larger than 96 px, blocks after the stem bring the S/2 x S lower half down to 48 x 96
first (``contract.face_size_factors``); the rest is the published network.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn

from ...data.contract import FACE_SIZE, face_size_factors, lower_half
from ...modules.conv import ConvLeakyRelu, channel_scaler, check_input_size, downsample_args
from ...utils.convert import keep_names, register_converter
from ..builder import DISCRIMINATORS


@DISCRIMINATORS.register()
class Wav2LipDiscQual(nn.Layer):
    """Real/fake classifier for S x S faces (lower halves only; S = 96 for the published network).

    Args:
        width_mult: scales every internal channel count (1.0 = the published network).
        img_size: face side S; 96 * 2^a * 3^b. Default: 96 (the published network). Each extra
            stage inserts a block of a ``c(32)``-channel resampling conv and a same-size conv
            after the stem (block indices after 0 shift by one per stage).
    """

    def __init__(self, width_mult: float = 1.0, img_size: int = FACE_SIZE) -> None:
        super().__init__()
        factors = face_size_factors(img_size, "Wav2LipDiscQual img_size")
        self.img_size = int(img_size)
        c = channel_scaler(width_mult)
        c32, c64, c128, c256, c512 = (c(n) for n in (32, 64, 128, 256, 512))
        self.face_encoder_blocks = nn.LayerList([
            nn.Sequential(ConvLeakyRelu(3, c32, 7, 1, 3)),                                 # S/2 x S
            *[nn.Sequential(ConvLeakyRelu(c32, c32, *downsample_args(factor)),           # -> 48x96
                            ConvLeakyRelu(c32, c32, 3, 1, 1)) for factor in factors],
            nn.Sequential(ConvLeakyRelu(c32, c64, 5, (1, 2), 2), ConvLeakyRelu(c64, c64, 5, 1, 2)),
            nn.Sequential(ConvLeakyRelu(c64, c128, 5, 2, 2), ConvLeakyRelu(c128, c128, 5, 1, 2)),
            nn.Sequential(ConvLeakyRelu(c128, c256, 5, 2, 2), ConvLeakyRelu(c256, c256, 5, 1, 2)),
            nn.Sequential(ConvLeakyRelu(c256, c512, 3, 2, 1), ConvLeakyRelu(c512, c512, 3, 1, 1)),
            nn.Sequential(ConvLeakyRelu(c512, c512, 3, 2, 1), ConvLeakyRelu(c512, c512, 3, 1, 1)),
            nn.Sequential(ConvLeakyRelu(c512, c512, 3, 1, 0), ConvLeakyRelu(c512, c512, 1, 1, 0)),
        ])                                                         # 48x48, 24, 12, 6, 3, 1
        self.binary_pred = nn.Sequential(nn.Conv2D(c512, 1, 1, 1, 0), nn.Sigmoid())

    def forward(self, faces: paddle.Tensor) -> paddle.Tensor:
        """Probability that each face is real.

        Args:
            faces: (B, 3, T, S, S) clips or (N, 3, S, S) frames, BGR in [0, 1].
        Returns:
            (N, 1) probabilities, N = B * T for clips, unrolled time-major like the generator
            (frame t of every clip, then frame t + 1, ...).
        """
        check_input_size(faces, self.img_size, self.img_size, "Wav2LipDiscQual")
        if len(faces.shape) == 5:
            faces = paddle.flatten(faces.transpose([2, 0, 1, 3, 4]), 0, 1)
        x = lower_half(faces)
        for block in self.face_encoder_blocks:
            x = block(x)
        return paddle.flatten(self.binary_pred(x), 1)


# The original PyTorch checkpoint of the visual-quality discriminator (``--arch disc``): this network keeps the original
# module names, so the generic conversion steps suffice.
register_converter("disc", network_factory=Wav2LipDiscQual)(keep_names)
