"""Loader worker processes that hand batches over through reusable shared-memory slots.

Why not Paddle's own workers: a worker there copies each batch into a new Paddle tensor, moves it
into a freshly created shared-memory segment and pickles the handle; the main process maps it again.
On these machines that costs about 2 ms per MB, so two workers delivered fewer compact Wav2Lip
samples per second (about 1700) than one reader thread (about 2900; benchmarks/BENCHMARKS.md, "Data").
Here the slots are allocated once per pass, before the fork; a worker stacks its batch straight
into a free slot and sends only a short description of the arrays through a queue. The main process
expands the batch out of the slot (the float32 copy it has to make anyway) and frees the slot.

Ordering, errors and shutdown:
- batches come out in the sampler's order, whatever worker finishes first;
- an exception in a worker is raised again in the main process (a ``PPGanError`` keeps its one-line
  message; the worker's traceback is attached as a note);
- a worker that dies (killed, out of memory) raises ``DataError`` instead of a hang;
- finishing, breaking off or garbage-collecting the iteration stops the workers; a worker whose
  parent has gone exits by itself.
"""

from __future__ import annotations

import contextlib
import mmap
import multiprocessing
import os
import pickle
import queue
import random
import traceback
from typing import Any, Callable, ContextManager, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..utils.errors import DataError, PPGanError
from .workers import default_termination

ALIGN = 64  # bytes; every array in a slot starts on a cache line
PREFETCH_PER_WORKER = 2  # batches in flight per worker, as Paddle's default prefetch factor
POLL_SECONDS = 1.0  # how often a waiting process checks that the other side is still alive

# Where ``write_batch`` put each array in a slot: (key, dtype str, shape, byte offset).
Layout = List[Tuple[str, str, Tuple[int, ...], int]]
# A worker's failure as it crosses processes: (pickled exception or None, summary, traceback text).
WorkerError = Tuple[Optional[bytes], str, str]


def _aligned(size: int) -> int:
    return (size + ALIGN - 1) // ALIGN * ALIGN


def slot_bytes_for(item: Mapping[str, Any], batch_size: int) -> int:
    """Bytes one slot needs for a batch of ``batch_size`` items shaped like ``item`` (dict of arrays)."""
    return sum(_aligned(np.asarray(value).nbytes * batch_size) for value in item.values())


def write_batch(items: Sequence[Mapping[str, Any]], buffer: Any, offset: int, capacity: int) -> Optional[Layout]:
    """Stack compact items into ``buffer[offset:offset + capacity]``.

    Args:
        items: list of dicts of arrays with the same keys and shapes.
        buffer: writable buffer (the shared slots).
    Returns:
        Layout [(key, dtype str, shape, offset)], or None when the batch does not fit the slot.
    """
    layout: Layout = []
    position = offset
    arrays = {key: [np.asarray(item[key]) for item in items] for key in items[0]}
    needed = sum(_aligned(sum(a.nbytes for a in values)) for values in arrays.values())
    if needed > capacity or any(a.shape != values[0].shape for values in arrays.values() for a in values):
        return None
    for key, values in arrays.items():
        shape, dtype = (len(values),) + values[0].shape, values[0].dtype
        np.stack(values, out=np.ndarray(shape, dtype=dtype, buffer=buffer, offset=position))
        layout.append((key, dtype.str, shape, position))
        position += _aligned(int(np.prod(shape)) * dtype.itemsize)
    return layout


def read_batch(layout: Layout, buffer: Any) -> Dict[str, np.ndarray]:
    """The arrays ``write_batch`` wrote, as views on ``buffer`` (valid until the slot is reused)."""
    return {key: np.ndarray(shape, dtype=np.dtype(dtype), buffer=buffer, offset=position)
            for key, dtype, shape, position in layout}


def _portable_error(error: BaseException) -> WorkerError:
    """(pickled exception or None, 'Type: message', worker traceback text)."""
    text = "".join(traceback.format_exception(error))
    try:
        blob = pickle.dumps(error)
        pickle.loads(blob)  # some exceptions pickle but cannot be rebuilt
    except Exception:
        blob = None  # (the summary and traceback still travel)
    return blob, f"{type(error).__name__}: {error}", text


def _worker_loop(dataset: Any, worker_id: int, seed: int, tasks: Any, results: Any, buffer: Any, slot_size: int,
                 parent: int) -> None:
    """Body of one worker: fetch (batch number, slot, indices) tasks until told to stop."""
    default_termination()
    # Forked workers share the parent's global RNG states; give each its own stream.
    np.random.seed((seed * 7919 + worker_id) % 2 ** 32)
    random.seed(seed * 7919 + worker_id)
    try:
        while _serve_one_task(dataset, tasks, results, buffer, slot_size, parent):
            pass
    except KeyboardInterrupt:
        # Ctrl-C reaches the whole process group: the training process reports it, the
        # workers just leave (one traceback per worker would bury that report).
        return


def _serve_one_task(dataset: Any, tasks: Any, results: Any, buffer: Any, slot_size: int, parent: int) -> bool:
    """Wait for one task and answer it; False when the worker should stop."""
    try:
        task = tasks.get(timeout=POLL_SECONDS)
    except queue.Empty:
        return os.getppid() == parent  # the training process is gone: do not linger
    if task is None:
        return False
    number, slot, indices = task
    try:
        items = [dataset.compact_item(index) for index in indices]
        layout = write_batch(items, buffer, slot * slot_size, slot_size)
        # A batch that does not fit (items of another size) travels through the queue instead.
        results.put((number, slot, layout, None if layout is not None else items, None))
    except Exception as error:  # reported to the main process, which raises it
        results.put((number, slot, None, None, _portable_error(error)))
    return True


def _raise_worker_error(worker_error: WorkerError) -> None:
    """Raise a worker's failure here: its own PPGanError (with the worker traceback) or a DataError."""
    blob, summary, text = worker_error
    error = pickle.loads(blob) if blob is not None else None
    if isinstance(error, PPGanError):
        error.add_note("raised in a DataLoader worker:\n" + text)
        raise error
    raise DataError(f"a DataLoader worker failed: {summary} (worker traceback below; with num_workers: 0 "
                    f"it is raised in the training process)\n{text}")


class SharedMemoryWorkers:
    """One pass over ``batch_sampler`` with ``num_workers`` forked processes making compact batches.

    Args:
        dataset: has ``compact_item(index) -> dict of arrays`` (fixed shapes per key).
        batch_sampler: iterable of index lists (one pass).
        num_workers: processes to fork (>= 1).
        finish: ``finish(dict of arrays viewing a slot) -> batch``; must not return views of its
            input (the slot is reused afterwards); arrays it passes through are copied.
        seed: seeds each worker's global NumPy / ``random`` state.
        fork_context: context manager wrapped around the fork (e.g. OpenCV thread settings).
    Iterating yields ``finish`` of every batch, in the sampler's order.
    """

    def __init__(self, dataset: Any, batch_sampler: Iterable[Sequence[int]], num_workers: int,
                 finish: Callable[[Dict[str, np.ndarray]], Dict[str, Any]], seed: int = 0,
                 fork_context: Optional[ContextManager[Any]] = None) -> None:
        self.dataset, self.finish = dataset, finish
        self.indices = iter(batch_sampler)
        self.batch_size = getattr(batch_sampler, "batch_size", None) or 0  # slot size; 0: the first batch's
        self.num_workers, self.seed = int(num_workers), int(seed)
        self.fork_context = fork_context
        self.workers: List[Any] = []  # multiprocessing.Process objects of the fork context

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        first = next(self.indices, None)
        if first is None:
            return
        ctx = multiprocessing.get_context("fork")
        # One probe item in this process sizes the slots (a few hundred microseconds per pass).
        slot_size = slot_bytes_for(self.dataset.compact_item(first[0]), max(len(first), self.batch_size))
        slots = PREFETCH_PER_WORKER * self.num_workers
        buffer = mmap.mmap(-1, slot_size * slots)  # anonymous and shared: inherited by the fork
        tasks, results = ctx.Queue(), ctx.Queue()
        finished = False
        try:
            self._start_workers(ctx, tasks, results, buffer, slot_size)
            yield from self._batches(first, tasks, results, buffer, slot_size, slots)
            finished = True
        finally:
            self._stop_workers(tasks, results, idle=finished)

    def _start_workers(self, ctx: Any, tasks: Any, results: Any, buffer: Any, slot_size: int) -> None:
        """Fork the workers (inside ``fork_context``)."""
        with self.fork_context or contextlib.nullcontext():
            for worker_id in range(self.num_workers):
                process = ctx.Process(target=_worker_loop, daemon=True, name=f"ppgan-loader-{worker_id}",
                                      args=(self.dataset, worker_id, self.seed, tasks, results, buffer,
                                            slot_size, os.getpid()))
                process.start()
                self.workers.append(process)

    def _batches(self, first: Sequence[int], tasks: Any, results: Any, buffer: Any, slot_size: int,
                 slots: int) -> Iterator[Dict[str, Any]]:
        """Keep every slot busy and yield ``finish`` of each batch in order."""
        pending, free = [first], list(range(slots))
        arrived: Dict[int, Tuple[Any, ...]] = {}
        sent = received = 0

        def send_next() -> None:
            nonlocal sent
            indices = pending.pop() if pending else next(self.indices, None)
            if indices is not None:
                tasks.put((sent, free.pop(), list(indices)))
                sent += 1

        for _ in range(slots):
            send_next()
        view = memoryview(buffer)
        whole = np.frombuffer(view, dtype=np.uint8)
        while received < sent:
            while received not in arrived:
                message = self._receive(results)
                arrived[message[0]] = message[1:]
            slot, layout, inline_items, worker_error = arrived.pop(received)
            received += 1
            if worker_error is not None:
                _raise_worker_error(worker_error)
            if layout is not None:
                batch = self.finish(read_batch(layout, view))
            else:
                batch = self.finish({key: np.stack([item[key] for item in inline_items]) for key in inline_items[0]})
            # Whatever ``finish`` passed through still lives in the slot: copy it before reuse.
            batch = {key: np.array(value) if isinstance(value, np.ndarray) and np.may_share_memory(value, whole)
                     else value for key, value in batch.items()}
            free.append(slot)
            send_next()
            yield batch

    def _receive(self, results: Any) -> Tuple[Any, ...]:
        """The next result message; DataError if a worker died instead of answering."""
        while True:
            try:
                return results.get(timeout=POLL_SECONDS)
            except queue.Empty:
                for worker_id, process in enumerate(self.workers):
                    if process.exitcode is not None:
                        raise DataError(
                            f"DataLoader worker {worker_id} exited unexpectedly (exit code {process.exitcode}): "
                            "it may have run out of memory or been killed; lower num_workers or use 0") from None

    def _stop_workers(self, tasks: Any, results: Any, idle: bool) -> None:
        """Idle workers (the pass is complete) are told to stop; busy ones (broken off) are terminated."""
        if idle:
            for _ in self.workers:
                tasks.put(None)
        for process in self.workers:
            if idle:
                process.join(timeout=5)
            if process.is_alive():
                process.terminate()
            process.join()
        for channel in (tasks, results):
            channel.cancel_join_thread()
            channel.close()
        self.workers = []
