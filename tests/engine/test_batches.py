"""DataLoader readers left before the end of their split are stopped, not leaked."""

import threading

from ppgan.engine.trainer import Trainer

from tests.engine.toy import toy_config


def reader_threads():
    return [t for t in threading.enumerate() if "_thread_loop" in t.name]


def test_training_and_bounded_evaluations_leave_no_reader_thread(tmp_path):
    before = len(reader_threads())
    # Evaluations stop after 1 of 64 batches and the 6 steps end inside a 256-batch epoch: both
    # used to leave a reader thread blocked on its full queue for the life of the process.
    Trainer(toy_config(tmp_path, {"dataset.train.size": 256, "dataset.train.batch_size": 1,
                                  "dataset.test.size": 64, "dataset.test.batch_size": 1})).train()
    assert len(reader_threads()) == before
