"""The inference engine (ppgan.inference): export, the oneDNN runner, the engine policy."""

import logging
import os

import numpy as np
import paddle
import pytest

from ppgan.inference import engine as inference
from ppgan.inference.engine import (
    CompileOnFirstUse, DynamicRunner, StaticRunner, build_runner, check_engine, export_program)
from ppgan.utils.errors import ConfigError, WeightsError
from ppgan.utils.logger import get_logger


class TwoInputs(paddle.nn.Layer):
    """conv(a) + b: two named inputs of different shapes."""

    def __init__(self):
        super().__init__()
        self.conv = paddle.nn.Conv2D(2, 3, 3, padding=1)

    def forward(self, a, b):
        return self.conv(a) + b


class Untraceable(paddle.nn.Layer):
    """A forward that leaves the graph (``.numpy()`` of a symbolic tensor): export must fail."""

    def __init__(self):
        super().__init__()
        self.scale = self.create_parameter([1], default_initializer=paddle.nn.initializer.Constant(2.0))

    def forward(self, x):
        return paddle.to_tensor(np.asarray(x.numpy())) * self.scale


def inputs(n, seed=0):
    rng = np.random.RandomState(seed)
    return rng.randn(n, 2, 8, 8).astype("float32"), rng.randn(n, 3, 8, 8).astype("float32")


def test_exported_program_runs_like_the_layer(tmp_path):
    paddle.seed(3)
    layer = TwoInputs()
    program, params = export_program(layer, str(tmp_path / "sub" / "two"), {"a": (2, 8, 8), "b": (3, 8, 8)})
    assert os.path.isfile(program) and os.path.isfile(params) and os.path.isfile(str(tmp_path / "sub" / "two.info.json"))
    assert not [f for f in os.listdir(tmp_path / "sub") if f.startswith(".")]  # no staging left
    runner = StaticRunner(str(tmp_path / "sub" / "two"), threads=1)
    assert runner.input_names == ["a", "b"] and runner.input_shapes["a"] == (2, 8, 8)
    for n in (3, 1):  # the batch size is dynamic
        a, b = inputs(n, n)
        want = DynamicRunner(layer)(a, b)
        np.testing.assert_allclose(runner(a, b), want, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="takes 2 inputs"):
        runner(a)


def test_missing_program_is_a_weights_error(tmp_path):
    with pytest.raises(WeightsError, match="not found.*export_model.py"):
        StaticRunner(str(tmp_path / "nothing"))


def test_engine_and_precision_names_are_checked():
    with pytest.raises(ConfigError, match="engine must be one of"):
        check_engine("fastest")
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16"):
        build_runner(TwoInputs(), {"a": (2, 8, 8), "b": (3, 8, 8)}, precision="fp8")


def test_policy_picks_static_on_cpu_and_dynamic_on_request():
    layer = TwoInputs()
    shapes = {"a": (2, 8, 8), "b": (3, 8, 8)}
    assert isinstance(build_runner(layer, shapes, "auto", threads=1), StaticRunner)
    assert isinstance(build_runner(layer, shapes, "dynamic"), DynamicRunner)
    lazy = CompileOnFirstUse(layer, shapes, "auto", threads=1)
    assert lazy.engine is None
    a, b = inputs(2)
    np.testing.assert_allclose(lazy(a, b), DynamicRunner(layer)(a, b), atol=1e-5, rtol=0)
    assert lazy.engine == "static"


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_auto_falls_back_to_dynamic_with_one_warning(monkeypatch):
    monkeypatch.setattr(inference, "_fallbacks_logged", set())
    records = Records()
    get_logger().addHandler(records)
    x = np.ones((2, 4), "float32")
    for _ in range(3):
        runner = build_runner(Untraceable(), {"x": (4,)}, "auto", what="test net")
        assert isinstance(runner, DynamicRunner)
        np.testing.assert_allclose(runner(x), 2 * x)
    get_logger().removeHandler(records)
    warnings = [m for m in records.messages if "test net" in m]
    assert len(warnings) == 1, warnings
    assert "using the dynamic graph" in warnings[0] and "Error" in warnings[0]  # the reason is named
    with pytest.raises(Exception):
        build_runner(Untraceable(), {"x": (4,)}, "static")  # static never falls back


def test_failed_exports_leave_no_stale_trace_records():
    # Paddle keeps a failed trace's tensor -> Value map under reusable ids; a later export that
    # met those ids read a destroyed program's Values and crashed the process.
    from paddle.jit.dy2static.parameter_recorder import _global_parameter_recorder

    before = dict(_global_parameter_recorder.params_dict)
    for engine in ("auto", "static"):
        try:
            build_runner(Untraceable(), {"x": (4,)}, engine, what="test net")
        except Exception:
            pass
    assert _global_parameter_recorder.params_dict == before
    assert _global_parameter_recorder.tensor2value.keys() == before.keys()


def test_dynamic_runner_restores_train_mode():
    layer = TwoInputs()
    layer.train()
    DynamicRunner(layer)(*inputs(1))
    assert layer.training
