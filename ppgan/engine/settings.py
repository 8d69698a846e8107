"""The trainer's part of a config, one dataclass per block: the only place of its keys' defaults
and checks.

    settings = TrainerSettings.from_config(cfg, where="configs/demo/syncnet.yaml")
    settings.snapshot_config.keep_last      # 3 unless the config says otherwise

A key the schema does not know fails naming the key, the file and the closest known key; a value
of the wrong type fails naming its key and what it must be. A null value means the default
(``seed: null`` is seed 0), as a missing key does. ``model``, ``dataset``, ``optimizer`` and
``lr_scheduler`` are passed on as they are: their builders check them (``ppgan.utils.registry``).
"""

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

from ..utils.errors import ConfigError
from ..utils.registry import closest


@dataclass(frozen=True)
class ValidateSettings:
    """``validate``: evaluation on ``dataset.test`` while training.

    Attributes:
        interval: evaluate every this many iterations; 0 never evaluates.
        max_eval_steps: batches per evaluation; 0 reads the whole split.
        final: with ``interval`` > 0, also evaluate at the last iteration.
    """

    interval: int = 0
    max_eval_steps: int = 0
    final: bool = True


@dataclass(frozen=True)
class LogSettings:
    """``log_config``: console / train_log.jsonl / VisualDL records and visual samples.

    Attributes:
        interval: log losses, lr and timings every this many iterations (and at the last).
        visual_interval: write a PNG grid of the model's visual items every this many
            iterations; 0 never does.
    """

    interval: int = 10
    visual_interval: int = 0


@dataclass(frozen=True)
class SnapshotSettings:
    """``snapshot_config``: checkpoints.

    Attributes:
        interval: save every this many iterations (and at the last); 0 only at the last.
        keep_last: keep the newest this many periodic checkpoints; 0 keeps all.
        best_metric: eval metric whose improvements write ``best.pdparams``; None: no best file.
        best_mode: 'min' or 'max': which direction improves ``best_metric``.
    """

    interval: int = 1000
    keep_last: int = 3
    best_metric: Optional[str] = None
    best_mode: str = "min"

    def check(self, where: str) -> None:
        if self.best_mode not in ("min", "max"):
            raise ConfigError(f"snapshot_config.best_mode in {where} must be min or max, "
                              f"got {self.best_mode!r}")


@dataclass(frozen=True)
class TrainerSettings:
    """The top level of a training config.

    Attributes:
        total_iters: iterations to train (required, > 0).
        model, dataset, optimizer, lr_scheduler: the blocks the model, data, optimizer and
            schedule are built from (required; ``dataset`` needs a ``train`` block).
        output_dir: the run folder.
        seed: seed of Python's, numpy's and Paddle's generators and of the data order.
        enable_visualdl: write a VisualDL log (rank 0).
        to_static: run the trained nets as static programs.
        onednn: static oneDNN convolutions on CPU; None: on unless ``to_static``.
        threads: CPU threads per process (1 is fastest for Paddle's backward on CPU).
        find_unused_parameters: DataParallel's option, for nets with unused branches.
        dataroot: one corpus for every dataset block (applied by ``ppgan.utils.config``).
        validate, log_config, snapshot_config: the blocks above.
    """

    total_iters: int
    model: Dict[str, Any]
    dataset: Dict[str, Any]
    optimizer: Dict[str, Any]
    lr_scheduler: Dict[str, Any]
    output_dir: str = "output"
    seed: int = 0
    enable_visualdl: bool = False
    to_static: bool = False
    onednn: Optional[bool] = None
    threads: int = 1
    find_unused_parameters: bool = False
    dataroot: Optional[str] = None
    validate: ValidateSettings = field(default_factory=ValidateSettings)
    log_config: LogSettings = field(default_factory=LogSettings)
    snapshot_config: SnapshotSettings = field(default_factory=SnapshotSettings)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], where: str = "the config") -> "TrainerSettings":
        """Check the trainer's part of ``cfg`` and fill in the defaults.

        Raises:
            ConfigError: an unknown key, a missing required key, a value of the wrong type or
                one out of range, named with ``where`` (the config file).
        """
        settings = _parse(cls, cfg, where, prefix="")
        settings.check(where)
        return settings

    def check(self, where: str) -> None:
        """The checks across keys (types are checked by ``from_config``)."""
        if self.total_iters <= 0:
            raise ConfigError(f"total_iters in {where} must be a positive integer, "
                              f"got {self.total_iters!r}")
        if "train" not in self.dataset:
            raise ConfigError(f"dataset in {where} needs a 'train' block")
        if self.validate.interval and "test" not in self.dataset:
            raise ConfigError(f"validate.interval is set in {where} but dataset has no 'test' "
                              f"block to evaluate on; add one or set validate.interval: 0")
        if self.onednn and self.to_static:
            raise ConfigError(f"onednn and to_static are both true in {where}; choose one "
                              f"(onednn: true is the faster one on CPU)")
        self.snapshot_config.check(where)


def _parse(schema: type, values: Mapping[str, Any], where: str, prefix: str) -> Any:
    """Build dataclass ``schema`` from ``values``: unknown keys first, then required ones, types."""
    hints = typing.get_type_hints(schema)
    known = [f.name for f in dataclasses.fields(schema)]
    for key in values:
        if key not in known:
            hint = closest(key, known)
            hint = f"; did you mean {hint!r}?" if hint else f"; allowed: {', '.join(known)}"
            raise ConfigError(f"unknown key {prefix + key!r} in {where}{hint}")
    kwargs = {}
    for spec in dataclasses.fields(schema):
        required = spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING
        value = values.get(spec.name)
        if spec.name not in values and required:
            raise ConfigError(f"{where} lacks the required key {prefix + spec.name!r}")
        if value is None and not required:
            continue  # null means the default
        kwargs[spec.name] = _typed(hints[spec.name], value, prefix + spec.name, where)
    return schema(**kwargs)


def _typed(kind: Any, value: Any, key: str, where: str) -> Any:
    """``value`` checked against the annotation ``kind`` (a nested schema is parsed)."""
    if dataclasses.is_dataclass(kind):
        if not isinstance(value, Mapping):
            keys = ", ".join(f.name for f in dataclasses.fields(kind))
            raise ConfigError(f"{key} in {where} must be a mapping with keys {keys}, "
                              f"got {value!r}")
        return _parse(typing.cast(type, kind), value, where, prefix=key + ".")
    optional = typing.get_origin(kind) is typing.Union
    base = typing.get_args(kind)[0] if optional else kind
    base = typing.get_origin(base) or base  # Dict[str, Any] -> dict
    checks = {int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
              bool: (lambda v: isinstance(v, bool), "true or false"),
              str: (lambda v: isinstance(v, str), "a string"),
              dict: (lambda v: isinstance(v, Mapping), "a mapping")}
    accepts, what = checks[base]
    if not accepts(value):
        what = what.replace(" or ", ", ") + " or null" if optional else what
        raise ConfigError(f"{key} in {where} must be {what}, got {value!r}")
    return value
