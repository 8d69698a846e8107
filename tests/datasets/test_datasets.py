"""LRS2-layout datasets and the loader builder, on the synthetic corpus."""

import logging
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import paddle
import pytest

from ppgan.datasets import build_dataloader
from ppgan.datasets.augment import WindowAugment, build_augment
from ppgan.datasets.builder import SeededDistributedBatchSampler, set_loader_epoch
from ppgan.datasets.lrs2 import SyncNetDataset, Wav2LipDataset
from ppgan.datasets.windows import MAX_ATTEMPTS, window_starts
from ppgan.utils.audio import load_audio, mel_index, melspectrogram
from ppgan.utils.errors import ConfigError, DataError
from ppgan.utils.logger import get_logger

T = 5


def frames_of(clip_dir, start, count=T):
    """(count, 96, 96, 3) float32 BGR in [0, 1], read straight from the jpgs."""
    return np.stack([cv2.imread(os.path.join(clip_dir, f"{start + k}.jpg")) for k in range(count)]
                    ).astype(np.float32) / 255.0


@pytest.fixture()
def corpus_copy(synthetic_corpus, tmp_path):
    """A private, writable copy of the synthetic corpus (tests below damage it)."""
    target = tmp_path / "corpus"
    shutil.copytree(synthetic_corpus, target)
    return target


class LogCapture(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture()
def ppgan_log():
    handler = LogCapture()
    logger = get_logger()
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def test_syncnet_sample_shapes_ranges_and_balance(synthetic_corpus):
    data = SyncNetDataset(str(synthetic_corpus), "train")
    labels = []
    for i in range(0, len(data), max(1, len(data) // 40)):
        item = data[i]
        assert item["face"].shape == (15, 48, 96) and item["face"].dtype == np.float32
        assert item["mel"].shape == (1, 80, 16) and item["mel"].dtype == np.float32
        assert item["label"].shape == (1,) and item["label"].dtype == np.float32
        assert 0.0 <= item["face"].min() and item["face"].max() <= 1.0
        assert -4.0 <= item["mel"].min() and item["mel"].max() <= 4.0
        labels.append(float(item["label"][0]))
    assert set(labels) == {0.0, 1.0}
    # Exact balance over any pair of consecutive indices, in every epoch.
    for epoch in (0, 1):
        data.set_epoch(epoch)
        pair = [float(data[k]["label"][0]) for k in (10, 11)]
        assert sorted(pair) == [0.0, 1.0]


def test_syncnet_positives_in_sync_and_negatives_far(synthetic_corpus):
    min_offset = 7
    data = SyncNetDataset(str(synthetic_corpus), "train", min_offset=min_offset)
    wav_mels = {}
    for i in range(0, min(len(data), 120), 3):
        clip, start = data.window(i)
        clip_dir = data.clip_dirs[clip]
        if clip not in wav_mels:  # the mel recomputed from the wav: the cache must agree with it
            wav_mels[clip] = melspectrogram(load_audio(os.path.join(clip_dir, "audio.wav")))
        item = data[i]
        # Audio: 16 steps from the window's first frame, i.e. the same instant start / 25 s.
        first = mel_index(start, 25)
        assert first == int(80 * start / 25)
        np.testing.assert_allclose(item["mel"][0], wav_mels[clip][:, first:first + 16], atol=1e-5)
        # Video: find which window of the clip the lower halves came from.
        windows = data.clip_video_starts[clip]
        faces = {int(s): frames_of(clip_dir, int(s))[:, 48:].transpose(0, 3, 1, 2).reshape(15, 48, 96)
                 for s in windows}
        source = min(faces, key=lambda s: np.abs(faces[s] - item["face"]).mean())
        assert np.abs(faces[source] - item["face"]).max() < 1e-6
        if item["label"][0] == 1.0:
            assert source == start
        else:
            assert abs(source - start) >= min_offset


def test_wav2lip_sample_matches_files_and_reference_indexing(synthetic_corpus):
    data = Wav2LipDataset(str(synthetic_corpus), "train")
    assert data.mel_frame_offset == -1
    # The reference offset needs frame start-1, so no window starts at frame 0.
    assert all(data.window(i)[1] >= 1 for i in range(len(data)))
    for i in (0, 7, len(data) - 1):
        item = data[i]
        clip, start = data.window(i)
        clip_dir = data.clip_dirs[clip]
        assert item["x"].shape == (6, T, 96, 96) and item["y"].shape == (3, T, 96, 96)
        assert item["indiv_mels"].shape == (T, 1, 80, 16) and item["mel"].shape == (1, 80, 16)
        assert all(v.dtype == np.float32 for v in item.values())
        target = frames_of(clip_dir, start).transpose(3, 0, 1, 2)
        np.testing.assert_allclose(item["y"], target, atol=1e-6)
        assert np.all(item["x"][:3, :, 48:] == 0.0)
        np.testing.assert_allclose(item["x"][:3, :, :48], target[:, :, :48], atol=1e-6)
        reference = item["x"][3:]
        assert not np.allclose(reference, target)  # another window of the same clip
        mel = np.load(os.path.join(clip_dir, "mel.npy"))
        np.testing.assert_allclose(item["mel"][0], mel[:, mel_index(start, 25):mel_index(start, 25) + 16])
        for k in range(T):
            begin = mel_index(start + k - 1, 25)
            np.testing.assert_allclose(item["indiv_mels"][k, 0], mel[:, begin:begin + 16])


def test_wav2lip_inference_offset_option(synthetic_corpus):
    data = Wav2LipDataset(str(synthetic_corpus), "train", mel_frame_offset=0, is_train=False)
    starts = [data.window(i)[1] for i in range(len(data))]
    assert 0 in starts
    item = data[starts.index(0)]
    mel = np.load(os.path.join(data.clip_dirs[data.window(starts.index(0))[0]], "mel.npy"))
    np.testing.assert_allclose(item["indiv_mels"][0, 0], mel[:, 0:16])
    np.testing.assert_allclose(item["indiv_mels"][0, 0], item["mel"][0])


def test_wav2lip_single_frame_windows(synthetic_corpus):
    # syncnet_T: 1 (the demo's L1-only recipe): every frame of a clip is a window of its own, with
    # its own mel window and a reference frame from elsewhere in the clip.
    five = Wav2LipDataset(str(synthetic_corpus), "train", mel_frame_offset=0)
    data = Wav2LipDataset(str(synthetic_corpus), "train", syncnet_T=1, mel_frame_offset=0)
    assert len(data) > len(five)
    clip, start = data.window(3)
    item = data[3]
    assert item["x"].shape == (6, 1, 96, 96) and item["y"].shape == (3, 1, 96, 96)
    assert item["indiv_mels"].shape == (1, 1, 80, 16)
    np.testing.assert_allclose(item["y"][:, 0], frames_of(data.clip_dirs[clip], start, 1)[0].transpose(2, 0, 1),
                               atol=1e-6)
    mel = np.load(os.path.join(data.clip_dirs[clip], "mel.npy"))
    begin = mel_index(start, 25)
    np.testing.assert_allclose(item["indiv_mels"][0, 0], mel[:, begin:begin + 16])
    assert not np.allclose(item["x"][3:], item["y"])


def test_samples_reproducible_from_seed_and_epoch(synthetic_corpus):
    a = Wav2LipDataset(str(synthetic_corpus), "train", seed=3)
    b = Wav2LipDataset(str(synthetic_corpus), "train", seed=3)
    c = Wav2LipDataset(str(synthetic_corpus), "train", seed=4)
    indices = range(0, 40, 4)
    refs = lambda d: [d[i]["x"][3:].sum() for i in indices]  # noqa: E731 - identifies the reference
    assert refs(a) == refs(b)
    assert refs(a) != refs(c)
    a.set_epoch(1)
    assert refs(a) != refs(b)
    b.set_epoch(1)
    assert refs(a) == refs(b)
    val = Wav2LipDataset(str(synthetic_corpus), "val", seed=3, is_train=False)
    before = [val[i]["x"].sum() for i in range(len(val))]
    val.set_epoch(5)  # validation never changes
    assert [val[i]["x"].sum() for i in range(len(val))] == before


def test_windows_round_robin_over_clips(synthetic_corpus):
    data = SyncNetDataset(str(synthetic_corpus), "val", is_train=False)
    first = [data.window(i)[0] for i in range(data.num_clips)]
    assert sorted(first) == list(range(data.num_clips))


def shard_indices(dataset, world, rank, is_train, seed=0, epoch=0):
    sampler = SeededDistributedBatchSampler(dataset, 4, num_replicas=world, rank=rank,
                                            shuffle=is_train, drop_last=is_train, seed=seed)
    sampler.set_epoch(epoch)
    return [i for batch in sampler for i in batch]


def test_shards_disjoint_across_two_ranks(synthetic_corpus):
    data = SyncNetDataset(str(synthetic_corpus), "train")
    r0, r1 = (shard_indices(data, 2, r, True) for r in (0, 1))
    assert len(r0) == len(r1) > 0 and not set(r0) & set(r1)
    assert len(r0) == (len(data) // 2) // 4 * 4  # equal shards, whole batches only
    assert shard_indices(data, 2, 0, True) == r0  # reproducible
    assert shard_indices(data, 2, 0, True, epoch=1) != r0
    assert shard_indices(data, 2, 0, True, seed=1) != r0
    e0, e1 = (shard_indices(data, 2, r, False) for r in (0, 1))
    assert set(e0) | set(e1) == set(range(len(data)))  # evaluation covers every window
    assert e0 == sorted(e0)  # in a fixed order


def test_dataloader_batches_for_one_rank(synthetic_corpus, monkeypatch):
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "2")
    monkeypatch.setenv("PADDLE_TRAINER_ID", "1")
    cfg = dict(name="Wav2LipDataset", dataroot=str(synthetic_corpus), filelist="train", batch_size=3,
               num_workers=2)
    loader = build_dataloader(cfg, is_train=True, seed=0)
    assert loader.batch_sampler.nranks == 2 and loader.batch_sampler.local_rank == 1
    assert len(loader) == (len(loader.dataset) // 2) // 3
    set_loader_epoch(loader, 2)
    assert loader.dataset.epoch == 2
    batch = next(iter(loader))
    assert list(batch["x"].shape) == [3, 6, T, 96, 96] and list(batch["y"].shape) == [3, 3, T, 96, 96]
    assert list(batch["indiv_mels"].shape) == [3, T, 1, 80, 16] and list(batch["mel"].shape) == [3, 1, 80, 16]
    loader.batch_sampler.set_epoch(2)  # iterating moved the sampler on to epoch 3
    expected = [loader.dataset[i]["x"] for i in next(iter(loader.batch_sampler))]
    # The worker processes drew the same references as epoch 2 does here.
    np.testing.assert_allclose(batch["x"].numpy(), np.stack(expected))


@pytest.mark.parametrize("name", ["SyncNetDataset", "Wav2LipDataset"])
def test_single_process_loader_moves_uint8_and_yields_the_items(synthetic_corpus, name):
    cfg = dict(name=name, dataroot=str(synthetic_corpus), filelist="val", batch_size=4, num_workers=0)
    loader = build_dataloader(cfg, is_train=False)
    dataset = loader.dataset
    compact = dataset.compact_item(0)
    assert compact["frames"].dtype == np.uint8
    floats = dataset[0]
    float_bytes = sum(v.nbytes for v in floats.values())
    assert sum(v.nbytes for v in compact.values()) * 3.5 < float_bytes  # what crosses the loader
    batches = list(loader)
    assert len(batches) == len(loader) and sum(b["mel"].shape[0] for b in batches) == len(dataset)
    for batch, first in zip(batches[:2], (0, 4)):
        assert list(batch) == list(floats)  # same keys, same order
        for key, value in batch.items():
            expected = np.stack([dataset[i][key] for i in range(first, first + 4)])
            assert value.dtype == paddle.float32 and value.numpy().flags.c_contiguous
            np.testing.assert_array_equal(value.numpy(), expected)


WORKERS_AFTER_OPENCV_POOL = """
import sys
import cv2, numpy as np
cv2.setNumThreads(2)
big = np.zeros((1500, 1500, 3), np.uint8)
for _ in range(3):  # start OpenCV's thread pool in the parent, as a training process may have
    cv2.GaussianBlur(big, (15, 15), 3)
from ppgan.datasets import build_dataloader
cfg = dict(name="SyncNetDataset", dataroot=sys.argv[1], filelist="val", batch_size=2, num_workers=2)
batch = next(iter(build_dataloader(cfg, is_train=False)))
assert list(batch["face"].shape) == [2, 15, 48, 96], batch["face"].shape
assert cv2.getNumThreads() == 2  # the parent's own setting is back
print("workers ran")
"""


def test_workers_start_after_the_parent_ran_opencv_threads(synthetic_corpus):
    # Regression: workers that set OpenCV's thread count after the fork hung forever once the parent
    # had used OpenCV's pool. A subprocess, so that a regression fails on the timeout instead of hanging.
    run = subprocess.run([sys.executable, "-c", WORKERS_AFTER_OPENCV_POOL, str(synthetic_corpus)],
                         capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=240)
    assert run.returncode == 0 and "workers ran" in run.stdout, run.stderr[-2000:]


def test_corrupt_and_missing_frames_are_skipped_counted_and_logged_once(corpus_copy, ppgan_log):
    data = Wav2LipDataset(str(corpus_copy), "train", is_train=False)
    clip, start = data.window(0)
    corrupt = os.path.join(data.clip_dirs[clip], f"{start + 1}.jpg")
    with open(corrupt, "wb") as f:
        f.write(b"this is not a jpeg")
    item = data[0]  # needs the corrupt frame: another window is served instead
    assert item["x"].shape == (6, T, 96, 96)
    assert data.skipped_samples == 1
    data[0]
    assert data.skipped_samples == 2
    assert sum(corrupt in m for m in ppgan_log) == 1  # logged once per bad file
    clip2, start2 = data.window(1)
    missing = os.path.join(data.clip_dirs[clip2], f"{start2 + T - 1}.jpg")
    os.remove(missing)  # vanished after the index was built
    assert data[1]["y"].shape == (3, T, 96, 96)
    assert data.skipped_samples == 3 and sum(missing in m for m in ppgan_log) == 1
    # Rebuilt, the index leaves out every window that would need the missing frame.
    rebuilt = Wav2LipDataset(str(corpus_copy), "train", is_train=False)
    gone = int(os.path.basename(missing)[:-4])
    for i in range(len(rebuilt)):
        c, s = rebuilt.window(i)
        assert not (rebuilt.clip_dirs[c] == data.clip_dirs[clip2] and s <= gone < s + T)


def test_damaged_corpus_fails_instead_of_retrying_forever(corpus_copy):
    data = SyncNetDataset(str(corpus_copy), "val", is_train=False)
    for clip_dir in data.clip_dirs:
        for name in os.listdir(clip_dir):
            if name.endswith(".jpg"):
                os.remove(os.path.join(clip_dir, name))
    with pytest.raises(DataError, match="in a row"):
        data[0]
    assert data.skipped_samples == MAX_ATTEMPTS


def test_missing_mel_cache_is_computed_once_and_kept(corpus_copy):
    clip = (corpus_copy / "train.txt").read_text().split()[0]
    mel_path = corpus_copy / clip / "mel.npy"
    original = np.load(mel_path)
    mel_path.unlink()
    data = SyncNetDataset(str(corpus_copy), "train")
    assert not mel_path.exists()  # by default kept in memory only
    clip_number = data.clip_keys.index(clip)
    np.testing.assert_allclose(data.mel(clip_number), original, atol=1e-6)
    data = SyncNetDataset(str(corpus_copy), "train", cache_dir=str(corpus_copy))  # asked: beside the clip
    np.testing.assert_allclose(np.load(mel_path), original, atol=1e-6)
    np.testing.assert_allclose(data.mel(clip_number), original, atol=1e-6)


def test_relative_paths_resolve_against_corpus_and_config_not_cwd(synthetic_corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an unrelated working directory
    data = SyncNetDataset(str(synthetic_corpus), "train.txt")
    assert data.filelist == str(synthetic_corpus / "train.txt")
    config_dir = tmp_path / "project" / "configs"
    config_dir.mkdir(parents=True)
    rel = os.path.relpath(synthetic_corpus, config_dir)  # relative to the config folder only
    assert not os.path.isdir(rel)
    data = SyncNetDataset(rel, "val", config_dir=str(config_dir))
    assert data.dataroot == str(synthetic_corpus)


def test_bad_filelists_fail_at_construction(corpus_copy):
    root = str(corpus_copy)
    with pytest.raises(DataError, match="not found"):
        SyncNetDataset(root, "nosuchsplit")
    (corpus_copy / "empty.txt").write_text("\n# nothing here\n")
    with pytest.raises(DataError, match="lists no clips"):
        SyncNetDataset(root, "empty.txt")
    (corpus_copy / "ghost.txt").write_text("speaker00/99999\n")
    with pytest.raises(DataError, match="do not exist.*speaker00/99999"):
        Wav2LipDataset(root, "ghost.txt")
    with pytest.raises(DataError, match="corpus folder"):
        SyncNetDataset(root + "_missing", "train")
    two = (corpus_copy / "train.txt").read_text().split()[:2]
    (corpus_copy / "two.txt").write_text("\n".join(two) + "\n")
    cfg = dict(name="SyncNetDataset", dataroot=root, filelist="two.txt", batch_size=4)
    with pytest.raises(DataError, match="fewer than dataset.train.batch_size 4"):
        build_dataloader(cfg, is_train=True)
    assert len(build_dataloader(cfg, is_train=False)) > 0  # evaluation may use a short list
    with pytest.raises(ConfigError, match="unknown key 'min_ofset'"):
        build_dataloader(dict(cfg, min_ofset=3), is_train=True)


def test_clips_too_short_for_any_window_are_left_out(corpus_copy):
    keys = (corpus_copy / "train.txt").read_text().split()
    short = corpus_copy / keys[0]
    for name in os.listdir(short):
        if name.endswith(".jpg") and int(name[:-4]) >= 8:
            os.remove(short / name)  # 8 frames: windows start at 0..3, none 5 frames from another
    data = SyncNetDataset(str(corpus_copy), "train", min_offset=5)
    assert data.num_clips == len(keys) - 1
    assert list(window_starts(np.array([0, 1, 2, 3, 4, 6, 7, 8, 9, 10]), 5)) == [0, 6]


def test_augmentation_off_by_default_identical_across_frames(synthetic_corpus):
    plain = Wav2LipDataset(str(synthetic_corpus), "train")
    assert plain.augment is None
    cfg = dict(brightness=0.2, contrast=0.2, saturation=0.2, scale=0.1, shift=0.1)
    jittered = Wav2LipDataset(str(synthetic_corpus), "train", augment=cfg)
    a, b = plain[5]["y"], jittered[5]["y"]
    assert not np.allclose(a, b) and 0.0 <= b.min() and b.max() <= 1.0
    np.testing.assert_array_equal(jittered[5]["y"], b)  # reproducible
    assert Wav2LipDataset(str(synthetic_corpus), "val", augment=cfg, is_train=False).augment is None
    # One draw for the whole window: identical input frames stay identical.
    frame = frames_of(os.path.join(str(synthetic_corpus), plain.clip_keys[0]), 0, 1)[0]
    aug = WindowAugment(**cfg)
    out = aug.apply(np.stack([frame] * 4), aug.sample(np.random.default_rng(0)))
    assert all(np.array_equal(out[0], out[k]) for k in range(1, 4)) and not np.allclose(out[0], frame)
    assert build_augment(None) is None and build_augment({}) is None
    with pytest.raises(ConfigError, match="unknown augment key 'hue'"):
        build_augment({"hue": 0.1})
    with pytest.raises(ConfigError, match="augment.scale"):
        build_augment({"scale": 2.0})


def test_mels_come_from_the_cache_never_recomputed_per_sample(synthetic_corpus, monkeypatch):
    import ppgan.datasets.corpus as corpus

    data = Wav2LipDataset(str(synthetic_corpus), "train")
    loads = []
    real_load = np.load
    monkeypatch.setattr(corpus, "melspectrogram", lambda wav: pytest.fail("mel recomputed for a sample"))
    monkeypatch.setattr(corpus, "load_audio", lambda path: pytest.fail("audio decoded for a sample"))
    monkeypatch.setattr(np, "load", lambda path, *a, **k: loads.append(path) or real_load(path, *a, **k))
    for i in range(len(data)):
        data[i]
    assert len(loads) == data.num_clips  # each clip's mel.npy read once, then served from memory
