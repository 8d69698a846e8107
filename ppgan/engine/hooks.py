"""Side concerns of training, each a hook the trainer calls in the order ``default_hooks`` gives.

A hook is called at ``before_train``, ``after_iter`` and ``after_train`` with the trainer, and
keeps what must survive a resume in ``state_dict`` / ``load_state_dict``. It reads the run's
progress from ``trainer.state`` (``ppgan.engine.state.TrainState``) and acts through the methods
listed in ``Hook``. Collective work (evaluation, batch-norm averaging) runs on every rank; files
and VisualDL only on rank 0.
"""

import datetime
import json
import os
import shutil
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..utils import comm
from ..utils.atomic import atomic_write, output_error, remove_stale_temps
from ..utils.errors import ConfigError, TrainingError
from ..utils.logger import get_logger
from .checkpoint import checkpoint_name, list_checkpoints
from .settings import LogSettings, SnapshotSettings, TrainerSettings, ValidateSettings
from .state import TrainState


def every(iteration: int, interval: int, total: int) -> bool:
    """True at multiples of ``interval`` (when > 0) and at the last iteration."""
    return iteration == total or (interval > 0 and iteration % interval == 0)


class Hook:
    """No-op base; subclasses override what they need.

    What a hook may use of the trainer besides ``trainer.state``: ``model`` (its
    ``sync_batch_norm_stats``, ``visual_items``), ``evaluate()``, ``update_schedules(metrics)``,
    ``check_weights()``, ``save_checkpoint(path)``, ``current_lr()``, ``step_lr()``,
    ``add_scalars(prefix, values, step)`` and ``add_image(tag, image, step)``.
    """

    def before_train(self, trainer: Any) -> None:
        """Once before the first iteration of this process (after a resume too)."""

    def after_iter(self, trainer: Any) -> None:
        """After every iteration (``trainer.state.iteration`` is the one that just ran)."""

    def after_train(self, trainer: Any) -> None:
        """Once after the last iteration (not after an interruption)."""

    def state_dict(self) -> Dict[str, Any]:
        """What must survive a resume (stored in the checkpoint under the hook's class name)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict()``'s content on a resume."""


class LoggerHook(Hook):
    """Every ``interval`` iterations: losses, lr, batch/reader cost, samples/s and ETA.

    Goes to the console and log file, to ``train_log.jsonl`` (one JSON object per logged
    iteration, rank 0) and to VisualDL at the real global step.
    """

    def __init__(self, settings: LogSettings) -> None:
        self.interval = max(1, settings.interval)
        self.batch_costs: List[float] = []
        self.reader_costs: List[float] = []

    def before_train(self, trainer: Any) -> None:
        """On a resume, forget records past the checkpoint: those iterations run again."""
        path = os.path.join(trainer.state.output_dir, "train_log.jsonl")
        if not comm.is_main_process() or not os.path.isfile(path):
            return
        kept = [line for line, record in read_train_log(path)
                if record["iter"] <= trainer.state.iteration]
        with atomic_write(path, "w") as f:
            f.writelines(kept)

    def after_iter(self, trainer: Any) -> None:
        state = trainer.state
        self.batch_costs.append(state.batch_cost)
        self.reader_costs.append(state.reader_cost)
        it = state.iteration
        if not every(it, self.interval, state.total_iters):
            return
        batch_cost = float(np.mean(self.batch_costs))
        reader_cost = float(np.mean(self.reader_costs))
        self.batch_costs, self.reader_costs = [], []
        record = {"iter": it, "lr": trainer.current_lr(), **state.last_losses,
                  "batch_cost": batch_cost, "reader_cost": reader_cost,
                  "ips": state.global_batch_size / max(batch_cost, 1e-9)}
        eta = datetime.timedelta(seconds=int(batch_cost * (state.total_iters - it)))
        losses = " ".join(f"{k}: {v:.5f}" for k, v in state.last_losses.items())
        get_logger().info(f"iter {it}/{state.total_iters} lr: {record['lr']:.3e} {losses} "
                          f"batch_cost: {batch_cost:.4f}s reader_cost: {reader_cost:.4f}s "
                          f"ips: {record['ips']:.2f} samples/s eta: {eta}")
        if comm.is_main_process():
            path = os.path.join(state.output_dir, "train_log.jsonl")
            try:
                with open(path, "a") as f:
                    f.write(json.dumps(record) + "\n")
            except OSError as exc:
                raise output_error(path, exc) from None
            trainer.add_scalars("train", record, it, skip=("iter",))


def read_train_log(path: str) -> List[Tuple[str, Dict[str, Any]]]:
    """[(line, record)] of a ``train_log.jsonl``; a torn last line (a kill mid-write) is dropped.

    Raises:
        TrainingError: a line other than the last is not a JSON record (the file was edited or
            damaged otherwise), named with its number.
    """
    with open(path) as f:
        lines = [line for line in f if line.strip()]
    records = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("iter"), int):
                raise ValueError("no iteration number")
        except ValueError:
            if number < len(lines):
                raise TrainingError(f"{path} line {number} is not a training log record; "
                                    f"delete that line (or the file) and resume again") from None
            get_logger().warning(f"{path}: dropped a torn last line (the run was killed while "
                                 f"writing it): {line.strip()[:60]!r}")
            continue
        records.append((line if line.endswith("\n") else line + "\n", record))
    return records


class LRSchedulerHook(Hook):
    """Step the shared learning-rate scheduler once per iteration (after the logger read it)."""

    def after_iter(self, trainer: Any) -> None:
        trainer.step_lr()


class EvalHook(Hook):
    """Evaluate every ``interval`` iterations and, with ``final`` (``validate.final``), at the
    last one; metrics are averaged over ranks. After each evaluation the model's schedules that
    follow it (Wav2Lip's sync-loss weight) update from its metrics: here, explicitly, and never
    inside the evaluation itself, which ``--evaluate-only`` also runs."""

    def __init__(self, settings: ValidateSettings) -> None:
        self.interval = settings.interval
        self.final = settings.final

    def after_iter(self, trainer: Any) -> None:
        it = trainer.state.iteration
        due = it % self.interval == 0 or (self.final and it == trainer.state.total_iters) \
            if self.interval > 0 else False
        if due:
            trainer.evaluate()
            trainer.update_schedules(trainer.state.eval_result["metrics"])
            trainer.add_scalars("eval", trainer.state.eval_result["metrics"], it)


class CheckpointHook(Hook):
    """Save every ``interval`` iterations and at the end; keep the newest ``keep_last``.

    With ``best_metric`` set, every evaluation that improves it (``best_mode`` 'min' or 'max')
    also writes ``best.pdparams``. The best value is hook state, so a resume keeps it.
    """

    def __init__(self, settings: SnapshotSettings) -> None:
        self.interval = settings.interval
        self.keep_last = settings.keep_last
        self.best_metric = settings.best_metric
        self.sign = 1.0 if settings.best_mode == "min" else -1.0
        self.best: Optional[Dict[str, float]] = None  # {"value", "iter"} of the best evaluation

    def before_train(self, trainer: Any) -> None:
        """Remove temporary files a killed run left behind (a kill -9 cannot clean up)."""
        if comm.is_main_process():
            for pattern in ("iter_*_checkpoint.pdparams", "best.pdparams"):
                for path in remove_stale_temps(trainer.state.output_dir, pattern):
                    get_logger().info(f"removed {path}, left by an interrupted checkpoint write")

    def after_iter(self, trainer: Any) -> None:
        state = trainer.state
        it = state.iteration
        improved = self._improvement(state)
        periodic = every(it, self.interval, state.total_iters)
        if improved is None and not periodic:
            return
        # Every rank averages batch-norm statistics (a collective) and checks the weights (so
        # all ranks stop together on NaN), then rank 0 writes.
        trainer.model.sync_batch_norm_stats()
        trainer.check_weights()
        periodic_path = os.path.join(state.output_dir, checkpoint_name(it))
        best_path = os.path.join(state.output_dir, "best.pdparams")
        if periodic:
            trainer.save_checkpoint(periodic_path)
        if improved is not None:
            if periodic:
                copy_file(periodic_path, best_path)
            else:
                trainer.save_checkpoint(best_path)
            get_logger().info(f"new best {self.best_metric}: {improved:.5f} at iter {it}")
        if periodic:
            self._prune(state.output_dir)

    def _improvement(self, state: TrainState) -> Optional[float]:
        """The new best value when this iteration's evaluation improved it (now kept), else None."""
        metrics = state.metrics_now()
        if not self.best_metric or metrics is None:
            return None
        if self.best_metric not in metrics:
            raise ConfigError(f"snapshot_config.best_metric {self.best_metric!r} is not an eval "
                              f"metric of this model ({', '.join(metrics)})")
        value = float(metrics[self.best_metric])
        if not np.isfinite(value):
            return None
        if self.best is None or self.sign * value < self.sign * self.best["value"]:
            self.best = {"value": value, "iter": state.iteration}
            return value
        return None

    def after_train(self, trainer: Any) -> None:
        """Without any evaluation (e.g. ``validate.final: false`` on a short run) the last
        checkpoint becomes ``best.pdparams``, so a run always ends with one."""
        state = trainer.state
        best_path = os.path.join(state.output_dir, "best.pdparams")
        if not self.best_metric or self.best is not None or not comm.is_main_process() \
                or os.path.isfile(best_path):
            return
        last = os.path.join(state.output_dir, checkpoint_name(state.iteration))
        if os.path.isfile(last):
            copy_file(last, best_path)
            get_logger().info(f"no evaluation of {self.best_metric} ran: best.pdparams is the last "
                              f"checkpoint (iteration {state.iteration})")

    def _prune(self, folder: str) -> None:
        if self.keep_last <= 0 or not comm.is_main_process():
            return
        for _, path in list_checkpoints(folder)[:-self.keep_last]:
            os.remove(path)

    def state_dict(self) -> Dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best = state.get("best")


class VisualHook(Hook):
    """Every ``interval`` iterations (rank 0): a grid of the model's visual items as PNG + VisualDL.

    Rows are clips; each kind of item (reference, masked input, generated, target) is a band
    of its frames side by side.
    """

    def __init__(self, settings: LogSettings) -> None:
        self.interval = settings.visual_interval

    def after_iter(self, trainer: Any) -> None:
        it = trainer.state.iteration
        if self.interval <= 0 or it % self.interval or not comm.is_main_process():
            return
        items = trainer.model.visual_items()
        if not items:
            return
        grid = make_grid(items)
        folder = os.path.join(trainer.state.output_dir, "visual")
        os.makedirs(folder, exist_ok=True)
        write_png(os.path.join(folder, f"iter_{it}.png"), grid)
        trainer.add_image("train/samples", grid[:, :, ::-1], it)


def default_hooks(settings: TrainerSettings) -> List[Hook]:
    """The training hooks, in the order they run after every iteration. The order matters:

    1. ``LoggerHook`` records the iteration's losses with the learning rate it ran with, so it
       reads the rate before the scheduler steps.
    2. ``LRSchedulerHook`` steps the rate for the next iteration; before any checkpoint, so a
       checkpoint holds the scheduler as the next iteration needs it (an exact resume).
    3. ``VisualHook`` draws this iteration's training batch (the model keeps it from
       ``train_iter``; evaluation does not touch it).
    4. ``EvalHook`` evaluates and then updates the model's schedules from the metrics, before
       the checkpoint: the checkpoint written at this iteration carries these metrics, the best
       value they set and the schedule they switched, so a resume continues exactly.
    5. ``CheckpointHook`` last: it saves what every hook above changed.
    """
    return [LoggerHook(settings.log_config),
            LRSchedulerHook(),
            VisualHook(settings.log_config),
            EvalHook(settings.validate),
            CheckpointHook(settings.snapshot_config)]


def copy_file(source: str, destination: str) -> None:
    """Copy atomically (temp file, fsync, rename); rank 0 only."""
    if not comm.is_main_process():
        return
    with open(source, "rb") as src, atomic_write(destination) as dst:
        shutil.copyfileobj(src, dst)


def make_grid(items: Mapping[str, Any]) -> np.ndarray:
    """{name: (B, 3, T, H, W) or (B, 3, H, W) BGR [0, 1] tensor} -> (rows, cols, 3) BGR uint8.

    Each clip is one row block; inside it the items are stacked vertically in the dict's order
    and each item's T frames are laid out left to right.
    """
    bands = []
    for tensor in items.values():
        array = np.asarray(tensor.numpy() if hasattr(tensor, "numpy") else tensor, np.float32)
        if array.ndim == 4:
            array = array[:, :, None]
        batch, _, steps, height, width = array.shape
        # (B, 3, T, H, W) -> (B, H, T*W, 3): frames side by side.
        bands.append(array.transpose(0, 3, 2, 4, 1).reshape(batch, height, steps * width, 3))
    rows = np.concatenate([np.concatenate([band[b] for band in bands], axis=0)
                           for b in range(bands[0].shape[0])], axis=0)
    return (np.clip(rows, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_png(path: str, image: np.ndarray) -> None:
    """Write a BGR uint8 image as PNG atomically (temp file + rename)."""
    import cv2
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"could not encode {path}")
    with atomic_write(path) as f:
        f.write(encoded.tobytes())
