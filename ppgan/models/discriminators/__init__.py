"""Discriminators: the SyncNet lip-sync expert and the visual-quality discriminator."""
