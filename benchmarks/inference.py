"""Benchmark: end-to-end lip-sync speed and memory of ``Wav2LipPredictor`` on 720p clips.

    .venv/bin/python -m benchmarks.inference > inference.json         # about 10 minutes on 2 cores
    .venv/bin/python -m benchmarks.inference --durations 4 --no-generator-speed   # quick look

For each duration it writes a 1280x720 25 fps clip - skimage's astronaut photograph (640 px, so
the face is about 120 px) drifting slowly over a gradient, so the default Haar detector has a
real face to find and track - plus synthetic speech of the same length. A random full-size
generator is exported once (what ``tools/export_model.py`` does) and each clip is lip-synced in a
fresh process with the default settings, so its peak RSS is that run's alone. Reported per clip:
real-time factor (processing seconds / video seconds), seconds per stage (decode, detect,
generate, blend, encode), process CPU seconds per video second (less sensitive to other jobs
on the machine: at most 2.0 on 2 cores is what real time needs), peak RSS, and the one-off setup
(librosa's lazy imports, loading the program), which the factor leaves out and
``real_time_factor_with_setup`` includes.
Then the generator alone, frames/s: the exported program (what the predictor runs) next to the
same-topology PyTorch model at the same batch and threads (``benchmarks/networks.py`` workers).
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import types

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FPS = 25
FRAME_SIZE = (720, 1280)  # height, width
FACE_SIDE = 640


def write_clip(path, seconds):
    """The drifting-astronaut 720p clip (streamed to the encoder, never held whole)."""
    import cv2
    import numpy as np
    from skimage import data
    from ppgan.utils.video import VideoWriter

    face = cv2.resize(np.ascontiguousarray(data.astronaut()[:, :, ::-1]), (FACE_SIDE, FACE_SIDE),
                      interpolation=cv2.INTER_AREA)
    height, width = FRAME_SIZE
    ramp = np.linspace(40, 200, width, dtype=np.float32)
    background = np.broadcast_to(np.stack([ramp, ramp[::-1], np.full_like(ramp, 120)], -1),
                                 (height, width, 3)).astype(np.uint8)
    with VideoWriter(path, FPS) as writer:
        for i in range(int(seconds * FPS)):
            t = i / FPS
            x = int(320 + 40 * np.sin(0.8 * t))
            y = int(40 + 20 * np.sin(0.5 * t))
            frame = background.copy()
            frame[y:y + FACE_SIDE, x:x + FACE_SIDE] = face[:height - y]
            writer.write(frame)


def write_speech(path, seconds):
    """Formant-synthesised speech (the synthetic corpus' voice) as a 16 kHz wav."""
    import numpy as np
    from ppgan.corpus_tools.synthetic_faces import synthesize_clip
    from ppgan.corpus_tools.synthetic_voice import random_speaker
    from ppgan.utils.audio import save_wav

    rng = np.random.default_rng(0)
    _, wav, _ = synthesize_clip(rng, random_speaker(rng), int(seconds * FPS), img_size=16)
    save_wav(path, wav)


def worker(face, audio, checkpoint, batch):
    """Run one lip-sync in this process and print its figures as JSON."""
    import numpy as np
    from ppgan.apps import Wav2LipPredictor
    from ppgan.utils.audio import melspectrogram

    started = time.perf_counter()
    melspectrogram(np.zeros(16000, np.float32))  # librosa's lazy imports: seconds, once per process
    warmed = time.perf_counter()
    predictor = Wav2LipPredictor(checkpoint_path=checkpoint, wav2lip_batch_size=batch, progress=False)
    loaded = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_SELF)
    result = predictor.run(face, audio, os.path.join(os.path.dirname(face), "out.mp4"))
    finished = time.perf_counter()
    after = resource.getrusage(resource.RUSAGE_SELF)
    video_seconds = result.frames / result.fps
    cpu_seconds = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    print(json.dumps({
        "frames": result.frames, "video_seconds": round(video_seconds, 2),
        "setup_seconds": {"librosa_import": round(warmed - started, 2),
                          "load_program": round(loaded - warmed, 2)},
        "run_seconds": round(finished - loaded, 2),
        "real_time_factor": round((finished - loaded) / video_seconds, 3),
        "real_time_factor_with_setup": round((finished - started) / video_seconds, 3),
        "cpu_seconds_per_video_second": round(cpu_seconds / video_seconds, 2),
        "stage_seconds": {k: round(v, 2) for k, v in result.seconds.items()},
        "faces_detected": result.faces_detected, "faces_interpolated": result.faces_interpolated,
        "frames_kept": result.frames_kept,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


def run_clip(folder, seconds, checkpoint, batch):
    face, audio = os.path.join(folder, f"face_{seconds}s.mp4"), os.path.join(folder, f"speech_{seconds}s.wav")
    write_clip(face, seconds)
    write_speech(audio, seconds)
    command = [sys.executable, "-m", "benchmarks.inference", "--worker", face, audio, checkpoint,
               "--batch", str(batch)]
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"inference worker failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]), clip_seconds=seconds)


def generator_speed(prefix, batches, threads, min_seconds):
    """Generator frames/s: exported program vs PyTorch, each in its own worker process."""
    from benchmarks.networks import ratios, run_worker

    args = types.SimpleNamespace(batches=sorted(set(batches)), min_seconds=min_seconds)
    rows = run_worker("inference", threads, args, prefix) + run_worker("torch", threads, args, prefix)
    return {"rows": rows, "ratios": ratios(rows)}


def main():
    parser = argparse.ArgumentParser(description="Wav2LipPredictor end-to-end speed and memory")
    parser.add_argument("--durations", type=float, nargs="+", default=[10, 60])
    parser.add_argument("--batch", type=int, default=32, help="wav2lip_batch_size (CLI default)")
    parser.add_argument("--no-generator-speed", action="store_true")
    parser.add_argument("--worker", nargs=3, metavar=("FACE", "AUDIO", "CHECKPOINT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker, batch=args.batch)
        return
    from benchmarks.networks import export_random_generator

    report = {"benchmark": "inference", "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "clip": f"{FRAME_SIZE[1]}x{FRAME_SIZE[0]} {FPS} fps, haar detector, feather blend",
              "wav2lip_batch_size": args.batch, "runs": []}
    with tempfile.TemporaryDirectory() as folder:
        prefix = os.path.join(folder, "wav2lip")
        export_random_generator(prefix)
        for seconds in args.durations:
            report["runs"].append(run_clip(folder, seconds, prefix + ".json", args.batch))
            print(f"done: {seconds} s clip", file=sys.stderr)
        if len(report["runs"]) >= 2:
            first, last = report["runs"][0], report["runs"][-1]
            report["peak_rss_ratio_longest_vs_shortest"] = round(last["peak_rss_mib"] / first["peak_rss_mib"], 3)
        if not args.no_generator_speed:
            report["generator_frames_per_s"] = generator_speed(prefix, [args.batch, 128],
                                                               os.cpu_count() or 1, 3.0)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
