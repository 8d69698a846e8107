"""Same-topology PyTorch versions of the three Wav2Lip networks: the yardstick for weight
conversion parity tests and for speed comparisons. Written independently from the layer tables
(reference-wav2lip.md section 1.6), so a parity test compares two implementations.

torch is imported lazily: ``build_torch_network(name, width_mult)`` imports it on first use, and
nothing in ``ppgan`` ever imports this file.

    from benchmarks.torch_reference import build_torch_network
    net = build_torch_network("wav2lip", width_mult=0.25).eval()
    big = build_torch_network("wav2lip", img_size=192)   # one extra stage on each side of the U-Net

Faces larger than 96 (96 * 2^a * 3^b) get the stages described in the docstrings of ppgan's
networks: after the stem, one resampling block per factor down to 96 (factor 2: 3x3 stride-2
conv; factor 3: 5x5 stride-3 conv), and for the generator the mirrored transposed convs after
the published decoder.
"""

import functools


# factor -> (kernel, padding, output padding) of the stride-``factor`` (transposed) conv
RESAMPLE = {2: (3, 1, 1), 3: (5, 1, 0)}


def stage_factors(img_size):
    """Factors that bring an ``img_size`` face down to 96, twos first: 192 -> [2], 288 -> [3]."""
    ratio, factors = img_size // 96, []
    if img_size % 96:
        raise ValueError(f"img_size must be 96 * 2^a * 3^b, got {img_size}")
    for factor in (2, 3):
        while ratio % factor == 0:
            factors.append(factor)
            ratio //= factor
    if ratio != 1:
        raise ValueError(f"img_size must be 96 * 2^a * 3^b, got {img_size}")
    return factors


def scale_channels(width_mult):
    """Same rule as ppgan.modules.conv.channel_scaler (kept separate so this file needs no paddle)."""
    if width_mult == 1.0:
        return lambda channels: channels
    return lambda channels: max(4, int(round(channels * width_mult)))


@functools.lru_cache(maxsize=None)
def _classes():
    """Define the torch modules on first use (torch imported here only)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Conv(nn.Module):
        def __init__(self, cin, cout, k, s, p, residual=False, transpose=False, output_padding=0,
                     norm=True):
            super().__init__()
            if transpose:
                conv = nn.ConvTranspose2d(cin, cout, k, s, p, output_padding)
            else:
                conv = nn.Conv2d(cin, cout, k, s, p)
            layers = [conv, nn.BatchNorm2d(cout)] if norm else [conv]
            self.conv_block = nn.Sequential(*layers)
            self.residual, self.norm = residual, norm

        def forward(self, x):
            out = self.conv_block(x)
            if self.residual:
                out = out + x
            return F.relu(out) if self.norm else F.leaky_relu(out, 0.01)

    def res(c):
        return Conv(c, c, 3, 1, 1, residual=True)

    def audio_encoder(c, residuals_256):
        return nn.Sequential(
            Conv(1, c(32), 3, 1, 1), res(c(32)), res(c(32)),
            Conv(c(32), c(64), 3, (3, 1), 1), res(c(64)), res(c(64)),
            Conv(c(64), c(128), 3, 3, 1), res(c(128)), res(c(128)),
            Conv(c(128), c(256), 3, (3, 2), 1), *[res(c(256)) for _ in range(residuals_256)],
            Conv(c(256), c(512), 3, 1, 0), Conv(c(512), c(512), 1, 1, 0))

    def down(c16, factor):
        kernel, padding, _ = RESAMPLE[factor]
        return nn.Sequential(Conv(c16, c16, kernel, factor, padding), res(c16))

    class Wav2Lip(nn.Module):
        def __init__(self, width_mult=1.0, img_size=96):
            super().__init__()
            c = scale_channels(width_mult)
            factors = stage_factors(img_size)
            self.face_encoder_blocks = nn.ModuleList([
                nn.Sequential(Conv(6, c(16), 7, 1, 3)),
                *[down(c(16), factor) for factor in factors],
                nn.Sequential(Conv(c(16), c(32), 3, 2, 1), res(c(32)), res(c(32))),
                nn.Sequential(Conv(c(32), c(64), 3, 2, 1), res(c(64)), res(c(64)), res(c(64))),
                nn.Sequential(Conv(c(64), c(128), 3, 2, 1), res(c(128)), res(c(128))),
                nn.Sequential(Conv(c(128), c(256), 3, 2, 1), res(c(256)), res(c(256))),
                nn.Sequential(Conv(c(256), c(512), 3, 2, 1), res(c(512))),
                nn.Sequential(Conv(c(512), c(512), 3, 1, 0), Conv(c(512), c(512), 1, 1, 0))])
            self.audio_encoder = audio_encoder(c, 1)

            def up(cin, cout):
                return nn.Sequential(Conv(cin, cout, 3, 2, 1, transpose=True, output_padding=1),
                                     res(cout), res(cout))
            self.face_decoder_blocks = nn.ModuleList([
                nn.Sequential(Conv(c(512), c(512), 1, 1, 0)),
                nn.Sequential(Conv(c(512) * 2, c(512), 3, 1, 0, transpose=True), res(c(512))),
                up(c(512) * 2, c(512)),
                up(c(512) + c(256), c(384)),
                up(c(384) + c(128), c(256)),
                up(c(256) + c(64), c(128)),
                up(c(128) + c(32), c(64))])
            last = c(64)
            for factor in reversed(factors):
                kernel, padding, output_padding = RESAMPLE[factor]
                self.face_decoder_blocks.append(nn.Sequential(
                    Conv(last + c(16), c(32), kernel, factor, padding, transpose=True,
                         output_padding=output_padding), res(c(32))))
                last = c(32)
            self.output_block = nn.Sequential(Conv(last + c(16), c(32), 3, 1, 1),
                                              nn.Conv2d(c(32), 3, 1, 1, 0), nn.Sigmoid())

        def forward(self, audio_sequences, face_sequences):
            clip = face_sequences.dim() == 5
            if clip:
                batch = face_sequences.size(0)
                steps = range(face_sequences.size(2))
                audio_sequences = torch.cat([audio_sequences[:, t] for t in steps], 0)
                face_sequences = torch.cat([face_sequences[:, :, t] for t in steps], 0)
            skips, x = [], face_sequences
            for block in self.face_encoder_blocks:
                x = block(x)
                skips.append(x)
            x = self.audio_encoder(audio_sequences)
            for block in self.face_decoder_blocks:
                x = torch.cat((block(x), skips.pop()), dim=1)
            out = self.output_block(x)
            if clip:
                out = torch.stack(torch.split(out, batch, dim=0), dim=2)
            return out

    class SyncNetColor(nn.Module):
        def __init__(self, width_mult=1.0, img_size=96):
            super().__init__()
            c = scale_channels(width_mult)
            extra = []
            for factor in stage_factors(img_size):
                kernel, padding, _ = RESAMPLE[factor]
                extra += [Conv(c(32), c(32), kernel, factor, padding), res(c(32))]
            self.face_encoder = nn.Sequential(
                Conv(15, c(32), 7, 1, 3),
                *extra,
                Conv(c(32), c(64), 5, (1, 2), 1), res(c(64)), res(c(64)),
                Conv(c(64), c(128), 3, 2, 1), res(c(128)), res(c(128)), res(c(128)),
                Conv(c(128), c(256), 3, 2, 1), res(c(256)), res(c(256)),
                Conv(c(256), c(512), 3, 2, 1), res(c(512)), res(c(512)),
                Conv(c(512), c(512), 3, 2, 1), Conv(c(512), c(512), 3, 1, 0),
                Conv(c(512), c(512), 1, 1, 0))
            self.audio_encoder = audio_encoder(c, 2)

        def forward(self, audio_sequences, face_sequences):
            audio = self.audio_encoder(audio_sequences).flatten(1)
            face = self.face_encoder(face_sequences).flatten(1)
            return F.normalize(audio, p=2, dim=1), F.normalize(face, p=2, dim=1)

    class Wav2LipDiscQual(nn.Module):
        def __init__(self, width_mult=1.0, img_size=96):
            super().__init__()
            c = scale_channels(width_mult)

            def n(cin, cout, k, s, p):
                return Conv(cin, cout, k, s, p, norm=False)

            def down_disc(factor):
                kernel, padding, _ = RESAMPLE[factor]
                return nn.Sequential(n(c(32), c(32), kernel, factor, padding),
                                     n(c(32), c(32), 3, 1, 1))
            self.face_encoder_blocks = nn.ModuleList([
                nn.Sequential(n(3, c(32), 7, 1, 3)),
                *[down_disc(factor) for factor in stage_factors(img_size)],
                nn.Sequential(n(c(32), c(64), 5, (1, 2), 2), n(c(64), c(64), 5, 1, 2)),
                nn.Sequential(n(c(64), c(128), 5, 2, 2), n(c(128), c(128), 5, 1, 2)),
                nn.Sequential(n(c(128), c(256), 5, 2, 2), n(c(256), c(256), 5, 1, 2)),
                nn.Sequential(n(c(256), c(512), 3, 2, 1), n(c(512), c(512), 3, 1, 1)),
                nn.Sequential(n(c(512), c(512), 3, 2, 1), n(c(512), c(512), 3, 1, 1)),
                nn.Sequential(n(c(512), c(512), 3, 1, 0), n(c(512), c(512), 1, 1, 0))])
            self.binary_pred = nn.Sequential(nn.Conv2d(c(512), 1, 1, 1, 0), nn.Sigmoid())

        def forward(self, faces):
            if faces.dim() == 5:
                faces = torch.cat([faces[:, :, t] for t in range(faces.size(2))], 0)
            x = faces[:, :, faces.size(2) // 2:]
            for block in self.face_encoder_blocks:
                x = block(x)
            return self.binary_pred(x).view(len(x), -1)

    return {"wav2lip": Wav2Lip, "syncnet": SyncNetColor, "disc": Wav2LipDiscQual}


def build_torch_network(arch, width_mult=1.0, img_size=96):
    """A PyTorch network: ``arch`` is ``wav2lip``, ``syncnet`` or ``disc``, for ``img_size`` faces."""
    return _classes()[arch](width_mult, img_size)
