"""``precision="auto"``: measure which precision runs fastest here, within the quality guard.

Which precision pays depends on the CPU (native bf16 or not), the network's width and the batch
(oneDNN's bf16 kernels lose to fp32 on small convolutions), so "auto" does not guess: at the
first call it runs every precision this machine supports on the same probe batch - the first
call's inputs, tiled to ``PROBE_FRAMES`` frames so the timing does not depend on how small that
first batch is - once to build the kernels and once timed. A reduced precision is eligible only
when its output's PSNR against fp32 on the probe is at least ``MIN_BF16_PSNR`` (the same guard
``benchmarks/precision_guard.py`` reports); the fastest eligible one is kept, the others are
dropped, and one log line says what was chosen and why.

The probe costs four runs of ``PROBE_FRAMES`` frames once per runner; give ``--precision``
explicitly where that matters (a short clip on a machine whose best precision is known).
Networks run this way must output images in [0, 1] (the generator), since the guard is a PSNR.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..utils.logger import get_logger
from .precision import MIN_BF16_PSNR, precision_support, psnr

PROBE_FRAMES = 16
REDUCED_PRECISIONS = ("bf16",)  # tried by "auto" where ``precision_support`` allows

# A runner of one precision: ``run(*float32 arrays) -> first output array``, with ``precision``.
Runner = Callable[..., np.ndarray]


def probe_batch(arrays: Sequence[np.ndarray], frames: int = PROBE_FRAMES) -> List[np.ndarray]:
    """``arrays`` (each (N, ...)) tiled or cut along the batch axis to ``frames`` rows each."""
    rows = np.arange(frames) % len(arrays[0])
    return [np.ascontiguousarray(np.asarray(array)[rows]) for array in arrays]


def choose_precision(runners: Dict[str, Runner], probe: Sequence[np.ndarray],
                     min_psnr: float = MIN_BF16_PSNR,
                     clock: Callable[[], float] = time.perf_counter) -> Tuple[str, Dict[str, Dict[str, float]]]:
    """The fastest precision whose output on ``probe`` stays within the guard.

    Args:
        runners: ``{precision: runner}``; must hold "fp32", the reference.
        probe: the inputs every runner is timed on (``probe_batch``).
        min_psnr: a reduced precision's least PSNR in dB against fp32 (outputs in [0, 1]).
    Returns:
        (chosen precision, ``{precision: {"frames_per_second", "psnr_db"}}``); fp32's PSNR is inf.
    """
    frames = len(probe[0])
    outputs: Dict[str, np.ndarray] = {}
    report: Dict[str, Dict[str, float]] = {}
    for name, run in runners.items():
        run(*probe)  # oneDNN builds its kernels for this shape at the first run
        started = clock()
        outputs[name] = run(*probe)
        report[name] = {"frames_per_second": frames / max(clock() - started, 1e-9)}
    for name, output in outputs.items():
        report[name]["psnr_db"] = psnr(outputs["fp32"], np.clip(output, 0.0, 1.0))
    eligible = [name for name in runners if name == "fp32" or report[name]["psnr_db"] >= min_psnr]
    return max(eligible, key=lambda name: report[name]["frames_per_second"]), report


def describe_choice(what: str, chosen: str, report: Dict[str, Dict[str, float]],
                    min_psnr: float = MIN_BF16_PSNR) -> str:
    """One line: which precision ``what`` runs in and the measurements that decided it."""
    parts = []
    for name, row in report.items():
        guard = "" if name == "fp32" else (f", {row['psnr_db']:.1f} dB against fp32" +
                                           ("" if row["psnr_db"] >= min_psnr else f" < {min_psnr:g}, refused"))
        parts.append(f"{name} {row['frames_per_second']:.1f} frames/s{guard}")
    return f"{what}: precision auto chose {chosen} ({'; '.join(parts)}; probe of {PROBE_FRAMES} frames)"


class AutoPrecisionRunner:
    """A runner that picks its precision by measurement at the first call (module doc).

    Args:
        build: ``precision -> runner`` of that precision (called at once for every candidate, as
            the program files may be temporary).
        what: the component's name, for the log line.
    Attributes:
        precision: "auto" until the first call, then the precision chosen.
        report: the probe's measurements (``choose_precision``), after the first call.
    """

    def __init__(self, build: Callable[[str], Runner], what: str = "program") -> None:
        self.what = what
        self._runners: Dict[str, Runner] = {"fp32": build("fp32")}
        for name in REDUCED_PRECISIONS:
            supported, reason = precision_support(name)
            if supported:
                candidate = build(name)
                # A precision Paddle could not build has already fallen back to fp32 (logged).
                if getattr(candidate, "precision", name) == name:
                    self._runners[name] = candidate
            else:
                get_logger().info("%s: precision auto skips %s (%s)", what, name, reason)
        self.precision = "auto" if len(self._runners) > 1 else "fp32"
        self.report: Optional[Dict[str, Dict[str, float]]] = None
        first = self._runners["fp32"]
        # What a StaticRunner tells about its program, for wrappers that read it.
        self.input_names = getattr(first, "input_names", [])
        self.input_shapes = getattr(first, "input_shapes", {})
        self.info = getattr(first, "info", {})

    def __call__(self, *arrays: np.ndarray) -> np.ndarray:
        if self.precision == "auto":
            chosen, self.report = choose_precision(self._runners, probe_batch(arrays))
            get_logger().info("%s", describe_choice(self.what, chosen, self.report))
            self._runners = {chosen: self._runners[chosen]}  # frees the other programs
            self.precision = chosen
        return self._runners[self.precision](*arrays)


__all__ = ["PROBE_FRAMES", "AutoPrecisionRunner", "choose_precision", "describe_choice", "probe_batch"]
