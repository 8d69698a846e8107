"""The whole pipeline on the built-in synthetic corpus, with no downloads (the README's first command).

    python tools/demo.py --out output/demo          # what `make demo` runs

Stages, each a real tool or library call:
  1. synthetic talking-face corpus          (ppgan.corpus_tools.synthetic, as tools/make_synthetic_data.py)
  2. lip-sync expert training               (tools/main.py -c configs/demo/syncnet.yaml)
  3. expert accuracy on held-out clips      (tools/main.py --evaluate-only on the test split)
     independent judge: a second expert      (tools/main.py -c configs/demo/syncnet_judge.yaml:
                                             another seed and width, never seen by the generator)
  4. generator training                     (tools/main.py -c configs/demo/wav2lip.yaml)
  5. HQ generator, a few iterations         (tools/main.py -c configs/demo/wav2lip_hq.yaml)
  6. evaluation of the generator            (ppgan.apps.evaluate: LSE-D / LSE-C beside ground truth
                                             and the shuffled-audio floor, PSNR / SSIM, the oracle
                                             rows; LSE again by the independent judge)
  7. full frame: a held-out clip's face moving in a larger scene, found by face detection and
     driven by another clip's audio, as a video and as a still image (Wav2LipPredictor, the
     predictor of tools/wav2lip.py); scored against the oracle drawn into the same scene
Writes <out>/result_video.mp4, <out>/result_still.mp4, <out>/grid.png (input / generated / oracle
face crops), <out>/summary.md and <out>/summary.json and prints the summary. Training runs in 2 data-parallel processes when the machine has 2 cores or more.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from ppgan.utils.cli import run_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

JUDGE_CONFIG = "configs/demo/syncnet_judge.yaml"
MARKER = "demo.json"  # written into --out so a later demo run knows the folder is its own


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="output/demo", help="output folder (default: %(default)s)")
    parser.add_argument("--speakers", type=int, default=6)
    parser.add_argument("--clips", type=int, default=16,
                        help="clips per speaker (16: the expert generalises to held-out clips; 8 leaves it near 87 %%)")
    parser.add_argument("--min-frames", type=int, default=50)
    parser.add_argument("--max-frames", type=int, default=75)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--expert-iters", type=int, default=1500,
                        help="expert iterations (per-process batch from configs/demo/syncnet.yaml)")
    parser.add_argument("--judge-iters", type=int, default=500,
                        help="independent judge iterations (configs/demo/syncnet_judge.yaml)")
    parser.add_argument("--generator-iters", type=int, default=1300,
                        help="generator iterations (per-process batch from configs/demo/wav2lip.yaml)")
    parser.add_argument("--hq-iters", type=int, default=10, help="HQ generator iterations")
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


def train_expert(stage, config, run_dir, iterations, corpus, small, nproc, log_dir):
    """Train a lip-sync expert whose learning rate decays to 0 over exactly ``iterations``;
    returns its best checkpoint."""
    opts = corpus_overrides(corpus, small + schedule(iterations, evaluations=2)
                            + [f"lr_scheduler.T_max={iterations}"])
    run_tool(stage, ["-c", config, "--output-dir", run_dir, "-o", *opts], nproc, log_dir)
    return os.path.join(run_dir, "best.pdparams")


def held_out_accuracy(stage, config, weights, run_dir, corpus, small, log_dir):
    """An expert's sync accuracy on the corpus's test split (tools/main.py --evaluate-only)."""
    run_tool(stage, ["-c", config, "--evaluate-only", "--load", weights, "--output-dir", run_dir,
                     "-o", *corpus_overrides(corpus, small + ["dataset.test.filelist=test"])],
             1, log_dir)
    from ppgan.engine.run import evaluation_folder

    with open(os.path.join(evaluation_folder(run_dir, weights), "eval_metrics.json")) as f:
        return float(json.load(f)["metrics"]["accuracy"])


def corpus_overrides(corpus, extra=()):
    return ["dataset.train.dataroot=" + corpus, "dataset.test.dataroot=" + corpus, *extra]


def schedule(iterations, evaluations):
    """Overrides for a run of ``iterations`` steps, evaluated and checkpointed (keeping the best)
    every ``iterations // evaluations`` steps, so ``best.pdparams`` always exists."""
    interval = max(1, iterations // evaluations)
    return [f"total_iters={iterations}", f"validate.interval={interval}",
            f"snapshot_config.interval={interval}"]


def decay_schedule(iterations, decay_share=0.4):
    """LinearDecay overrides: the full rate, then linear to 0 over the last ``decay_share`` of the run."""
    decay = max(1, round(iterations * decay_share))
    return [f"lr_scheduler.start_iter={iterations - decay}", f"lr_scheduler.decay_iters={decay}"]


def read_keys(corpus, split):
    from ppgan.datasets.corpus import read_filelist

    return read_filelist(os.path.join(corpus, f"{split}.txt"))


def save_grid(path, rows, columns=6):
    """PNG grid of face crops: one row per named (T, S, S, 3) BGR sequence, ``columns`` evenly
    spaced frames each (the same frame indices in every row); returns those indices."""
    import numpy as np

    from ppgan.engine.hooks import make_grid, write_png

    count = min(len(frames) for frames in rows.values())
    picks = np.linspace(0, count - 1, columns).astype(int)

    def strip(frames):  # (1, 3, T, H, W) BGR in [0, 1]
        return np.stack([frames[i] for i in picks]).transpose(3, 0, 1, 2)[None] / 255.0

    write_png(path, make_grid({name: strip(frames) for name, frames in rows.items()}))
    return [int(i) for i in picks]


def full_frame_results(out, corpus, test_keys, generator_weights, mel_frame_offset, seed):
    """The CLI path on full frames: a held-out clip's face drifting inside a scene, found by face
    detection and lip-synced to the next test clip's audio, once as a video and once as a still
    image. Scored against the oracle at the known face boxes; writes result_video.mp4,
    result_still.mp4 and grid.png (input / generated / oracle rows).

    Returns:
        dict: face, audio, detector, video / still (oracle numbers and predictor counts), paths.
    """
    from ppgan.apps.evaluate import dubbing_pairs
    from ppgan.apps.full_frame import face_detected, score_scene_result, write_scene_inputs
    from ppgan.apps.wav2lip_predictor import Wav2LipPredictor
    from ppgan.corpus_tools.oracle import dub_source_indices, load_clip_plan, source_frames

    folder = os.path.join(out, "full_frame")
    # Haar finds some drawn speakers and not others: take the first test face it finds.
    best = None
    for face_key, audio_key in dubbing_pairs(test_keys):
        inputs = write_scene_inputs(corpus, face_key, folder, seed=seed)
        rate = face_detected(inputs["video"])
        if best is None or rate > best[0]:
            best = (rate, face_key, audio_key, inputs)
        if rate >= 0.8:
            break
    rate, face_key, audio_key, inputs = best
    if rate < 0.8:  # re-render the best candidate (the loop may have overwritten it)
        inputs = write_scene_inputs(corpus, face_key, folder, seed=seed)
    detector = "haar" if rate > 0 else "fixed box (Haar finds no test face)"
    top, bottom, left, right = (int(v) for v in inputs["boxes"][0])
    options = dict(checkpoint_path=generator_weights, mel_frame_offset=mel_frame_offset,
                   pads=(0, 0, 0, 0),  # the corpus's crops are the faces' boxes, unpadded
                   progress=False)
    if rate == 0:
        options["box"] = (top, bottom, left, right)
    audio = os.path.join(corpus, audio_key, "audio.wav")
    print(f"\n== full frame: face {face_key} in a scene ({detector}), audio of {audio_key}", flush=True)
    paths = {"video": os.path.join(out, "result_video.mp4"),
             "still": os.path.join(out, "result_still.mp4")}
    results, scores = {}, {}
    for kind, source in (("video", inputs["video"]), ("still", inputs["still"])):
        results[kind] = Wav2LipPredictor(**options).run(source, audio, paths[kind])
        scores[kind] = score_scene_result(paths[kind], corpus, face_key, audio_key, inputs["boxes"],
                                          still=kind == "still")
    sources = dub_source_indices(scores["video"]["frames"], len(inputs["boxes"]))
    grid_rows = {
        "input": source_frames(load_clip_plan(os.path.join(corpus, face_key)), len(sources)),
        "generated (video)": scores["video"]["generated"],
        "oracle (video)": scores["video"]["oracle"],
        "generated (still)": scores["still"]["generated"],
        "oracle (still)": scores["still"]["oracle"]}
    grid = save_grid(os.path.join(out, "grid.png"), grid_rows)
    summary = {"face": face_key, "audio": audio_key, "detector": detector,
               "grid_rows": list(grid_rows), "grid_frames": grid,
               "paths": {"input_video": inputs["video"], "input_still": inputs["still"], **paths}}
    for kind in ("video", "still"):
        numbers = {k: scores[kind][k] for k in ("lower_psnr", "lower_ssim", "opening_corr", "frames")}
        numbers.update(faces_detected=results[kind].faces_detected,
                       faces_interpolated=results[kind].faces_interpolated,
                       frames_kept=results[kind].frames_kept)
        summary[kind] = numbers
    return summary


# ---------------------------------------------------------------------------------- the demo

def main(argv=None):
    args = parse_args(argv)
    splits = (0.7, 0.15, 0.15)
    if args.quick:
        args.speakers, args.clips, args.min_frames, args.max_frames = 2, 4, 30, 36
        splits = (0.5, 0.25, 0.25)  # two test clips: each face is driven by the other's audio
        args.expert_iters, args.generator_iters, args.hq_iters, args.judge_iters = 4, 3, 2, 4
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
    from ppgan.corpus_tools.synthetic import make_synthetic_corpus
    corpus = os.path.join(out, "corpus")
    print("== corpus", flush=True)
    info = make_synthetic_corpus(corpus, speakers=args.speakers, clips=args.clips, seed=args.seed,
                                 min_frames=args.min_frames, max_frames=args.max_frames,
                                 splits=splits)
    print(f"   {info['clips']} clips, {info['seconds']:.0f} s of video, splits {info['splits']}")
    lap("corpus")

    # 2. expert, 3. its accuracy on the held-out test clips
    small = ["dataset.train.batch_size=2", "dataset.test.batch_size=2",
             "validate.max_eval_steps=2"] if args.quick else []
    expert_dir = os.path.join(out, "syncnet")
    expert_weights = train_expert("expert training", "configs/demo/syncnet.yaml", expert_dir,
                                  args.expert_iters, corpus, small, args.nproc,
                                  os.path.join(out, "logs", "syncnet"))
    lap("expert training")
    expert_accuracy = held_out_accuracy("expert accuracy on held-out clips",
                                        "configs/demo/syncnet.yaml", expert_weights,
                                        os.path.join(out, "syncnet_test"), corpus, small,
                                        os.path.join(out, "logs", "syncnet_test"))
    lap("expert evaluation")

    # the independent judge: trained on the same split, never seen by the generator
    judge_dir = os.path.join(out, "judge")
    judge_weights = train_expert("judge training", JUDGE_CONFIG, judge_dir, args.judge_iters,
                                 corpus, small, args.nproc, os.path.join(out, "logs", "judge"))
    judge_accuracy = held_out_accuracy("judge accuracy on held-out clips", JUDGE_CONFIG,
                                       judge_weights, os.path.join(out, "judge_test"), corpus,
                                       small, os.path.join(out, "logs", "judge_test"))
    lap("judge training")

    # 4. generator, 5. HQ generator (a few iterations)
    generator_dir = os.path.join(out, "wav2lip")
    # Kaiming init: in a short CPU run the generator learns to reconstruct faces several times
    # faster than from N(0, 0.02) weights (L1 0.12 against 0.20 after 120 steps).
    gen_opts = corpus_overrides(corpus, small + ["model.syncnet_weights=" + expert_weights,
                                                 "model.init_type=kaiming",
                                                 *schedule(args.generator_iters, evaluations=2),
                                                 *decay_schedule(args.generator_iters)])
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
    from ppgan.apps.evaluate import evaluate_generator_on_split, evaluate_videos
    from ppgan.apps.generator_loader import load_generator
    from ppgan.metrics.lse import ExpertScorer
    from ppgan.models.lse_scorers import load_expert

    generator_weights = os.path.join(generator_dir, "best.pdparams")
    generator = load_generator(generator_weights)
    # The audio alignment the generator was trained with, as its checkpoint's spec says (the
    # predictor would take it from there too; named here for the log).
    mel_frame_offset = generator.spec["mel_frame_offset"]
    scorer = ExpertScorer(load_expert(expert_weights))
    test_keys = read_keys(corpus, "test")
    print("\n== evaluation", flush=True)
    evaluation = evaluate_generator_on_split(generator, corpus, test_keys,
                                             os.path.join(out, "evaluation"), scorer,
                                             max_clips=args.eval_clips,
                                             predictor_options={"mel_frame_offset":
                                                                mel_frame_offset})
    lap("evaluation")
    print("\n== lip sync by the independent judge", flush=True)
    judged = evaluate_videos(os.path.join(out, "evaluation", "dubbed"), corpus,
                             scorer=ExpertScorer(load_expert(judge_weights)),
                             out_dir=os.path.join(out, "evaluation"), image_metrics=False,
                             stem="lipsync_judge", progress=False,
                             title="Lip sync by the independent judge (test faces, other clips' audio)")
    lap("judge scoring")

    # 7. the CLI path on full frames: face detection, a video and a still image
    full_frame = full_frame_results(out, corpus, test_keys, generator_weights, mel_frame_offset,
                                    args.seed)
    lap("full-frame inference")

    lipsync_rows = evaluation["lipsync"]["rows"]
    from ppgan.apps.demo_summary import evaluate_targets, judge_summary, summary_markdown

    summary = {
        "seconds": seconds,
        "total_seconds": sum(seconds.values()),
        "expert_accuracy": expert_accuracy,
        "expert_pair_accuracy": lipsync_rows[0].get("sync_accuracy"),
        "lipsync_gap": evaluation["summary"]["lipsync"],
        "psnr": evaluation["summary"]["psnr"], "ssim": evaluation["summary"]["ssim"],
        "oracle": evaluation["summary"]["oracle"],
        "judge": judge_summary(judged["rows"], judge_accuracy),
        "lipsync_rows": lipsync_rows,
        "judge_rows": judged["rows"],
        "oracle_rows": evaluation["oracle"]["rows"] if evaluation["oracle"] else None,
        "reconstruction_rows": evaluation["reconstruction"]["rows"],
        "full_frame": {k: v for k, v in full_frame.items() if k != "paths"},
        "outputs": {"result_video": full_frame["paths"]["video"],
                    "result_still": full_frame["paths"]["still"],
                    "image grid": os.path.join(out, "grid.png"),
                    "input video": full_frame["paths"]["input_video"],
                    "input still": full_frame["paths"]["input_still"],
                    "expert": expert_weights, "generator": generator_weights,
                    "HQ generator": os.path.join(hq_dir, "best.pdparams"),
                    "judge": judge_weights,
                    "lip-sync report": evaluation["lipsync"]["paths"]["markdown"],
                    "judge's lip-sync report": judged["paths"]["markdown"],
                    "reconstruction report": evaluation["reconstruction"]["paths"]["markdown"]},
        "settings": vars(args),
    }
    summary["targets"] = evaluate_targets(summary)
    summary["targets_met"] = all(t["met"] for t in summary["targets"].values())
    text = summary_markdown(summary)
    from ppgan.metrics.report import json_safe, write_text_atomic
    write_text_atomic(os.path.join(out, "summary.md"), text)
    write_text_atomic(os.path.join(out, "summary.json"),
                       json.dumps(json_safe(summary), indent=2) + "\n")
    print("\n" + text)
    return 0


if __name__ == "__main__":
    run_main(main)
