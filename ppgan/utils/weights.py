"""Weights files: read them without running anything, pick a network's state dict, load strictly.

Weights files are pickles, and unpickling can call any function the file names. Every file is
therefore read with a restricted unpickler that admits only plain containers and the numpy /
PyTorch recipes for rebuilding arrays; any other global is refused with a ``WeightsError``.
Handled formats:

- Paddle ``.pdparams`` as written by ``paddle.save`` (numpy arrays plus a name table; tensors
  nested deeper are ``(name, array)`` tuples), including PaddleGAN's released files;
- this project's checkpoints (``save_weights_file``; ``{"format": CHECKPOINT_FORMAT, "nets": ...}``);
- PyTorch ``.pth``: the zip format (torch >= 1.6) and the legacy pickle stream, read without torch.

``load_weights`` is the one loader used by training, inference, evaluation and export.
"""

import os
import pickle
import struct
import tempfile
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import paddle

from .errors import WeightsError
from .logger import get_logger

CHECKPOINT_FORMAT = "ppgan-wav2lip-checkpoint"
EXPECTED = "a weights file (.pdparams from Paddle or this project, or a PyTorch .pth)"
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_PADDLE_NAME_TABLE = "StructuredToParameterName@@"
_PADDLE_SPLIT_PARAMS = "UnpackBigParamInfor@@"
_REPORT_ITEMS = 4  # how many keys of each kind an error message lists before "..."

_TORCH_STORAGE_DTYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128", "UntypedStorage": "uint8",
}


class _Unsafe(Exception):
    """Raised inside unpickling; turned into a WeightsError naming the file."""


# ----------------------------------------------------------------------------- safe callables
# Each stands in for the global a pickle names, checks its arguments, and builds data only.

def _safe_dtype(spec, align=False, copy=False):
    dtype = np.dtype(spec, bool(align), bool(copy))
    if dtype.hasobject:
        raise _Unsafe("an array of Python objects")
    return dtype


_NDARRAY = object()  # what ``numpy.ndarray`` resolves to: only usable as _safe_reconstruct's tag
_numpy_reconstruct = np.zeros(1).__reduce__()[0]
_numpy_scalar = np.float32(0).__reduce__()[0]


def _safe_reconstruct(subtype, shape, dtype_code):
    if subtype is not _NDARRAY:
        raise _Unsafe("an array subclass")
    return _numpy_reconstruct(np.ndarray, shape, dtype_code)


def _safe_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or not isinstance(data, (bytes, str)):
        raise _Unsafe("a malformed numpy scalar")
    return _numpy_scalar(dtype, data)


def _safe_frombuffer(buffer, dtype, shape, order):
    return np.frombuffer(buffer, _safe_dtype(dtype)).reshape(shape, order=order).copy()


def _safe_codecs_encode(text, encoding="utf-8"):
    # Protocol-2 pickles written by Python 3 spell bytes as _codecs.encode(str, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Unsafe("a text re-encoding other than latin1")
    return text.encode("latin1")


class _TorchStorageType:
    """What ``torch.FloatStorage`` and friends resolve to: a dtype tag, not callable."""

    def __init__(self, name):
        self.dtype = _TORCH_STORAGE_DTYPES[name]

    def __setstate__(self, state):
        raise _Unsafe("state for a storage type")


class _TorchTensor:
    """A tensor whose storage bytes are fetched after unpickling (see ``_resolve``)."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def __setstate__(self, state):
        raise _Unsafe("state for a tensor")


def _rebuild_tensor(storage, offset, size, stride, *unused):
    # unused: requires_grad, backward hooks, metadata; none matter for weights.
    if not isinstance(storage, tuple) or not all(isinstance(v, int) for v in (offset, *size, *stride)):
        raise _Unsafe("a malformed tensor record")
    return _TorchTensor(storage, offset, size, stride)


def _rebuild_parameter(data, *unused):
    return data


_SAFE_GLOBALS = {
    ("builtins", "dict"): dict, ("builtins", "list"): list, ("builtins", "tuple"): tuple,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray, ("builtins", "bytes"): bytes,
    ("collections", "OrderedDict"): OrderedDict,
    ("_codecs", "encode"): _safe_codecs_encode,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch", "Size"): tuple,
}
for _numpy_core in ("numpy.core", "numpy._core"):
    _SAFE_GLOBALS.update({
        (f"{_numpy_core}.multiarray", "_reconstruct"): _safe_reconstruct,
        (f"{_numpy_core}.multiarray", "scalar"): _safe_scalar,
        (f"{_numpy_core}.numeric", "_frombuffer"): _safe_frombuffer,
    })
_SAFE_GLOBALS.update({("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _safe_dtype})


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only ``_SAFE_GLOBALS`` and torch storage types.

    Torch persistent ids become ``(key, dtype, offset, numel)`` storage references, recorded in
    ``self.storages``; the bytes are attached afterwards by the format-specific reader.
    """

    def __init__(self, file, allow_torch_storages=False):
        super().__init__(file, encoding="latin1")  # latin1: numpy arrays pickled by Python 2
        self.allow_torch_storages = allow_torch_storages
        self.storages = {}

    def find_class(self, module, name):
        module = "builtins" if module == "__builtin__" else module
        if module in ("torch", "torch.storage") and name in _TORCH_STORAGE_DTYPES:
            return _TorchStorageType(name)
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        raise _Unsafe(f"the global {module}.{name}")

    def persistent_load(self, pid):
        if not self.allow_torch_storages:
            raise _Unsafe("an external reference outside a PyTorch checkpoint")
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _TorchStorageType) and isinstance(pid[4], int)):
            raise _Unsafe(f"an unknown external reference {str(pid)[:60]}")
        _, storage_type, key, _location, numel = pid[:5]
        view = pid[5] if len(pid) > 5 else None
        self.storages.setdefault(str(key), (storage_type.dtype, numel))
        if view:  # legacy storage views: (view_key, offset, size) into the root storage
            return (str(key), storage_type.dtype, int(view[1]), int(view[2]))
        return (str(key), storage_type.dtype, 0, numel)


# ----------------------------------------------------------------------------- format readers

def _storage_array(raw, dtype_name, numel, where):
    """Bytes of one torch storage -> 1-D array (little-endian, as torch writes them)."""
    dtype = np.dtype("<u2" if dtype_name == "bfloat16" else dtype_name).newbyteorder("<")
    if len(raw) < numel * dtype.itemsize:
        raise WeightsError(f"{where} is truncated: a tensor storage has {len(raw)} bytes, "
                           f"{numel * dtype.itemsize} expected; copy the file again")
    return np.frombuffer(raw, dtype, count=numel)


def _tensor_array(tensor, storages, where):
    """Materialise a ``_TorchTensor`` from the storage arrays, with bounds checks."""
    key, dtype_name, view_offset, view_numel = tensor.storage
    if key not in storages:
        raise WeightsError(f"{where} is corrupt: tensor storage {key!r} is missing")
    flat = storages[key][view_offset:view_offset + view_numel]
    size, stride = tensor.size, tensor.stride
    if len(size) != len(stride) or min((*size, *stride, tensor.offset), default=0) < 0:
        raise WeightsError(f"{where} is corrupt: a tensor has an invalid shape or stride")
    if 0 in size:
        out = np.zeros(size, flat.dtype)
    else:
        last = tensor.offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= flat.size:
            raise WeightsError(f"{where} is corrupt: a tensor reaches past the end of its storage")
        out = np.lib.stride_tricks.as_strided(
            flat[tensor.offset:], shape=size, strides=[s * flat.itemsize for s in stride]).copy()
    if dtype_name == "bfloat16":  # numpy has no bfloat16: widen the upper 16 bits to float32
        return (out.astype(np.uint32) << 16).view(np.float32)
    return out.astype(out.dtype.newbyteorder("="))


def _read_torch_zip(path):
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
        if not pickles:
            raise WeightsError(f"{path} is a zip file but not a PyTorch checkpoint "
                               f"(no <name>/data.pkl record); expected {EXPECTED}")
        prefix = pickles[0][:-len("data.pkl")]
        with archive.open(pickles[0]) as stream:
            unpickler = _RestrictedUnpickler(stream, allow_torch_storages=True)
            obj = unpickler.load()
        storages = {}
        for key, (dtype_name, numel) in unpickler.storages.items():
            record = f"{prefix}data/{key}"
            if record not in archive.NameToInfo:
                raise WeightsError(f"{path} is corrupt: record {record} is missing")
            storages[key] = _storage_array(archive.read(record), dtype_name, numel, path)
    return obj, storages


def _read_torch_legacy(stream, path):
    """The pre-1.6 stream: magic, version, sys info, object, storage keys, raw storages."""
    for _ in range(2):  # protocol version and sys info carry nothing we need
        _RestrictedUnpickler(stream).load()
    unpickler = _RestrictedUnpickler(stream, allow_torch_storages=True)
    obj = unpickler.load()
    keys = _RestrictedUnpickler(stream).load()
    storages = {}
    for key in keys:
        if str(key) not in unpickler.storages:
            raise WeightsError(f"{path} is corrupt: storage {key!r} is never used")
        dtype_name, _ = unpickler.storages[str(key)]
        header = stream.read(8)
        if len(header) < 8:
            raise WeightsError(f"{path} is truncated: storage data ends early; copy the file again")
        numel = struct.unpack("<q", header)[0]
        itemsize = np.dtype("<u2" if dtype_name == "bfloat16" else dtype_name).itemsize
        if not 0 <= numel * itemsize <= os.path.getsize(path) - stream.tell():
            raise WeightsError(f"{path} is truncated or corrupt: a storage claims {numel} "
                               f"values, more than the file holds; copy the file again")
        storages[str(key)] = _storage_array(stream.read(numel * itemsize), dtype_name, numel, path)
    return obj, storages


def _resolve(obj, storages, where):
    """Turn the unpickled tree into plain dicts / lists / tuples of numpy arrays."""
    if isinstance(obj, _TorchTensor):
        return _tensor_array(obj, storages, where)
    if isinstance(obj, dict):
        return {key: _resolve(value, storages, where) for key, value in obj.items()}
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], str) \
            and isinstance(obj[1], np.ndarray):
        return obj[1]  # paddle.save's record of a tensor nested below the top level
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(value, storages, where) for value in obj)
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        raise WeightsError(f"{where} holds an array of Python objects, which a weights file "
                           f"never needs; refusing it")
    return obj


def _merge_paddle_split_params(obj):
    """Undo paddle.save's splitting of >1 GiB arrays and drop its parameter-name table."""
    if not isinstance(obj, dict):
        return obj
    for key, info in obj.pop(_PADDLE_SPLIT_PARAMS, {}).items():
        parts = [obj.pop(part) for part in info["slices"]]
        obj[key] = np.concatenate(parts).reshape(info["OriginShape"])
    obj.pop(_PADDLE_NAME_TABLE, None)
    return obj


def read_weights_file(path):
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
    path = os.fspath(path)
    if os.path.isdir(path):
        raise WeightsError(f"{path} is a folder; expected {EXPECTED}")
    if not os.path.isfile(path):
        raise WeightsError(f"weights file not found: {path}")
    if os.path.getsize(path) == 0:
        raise WeightsError(f"{path} is empty; expected {EXPECTED}")
    try:
        if zipfile.is_zipfile(path):
            obj, storages = _read_torch_zip(path)
        else:
            with open(path, "rb") as stream:
                head = stream.peek(4)[:4]
                if head == b"PK\x03\x04":  # a zip whose central directory is gone
                    raise zipfile.BadZipFile("the zip archive is cut short")
                if head[:1] != b"\x80":  # every binary pickle starts with PROTO
                    raise WeightsError(f"{path} is not a weights file; expected {EXPECTED}")
                obj, storages = _RestrictedUnpickler(stream).load(), {}
                if isinstance(obj, int) and obj == _TORCH_LEGACY_MAGIC:
                    obj, storages = _read_torch_legacy(stream, path)
        return _resolve(_merge_paddle_split_params(obj), storages, path)
    except _Unsafe as exc:
        raise WeightsError(f"refusing to load {path}: it contains {exc}, which a weights file "
                           f"never needs (the file may be malicious); only plain containers and "
                           f"arrays are allowed") from None
    except WeightsError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
            AttributeError, struct.error, zipfile.BadZipFile, MemoryError, RecursionError,
            OverflowError) as exc:
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise WeightsError(f"{path} is corrupt or truncated ({detail}); expected {EXPECTED}: "
                           f"copy or download it again") from None


# ----------------------------------------------------------------------------- writing

def _to_storable(obj, where="checkpoint"):
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


def save_weights_file(obj, path):
    """Write ``obj`` (tensors converted to numpy) as a protocol-4 pickle, atomically.

    The file reads back with ``read_weights_file`` and with ``paddle.load``. It is written to a
    temporary file in the same folder and renamed, so a crash never leaves half a file.

    Args:
        obj: nested dicts / lists / tuples of paddle Tensors, numpy arrays, numbers, strings.
        path: destination (its folder is created).
    Raises:
        TypeError: ``obj`` holds something else (the key path is named).
    """
    storable = _to_storable(obj)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            pickle.dump(storable, stream, protocol=4)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise


# ----------------------------------------------------------------------------- selecting

def _is_flat_state(obj):
    return isinstance(obj, dict) and bool(obj) and \
        all(isinstance(v, np.ndarray) for v in obj.values())


def select_state_dict(obj, net_name=None, path=None):
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
    missing: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    mismatched: list = field(default_factory=list)  # (key, file shape, network shape)

    @property
    def ok(self):
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self):
        """One line listing the first few problems of each kind, with counts."""
        def listed(items):
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


def match_state_dict(expected_shapes, state, source, network):
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


def mismatch_error(report, hint=""):
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


def load_weights(net, source, net_name=None, strict=True):
    """Load weights into ``net``: THE loader for training, inference, evaluation and export.

    Args:
        net: a ``paddle.nn.Layer``.
        source: a file path, or an object ``read_weights_file`` returned.
        net_name: which net of a multi-net file (see ``select_state_dict``).
        strict: fail unless every key matches in name and shape. Default: True. When False,
            the matching entries are loaded and the rest reported.
    Returns:
        LoadReport.
    Raises:
        WeightsError: unreadable file, no such net, or (strict) any missing / unexpected /
            mis-shaped entry, listed in the message.
    """
    is_path = isinstance(source, (str, os.PathLike))
    where = os.fspath(source) if is_path else "the given weights"
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
    net.set_state_dict(matched)
    return report


def _numpy_dtype(tensor):
    """The numpy dtype of a paddle tensor, without copying its data."""
    return np.dtype(str(tensor.dtype).replace("paddle.", ""))
