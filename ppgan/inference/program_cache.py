"""A disk cache of exported inference programs, keyed by the network's weights.

Exporting the generator (tracing it to a static program and saving it) takes 1.5-2.5 s on a
2-core CPU, paid by every run of the CLI and every stream; for a 10 s clip that is a fifth of
real time. The program depends only on the network's class, its weights (names, shapes, dtypes
and values, which also fix its widths), the input shapes and the Paddle version, so a program
exported once is reused by every later run with the same weights.

Folder: ``$PPGAN_PROGRAM_CACHE`` when set ("off" disables the cache), else
``~/.cache/ppgan/programs``. One subfolder per key; at most ``MAX_PROGRAMS`` are kept, the least
recently used removed first. Entries are written by ``export_program`` (staged, then moved into
place), so a crash never leaves a half-written program under a key.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..utils.logger import get_logger
from .program_files import INFO_SUFFIX, PARAMS_SUFFIX, PROGRAM_SUFFIX, InputShapes

if TYPE_CHECKING:
    import paddle

# ``engine.export_program``: (layer, path prefix, inputs) -> written files. Passed in by the
# engine, which imports this module: the cache itself does not import the engine.
Exporter = Callable[[Any, str, InputShapes], Any]

CACHE_VARIABLE = "PPGAN_PROGRAM_CACHE"
DISABLED = ("off", "0", "false", "no")
MAX_PROGRAMS = 4  # a published-width generator's program is 140 MB
# Bump when the export itself changes (rewrites, saved format): old entries are then never read.
EXPORT_VERSION = "1"
_PREFIX = "model"


def cache_folder() -> Optional[str]:
    """The cache's folder, or None when ``$PPGAN_PROGRAM_CACHE`` disables it."""
    value = os.environ.get(CACHE_VARIABLE, "").strip()
    if value.lower() in DISABLED:
        return None
    return os.path.expanduser(value or os.path.join("~", ".cache", "ppgan", "programs"))


def program_key(layer: paddle.nn.Layer, inputs: InputShapes) -> str:
    """Hex digest of everything the exported program depends on (see the module doc)."""
    import paddle

    digest = hashlib.sha256()
    parts = [EXPORT_VERSION, paddle.__version__, type(layer).__module__, type(layer).__qualname__,
             repr([(name, [int(v) for v in shape]) for name, shape in inputs.items()])]
    digest.update("\n".join(parts).encode())
    for name, tensor in layer.state_dict().items():
        array = tensor.numpy()
        digest.update(f"\n{name} {array.dtype} {array.shape}\n".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:32]


def _complete(prefix: str) -> bool:
    return all(os.path.isfile(prefix + suffix) for suffix in (PROGRAM_SUFFIX, PARAMS_SUFFIX, INFO_SUFFIX))


def forget(prefix: str) -> None:
    """Remove the cache entry holding ``prefix`` (a damaged program)."""
    shutil.rmtree(os.path.dirname(prefix), ignore_errors=True)


def _evict(folder: str, keep: str) -> None:
    """Remove the least recently used entries beyond ``MAX_PROGRAMS`` (never ``keep``)."""
    entries = [os.path.join(folder, name) for name in os.listdir(folder)
               if os.path.isdir(os.path.join(folder, name)) and not name.startswith(".")]
    entries.sort(key=os.path.getmtime, reverse=True)
    for path in entries[MAX_PROGRAMS:]:
        if os.path.basename(path) != keep:
            shutil.rmtree(path, ignore_errors=True)


def cached_export(layer: paddle.nn.Layer, inputs: InputShapes, export: Exporter) -> Optional[str]:
    """The path prefix of ``layer``'s exported program in the cache, exporting it with
    ``export`` (``engine.export_program``) on a miss.

    Returns None when the cache is disabled or cannot be written (the caller then exports to a
    temporary folder as before). Export errors propagate, as from ``export_program``.
    """
    folder = cache_folder()
    if folder is None:
        return None
    key = program_key(layer, inputs)
    entry = os.path.join(folder, key)
    prefix = os.path.join(entry, _PREFIX)
    if _complete(prefix):
        os.utime(entry)  # recently used
        return prefix
    try:
        os.makedirs(entry, exist_ok=True)
    except OSError as exc:
        get_logger().warning("program cache %s not writable (%s); exporting to a temporary folder",
                             folder, exc.strerror or exc)
        return None
    export(layer, prefix, inputs)
    _evict(folder, key)
    return prefix
