"""Choose the generator batch size by measuring throughput on the inputs at hand.

Frames per second grow with the batch until the engine's kernels are saturated, and the
best size depends on the machine, the threads, the engine and the precision; a bigger batch
than needed only adds latency (a stream waits for its frames) and memory. So sizes are tried in
doubling order, each timed after one warm-up call (oneDNN builds its kernels per input shape),
until one is no more than ``gain`` faster than the one before; the smallest size within
``tolerance`` of the best rate measured is chosen.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Tuple



def measure_batch_size(run: Callable[[Any], Any], sample: Callable[[int], Any], largest: int = 32,
                       gain: float = 0.05, tolerance: float = 0.05,
                       clock: Callable[[], float] = time.perf_counter) -> Tuple[int, Dict[int, float]]:
    """Pick a batch size for ``run``.

    Args:
        run: callable taking a batch made by ``sample(n)`` (anything; it is only timed).
        sample: ``n -> batch`` of n frames' inputs.
        largest: the biggest size tried (a power of two is tried up to it).
        gain: stop doubling when the rate improves by less than this fraction.
        tolerance: take the smallest size whose rate is within this fraction of the best.
    Returns:
        (chosen size, {size: frames per second}).
    """
    rates: Dict[int, float] = {}
    size, previous = 1, None
    while size <= largest:
        batch = sample(size)
        run(batch)  # warm-up: kernels for this shape
        started = clock()
        run(batch)
        rates[size] = size / max(clock() - started, 1e-9)
        if previous is not None and rates[size] < rates[previous] * (1.0 + gain):
            break
        previous, size = size, size * 2
    best = max(rates.values())
    chosen = min(s for s, rate in rates.items() if rate >= best * (1.0 - tolerance))
    return chosen, rates


__all__ = ["measure_batch_size"]
