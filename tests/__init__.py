"""The test suite; its folders mirror ppgan/ (tests/<package>/test_<module>.py), with cross-cutting
tests (README commands, the demo, the CLIs, the import layers) in tests/integration/."""

from pathlib import Path

# The checkout's root, for tests that run tools/ or read configs/ and README.md.
REPO_ROOT = Path(__file__).resolve().parents[1]


def load_tool(name):
    """A ``tools/<name>.py`` script imported as a module (its ``main`` and helpers, no process)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"tool_{name}", REPO_ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
