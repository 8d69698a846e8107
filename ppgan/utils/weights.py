"""Weights files: read them safely, write them atomically, pick a net's state dict, load strictly.

Handled formats (parsed without executing anything, see ``ppgan.utils.safe_unpickle``):

- Paddle ``.pdparams`` as written by ``paddle.save`` (numpy arrays plus a name table; tensors
  nested deeper are ``(name, array)`` tuples), including PaddleGAN's released files;
- this project's checkpoints (``save_weights_file``; ``{"format": CHECKPOINT_FORMAT, "nets": ...}``);
- PyTorch ``.pth``: the zip format (torch >= 1.6) and the legacy pickle stream, read without torch.

``load_weights`` is the one loader used by training, inference, evaluation and export.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import paddle

from .atomic import atomic_write
from .errors import WeightsError
from .logger import get_logger
from .safe_unpickle import EXPECTED, PARSE_ERRORS, UnsafePickle, resolve_tensors, unpickle_weights

CHECKPOINT_FORMAT = "ppgan-wav2lip-checkpoint"
_PADDLE_NAME_TABLE = "StructuredToParameterName@@"
_PADDLE_SPLIT_PARAMS = "UnpackBigParamInfor@@"
_REPORT_ITEMS = 4  # how many keys of each kind an error message lists before "..."
CHECKSUM_KEY = "checksum"  # in this project's checkpoints: "sha256:<hex>" over their arrays

# A weights file name as str or path object.
PathLike = Union[str, "os.PathLike[str]"]
# One network's flat state dict as read from a file: {parameter name: numpy array}.
StateDict = Dict[str, np.ndarray]


def _merge_paddle_split_params(obj: Any) -> Any:
    """Undo paddle.save's splitting of >1 GiB arrays and drop its parameter-name table."""
    if not isinstance(obj, dict):
        return obj
    for key, info in obj.pop(_PADDLE_SPLIT_PARAMS, {}).items():
        parts = [obj.pop(part) for part in info["slices"]]
        obj[key] = np.concatenate(parts).reshape(info["OriginShape"])
    obj.pop(_PADDLE_NAME_TABLE, None)
    return obj


def read_weights_file(path: PathLike) -> Any:
    """Read a weights or checkpoint file without executing anything from it.

    Args:
        path: a ``.pdparams`` (Paddle / PaddleGAN / this project) or ``.pth`` (PyTorch) file.
    Returns:
        The stored object as dicts / lists / tuples / numbers / strings and numpy arrays
        (tensors become arrays).
    Raises:
        WeightsError: missing, empty, corrupt or truncated file, not a weights file, or a file
            that asks to run code (naming the refused global).
    """
    path = os.fspath(path)  # (read objects are Any: dicts, lists, arrays and plain values)
    if os.path.isdir(path):
        raise WeightsError(f"{path} is a folder; expected {EXPECTED}")
    if not os.path.isfile(path):
        raise WeightsError(f"weights file not found: {path}")
    if os.path.getsize(path) == 0:
        raise WeightsError(f"{path} is empty; expected {EXPECTED}")
    try:
        obj, storages = unpickle_weights(path)
        obj = _merge_paddle_split_params(resolve_tensors(obj, storages, path))
    except UnsafePickle as exc:
        raise WeightsError(f"refusing to load {path}: it contains {exc}, which a weights file "
                           f"never needs (the file may be malicious); only plain containers and "
                           f"arrays are allowed") from None
    except WeightsError:
        raise
    except PARSE_ERRORS as exc:
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise WeightsError(f"{path} is corrupt or truncated ({detail}); expected {EXPECTED}: "
                           f"copy or download it again") from None
    verify_checksum(obj, path)
    return obj


# ----------------------------------------------------------------------------- checksums

def tensor_checksum(obj: Any) -> str:
    """"sha256:<hex>" over every array of ``obj`` (with its key path, dtype and shape), in order.

    ``obj`` is a checkpoint as stored (dicts / lists / tuples of arrays and plain values); its
    own ``CHECKSUM_KEY`` entry is skipped.
    """
    digest = hashlib.sha256()

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if not (where == "" and key == CHECKSUM_KEY):
                    walk(value, f"{where}/{key}")
        elif isinstance(node, (list, tuple)):
            for index, value in enumerate(node):
                walk(value, f"{where}/{index}")
        elif isinstance(node, np.ndarray):
            array = np.ascontiguousarray(node)
            digest.update(f"{where}:{array.dtype.str}:{array.shape};".encode())
            # ndarray is a buffer; numpy declares __buffer__ for Python >= 3.12 only.
            digest.update(memoryview(array.reshape(-1)).cast("B"))  # type: ignore[arg-type]

    walk(obj, "")
    return "sha256:" + digest.hexdigest()


def verify_checksum(obj: Any, path: str) -> None:
    """Fail when one of this project's checkpoints no longer matches its stored checksum.

    Files without a checksum (other frameworks', older ones) pass unchecked.
    """
    if not (isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT
            and CHECKSUM_KEY in obj):
        return
    if tensor_checksum(obj) != obj[CHECKSUM_KEY]:
        raise WeightsError(f"{path} is damaged: its weights no longer match the checksum written "
                           f"with them (bytes changed on disk or in a copy); copy it again or use "
                           f"another checkpoint")


# ----------------------------------------------------------------------------- writing

def _to_storable(obj: Any, where: str = "checkpoint") -> Any:
    """Tensors -> numpy, dict subclasses -> dict; refuse anything ``read_weights_file`` or
    ``paddle.load`` could not read back, so a checkpoint never fails only when reloaded."""
    if isinstance(obj, paddle.Tensor):
        return obj.numpy()
    if isinstance(obj, dict):
        return {key: _to_storable(value, f"{where}.{key}") for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_storable(value, f"{where}[{i}]") for i, value in enumerate(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray) and not obj.dtype.hasobject:
        return obj
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} at {where} in a weights file: only "
                    f"dicts, lists, tuples, numbers, strings and arrays/tensors are allowed")


def save_weights_file(obj: Any, path: str) -> None:
    """Write ``obj`` (tensors converted to numpy) as a protocol-4 pickle, atomically.

    The file reads back with ``read_weights_file`` and with ``paddle.load``. It is written with
    ``ppgan.utils.atomic.atomic_write`` (temporary file, fsync, rename), so neither a crash nor a
    power loss leaves half a file. This project's checkpoints (``format: CHECKPOINT_FORMAT``)
    get a checksum of their arrays, verified by ``read_weights_file``.

    Args:
        obj: nested dicts / lists / tuples of paddle Tensors, numpy arrays, numbers, strings.
        path: destination (its folder is created).
    Raises:
        TypeError: ``obj`` holds something else (the key path is named).
        OutputError: the file cannot be written (full disk, ...); nothing is replaced.
    """
    storable = _to_storable(obj)
    if isinstance(storable, dict) and storable.get("format") == CHECKPOINT_FORMAT:
        storable = {key: value for key, value in storable.items() if key != CHECKSUM_KEY}
        storable[CHECKSUM_KEY] = tensor_checksum(storable)
    with atomic_write(path) as stream:
        pickle.dump(storable, stream, protocol=4)


# ----------------------------------------------------------------------------- selecting

def _is_flat_state(obj: Any) -> bool:
    """True for a non-empty dict of numpy arrays (one network's state)."""
    return isinstance(obj, dict) and bool(obj) and \
        all(isinstance(v, np.ndarray) for v in obj.values())


def select_state_dict(obj: Any, net_name: Optional[str] = None, path: Optional[str] = None) -> StateDict:
    """Pick one network's flat state dict out of a read weights file.

    Accepts a flat dict (PaddleGAN's ``wav2lip_hq.pdparams``, a converted ``.pth``), a dict of
    nets (PaddleGAN's training weights ``{"netG": {...}, ...}``) or this project's checkpoint
    (``{"format": CHECKPOINT_FORMAT, "nets": {...}}``).

    Args:
        obj: what ``read_weights_file`` returned.
        net_name: which net of a multi-net file; default: the only one, else ``netG``.
        path: file name used in error messages.
    Returns:
        {parameter name: numpy array}.
    Raises:
        WeightsError: no state dict in ``obj``, or ``net_name`` missing / ambiguous.
    """
    where = path or "the weights"
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        obj = obj.get("nets", {})
    if _is_flat_state(obj):
        return obj
    nets = {k: v for k, v in obj.items() if _is_flat_state(v)} if isinstance(obj, dict) else {}
    if not nets:
        raise WeightsError(f"{where} holds no network state dict (a dict of arrays); expected a "
                           f"weights file or a training checkpoint")
    if net_name is None:
        net_name = next(iter(nets)) if len(nets) == 1 else "netG" if "netG" in nets else None
        if net_name is None:
            raise WeightsError(f"{where} holds several networks ({', '.join(nets)}); "
                               f"say which one with net_name / --net-name")
    if net_name not in nets:
        raise WeightsError(f"{where} has no network {net_name!r}; it holds: {', '.join(nets)}")
    return nets[net_name]


# ----------------------------------------------------------------------------- loading

@dataclass
class LoadReport:
    """Outcome of matching a state dict against a network."""

    source: str
    network: str
    loaded: int = 0
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]] = field(default_factory=list)  # (key, file shape, network shape)

    @property
    def ok(self) -> bool:
        """True when every entry matched in name and shape."""
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self) -> str:
        """One line listing the first few problems of each kind, with counts."""
        def listed(items: Sequence[object]) -> str:
            head = ", ".join(map(str, items[:_REPORT_ITEMS]))
            return head + (", ..." if len(items) > _REPORT_ITEMS else "")
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({listed(self.missing)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected ({listed(self.unexpected)})")
        if self.mismatched:
            shapes = [f"{k} {list(a)} in file vs {list(b)}" for k, a, b in self.mismatched]
            parts.append(f"{len(self.mismatched)} with another shape ({listed(shapes)})")
        return "; ".join(parts) or f"all {self.loaded} entries match"


def match_state_dict(expected_shapes: Mapping[str, Sequence[int]], state: Mapping[str, Any], source: str,
                     network: str) -> LoadReport:
    """Compare ``{name: shape}`` a network expects with a ``{name: array}`` state dict."""
    report = LoadReport(source=source, network=network)
    report.missing = [k for k in expected_shapes if k not in state]
    report.unexpected = [k for k in state if k not in expected_shapes]
    for key, shape in expected_shapes.items():
        if key in state:
            if tuple(state[key].shape) == tuple(shape):
                report.loaded += 1
            else:
                report.mismatched.append((key, tuple(state[key].shape), tuple(shape)))
    return report


def mismatch_error(report: LoadReport, hint: str = "") -> WeightsError:
    """The one-line ``WeightsError`` for a failed match (shared by loading and conversion)."""
    expected = report.loaded + len(report.missing) + len(report.mismatched)
    found = report.loaded + len(report.unexpected) + len(report.mismatched)
    if report.loaded == 0 and not report.mismatched:
        cause = "no parameter name in common: it is a file for another architecture"
    elif report.loaded < expected / 2:
        cause = f"most entries differ, so it is probably for another architecture or width: " \
                f"{report.summary()}"
    else:
        cause = report.summary()
    if any(k.endswith(("running_mean", "num_batches_tracked")) for k in report.unexpected):
        hint = hint or "it looks like a PyTorch checkpoint: convert it with tools/convert_weights.py"
    return WeightsError(f"{report.source} does not fit {report.network} ({found} entries in the "
                        f"file, {expected} expected): {cause}" + (f"; {hint}" if hint else ""))


def load_weights(net: paddle.nn.Layer, source: Any, net_name: Optional[str] = None, strict: bool = True,
                 where: Optional[str] = None) -> LoadReport:
    """Load weights into ``net``: THE loader for training, inference, evaluation and export.

    Args:
        net: a ``paddle.nn.Layer``.
        source: a file path, or an object ``read_weights_file`` returned.
        net_name: which net of a multi-net file (see ``select_state_dict``).
        strict: fail unless every key matches in name and shape. Default: True. When False,
            the matching entries are loaded and the rest reported.
        where: the name messages give the weights; default: the path, or "the given weights".
    Returns:
        LoadReport.
    Raises:
        WeightsError: unreadable file, no such net, or (strict) any missing / unexpected /
            mis-shaped entry, listed in the message.
    """
    is_path = isinstance(source, (str, os.PathLike))
    where = where or (os.fspath(source) if is_path else "the given weights")
    state = select_state_dict(read_weights_file(source) if is_path else source, net_name, where)
    target = net.state_dict()
    report = match_state_dict({k: tuple(v.shape) for k, v in target.items()}, state,
                              where, type(net).__name__)
    if strict and not report.ok:
        raise mismatch_error(report)
    if not report.ok:
        get_logger().warning("loading %s into %s non-strictly: %s", where, report.network,
                             report.summary())
    matched = {key: state[key].astype(_numpy_dtype(target[key]), copy=False)
               for key in target if key in state and tuple(state[key].shape) == tuple(target[key].shape)}
    check_finite_weights(matched, where)
    net.set_state_dict(matched)  # type: ignore[arg-type]  # takes numpy arrays too (stub: Tensors)
    return report


def non_finite_keys(state: Mapping[str, np.ndarray]) -> List[str]:
    """Keys of a ``{name: numpy array}`` state dict whose values hold NaN or Inf."""
    return [key for key, value in state.items()
            if value.dtype.kind in "fc" and not np.isfinite(value).all()]


def listed_keys(keys: Sequence[object]) -> str:
    """The first few keys, comma-separated, with "..." when there are more."""
    return ", ".join(map(str, keys[:_REPORT_ITEMS])) + (", ..." if len(keys) > _REPORT_ITEMS else "")


def check_finite_weights(state: Mapping[str, np.ndarray], where: str) -> None:
    """Refuse a state dict holding NaN or Inf values (what a diverged run saves).

    Raises:
        WeightsError: naming the file and the first affected entries.
    """
    bad = non_finite_keys(state)
    if bad:
        raise WeightsError(f"{where} holds NaN/Inf values in {len(bad)} of its weights "
                           f"({listed_keys(bad)}): it was saved by a run that diverged; use an "
                           f"earlier checkpoint")


def _numpy_dtype(tensor: paddle.Tensor) -> np.dtype:
    """The numpy dtype of a paddle tensor, without copying its data."""
    return np.dtype(str(tensor.dtype).replace("paddle.", ""))
