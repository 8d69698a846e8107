"""Layers shared by all networks (they fix the state-dict key layout) and init helpers."""
