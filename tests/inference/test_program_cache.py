"""The disk cache of exported programs: one export per weights, reused by later runs; other
weights get their own entry; a damaged entry is exported again; "off" disables it."""

import os

import numpy as np
import paddle
import pytest

from ppgan.inference import engine, program_cache
from ppgan.inference.engine import compile_static
from ppgan.inference.program_cache import cache_folder, cached_export, program_key

INPUTS = {"x": (4,)}


class Affine(paddle.nn.Layer):
    def __init__(self, seed):
        super().__init__()
        paddle.seed(seed)
        self.fc = paddle.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh cache folder; returns the list of prefixes exported (counted through engine)."""
    monkeypatch.setenv("PPGAN_PROGRAM_CACHE", str(tmp_path / "programs"))
    exported = []
    real = engine.export_program

    def counting(layer, prefix, inputs, info=None):
        exported.append(prefix)
        return real(layer, prefix, inputs, info)

    monkeypatch.setattr(engine, "export_program", counting)
    return exported


def run(layer):
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    return compile_static(layer, INPUTS, threads=1, cache=True)(x), layer(paddle.to_tensor(x)).numpy()


def test_the_same_weights_are_exported_once(cache):
    first, expected = run(Affine(0))
    again, _ = run(Affine(0))  # another object, the same weights
    assert len(cache) == 1 and cache[0].startswith(cache_folder())
    np.testing.assert_allclose(first, expected, atol=1e-5)
    np.testing.assert_array_equal(again, first)
    other, other_expected = run(Affine(1))
    assert len(cache) == 2 and program_key(Affine(1), INPUTS) != program_key(Affine(0), INPUTS)
    np.testing.assert_allclose(other, other_expected, atol=1e-5)


def test_least_recently_used_entries_are_evicted(cache, monkeypatch):
    monkeypatch.setattr(program_cache, "MAX_PROGRAMS", 2)
    for seed in (0, 1, 2):
        cached_export(Affine(seed), INPUTS, engine.export_program)
    kept = sorted(os.listdir(cache_folder()))
    assert len(kept) == 2 and program_key(Affine(0), INPUTS) not in kept


def test_a_damaged_entry_is_exported_again(cache):
    prefix = cached_export(Affine(0), INPUTS, engine.export_program)
    with open(prefix + engine.PARAMS_SUFFIX, "wb") as handle:
        handle.write(b"not parameters")
    output, expected = run(Affine(0))
    np.testing.assert_allclose(output, expected, atol=1e-5)
    assert len(cache) == 2  # the first export, then the temporary one after the damaged load
    assert not os.path.exists(os.path.dirname(prefix))  # the damaged entry is gone


def test_off_disables_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PPGAN_PROGRAM_CACHE", "off")
    assert cache_folder() is None and cached_export(Affine(0), INPUTS, engine.export_program) is None
    output, expected = run(Affine(0))
    np.testing.assert_allclose(output, expected, atol=1e-5)
