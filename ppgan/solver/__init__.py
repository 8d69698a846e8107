"""Optimizers and learning-rate schedulers built from config."""
