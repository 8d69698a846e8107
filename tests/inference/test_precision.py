"""Reduced precision in the inference engine: bf16 runs where the CPU and Paddle can, and within
the quality guard; anywhere else the runner computes in fp32 after one log line."""

import numpy as np
import pytest

from ppgan.inference import engine as engine_module
from ppgan.inference import precision as precision_module
from ppgan.inference.engine import StaticRunner, export_program
from ppgan.inference.precision import MIN_BF16_PSNR, cpu_isa, precision_support, psnr
from ppgan.utils.errors import ConfigError


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    import paddle
    from ppgan.models.generators.wav2lip import Wav2Lip

    paddle.seed(0)
    prefix = str(tmp_path_factory.mktemp("precision") / "gen")
    export_program(Wav2Lip(width_mult=0.125), prefix, {"mel": (1, 80, 16), "faces": (6, 96, 96)})
    rng = np.random.default_rng(0)
    inputs = (rng.uniform(-4, 4, (2, 1, 80, 16)).astype(np.float32),
              rng.uniform(0, 1, (2, 6, 96, 96)).astype(np.float32))
    return prefix, inputs


@pytest.fixture
def warnings_seen(monkeypatch):
    """The precision module's warnings, as formatted strings (the log is reset per test)."""
    seen = []

    class Recorder:
        def warning(self, message, *args):
            seen.append(message % args)

    monkeypatch.setattr(precision_module, "_logged", set())
    monkeypatch.setattr(precision_module, "get_logger", lambda: Recorder())
    return seen


def test_bf16_runs_within_the_guard_or_falls_back_with_one_line(program, warnings_seen):
    prefix, inputs = program
    reference = StaticRunner(prefix, threads=1)(*inputs)
    runner = StaticRunner(prefix, threads=1, precision="bf16", what="generator")
    first, second = runner(*inputs), runner(*inputs)
    np.testing.assert_array_equal(first, second)
    fallbacks = [m for m in warnings_seen if "bf16 unavailable" in m]
    if runner.precision == "bf16":
        assert psnr(reference, first) >= MIN_BF16_PSNR and not fallbacks
    else:  # this CPU or Paddle build cannot: fp32 results, said once
        assert len(fallbacks) == 1 and "using fp32" in fallbacks[0]
        np.testing.assert_allclose(first, reference, atol=1e-5)


def test_unsupported_precision_is_fp32_after_one_log_line(program, warnings_seen, monkeypatch):
    prefix, inputs = program
    monkeypatch.setattr(engine_module, "precision_support", lambda p: (False, "no native bf16 (test)"))
    runners = [StaticRunner(prefix, threads=1, precision="bf16", what="generator") for _ in range(2)]
    assert [r.precision for r in runners] == ["fp32", "fp32"]
    assert warnings_seen == ["generator: bf16 unavailable (no native bf16 (test)); using fp32"]
    with pytest.raises(ConfigError, match="precision"):
        StaticRunner(prefix, precision="fp8")


def test_isa_report_and_support_check():
    assert set(cpu_isa()) <= set(precision_module.ISA_FLAGS)
    assert precision_support("fp32") == (True, "")
    supported, reason = precision_support("bf16")
    assert supported == (not reason)
    assert psnr(np.zeros(4), np.zeros(4)) == float("inf")
    assert psnr(np.zeros(4), np.full(4, 0.1)) == pytest.approx(20.0)


def test_bf16_capable_cpu_runs_the_exported_generator_in_bf16(program):
    # Exports swap the decoder's stride-1 transposed conv (which Paddle 3.3.1's oneDNN bf16 path
    # cannot run) for its exact conv equivalent, so bf16 works wherever the CPU offers it.
    prefix, inputs = program
    if not precision_support("bf16")[0]:
        pytest.skip("no native bf16 here (or oneDNN capped below it)")
    runner = StaticRunner(prefix, threads=1, precision="bf16")
    output = runner(*inputs)
    assert runner.precision == "bf16"
    assert psnr(StaticRunner(prefix, threads=1)(*inputs), output) >= MIN_BF16_PSNR


def test_an_isa_cap_below_bf16_is_reported_before_any_run(monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_isa", lambda: ("avx2", "avx512f", "avx512_bf16"))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert precision_support("bf16") == (False, "ONEDNN_MAX_CPU_ISA=AVX2 keeps oneDNN below its bf16 kernels")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx512_core_bf16")
    supported, reason = precision_support("bf16")
    assert "ONEDNN_MAX_CPU_ISA" not in reason
