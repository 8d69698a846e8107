"""Discriminators: the SyncNet lip-sync expert and the visual-quality discriminator."""

from . import syncnet, wav2lip_disc_qual  # noqa: F401  (registers SyncNetColor, Wav2LipDiscQual)
