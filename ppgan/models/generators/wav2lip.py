"""The Wav2Lip generator (Prajwal et al., ACM MM 2020): a U-Net that redraws the lower half of
a face so that the mouth matches a 0.2 s mel window.

Default arguments build the published topology with PaddleGAN's parameter names: 302
state-dict entries, 36,298,035 trainable parameters, so PaddleGAN's ``wav2lip_hq.pdparams``
and converted original ``wav2lip.pth`` / ``wav2lip_gan.pth`` files load into it unchanged.

Larger faces (``img_size`` = 96 * 2^a * 3^b, ``contract.face_size_factors``) keep that network
for everything at 96 px and below, and add one stage per factor on each side of it: after the
full-resolution stem, encoder stages that bring the face down to 96; after the published
decoder, decoder stages that bring it back up. Every added encoder stage is a skip for the
decoder stage at its resolution, so the U-Net stays symmetric.
"""

from __future__ import annotations

from typing import List

import paddle
import paddle.nn as nn

from ...data.contract import FACE_SIZE, face_size_factors
from ...modules.conv import (ConvBNRelu, ConvTransposeBNRelu, audio_encoder, channel_scaler,
                             check_input_size, downsample_args, residual_units, upsample_args)
from ...utils.convert import keep_names, register_converter
from ..builder import GENERATORS


def _up(in_channels: int, out_channels: int, residuals: int, factor: int = 2) -> nn.Sequential:
    """Decoder block: transposed-conv upsampling by ``factor`` followed by residual units."""
    kernel, stride, padding, output_padding = upsample_args(factor)
    return nn.Sequential(ConvTransposeBNRelu(in_channels, out_channels, kernel, stride, padding,
                                             output_padding=output_padding),
                         *residual_units(out_channels, residuals))


def _down(in_channels: int, out_channels: int, residuals: int, factor: int = 2) -> nn.Sequential:
    """Encoder block: strided-conv downsampling by ``factor`` followed by residual units."""
    return nn.Sequential(ConvBNRelu(in_channels, out_channels, *downsample_args(factor)),
                         *residual_units(out_channels, residuals))


@GENERATORS.register()
class Wav2Lip(nn.Layer):
    """Lip-sync generator for S x S faces (S = 96 for the published network).

    Face input: 6 channels = the target frame with its lower half zeroed (3, BGR in [0, 1])
    followed by a reference frame of the same person (3). Audio input: one 16-step mel window
    per frame. Every face-encoder block output is a skip connection: after each decoder block
    the deepest remaining one is concatenated (decoder channels first).

    Args:
        width_mult: scales every internal channel count (1.0 = the published network).
        img_size: face side S; 96 * 2^a * 3^b. Default: 96 (the published network). Each
            extra stage (``face_size_factors``) adds a ``c(16)``-channel encoder block (one
            resampling conv + one residual unit) after the stem and a ``c(32)``-channel decoder
            block after the published decoder; block indices after the stem shift by the
            number of stages, names and shapes of the published blocks stay otherwise the same.
    """

    def __init__(self, width_mult: float = 1.0, img_size: int = FACE_SIZE) -> None:
        super().__init__()
        factors = face_size_factors(img_size, "Wav2Lip img_size")
        self.img_size = int(img_size)
        c = channel_scaler(width_mult)
        enc = [c(n) for n in (16, 32, 64, 128, 256, 512, 512)]   # skip channels, shallow first
        self.face_encoder_blocks = nn.LayerList([
            nn.Sequential(ConvBNRelu(6, enc[0], 7, 1, 3)),                                   # S
            # S -> 96, one stage per factor; their outputs are the skips of the extra decoder
            # stages, in the same order, so the stem's skip stays the last one popped.
            *[_down(enc[0], enc[0], 1, factor) for factor in factors],
            nn.Sequential(ConvBNRelu(enc[0], enc[1], 3, 2, 1), *residual_units(enc[1], 2)),  # 48
            nn.Sequential(ConvBNRelu(enc[1], enc[2], 3, 2, 1), *residual_units(enc[2], 3)),  # 24
            nn.Sequential(ConvBNRelu(enc[2], enc[3], 3, 2, 1), *residual_units(enc[3], 2)),  # 12
            nn.Sequential(ConvBNRelu(enc[3], enc[4], 3, 2, 1), *residual_units(enc[4], 2)),  # 6
            nn.Sequential(ConvBNRelu(enc[4], enc[5], 3, 2, 1), *residual_units(enc[5], 1)),  # 3
            nn.Sequential(ConvBNRelu(enc[5], enc[6], 3, 1, 0), ConvBNRelu(enc[6], enc[6], 1, 1, 0)),
        ])
        self.audio_encoder = audio_encoder(c, residuals_at_256=1)
        dec = [c(n) for n in (512, 512, 512, 384, 256, 128, 64)]  # decoder block outputs
        self.face_decoder_blocks = nn.LayerList([
            nn.Sequential(ConvBNRelu(c(512), dec[0], 1, 1, 0)),                              # 1
            nn.Sequential(ConvTransposeBNRelu(dec[0] + enc[6], dec[1], 3, 1, 0),
                          *residual_units(dec[1], 1)),                                       # 3
            _up(dec[1] + enc[5], dec[2], 2),                                                 # 6
            _up(dec[2] + enc[4], dec[3], 2),                                                 # 12
            _up(dec[3] + enc[3], dec[4], 2),                                                 # 24
            _up(dec[4] + enc[2], dec[5], 2),                                                 # 48
            _up(dec[5] + enc[1], dec[6], 2),                                                 # 96
        ])
        # 96 -> S: the encoder's extra stages mirrored (last factor first), c(32) channels each.
        last = dec[6]
        for factor in reversed(factors):
            self.face_decoder_blocks.append(_up(last + enc[0], c(32), 1, factor))
            last = c(32)
        self.output_block = nn.Sequential(
            ConvBNRelu(last + enc[0], c(32), 3, 1, 1),
            nn.Conv2D(c(32), 3, 1, 1, 0),
            nn.Sigmoid())

    def forward(self, audio_sequences: paddle.Tensor, face_sequences: paddle.Tensor) -> paddle.Tensor:
        """Generate faces.

        Args:
            audio_sequences: (B, T, 1, 80, 16) mel windows, or (N, 1, 80, 16).
            face_sequences: (B, 6, T, H, W) masked target + reference, or (N, 6, H, W);
                H = W = ``img_size``.
        Returns:
            (B, 3, T, H, W), or (N, 3, H, W): BGR faces in [0, 1].
        """
        check_input_size(face_sequences, self.img_size, self.img_size, "Wav2Lip")
        if len(face_sequences.shape) == 5:
            batch, _, steps, height, width = face_sequences.shape
            # Time-major unroll (frame t of every clip, then t+1, ...), as in the reference.
            audio = paddle.flatten(audio_sequences.transpose([1, 0, 2, 3, 4]), 0, 1)
            faces = paddle.flatten(face_sequences.transpose([2, 0, 1, 3, 4]), 0, 1)
            out = self._forward_frames(audio, faces)
            return out.reshape([steps, batch, 3, height, width]).transpose([1, 2, 0, 3, 4])
        return self._forward_frames(audio_sequences, face_sequences)

    def _forward_frames(self, audio: paddle.Tensor, faces: paddle.Tensor) -> paddle.Tensor:
        """(N, 1, 80, 16) + (N, 6, H, W) -> (N, 3, H, W)."""
        skips: List[paddle.Tensor] = []
        x = faces
        for block in self.face_encoder_blocks:
            x = block(x)
            skips.append(x)
        x = self.audio_encoder(audio)
        for block in self.face_decoder_blocks:
            x = paddle.concat([block(x), skips.pop()], axis=1)
        return self.output_block(x)


# The original PyTorch checkpoint of the generator (``--arch wav2lip``): this network keeps the original
# module names, so the generic conversion steps suffice.
register_converter("wav2lip", network_factory=Wav2Lip)(keep_names)
