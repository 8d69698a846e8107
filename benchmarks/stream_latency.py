"""Benchmark: tools/wav2lip_stream.py's first-frame latency, sustained frame rate and real-time
factor, per avatar and precision, paced like a live source (``--realtime``) and unpaced.

    .venv/bin/python -m benchmarks.stream_latency --cases still10 video10 --precisions fp32 bf16

The inputs are benchmarks/paddlegan_side_by_side.py's (a random full-size generator, a 512 px
photograph or a 1280x720 25 fps clip, synthetic speech, a fixed face box), so the figures sit
beside that benchmark's. Each run is a fresh process; the tool's own report lines are parsed.
Latency is counted from the first audio chunk's arrival to the first generated frame; no frame
can exist before 0.2125 s of audio (16 mel steps of 12.5 ms plus the 50 ms analysis window), so
with ``--realtime`` that floor (less the first chunk's own 40 ms) is part of every figure.
"""

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time

from benchmarks.paddlegan_side_by_side import make_inputs

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.join(os.path.dirname(HERE), "tools", "wav2lip_stream.py")
# The numbers of the tool's two report lines (see tools/wav2lip_stream.py).
REPORT = re.compile(r"avatar prepared in (?P<prepare>[\d.]+) s.*generator batch (?P<batch>\d+).*"
                    r"precision (?P<precision>\w+)\n.*first frame (?P<first_frame>[\d.]+) s after .*"
                    r"sustained (?P<fps>[\d.na]+) fps; (?P<total>[\d.]+) s from the first chunk .*"
                    r"real-time factor (?P<rtf>[\d.]+)\); stage time and share of that: (?P<stages>.*)", re.S)


def parse_report(stdout):
    """The tool's report as a dict of numbers (stages: name -> seconds)."""
    found = REPORT.search(stdout)
    if found is None:
        raise RuntimeError(f"unexpected report from {TOOL}:\n{stdout}")
    row = {key: float(found[key]) for key in ("prepare", "first_frame", "fps", "total", "rtf")}
    row.update(batch=int(found["batch"]), precision=found["precision"])
    row["stages"] = {name: float(value) for name, value in
                     re.findall(r"([\w ()-]+?) ([\d.]+) s \(\d+%\)(?:, |$)", found["stages"].strip())}
    return row


def run_stream(item, weights, outfile, precision, paced):
    command = [sys.executable, TOOL, "--face", item["face"], "--audio", item["audio"], "--checkpoint_path",
               weights, "--outfile", outfile, "--box", *map(str, item["box"]), "--precision", precision]
    if paced:
        command.append("--realtime")
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"{TOOL} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    row = parse_report(done.stdout)
    row["process_wall"] = time.perf_counter() - started
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=("still10", "video10"), default=["still10", "video10"])
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "bf16", "auto"), default=["fp32", "bf16"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--folder", default="/tmp/paddlegan_side_by_side")
    args = parser.parse_args()
    weights, inputs = make_inputs(args.folder, args.cases)
    rows = []
    for repeat in range(args.repeats):
        for case in args.cases:
            for precision in args.precisions:
                for paced in (True, False):
                    out = os.path.join(args.folder, f"stream_{case}_{precision}.mp4")
                    row = run_stream(inputs[case], weights, out, precision, paced)
                    row.update(case=case, requested=precision, paced=paced, repeat=repeat)
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
    from ppgan.inference.precision import cpu_isa
    print(json.dumps({"date": datetime.date.today().isoformat(), "isa": list(cpu_isa()),
                      "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"), "cpus": os.cpu_count(),
                      "load_average": os.getloadavg(), "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
