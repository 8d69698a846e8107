"""Crafted weights files (issue 14, items 6 and 15): every class of attack is built here, byte by
byte, and must end in a clean refusal in bounded time and memory.

Each file is parsed in a child process limited to 1 GiB of address space and 60 s, so a
regression shows as a failed test (crash, MemoryError, timeout) instead of taking the machine's
memory or pytest down with a segmentation fault.
"""

import os
import struct
import subprocess
import sys
import textwrap
import zipfile

import pytest

from tests import REPO_ROOT

ROOT = str(REPO_ROOT)
_CHILD = textwrap.dedent("""
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    from ppgan.utils.errors import WeightsError
    from ppgan.utils.safe_unpickle import PARSE_ERRORS, UnsafePickle, resolve_tensors, \\
        unpickle_weights
    try:
        obj, storages = unpickle_weights(sys.argv[1])
        resolve_tensors(obj, storages, sys.argv[1])
    except (UnsafePickle, WeightsError) as exc:
        print("refused:", exc)
    except PARSE_ERRORS as exc:
        print("parse error:", type(exc).__name__, exc)
    else:
        print("loaded")
""")


def parse_in_child(path):
    """(exit code, stdout) of parsing ``path`` under a 1 GiB / 60 s limit."""
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", _CHILD, str(path)], capture_output=True,
                          text=True, timeout=60, env=env)
    return done.returncode, done.stdout + done.stderr


def assert_refused(path, *fragments):
    code, out = parse_in_child(path)
    assert code == 0 and out.startswith("refused:"), (code, out[-600:])
    for fragment in fragments:
        assert fragment in out, out
    # the user-facing path: one WeightsError naming the file
    from ppgan.utils.errors import WeightsError
    from ppgan.utils.weights import read_weights_file
    with pytest.raises(WeightsError) as err:
        read_weights_file(str(path))
    assert str(path) in str(err.value) and "\n" not in str(err.value)


# ------------------------------------------------------------------ a tiny pickle assembler
# Protocol-2 opcodes, enough to write what an attacker would write by hand.

def proto():
    return b"\x80\x02"


def glob(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def text(value):
    data = value.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def raw(value):
    return b"C" + bytes([len(value)]) + value if len(value) < 256 else \
        b"B" + struct.pack("<I", len(value)) + value


def integer(value):
    if -2 ** 31 <= value < 2 ** 31:
        return b"J" + struct.pack("<i", value)
    data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data


def tup(*items):
    return b"(" + b"".join(items) + b"t"


NONE, FALSE, TRUE, REDUCE, BUILD, STOP = b"N", b"\x89", b"\x88", b"R", b"b", b"."


def call(function, *args):
    return function + tup(*args) + REDUCE


def one_entry_dict(key, value):
    return b"}" + text(key) + value + b"s"


def numpy_dtype(spec, state):
    return call(glob("numpy", "dtype"), text(spec), FALSE, TRUE) + state + BUILD


def numpy_array(dtype, shape, data):
    placeholder = call(glob("numpy.core.multiarray", "_reconstruct"), glob("numpy", "ndarray"),
                       tup(integer(0)), raw(b"b"))
    return placeholder + tup(integer(1), tup(*map(integer, shape)), dtype, FALSE, raw(data)) + BUILD


def write_pickle(path, body):
    path.write_bytes(proto() + body + STOP)
    return path


# ------------------------------------------------------------------ item 6a: dtype state

def test_dtype_state_claiming_python_objects_is_refused(tmp_path):
    # flags 63 (NPY_ITEM_HASOBJECT and friends) on a float64: an array of it would read its
    # bytes as object pointers and crash the process.
    evil_state = tup(integer(3), text("|"), NONE, NONE, NONE, integer(8), integer(1), integer(63))
    array = numpy_array(numpy_dtype("f8", evil_state), (2,), b"\x41" * 16)
    assert_refused(write_pickle(tmp_path / "objdtype.pdparams", one_entry_dict("w", array)),
                   "dtype state")
    scalar = call(glob("numpy.core.multiarray", "scalar"), numpy_dtype("f8", evil_state),
                  raw(b"\x41" * 8))
    assert_refused(write_pickle(tmp_path / "objscalar.pdparams", one_entry_dict("w", scalar)))
    # structured and object dtypes by name are refused as well
    plain_state = tup(integer(3), text("|"), NONE, NONE, NONE, integer(-1), integer(-1), integer(0))
    for spec in ("O8", "V8", "f4,i4", "U4"):
        body = one_entry_dict("w", numpy_array(numpy_dtype(spec, plain_state), (1,), b"\0" * 8))
        assert_refused(write_pickle(tmp_path / "spec.pdparams", body))
    # control: the same assembler writes a loadable plain array
    good_state = tup(integer(3), text("<"), NONE, NONE, NONE, integer(-1), integer(-1), integer(0))
    body = one_entry_dict("w", numpy_array(numpy_dtype("f4", good_state), (2,),
                                           struct.pack("<2f", 1.5, -2.0)))
    good = write_pickle(tmp_path / "good.pdparams", body)
    assert parse_in_child(good) == (0, "loaded\n")
    from ppgan.utils.weights import read_weights_file
    assert read_weights_file(str(good))["w"].tolist() == [1.5, -2.0]


# ------------------------------------------------------------------ item 6b: expanding graphs

def test_billion_laughs_and_size_arguments_are_refused(tmp_path):
    # level i is a list of ten references to level i-1: 10**40 leaves in ~1 kB
    body = b"]q\x00"  # EMPTY_LIST, memo 0
    for level in range(1, 41):  # POP the previous level, MARK, 10 x BINGET, LIST, BINPUT level
        body += b"0(" + (b"h" + bytes([level - 1])) * 10 + b"lq" + bytes([level])
    path = write_pickle(tmp_path / "laughs.pdparams", one_entry_dict("w", body))
    assert path.stat().st_size < 1024
    assert_refused(path, "more objects than a file of its size")
    # bytes(n) / bytearray(n) allocate n bytes from a few bytes of pickle
    for name in ("bytes", "bytearray"):
        huge = call(glob("builtins", name), integer(10 ** 10))
        assert_refused(write_pickle(tmp_path / f"{name}.pdparams", one_entry_dict("w", huge)),
                       "not built from data in the file")
    # an array whose shape claims far more than its data
    plain = tup(integer(3), text("<"), NONE, NONE, NONE, integer(-1), integer(-1), integer(0))
    big = numpy_array(numpy_dtype("f4", plain), (100000, 100000), b"\0" * 4)
    code, out = parse_in_child(write_pickle(tmp_path / "bigshape.pdparams",
                                            one_entry_dict("w", big)))
    assert code == 0 and "does not match its 4 data bytes" in out, out


# ------------------------------------------------------------------ item 6c: torch views

def torch_zip(path, storage_numel, size, stride, offset=0, data=None, compress=False):
    """A PyTorch zip checkpoint holding one float tensor over one storage, built by hand."""
    storage = b"(" + text("storage") + glob("torch", "FloatStorage") + text("0") + text("cpu") \
        + integer(storage_numel) + b"tQ"
    tensor = call(glob("torch._utils", "_rebuild_tensor_v2"), storage, integer(offset),
                  tup(*map(integer, size)), tup(*map(integer, stride)), FALSE,
                  call(glob("collections", "OrderedDict")))
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as archive:
        archive.writestr("model/data.pkl", proto() + one_entry_dict("w", tensor) + STOP)
        if data is None:
            data = b"\0" * (4 * storage_numel)
        if isinstance(data, int):  # a number of zero bytes, streamed (a zip bomb's payload)
            with archive.open("model/data/0", "w", force_zip64=True) as record:
                chunk = b"\0" * (1 << 22)
                for start in range(0, data, len(chunk)):
                    record.write(chunk[:min(len(chunk), data - start)])
        else:
            archive.writestr("model/data/0", data)
    return path


def test_torch_views_are_checked_against_their_storage(tmp_path):
    # stride 0: a 1-element storage viewed as 100000 x 100000 (40 GB if copied)
    assert_refused(torch_zip(tmp_path / "stride0.pth", 1, (100000, 100000), (0, 0)),
                   "does not fit its 1-element storage")
    # overlapping strides: 16 elements viewed as 4000 x 4000
    assert_refused(torch_zip(tmp_path / "overlap.pth", 16, (4000, 4000), (1, 0)))
    # a shape far beyond the storage
    assert_refused(torch_zip(tmp_path / "beyond.pth", 4, (1000, 1000), (1000, 1)))
    # a storage declaring far more elements than the file holds
    assert_refused(torch_zip(tmp_path / "bigstorage.pth", 10 ** 9, (2,), (1,), data=b"\0" * 8),
                   "declare")
    # control: a well-formed view loads
    good = torch_zip(tmp_path / "good.pth", 6, (2, 3), (3, 1),
                     data=struct.pack("<6f", *range(6)))
    assert parse_in_child(good) == (0, "loaded\n")


# ------------------------------------------------------------------ item 15: zip bombs

def test_zip_bomb_is_refused_before_it_is_inflated(tmp_path):
    payload = 256 << 20  # 256 MiB of zeros deflate to ~250 kB
    bomb = torch_zip(tmp_path / "bomb.pth", payload // 4, (payload // 4,), (1,), data=payload,
                     compress=True)
    assert bomb.stat().st_size < 1 << 20
    assert_refused(bomb, "declare")
    # the pickle claims a small storage but its record inflates to 256 MiB
    sneaky = torch_zip(tmp_path / "sneaky.pth", 4, (4,), (1,), data=payload, compress=True)
    assert_refused(sneaky, "zip bomb")
    # the pickle record itself inflates to far more than the file
    pkl_bomb = tmp_path / "pkl_bomb.pth"
    with zipfile.ZipFile(pkl_bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("model/data.pkl", "w", force_zip64=True) as record:
            record.write(proto() + b"(")
            chunk = b"N" * (1 << 22)
            for _ in range(payload // len(chunk)):
                record.write(chunk)
    assert_refused(pkl_bomb, "zip bomb")
