"""Data pipeline throughput: our datasets and loader against a naive per-sample-mel loader, the
frame cache's cost, and preprocessing speed. Prints one JSON object.

    python -m benchmarks.data                # about two minutes on 2 cores
    python -m benchmarks.data --samples 600  # steadier numbers

The naive loaders below do what the reference Wav2Lip and PaddleGAN datasets do for every sample:
pick a random clip, glob its frames, read and resize the windows with OpenCV, decode the clip's
whole wav (librosa.load at 16 kHz) and recompute the whole clip's mel to use 16 steps of it.
Ours read each clip's cached mel, copy the windows out of the clip's uint8 frame cache and, in a
DataLoader, move uint8 frames between processes and expand them to float32 once per batch. Both
read the same corpus, produce the same arrays, and run through paddle DataLoaders.

Every comparison alternates ours and naive in rounds, so a change in the load of the shared
machine hits both sides alike.
"""

import argparse
import glob
import json
import os
import tempfile
import time

# One BLAS thread: the naive loader's mel products are small, and with the default thread pool they
# ran 8x slower on the busy 2-core machine. This gives the naive side its best case.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from paddle.io import DataLoader, Dataset  # noqa: E402

from ppgan.datasets import build_dataloader  # noqa: E402
from ppgan.datasets.frame_cache import CACHE_PREFIX, build_frame_cache  # noqa: E402
from ppgan.datasets.lrs2 import SyncNetDataset, Wav2LipDataset  # noqa: E402
from ppgan.corpus_tools.preprocess import preprocess_corpus  # noqa: E402
from ppgan.corpus_tools.preprocess_video import DetectorSpec, PreprocessOptions, load_boxes_json  # noqa: E402
from ppgan.corpus_tools.synthetic import make_synthetic_corpus  # noqa: E402
from ppgan.utils.audio import melspectrogram  # noqa: E402

T, SIZE, FPS, STEPS = 5, 96, 25, 16


class NaiveLoader(Dataset):
    """The reference sampling loop: the index is ignored, everything is recomputed per sample."""

    def __init__(self, dataroot, split, expert, length=None):
        with open(os.path.join(dataroot, f"{split}.txt")) as f:
            self.clips = [os.path.join(dataroot, line.split()[0]) for line in f if line.strip()]
        self.expert = expert
        self.length = length or len(self.clips)  # the reference: one "sample" per clip and epoch
        self.rng = np.random.default_rng(0)

    def __len__(self):
        return self.length

    def read_window(self, names, start_name):
        import cv2

        start = int(os.path.basename(start_name)[:-4])
        frames = []
        for k in range(T):
            path = os.path.join(os.path.dirname(start_name), f"{start + k}.jpg")
            if path not in names:
                return None
            image = cv2.imread(path)
            if image is None:
                return None
            frames.append(cv2.resize(image, (SIZE, SIZE)))
        return frames, start

    def __getitem__(self, index):
        import librosa

        while True:
            clip = self.clips[self.rng.integers(len(self.clips))]
            names = set(glob.glob(os.path.join(clip, "*.jpg")))
            if len(names) <= 3 * T:
                continue
            ordered = sorted(names)
            chosen, wrong = self.rng.choice(ordered, 2, replace=False)
            window, wrong_window = self.read_window(names, chosen), self.read_window(names, wrong)
            if window is None or wrong_window is None:
                continue
            wav = librosa.load(os.path.join(clip, "audio.wav"), sr=16000)[0]
            mel = melspectrogram(wav).T  # the whole clip, for 16 steps of it
            start = window[1]
            mel_start = int(80.0 * start / FPS)
            last_indiv = int(80.0 * (start + T - 2) / FPS)  # per-frame windows start a frame early
            if start < 1 or max(mel_start, last_indiv) + STEPS > len(mel):
                continue
            sample = self.expert_sample(window, wrong_window, mel, mel_start) if self.expert \
                else self.generator_sample(window, wrong_window, mel, mel_start, start)
            return sample

    def expert_sample(self, window, wrong_window, mel, mel_start):
        positive = self.rng.random() < 0.5
        frames = np.concatenate((window if positive else wrong_window)[0], axis=2) / 255.0
        face = frames.transpose(2, 0, 1)[:, SIZE // 2:]
        return {"face": face.astype(np.float32), "mel": mel[mel_start:mel_start + STEPS].T[None].astype(np.float32),
                "label": np.array([float(positive)], dtype=np.float32)}

    def generator_sample(self, window, wrong_window, mel, mel_start, start):
        y = (np.asarray(window[0]) / 255.0).transpose(3, 0, 1, 2)
        masked = y.copy()
        masked[:, :, SIZE // 2:] = 0.0
        reference = (np.asarray(wrong_window[0]) / 255.0).transpose(3, 0, 1, 2)
        indiv = [mel[int(80.0 * (start + k - 1) / FPS):][:STEPS].T for k in range(T)]
        return {"x": np.concatenate([masked, reference], 0).astype(np.float32),
                "indiv_mels": np.stack(indiv)[:, None].astype(np.float32),
                "mel": mel[mel_start:mel_start + STEPS].T[None].astype(np.float32),
                "y": y.astype(np.float32)}


def alternating_rates(readers, count, rounds=3):
    """Items per second of each ``readers[name](i)``, timed in alternating rounds after a warm-up.

    Args:
        readers: {name: callable(index)}, all over datasets of at least ``count`` // ``rounds`` items.
        count: items timed per reader in total.
    """
    per_round = max(1, count // rounds)
    seconds = dict.fromkeys(readers, 0.0)
    for read in readers.values():
        for i in range(5):
            read(i)
    for round_index in range(rounds):
        for name, read in readers.items():
            order = np.random.default_rng([1, round_index]).integers(0, 1 << 30, per_round)
            begin = time.perf_counter()
            for n in range(per_round):
                read(int(order[n]))
            seconds[name] += time.perf_counter() - begin
    return {name: per_round * rounds / spent for name, spent in seconds.items()}


def loader_pass(loader):
    """One full pass: (samples/s including worker start-up, samples/s after the first batch)."""
    begin, total, after_first, first = time.perf_counter(), 0, 0, None
    for batch in loader:
        size = batch["x"].shape[0]
        if first is None:
            first = time.perf_counter()
        else:
            after_first += size
        total += size
    end = time.perf_counter()
    return total / (end - begin), after_first / (end - first)


def compare_loaders(root, workers, rounds=2):
    """Ours and the naive loader over one epoch of ours in batches of 8, alternating, ``rounds`` each."""
    cfg = dict(name="Wav2LipDataset", dataroot=root, filelist="train", batch_size=8, num_workers=workers)
    ours = build_dataloader(cfg, is_train=True)
    # Same sample count as our epoch; the naive dataset ignores the index anyway.
    naive = DataLoader(NaiveLoader(root, "train", expert=False, length=len(ours.dataset)), batch_size=8,
                       shuffle=True, drop_last=True, num_workers=workers)
    passes = {"ours": [], "naive": []}
    for _ in range(rounds):
        for name, loader in (("ours", ours), ("naive", naive)):
            passes[name].append(loader_pass(loader))
    result = {}
    for name, runs in passes.items():
        result[name] = float(np.mean([r[1] for r in runs]))
        result[f"{name}_with_startup"] = float(np.mean([r[0] for r in runs]))
    result["ratio"] = result["ours"] / result["naive"]
    result["ratio_with_startup"] = result["ours_with_startup"] / result["naive_with_startup"]
    return result


def measure_datasets(root, samples):
    readers = {"wav2lip_dataset": Wav2LipDataset(root, "train").__getitem__,
               "wav2lip_jpeg_path": Wav2LipDataset(root, "train", frame_cache=False).__getitem__,
               "naive_wav2lip": NaiveLoader(root, "train", expert=False).__getitem__,
               "syncnet_dataset": SyncNetDataset(root, "train").__getitem__,
               "syncnet_jpeg_path": SyncNetDataset(root, "train", frame_cache=False).__getitem__,
               "naive_syncnet": NaiveLoader(root, "train", expert=True).__getitem__}
    sizes = {name: len(read.__self__) for name, read in readers.items()}
    result = alternating_rates({name: (lambda i, r=read, n=sizes[name]: r(i % n)) for name, read in readers.items()},
                               samples)
    for kind in ("wav2lip", "syncnet"):
        result[f"ratio_{kind}"] = result[f"{kind}_dataset"] / result[f"naive_{kind}"]
        result[f"ratio_{kind}_jpeg_path"] = result[f"{kind}_jpeg_path"] / result[f"naive_{kind}"]
    return result


def measure_frame_cache(root):
    """Building every clip's cache from its JPEGs (what a corpus without caches pays once), and disk use."""
    clips = []
    for name in ("train", "val", "test"):
        with open(os.path.join(root, f"{name}.txt")) as f:
            clips += [os.path.join(root, line.split()[0]) for line in f if line.strip()]
    jpg_bytes = sum(os.path.getsize(p) for clip in clips for p in glob.glob(os.path.join(clip, "*.jpg")))
    for clip in clips:
        for old in glob.glob(os.path.join(clip, CACHE_PREFIX + "*.npy")):
            os.remove(old)
    begin, frames = time.perf_counter(), 0
    for clip in clips:
        frames += build_frame_cache(clip, SIZE).count
    seconds = time.perf_counter() - begin
    cache_bytes = sum(os.path.getsize(p) for clip in clips for p in glob.glob(os.path.join(clip, CACHE_PREFIX + "*")))
    return {"build_frames_per_second": frames / seconds, "jpg_megabytes": jpg_bytes / 1e6,
            "cache_megabytes": cache_bytes / 1e6, "cache_to_jpg_bytes": cache_bytes / jpg_bytes}


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--samples", type=int, default=300, help="items timed per dataset")
    args = parser.parse_args()
    report = {"machine": "2-core AMD EPYC, no GPU", "samples": args.samples}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        corpus = os.path.join(work, "corpus")
        made = make_synthetic_corpus(corpus, speakers=2, clips=5, seed=0, min_frames=50, max_frames=100,
                                     raw_videos=True, splits=(0.8, 0.1, 0.1), progress=False)
        report["corpus"] = {"clips": made["clips"], "frames": made["frames"],
                            "mean_clip_seconds": made["seconds"] / made["clips"]}
        report["datasets"] = measure_datasets(corpus, args.samples)
        report["dataloader_wav2lip_batch8"] = {f"workers_{w}": compare_loaders(corpus, w) for w in (0, 2)}
        report["frame_cache"] = measure_frame_cache(corpus)
        long_corpus = os.path.join(work, "long")
        make_synthetic_corpus(long_corpus, speakers=1, clips=3, seed=1, min_frames=240, max_frames=260,
                              progress=False)
        report["datasets_10s_clips"] = measure_datasets(long_corpus, args.samples // 2)
        raw = os.path.join(corpus, "raw")
        spec = DetectorSpec(boxes=load_boxes_json(os.path.join(raw, "boxes.json")), boxes_path="boxes.json")
        prep = {}
        for workers, cache in ((1, True), (2, True), (1, False)):
            summary = preprocess_corpus(raw, os.path.join(work, f"pre{workers}{cache}"), spec, workers=workers,
                                        options=PreprocessOptions(frame_cache=cache), progress=False)
            prep[f"workers_{workers}" + ("" if cache else "_no_frame_cache")] = {
                "frames": summary.frames, "seconds": summary.seconds,
                "frames_per_second": summary.frames / summary.seconds}
        report["preprocess_box_detector"] = prep
    report["wall_seconds"] = time.perf_counter() - started
    print(json.dumps(rounded(report), indent=1))


def rounded(value):
    """Floats to 3 decimals, recursively, for a readable report."""
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return round(float(value), 3) if isinstance(value, (float, np.floating)) else value


if __name__ == "__main__":
    main()
