"""Reduced precision against fp32 on real frames: the quality guard and the speed of each.

    python benchmarks/precision_guard.py --checkpoint output/demo/wav2lip/best.pdparams \
        --dataroot output/demo/corpus [--split test] [--frames 400] [--batch 32] [--threads 2]

Exports the generator once, then runs the same frames (held-out windows of the corpus: masked
target + reference faces and their mel windows, as the dataset builds them) through the inference
engine in fp32 and in each reduced precision, interleaved batch by batch. Prints JSON: per precision the PSNR of its output
against fp32 (the issue's guard: at least 35 dB for bf16), the largest absolute difference in
8-bit levels, and the median process CPU seconds and wall seconds per frame, with the ISA flags
and any ONEDNN_MAX_CPU_ISA cap. A precision the machine cannot run is reported as fallen back.
"""

import argparse
import datetime
import json
import os
import statistics
import tempfile
import time

import numpy as np


def corpus_frames(dataroot, split, count, img_size, offset):
    """(mels (N,1,80,16), faces (N,6,S,S)) float32 from the split's validation windows."""
    from ppgan.datasets.lrs2 import Wav2LipDataset

    dataset = Wav2LipDataset(dataroot, split, img_size=img_size, mel_frame_offset=offset,
                             is_train=False)
    mels, faces = [], []
    for index in range(len(dataset)):
        sample = dataset[index]
        # (6, T, S, S) and (T, 1, 80, 16): one generator input per window frame
        faces.extend(np.moveaxis(np.asarray(sample["x"]), 1, 0))
        mels.extend(np.asarray(sample["indiv_mels"]))
        if len(faces) >= count:
            break
    return np.stack(mels[:count]).astype(np.float32), np.stack(faces[:count]).astype(np.float32)


def interleaved_runs(runners, mels, faces, batch):
    """Run every runner on each batch in turn (so load changes hit all alike).

    Returns {name: (outputs, median CPU s per frame, median wall s per frame)}.
    """
    for runner in runners.values():  # oneDNN builds its primitives on the first call per shape
        runner(mels[:batch], faces[:batch])
    outputs = {name: [] for name in runners}
    cpu = {name: [] for name in runners}
    wall = {name: [] for name in runners}
    for start in range(0, len(mels) - batch + 1, batch):  # whole batches only: one shape
        chunk = slice(start, start + batch)
        for name, runner in runners.items():
            began, began_cpu = time.perf_counter(), time.process_time()
            outputs[name].append(runner(mels[chunk], faces[chunk]))
            wall[name].append((time.perf_counter() - began) / batch)
            cpu[name].append((time.process_time() - began_cpu) / batch)
    return {name: (np.concatenate(outputs[name]), statistics.median(cpu[name]),
                   statistics.median(wall[name])) for name in runners}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="generator checkpoint or weights")
    parser.add_argument("--dataroot", required=True, help="preprocessed corpus with the split's filelist")
    parser.add_argument("--split", default="test")
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precisions", nargs="+", default=["bf16"])
    args = parser.parse_args()

    from ppgan.apps.generator_loader import load_generator
    from ppgan.inference.engine import StaticRunner
    from ppgan.inference.generator import export_generator
    from ppgan.inference.precision import cpu_isa, psnr

    dynamic = load_generator(args.checkpoint, engine="dynamic")
    spec = dynamic.spec
    mels, faces = corpus_frames(args.dataroot, args.split, args.frames, dynamic.img_size,
                                spec["mel_frame_offset"])
    report = {"date": datetime.date.today().isoformat(), "isa": list(cpu_isa()),
              "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "default"),
              "checkpoint": args.checkpoint, "frames": len(mels), "batch": args.batch,
              "threads": args.threads, "load_average": os.getloadavg(), "precisions": {}}
    with tempfile.TemporaryDirectory() as folder:
        prefix = os.path.join(folder, "generator")
        export_generator(dynamic.net, prefix, spec=spec)
        runners = {precision: StaticRunner(prefix, threads=args.threads, precision=precision)
                   for precision in ["fp32", *args.precisions]}
        results = interleaved_runs(runners, mels, faces, args.batch)
    reference, fp32_cpu, _ = results["fp32"]
    for precision, (out, cpu, wall) in results.items():
        row = {"runs_as": runners[precision].precision, "cpu_s_per_frame": round(cpu, 5),
               "wall_s_per_frame": round(wall, 5)}
        if precision != "fp32":
            row.update(psnr_vs_fp32_db=round(psnr(reference, out), 2),
                       max_abs_diff_8bit=round(float(np.abs(out - reference).max()) * 255, 2),
                       cpu_speedup_vs_fp32=round(fp32_cpu / cpu, 3))
        report["precisions"][precision] = row
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
