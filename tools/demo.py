"""The whole pipeline on the built-in synthetic corpus, with no downloads (the README's first command).

    python tools/demo.py --out output/demo          # what `make demo` runs

Stages, each a real tool or library call:
  1. synthetic talking-face corpus          (ppgan.datasets.synthetic, as tools/make_synthetic_data.py)
  2. lip-sync expert training               (tools/main.py -c configs/demo/syncnet.yaml)
  3. expert accuracy on held-out clips      (tools/main.py --evaluate-only on the test split)
  4. generator training                     (tools/main.py -c configs/demo/wav2lip.yaml)
  5. HQ generator, a few iterations         (tools/main.py -c configs/demo/wav2lip_hq.yaml)
  6. evaluation of the generator            (ppgan.apps.evaluate: LSE-D / LSE-C beside ground truth
                                             and the shuffled-audio floor, PSNR / SSIM)
  7. inference: a held-out face driven by another clip's audio (Wav2LipPredictor, as tools/wav2lip.py)
Writes <out>/result.mp4, <out>/grid.png, <out>/summary.md and <out>/summary.json and prints the
summary table. Training runs in 2 data-parallel processes when the machine has 2 cores or more.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ppgan.utils.cli import run_main  # noqa: E402

MARKER = "demo.json"  # written into --out so a later demo run knows the folder is its own
EXPERT_TARGET = 0.90  # held-out accuracy the demo's expert must reach


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="output/demo", help="output folder (default: %(default)s)")
    parser.add_argument("--speakers", type=int, default=6)
    parser.add_argument("--clips", type=int, default=8, help="clips per speaker")
    parser.add_argument("--min-frames", type=int, default=50)
    parser.add_argument("--max-frames", type=int, default=75)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--expert-iters", type=int, default=900,
                        help="expert iterations (per-process batch from configs/demo/syncnet.yaml)")
    parser.add_argument("--generator-iters", type=int, default=540,
                        help="generator iterations (per-process batch from configs/demo/wav2lip.yaml)")
    parser.add_argument("--hq-iters", type=int, default=20, help="HQ generator iterations")
    parser.add_argument("--eval-clips", type=int, default=None,
                        help="evaluate on at most this many test clips (default: all)")
    parser.add_argument("--nproc", type=int, default=min(2, os.cpu_count() or 1),
                        help="training processes (paddle.distributed.launch when > 1)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: tiny corpus and a few iterations (numbers meaningless)")
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------------ helpers

def prepare_out(out):
    """Use ``out`` if empty or a previous demo's folder (replaced); refuse anything else."""
    from ppgan.utils.errors import ConfigError

    if os.path.isdir(out) and os.listdir(out):
        if not os.path.isfile(os.path.join(out, MARKER)):
            raise ConfigError(f"--out {out} is not empty and holds no earlier demo run: choose "
                              f"another folder")
        shutil.rmtree(out)
    os.makedirs(out)
    with open(os.path.join(out, MARKER), "w") as f:
        json.dump({"started": time.strftime("%Y-%m-%d %H:%M:%S")}, f)


def run_tool(stage, tool_args, nproc, log_dir):
    """Run ``tools/main.py`` (under paddle.distributed.launch when ``nproc`` > 1)."""
    from ppgan.utils.errors import TrainingError

    main = os.path.join(ROOT, "tools", "main.py")
    if nproc > 1:
        cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", str(nproc),
               "--log_dir", log_dir, main, *tool_args]
    else:
        cmd = [sys.executable, main, *tool_args]
    print(f"\n== {stage}: {' '.join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd)}",
          flush=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    code = subprocess.call(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
    if code != 0:
        where = f" (per-rank logs in {log_dir})" if nproc > 1 else ""
        raise TrainingError(f"{stage} failed with exit code {code}{where}")


def corpus_overrides(corpus, extra=()):
    return ["dataset.train.dataroot=" + corpus, "dataset.test.dataroot=" + corpus, *extra]


def schedule(iterations, evaluations):
    """Overrides for a run of ``iterations`` steps, evaluated and checkpointed (keeping the best)
    every ``iterations // evaluations`` steps, so ``best.pdparams`` always exists."""
    interval = max(1, iterations // evaluations)
    return [f"total_iters={iterations}", f"validate.interval={interval}",
            f"snapshot_config.interval={interval}"]


def read_keys(corpus, split):
    from ppgan.datasets.lrs2 import read_filelist

    return read_filelist(os.path.join(corpus, f"{split}.txt"))


def save_grid(path, face_clip, result_video, audio_clip, columns=6):
    """PNG grid: the input face (top), the generated frames (middle) and the frames of the
    speaker whose audio drives them (bottom: the mouth shapes to aim for), at the same times."""
    import numpy as np

    from ppgan.apps.evaluate import iter_clip_frames
    from ppgan.engine.hooks import make_grid, write_png

    generated = list(iter_clip_frames(result_video)[0])
    source = list(iter_clip_frames(face_clip)[0])
    target = list(iter_clip_frames(audio_clip)[0])
    count = min(len(generated), len(source), len(target))
    picks = np.linspace(0, count - 1, columns).astype(int)

    def strip(frames):  # (1, 3, T, H, W) BGR in [0, 1]
        return np.stack([frames[i] for i in picks]).transpose(3, 0, 1, 2)[None] / 255.0

    write_png(path, make_grid({"input": strip(source), "generated": strip(generated),
                               "audio speaker": strip(target)}))
    return [int(i) for i in picks]


def summary_markdown(summary):
    from ppgan.metrics.report import ORACLE_COLUMNS, ORACLE_TITLE, format_value, markdown_table

    lines = ["## Demo summary", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {name} | {seconds:.0f} |" for name, seconds in summary["seconds"].items()]
    lines += [f"| **total** | **{sum(summary['seconds'].values()):.0f}** |", ""]
    acc = summary["expert_accuracy"]
    lines.append(f"- expert accuracy on held-out clips: {acc:.1%} (target >= {EXPERT_TARGET:.0%}: "
                 f"{'met' if acc >= EXPERT_TARGET else 'NOT met'})")
    if summary.get("expert_pair_accuracy") is not None:
        lines.append(f"- expert accuracy on held-out in-sync / off-sync window pairs: "
                     f"{summary['expert_pair_accuracy']:.1%}")
    gap = summary["lipsync_gap"]
    if gap:
        lines.append(f"- generated LSE-D {gap['generated']:.3f}: ground truth {gap['ground_truth']:.3f},"
                     f" shuffled-audio floor {gap['floor']:.3f} -> closer to ground truth: "
                     f"{'yes' if gap['closer_to_ground_truth'] else 'NO'}")
    lines.append(f"- reconstruction PSNR {summary['psnr']:.2f} dB, SSIM {summary['ssim']:.4f}")
    oracle = summary.get("oracle")
    if oracle:
        lines.append(f"- against the oracle (dubbed test clips): lower-half PSNR "
                     f"{oracle['lower_psnr']:.2f} dB (input unchanged {oracle['floor_lower_psnr']:.2f}, "
                     f"oracle through the codec {oracle['ceiling_lower_psnr']:.2f}), mouth-opening "
                     f"correlation {format_value(oracle['opening_corr'], '{:.3f}')}")
    lines += ["", markdown_table(summary["lipsync_rows"], title="Lip sync (test faces, other clips' audio)"),
              markdown_table(summary["reconstruction_rows"], title="Reconstruction (own audio)")]
    if summary.get("oracle_rows"):
        lines.append(markdown_table(summary["oracle_rows"], title=ORACLE_TITLE, columns=ORACLE_COLUMNS))
    lines.append("Outputs:")
    lines += [f"- {name}: {path}" for name, path in summary["outputs"].items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------- the demo

def main(argv=None):
    args = parse_args(argv)
    splits = (0.7, 0.15, 0.15)
    if args.quick:
        args.speakers, args.clips, args.min_frames, args.max_frames = 2, 4, 30, 36
        splits = (0.5, 0.25, 0.25)  # two test clips: each face is driven by the other's audio
        args.expert_iters, args.generator_iters, args.hq_iters = 4, 3, 2
    out = os.path.abspath(args.out)
    prepare_out(out)
    seconds = {}
    clock = time.perf_counter()

    def lap(name):
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = now - clock
        clock = now

    # 1. corpus
    from ppgan.datasets.synthetic import make_synthetic_corpus
    corpus = os.path.join(out, "corpus")
    print("== corpus", flush=True)
    info = make_synthetic_corpus(corpus, speakers=args.speakers, clips=args.clips, seed=args.seed,
                                 min_frames=args.min_frames, max_frames=args.max_frames,
                                 splits=splits)
    print(f"   {info['clips']} clips, {info['seconds']:.0f} s of video, splits {info['splits']}")
    lap("corpus")

    # 2. expert
    expert_dir = os.path.join(out, "syncnet")
    small = ["dataset.train.batch_size=2", "dataset.test.batch_size=2",
             "validate.max_eval_steps=2"] if args.quick else []
    # The expert's learning rate decays to 0 over exactly the iterations run.
    expert_opts = corpus_overrides(corpus, small + schedule(args.expert_iters, evaluations=2)
                                   + [f"lr_scheduler.T_max={args.expert_iters}"])
    run_tool("expert training", ["-c", "configs/demo/syncnet.yaml", "--output-dir", expert_dir,
                                 "-o", *expert_opts], args.nproc, os.path.join(out, "logs", "syncnet"))
    expert_weights = os.path.join(expert_dir, "best.pdparams")
    lap("expert training")

    # 3. expert accuracy on the held-out test clips
    expert_eval = os.path.join(out, "syncnet_test")
    run_tool("expert accuracy on held-out clips",
             ["-c", "configs/demo/syncnet.yaml", "--evaluate-only", "--load", expert_weights,
              "--output-dir", expert_eval, "-o",
              *corpus_overrides(corpus, small + ["dataset.test.filelist=test"])],
             1, os.path.join(out, "logs", "syncnet_test"))
    with open(os.path.join(expert_eval, "eval_metrics.json")) as f:
        expert_accuracy = float(json.load(f)["metrics"]["accuracy"])
    lap("expert evaluation")

    # 4. generator, 5. HQ generator (a few iterations)
    generator_dir = os.path.join(out, "wav2lip")
    # Kaiming init: in a short CPU run the generator learns to reconstruct faces several times
    # faster than from N(0, 0.02) weights (L1 0.12 against 0.20 after 120 steps).
    gen_opts = corpus_overrides(corpus, small + ["model.syncnet_weights=" + expert_weights,
                                                 "model.init_type=kaiming",
                                                 *schedule(args.generator_iters, evaluations=5)])
    run_tool("generator training", ["-c", "configs/demo/wav2lip.yaml", "--output-dir", generator_dir,
                                    "-o", *gen_opts], args.nproc, os.path.join(out, "logs", "wav2lip"))
    lap("generator training")
    hq_dir = os.path.join(out, "wav2lip_hq")
    hq_opts = corpus_overrides(corpus, small + ["model.syncnet_weights=" + expert_weights,
                                                *schedule(args.hq_iters, evaluations=1)])
    run_tool("HQ generator training", ["-c", "configs/demo/wav2lip_hq.yaml", "--output-dir", hq_dir,
                                       "-o", *hq_opts], args.nproc, os.path.join(out, "logs", "wav2lip_hq"))
    lap("HQ generator training")

    # 6. evaluation of the plain generator on the held-out clips
    from ppgan.apps.evaluate import evaluate_generator_on_split, trained_mel_frame_offset
    from ppgan.apps.generator_loader import load_generator
    from ppgan.metrics.lse import ExpertScorer, load_expert
    from ppgan.utils.config import load_config

    generator_weights = os.path.join(generator_dir, "best.pdparams")
    generator = load_generator(generator_weights)
    # Generate with the audio alignment the generator was trained with (the run's saved config).
    mel_frame_offset = trained_mel_frame_offset(load_config(os.path.join(generator_dir,
                                                                         "config.yaml")))
    scorer = ExpertScorer(load_expert(expert_weights))
    test_keys = read_keys(corpus, "test")
    print("\n== evaluation", flush=True)
    evaluation = evaluate_generator_on_split(generator, corpus, test_keys,
                                             os.path.join(out, "evaluation"), scorer,
                                             max_clips=args.eval_clips,
                                             predictor_options={"mel_frame_offset":
                                                                mel_frame_offset})
    lap("evaluation")

    # 7. inference: a held-out face driven by another held-out clip's audio
    from ppgan.apps.wav2lip_predictor import Wav2LipPredictor

    face_key, audio_key = test_keys[0], test_keys[1 % len(test_keys)]
    face_video = os.path.join(out, "evaluation", "sources", face_key + ".mp4")
    audio_path = os.path.join(corpus, audio_key, "audio.wav")
    result_path = os.path.join(out, "result.mp4")
    print(f"\n== inference: face {face_key} driven by the audio of {audio_key}", flush=True)
    predictor = Wav2LipPredictor(generator=generator, box=(0, -1, 0, -1), pads=(0, 0, 0, 0),
                                 mel_frame_offset=mel_frame_offset)
    result = predictor.run(face_video, audio_path, result_path)
    grid_path = os.path.join(out, "grid.png")
    save_grid(grid_path, face_video, result_path, os.path.join(corpus, audio_key))
    lap("inference")

    lipsync_rows = evaluation["lipsync"]["rows"]
    summary = {
        "seconds": seconds,
        "expert_accuracy": expert_accuracy,
        "expert_pair_accuracy": lipsync_rows[0].get("sync_accuracy"),
        "lipsync_gap": evaluation["summary"]["lipsync"],
        "psnr": evaluation["summary"]["psnr"], "ssim": evaluation["summary"]["ssim"],
        "oracle": evaluation["summary"]["oracle"],
        "lipsync_rows": lipsync_rows,
        "oracle_rows": evaluation["oracle"]["rows"] if evaluation["oracle"] else None,
        "reconstruction_rows": evaluation["reconstruction"]["rows"],
        "inference": {"face": face_key, "audio": audio_key, "frames": result.frames},
        "outputs": {"result video": result_path, "image grid": grid_path,
                    "expert": expert_weights, "generator": generator_weights,
                    "HQ generator": os.path.join(hq_dir, "best.pdparams"),
                    "lip-sync report": evaluation["lipsync"]["paths"]["markdown"],
                    "reconstruction report": evaluation["reconstruction"]["paths"]["markdown"]},
        "settings": vars(args),
    }
    text = summary_markdown(summary)
    from ppgan.metrics.report import json_safe, write_text_atomic
    write_text_atomic(os.path.join(out, "summary.md"), text)
    write_text_atomic(os.path.join(out, "summary.json"),
                       json.dumps(json_safe(summary), indent=2) + "\n")
    print("\n" + text)
    return 0


if __name__ == "__main__":
    run_main(main)
