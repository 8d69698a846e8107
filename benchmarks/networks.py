"""Benchmark: Wav2Lip network sizes, FLOPs, and generator eval throughput on CPU.

    .venv/bin/python -m benchmarks.networks > networks.json   # 11 min on a busy 2-core machine
    .venv/bin/python -m benchmarks.networks --batches 1 16 --threads 1 --min-seconds 1
    .venv/bin/python -m benchmarks.networks --img-sizes 96 192 288 --batches 1 8 --threads 2

Prints JSON: parameters, state-dict entries and multiply-accumulates per sample of the three
networks at each face size (``--img-sizes``, default the published 96), then generator frames/s
at each face size, batch size and thread count for three engines side by side in the same run:

- ``dynamic``: Paddle dynamic graph (what training uses);
- ``inference``: the exported program through Paddle Inference with oneDNN (what the predictor
  uses, ``ppgan.inference.generator.StaticGenerator``);
- ``torch``: the same-topology PyTorch model (benchmarks/torch_reference.py), eager,
  ``inference_mode``, at every face size (the reference builds the same larger-face stages).

Each (engine, threads) pair runs in its own process, so thread settings cannot leak between
engines. Weights are random: speed does not depend on them.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ENGINES = ("dynamic", "inference", "torch")


def random_inputs(batch, img_size):
    import numpy as np
    rng = np.random.RandomState(batch)
    return (rng.randn(batch, 1, 80, 16).astype("float32"),
            rng.rand(batch, 6, img_size, img_size).astype("float32"))


def make_runner(engine, threads, export_prefix, img_size):
    """A function ``run(mels, faces)`` executing one generator forward with ``engine``."""
    if engine == "torch":
        import torch
        from torch_reference import build_torch_network
        torch.set_num_threads(threads)
        net = build_torch_network("wav2lip", img_size=img_size).eval()

        def run(mels, faces):
            with torch.inference_mode():  # torch's fastest eager mode
                return net(torch.from_numpy(mels), torch.from_numpy(faces))
        return run
    import paddle
    paddle.set_device("cpu")
    paddle.base.core.set_num_threads(threads)
    if engine == "inference":
        from ppgan.inference.generator import StaticGenerator
        return StaticGenerator(export_prefix, threads=threads, use_onednn=True)
    from ppgan.models.generators.wav2lip import Wav2Lip
    net = Wav2Lip(img_size=img_size)
    net.eval()

    def run(mels, faces):
        with paddle.no_grad():
            return net(paddle.to_tensor(mels), paddle.to_tensor(faces))
    return run


def time_engine(engine, threads, batches, min_seconds, export_prefix, img_size):
    """Frames/s of one engine at each batch size (runs in a worker process)."""
    run = make_runner(engine, threads, export_prefix, img_size)
    rows = []
    for batch in batches:
        mels, faces = random_inputs(batch, img_size)
        # Warm up at the measured shape (oneDNN builds primitives per shape); dynamic mode has
        # no per-shape setup worth a whole extra batch-128 pass, so it warms up on <= 16.
        warm = min(batch, 16) if engine == "dynamic" else batch
        run(mels[:warm], faces[:warm])
        times, cpu_times = [], []
        while not times or (sum(times) < min_seconds and len(times) < 5):
            start, cpu_start = time.perf_counter(), time.process_time()
            run(mels, faces)
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
        seconds, cpu_seconds = sorted(times)[len(times) // 2], sorted(cpu_times)[len(times) // 2]
        # CPU seconds (all threads of the process) are less sensitive than wall time to other
        # jobs sharing the machine; at one thread they are the better speed estimate.
        rows.append({"engine": engine, "img_size": img_size, "threads": threads, "batch": batch,
                     "repeats": len(times),
                     "seconds_per_batch": round(seconds, 4),
                     "frames_per_s": round(batch / seconds, 2),
                     "frames_per_cpu_s": round(batch / cpu_seconds, 2)})
    return rows


def network_sizes(img_size=96):
    """Parameters, state-dict entries and multiply-accumulates per sample at one face size S."""
    import numpy as np
    import paddle
    from ppgan.models.discriminators.syncnet import SyncNetColor
    from ppgan.models.discriminators.wav2lip_disc_qual import Wav2LipDiscQual
    from ppgan.models.generators.wav2lip import Wav2Lip
    size = img_size
    samples = {
        "Wav2Lip (per frame)": (Wav2Lip, [(1, 1, 80, 16), (1, 6, size, size)]),
        "SyncNetColor (per 5-frame sample)": (SyncNetColor, [(1, 1, 80, 16), (1, 15, size // 2, size)]),
        "Wav2LipDiscQual (per frame)": (Wav2LipDiscQual, [(1, 3, size, size)]),
    }
    out = {}
    for label, (cls, shapes) in samples.items():
        net = cls(img_size=size)
        net.eval()
        macs = []

        def count(layer, inputs, output):
            weight = layer.weight.shape  # conv [out, in, kh, kw]; transposed [in, out, kh, kw]
            if isinstance(layer, paddle.nn.Conv2DTranspose):
                pixels = int(np.prod(inputs[0].shape[2:]))  # every input pixel meets every weight
            else:
                pixels = int(np.prod(output.shape[2:]))
            macs.append(pixels * int(np.prod(weight)))
        hooks = [layer.register_forward_post_hook(count) for layer in net.sublayers()
                 if isinstance(layer, (paddle.nn.Conv2D, paddle.nn.Conv2DTranspose))]
        with paddle.no_grad():
            net(*[paddle.rand(s) for s in shapes])
        for hook in hooks:
            hook.remove()
        out[label] = {
            "state_dict_entries": len(net.state_dict()),
            "trainable_parameters": sum(int(np.prod(p.shape)) for p in net.parameters()
                                        if not p.stop_gradient),
            "gmacs": round(sum(macs) / 1e9, 3),
            "gflops": round(2 * sum(macs) / 1e9, 3),
        }
    return out


def export_random_generator(prefix, img_size):
    import paddle
    from ppgan.models.generators.wav2lip import Wav2Lip
    from ppgan.inference.generator import export_generator
    paddle.seed(0)
    export_generator(Wav2Lip(img_size=img_size), prefix)


def run_worker(engine, threads, args, prefix, img_size):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    command = [sys.executable, "-m", "benchmarks.networks", "--worker", engine, "--threads", str(threads),
               "--batches", *map(str, args.batches), "--min-seconds", str(args.min_seconds),
               "--export-prefix", prefix, "--img-sizes", str(img_size)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            cwd=REPO)
    if result.returncode != 0:
        raise RuntimeError(f"{engine} worker failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def ratios(rows):
    """Inference-engine and dynamic-mode speed relative to torch, per threads and batch
    (``x_torch`` from wall time, ``x_torch_cpu`` from process CPU time)."""
    by_key = {(r["engine"], r["img_size"], r["threads"], r["batch"]): r for r in rows}
    out = []
    for (engine, size, threads, batch), row in sorted(by_key.items()):
        torch_row = by_key.get(("torch", size, threads, batch))
        if engine != "torch" and torch_row:
            out.append({"engine": engine, "img_size": size, "threads": threads, "batch": batch,
                        "x_torch": round(row["frames_per_s"] / torch_row["frames_per_s"], 2),
                        "x_torch_cpu": round(row["frames_per_cpu_s"] / torch_row["frames_per_cpu_s"], 2)})
    return out


def main():
    parser = argparse.ArgumentParser(description="Wav2Lip network sizes and generator throughput")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16, 128])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--img-sizes", type=int, nargs="+", default=[96],
                        help="face sizes to measure (96 * 2^a * 3^b)")
    parser.add_argument("--min-seconds", type=float, default=3.0,
                        help="time each setting for at least this long (at most 5 repeats)")
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--export-prefix", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(time_engine(args.worker, args.threads[0], args.batches, args.min_seconds,
                                     args.export_prefix, args.img_sizes[0])))
        return
    from ppgan.inference.precision import cpu_isa  # the ISA oneDNN may use, with every figure
    report = {"benchmark": "networks", "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "date": datetime.date.today().isoformat(),
              "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "default"),
              "cpu_flags": list(cpu_isa()),
              "networks": {size: network_sizes(size) for size in args.img_sizes}, "throughput": []}
    with tempfile.TemporaryDirectory() as folder:
        for size in args.img_sizes:
            prefix = os.path.join(folder, f"wav2lip_{size}")
            if "inference" in args.engines:
                export_random_generator(prefix, size)
            for threads in args.threads:
                for engine in args.engines:
                    report["throughput"] += run_worker(engine, threads, args, prefix, size)
                    print(f"done: {engine} x{threads} at {size} px", file=sys.stderr)
    report["ratios"] = ratios(report["throughput"])
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
