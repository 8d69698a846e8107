"""Networks that produce images."""

from . import wav2lip  # noqa: F401  (registers Wav2Lip)
