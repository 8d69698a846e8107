"""The test suite; its folders mirror ppgan/ (tests/<package>/test_<module>.py), with cross-cutting
tests (README commands, the demo, the CLIs, the import layers) in tests/integration/."""

from pathlib import Path

# The checkout's root, for tests that run tools/ or read configs/ and README.md.
REPO_ROOT = Path(__file__).resolve().parents[1]
