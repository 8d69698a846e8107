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

import os
import pickle
import struct
import zipfile
from collections import OrderedDict

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

def _safe_dtype(spec, align=False, copy=False):
    dtype = np.dtype(spec, bool(align), bool(copy))
    if dtype.hasobject:
        raise UnsafePickle("an array of Python objects")
    return dtype


_NDARRAY = object()  # what ``numpy.ndarray`` resolves to: only usable as _safe_reconstruct's tag
_numpy_reconstruct = np.zeros(1).__reduce__()[0]
_numpy_scalar = np.float32(0).__reduce__()[0]


def _safe_reconstruct(subtype, shape, dtype_code):
    if subtype is not _NDARRAY:
        raise UnsafePickle("an array subclass")
    return _numpy_reconstruct(np.ndarray, shape, dtype_code)


def _safe_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or not isinstance(data, (bytes, str)):
        raise UnsafePickle("a malformed numpy scalar")
    return _numpy_scalar(dtype, data)


def _safe_frombuffer(buffer, dtype, shape, order):
    return np.frombuffer(buffer, _safe_dtype(dtype)).reshape(shape, order=order).copy()


def _safe_codecs_encode(text, encoding="utf-8"):
    # Protocol-2 pickles written by Python 3 spell bytes as _codecs.encode(str, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickle("a text re-encoding other than latin1")
    return text.encode("latin1")


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


def resolve_tensors(obj, storages, where):
    """Turn the unpickled tree into plain dicts / lists / tuples of numpy arrays.

    Args:
        obj, storages: what ``unpickle_weights`` returned.
        where: the file name, for messages.
    Returns:
        ``obj`` with every torch tensor record replaced by its (copied, native-endian) array
        and every ``paddle.save`` ``(name, array)`` record by the array.
    Raises:
        WeightsError: a tensor outside its storage, a missing storage, or an object array.
    """
    if isinstance(obj, _TorchTensor):
        return _tensor_array(obj, storages, where)
    if isinstance(obj, dict):
        return {key: resolve_tensors(value, storages, where) for key, value in obj.items()}
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], str) \
            and isinstance(obj[1], np.ndarray):
        return obj[1]  # paddle.save's record of a tensor nested below the top level
    if isinstance(obj, (list, tuple)):
        return type(obj)(resolve_tensors(value, storages, where) for value in obj)
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        raise WeightsError(f"{where} holds an array of Python objects, which a weights file "
                           f"never needs; refusing it")
    return obj


def unpickle_weights(path):
    """Parse a weights file with the restricted unpickler, whatever its pickle layout.

    Args:
        path: an existing, non-empty file (``read_weights_file`` checks that first).
    Returns:
        (tree, storages): the unpickled object, whose torch tensors are still storage
        references, and {storage key: 1-D array} (empty for Paddle files).
    Raises:
        UnsafePickle: the file names a global or reference outside the allowed set.
        WeightsError: not a pickle at all, or a PyTorch file with missing / short records.
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
