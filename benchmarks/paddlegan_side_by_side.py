"""Benchmark: PaddleGAN 2.1.0's Wav2Lip predictor against ours, same weights, inputs and face box.

    sh benchmarks/make_bench_venv.sh /work/bench-venv        # once: PaddleGAN in its own venv
    .venv/bin/python -m benchmarks.paddlegan_side_by_side --cases still10 video10 video60 --repeats 3 \
        --precisions fp32 bf16

Cases: ``still10`` a 512 px photograph (skimage's astronaut) with 10 s of synthetic speech,
``video10`` / ``video60`` the 1280x720 25 fps drifting-astronaut clip of ``benchmarks/inference.py``
with speech of its length. One random full-size generator (seed 0) is saved as a flat state dict,
the file format of PaddleGAN's ``wav2lip_hq.pdparams``, and given to both. Both get the same fixed
face box (found once with our Haar detector on the first frame), so detection is out of the
comparison, and ours pastes with ``--blend hard`` as PaddleGAN does. Each run is a fresh process;
runs are interleaved (PaddleGAN, ours, ours, PaddleGAN, ...) so load drifts hit both alike.
Reported per run: wall seconds, real-time factor, CPU seconds (user + system, from ``wait4``:
robust to other jobs on the machine), peak RSS of the process tree; per case, the mean absolute
difference between the two outputs' mouth regions (lower half of the box) over their common
frames, in 8-bit levels. Ours runs once per ``--precisions`` entry and also reports its stages and
how far its run and its whole process are from the generator's own time. PaddleGAN's shims are
listed in the output (``paddlegan_runner.py``).
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

CASES = {"still10": ("still", 10), "video10": ("video", 10), "video60": ("video", 60)}
STILL_SIDE = 512


def run_measured(command, env=None):
    """Run ``command``; returns (stdout, wall seconds, CPU seconds of it and its children)."""
    import resource

    def cpu():  # the totals of reaped children grow with each one: take the difference
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    before, started = cpu(), time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env)
    wall, used = time.perf_counter() - started, cpu() - before
    if done.returncode != 0:
        raise RuntimeError(f"{command[1]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout, wall, used


def make_inputs(folder, cases):
    """Weights, faces, audio and the face box per case; written once into ``folder``."""
    import cv2
    import numpy as np
    import paddle
    from skimage import data
    from benchmarks.inference import write_clip, write_speech
    from ppgan.faceutils.detector import build_detector
    from ppgan.models.generators.wav2lip import Wav2Lip
    from ppgan.utils.video import read_video
    from ppgan.utils.weights import save_weights_file

    os.makedirs(folder, exist_ok=True)
    weights = os.path.join(folder, "random_wav2lip.pdparams")
    if not os.path.isfile(weights):
        paddle.seed(0)
        save_weights_file(Wav2Lip().state_dict(), weights)
    inputs = {}
    for case in cases:
        kind, seconds = CASES[case]
        audio = os.path.join(folder, f"speech_{seconds:g}s.wav")
        if not os.path.isfile(audio):
            write_speech(audio, seconds)
        if kind == "still":
            face = os.path.join(folder, "astronaut.png")
            image = cv2.resize(np.ascontiguousarray(data.astronaut()[:, :, ::-1]), (STILL_SIDE,) * 2,
                               interpolation=cv2.INTER_AREA)
            cv2.imwrite(face, image)
            first = image
        else:
            face = os.path.join(folder, f"clip_{seconds:g}s.mp4")
            if not os.path.isfile(face):
                write_clip(face, seconds)
            first = read_video(face, max_frames=1)[0]
        x1, y1, x2, y2 = (int(v) for v in build_detector("haar").detect_batch([first])[0][0, :4])
        inputs[case] = {"face": face, "audio": audio, "box": [y1, min(first.shape[0], y2 + 10), x1, x2],
                        "seconds": seconds}
    return weights, inputs


def run_paddlegan(python, item, weights, outfile):
    command = [python, os.path.join(HERE, "paddlegan_runner.py"), "--face", item["face"], "--audio",
               item["audio"], "--weights", weights, "--outfile", outfile, "--box",
               *map(str, item["box"])]
    # Without PYTHONPATH: our ppgan must not shadow PaddleGAN's in its venv.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    stdout, wall, cpu = run_measured(command, env)
    report = json.loads(stdout.strip().splitlines()[-1])
    return {"wall": wall, "cpu": cpu, "peak_rss_mib": report["peak_rss_mib"], "shims": report["shims"]}


def run_ours(item, weights, outfile, precision):
    """tools/wav2lip.py at ``precision``: the process's wall/CPU time plus its own report (stages,
    the predictor's run time), and how far the run and the whole process are from the generator's
    own time (1.0 = nothing but generation)."""
    command = [sys.executable, os.path.join(HERE, "side_by_side_ours.py"), "--face", item["face"],
               "--audio", item["audio"], "--checkpoint_path", weights, "--outfile", outfile, "--box",
               *map(str, item["box"]), "--blend", "hard", "--precision", precision]
    stdout, wall, cpu = run_measured(command)
    report = json.loads(stdout.strip().splitlines()[-1])
    generate = report["stages"]["generate"]
    return {"wall": wall, "cpu": cpu, "peak_rss_mib": report["peak_rss_mib"], "frames": report["frames"],
            "precision": report["precision"], "stages": report["stages"], "run_seconds": report["run_seconds"],
            "run_over_generate": report["run_seconds"] / generate, "wall_over_generate": wall / generate}


def mouth_difference(ours, theirs, box):
    """Mean |ours - theirs| over the lower half of the box, over the common frames (8-bit levels)."""
    import numpy as np
    from ppgan.utils.video import iter_frames

    top, bottom, left, right = box
    middle = (top + bottom) // 2
    total, count, frames = 0.0, 0, [0, 0]
    for a, b in zip(iter_frames(ours), iter_frames(theirs)):
        total += np.abs(a[middle:bottom, left:right].astype(np.float32)
                        - b[middle:bottom, left:right].astype(np.float32)).mean()
        count += 1
    frames = [sum(1 for _ in iter_frames(path)) for path in (ours, theirs)]
    return {"mouth_mad": float(total / max(1, count)), "common_frames": count, "frames_ours": frames[0],
            "frames_paddlegan": frames[1]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=["still10", "video10", "video60"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "bf16", "auto"), default=["fp32"],
                        help="run ours at each of these (systems ours-<precision>)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="shorten every case to this many seconds (a quick look on a busy machine)")
    parser.add_argument("--bench-python", default="/work/bench-venv/bin/python",
                        help="python of the venv made by make_bench_venv.sh")
    parser.add_argument("--folder", default="/tmp/paddlegan_side_by_side")
    args = parser.parse_args()
    if not os.path.isfile(args.bench_python):
        sys.exit(f"error: {args.bench_python} not found: run sh benchmarks/make_bench_venv.sh first")
    if args.seconds:
        for case in args.cases:
            CASES[case] = (CASES[case][0], args.seconds)
    weights, inputs = make_inputs(args.folder, args.cases)
    rows, shims = [], None
    for repeat in range(args.repeats):
        for case in args.cases:
            item = inputs[case]
            systems = ["paddlegan"] + [f"ours-{precision}" for precision in args.precisions]
            order = systems if (repeat + args.cases.index(case)) % 2 == 0 else systems[::-1]
            for system in order:
                out = os.path.join(args.folder, f"{case}_{system}.mp4")
                if system == "paddlegan":
                    result = run_paddlegan(args.bench_python, item, weights, out)
                    shims = result.pop("shims")
                else:
                    result = run_ours(item, weights, out, system.split("-", 1)[1])
                result.update(case=case, system=system, repeat=repeat,
                              rtf=result["wall"] / item["seconds"])
                rows.append(result)
                print(json.dumps(result), file=sys.stderr, flush=True)
    # The mouth regions agree or not whatever our precision: compare the first one's output.
    differences = {case: mouth_difference(os.path.join(args.folder, f"{case}_ours-{args.precisions[0]}.mp4"),
                                          os.path.join(args.folder, f"{case}_paddlegan.mp4"),
                                          inputs[case]["box"]) for case in args.cases}
    from ppgan.inference.precision import cpu_isa
    print(json.dumps({"date": datetime.date.today().isoformat(), "isa": list(cpu_isa()),
                      "cpus": os.cpu_count(), "load_average": os.getloadavg(), "shims": shims,
                      "boxes": {case: inputs[case]["box"] for case in args.cases},
                      "runs": rows, "mouth": differences}, indent=1))


if __name__ == "__main__":
    main()
