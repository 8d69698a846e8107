"""ppgan.datasets.corpus: training reads a corpus and writes nothing into it unless asked.

The corpus copy lacks what the reader would once have written back: every frame cache, one
mel.npy, and another mel.npy holds NaN. Read through a loader, the corpus stays byte for byte the
same; with ``cache_dir`` the missing caches are built once into that folder (never into the
corpus) and found there by the next dataset; ``cache_dir`` = the dataroot is the old behaviour.
"""

import glob
import os
import shutil

import numpy as np
import pytest

import ppgan.datasets.frame_cache as frame_cache
from ppgan.datasets import build_dataloader
from ppgan.datasets.frame_cache import CACHE_PREFIX
from ppgan.datasets.lrs2 import SyncNetDataset, Wav2LipDataset

from tests.datasets.test_datasets import ppgan_log  # noqa: F401  (fixture)
from tests.integration.test_main import run_tool, tiny


def snapshot(root):
    """{relative path: (size, mtime ns)} of every file and folder under ``root``."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            info = os.stat(path)
            found[os.path.relpath(path, root)] = (info.st_size if name in files else 0, info.st_mtime_ns)
    return found


@pytest.fixture()
def lacking_corpus(synthetic_corpus, tmp_path):
    """A corpus copy without frame caches, with one mel.npy missing and one holding NaN."""
    root = tmp_path / "corpus"
    shutil.copytree(synthetic_corpus, root)
    for path in glob.glob(str(root / "*" / "*" / (CACHE_PREFIX + "*"))):
        os.remove(path)
    first, second = (root / "train.txt").read_text().split()[:2]
    os.remove(root / first / "mel.npy")
    mel = np.load(root / second / "mel.npy")
    mel[3, 4] = np.nan
    np.save(root / second / "mel.npy", mel)
    return root


def read_some(root, name, **options):
    """Two batches through the training loader (worker-free) and every sample of the val split."""
    cfg = dict(name=name, dataroot=str(root), filelist="train", batch_size=4, num_workers=0, **options)
    loader = build_dataloader(cfg, is_train=True)
    for _, batch in zip(range(2), loader):
        assert batch
    val = (SyncNetDataset if name == "SyncNetDataset" else Wav2LipDataset)(str(root), "val", is_train=False,
                                                                           **options)
    for i in range(len(val)):
        val[i]
    return loader.dataset


@pytest.mark.parametrize("name", ["SyncNetDataset", "Wav2LipDataset"])
def test_training_reads_write_nothing_into_the_corpus_by_default(lacking_corpus, name, ppgan_log):
    before = snapshot(lacking_corpus)
    data = read_some(lacking_corpus, name)
    assert snapshot(lacking_corpus) == before
    assert data.cache_dir is None and data.skipped_samples == 0
    warnings = [m for m in ppgan_log if "no up-to-date 96 px frame cache" in m]
    assert len(warnings) == 2 and "cache_dir" in warnings[0]  # once per dataset, naming the key


def test_a_short_training_run_leaves_the_corpus_untouched(lacking_corpus, tmp_path, capsys):
    before = snapshot(lacking_corpus)
    code, err = run_tool(tiny(lacking_corpus, tmp_path / "run", "total_iters=2", "validate.interval=2",
                              "dataset.train.num_workers=0", "dataset.test.num_workers=0"), capsys)
    assert code == 0, err
    assert snapshot(lacking_corpus) == before


def test_cache_dir_outside_the_corpus_takes_every_write_and_serves_the_next_run(lacking_corpus, tmp_path,
                                                                               monkeypatch):
    before = snapshot(lacking_corpus)
    cache_dir = tmp_path / "cache"
    first = read_some(lacking_corpus, "Wav2LipDataset", cache_dir=str(cache_dir))
    assert snapshot(lacking_corpus) == before
    clip = first.clip_keys[0]
    assert glob.glob(str(cache_dir / clip / (CACHE_PREFIX + "96_*.npy")))
    missing_mel = (lacking_corpus / "train.txt").read_text().split()[0]
    assert (cache_dir / missing_mel / "mel.npy").is_file()
    # The next run finds every cache there: no frame is decoded to build one again.
    monkeypatch.setattr(frame_cache, "decode_frame", lambda *a: pytest.fail("a cache was rebuilt"))
    again = Wav2LipDataset(str(lacking_corpus), "train", cache_dir=str(cache_dir))
    for i in range(0, len(again), 7):
        again[i]
    assert again.num_clips == first.num_clips and snapshot(lacking_corpus) == before


def test_cache_dir_set_to_the_dataroot_writes_beside_the_clips_as_before(lacking_corpus):
    data = read_some(lacking_corpus, "SyncNetDataset", cache_dir=str(lacking_corpus))
    first, second = (lacking_corpus / "train.txt").read_text().split()[:2]
    assert (lacking_corpus / first / "mel.npy").is_file()
    assert np.isfinite(np.load(lacking_corpus / second / "mel.npy")).all()
    clip_dir = data.clip_dirs[data.window(0)[0]]
    assert glob.glob(os.path.join(clip_dir, CACHE_PREFIX + "96_*.npy"))
