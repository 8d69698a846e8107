"""Training step time: this framework next to the same-topology PyTorch model, and data parallelism.

    python -m benchmarks.train_step [--steps 2] [--only expert|generator] [--img-size 192] > train_step.json

Measured (published widths, random weights and batches, Adam, median of ``--steps`` after one
warm-up step):

- ``--img-size`` (default 96): the face size of both networks and batches (192 adds one stage
  each side, same as ``Wav2Lip(img_size=192)`` and the torch reference's ``img_size``);
- expert: ``SyncNetModel.train_iter`` on 16 samples (15x48x96 faces at 96, 80x16 mels) vs the torch
  SyncNetColor with the same cosine-BCE loss;
- generator: ``Wav2LipModel.train_iter`` on 4 clips x 5 frames with the sync loss switched on
  (gradients through the frozen expert) vs the torch Wav2Lip + frozen expert, same loss;
- Paddle dynamic graph, whole-net ``to_static`` (expert only) and oneDNN convolutions (the
  trainer's CPU default, ``ppgan.modules.onednn_conv``) at 1 thread, and for the expert also
  oneDNN convolutions at 2 threads; torch at 1 and 2 threads;
- the expert with 2 data-parallel processes (8 samples each, one thread each, oneDNN
  convolutions) under ``paddle.distributed.launch`` vs one process on 16 samples.

Each figure is the median wall time; ``cpu`` entries give the median process CPU time (all
threads), which is less sensitive to other jobs sharing the machine. Every measurement runs in a
process of its own that imports only the library it measures: in one process, torch's and
Paddle's thread pools at 2 threads slowed each other (the same 192-px Paddle step measured 7.9 s
after torch had run there, 5.5 s alone).

Prints one JSON object. torch comes from benchmarks/torch_reference.py (never a ppgan dependency).
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERT_BATCH, CLIPS, FRAMES = 16, 4, 5
WIDTH = {"value": 1.0}  # --width-mult, for a quick smoke run; 1.0 is the published size
SIZE = {"value": 96}    # --img-size: the face side of every network and batch
SYNC_WEIGHT = 0.03  # > 0 so the generator step backpropagates through the frozen expert


def timed(step, steps):
    """(median wall seconds, median process CPU seconds) of ``steps`` calls after a warm-up."""
    step()
    wall, cpu = [], []
    for _ in range(steps):
        begin, begin_cpu = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - begin)
        cpu.append(time.process_time() - begin_cpu)
    return statistics.median(wall), statistics.median(cpu)


def record(table, name, measured):
    """Store a ``timed`` result as ``table[name]`` (wall) and ``table[name + '_cpu']``."""
    table[name], table[name + "_cpu"] = measured


def random_batches(seed=0):
    import numpy as np
    rng = np.random.RandomState(seed)
    size = SIZE["value"]
    expert = {"face": rng.rand(EXPERT_BATCH, 15, size // 2, size).astype("float32"),
              "mel": rng.uniform(-4, 4, (EXPERT_BATCH, 1, 80, 16)).astype("float32"),
              "label": (rng.rand(EXPERT_BATCH, 1) > 0.5).astype("float32")}
    generator = {"x": rng.rand(CLIPS, 6, FRAMES, size, size).astype("float32"),
                 "indiv_mels": rng.uniform(-4, 4, (CLIPS, FRAMES, 1, 80, 16)).astype("float32"),
                 "mel": rng.uniform(-4, 4, (CLIPS, 1, 80, 16)).astype("float32"),
                 "y": rng.rand(CLIPS, 3, FRAMES, size, size).astype("float32")}
    return expert, generator


# ------------------------------------------------------------------------------ Paddle
def paddle_train_step(model, optimizers, batch, onednn):
    """One trainer iteration as ``Trainer.train`` runs it."""
    from ppgan.modules.onednn_conv import onednn_kernels

    def step():
        model.setup_input(batch)
        with onednn_kernels(onednn):
            model.train_iter(optimizers)
    return step


def paddle_expert_step(batch, static=False, data_parallel=False, onednn=False):
    import paddle
    from ppgan.models.syncnet_model import SyncNetModel
    from ppgan.solver import build_optimizers
    paddle.seed(0)
    model = SyncNetModel(syncnet={"name": "SyncNetColor", "width_mult": WIDTH["value"],
                                  "img_size": SIZE["value"]})
    if static:
        model.to_static()
    if onednn:
        model.use_onednn_convolutions()
    optimizers = build_optimizers({"optimizer_S": {"name": "Adam", "net_names": ["netS"]}},
                                  model.trained_nets(), 1e-4, model.optimizer_keys)
    if data_parallel:
        model.wrap_data_parallel()
    model.train()
    return paddle_train_step(model, optimizers, batch, onednn)


def paddle_generator_step(batch, expert_path, onednn=False):
    import paddle
    from ppgan.models.wav2lip_model import Wav2LipModel
    from ppgan.solver import build_optimizers
    paddle.seed(0)
    width, size = WIDTH["value"], SIZE["value"]
    model = Wav2LipModel(generator={"name": "Wav2Lip", "width_mult": width, "img_size": size},
                         discriminator={"name": "SyncNetColor", "width_mult": width, "img_size": size},
                         syncnet_weights=expert_path, syncnet_wt=SYNC_WEIGHT)
    if onednn:
        model.use_onednn_convolutions()
    optimizers = build_optimizers({"optimizer_G": {"name": "Adam", "net_names": ["netG"]}},
                                  model.trained_nets(), 1e-4, model.optimizer_keys)
    model.train()
    return paddle_train_step(model, optimizers, batch, onednn)


# ------------------------------------------------------------------------------ torch
def torch_expert_step(batch):
    import torch
    import torch.nn.functional as F
    from benchmarks.torch_reference import build_torch_network
    torch.manual_seed(0)
    net = build_torch_network("syncnet", WIDTH["value"], SIZE["value"]).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    face, mel, label = (torch.from_numpy(batch[k]) for k in ("face", "mel", "label"))

    def step():
        audio_emb, face_emb = net(mel, face)
        prob = F.cosine_similarity(audio_emb, face_emb).clamp(0, 1).unsqueeze(1)
        loss = F.binary_cross_entropy(prob, label)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return step


def torch_generator_step(batch):
    import torch
    import torch.nn.functional as F
    from benchmarks.torch_reference import build_torch_network
    torch.manual_seed(0)
    generator = build_torch_network("wav2lip", WIDTH["value"], SIZE["value"]).train()
    expert = build_torch_network("syncnet", WIDTH["value"], SIZE["value"]).eval()
    for param in expert.parameters():
        param.requires_grad_(False)
    optimizer = torch.optim.Adam(generator.parameters(), lr=1e-4)
    x, indiv_mels, mel, y = (torch.from_numpy(batch[k]) for k in ("x", "indiv_mels", "mel", "y"))

    def step():
        g = generator(indiv_mels, x)
        lower = g[:, :, :, g.size(3) // 2:]
        faces = torch.cat([lower[:, :, t] for t in range(lower.size(2))], dim=1)
        audio_emb, face_emb = expert(mel, faces)
        prob = F.cosine_similarity(audio_emb, face_emb).clamp(0, 1).unsqueeze(1)
        sync = F.binary_cross_entropy(prob, torch.ones_like(prob))
        loss = SYNC_WEIGHT * sync + (1 - SYNC_WEIGHT) * F.l1_loss(g, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return step


# ------------------------------------------------------------------------------ runs
# name -> (network, threads, step builder(batch, expert_path)); each runs in its own process, so
# one library's thread pools (spinning OpenMP workers) cannot slow the other's measurement.
MEASUREMENTS = {
    "expert": {
        "paddle_dygraph_1t": (1, lambda b, e: paddle_expert_step(b)),
        "paddle_to_static_1t": (1, lambda b, e: paddle_expert_step(b, static=True)),
        "paddle_onednn_1t": (1, lambda b, e: paddle_expert_step(b, onednn=True)),
        "torch_1t": (1, lambda b, e: torch_expert_step(b)),
        "paddle_onednn_2t": (2, lambda b, e: paddle_expert_step(b, onednn=True)),
        "torch_2t": (2, lambda b, e: torch_expert_step(b)),
    },
    "generator": {
        "paddle_dygraph_1t": (1, lambda b, e: paddle_generator_step(b, e)),
        "paddle_onednn_1t": (1, lambda b, e: paddle_generator_step(b, e, onednn=True)),
        "torch_1t": (1, lambda b, e: torch_generator_step(b)),
        "paddle_onednn_2t": (2, lambda b, e: paddle_generator_step(b, e, onednn=True)),
        "torch_2t": (2, lambda b, e: torch_generator_step(b)),
    },
}


def set_threads(name, n):
    """Threads of the one library measurement ``name`` uses (the other is never imported)."""
    if name.startswith("torch"):
        import torch
        torch.set_num_threads(n)
    else:
        import paddle
        paddle.base.core.set_num_threads(n)


def measure_worker(spec, steps, expert_path):
    """``--measure network:name`` in a fresh process: print {"seconds": [wall, cpu]}."""
    network, name = spec.split(":")
    threads, build = MEASUREMENTS[network][name]
    set_threads(name, threads)
    expert, generator = random_batches()
    step = build(expert if network == "expert" else generator, expert_path)
    print(json.dumps({"seconds": timed(step, steps)}))


def run_measurement(network, name, steps, expert_path=None):
    """(median wall s, median CPU s) of one measurement, run in its own process."""
    command = [sys.executable, "-m", "benchmarks.train_step", "--measure", f"{network}:{name}",
               "--steps", str(steps), "--width-mult", str(WIDTH["value"]),
               "--img-size", str(SIZE["value"])]
    if expert_path:
        command += ["--expert-path", expert_path]
    result = subprocess.run(command, check=True, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, cwd=REPO)
    return tuple(json.loads(result.stdout.strip().splitlines()[-1])["seconds"])


def run_data_parallel(steps):
    """Expert step (wall, rank-0 CPU) with 2 launched processes x 8 samples, one thread each."""
    with tempfile.TemporaryDirectory() as tmp:
        result = os.path.join(tmp, "dp.json")
        command = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
                   "--log_dir", os.path.join(tmp, "log"), os.path.abspath(__file__),
                   "--dp-worker", result, "--steps", str(steps),
                   "--width-mult", str(WIDTH["value"]), "--img-size", str(SIZE["value"])]
        subprocess.run(command, check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(result) as f:
            return tuple(json.load(f)["seconds"])


def dp_worker(result, steps):
    import paddle
    from ppgan.utils import comm
    comm.init_distributed()
    paddle.base.core.set_num_threads(1)
    expert, _ = random_batches(seed=comm.get_rank())
    half = {k: v[:EXPERT_BATCH // 2] for k, v in expert.items()}
    seconds = timed(paddle_expert_step(half, data_parallel=True, onednn=True), steps)
    if comm.is_main_process():
        with open(result, "w") as f:
            json.dump({"seconds": seconds}, f)


def add_ratios(table):
    """Paddle / torch at the same thread count, by wall and by CPU time (lower is better)."""
    for run in ("paddle_dygraph_1t", "paddle_onednn_1t", "paddle_onednn_2t"):
        if run not in table:
            continue
        threads = run[-2:]
        for suffix in ("", "_cpu"):
            table[f"ratio_{run[7:]}{suffix}_vs_torch_{threads}"] = (
                table[run + suffix] / table[f"torch_{threads}{suffix}"])
    table["speedup_onednn_vs_dygraph_1t"] = table["paddle_dygraph_1t"] / table["paddle_onednn_1t"]


def measure_expert(expert, steps):
    """Expert steps: Paddle's paths and torch at 1 and 2 threads, and 2 data-parallel processes."""
    for name in MEASUREMENTS["expert"]:
        record(expert, name, run_measurement("expert", name, steps))
    record(expert, "paddle_onednn_dp_2proc_x1t", run_data_parallel(steps))
    add_ratios(expert)
    expert["dp_speedup_vs_onednn_1t"] = expert["paddle_onednn_1t"] / expert["paddle_onednn_dp_2proc_x1t"]
    expert["ratio_dp_vs_torch_2t"] = expert["paddle_onednn_dp_2proc_x1t"] / expert["torch_2t"]


def measure_generator(generator, expert_path, steps):
    """Generator + sync loss steps: Paddle dygraph and oneDNN convolutions, torch; 1 and 2 threads."""
    for name in MEASUREMENTS["generator"]:
        record(generator, name, run_measurement("generator", name, steps, expert_path))
    add_ratios(generator)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2, help="timed steps per measurement")
    parser.add_argument("--only", choices=("expert", "generator"), help="measure one network only")
    parser.add_argument("--width-mult", type=float, default=1.0,
                        help="shrink the networks for a quick check (1.0 = published size)")
    parser.add_argument("--img-size", type=int, default=96,
                        help="face size of the networks and batches (96 * 2^a * 3^b)")
    parser.add_argument("--dp-worker", help=argparse.SUPPRESS)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--expert-path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    WIDTH["value"], SIZE["value"] = args.width_mult, args.img_size
    if args.dp_worker:
        return dp_worker(args.dp_worker, args.steps)
    if args.measure:
        return measure_worker(args.measure, args.steps, args.expert_path)

    from ppgan.inference.precision import cpu_isa
    from ppgan.models.discriminators.syncnet import SyncNetColor
    from ppgan.utils.weights import save_weights_file
    report = {"date": datetime.date.today().isoformat(), "cores": os.cpu_count(),
              "isa": list(cpu_isa()),
              "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", "default"),
              "steps": args.steps, "width_mult": args.width_mult, "img_size": args.img_size,
              "expert": {"batch": EXPERT_BATCH}, "generator": {"clips": CLIPS, "frames": FRAMES}}
    if args.only != "generator":
        measure_expert(report["expert"], args.steps)
    else:
        del report["expert"]
    if args.only != "expert":
        with tempfile.TemporaryDirectory() as tmp:
            expert_path = os.path.join(tmp, "expert.pdparams")
            save_weights_file(SyncNetColor(args.width_mult, img_size=args.img_size).state_dict(),
                              expert_path)
            measure_generator(report["generator"], expert_path, args.steps)
    else:
        del report["generator"]
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
