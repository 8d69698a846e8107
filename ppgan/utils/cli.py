"""Entry-point wrapper for the command-line tools: user errors become one line and exit code 2.

SIGTERM and SIGHUP (a ``kill``, a closed terminal, a job scheduler stopping the run) are handled
like Ctrl-C: they raise ``Terminated``, a ``KeyboardInterrupt``, so every cleanup that already
runs on Ctrl-C (partial videos, temporary files, loader workers) runs for them too.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Any, Callable, Dict, List, NoReturn, Optional, Sequence

from .errors import PPGanError

# Signals that end a tool the way Ctrl-C does (SIGHUP does not exist on Windows).
_TERMINATING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM or SIGHUP."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, frame: Optional[FrameType]) -> NoReturn:
    raise Terminated(signum)


def install_termination_handlers() -> Dict[int, Any]:
    """Make SIGTERM / SIGHUP raise ``Terminated`` in the main thread; returns the old handlers."""
    # Importing Paddle installs its own C-level SIGTERM handler (a FatalError report, then an
    # abort that skips every cleanup), replacing a Python handler set before: import it first.
    import paddle  # noqa: F401

    return {signum: signal.signal(signum, _raise_terminated) for signum in _TERMINATING}


def run_main(main: Callable[[Optional[Sequence[str]]], Optional[int]], argv: Optional[Sequence[str]] = None) -> NoReturn:
    """Run ``main(argv)``; a ``PPGanError`` prints ``error: <message>`` to stderr and exits 2
    (or its ``exit_code``: 130 for a training stopped by Ctrl-C after its checkpoint).

    Ctrl-C exits 130 and SIGTERM / SIGHUP exit 128 + the signal number, each after one
    ``error:`` line. Anything else is a bug and keeps its traceback.
    """
    previous = install_termination_handlers()
    try:
        code = main(argv)
    except PPGanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2))
    except Terminated as exc:
        print(f"error: stopped by {signal.Signals(exc.signum).name}", file=sys.stderr)
        sys.exit(128 + exc.signum)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    sys.exit(code or 0)
