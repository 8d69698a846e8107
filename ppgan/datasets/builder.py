"""Dataset registry and the builders that turn a ``dataset.train`` / ``dataset.test`` block into a loader.

A block holds the dataset's own keys plus two loader keys::

    dataset:
      train:
        name: Wav2LipDataset            # any name registered in DATASETS
        dataroot: data/lrs2_preprocessed
        filelist: train.txt
        batch_size: 8                   # PER RANK (the global batch is batch_size * ranks)
        num_workers: 4                  # loader processes per rank; 0 reads in the training process

    loader = build_dataloader(cfg.dataset.train, is_train=True, seed=cfg.get("seed", 0),
                              config_dir=os.path.dirname(config_path))

Each epoch, call ``set_loader_epoch(loader, epoch)`` before iterating: it reshuffles the shards and
changes the per-sample draws, reproducibly from (seed, epoch).

Datasets with ``compact_item`` / ``expand_batch`` (the lip-sync ones) travel through the loader as
uint8 frames and are expanded to float32 once per batch in the consuming process: Paddle's hand-over
of a batch (tensor creation, worker shared memory) costs about 1 ms per MB on these machines, and
the float32 frames are 4-6x bigger than the uint8 ones (see benchmarks/BENCHMARKS.md, "Data").
"""

from __future__ import annotations

import copy
import math
from typing import Any, Dict, Iterator, List, Mapping, Optional

import numpy as np
import paddle
from paddle.io import DistributedBatchSampler

from ..utils import comm
from ..utils.errors import ConfigError, DataError
from ..utils.registry import Registry, build_from_config
from .worker_pool import SharedMemoryWorkers
from .workers import single_threaded_opencv_while_forking

DATASETS = Registry("dataset")
LOADER_KEYS = ("batch_size", "num_workers")


def _positive_int(cfg: Mapping[str, Any], key: str, default: int, where: str, minimum: int = 1) -> int:
    """``cfg[key]`` (``default`` when unset) checked to be an int >= ``minimum``."""
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}.{key} must be an integer >= {minimum}, got {value!r}")
    return value


def build_dataset(cfg: Mapping[str, Any], is_train: bool = True, seed: int = 0, config_dir: Optional[str] = None,
                  where: Optional[str] = None) -> paddle.io.Dataset[Any]:
    """Build the dataset a config block describes (loader keys are ignored).

    Args:
        cfg: mapping with ``name`` and the dataset's keyword arguments.
        is_train: passed to the dataset unless the block sets it.
        seed: default seed of the per-sample draws.
        config_dir: folder of the config file, for resolving relative paths.
        where: dotted config path used in error messages. Default: dataset.train / dataset.test.
    Returns:
        The dataset instance.
    """
    where = where or ("dataset.train" if is_train else "dataset.test")
    block = {k: v for k, v in dict(cfg).items() if k not in LOADER_KEYS}
    return build_from_config(block, DATASETS, where=where, is_train=is_train, seed=seed,
                             config_dir=config_dir)


class SeededDistributedBatchSampler(DistributedBatchSampler):
    """``DistributedBatchSampler`` whose order depends on (seed, epoch), with disjoint shards.

    Training (``drop_last``): a permutation of all indices is cut into ``world`` equal contiguous
    shards and the < world leftovers are dropped, so no index is on two ranks. Evaluation: the
    order is fixed and the tail is padded by wrapping around, so every rank runs the same number of
    batches (collective calls need that); at most world - 1 samples are seen twice.
    """

    def __init__(self, dataset: paddle.io.Dataset[Any], batch_size: int, num_replicas: int = 1, rank: int = 0,
                 shuffle: bool = False, drop_last: bool = False, seed: int = 0) -> None:
        super().__init__(dataset, batch_size, num_replicas=num_replicas, rank=rank,
                         shuffle=shuffle, drop_last=drop_last)
        self.seed = int(seed)
        if drop_last:
            self.num_samples = len(dataset) // self.nranks
        else:
            self.num_samples = int(math.ceil(len(dataset) / self.nranks))
        self.total_size = self.num_samples * self.nranks

    def __iter__(self) -> Iterator[List[int]]:
        count = len(self.dataset)
        order = np.arange(count)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(count)
            self.epoch += 1  # as Paddle does: a new order next pass even without set_epoch
        if self.total_size > count:
            order = np.concatenate([order, np.resize(order, self.total_size - count)])
        mine = order[self.local_rank * self.num_samples:(self.local_rank + 1) * self.num_samples]
        for begin in range(0, len(mine), self.batch_size):
            batch = mine[begin:begin + self.batch_size].tolist()
            if len(batch) < self.batch_size and self.drop_last:
                return
            yield batch


class _CompactItems(paddle.io.Dataset[Dict[str, np.ndarray]]):
    """What the loader fetches: a dataset's compact items, by the same indices."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Dict[str, np.ndarray]:
        return self.dataset.compact_item(index)


class ExpandingDataLoader(paddle.io.DataLoader):
    """``paddle.io.DataLoader`` whose workers run OpenCV single-threaded and which, for datasets with
    ``compact_item`` / ``expand_batch``, fetches compact items and yields expanded batches.

    Batches are equal to collating ``dataset[i]`` (float32 Tensors, batch axis first); the float32
    arrays are never copied into Paddle. With ``num_workers=0`` the expansion runs in Paddle's reader
    thread, overlapping the consumer. With workers, compact batches come from our own worker
    processes through shared-memory slots (``worker_pool``: Paddle's hand-over of a batch costs
    more than making it) and are expanded in this process. ``loader.dataset`` is the dataset
    itself, so ``set_epoch`` and indexing work on it as with a plain loader.
    """

    # Duck-typed beyond Paddle's stubs: datasets may add compact_item / expand_batch / set_epoch,
    # and build_dataloader's sampler adds seed / epoch / set_epoch.
    dataset: Any
    batch_sampler: Any

    # Paddle's stub names its own iterator class; this one also yields from a generator.
    def __iter__(self) -> Iterator[Dict[str, paddle.Tensor]]:  # type: ignore[override]
        compact = hasattr(self.dataset, "compact_item")
        opencv_once = single_threaded_opencv_while_forking(self.num_workers > 0)  # the workers start in it
        if compact and self.num_workers > 0:
            sampler = self.batch_sampler
            seed = getattr(sampler, "seed", 0) * 1000003 + getattr(sampler, "epoch", 0)
            pool = SharedMemoryWorkers(self.dataset, sampler, self.num_workers, self.dataset.expand_batch,
                                       seed=seed, fork_context=opencv_once)
            return ({key: _as_cpu_tensor(value) for key, value in batch.items()} for batch in pool)
        fetching = self
        if compact:
            # Paddle's iterator fetches from ``loader.dataset``: give it a copy of this loader whose
            # dataset is the compact view (the sampler and all other settings are shared).
            fetching = copy.copy(self)
            fetching.dataset = _CompactItems(self.dataset)
            # Paddle's _CollateFn protocol lists per-element overloads; a dict-batch collate is fine.
            fetching.collate_fn = self._collate_expanded  # type: ignore[assignment]
        with opencv_once:
            return paddle.io.DataLoader.__iter__(fetching)

    def _collate_expanded(self, samples: List[Dict[str, np.ndarray]]) -> Dict[str, paddle.Tensor]:
        """Compact samples -> one float32 batch of CPU Tensors (in the reader thread)."""
        batch = self.dataset.expand_batch({key: np.stack([s[key] for s in samples]) for key in samples[0]})
        return {key: _as_cpu_tensor(value) for key, value in batch.items()}


def _as_cpu_tensor(value: Any) -> Any:
    """An array as a CPU Tensor (anything else passes through)."""
    if not isinstance(value, np.ndarray):
        return value
    # A copy, not a zero-copy DLPack view: a view's memory is released by numpy's DLPack deleter,
    # which Paddle may run on one of its pool threads while holding its deleter lock; that thread
    # then waits for the GIL while the main thread, holding the GIL, waits for the lock (a
    # deadlock seen in training). The copy costs about 1 ms per MB, against steps of 0.1-10 s.
    return paddle.to_tensor(value, place=paddle.CPUPlace())


def close_iterator(iterator: Any) -> None:
    """Stop a DataLoader iterator's reader thread (and worker processes) now.

    An iterator left before its end keeps a thread blocked on its full batch queue, and that
    thread references the iterator, so it is never collected: every early ``break`` (a bounded
    evaluation, the end of training mid-epoch) would leak a thread and its queued batches.
    """
    queue, thread = getattr(iterator, "_blocking_queue", None), getattr(iterator, "_thread", None)
    if queue is not None and thread is not None and not hasattr(iterator, "_workers"):
        # In-process reader: closing its queue wakes it, so it returns at once; Paddle's shutdown
        # below would otherwise poll the thread in whole seconds. (Worker processes: Paddle's
        # shutdown stops them and their reader itself.)
        queue.close()
        thread.join(timeout=10)
    shutdown = getattr(iterator, "_try_shutdown_all", None)  # Paddle's own cleanup (``__del__``)
    if shutdown is not None:
        shutdown()


def build_dataloader(cfg: Mapping[str, Any], is_train: bool = True, seed: int = 0, config_dir: Optional[str] = None,
                     where: Optional[str] = None) -> ExpandingDataLoader:
    """Build a ``paddle.io.DataLoader`` for one rank from a dataset config block.

    Args:
        cfg: dataset block with ``name``, the dataset's keys, ``batch_size`` (per rank, default 1)
            and ``num_workers`` (default 0).
        is_train: shuffled, drop_last batches and epoch-dependent draws; else a fixed order.
        seed: seed of the shuffle and of the per-sample draws.
        config_dir: folder of the config file, for resolving relative paths.
        where: dotted config path used in error messages.
    Returns:
        ``ExpandingDataLoader`` yielding dicts of float32 Tensors (batch dimension first). Rank and
        world size come from ``ppgan.utils.comm``, so the same call works in 1 or N processes.
    Raises:
        DataError: in training, fewer clips than ``batch_size`` or fewer windows than one batch
            on every rank.
    """
    where = where or ("dataset.train" if is_train else "dataset.test")
    batch_size = _positive_int(cfg, "batch_size", 1, where)
    num_workers = _positive_int(cfg, "num_workers", 0, where, minimum=0)
    dataset = build_dataset(cfg, is_train=is_train, seed=seed, config_dir=config_dir, where=where)
    world, rank = comm.get_world_size(), comm.get_rank()
    if is_train:
        clips = getattr(dataset, "num_clips", len(dataset))
        source = getattr(dataset, "filelist", where)
        if clips < batch_size:
            raise DataError(f"{source} has {clips} usable clip(s), fewer than {where}.batch_size "
                            f"{batch_size}: list more clips or lower the batch size")
        if len(dataset) < batch_size * world:
            raise DataError(f"{source} yields {len(dataset)} samples, fewer than one batch of "
                            f"{batch_size} on each of {world} rank(s): add clips or lower the batch size")
    sampler = SeededDistributedBatchSampler(dataset, batch_size, num_replicas=world, rank=rank,
                                            shuffle=is_train, drop_last=is_train, seed=seed)
    return ExpandingDataLoader(dataset, batch_sampler=sampler, num_workers=num_workers)


def set_loader_epoch(loader: ExpandingDataLoader, epoch: int) -> None:
    """Start epoch ``epoch``: new shard order and new per-sample draws, reproducibly."""
    loader.batch_sampler.set_epoch(epoch)
    if hasattr(loader.dataset, "set_epoch"):
        loader.dataset.set_epoch(epoch)
