"""Data pipeline throughput: our datasets and loader against a naive per-sample-mel loader, and
preprocessing speed. Prints one JSON object.

    python benchmarks/data.py                # about a minute on 2 cores
    python benchmarks/data.py --samples 600  # steadier numbers

The naive loaders below do what the reference Wav2Lip and PaddleGAN datasets do for every sample:
pick a random clip, glob its frames, read and resize the windows with OpenCV, decode the clip's
whole wav (librosa.load at 16 kHz) and recompute the whole clip's mel to use 16 steps of it.
Ours read each clip's cached mel and go straight to the indexed window. Both read the same
corpus, produce the same arrays, and run through the same paddle DataLoader.
"""

import argparse
import glob
import json
import os
import sys
import tempfile
import time

# One BLAS thread: the naive loader's mel products are small, and with the default thread pool they
# ran 8x slower on the busy 2-core machine. This gives the naive side its best case.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from paddle.io import DataLoader, Dataset  # noqa: E402

from ppgan.datasets import build_dataloader  # noqa: E402
from ppgan.datasets.lrs2 import SyncNetDataset, Wav2LipDataset  # noqa: E402
from ppgan.datasets.preprocess import DetectorSpec, load_boxes_json, preprocess_corpus  # noqa: E402
from ppgan.datasets.synthetic import make_synthetic_corpus  # noqa: E402
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


def samples_per_second(dataset, count):
    """Item throughput of ``dataset[i]`` for ``count`` items (after a short warm-up)."""
    order = np.random.default_rng(1).permutation(len(dataset))
    for i in order[:10]:
        dataset[int(i)]
    begin = time.perf_counter()
    for n in range(count):
        dataset[int(order[n % len(order)])]
    return count / (time.perf_counter() - begin)


def loader_samples_per_second(loader):
    """Samples per second over one full pass of a DataLoader (worker start-up included)."""
    begin, seen = time.perf_counter(), 0
    for batch in loader:
        seen += batch["x"].shape[0]
    return seen / (time.perf_counter() - begin)


def compare_loaders(root, workers):
    """Ours and the naive loader over the same number of batches of 8 (one epoch of ours)."""
    cfg = dict(name="Wav2LipDataset", dataroot=root, filelist="train", batch_size=8, num_workers=workers)
    ours = build_dataloader(cfg, is_train=True)
    # Same sample count as our epoch; the naive dataset ignores the index anyway.
    naive = DataLoader(NaiveLoader(root, "train", expert=False, length=len(ours.dataset)), batch_size=8,
                       shuffle=True, drop_last=True, num_workers=workers)
    result = {"ours": loader_samples_per_second(ours), "naive": loader_samples_per_second(naive)}
    result["ratio"] = result["ours"] / result["naive"]
    return result


def measure_datasets(root, samples):
    ours_g, ours_e = Wav2LipDataset(root, "train"), SyncNetDataset(root, "train")
    naive_g, naive_e = NaiveLoader(root, "train", expert=False), NaiveLoader(root, "train", expert=True)
    result = {"wav2lip_dataset": samples_per_second(ours_g, samples),
              "naive_wav2lip": samples_per_second(naive_g, samples),
              "syncnet_dataset": samples_per_second(ours_e, samples),
              "naive_syncnet": samples_per_second(naive_e, samples)}
    result["ratio_wav2lip"] = result["wav2lip_dataset"] / result["naive_wav2lip"]
    result["ratio_syncnet"] = result["syncnet_dataset"] / result["naive_syncnet"]
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--samples", type=int, default=300, help="items timed per dataset")
    args = parser.parse_args()
    report = {"machine": "2-core AMD EPYC, no GPU", "samples": args.samples}
    with tempfile.TemporaryDirectory() as work:
        corpus = os.path.join(work, "corpus")
        made = make_synthetic_corpus(corpus, speakers=2, clips=5, seed=0, min_frames=50, max_frames=100,
                                     raw_videos=True, splits=(0.8, 0.1, 0.1), progress=False)
        report["corpus"] = {"clips": made["clips"], "frames": made["frames"],
                            "mean_clip_seconds": made["seconds"] / made["clips"]}
        report["datasets"] = measure_datasets(corpus, args.samples)
        report["dataloader_wav2lip_batch8"] = {f"workers_{w}": compare_loaders(corpus, w) for w in (0, 2)}
        long_corpus = os.path.join(work, "long")
        made = make_synthetic_corpus(long_corpus, speakers=1, clips=3, seed=1, min_frames=240, max_frames=260,
                                     progress=False)
        report["datasets_10s_clips"] = measure_datasets(long_corpus, args.samples // 2)
        raw = os.path.join(corpus, "raw")
        spec = DetectorSpec(boxes=load_boxes_json(os.path.join(raw, "boxes.json")), boxes_path="boxes.json")
        prep = {}
        for workers in (1, 2):
            summary = preprocess_corpus(raw, os.path.join(work, f"pre{workers}"), spec, workers=workers,
                                        progress=False)
            prep[f"workers_{workers}"] = {"frames": summary.frames, "seconds": summary.seconds,
                                          "frames_per_second": summary.frames / summary.seconds}
        report["preprocess_box_detector"] = prep
    print(json.dumps(rounded(report), indent=1))


def rounded(value):
    """Floats to 3 decimals, recursively, for a readable report."""
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return round(float(value), 3) if isinstance(value, (float, np.floating)) else value


if __name__ == "__main__":
    main()
