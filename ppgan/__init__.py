"""ppgan-wav2lip: a PaddlePaddle framework to train and run Wav2Lip lip-sync."""

__version__ = "0.1.0"
