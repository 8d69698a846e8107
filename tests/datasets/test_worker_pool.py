"""The shared-memory loader workers: order, copies, fallbacks, errors, dead workers, shutdown."""

import multiprocessing
import os
import subprocess
import sys

import numpy as np
import pytest

from ppgan.datasets.worker_pool import SharedMemoryWorkers, read_batch, slot_bytes_for, write_batch
from ppgan.utils.errors import DataError


class CountingItems:
    """Item i: uint8 frames filled with i % 251, a float32 feature [i, 2i], and a label."""

    def __init__(self, count=23, fail_at=None, error=None, exit_at=None, sizes=None):
        self.count, self.fail_at, self.error, self.exit_at, self.sizes = count, fail_at, error, exit_at, sizes

    def __len__(self):
        return self.count

    def compact_item(self, index):
        if index == self.fail_at:
            raise self.error
        if index == self.exit_at:
            os._exit(3)  # a worker killed mid-batch
        side = self.sizes(index) if self.sizes else 4
        return {"frames": np.full((2, side, side), index % 251, dtype=np.uint8),
                "feature": np.array([index, 2 * index], dtype=np.float32),
                "label": np.array([index % 2], dtype=np.int64)}

    @staticmethod
    def expand(batch):
        # "feature" and "label" pass through: they are views on a slot until the pool copies them.
        return {"frames": batch["frames"].astype(np.float32) / 255.0, "feature": batch["feature"],
                "label": batch["label"]}


def index_batches(count, size):
    return [list(range(i, min(i + size, count))) for i in range(0, count, size)]


def expected_batch(dataset, indices):
    items = [dataset.compact_item(i) for i in indices]
    return dataset.expand({key: np.stack([item[key] for item in items]) for key in items[0]})


def assert_no_workers_left():
    assert multiprocessing.active_children() == []


def test_slot_round_trip_and_what_does_not_fit():
    items = [CountingItems().compact_item(i) for i in range(3)]
    size = slot_bytes_for(items[0], 3)
    buffer = bytearray(2 * size)
    layout = write_batch(items, buffer, size, size)  # the second slot
    batch = read_batch(layout, memoryview(buffer))
    assert batch["frames"].shape == (3, 2, 4, 4) and batch["frames"].dtype == np.uint8
    np.testing.assert_array_equal(batch["feature"], [[0, 0], [1, 2], [2, 4]])
    assert all(position % 64 == 0 and position >= size for _, _, _, position in layout)
    assert write_batch(items, buffer, 0, size - 1) is None  # too big for the slot
    mixed = items[:2] + [CountingItems(sizes=lambda i: 5).compact_item(2)]
    assert write_batch(mixed, buffer, 0, 10 * size) is None  # shapes differ: not one array


@pytest.mark.parametrize("workers", [1, 3])
def test_batches_come_in_sampler_order_and_stay_valid(workers):
    data = CountingItems(count=23)
    sampler = index_batches(23, 2)[::-1]  # any order, a short first batch, more batches than slots
    batches = list(SharedMemoryWorkers(data, sampler, workers, data.expand))
    # All kept at once: nothing handed out may still point into a slot that was reused since.
    assert len(batches) == len(sampler)
    for batch, indices in zip(batches, sampler):
        expected = expected_batch(data, indices)
        assert batch.keys() == expected.keys()
        for key in expected:
            np.testing.assert_array_equal(batch[key], expected[key])
    assert_no_workers_left()


def test_items_bigger_than_the_probe_travel_through_the_queue():
    # The first item sizes the slots; bigger ones later in the pass still arrive, intact.
    data = CountingItems(count=6, sizes=lambda i: 4 if i == 0 else 9)
    sampler = [[i] for i in range(6)]
    batches = list(SharedMemoryWorkers(data, sampler, 2, data.expand))
    for batch, indices in zip(batches, sampler):
        np.testing.assert_array_equal(batch["frames"], expected_batch(data, indices)["frames"])
    assert batches[1]["frames"].shape == (1, 2, 9, 9)


def test_a_worker_error_is_raised_here_with_its_message():
    data = CountingItems(fail_at=9, error=DataError("clip s1/c2 is damaged: re-run preprocessing"))
    with pytest.raises(DataError, match="clip s1/c2 is damaged") as raised:
        list(SharedMemoryWorkers(data, index_batches(23, 4), 2, data.expand))
    assert any("raised in a DataLoader worker" in note for note in raised.value.__notes__)
    assert_no_workers_left()
    # Errors that are not ours arrive as a DataError naming the original.
    data = CountingItems(fail_at=9, error=ValueError("odd pixel"))
    with pytest.raises(DataError, match="a DataLoader worker failed: ValueError: odd pixel"):
        list(SharedMemoryWorkers(data, index_batches(23, 4), 2, data.expand))
    assert_no_workers_left()


def test_a_dead_worker_raises_instead_of_hanging():
    data = CountingItems(exit_at=6)
    with pytest.raises(DataError, match=r"worker \d exited unexpectedly \(exit code 3\)"):
        list(SharedMemoryWorkers(data, index_batches(23, 4), 2, data.expand))
    assert_no_workers_left()


def test_breaking_off_stops_the_workers():
    data = CountingItems()
    batches = iter(SharedMemoryWorkers(data, index_batches(23, 2), 2, data.expand))
    first = next(batches)
    np.testing.assert_array_equal(first["feature"], [[0, 0], [1, 2]])
    assert len(multiprocessing.active_children()) == 2
    batches.close()  # what garbage collection of an abandoned loop does
    assert_no_workers_left()


STOPPED_WORKERS = """
import sys
import numpy as np
from ppgan.datasets.worker_pool import SharedMemoryWorkers

class Items:
    def compact_item(self, index):
        return {"a": np.full(3, index, np.uint8)}

batches = iter(SharedMemoryWorkers(Items(), [[i] for i in range(30)], 2, lambda b: {"a": b["a"].copy()}))
next(batches)
batches.close()
print("stopped")
"""


def test_stopped_workers_print_no_crash_report():
    # Workers inherit Paddle's SIGTERM handler, which prints a C++ "FatalError" report. In a fresh
    # process, as a user's script is (under pytest that handler does not fire).
    run = subprocess.run([sys.executable, "-c", STOPPED_WORKERS], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=120)
    assert run.returncode == 0 and "stopped" in run.stdout, run.stderr[-2000:]
    printed = run.stdout + run.stderr  # Paddle prints the report on stdout
    assert "FatalError" not in printed and "Termination signal" not in printed, printed[-2000:]


class RandomItems(CountingItems):
    """Items drawn from the global NumPy RNG, as careless datasets do."""

    def compact_item(self, index):
        return {"frames": np.zeros((1,), np.uint8),
                "feature": np.array([np.random.randint(1 << 30)], dtype=np.float32), "label": np.zeros(1)}


def test_workers_do_not_share_a_random_stream():
    data = RandomItems(count=40)
    # One item per batch and two workers: forked with the same global state, both would draw the
    # same numbers and half the values would repeat.
    batches = list(SharedMemoryWorkers(data, [[i] for i in range(40)], 2, data.expand, seed=5))
    values = [float(b["feature"][0, 0]) for b in batches]
    assert len(set(values)) == len(values)


INTERRUPTED_WORKER = """
import os, signal, sys
# A run started in the background (CI, nohup, `cmd &`) inherits SIGINT ignored: restore Python's
# Ctrl-C handler, as in a terminal, so the worker really sees the interrupt.
signal.signal(signal.SIGINT, signal.default_int_handler)
import numpy as np
from ppgan.datasets.worker_pool import SharedMemoryWorkers
from ppgan.utils.errors import DataError

class Items:
    def compact_item(self, index):
        if index == 3 and os.getpid() != PARENT:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, as the terminal sends it to every process
        return {"a": np.full(3, index, np.uint8)}

PARENT = os.getpid()
try:
    list(SharedMemoryWorkers(Items(), [[i] for i in range(8)], 2, lambda b: {"a": b["a"].copy()}))
except DataError as error:
    print("raised:", error)
"""


def test_an_interrupted_worker_leaves_without_a_traceback():
    run = subprocess.run([sys.executable, "-c", INTERRUPTED_WORKER], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=120)
    assert "raised: DataLoader worker" in run.stdout and "exited unexpectedly" in run.stdout, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and "KeyboardInterrupt" not in run.stderr, run.stderr[-2000:]
