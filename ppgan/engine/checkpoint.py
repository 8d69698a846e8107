"""Training checkpoints: one self-describing file per snapshot, written atomically.

A checkpoint is a dict (numpy arrays inside, loadable by ``paddle.load`` and by the project's
safe reader ``ppgan.utils.weights.read_weights_file``)::

    format: 'ppgan-wav2lip-checkpoint'   version: 1          iteration: N
    nets: {net name: state dict}         optimizers: {key: state, parameters by net + key}
    lr_schedulers: {'lr_scheduler': state}                   model_state: {'syncnet_wt': ...}
    hooks: {hook name: state}            rng: {python, numpy, paddle}
    config: the resolved config          metrics: last evaluation {name: value}

Optimizer states are stored under structured names (``netG.audio_encoder.0...weight_moment1_0``)
instead of Paddle's process-global parameter names (``conv2d_17.w_0``), so they load into a
model built in another process or in another order.
"""

import glob
import os
import random
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple, cast

import numpy as np
import paddle

from ..utils.errors import TrainingError, WeightsError

FORMAT = "ppgan-wav2lip-checkpoint"
VERSION = 1
REQUIRED_KEYS = ("nets", "optimizers", "lr_schedulers", "iteration", "model_state", "rng",
                 "config")
CHECKPOINT_PATTERN = re.compile(r"^iter_(\d+)_checkpoint\.pdparams$")


def checkpoint_name(iteration: int) -> str:
    """``iter_<iteration>_checkpoint.pdparams``."""
    return f"iter_{iteration}_checkpoint.pdparams"


def list_checkpoints(folder: str) -> List[Tuple[int, str]]:
    """[(iteration, path)] of the periodic checkpoints in ``folder``, oldest first."""
    found = []
    for path in glob.glob(os.path.join(folder, "iter_*_checkpoint.pdparams")):
        match = CHECKPOINT_PATTERN.match(os.path.basename(path))
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def resolve_resume_path(path: str) -> str:
    """A checkpoint file as given, or the newest periodic checkpoint inside a folder."""
    if os.path.isdir(path):
        found = list_checkpoints(path)
        if not found:
            raise WeightsError(f"--resume {path}: the folder holds no iter_*_checkpoint.pdparams")
        return found[-1][1]
    if not os.path.isfile(path):
        raise WeightsError(f"checkpoint not found: {path}")
    return path


# ---------------------------------------------------------------------- optimizer states
def _param_names(nets: Mapping[str, paddle.nn.Layer]) -> Dict[str, str]:
    """{paddle parameter name: structured name 'net.key'} for the given {net name: Layer}."""
    names = {}
    for net_name, net in nets.items():
        for key, param in net.named_parameters():
            names[param.name] = f"{net_name}.{key}"
    return names


def _rename_state(state: Mapping[str, Any], mapping: Mapping[str, str], what: str) -> Dict[str, Any]:
    """Rename the parameter prefix of every accumulator key with ``mapping`` (old -> new)."""
    renamed = {}
    for key, value in state.items():
        if key == "LR_Scheduler":
            continue  # restored from lr_schedulers, once, not by every optimizer
        if key == "master_weights":
            renamed[key] = _rename_state(value, mapping, what)
            continue
        prefix = next((p for p in mapping if key == p or key.startswith(p + "_")), None)
        if prefix is None:
            raise WeightsError(f"optimizer state entry {key!r} matches no parameter of {what}; "
                               f"the checkpoint was written for another model")
        renamed[mapping[prefix] + key[len(prefix):]] = value
    return renamed


def _longest_first(mapping: Mapping[str, str]) -> Dict[str, str]:
    # A name that is a prefix of another must be tried after it.
    return dict(sorted(mapping.items(), key=lambda kv: -len(kv[0])))


def optimizer_state(optimizer: Any, nets: Mapping[str, paddle.nn.Layer]) -> Dict[str, Any]:
    """The optimizer's state dict keyed by structured parameter names."""
    return _rename_state(optimizer.state_dict(), _longest_first(_param_names(nets)), "the model")


def load_optimizer_state(optimizer: Any, state: Mapping[str, Any],
                         nets: Mapping[str, paddle.nn.Layer],
                         lr_scheduler_state: Mapping[str, Any]) -> None:
    """Load a state written by ``optimizer_state`` into ``optimizer`` over the current ``nets``.

    Paddle insists on the scheduler state too (it restores the shared scheduler from it).
    """
    to_current = _longest_first({v: k for k, v in _param_names(nets).items()})
    renamed = {k: _as_tensor(v) for k, v in _rename_state(state, to_current, "this model").items()}
    renamed["LR_Scheduler"] = dict(lr_scheduler_state)
    optimizer.set_state_dict(renamed)


def _as_tensor(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _as_tensor(v) for k, v in value.items()}
    return paddle.to_tensor(value) if isinstance(value, np.ndarray) else value


# ---------------------------------------------------------------------- random states
def capture_rng() -> Dict[str, List[Any]]:
    """Python, numpy and Paddle generator states as plain values (ints, arrays)."""
    _, py_keys, py_gauss = random.getstate()
    np_state = cast(Tuple[Any, ...], np.random.get_state())  # the legacy tuple form
    paddle_state = paddle.get_rng_state()[0].__getstate__()
    return {"python": [np.asarray(py_keys, dtype=np.uint64), py_gauss],
            "numpy": [np_state[1], int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "paddle": [int(paddle_state[0]), int(paddle_state[1]), int(paddle_state[2]),
                       np.asarray(paddle_state[3], dtype=np.uint8)]}


def restore_rng(state: Mapping[str, Any]) -> None:
    """Restore the states ``capture_rng`` returned."""
    py_keys, py_gauss = state["python"]
    random.setstate((3, tuple(int(k) for k in py_keys), py_gauss))
    keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(("MT19937", np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    device, seed, offset, engine = state["paddle"]
    from paddle.base import core
    generator_state = core.GeneratorState.__new__(core.GeneratorState)
    generator_state.__setstate__((device, seed, offset, [int(b) for b in engine]))
    paddle.set_rng_state([generator_state])


# ---------------------------------------------------------------------- files
def save_checkpoint(path: str, content: Mapping[str, Any]) -> None:
    """Write ``content`` (the dict described above, minus format/version) atomically.

    Raises:
        TrainingError: a net's weights hold NaN/Inf; nothing is written (a diverged run must
            never replace a good checkpoint, ``best.pdparams`` included).
    """
    from ..utils.weights import listed_keys, non_finite_keys, save_weights_file
    for net_name, state in content["nets"].items():
        bad = non_finite_keys({key: value.numpy() if hasattr(value, "numpy") else np.asarray(value)
                               for key, value in state.items()})
        if bad:
            raise TrainingError(f"refusing to write {path}: {net_name} has NaN/Inf weights "
                                f"({listed_keys(bad)}); the run diverged, resume from an earlier "
                                f"checkpoint with a lower learning rate")
    save_weights_file({"format": FORMAT, "version": VERSION, **content}, path)


def load_checkpoint(path: str) -> Dict[str, Any]:
    """Read and check a training checkpoint.

    Raises:
        WeightsError: missing, truncated or corrupt file, or a file that is not one of our
            training checkpoints (e.g. a bare weights file: use ``--load`` for those).
    """
    from ..utils.weights import read_weights_file
    ckpt = read_weights_file(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise WeightsError(f"{path} is not a training checkpoint of this framework (no "
                           f"format: {FORMAT}); to start from its weights use --load instead")
    if ckpt.get("version") != VERSION:
        raise WeightsError(f"{path} is checkpoint version {ckpt.get('version')}, this "
                           f"framework reads version {VERSION}")
    missing = [key for key in REQUIRED_KEYS if key not in ckpt]
    if missing:
        raise WeightsError(f"checkpoint {path} lacks {missing}; it is incomplete")
    return ckpt


def nets_in_weights(obj: Any) -> Optional[Dict[str, Any]]:
    """{net name: state dict} when ``obj`` holds several named nets, None for a flat state dict."""
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        return obj["nets"]
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) for v in obj.values()):
        return obj
    return None
