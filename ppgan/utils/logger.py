"""The ``ppgan`` logger: console on rank 0 only, one log file per rank.

Rank 0 writes ``<output_dir>/log.txt``; rank N writes ``<output_dir>/log.txt.rankN``.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Optional

from .comm import get_rank

LOGGER_NAME = "ppgan"
_FORMAT = "[%(asctime)s] %(name)s %(levelname)s: %(message)s"
_DATEFMT = "%m/%d %H:%M:%S"


def setup_logger(output_dir: Optional[str] = None, name: str = LOGGER_NAME, level: int = logging.INFO) -> logging.Logger:
    """Configure and return the logger (safe to call again: old handlers are replaced).

    Args:
        output_dir: folder for the per-rank log file; None logs to the console only.
    """
    logger = logging.getLogger(name)
    logger.setLevel(level)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    formatter = logging.Formatter(_FORMAT, datefmt=_DATEFMT)
    rank = get_rank()
    if rank == 0:
        console = logging.StreamHandler(sys.stdout)
        console.setFormatter(formatter)
        logger.addHandler(console)
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        filename = "log.txt" if rank == 0 else f"log.txt.rank{rank}"
        file_handler = _LogFileHandler(os.path.join(output_dir, filename), mode="a", delay=True)
        file_handler.setFormatter(formatter)
        logger.addHandler(file_handler)
    return logger


class _LogFileHandler(logging.FileHandler):
    """A log file that, when it cannot be written (full disk), says so once and stops.

    logging's default prints a traceback for every record that fails, burying the one error
    line the run ends with; an empty file left by the failure is removed. The file is opened at
    the first record (``delay``), so a run that fails before logging leaves none.
    """

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handleError(record)
            return
        print(f"warning: cannot write {self.baseFilename} ({error.strerror or error}); "
              f"logging to the console only", file=sys.stderr)
        self.close()
        try:
            if os.path.getsize(self.baseFilename) == 0:
                os.remove(self.baseFilename)
        except OSError:
            pass
        logging.getLogger(LOGGER_NAME).removeHandler(self)


def get_logger(name: str = LOGGER_NAME) -> logging.Logger:
    """The project logger; configured with a console handler on first use if nobody set it up."""
    logger = logging.getLogger(name)
    if not logger.handlers:
        setup_logger(name=name)
    return logger
