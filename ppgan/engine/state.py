"""What the hooks read of a running training: one object the trainer keeps up to date.

Hooks read numbers only from ``trainer.state`` (a ``TrainState``) and act only through the
trainer methods listed in ``ppgan.engine.hooks.Hook``; the trainer's other attributes are its own.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, Optional


@dataclass
class TrainState:
    """The training's progress, as of the hook call.

    Attributes:
        total_iters: the iteration the run ends at.
        output_dir: the run folder (checkpoints, logs, visual samples).
        global_batch_size: samples per iteration over all ranks.
        iteration: iterations finished; in ``after_iter`` the one that just ran.
        last_losses: {name: float} ``model.train_iter`` returned for that iteration.
        batch_cost: seconds the iteration took, data loading included.
        reader_cost: seconds of it spent waiting for the batch.
        eval_result: the last evaluation, ``{"iter": int, "metrics": {name: float}}`` (metrics
            averaged over ranks, with the values of the schedules it updated), or None.
    """

    total_iters: int
    output_dir: str
    global_batch_size: int
    iteration: int = 0
    last_losses: Dict[str, float] = field(default_factory=dict)
    batch_cost: float = 0.0
    reader_cost: float = 0.0
    eval_result: Optional[Dict[str, Any]] = None

    def metrics_now(self) -> Optional[Dict[str, float]]:
        """The last evaluation's metrics when it ran at the current iteration, else None."""
        if self.eval_result is None or self.eval_result["iter"] != self.iteration:
            return None
        return self.eval_result["metrics"]
