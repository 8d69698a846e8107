"""ppgan-wav2lip: a PaddlePaddle framework to train and run Wav2Lip lip-sync."""

from .utils.quiet import silence_known_harmless_warnings

__version__ = "0.1.0"

# Before anything imports Paddle: its import-time and per-program warnings would otherwise bury
# the tools' own lines (see ppgan.utils.quiet for each one).
silence_known_harmless_warnings()
