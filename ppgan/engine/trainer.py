"""The iteration-based trainer: builds everything from a config and runs the loop with hooks.

Per iteration the trainer only calls ``model.setup_input(batch)`` and
``model.train_iter(optimizers)``; logging, LR stepping, visual samples, evaluation and
checkpoints are hooks. The same code runs in one process and under
``python -m paddle.distributed.launch`` (DataParallel around trained nets only, per-rank data
shards, rank-0 files, per-rank logs).

    trainer = Trainer(cfg, config_path="configs/demo/syncnet.yaml")
    trainer.resume("output/syncnet/iter_200_checkpoint.pdparams")   # optional
    trainer.train()

``ppgan.engine.run.run`` is the same from a config file (what ``tools/main.py`` calls).
"""

import json
import os
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional

import numpy as np
import paddle

from ..datasets.builder import close_iterator
from ..models.base_model import BaseModel, unwrap
from ..models.builder import MODELS, build_model
from ..modules.onednn_conv import onednn_kernels
from ..solver import build_lr_scheduler, build_optimizers
from ..utils import comm
from ..utils.config import dump_config, to_plain
from ..utils.errors import ConfigError, TrainingError, WeightsError
from ..utils.logger import get_logger, setup_logger
from ..utils.registry import accepted_keys
from . import checkpoint as ckpt_io
from .batches import EpochBatches
from .hooks import Hook, default_hooks
from .signals import StopRequest, TrainingInterrupted
from .state import TrainState
from .vdl_log import open_run_log
from .setup import check_config, resolve_device, seed_everything, weights_digest

# Losses can stay finite while the weights are not (relu maps NaN to 0): the weights are summed
# every this many iterations (one number per net, cheap next to a step) and before every
# checkpoint.
WEIGHT_CHECK_INTERVAL = 10


_FLOAT_DTYPES = (paddle.float32, paddle.float64, paddle.float16, paddle.bfloat16)


class Trainer:
    """Build model, optimizers, scheduler, data and hooks from ``cfg``; train or evaluate.

    Args:
        cfg: resolved config (AttrDict), see ``configs/*.yaml``.
        config_path: the YAML file it came from (for error messages and relative paths).
        device: 'auto', 'cpu' or 'gpu'. Default: 'auto'.
        amp: float16 mixed precision (GPU only). Default: False.
    """

    def __init__(self, cfg: Any, config_path: Optional[str] = None, device: str = "auto",
                 amp: bool = False) -> None:
        where = config_path or "the config"
        # The checked trainer blocks with their defaults; cfg itself is what runs store.
        self.settings = check_config(cfg, where)
        self.cfg = cfg
        self.config_dir = os.path.dirname(os.path.abspath(config_path)) if config_path else None
        # What the hooks read (ppgan.engine.state); the properties below read it too.
        self.state = TrainState(
            total_iters=self.settings.total_iters, output_dir=self.settings.output_dir,
            global_batch_size=int(cfg.dataset.train.get("batch_size", 1)) * comm.get_world_size())
        self.seed = self.settings.seed
        self.device = resolve_device(device)
        if amp and self.device != "gpu":
            raise ConfigError("--amp needs a GPU: on CPU Paddle's autocast keeps conv2d in "
                              "float32, so it would do nothing; drop --amp or use --device gpu")
        self._setup_process()
        self.model = self._build_model(cfg.model)
        self.onednn = self._use_onednn()
        if self.settings.to_static:
            self.model.to_static()
        if self.onednn:
            switched = self.model.use_onednn_convolutions()
            self.onednn = switched > 0
            get_logger().info(f"{switched} convolutions use static oneDNN programs")
        self.lr_scheduler = build_lr_scheduler(cfg.lr_scheduler)
        self.optimizers = build_optimizers(cfg.optimizer, self.model.trained_nets(),
                                           self.lr_scheduler, self.model.optimizer_keys)
        if amp:
            self.model.enable_amp(self.optimizers)
        self.model.wrap_data_parallel(self.settings.find_unused_parameters)
        self.vdl = None  # opened by train(): a resume first decides what the run's log keeps
        self.resumed = False
        self.config_file = os.path.abspath(config_path) if config_path else None
        self.hooks = self._build_hooks()
        self._test_loader: Optional[Any] = None
        # How the loaded / resumed weights say they generate (None: this config's own spec).
        self.weights_spec: Optional[Dict[str, Any]] = None

    # The run's progress lives in ``self.state``; these read (and set) it for the trainer's
    # own code and its callers.
    @property
    def iteration(self) -> int:
        return self.state.iteration

    @iteration.setter
    def iteration(self, value: int) -> None:
        self.state.iteration = value

    @property
    def eval_result(self) -> Optional[Dict[str, Any]]:
        return self.state.eval_result

    @property
    def total_iters(self) -> int:
        return self.state.total_iters

    @property
    def output_dir(self) -> str:
        return self.state.output_dir

    # ------------------------------------------------------------------ construction
    def _setup_process(self) -> None:
        paddle.set_device(self.device)
        comm.init_distributed()
        # One thread per process: more threads slow Paddle's CPU backward down (platform notes);
        # use data-parallel processes to fill the cores instead.
        paddle.base.core.set_num_threads(self.settings.threads)
        if os.path.exists(self.output_dir) and not os.path.isdir(self.output_dir):
            raise ConfigError(f"output_dir {self.output_dir} is a file, not a folder; choose "
                              f"another --output-dir (or -o output_dir=...)")
        # config.yaml is written by train() / --evaluate-only once the run is known to start,
        # so a failed attempt (e.g. a --resume that does not fit) never replaces the run's own.
        os.makedirs(self.output_dir, exist_ok=True)
        setup_logger(self.output_dir)
        seed_everything(self.seed)
        get_logger().info(f"rank {comm.get_rank()}/{comm.get_world_size()} on {self.device}, "
                          f"output in {self.output_dir}")

    def _use_onednn(self) -> bool:
        """Resolve the ``onednn`` key: default on for CPU, off on GPU and with ``to_static``.

        oneDNN convolutions are the fastest correct CPU training path (benchmarks/BENCHMARKS.md,
        Training); whole-net ``to_static`` programs must not be compiled with oneDNN kernels
        (their batch-norm statistics would stop updating), so the two exclude each other
        (``TrainerSettings.check``).
        """
        from ..modules.onednn_conv import onednn_available
        wanted = self.settings.onednn
        if wanted is None:
            wanted = not self.settings.to_static
        return bool(wanted) and self.device == "cpu" and onednn_available()

    def _build_model(self, model_cfg: Mapping[str, Any]) -> BaseModel:
        defaults = {}
        accepted = accepted_keys(MODELS.get(model_cfg.get("name"))) if "name" in model_cfg else None
        if accepted is None or "config_dir" in accepted:
            defaults["config_dir"] = self.config_dir
        return build_model(model_cfg, **defaults)

    def _visualdl(self) -> Any:
        """The run's one VisualDL file (``vdl_log``), continued on a resume; rank 0 only."""
        if not self.settings.enable_visualdl or not comm.is_main_process():
            return None
        return open_run_log(os.path.join(self.output_dir, "visualdl"),
                            resume_step=self.iteration if self.resumed else None)

    def write_config(self) -> None:
        """Write the resolved config as ``<output_dir>/config.yaml`` (rank 0, atomically)."""
        if comm.is_main_process():
            dump_config(self.cfg, os.path.join(self.output_dir, "config.yaml"))  # atomic, fsynced

    def _build_hooks(self) -> List[Hook]:
        return default_hooks(self.settings)

    def _loader(self, is_train: bool) -> Any:
        from ..datasets.builder import build_dataloader
        split = "train" if is_train else "test"
        block = self.cfg.dataset.get(split)
        if block is None:
            raise ConfigError(f"dataset.{split} is missing from the config: evaluation needs it")
        return build_dataloader(block, is_train=is_train, seed=self.seed,
                                config_dir=self.config_dir)

    # ------------------------------------------------------------------ running
    def train(self) -> None:
        """Run iterations ``self.iteration + 1 .. total_iters`` with all hooks.

        SIGINT / SIGTERM end the run after the current iteration with a checkpoint of it
        (``TrainingInterrupted``); a second signal stops at once.

        Raises:
            ConfigError: the (resumed) run already reached ``total_iters``.
        """
        logger = get_logger()
        if self.iteration >= self.total_iters:
            raise ConfigError(f"this run is already at iteration {self.iteration} of total_iters "
                              f"{self.total_iters}: nothing to train; raise total_iters (e.g. "
                              f"-o total_iters={self.total_iters * 2}) to continue it, or use "
                              f"--evaluate-only")
        batches = EpochBatches(self._loader(is_train=True), self.iteration)
        self.write_config()
        self.vdl = self._visualdl()
        self.model.train()
        for hook in self.hooks:
            hook.before_train(self)
        logger.info(f"training from iteration {self.iteration} to {self.total_iters}")
        stop = StopRequest()
        try:
            stop.install()
            tic = time.perf_counter()
            while self.iteration < self.total_iters:
                try:
                    batch = next(batches)
                except Exception:
                    # Ctrl-C reaches the loader workers too: they leave, and the batch they
                    # owed fails. The last finished iteration is still consistent: save it.
                    if stop.signal_name:
                        self._save_interrupted(stop.signal_name)
                    raise
                state = self.state
                state.reader_cost = time.perf_counter() - tic
                state.iteration += 1
                self.model.setup_input(batch)
                # Forward and backward inside: both compile their oneDNN programs there.
                with onednn_kernels(self.onednn):
                    state.last_losses = self.model.train_iter(self.optimizers)
                self._check_finite(state.last_losses)
                if state.iteration % WEIGHT_CHECK_INTERVAL == 0:
                    self.check_weights()
                state.batch_cost = time.perf_counter() - tic
                for hook in self.hooks:
                    hook.after_iter(self)
                if stop.agreed():
                    self._save_interrupted(stop.signal_name)
                tic = time.perf_counter()
            for hook in self.hooks:
                hook.after_train(self)
        finally:
            stop.uninstall()
            batches.close()
            self.close()
        self._log_digest()

    def _save_interrupted(self, signal_name: Optional[str]) -> None:
        """Checkpoint the iteration just finished (unless the hooks already did) and stop."""
        path = os.path.join(self.output_dir, ckpt_io.checkpoint_name(self.iteration))
        if not os.path.isfile(path):
            self.model.sync_batch_norm_stats()
            self.save_checkpoint(path)
        raise TrainingInterrupted(f"{signal_name} at iteration {self.iteration}: saved {path}; "
                                  f"continue with --resume {self.output_dir}")

    def _check_finite(self, losses: Mapping[str, float]) -> None:
        """Stop on a NaN/Inf loss, on every rank at the same iteration, before any checkpoint."""
        bad = {k: v for k, v in losses.items() if not np.isfinite(v)}
        # Ranks see different data: agree on stopping, or the healthy ones would hang in the
        # next collective waiting for the one that stopped.
        if comm.all_reduce_sum(np.array([float(bool(bad))]))[0] == 0:
            return
        last = self._last_checkpoint()
        what = "loss {} is {}".format(*next(iter(bad.items()))) if bad else \
            "a loss is not finite on another rank"
        raise TrainingError(f"{what} at iteration {self.iteration}; training stopped, last good "
                            f"checkpoint: {last} (lower the learning rate or check the data, "
                            f"then --resume it)")

    def _last_checkpoint(self) -> str:
        saved = ckpt_io.list_checkpoints(self.output_dir)
        return saved[-1][1] if saved else "none written yet"

    def check_weights(self) -> None:
        """Stop when a weight or buffer of any net is NaN/Inf (every rank holds the same weights).

        One fused sum per net decides; only a failure looks for the entry to name.
        """
        for net_name, state in self.model.net_state_dicts().items():
            floats = [value for value in state.values() if value.dtype in _FLOAT_DTYPES]
            if not floats:
                continue
            total = paddle.add_n([paddle.sum(value.astype("float32")) for value in floats])
            if np.isfinite(float(total)):
                continue  # an overflowing sum of finite weights would land below: not the case
            bad = next(key for key, value in state.items() if value.dtype in _FLOAT_DTYPES
                       and not np.isfinite(value.numpy()).all())
            raise TrainingError(f"weight {net_name}.{bad} is NaN/Inf at iteration "
                                f"{self.iteration} although the losses are finite; training "
                                f"stopped without saving, last good checkpoint: "
                                f"{self._last_checkpoint()} (lower the learning rate or check "
                                f"the data, then --resume it)")

    def eval_split(self) -> str:
        """The name of the split ``dataset.test`` reads: its filelist's stem ('val' in the recipes)."""
        block = self.cfg.dataset.get("test") or {}
        return os.path.splitext(os.path.basename(str(block.get("filelist", "test"))))[0]

    def evaluate(self, progress: bool = False) -> Dict[str, float]:
        """Run the model's evaluation over ``dataset.test`` (``eval_split()``); returns the
        rank-averaged metrics. ``progress``: say so at once and show a bar (rank 0, terminals)."""
        show = progress and comm.is_main_process()
        if show:
            get_logger().info(f"evaluating on the '{self.eval_split()}' split (dataset.test)")
        if self._test_loader is None:
            self._test_loader = self._loader(is_train=False)
        loader = self._test_loader
        max_steps = self.settings.validate.max_eval_steps
        self.model.sync_batch_norm_stats()
        self.model.eval()
        bar = _eval_bar(loader, max_steps, self.eval_split(), show)
        batches = iter(loader)
        try:
            for step, batch in enumerate(batches):
                if max_steps and step >= max_steps:
                    break
                self.model.setup_input(batch)
                self.model.test_iter()
                bar.update(1)
        finally:
            close_iterator(batches)  # a bounded evaluation leaves its reader mid-split
        bar.close()
        metrics = self.model.eval_metrics()
        self.model.train()
        self.state.eval_result = {"iter": self.iteration, "metrics": metrics}
        text = " ".join(f"{k}: {v:.5f}" for k, v in metrics.items())
        get_logger().info(f"eval at iter {self.iteration}: {text}")
        return metrics

    def current_lr(self) -> float:
        """The learning rate the next (or, before the scheduler hook, the current) step uses."""
        return float(self.lr_scheduler.last_lr)

    def step_lr(self) -> None:
        """Advance the learning-rate schedule by one iteration."""
        self.lr_scheduler.step()

    def update_schedules(self, metrics: Mapping[str, float]) -> None:
        """Let the model update its evaluation-driven schedules from ``metrics`` (the last
        evaluation's, averaged over ranks; Wav2Lip: the sync-loss weight switch), and record
        their new values with those metrics. Training only: ``--evaluate-only`` never calls it.
        """
        updated = self.model.update_schedules(metrics)
        if updated and self.state.eval_result is not None:
            self.state.eval_result["metrics"].update(updated)

    def add_scalars(self, prefix: str, values: Mapping[str, float], step: int,
                    skip: Iterable[str] = ()) -> None:
        """Log ``values`` to VisualDL as ``<prefix>/<key>`` at ``step`` (no-op without a log)."""
        if self.vdl is None:
            return
        for key, value in values.items():
            if key not in skip:
                self.vdl.add_scalar(tag=f"{prefix}/{key}", value=float(value), step=step)

    def add_image(self, tag: str, image: np.ndarray, step: int) -> None:
        """Log an RGB uint8 (H, W, 3) image to VisualDL at ``step`` (no-op without a log)."""
        if self.vdl is not None:
            self.vdl.add_image(tag=tag, img=image, step=step)

    def close(self) -> None:
        if self.vdl is not None:
            self.vdl.close()
            self.vdl = None

    def _log_digest(self) -> None:
        digest = weights_digest(self.model.net_state_dicts())
        get_logger().info(f"final weights digest (rank {comm.get_rank()}): {digest}")

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_content(self) -> Dict[str, Any]:
        """Everything a resume needs (see ``ppgan.engine.checkpoint``)."""
        trained = {n: unwrap(net) for n, net in self.model.trained_nets().items()}
        return {
            "iteration": self.iteration,
            "nets": self.model.net_state_dicts(),
            "optimizers": {k: ckpt_io.optimizer_state(o, trained)
                           for k, o in self.optimizers.items()},
            "lr_schedulers": {"lr_scheduler": self.lr_scheduler.state_dict()},
            "model_state": self.model.state_dict(),
            "hooks": {type(h).__name__: h.state_dict() for h in self.hooks},
            "rng": ckpt_io.capture_rng(),
            "config": to_plain(self.cfg),
            "config_file": self.config_file,
            **self.model.checkpoint_extras(self.cfg),
            "metrics": dict(self.eval_result["metrics"]) if self.eval_result else {},
        }

    def inference_spec(self) -> Dict[str, Any]:
        """The spec the model's generator runs with: the loaded weights' own, else this config's."""
        return self.weights_spec or self.model.inference_spec(self.cfg)

    def save_checkpoint(self, path: str) -> None:
        """Write a checkpoint (rank 0 only; atomic)."""
        if comm.is_main_process():
            ckpt_io.save_checkpoint(path, self.checkpoint_content())
            get_logger().info(f"saved checkpoint {path}")

    def resume(self, path: str, state: Optional[Dict[str, Any]] = None) -> None:
        """Continue exactly where a checkpoint (or the newest one in a folder) stopped.

        ``state``: the checkpoint already read with ``ckpt_io.load_checkpoint`` (saves a read).
        """
        path = ckpt_io.resolve_resume_path(path)
        state = ckpt_io.load_checkpoint(path) if state is None else state
        missing = sorted(set(self.model.nets) - set(state["nets"]))
        if missing:
            raise WeightsError(f"checkpoint {path} has no weights for {missing}; it was written "
                               f"by another model ({sorted(state['nets'])})")
        for name in self.model.nets:
            self._load_net(name, state["nets"][name], path)
        trained = {n: unwrap(net) for n, net in self.model.trained_nets().items()}
        for key, optimizer in self.optimizers.items():
            if key not in state["optimizers"]:
                raise WeightsError(f"checkpoint {path} has no state for {key}")
            ckpt_io.load_optimizer_state(optimizer, state["optimizers"][key], trained,
                                         state["lr_schedulers"]["lr_scheduler"])
        self.lr_scheduler.set_state_dict(state["lr_schedulers"]["lr_scheduler"])
        self.model.set_state_dict(state["model_state"])
        for hook in self.hooks:
            hook.load_state_dict(state.get("hooks", {}).get(type(hook).__name__, {}))
        ckpt_io.restore_rng(state["rng"])
        self.weights_spec = self.model.inference_spec(self.cfg, state, path)
        self.iteration = int(state["iteration"])
        self.resumed = True
        if state.get("metrics"):
            self.state.eval_result = {"iter": self.iteration, "metrics": dict(state["metrics"])}
        if to_plain(state["config"]).get("model") != to_plain(self.cfg.model):
            get_logger().warning(f"the model block of {path} differs from the current config")
        get_logger().info(f"resumed from {path} at iteration {self.iteration}")

    def load(self, path: str) -> None:
        """Initialise trained nets from a weights file (ours, PaddleGAN's, or converted)."""
        from ..utils.weights import read_weights_file
        obj = read_weights_file(path)
        self.weights_spec = self.model.inference_spec(self.cfg, obj, path)
        named = ckpt_io.nets_in_weights(obj)
        trained = self.model.trained_nets()
        if named is None:
            target = next(iter(trained))  # the model's main net (BaseModel.trained_nets)
            self._load_net(target, obj, path)
            loaded = [target]
        else:
            loaded = [n for n in trained if n in named]
            if not loaded:
                raise WeightsError(f"{path} holds nets {sorted(named)}, none of which this model "
                                   f"trains ({sorted(trained)})")
            for name in loaded:
                self._load_net(name, named[name], path)
        get_logger().info(f"loaded {loaded} from {path}")

    def _load_net(self, name: str, state: Any, path: str) -> None:
        """Strictly load one net's state dict, naming the file and the net on failure."""
        from ..utils.weights import load_weights
        load_weights(self.model.net(name), state, strict=True, where=f"{path} [{name}]")

    def write_metrics(self, path: str, extra: Optional[Mapping[str, Any]] = None) -> None:
        """Write the last evaluation as JSON (rank 0, atomic)."""
        if not comm.is_main_process():
            return
        record = {"iteration": self.iteration, **(extra or {}),
                  "metrics": self.eval_result["metrics"] if self.eval_result else {}}
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(record, f, indent=2)
        os.replace(tmp, path)


def _eval_bar(loader: Any, max_steps: int, split: str, show: bool) -> Any:
    """A tqdm bar over the evaluation batches (disabled unless ``show`` and a terminal)."""
    from tqdm import tqdm

    try:
        total = len(loader)
    except TypeError:  # a loader without a length
        total = None
    if max_steps:
        total = min(total, max_steps) if total else max_steps
    return tqdm(total=total, desc=f"evaluating '{split}'", unit="batch", leave=False,
                disable=None if show else True)
