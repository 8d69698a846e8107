"""Forking worker processes (DataLoader workers, preprocessing pools) with OpenCV loaded.

Each worker should run OpenCV single-threaded: the workers already occupy the cores. Setting that
inside a forked child is not safe: once the parent has run OpenCV's thread pool, the child inherits
the pool's locks but not its threads, and ``cv2.setNumThreads`` there waits forever (seen with
opencv-python 4.14). So the parent shrinks the pool to one thread just while it forks, and the
children inherit the setting without touching the pool.
"""

from __future__ import annotations

import contextlib
import signal
from typing import Iterator


@contextlib.contextmanager
def single_threaded_opencv_while_forking(enabled: bool = True) -> Iterator[None]:
    """Run the block (the fork) with OpenCV at one thread; restore the parent's count afterwards."""
    if not enabled:
        yield
        return
    import cv2

    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def default_termination() -> None:
    """In a forked worker: let SIGTERM just end the process.

    The worker inherits Paddle's handler from the parent, which prints a C++ "FatalError" report
    for a termination signal; stopping a worker on purpose is not an error worth that report.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
