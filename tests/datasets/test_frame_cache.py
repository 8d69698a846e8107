"""Per-clip uint8 frame caches: written with the corpus, built once when missing (where the
dataset's cache_dir says; here the dataroot itself, beside the clips), equal to the decoded JPEGs,
rebuilt when stale, never half-written, and bypassed for clips with a bad JPEG."""

import glob
import os
import shutil

import cv2
import numpy as np
import pytest

import ppgan.datasets.frame_cache as frame_cache
import ppgan.datasets.corpus as corpus
from ppgan.datasets.frame_cache import (CACHE_PREFIX, FrameCacheWriter, build_frame_cache, find_frame_cache,
                                        scan_jpgs)
from ppgan.datasets.lrs2 import SyncNetDataset, Wav2LipDataset

from tests.datasets.test_datasets import ppgan_log  # noqa: F401  (fixture)


def caches_in(clip_dir):
    return sorted(glob.glob(os.path.join(str(clip_dir), CACHE_PREFIX + "*")))


def jpg_planes(clip_dir):
    """(N, 3, S, S) uint8: every jpg of the clip decoded by OpenCV, in id order."""
    ids = scan_jpgs(str(clip_dir)).ids
    return np.stack([cv2.imread(os.path.join(str(clip_dir), f"{i}.jpg")).transpose(2, 0, 1) for i in ids])


def all_clips(root):
    return [root / line.split()[0] for name in ("train", "val", "test")
            for line in (root / f"{name}.txt").read_text().splitlines() if line.strip()]


@pytest.fixture()
def bare_corpus(synthetic_corpus, tmp_path):
    """A private copy of the synthetic corpus with every frame cache removed (a legacy corpus)."""
    target = tmp_path / "corpus"
    shutil.copytree(synthetic_corpus, target)
    for clip in all_clips(target):
        for path in caches_in(clip):
            os.remove(path)
    return target


@pytest.fixture()
def decodes(monkeypatch):
    """Counts JPEG decodes made to build caches and to read frames without one."""
    calls = {"build": 0, "direct": 0}
    real = frame_cache.decode_frame

    def counting(kind):
        def decode(path, img_size):
            calls[kind] += 1
            return real(path, img_size)
        return decode

    monkeypatch.setattr(frame_cache, "decode_frame", counting("build"))
    monkeypatch.setattr(corpus, "decode_frame", counting("direct"))
    return calls


def test_synthetic_corpus_ships_caches_equal_to_the_decoded_jpgs(synthetic_corpus):
    for clip in all_clips(synthetic_corpus):
        (path,) = caches_in(clip)
        cached = np.load(path)
        assert cached.dtype == np.uint8 and cached.shape[1:] == (3, 96, 96)
        np.testing.assert_array_equal(cached, jpg_planes(clip))
        assert find_frame_cache(str(clip), 96, scan_jpgs(str(clip))).path == path


def test_missing_cache_is_built_once_then_reused(bare_corpus, decodes):
    data = Wav2LipDataset(str(bare_corpus), "train", is_train=False, cache_dir=str(bare_corpus))
    clip, start = data.window(0)
    clip_dir = data.clip_dirs[clip]
    item = data[0]
    frames = len(scan_jpgs(clip_dir).ids)
    assert decodes == {"build": frames, "direct": 0}  # the whole clip once, no per-frame reads
    (path,) = caches_in(clip_dir)
    np.testing.assert_array_equal(np.load(path), jpg_planes(clip_dir))
    y = jpg_planes(clip_dir)[start:start + 5].transpose(1, 0, 2, 3).astype(np.float32) / 255.0
    np.testing.assert_allclose(item["y"], y, atol=1e-6)
    stamp = os.stat(path).st_mtime_ns
    windows_of_clip = [i for i in range(len(data)) if data.window(i)[0] == clip]
    for i in windows_of_clip:
        data[i]
    # Another process (a new dataset) finds the cache: nothing is decoded or rewritten.
    again = SyncNetDataset(str(bare_corpus), "train", is_train=False, cache_dir=str(bare_corpus))
    for i in range(len(again)):
        if again.clip_dirs[again.window(i)[0]] == clip_dir:
            again[i]
    assert decodes == {"build": frames, "direct": 0}
    assert caches_in(clip_dir) == [path] and os.stat(path).st_mtime_ns == stamp


def test_stale_caches_are_detected_and_rebuilt(bare_corpus):
    clip_dir = all_clips(bare_corpus)[0]
    built = build_frame_cache(str(clip_dir), 96)
    old_name = os.path.basename(built.path)
    # 1. A frame rewritten with other content (another size): another name is looked for.
    cv2.imwrite(str(clip_dir / "3.jpg"), np.zeros((96, 96, 3), np.uint8))
    assert find_frame_cache(str(clip_dir), 96, scan_jpgs(str(clip_dir))) is None
    data = Wav2LipDataset(str(bare_corpus), "train", is_train=False, cache_dir=str(bare_corpus))
    clip = data.clip_dirs.index(str(clip_dir))
    np.testing.assert_array_equal(data.read_frames(clip, [3])[0], cv2.imread(str(clip_dir / "3.jpg")).transpose(2, 0, 1))
    (path,) = caches_in(clip_dir)  # rebuilt, and the stale file deleted
    assert os.path.basename(path) != old_name
    np.testing.assert_array_equal(np.load(path), jpg_planes(clip_dir))
    # 2. Same name, but a jpg modified after the cache was written (mtime): stale.
    later = os.stat(path).st_mtime_ns + 10 ** 9
    os.utime(clip_dir / "5.jpg", ns=(later, later))
    assert find_frame_cache(str(clip_dir), 96, scan_jpgs(str(clip_dir))) is None
    os.utime(path, ns=(later, later))
    assert find_frame_cache(str(clip_dir), 96, scan_jpgs(str(clip_dir))) is not None
    # 3. A truncated cache file (e.g. an interrupted copy) is not used.
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 100)
    assert find_frame_cache(str(clip_dir), 96, scan_jpgs(str(clip_dir))) is None
    # 4. A frame removed: the ids change, and so does the name.
    build_frame_cache(str(clip_dir), 96)
    os.remove(clip_dir / "7.jpg")
    listing = scan_jpgs(str(clip_dir))
    assert 7 not in listing.ids and find_frame_cache(str(clip_dir), 96, listing) is None
    # 5. Another crop size has its own cache.
    small = build_frame_cache(str(clip_dir), 48, listing)
    assert np.load(small.path).shape == (len(listing.ids), 3, 48, 48)
    assert len(caches_in(clip_dir)) == 2


def test_cache_reads_windows_and_reports_missing_frames(bare_corpus):
    clip_dir = all_clips(bare_corpus)[0]
    os.remove(clip_dir / "10.jpg")  # ids 0..9, 11..N-1: rows no longer equal ids
    cache = build_frame_cache(str(clip_dir), 96)
    planes = jpg_planes(clip_dir)
    out = np.empty((5, 3, 96, 96), np.uint8)
    assert cache.read(2, out) and np.array_equal(out, planes[2:7])
    assert cache.read(11, out) and np.array_equal(out, planes[10:15])  # frame 11 is row 10
    assert not cache.read(8, out)  # needs frame 10
    assert not cache.read(len(planes) - 2, out)  # runs past the end


def test_failed_writes_leave_no_file_and_samples_still_come(bare_corpus, monkeypatch, ppgan_log):
    clip_dir = all_clips(bare_corpus)[0]
    with pytest.raises(RuntimeError):
        with FrameCacheWriter(str(clip_dir), 10, 96) as writer:
            writer.append(np.zeros((96, 96, 3), np.uint8))
            raise RuntimeError("killed half-way")
    assert caches_in(clip_dir) == [] and not [p for p in os.listdir(clip_dir) if p.startswith(".")]
    with FrameCacheWriter(str(clip_dir), 10, 96) as writer:
        writer.append(np.zeros((96, 96, 3), np.uint8))
        assert writer.commit() is None  # fewer frames than announced: nothing is published
    assert caches_in(clip_dir) == [] and not [p for p in os.listdir(clip_dir) if p.startswith(".")]

    def refuse(src, dst):
        raise PermissionError(13, "Read-only file system", dst)

    monkeypatch.setattr(frame_cache.os, "replace", refuse)
    data = Wav2LipDataset(str(bare_corpus), "train", is_train=False, cache_dir=str(bare_corpus))
    plain = Wav2LipDataset(str(bare_corpus), "train", is_train=False, frame_cache=False)
    for i in (0, 1, 2, len(data) - 1):
        np.testing.assert_array_equal(data[i]["x"], plain[i]["x"])
    assert not data._cache_writable
    assert sum("cannot write frame caches" in m for m in ppgan_log) == 1  # then it stops trying
    for clip in all_clips(bare_corpus):
        assert caches_in(clip) == [] and not [p for p in os.listdir(clip) if p.startswith(".")]


def test_clip_with_a_corrupt_jpg_is_not_cached_and_reported_once(bare_corpus, ppgan_log, decodes):
    data = SyncNetDataset(str(bare_corpus), "train", is_train=False, cache_dir=str(bare_corpus))
    clip, start = data.window(0)
    clip_dir = data.clip_dirs[clip]
    corrupt = os.path.join(clip_dir, f"{start + 2}.jpg")
    with open(corrupt, "wb") as f:
        f.write(b"\xff\xd8 truncated jpeg")
    item = data[0]  # the build stops at the bad frame; this window needs it: another is served
    assert item["face"].shape == (15, 48, 96) and data.skipped_samples >= 1
    assert caches_in(clip_dir) == []
    direct = decodes["direct"]
    later = data.read_frames(clip, [start + 3])  # frames of that clip away from the bad one: JPEGs
    assert decodes["direct"] == direct + 5
    expected = [cv2.imread(os.path.join(clip_dir, f"{start + k}.jpg")).transpose(2, 0, 1) for k in range(3, 8)]
    np.testing.assert_array_equal(later, np.stack(expected))
    for i in range(len(data)):
        data[i]
    assert sum(corrupt in m for m in ppgan_log) == 1  # reported once, however often it is needed
    assert caches_in(clip_dir) == []  # and never retried in this process
    for other_clip in set(data.clip_dirs) - {clip_dir}:
        assert len(caches_in(other_clip)) == 1  # every other clip got its cache


def test_frame_cache_off_reads_jpgs_only(bare_corpus, decodes):
    plain = Wav2LipDataset(str(bare_corpus), "val", is_train=False, frame_cache=False)
    items = [plain[i] for i in range(len(plain))]
    assert decodes == {"build": 0, "direct": 10 * len(plain)}  # target + reference, every time
    assert all(caches_in(clip) == [] for clip in plain.clip_dirs)
    cached = Wav2LipDataset(str(bare_corpus), "val", is_train=False, cache_dir=str(bare_corpus))
    for i, item in enumerate(items):
        assert all(np.array_equal(value, cached[i][key]) for key, value in item.items())
