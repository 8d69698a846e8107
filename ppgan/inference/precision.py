"""Reduced-precision support of the CPU inference engine: what the CPU offers, and the quality
guard that decides whether a precision may be used.

bf16 runs through oneDNN (``Config.enable_onednn_bfloat16``). It is only worth it where the CPU
computes bf16 natively (AVX-512 BF16 or AMX); elsewhere oneDNN emulates it and is slower than
fp32, so the engine then falls back to fp32 with one log line, as it does when oneDNN is capped
below bf16 (``ONEDNN_MAX_CPU_ISA=AVX2``) or Paddle's bf16 path fails on the program (exports
avoid the one layer type it fails on: ``ppgan.inference.rewrite``).
"""

from __future__ import annotations

import functools
import os
from typing import Set, Tuple

import numpy as np

from ..utils.logger import get_logger

# The ISA extensions that matter for the engine's choices, as /proc/cpuinfo names them.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_bf16", "amx_int8")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA values) that still include native bf16 kernels.
BF16_ISA_CAPS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16", "ALL")
MIN_BF16_PSNR = 35.0  # dB against fp32 on the same frames (issue 16's guard)

_logged: Set[Tuple[str, str]] = set()  # (component, precision) pairs already warned about


@functools.lru_cache(maxsize=1)
def cpu_isa() -> Tuple[str, ...]:
    """The ``ISA_FLAGS`` this CPU reports (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return tuple(flag for flag in ISA_FLAGS if flag in flags)
    except OSError:
        pass
    return ()


def precision_support(precision: str) -> Tuple[bool, str]:
    """(True, "") when ``precision`` can run natively here, else (False, reason)."""
    if precision == "fp32":
        return True, ""
    if precision == "bf16":
        import paddle

        if not any(flag in cpu_isa() for flag in BF16_FLAGS):
            return False, f"the CPU has no native bf16 (ISA: {' '.join(cpu_isa()) or 'unknown'})"
        cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
        if cap and cap not in BF16_ISA_CAPS:
            return False, f"ONEDNN_MAX_CPU_ISA={cap} keeps oneDNN below its bf16 kernels"
        if not paddle.base.core.supports_bfloat16():
            return False, "this Paddle build's oneDNN reports no bf16 support"
        return True, ""
    return False, f"unknown precision {precision!r}"


def log_precision_fallback(what: str, precision: str, reason: str) -> None:
    """One warning per component and precision: ``what`` computes in fp32 instead."""
    if (what, precision) in _logged:
        return
    _logged.add((what, precision))
    get_logger().warning("%s: %s unavailable (%s); using fp32", what, precision, reason)


def psnr(reference: np.ndarray, other: np.ndarray, peak: float = 1.0) -> float:
    """PSNR in dB of ``other`` against ``reference`` (same shape; values in [0, peak])."""
    mse = float(np.mean((np.asarray(reference, np.float64) - np.asarray(other, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)
