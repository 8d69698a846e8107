"""Networks that produce images."""

from . import gpen, wav2lip  # noqa: F401  (registers GPEN, Wav2Lip)
