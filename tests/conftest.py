"""Shared pytest fixtures: small synthetic corpora, written once per test session."""

import os

import pytest

from ppgan.corpus_tools.synthetic import make_synthetic_corpus


@pytest.fixture(scope="session")
def synthetic_corpus(tmp_path_factory):
    """Path to a preprocessed synthetic corpus: 3 speakers x 4 clips of 40-60 frames, 96 px crops,
    seed 0 (``<speaker>/<clip>/{i}.jpg``, ``audio.wav``, ``mel.npy``, ``train/val/test.txt``,
    ``corpus.json``). Session-scoped: treat it as read-only."""
    out = tmp_path_factory.mktemp("synthetic") / "corpus"
    make_synthetic_corpus(str(out), speakers=3, clips=4, seed=0, min_frames=40, max_frames=60,
                          progress=False)
    return out


@pytest.fixture(scope="session")
def synthetic_corpus_raw(tmp_path_factory):
    """Path to a synthetic corpus with raw videos: 2 speakers x 2 clips of 40-50 frames, seed 1;
    besides the preprocessed layout it holds ``raw/<speaker>/<clip>.mp4`` (160x160 frames, 25 fps,
    FLAC audio) and ``raw/boxes.json`` ([top, bottom, left, right] of each crop). Read-only."""
    out = tmp_path_factory.mktemp("synthetic_raw") / "corpus"
    make_synthetic_corpus(str(out), speakers=2, clips=2, seed=1, min_frames=40, max_frames=50,
                          raw_videos=True, progress=False)
    return out


@pytest.fixture(scope="session", autouse=True)
def private_program_cache(tmp_path_factory):
    """Exported programs are cached in a folder of this session, never the user's
    ``~/.cache/ppgan/programs`` (set in ``os.environ`` so tool subprocesses inherit it)."""
    previous = os.environ.get("PPGAN_PROGRAM_CACHE")
    os.environ["PPGAN_PROGRAM_CACHE"] = str(tmp_path_factory.mktemp("program_cache"))
    yield
    if previous is None:
        os.environ.pop("PPGAN_PROGRAM_CACHE", None)
    else:
        os.environ["PPGAN_PROGRAM_CACHE"] = previous
