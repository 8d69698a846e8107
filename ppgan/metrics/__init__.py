"""Evaluation metrics: lip-sync (LSE-D / LSE-C) and image quality."""
