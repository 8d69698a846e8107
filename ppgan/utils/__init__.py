"""Shared utilities: configs, registries, logging, ranks, audio and video I/O."""
