"""Write files so that a crash, a kill or a full disk never leaves a replaced or half-written one.

``atomic_write(path)`` yields a file object over a hidden temporary file beside ``path``
(``.<name>.<random>.tmp``). On success the file is flushed, fsynced, renamed over ``path`` and the
folder fsynced, so after a power loss ``path`` is either the old file or the complete new one
(a rename without the fsyncs may reach the disk before the data, leaving an empty file under
the new name). On any error the temporary file is removed and ``path`` is untouched; an
``OSError`` (full disk, no permission, a file where the folder belongs) becomes one
``OutputError`` line naming the file.

A process killed with SIGKILL cannot clean up: ``remove_stale_temps`` removes the temporary files
of a given target name, for writers to call when they start.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import tempfile
from typing import IO, Any, Dict, Iterator, List, Optional

from .errors import OutputError


def temp_prefix(path: str) -> str:
    """The name prefix of ``atomic_write``'s temporary files for ``path``."""
    return f".{os.path.basename(path)}."


def fsync_folder(folder: str) -> None:
    """Make a rename inside ``folder`` durable (no-op where folders cannot be opened)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass  # some file systems refuse fsync on folders; the data itself was synced
    finally:
        os.close(handle)


def output_error(path: str, exc: OSError) -> OutputError:
    """The ``OutputError`` for an ``OSError`` raised while writing ``path``."""
    reason = exc.strerror or str(exc)
    hints: Dict[Optional[int], str] = {  # errno (None for some OSErrors) -> what to do
        errno.ENOSPC: "free some space (the disk is full)",
        errno.EDQUOT: "free some space (the disk quota is used up)",
        errno.EACCES: "choose a folder you can write to",
        errno.EROFS: "choose a writable folder",
        errno.ENOTDIR: "a file stands where a folder of that path belongs",
        errno.EEXIST: "a file stands where a folder of that path belongs"}
    hint = hints.get(exc.errno, "check the path and the disk")
    return OutputError(f"cannot write {path}: {reason}; {hint} (nothing was replaced)")


def prepare_folder(path: str) -> str:
    """Create the folder of ``path``; a file standing in its way is an ``OutputError``."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise output_error(path, exc) from None
    if not os.path.isdir(folder):
        raise OutputError(f"cannot write {path}: {folder} is a file, not a folder")
    return folder


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "wb", encoding: Optional[str] = None) -> Iterator[IO[Any]]:
    """Context manager yielding a file object whose content replaces ``path`` only on success.

    Args:
        path: destination; its folder is created.
        mode: "wb" or "w"; encoding: for text mode.
    Raises:
        OutputError: the folder cannot be created or the data cannot be written (full disk, ...).
    """
    folder = prepare_folder(path)
    if os.path.isdir(path):
        raise OutputError(f"cannot write {path}: it is a folder")
    try:
        handle, temp = tempfile.mkstemp(dir=folder, prefix=temp_prefix(path), suffix=".tmp")
    except OSError as exc:
        raise output_error(path, exc) from None
    try:
        with os.fdopen(handle, mode, encoding=encoding) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
        fsync_folder(folder)
    except OSError as exc:
        _remove_quietly(temp)
        raise output_error(path, exc) from None
    except BaseException:
        _remove_quietly(temp)
        raise


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def remove_stale_temps(folder: str, name_pattern: str) -> List[str]:
    """Remove ``atomic_write`` temporary files left by killed writers of names matching a glob.

    Args:
        folder: where the targets live.
        name_pattern: glob of the target names, e.g. ``iter_*_checkpoint.pdparams``.
    Returns:
        The removed paths.
    """
    removed: List[str] = []
    for temp in glob.glob(os.path.join(glob.escape(folder), f".{name_pattern}.*.tmp")):
        with contextlib.suppress(OSError):
            os.remove(temp)
            removed.append(temp)
    return removed
