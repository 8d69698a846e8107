"""``precision="auto"``: the fastest supported precision within the quality guard, chosen by
measurement at the first call."""

import numpy as np
import pytest

from ppgan.inference import auto_precision
from ppgan.inference.auto_precision import (PROBE_FRAMES, AutoPrecisionRunner, choose_precision,
                                            describe_choice, probe_batch)
from ppgan.inference.engine import StaticRunner, export_program
from ppgan.inference.precision import MIN_BF16_PSNR, precision_support, psnr


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def fake_runner(clock, seconds, offset, name):
    """A runner taking ``seconds`` per call on ``clock`` whose output is the input + ``offset``."""
    def run(x):
        clock.now += seconds
        return np.clip(x + offset, 0, 1)
    run.precision = name
    return run


def test_probe_batch_tiles_or_cuts_to_the_probe_size():
    mels, faces = np.arange(3)[:, None], np.arange(3)[:, None] * 10
    tiled = probe_batch([mels, faces], frames=7)
    assert [len(a) for a in tiled] == [7, 7]
    assert tiled[0][:, 0].tolist() == [0, 1, 2, 0, 1, 2, 0] and tiled[1][3, 0] == 0
    assert len(probe_batch([np.zeros((40, 2))])[0]) == PROBE_FRAMES


@pytest.mark.parametrize("bf16_offset, expected", [(0.001, "bf16"), (0.05, "fp32")])
def test_the_fastest_precision_within_the_guard_is_chosen(bf16_offset, expected):
    clock = FakeClock()
    runners = {"fp32": fake_runner(clock, 2.0, 0.0, "fp32"),
               "bf16": fake_runner(clock, 1.0, bf16_offset, "bf16")}
    probe = [np.full((8, 3), 0.5)]
    chosen, report = choose_precision(runners, probe, clock=clock)
    assert chosen == expected  # 0.001 off is 60 dB, 0.05 off is 26 dB: refused though faster
    assert report["fp32"]["frames_per_second"] == pytest.approx(4.0)
    assert report["bf16"]["frames_per_second"] == pytest.approx(8.0)
    assert report["bf16"]["psnr_db"] == pytest.approx(psnr(np.full(3, 0.5), np.full(3, 0.5 + bf16_offset)))
    line = describe_choice("generator", chosen, report)
    assert line.startswith(f"generator: precision auto chose {expected} (fp32 4.0 frames/s; bf16 8.0")
    assert ("refused" in line) == (expected == "fp32")


def test_a_slower_reduced_precision_is_not_chosen():
    clock = FakeClock()
    runners = {"fp32": fake_runner(clock, 1.0, 0.0, "fp32"), "bf16": fake_runner(clock, 1.5, 0.0, "bf16")}
    assert choose_precision(runners, [np.zeros((4, 2))], clock=clock)[0] == "fp32"


def test_without_a_supported_reduced_precision_auto_is_fp32_at_once(monkeypatch):
    built = []
    monkeypatch.setattr(auto_precision, "precision_support", lambda name: (False, "no native bf16 (test)"))

    def build(name):
        built.append(name)
        return lambda x: x * 2

    runner = AutoPrecisionRunner(build, "generator")
    assert runner.precision == "fp32" and built == ["fp32"]
    np.testing.assert_array_equal(runner(np.ones(3)), np.full(3, 2.0))
    assert runner.report is None  # nothing to measure


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    import paddle
    from ppgan.models.generators.wav2lip import Wav2Lip

    paddle.seed(0)
    prefix = str(tmp_path_factory.mktemp("auto") / "gen")
    export_program(Wav2Lip(width_mult=0.125), prefix, {"mel": (1, 80, 16), "faces": (6, 96, 96)})
    rng = np.random.default_rng(1)
    return prefix, (rng.uniform(-4, 4, (3, 1, 80, 16)).astype(np.float32),
                    rng.uniform(0, 1, (3, 6, 96, 96)).astype(np.float32))


def test_auto_generator_runs_what_it_chose(program):
    from ppgan.inference.generator import StaticGenerator

    prefix, inputs = program
    generator = StaticGenerator(prefix, threads=1, precision="auto")
    expected_candidates = "auto" if precision_support("bf16")[0] else "fp32"
    assert generator.runner.precision == expected_candidates and generator.img_size == 96
    output = generator(*inputs)
    chosen = generator.runner.precision
    assert output.shape == (3, 3, 96, 96) and chosen in ("fp32", "bf16")
    same = StaticRunner(prefix, threads=1, precision=chosen)(*inputs)
    assert psnr(same, output) > 80  # the chosen program's own numbers
    if generator.runner.report is not None:
        assert set(generator.runner.report) == {"fp32", "bf16"}
        if chosen == "bf16":
            assert generator.runner.report["bf16"]["psnr_db"] >= MIN_BF16_PSNR
    np.testing.assert_array_equal(generator(*inputs), output)  # later calls: the same program
