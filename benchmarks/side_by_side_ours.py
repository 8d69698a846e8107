"""Our side of benchmarks/paddlegan_side_by_side.py: what tools/wav2lip.py does (its own argument
parser and predictor options), in this process, then one JSON line: peak RSS, frames, the
precision that ran, seconds per stage, the predictor's run time and the whole process's time.
Progress and log lines go to stderr."""

import contextlib
import json
import os
import resource
import runpy
import sys
import time

STARTED = time.perf_counter()
HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(os.path.dirname(HERE), "tools", "wav2lip.py")


def main(argv):
    with contextlib.redirect_stdout(sys.stderr):
        tool = runpy.run_path(TOOL, run_name="side_by_side")  # its functions, not its main
        args = tool["parse_args"](argv)
        from ppgan.apps.wav2lip_predictor import Wav2LipPredictor

        predictor = Wav2LipPredictor(**tool["predictor_options"](args))
        started = time.perf_counter()
        result = predictor.run(args.face, args.audio, args.outfile)
        run_seconds = time.perf_counter() - started
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024.0
    print(json.dumps({"peak_rss_mib": rss, "frames": result.frames, "precision": result.precision,
                      "stages": result.seconds, "run_seconds": run_seconds,
                      "process_seconds": time.perf_counter() - STARTED}))


if __name__ == "__main__":
    main(sys.argv[1:])
