"""A real 2-process CPU run of tools/main.py under paddle.distributed.launch (gloo)."""

import os
import re
import subprocess
import sys

from ppgan.engine.checkpoint import load_checkpoint
from tests import REPO_ROOT

REPO = str(REPO_ROOT)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def test_two_processes_train_in_lockstep(synthetic_corpus, tmp_path):
    out, logs = tmp_path / "run", tmp_path / "launch"
    command = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
               "--log_dir", str(logs), "tools/main.py", "-c", "configs/demo/syncnet.yaml",
               "--output-dir", str(out), "-o",
               f"dataset.train.dataroot={synthetic_corpus}",
               f"dataset.test.dataroot={synthetic_corpus}",
               "model.syncnet.width_mult=0.125", "dataset.train.batch_size=4",
               "dataset.test.batch_size=4", "total_iters=4", "log_config.interval=1",
               "validate.interval=4", "validate.max_eval_steps=1", "snapshot_config.interval=4",
               "snapshot_config.best_metric=null", "enable_visualdl=false"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                            stdin=subprocess.DEVNULL)
    worker_logs = "".join(read(path) for path in sorted(logs.glob("workerlog.*")))
    assert result.returncode == 0, worker_logs[-3000:]

    rank0, rank1 = read(out / "log.txt"), read(out / "log.txt.rank1")   # per-rank logs
    assert "rank 0/2" in rank0 and "rank 1/2" in rank1
    # Each rank trained on its own shard (different first losses) ...
    first = [re.search(r"iter 1/4 .*?sync_loss: ([\d.]+)", text).group(1)
             for text in (rank0, rank1)]
    assert first[0] != first[1]
    # ... and the all-reduced gradients kept the weights identical on both.
    digests = [re.search(r"final weights digest \(rank \d\): (\w+)", text).group(1)
               for text in (rank0, rank1)]
    assert digests[0] == digests[1]
    # Only rank 0 writes: one checkpoint, one train log.
    assert sorted(os.listdir(out)) == ["config.yaml", "iter_4_checkpoint.pdparams", "log.txt",
                                       "log.txt.rank1", "train_log.jsonl"]
    checkpoint = load_checkpoint(str(out / "iter_4_checkpoint.pdparams"))
    assert checkpoint["iteration"] == 4 and set(checkpoint["nets"]) == {"netS"}
    assert "eval at iter 4" in rank1                               # evaluation ran on every rank
