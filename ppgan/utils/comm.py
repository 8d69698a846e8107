"""Rank helpers that work the same with one process and under ``paddle.distributed.launch``.

Rank and world size are read from the launcher's environment variables, so they are right even
before ``init_parallel_env`` and in processes that never import the distributed package.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy and paddle are imported where they run
    import numpy as np


def get_rank() -> int:
    """Global rank of this process (0 when not launched distributed)."""
    return int(os.environ.get("PADDLE_TRAINER_ID", os.environ.get("PADDLE_RANK_IN_NODE", 0)))


def get_world_size() -> int:
    """Number of training processes (1 when not launched distributed)."""
    return int(os.environ.get("PADDLE_TRAINERS_NUM", 1))


def is_main_process() -> bool:
    """True on rank 0 (and with one process)."""
    return get_rank() == 0


@functools.lru_cache(maxsize=None)
def init_distributed() -> int:
    """Initialise the process group once when world size > 1; returns the world size."""
    world = get_world_size()
    if world > 1:
        import paddle.distributed as dist
        dist.init_parallel_env()
    return world


def all_reduce_sum(array: np.ndarray) -> np.ndarray:
    """Sum a numpy array over ranks (identity with one process); returns a numpy array."""
    if get_world_size() == 1:
        return array
    import numpy as np
    import paddle
    import paddle.distributed as dist
    tensor = paddle.to_tensor(np.asarray(array, dtype="float64"))
    dist.all_reduce(tensor)
    return tensor.numpy()
