"""Read a pickled weights file without running anything from it.

Unpickling can call any function a file names, so every weights file goes through
``_RestrictedUnpickler``: it admits only plain containers and the numpy / PyTorch recipes for
rebuilding arrays, each replaced by a stand-in that checks its arguments and builds data only;
any other global raises ``UnsafePickle``. Two PyTorch layouts are read without torch: the zip
format (torch >= 1.6: ``<name>/data.pkl`` plus one record per storage) and the legacy stream
(magic number, pickles, then the raw storages).

``unpickle_weights(path)`` parses a file into ``(tree, storages)`` and ``resolve_tensors``
turns that into dicts / lists / tuples of numpy arrays. ``ppgan.utils.weights.read_weights_file``
is the public entry point; it adds the file checks and the one-line errors.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from typing import Any, Dict, Optional, Tuple

import numpy as np

from .errors import WeightsError

EXPECTED = "a weights file (.pdparams from Paddle or this project, or a PyTorch .pth)"
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
# What a corrupt or truncated file raises while it is parsed (besides WeightsError).
PARSE_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
                AttributeError, struct.error, zipfile.BadZipFile, MemoryError, RecursionError,
                OverflowError)

_TORCH_STORAGE_DTYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128", "UntypedStorage": "uint8",
}


class UnsafePickle(Exception):
    """The pickle asks for something a weights file never needs (its text says what).

    Raised inside unpickling; ``read_weights_file`` turns it into a WeightsError naming the file.
    """


# ----------------------------------------------------------------------------- safe callables
# Each stands in for the global a pickle names, checks its arguments, and builds data only.
# numpy's own dtype and array constructors are never called with pickle-supplied state: a
# dtype's __setstate__ accepts flags that make it claim Python objects, and an array built over
# such a dtype reads its bytes as object pointers (a crash). The stand-ins record the pickle's
# arguments and build fresh, plain numeric dtypes and arrays from them.

# Plain numeric kinds: bool, signed / unsigned integers, floats, complex numbers.
_NUMERIC_KINDS = "?biufc"
_BYTE_ORDERS = ("<", ">", "|", "=")


class _DtypeSpec:
    """What ``numpy.dtype(...)`` resolves to: a validated plain numeric dtype.

    Its pickled state may only set the byte order; anything else (fields, sub-arrays, flags,
    custom sizes) is refused.
    """

    def __init__(self, spec, align=False, copy=False):
        if not isinstance(spec, str) or len(spec) > 8:
            raise UnsafePickle(f"a dtype built from {type(spec).__name__} {str(spec)[:20]!r}")
        dtype = np.dtype(spec)
        if dtype.hasobject:
            raise UnsafePickle("an array of Python objects")
        if dtype.kind not in _NUMERIC_KINDS or dtype.hasobject or dtype.names or dtype.subdtype:
            raise UnsafePickle(f"the dtype {spec!r} (only plain numeric arrays are allowed)")
        self.dtype = dtype

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (8, 9) or state[1] not in _BYTE_ORDERS \
                or any(v is not None for v in state[2:5]) or state[-1] != 0:
            raise UnsafePickle(f"dtype state {str(state)[:60]} (only the byte order may be set)")
        if state[1] in "<>" and self.dtype.itemsize > 1:
            self.dtype = self.dtype.newbyteorder(state[1])


def _as_dtype(value):
    if not isinstance(value, _DtypeSpec):
        raise UnsafePickle(f"a {type(value).__name__} where a dtype belongs")
    return value.dtype


def _as_shape(shape):
    if not isinstance(shape, tuple) or not all(type(n) is int and n >= 0 for n in shape):
        raise UnsafePickle(f"the array shape {str(shape)[:60]}")
    return shape


def _array_from_bytes(data, dtype, shape, order):
    """A fresh writable array of ``shape`` over exactly ``len(data)`` bytes (checked first)."""
    if isinstance(data, str):  # numpy arrays pickled by Python 2 carry latin1 text
        data = data.encode("latin1")
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickle(f"array data of type {type(data).__name__}")
    if int(np.prod(shape, dtype=object)) * dtype.itemsize != len(data):
        raise ValueError(f"an array of shape {shape} does not match its {len(data)} data bytes")
    return np.frombuffer(data, dtype).reshape(shape, order=order).copy(order=order)


class _ArraySpec:
    """What ``numpy.core.multiarray._reconstruct(ndarray, ...)`` resolves to.

    The array itself comes from the state the pickle BUILDs it with
    (``(version, shape, dtype, is_fortran, data)``), built by ``_array_from_bytes``;
    ``resolve_tensors`` replaces the spec by ``self.array``.
    """

    __slots__ = ("array",)

    def __init__(self):
        self.array = None

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (4, 5) or self.array is not None:
            raise UnsafePickle("a malformed array state")
        shape, dtype, fortran, data = state[-4:]
        if not isinstance(fortran, (bool, int)):
            raise UnsafePickle("a malformed array state")
        self.array = _array_from_bytes(data, _as_dtype(dtype), _as_shape(tuple(shape)
                                       if isinstance(shape, list) else shape),
                                       "F" if fortran else "C")


_NDARRAY = object()  # what ``numpy.ndarray`` resolves to: only usable as _safe_reconstruct's tag


def _safe_reconstruct(subtype, shape=None, dtype_code=None):
    # shape / dtype_code describe numpy's empty placeholder; the real array is in the state.
    if subtype is not _NDARRAY:
        raise UnsafePickle("an array subclass")
    return _ArraySpec()


def _safe_scalar(dtype, data=None):
    dtype = _as_dtype(dtype)
    if not isinstance(data, (bytes, str)):
        raise UnsafePickle("a malformed numpy scalar")
    return _array_from_bytes(data, dtype, (), "C")[()]


def _safe_frombuffer(buffer, dtype, shape, order):
    if order not in ("C", "F"):
        raise UnsafePickle(f"the array order {str(order)[:10]!r}")
    return _array_from_bytes(buffer, _as_dtype(dtype), _as_shape(tuple(shape)), order)


def _safe_codecs_encode(text, encoding="utf-8"):
    # Protocol-2 pickles written by Python 3 spell bytes as _codecs.encode(str, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickle("a text re-encoding other than latin1")
    return text.encode("latin1")


def _bytes_args(args):
    # bytes(n) / bytearray(n) would allocate n bytes from a 5-byte pickle: only copies of data
    # in the file (bytes, or latin1 text as protocol 2 writes them) are allowed.
    if len(args) > 2 or (args and isinstance(args[0], int)) or \
            (len(args) == 2 and args[1] not in ("latin1", "latin-1")):
        raise UnsafePickle("a bytes object not built from data in the file")
    return args


def _safe_bytes(*args):
    return bytes(*_bytes_args(args))


def _safe_bytearray(*args):
    return bytearray(*_bytes_args(args))


class _TorchStorageType:
    """What ``torch.FloatStorage`` and friends resolve to: a dtype tag, not callable."""

    def __init__(self, name):
        self.dtype = _TORCH_STORAGE_DTYPES[name]

    def __setstate__(self, state):
        raise UnsafePickle("state for a storage type")


class _TorchTensor:
    """A tensor whose storage bytes are fetched after unpickling (see ``resolve_tensors``)."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def __setstate__(self, state):
        raise UnsafePickle("state for a tensor")


def _rebuild_tensor(storage, offset, size, stride, *unused):
    # unused: requires_grad, backward hooks, metadata; none matter for weights.
    if not isinstance(storage, tuple) or not all(isinstance(v, int) for v in (offset, *size, *stride)):
        raise UnsafePickle("a malformed tensor record")
    return _TorchTensor(storage, offset, size, stride)


def _rebuild_parameter(data, *unused):
    return data


_SAFE_GLOBALS = {
    ("builtins", "dict"): dict, ("builtins", "list"): list, ("builtins", "tuple"): tuple,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): _safe_bytearray, ("builtins", "bytes"): _safe_bytes,
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
_SAFE_GLOBALS.update({("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _DtypeSpec})


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
        raise UnsafePickle(f"the global {module}.{name}")

    def persistent_load(self, pid):
        if not self.allow_torch_storages:
            raise UnsafePickle("an external reference outside a PyTorch checkpoint")
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _TorchStorageType) and isinstance(pid[4], int)):
            raise UnsafePickle(f"an unknown external reference {str(pid)[:60]}")
        _, storage_type, key, _location, numel = pid[:5]
        view = pid[5] if len(pid) > 5 else None
        self.storages.setdefault(str(key), (storage_type.dtype, numel))
        if view:  # legacy storage views: (view_key, offset, size) into the root storage
            return (str(key), storage_type.dtype, int(view[1]), int(view[2]))
        return (str(key), storage_type.dtype, 0, numel)


# ----------------------------------------------------------------------------- format readers
# A weights file holds its data: what it rebuilds (storages, tensors, the walked tree) cannot
# honestly be much bigger than the file. These factors bound it, so a crafted file is refused
# before it allocates gigabytes or walks a "billion laughs" graph of shared references.
# Torch writes storages uncompressed; 20x leaves room for a re-compressed archive of sparse
# weights while a zip bomb (deflate reaches ~1000x) is refused before it is inflated.
_MAX_STORAGE_RATIO = 20
# Tensors may share a storage (tied weights): allow each storage's bytes a few times over.
_MAX_TENSOR_RATIO = 4
_SLACK_BYTES = 1 << 20


def _budget(path, ratio):
    return ratio * os.path.getsize(path) + _SLACK_BYTES


def _itemsize(dtype_name):
    return np.dtype("<u2" if dtype_name == "bfloat16" else dtype_name).itemsize


def _storage_array(raw, dtype_name, numel, where):
    """Bytes of one torch storage -> 1-D array (little-endian, as torch writes them)."""
    dtype = np.dtype("<u2" if dtype_name == "bfloat16" else dtype_name).newbyteorder("<")
    if len(raw) < numel * dtype.itemsize:
        raise WeightsError(f"{where} is truncated: a tensor storage has {len(raw)} bytes, "
                           f"{numel * dtype.itemsize} expected; copy the file again")
    return np.frombuffer(raw, dtype, count=numel)


def _check_storages(unpickler, path):
    """Refuse storages whose declared sizes add up to far more than the file could hold."""
    declared = sum(max(0, numel) * _itemsize(dtype) for dtype, numel in unpickler.storages.values())
    if any(numel < 0 for _, numel in unpickler.storages.values()) or \
            declared > _budget(path, _MAX_STORAGE_RATIO):
        raise WeightsError(f"{path} is corrupt or crafted: its tensor storages declare "
                           f"{declared} bytes, far more than a {os.path.getsize(path)}-byte file "
                           f"holds; refusing it")


def _tensor_array(tensor, storages, where):
    """Materialise a ``_TorchTensor`` from the storage arrays, with bounds checks.

    Shape, strides and offset are checked against the storage before any data is touched: a
    view may not reach past its storage nor hold more elements than it (stride 0 or overlapping
    strides would turn a tiny storage into a huge copy).
    """
    key, dtype_name, view_offset, view_numel = tensor.storage
    if key not in storages:
        raise WeightsError(f"{where} is corrupt: tensor storage {key!r} is missing")
    flat = storages[key][view_offset:view_offset + view_numel]
    size, stride = tensor.size, tensor.stride
    if len(size) != len(stride) or min((*size, *stride, tensor.offset), default=0) < 0:
        raise WeightsError(f"{where} is corrupt: a tensor has an invalid shape or stride")
    numel = int(np.prod(size, dtype=object))
    if numel == 0:
        out = np.zeros(size, flat.dtype)
    else:
        last = tensor.offset + sum((n - 1) * s for n, s in zip(size, stride))
        if last >= flat.size or numel > flat.size - tensor.offset:
            raise WeightsError(f"{where} is corrupt or crafted: a tensor of shape {list(size)} "
                               f"(strides {list(stride)}) does not fit its {flat.size}-element "
                               f"storage; refusing it")
        out = np.lib.stride_tricks.as_strided(
            flat[tensor.offset:], shape=size, strides=[s * flat.itemsize for s in stride]).copy()
    if dtype_name == "bfloat16":  # numpy has no bfloat16: widen the upper 16 bits to float32
        return (out.astype(np.uint32) << 16).view(np.float32)
    return out.astype(out.dtype.newbyteorder("="))


def _read_zip_record(archive, name, max_bytes, path):
    """A record's bytes, refused by its declared size before anything is inflated."""
    info = archive.getinfo(name)
    if info.file_size > max_bytes:
        raise WeightsError(f"{path} is corrupt or crafted: its record {name} declares "
                           f"{info.file_size} bytes, more than its {max_bytes} (a zip bomb?); "
                           f"refusing it")
    return archive.read(name)


def _read_torch_zip(path):
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
        if not pickles:
            raise WeightsError(f"{path} is a zip file but not a PyTorch checkpoint "
                               f"(no <name>/data.pkl record); expected {EXPECTED}")
        prefix = pickles[0][:-len("data.pkl")]
        raw = _read_zip_record(archive, pickles[0], _budget(path, _MAX_STORAGE_RATIO), path)
        unpickler = _RestrictedUnpickler(io.BytesIO(raw), allow_torch_storages=True)
        obj = unpickler.load()
        _check_storages(unpickler, path)
        storages = {}
        for key, (dtype_name, numel) in unpickler.storages.items():
            record = f"{prefix}data/{key}"
            if record not in archive.NameToInfo:
                raise WeightsError(f"{path} is corrupt: record {record} is missing")
            needed = numel * _itemsize(dtype_name)
            # torch pads nothing inside a record: a larger one is not a storage of this file
            storages[key] = _storage_array(_read_zip_record(archive, record, needed, path),
                                           dtype_name, numel, path)
    return obj, storages


def _read_torch_legacy(stream, path):
    """The pre-1.6 stream: magic, version, sys info, object, storage keys, raw storages."""
    for _ in range(2):  # protocol version and sys info carry nothing we need
        _RestrictedUnpickler(stream).load()
    unpickler = _RestrictedUnpickler(stream, allow_torch_storages=True)
    obj = unpickler.load()
    keys = _RestrictedUnpickler(stream).load()
    if not isinstance(keys, list):
        raise WeightsError(f"{path} is corrupt: its storage key list is a {type(keys).__name__}")
    storages = {}
    for key in keys:
        if str(key) not in unpickler.storages:
            raise WeightsError(f"{path} is corrupt: storage {key!r} is never used")
        dtype_name, _ = unpickler.storages[str(key)]
        header = stream.read(8)
        if len(header) < 8:
            raise WeightsError(f"{path} is truncated: storage data ends early; copy the file again")
        numel = struct.unpack("<q", header)[0]
        itemsize = _itemsize(dtype_name)
        if not 0 <= numel * itemsize <= os.path.getsize(path) - stream.tell():
            raise WeightsError(f"{path} is truncated or corrupt: a storage claims {numel} "
                               f"values, more than the file holds; copy the file again")
        storages[str(key)] = _storage_array(stream.read(numel * itemsize), dtype_name, numel, path)
    return obj, storages


class _TreeWalk:
    """Replaces tensor records and array specs by arrays, within node and byte budgets.

    Every node of a tree read from a file costs at least one byte of it, unless the pickle
    references one object many times (memo gets): a walk that visits more nodes than the file
    has bytes, or builds more tensor bytes than the budget, is expanding such a graph.
    """

    def __init__(self, storages, where, max_nodes, max_tensor_bytes):
        self.storages, self.where = storages, where
        self.nodes_left, self.bytes_left = max_nodes, max_tensor_bytes

    def _refuse(self, what):
        raise WeightsError(f"{self.where} is corrupt or crafted: it {what} than a file of its "
                           f"size can hold (shared references repeated?); refusing it")

    def __call__(self, obj):
        self.nodes_left -= 1
        if self.nodes_left < 0:
            self._refuse("rebuilds more objects")
        if isinstance(obj, _TorchTensor):
            array = _tensor_array(obj, self.storages, self.where)
            self.bytes_left -= array.nbytes
            if self.bytes_left < 0:
                self._refuse("rebuilds more tensor bytes")
            return array
        if isinstance(obj, _ArraySpec):
            if obj.array is None:
                raise WeightsError(f"{self.where} is corrupt: an array has no data")
            return obj.array
        if isinstance(obj, dict):
            return {key: self(value) for key, value in obj.items()}
        if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], str) \
                and isinstance(obj[1], _ArraySpec):
            return self(obj[1])  # paddle.save's record of a tensor nested below the top level
        if isinstance(obj, (list, tuple)):
            return type(obj)(self(value) for value in obj)
        return obj


def resolve_tensors(obj: Any, storages: Dict[Any, np.ndarray], where: str, max_nodes: Optional[float] = None,
                    max_tensor_bytes: Optional[float] = None) -> Any:
    """Turn the unpickled tree into plain dicts / lists / tuples of numpy arrays.

    Args:
        obj, storages: what ``unpickle_weights`` returned.
        where: the file name, for messages (and, when it exists, the budgets' file size).
        max_nodes, max_tensor_bytes: walk budgets; default: from the size of the file ``where``.
    Returns:
        ``obj`` with every torch tensor record and numpy array record replaced by its (copied,
        native-endian) array and every ``paddle.save`` ``(name, array)`` record by the array.
    Raises:
        WeightsError: a tensor outside its storage, a missing storage, or a tree that expands
            beyond what the file can hold.
    """
    if max_nodes is None:
        max_nodes = os.path.getsize(where) + 1024 if os.path.isfile(where) else float("inf")
    if max_tensor_bytes is None:
        max_tensor_bytes = _budget(where, _MAX_TENSOR_RATIO) if os.path.isfile(where) \
            else float("inf")
    return _TreeWalk(storages, where, max_nodes, max_tensor_bytes)(obj)


def unpickle_weights(path: str) -> Tuple[Any, Dict[Any, np.ndarray]]:
    """Parse a weights file with the restricted unpickler, whatever its pickle layout.

    Args:
        path: an existing, non-empty file (``read_weights_file`` checks that first).
    Returns:
        (tree, storages): the unpickled object, whose tensors and arrays are still records
        (see ``resolve_tensors``), and {storage key: 1-D array} (empty for Paddle files).
    Raises:
        UnsafePickle: the file names a global, dtype or reference outside the allowed set.
        WeightsError: not a pickle at all, a PyTorch file with missing / short / oversized
            records.
        Any of ``PARSE_ERRORS``: the pickle stream itself is corrupt or cut short.
    """
    if zipfile.is_zipfile(path):
        return _read_torch_zip(path)
    with open(path, "rb") as stream:
        head = stream.peek(4)[:4]
        if head == b"PK\x03\x04":  # a zip whose central directory is gone
            raise zipfile.BadZipFile("the zip archive is cut short")
        if head[:1] != b"\x80":  # every binary pickle starts with PROTO
            raise WeightsError(f"{path} is not a weights file; expected {EXPECTED}")
        obj = _RestrictedUnpickler(stream).load()
        if isinstance(obj, int) and obj == _TORCH_LEGACY_MAGIC:
            return _read_torch_legacy(stream, path)
        return obj, {}
