"""Benchmark: cost of ``--face_enhancement`` (GPEN-512 on each output face) per frame.

    .venv/bin/python -m benchmarks.face_enhance > face_enhance.json      # a few minutes on 2 cores

Builds a GPEN of the released size (512 px, style 512, 8 mapping layers, multiplier 2) with its
default random initialisation (the cost does not depend on the values) and times
``FaceEnhancer.enhance_regions`` on 720p frames with a 200 px face box: resizing the box to 512,
the network, the blend and the resize back. Reports seconds per frame for each batch size after
one warm-up call, the network's parameter count and the process's peak RSS.
"""

import argparse
import json
import os
import platform
import resource
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: Paddle's)")
    args = parser.parse_args()

    import numpy as np
    import paddle
    from ppgan.apps.face_enhance import FaceEnhancer, blend_mask
    from ppgan.models.generators.gpen import GPEN

    if args.threads:
        paddle.base.core.set_num_threads(args.threads)
    paddle.seed(0)
    enhancer = FaceEnhancer.__new__(FaceEnhancer)  # random weights: no file needed
    enhancer.net = GPEN(size=512, style_dim=512, n_mlp=8, channel_multiplier=2)
    enhancer.net.eval()
    enhancer.size, enhancer.mask = 512, blend_mask(512)[:, :, None]
    frames = np.random.default_rng(0).integers(0, 256, (max(args.batch_sizes), 720, 1280, 3), dtype=np.uint8)
    box = [540, 200, 740, 400]
    results = {"machine": platform.processor() or platform.machine(),
               "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "default"),
               "parameters": int(sum(int(np.prod(p.shape)) for p in enhancer.net.parameters())),
               "seconds_per_frame": {}}
    for batch in args.batch_sizes:
        enhancer.batch_size = batch
        chunk = [frame.copy() for frame in frames[:batch]]
        enhancer.enhance_regions(chunk, [box] * batch)  # warm-up: oneDNN primitive creation
        started = time.perf_counter()
        for _ in range(args.repeats):
            enhancer.enhance_regions(chunk, [box] * batch)
        results["seconds_per_frame"][str(batch)] = round((time.perf_counter() - started) / (args.repeats * batch), 3)
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
