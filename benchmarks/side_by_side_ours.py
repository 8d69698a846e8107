"""Our side of benchmarks/paddlegan_side_by_side.py: tools/wav2lip.py in this process, then one
JSON line with the peak RSS (the tool's own output goes to stderr)."""

import contextlib
import json
import os
import resource
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

if __name__ == "__main__":
    sys.argv = [os.path.join(os.path.dirname(HERE), "tools", "wav2lip.py")] + sys.argv[1:]
    with contextlib.redirect_stdout(sys.stderr):
        try:
            runpy.run_path(sys.argv[0], run_name="__main__")
        except SystemExit as exc:
            if exc.code:
                raise
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024.0
    print(json.dumps({"peak_rss_mib": rss}))
