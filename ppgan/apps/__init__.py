"""Inference applications."""
