"""Preprocess a whole tree of talking-face videos into the corpus layout the datasets read.

Videos are processed one by one (``preprocess_video``), in this process or a pool of forked
workers, then the split lists ``<out>/{train,val,test}.txt`` are rewritten from every finished
video. Resumable: each finished video leaves ``<out>/.preprocess/<key>.json``; later runs skip it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import traceback
import zlib
from typing import Any, Dict, Iterable, List, Optional, Tuple

from ..datasets.workers import default_termination, single_threaded_opencv_while_forking
from ..utils.errors import DataError, PPGanError
from ..utils.logger import get_logger
from .preprocess_video import (STAGING_DIR, STATUS_DIR, VIDEO_EXTENSIONS, DetectorSpec, PreprocessOptions,
                               VideoResult, find_videos, process_video, status_path)

SPLITS = ("train", "val", "test")

_WORKER: Dict[str, Any] = {}  # per process: detector spec, output root, options, built detector


def _init_worker(spec: DetectorSpec, out_root: str, options: PreprocessOptions, forked: bool = False) -> None:
    """Set up this process's ``_WORKER`` (in a forked pool worker, SIGTERM just ends it)."""
    if forked:
        default_termination()
    _WORKER.clear()
    _WORKER.update(spec=spec, out_root=out_root, options=options, cache={})


def _run_job(job: Tuple[str, str]) -> VideoResult:
    """Process one (key, path); every failure becomes a 'failed' result carrying its reason."""
    key, path = job
    try:
        detector = _WORKER["spec"].build(key, _WORKER["cache"])
        return process_video(key, path, _WORKER["out_root"], detector, _WORKER["options"])
    except PPGanError as exc:
        return VideoResult(key, "failed", str(exc))
    except Exception as exc:  # noqa: BLE001 - one odd video must not stop a 45k-video run; reported
        detail = traceback.format_exc(limit=4).strip().splitlines()
        return VideoResult(key, "failed", f"{type(exc).__name__}: {exc} [{' | '.join(detail[-3:])}]")


def _finished_videos(out_root: str) -> Dict[str, List[str]]:
    """{video key: its clip names} for every video a run has finished in ``out_root``."""
    status_root = os.path.join(out_root, STATUS_DIR)
    finished: Dict[str, List[str]] = {}
    for folder, _, files in os.walk(status_root):
        for name in files:
            if name.endswith(".json"):
                with open(os.path.join(folder, name), "r", encoding="utf-8") as f:
                    record = json.load(f)
                finished[record["key"]] = record["clips"]
    return finished


def assign_splits(video_keys: Iterable[str], splits_dir: Optional[str] = None, val_fraction: float = 0.05,
                  test_fraction: float = 0.05) -> Dict[str, List[str]]:
    """Put each video in train, val or test (all pieces of a video go together).

    With ``splits_dir`` (a folder with train.txt / val.txt / test.txt listing video keys, e.g.
    LRS2's own lists), those decide and unlisted videos are left out. Otherwise videos are ranked
    by a hash of their key, so the assignment does not depend on the order or on other videos
    much: the lowest ranks go to test, the next to val (at least one each once there are 3 videos).

    Returns:
        {"train": [...], "val": [...], "test": [...]} of video keys.
    """
    if splits_dir:
        owner = {}
        for split in SPLITS:
            listed = os.path.join(splits_dir, f"{split}.txt")
            if os.path.isfile(listed):
                with open(listed, "r", encoding="utf-8") as f:
                    owner.update({line.split()[0]: split for line in f if line.strip()})
        return {split: sorted(k for k in video_keys if owner.get(k) == split) for split in SPLITS}
    ranked = sorted(video_keys, key=lambda k: (zlib.crc32(k.encode("utf-8")), k))
    minimum = 1 if len(ranked) >= 3 else 0
    n_test = max(minimum, int(round(len(ranked) * test_fraction))) if test_fraction > 0 else 0
    n_val = max(minimum, int(round(len(ranked) * val_fraction))) if val_fraction > 0 else 0
    return {"test": sorted(ranked[:n_test]), "val": sorted(ranked[n_test:n_test + n_val]),
            "train": sorted(ranked[n_test + n_val:])}


def write_split_lists(out_root: str, splits_dir: Optional[str] = None, val_fraction: float = 0.05,
                      test_fraction: float = 0.05) -> Dict[str, int]:
    """Rewrite ``<out_root>/{train,val,test}.txt`` from every finished video; returns clip counts."""
    finished = _finished_videos(out_root)
    by_split = assign_splits(list(finished), splits_dir, val_fraction, test_fraction)
    counts: Dict[str, int] = {}
    for split, keys in by_split.items():
        clips = [clip for key in keys for clip in finished[key]]
        path = os.path.join(out_root, f"{split}.txt")
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("".join(f"{clip}\n" for clip in clips))
        os.replace(tmp, path)
        counts[split] = len(clips)
    counts["unlisted"] = len(finished) - sum(len(keys) for keys in by_split.values())
    return counts


@dataclasses.dataclass
class PreprocessSummary:
    """What a run did; ``str()`` gives the report the tool prints."""

    results: List[VideoResult]
    splits: Dict[str, int]
    seconds: float

    def count(self, status: str) -> int:
        """How many videos ended with ``status`` (done / resumed / skipped / failed)."""
        return sum(r.status == status for r in self.results)

    @property
    def frames(self) -> int:
        """Frames written over all videos."""
        return sum(r.frames for r in self.results)

    def __str__(self) -> str:
        lines = [f"videos: {self.count('done')} done, {self.count('resumed')} already done, "
                 f"{self.count('skipped')} skipped, {self.count('failed')} failed "
                 f"({self.seconds:.1f} s, {self.frames / max(self.seconds, 1e-9):.1f} frames/s)",
                 f"clips written: {sum(len(r.clips) for r in self.results if r.status == 'done')}; frames: "
                 f"{self.frames} written, {sum(r.interpolated for r in self.results)} with an interpolated "
                 f"box, {sum(r.dropped for r in self.results)} dropped"]
        for status in ("skipped", "failed"):
            lines += [f"{status}: {r.key}: {r.reason}" for r in self.results if r.status == status]
        lines.append("split lists (clips): " + ", ".join(f"{k} {v}" for k, v in self.splits.items()))
        return "\n".join(lines)


def preprocess_corpus(data_root: str, out_root: str, detector: Optional[DetectorSpec] = None, workers: int = 1,
                      options: Optional[PreprocessOptions] = None, splits_dir: Optional[str] = None,
                      val_fraction: float = 0.05, test_fraction: float = 0.05,
                      progress: bool = True) -> PreprocessSummary:
    """Preprocess every video under ``data_root`` into ``out_root``; resumes an interrupted run.

    Args:
        data_root: folder tree of videos (LRS2 ``mvlrs_v1`` or ``mvlrs_v1/main``, or any tree).
        out_root: corpus folder to write.
        detector: ``DetectorSpec``. Default: the ``haar`` detector.
        workers: processes working on different videos at once. Default: 1 (this process).
        options: ``PreprocessOptions``. Default: PreprocessOptions().
        splits_dir, val_fraction, test_fraction: see ``assign_splits``.
    Returns:
        PreprocessSummary (failures are in it, one reason per video, never raised).
    Raises:
        DataError: no video under ``data_root``. ConfigError: bad options.
    """
    from tqdm import tqdm

    options = options or PreprocessOptions()
    options.check()
    detector = detector or DetectorSpec()
    started = time.perf_counter()
    videos = find_videos(data_root)
    if not videos:
        raise DataError(f"no video ({', '.join(VIDEO_EXTENSIONS)}) found under {data_root}")
    out_root = os.path.abspath(out_root)
    os.makedirs(out_root, exist_ok=True)
    shutil.rmtree(os.path.join(out_root, STAGING_DIR), ignore_errors=True)  # leftovers of a killed run
    results = [VideoResult(key, "resumed") for key, _ in videos if os.path.isfile(status_path(out_root, key))]
    todo = [(key, path) for key, path in videos if not os.path.isfile(status_path(out_root, key))]
    bar = tqdm(total=len(todo), desc="preprocess", unit="video", disable=not progress)
    if workers <= 1 or len(todo) <= 1:
        _init_worker(detector, out_root, options)
        outcomes: Iterable[VideoResult] = map(_run_job, todo)
        pool = None
    else:
        import multiprocessing

        with single_threaded_opencv_while_forking():  # one worker per core already
            pool = multiprocessing.get_context("fork").Pool(min(workers, len(todo)), initializer=_init_worker,
                                                            initargs=(detector, out_root, options, True))
        outcomes = pool.imap_unordered(_run_job, todo)
    try:
        for result in outcomes:
            results.append(result)
            if result.status == "failed":
                get_logger().warning("failed: %s: %s", result.key, result.reason)
            bar.update(1)
            bar.set_postfix(failed=sum(r.status == "failed" for r in results), refresh=False)
        if pool is not None:
            pool.close()  # all done: the workers exit on their own
            pool.join()
            pool = None
    finally:
        bar.close()
        if pool is not None:  # an error or an interrupt: stop the workers now
            pool.terminate()
            pool.join()
        shutil.rmtree(os.path.join(out_root, STAGING_DIR), ignore_errors=True)
    splits = write_split_lists(out_root, splits_dir, val_fraction, test_fraction)
    return PreprocessSummary(results, splits, time.perf_counter() - started)
