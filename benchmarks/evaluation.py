"""Speed of the lip-sync evaluation: LSE embedding models and MFCC, next to PyTorch.

    python -m benchmarks.evaluation [--repeats 3]

Prints one JSON object. For each embedding model it times the forward passes the protocol runs
for one window (5 frames + 0.2 s of audio), in windows per second, with Paddle (dynamic graph)
and a same-topology PyTorch model in the same run, at 1 and 2 threads:
- ``syncnet_v2``: the original SyncNet v2 (224 px, 3-D conv lip stream), batch 20 as the reference;
- ``expert``: our SyncNetColor at full width and at the demo width (0.25), batch 64.
Paddle runs both ways the scorers can: the dynamic graph and the exported inference program with
oneDNN (``engine="static"``, what the evaluation uses on CPU). It also times the numpy MFCC (python_speech_features semantics) on 60 s of audio and a whole
``evaluate_videos`` run over synthetic clips, as seconds per minute of video.
"""

import argparse
import json
import os
import tempfile
import time

import numpy as np


def torch_syncnet_v2():
    """The published SyncNetModel topology in PyTorch (layer list of joonson/syncnet_python)."""
    import torch.nn as tnn

    def conv2d(cin, cout, kernel, padding=0):
        return [tnn.Conv2d(cin, cout, kernel, padding=padding), tnn.BatchNorm2d(cout), tnn.ReLU()]

    def conv3d(cin, cout, kernel, stride=1, padding=0):
        return [tnn.Conv3d(cin, cout, kernel, stride=stride, padding=padding),
                tnn.BatchNorm3d(cout), tnn.ReLU()]

    class SyncNetV2Torch(tnn.Module):
        def __init__(self):
            super().__init__()
            self.netcnnaud = tnn.Sequential(
                *conv2d(1, 64, 3, 1), tnn.MaxPool2d(1, 1), *conv2d(64, 192, 3, 1),
                tnn.MaxPool2d(3, (1, 2)), *conv2d(192, 384, 3, 1), *conv2d(384, 256, 3, 1),
                *conv2d(256, 256, 3, 1), tnn.MaxPool2d(3, 2), *conv2d(256, 512, (5, 4)))
            self.netfcaud = tnn.Sequential(tnn.Linear(512, 512), tnn.BatchNorm1d(512), tnn.ReLU(),
                                           tnn.Linear(512, 1024))
            self.netfclip = tnn.Sequential(tnn.Linear(512, 512), tnn.BatchNorm1d(512), tnn.ReLU(),
                                           tnn.Linear(512, 1024))
            self.netcnnlip = tnn.Sequential(
                *conv3d(3, 96, (5, 7, 7), (1, 2, 2)), tnn.MaxPool3d((1, 3, 3), (1, 2, 2)),
                *conv3d(96, 256, (1, 5, 5), (1, 2, 2), (0, 1, 1)),
                tnn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
                *conv3d(256, 256, (1, 3, 3), 1, (0, 1, 1)),
                *conv3d(256, 256, (1, 3, 3), 1, (0, 1, 1)),
                *conv3d(256, 256, (1, 3, 3), 1, (0, 1, 1)), tnn.MaxPool3d((1, 3, 3), (1, 2, 2)),
                *conv3d(256, 512, (1, 6, 6)))

        def forward_aud(self, x):
            return self.netfcaud(self.netcnnaud(x).flatten(1))

        def forward_lip(self, x):
            return self.netfclip(self.netcnnlip(x).flatten(1))

    return SyncNetV2Torch()


def _time(fn, repeats):
    fn()  # warm-up (allocations, kernel selection)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _set_threads(threads):
    import paddle
    import torch

    paddle.base.core.set_num_threads(threads)
    torch.set_num_threads(threads)


def _compare(paddle_runs, torch_run, batch, repeats):
    """windows/s of each Paddle engine and of torch, and time ratios against torch."""
    th = _time(torch_run, repeats)
    result = {"torch_windows_per_s": batch / th}
    for engine, run in paddle_runs.items():
        pd = _time(run, repeats)
        result[f"paddle_{engine}_windows_per_s"] = batch / pd
        result[f"paddle_{engine}_over_torch_time"] = pd / th
    return result


def bench_syncnet_v2(threads, repeats, batch=20):
    import torch
    from ppgan.metrics.syncnet_v2 import SyncNetV2, SyncNetV2Scorer

    _set_threads(threads)
    rng = np.random.default_rng(0)
    lips = rng.uniform(0, 255, (batch, 3, 5, 224, 224)).astype(np.float32)
    mfccs = rng.normal(size=(batch, 1, 13, 20)).astype(np.float32)
    net, ref = SyncNetV2(), torch_syncnet_v2()
    ref.eval()
    runs = {}
    for engine in ("dynamic", "static"):
        scorer = SyncNetV2Scorer(net, batch_size=batch, engine=engine, threads=threads)
        runs[engine] = lambda s=scorer: (s.embed_lips(lips), s.embed_audio(mfccs))

    def torch_run():
        with torch.no_grad():
            ref.forward_lip(torch.from_numpy(lips))
            ref.forward_aud(torch.from_numpy(mfccs))

    return _compare(runs, torch_run, batch, repeats)


def bench_expert(width, threads, repeats, batch=64):
    import torch
    from ppgan.metrics.lse import ExpertScorer
    from ppgan.models.discriminators.syncnet import SyncNetColor
    from benchmarks.torch_reference import build_torch_network

    _set_threads(threads)
    rng = np.random.default_rng(0)
    faces = rng.uniform(0, 1, (batch, 15, 48, 96)).astype(np.float32)
    mels = rng.normal(size=(batch, 1, 80, 16)).astype(np.float32)
    net = SyncNetColor(width_mult=width)
    ref = build_torch_network("syncnet", width_mult=width)
    ref.eval()
    runs = {}
    for engine in ("dynamic", "static"):
        scorer = ExpertScorer(net, batch_size=batch, engine=engine, threads=threads)
        runs[engine] = lambda s=scorer: (s.embed_face(faces), s.embed_audio(mels))

    def torch_run():
        with torch.no_grad():
            ref(torch.from_numpy(mels), torch.from_numpy(faces))

    return _compare(runs, torch_run, batch, repeats)


def bench_mfcc(repeats):
    from ppgan.metrics.syncnet_v2 import mfcc

    wav = np.random.default_rng(0).normal(scale=3000, size=60 * 16000)
    seconds = _time(lambda: mfcc(wav), repeats)
    return {"seconds_for_60s_audio": seconds, "real_time_factor": 60.0 / seconds}


def bench_evaluate(threads, clips=3, frames=250):
    """Seconds of ``evaluate_videos`` per minute of video (expert at width 0.25, 10 s clips,
    default engine), including building the scorer."""
    from ppgan.apps.evaluate import evaluate_videos
    from ppgan.corpus_tools.synthetic_faces import synthesize_clip
    from ppgan.corpus_tools.synthetic_voice import random_speaker
    from ppgan.metrics.lse import ExpertScorer
    from ppgan.models.discriminators.syncnet import SyncNetColor
    from ppgan.utils.video import write_video

    _set_threads(threads)
    with tempfile.TemporaryDirectory() as folder:
        os.makedirs(os.path.join(folder, "videos"))
        for index in range(clips):
            speaker = random_speaker(np.random.default_rng([1, index]))
            video, wav, _ = synthesize_clip(np.random.default_rng([2, index]), speaker, frames)
            write_video(os.path.join(folder, "videos", f"{index}.mp4"), video, 25, audio=wav)
        start = time.perf_counter()
        scorer = ExpertScorer(SyncNetColor(width_mult=0.25), threads=threads)  # + one-off export
        evaluate_videos(os.path.join(folder, "videos"), scorer=scorer,
                        out_dir=os.path.join(folder, "report"), progress=False)
        seconds = time.perf_counter() - start
    minutes = clips * frames / 25.0 / 60.0
    return {"videos": clips, "video_seconds": clips * frames / 25.0,
            "seconds_per_video_minute": seconds / minutes}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results = {"mfcc": bench_mfcc(args.repeats)}
    for threads in (1, 2):
        results[f"syncnet_v2_threads{threads}"] = bench_syncnet_v2(threads, args.repeats)
        for width in (1.0, 0.25):
            results[f"expert_w{width}_threads{threads}"] = bench_expert(width, threads, args.repeats)
    results["evaluate_videos_threads2"] = bench_evaluate(2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
