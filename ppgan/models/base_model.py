"""BaseModel: the training logic around a set of named networks.

The trainer only ever calls, per iteration, ``setup_input(batch)`` and
``train_iter(optimizers) -> {name: float}``; for evaluation ``test_iter()`` per batch and then
``eval_metrics() -> {name: float}`` (averaged over all ranks, no side effects); while training,
after each evaluation, ``update_schedules(metrics)``. Everything lip-sync specific
(frozen experts, loss weights and their schedules, G/D alternation) lives in subclasses.

Nets come in two kinds:
- *trained* nets get an optimizer, are put in train mode for training, and are wrapped in
  ``paddle.DataParallel`` when several processes train together;
- *frozen* nets (the lip-sync expert) have no optimizer, no parameter gradients, are never
  wrapped, and stay in eval mode all the time so their batch-norm statistics never drift.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any, ContextManager, Dict, Iterable, Mapping, Optional, Set, Tuple

import paddle

if TYPE_CHECKING:
    from paddle._typing import DTypeLike  # Paddle's own alias of what ``dtype=`` accepts

from ..utils import comm
from ..utils.errors import ConfigError, WeightsError

# What the trainer hands to ``train_iter``: {config optimizer key: optimizer}.
Optimizers = Mapping[str, paddle.optimizer.Optimizer]
# One DataLoader batch: {name: tensor} (arrays in direct calls, see ``to_tensor``).
Batch = Mapping[str, Any]


def unwrap(net: paddle.nn.Layer) -> paddle.nn.Layer:
    """The plain Layer inside a ``paddle.DataParallel`` (or the net itself)."""
    return net._layers if isinstance(net, paddle.DataParallel) else net


def apply_init(net: paddle.nn.Layer, init_type: Optional[str], where: str) -> paddle.nn.Layer:
    """Re-initialise ``net`` with ``init_type`` ('normal' / 'kaiming'); None keeps Paddle's init."""
    from ..modules.init import INIT_TYPES, init_weights
    if init_type is None:
        return net
    if init_type not in INIT_TYPES:
        raise ConfigError(f"{where}: unknown init type {init_type!r}; choose one of "
                          f"{', '.join(INIT_TYPES)} or null")
    return init_weights(net, init_type)


def to_tensor(value: Any, dtype: DTypeLike = "float32") -> paddle.Tensor:
    """Batch entries arrive as Tensors from the DataLoader, or as arrays in direct calls."""
    return value if isinstance(value, paddle.Tensor) else paddle.to_tensor(value, dtype=dtype)


class BaseModel:
    """Named nets plus the train / eval steps that use them.

    Subclasses register nets with ``add_net`` in ``__init__`` and set ``optimizer_keys`` to the
    optimizer entries their ``train_iter`` uses (the config must define exactly those).
    """

    optimizer_keys: Tuple[str, ...] = ()
    # Name of the registered offline evaluation (``models.builder.EVALUATORS``) that
    # ``--evaluate-only`` runs after the validation metrics; None: the metrics alone.
    evaluator: Optional[str] = None

    def __init__(self) -> None:
        self.nets: Dict[str, paddle.nn.Layer] = {}
        self.frozen: Set[str] = set()
        self.scalers: Dict[str, paddle.amp.GradScaler] = {}

    # ------------------------------------------------------------------ nets
    def add_net(self, name: str, net: paddle.nn.Layer, frozen: bool = False) -> None:
        """Register ``net`` under ``name``; a frozen net stops all its parameter gradients."""
        self.nets[name] = net
        if frozen:
            self.frozen.add(name)
            for param in net.parameters():
                # Gradients still flow *through* the net to its inputs; only its weights stay.
                param.stop_gradient = True
            net.eval()

    def net(self, name: str) -> paddle.nn.Layer:
        """The plain Layer registered as ``name`` (DataParallel unwrapped)."""
        return unwrap(self.nets[name])

    def trained_nets(self) -> Dict[str, paddle.nn.Layer]:
        """{name: net} of the nets an optimizer updates, in registration order (the first one is
        the model's main net: the one a flat single-net weights file initialises)."""
        return {name: net for name, net in self.nets.items() if name not in self.frozen}

    def load_frozen_weights(self, name: str, path: Optional[str], config_key: str,
                            net_name: Optional[str] = None) -> None:
        """Load a frozen net's weights from ``path``; a missing path fails naming ``config_key``."""
        from ..utils.weights import load_weights
        if not path:
            raise ConfigError(f"{config_key} is not set: point it to the trained expert "
                              f"(a SyncNet training checkpoint, PaddleGAN's syncnet.pdparams or "
                              f"a converted .pth)")
        if not os.path.isfile(path):
            raise WeightsError(f"{config_key}: expert weights file not found: {path}; train the "
                               f"expert first (configs/syncnet.yaml) or fix the path")
        load_weights(self.net(name), path, net_name=net_name, strict=True)
        self.net(name).eval()

    def wrap_data_parallel(self, find_unused_parameters: bool = False) -> None:
        """Wrap the trained nets in DataParallel when several processes train (no-op otherwise)."""
        if comm.get_world_size() <= 1:
            return
        for name, net in self.trained_nets().items():
            if not isinstance(net, paddle.DataParallel):
                self.nets[name] = paddle.DataParallel(
                    net, find_unused_parameters=find_unused_parameters)

    def to_static(self) -> None:
        """Run the trained nets' forward passes as static programs (trainer option ``to_static``).

        Frozen nets stay dynamic: a static program is cached per train/eval mode only, so one
        first traced under ``no_grad`` (the expert's sync loss at weight 0) would silently stop
        passing gradients later. Trained nets are always called with gradients in train mode.
        """
        for name in self.trained_nets():
            self.nets[name] = paddle.jit.to_static(self.net(name), full_graph=True)

    def use_onednn_convolutions(self) -> int:
        """Run every net's convolutions as static oneDNN programs (trainer option ``onednn``).

        All nets, frozen ones included: the expert's convolutions sit on the generator's
        gradient path. Batch norm and every other op stay dynamic, so statistics and losses
        match dynamic mode up to float rounding (``ppgan.modules.onednn_conv``). The fast path
        is taken only inside ``onednn_kernels()``, where the trainer runs ``train_iter``.
        Returns the number of convolutions switched (0 off CPU or without oneDNN).
        """
        from ..modules.onednn_conv import use_onednn_convolutions
        return sum(use_onednn_convolutions(self.net(name)) for name in self.nets)

    def sync_batch_norm_stats(self) -> None:
        """Average the trained nets' batch-norm running statistics over ranks.

        Plain BatchNorm keeps per-rank statistics; averaging them before evaluation and
        checkpointing makes every rank hold, evaluate and save the same state.
        """
        if comm.get_world_size() <= 1:
            return
        import paddle.distributed as dist
        world = comm.get_world_size()
        for name in sorted(self.trained_nets()):
            for key, value in sorted(self.net(name).state_dict().items()):
                if key.endswith("._mean") or key.endswith("._variance"):
                    dist.all_reduce(value)
                    value.set_value(value / world)

    # ------------------------------------------------------------------ modes
    def train(self) -> None:
        for name, net in self.nets.items():
            if name in self.frozen:
                net.eval()
            else:
                net.train()

    def eval(self) -> None:
        for net in self.nets.values():
            net.eval()

    # ------------------------------------------------------------------ mixed precision
    def enable_amp(self, optimizer_names: Iterable[str]) -> None:
        """Use float16 autocast and one loss scaler per optimizer (GPU only)."""
        self.scalers = {key: paddle.amp.GradScaler(init_loss_scaling=1024)
                        for key in optimizer_names}

    def autocast(self) -> ContextManager[Any]:
        """Context for forward passes: float16 autocast when AMP is on, nothing otherwise."""
        if self.scalers:
            return paddle.amp.auto_cast(enable=True, level="O1")
        return contextlib.nullcontext()

    def backward_and_step(self, loss: paddle.Tensor, optimizers: Optimizers, key: str) -> None:
        """Backpropagate ``loss`` and step ``optimizers[key]`` (through its loss scaler if any)."""
        optimizer = optimizers[key]
        scaler = self.scalers.get(key)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaled = scaler.scale(loss)
            scaled.backward()
            scaler.step(optimizer)
            scaler.update()
        optimizer.clear_grad()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> Dict[str, Any]:
        """Training state that is not weights (schedules, loss scalers): plain Python values."""
        state: Dict[str, Any] = {}
        if self.scalers:
            state["grad_scalers"] = {k: s.state_dict() for k, s in self.scalers.items()}
        return state

    def set_state_dict(self, state: Optional[Mapping[str, Any]]) -> None:
        for key, scaler_state in (state or {}).get("grad_scalers", {}).items():
            if key in self.scalers:
                self.scalers[key].load_state_dict(scaler_state)

    def checkpoint_extras(self, cfg: Mapping[str, Any]) -> Dict[str, Any]:
        """Entries the model adds to its training checkpoints: the inference spec its generator
        (or expert) runs with, from the resolved config (``ppgan.inference.spec``)."""
        from ..inference.spec import SPEC_KEY, spec_from_config
        return {SPEC_KEY: spec_from_config(cfg)}

    def inference_spec(self, cfg: Mapping[str, Any], weights: Optional[Any] = None,
                       where: Optional[str] = None) -> Dict[str, Any]:
        """How weights generate: ``weights``' own spec (a read weights file or checkpoint, checked
        against this build; ``where`` names it), or without them this config's."""
        from ..inference.spec import spec_from_config, spec_of_weights
        return spec_from_config(cfg) if weights is None else spec_of_weights(weights, str(where))

    def net_state_dicts(self) -> Dict[str, Dict[str, paddle.Tensor]]:
        """{net name: state dict} of every net (frozen ones included), DataParallel unwrapped."""
        return {name: self.net(name).state_dict() for name in self.nets}

    # ------------------------------------------------------------------ the trainer's API
    def setup_input(self, batch: Batch) -> None:
        """Take one batch (dict of tensors from the DataLoader)."""
        raise NotImplementedError  # abstract: every model implements it

    def train_iter(self, optimizers: Optimizers) -> Dict[str, float]:
        """One optimisation step on the current batch; returns {loss name: float}."""
        raise NotImplementedError  # abstract: every model implements it

    def test_iter(self) -> None:
        """Accumulate evaluation statistics for the current batch (no gradients)."""
        raise NotImplementedError  # abstract: every model implements it

    def eval_metrics(self) -> Dict[str, float]:
        """Metrics over everything ``test_iter`` saw since the last call, averaged over ranks.

        Measures only: a schedule that follows evaluation changes in ``update_schedules``.
        """
        raise NotImplementedError  # abstract: every model implements it

    def update_schedules(self, metrics: Mapping[str, float]) -> Dict[str, float]:
        """Update the schedules that follow evaluation from its (rank-averaged) ``metrics``.

        The training loop calls it after every evaluation during training (``EvalHook``), on
        every rank with the same metrics, before the checkpoint of that iteration;
        ``--evaluate-only`` never does. Returns {name: new value} of the schedules, recorded
        with the metrics. Default: no such schedule, {}.
        """
        return {}

    def visual_items(self) -> Dict[str, paddle.Tensor]:
        """{name: (B, 3, T, H, W) or (B, 3, H, W) BGR [0, 1] tensor} of the last training batch."""
        return {}


class MetricSums:
    """Weighted sums of per-batch statistics, reduced over all ranks on request.

    ``add("l1", 0.1, n)`` adds a batch mean weighted by its sample count ``n``; ``means()``
    returns {name: global weighted mean} (the same on every rank) and starts over.
    """

    def __init__(self) -> None:
        self._sums: Dict[str, Tuple[float, float]] = {}

    def add(self, name: str, value: Any, count: float = 1) -> None:
        """Add ``value`` (a float or a one-element tensor) weighted by ``count``."""
        total, weight = self._sums.get(name, (0.0, 0.0))
        self._sums[name] = (total + float(value) * count, weight + count)

    def means(self) -> Dict[str, float]:
        import numpy as np
        names = sorted(self._sums)
        table = np.array([self._sums[n] for n in names], dtype=np.float64).reshape(-1, 2)
        table = comm.all_reduce_sum(table)
        self._sums = {}
        return {n: float(t / w) if w else float("nan") for n, (t, w) in zip(names, table)}
