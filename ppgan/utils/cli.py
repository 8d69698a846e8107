"""Entry-point wrapper for the command-line tools: user errors become one line and exit code 2."""

import sys

from .errors import PPGanError


def run_main(main, argv=None):
    """Run ``main(argv)``; a ``PPGanError`` prints ``error: <message>`` to stderr and exits 2.

    Anything else is a bug and keeps its traceback.
    """
    try:
        code = main(argv)
    except PPGanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
