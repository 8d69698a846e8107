"""Ctrl-C and SIGTERM during training: finish the iteration, checkpoint it, then stop.

The handler only records the request; the trainer looks at it between iterations, where the
model, optimizers and data position are consistent. With several processes every rank must stop
at the same iteration (checkpointing averages batch-norm statistics, a collective), so the ranks
agree on it with one all-reduce per iteration. A second signal stops at once.
"""

import signal
from typing import Any, Dict, Optional

import numpy as np

from ..utils import comm
from ..utils.errors import PPGanError

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(PPGanError):
    """Training stopped on a signal after writing a checkpoint (the message says which)."""

    exit_code = 130


class StopRequest:
    """Records SIGINT / SIGTERM while installed (main thread only)."""

    def __init__(self) -> None:
        self.signal_name: Optional[str] = None
        self._previous: Dict[int, Any] = {}

    def install(self) -> None:
        """Take over SIGINT / SIGTERM (no-op outside the main thread, where Python cannot)."""
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        for number in SIGNALS:
            self._previous[number] = signal.signal(number, self._handle)

    def uninstall(self) -> None:
        """Give the signals back to their previous handlers."""
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def _handle(self, number: int, frame: Any) -> None:
        if self.signal_name is not None:
            # A second request: the user does not want to wait for the checkpoint.
            self.uninstall()
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(number).name
        from ..utils.logger import get_logger
        get_logger().warning(f"{self.signal_name} received: saving a checkpoint after this "
                             f"iteration (send it again to stop at once)")

    def agreed(self) -> bool:
        """True when any rank has a stop request (the same answer on every rank)."""
        local = float(self.signal_name is not None)
        if comm.get_world_size() > 1:
            total = comm.all_reduce_sum(np.array([local]))[0]
            if total > 0 and self.signal_name is None:
                self.signal_name = "stop on another rank"
            return total > 0
        return bool(local)
