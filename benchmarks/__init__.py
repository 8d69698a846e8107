"""Measurement scripts (run as ``python -m benchmarks.<name>``), one per figure; see BENCHMARKS.md."""
