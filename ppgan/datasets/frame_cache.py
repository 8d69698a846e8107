"""Per-clip cache of decoded face crops: one uint8 ``.npy`` per clip instead of a JPEG per frame.

Decoding the 5-10 JPEGs a training sample needs was most of its cost; copying the same frames out
of an uncompressed array costs about a hundredth of that. The JPEGs stay the source of truth: a
cache is only used while it provably matches them, and is rebuilt from them otherwise.

File: ``<clip>/frames_<S>_<signature>.npy`` (or the same name in a cache folder outside the
corpus: the datasets' ``cache_dir``), an ordinary ``.npy`` holding (N, 3, S, S) uint8 BGR
planes, row k = the k-th frame id in ascending order, S = side (crops of another size are resized,
as the datasets would). Planes, not pixels, because the networks take channels first: a window is
copied out as it will be used, with no per-sample transpose. ``signature`` is 8 hex digits of a
CRC-32 over S, the resampling policy (``ppgan.data.contract``) and every jpg's (id, byte size), so
adding, removing or renaming a frame, or rewriting one with a different size, changes the name the
readers look for. A cache with the right name is still stale when any jpg was modified after it
(mtime) or when its size does not match its header (a truncated copy). Stale caches are rebuilt;
a rebuild deletes the other ``frames_<S>_*.npy`` of the clip.

Writes go to a hidden temp file in the folder the cache is written to, renamed into place when complete, so a reader
never sees half a cache and an interrupted build leaves no cache at all. On LRS2 at S = 96 a cache
takes about 27.6 kB per frame, several times the JPEGs; datasets and preprocessing can turn it off.
"""

from __future__ import annotations

import collections
import itertools
import os
import zlib
from typing import Any, List, Optional, Tuple

import numpy as np

from ..data.contract import RESIZE_POLICY, resize_face

CACHE_PREFIX = "frames_"
_TEMP_NAMES = itertools.count()  # unique temp names within one process

JpgListing = collections.namedtuple("JpgListing", "ids sizes newest_mtime_ns")
JpgListing.__doc__ = """The ``<id>.jpg`` frames of a clip folder: (N,) int64 ids ascending, their (N,)
int64 byte sizes, and the newest modification time among them (ns; 0 when there is none)."""


class UnreadableFrame(Exception):
    """A frame (or mel) of a window could not be read; the sample is skipped."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def scan_jpgs(clip_dir: str) -> JpgListing:
    """List a clip's ``<id>.jpg`` files with their sizes and newest mtime (one stat per file)."""
    ids: List[int] = []
    sizes: List[int] = []
    newest = 0
    with os.scandir(clip_dir) as entries:
        for entry in entries:
            stem = entry.name[:-4]
            if entry.name.endswith(".jpg") and stem.isdigit():
                info = entry.stat()
                ids.append(int(stem))
                sizes.append(info.st_size)
                newest = max(newest, info.st_mtime_ns)
    order = np.argsort(np.array(ids, dtype=np.int64), kind="stable")
    return JpgListing(np.array(ids, dtype=np.int64)[order], np.array(sizes, dtype=np.int64)[order], newest)


def cache_file_name(img_size: int, listing: JpgListing) -> str:
    """``frames_<S>_<signature>.npy`` for crops of side ``img_size`` and the jpgs in ``listing``."""
    # The resampling policy is part of what a cache holds (crops stored at another size are resized).
    signature = zlib.crc32(np.stack([listing.ids, listing.sizes]).astype("<i8").tobytes(),
                           zlib.crc32(f"{int(img_size)} {RESIZE_POLICY}".encode()))
    return f"{CACHE_PREFIX}{int(img_size)}_{signature:08x}.npy"


def npy_header(path: str) -> Optional[Tuple[Tuple[int, ...], np.dtype, bool, int]]:
    """(shape, dtype, fortran_order, data offset) from a .npy header, or None if unreadable.

    Only the header is read: checking a 100 MB cache costs the same as checking a 10 kB mel.
    """
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                return None
            return shape, dtype, fortran_order, f.tell()
    except (OSError, ValueError):
        return None


def decode_frame(path: str, img_size: int) -> np.ndarray:
    """One crop as (S, S, 3) uint8 BGR, resized to ``img_size`` when stored at another size.

    Raises:
        UnreadableFrame: the file is missing or is not a decodable image.
    """
    import cv2

    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        raise UnreadableFrame(path, "missing") from None
    try:
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error:  # an empty file: OpenCV asserts instead of returning None
        image = None
    if image is None:
        raise UnreadableFrame(path, "corrupt jpg")
    return resize_face(image, img_size, img_size)


def write_jpg(path: str, image: np.ndarray, quality: int = 95) -> np.ndarray:
    """Encode ``image`` (H, W, 3) uint8 BGR as JPEG into ``path``.

    Returns:
        The image as any reader will decode it from the file (what a frame cache must hold).
    Raises:
        OSError: the file cannot be written.
    """
    import cv2

    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise OSError(f"OpenCV could not encode {path}")
    with open(path, "wb") as f:
        f.write(encoded.tobytes())
    # cv2 types imdecode as optional; the bytes it just encoded always decode.
    return cv2.imdecode(encoded, cv2.IMREAD_COLOR)  # type: ignore[return-value]


class CachedFrames:
    """A validated cache file of one clip: reads runs of consecutive frames (as planes) into buffers.

    Each read opens the file, so any number of clips can be in use without holding descriptors.
    """

    def __init__(self, path: str, data_offset: int, ids: np.ndarray, img_size: int) -> None:
        self.path, self.data_offset = path, int(data_offset)
        self.frame_bytes = img_size * img_size * 3
        self.first_id, self.count = (int(ids[0]), len(ids)) if len(ids) else (0, 0)
        # Almost every clip holds frames 0..N-1: then the row of a frame is arithmetic.
        self.ids = None if len(ids) == 0 or ids[-1] - ids[0] == len(ids) - 1 else np.asarray(ids)

    def row_of(self, first_id: int, count: int) -> Optional[int]:
        """Row of frame ``first_id`` when frames first_id .. first_id+count-1 are all cached, else None."""
        if self.ids is None:
            row = first_id - self.first_id
            return row if 0 <= row and row + count <= self.count else None
        row = int(np.searchsorted(self.ids, first_id))
        if row + count <= len(self.ids) and self.ids[row] == first_id \
                and self.ids[row + count - 1] == first_id + count - 1:  # ids are unique and sorted
            return row
        return None

    def read(self, first_id: int, out: np.ndarray) -> bool:
        """Fill ``out`` (C-contiguous (n, 3, S, S) uint8) with frames first_id .. first_id+n-1.

        Returns:
            True on success; False when a frame is not in the cache or the file cannot be read
            (the caller then falls back to the JPEGs, which report what is wrong).
        """
        row = self.row_of(first_id, len(out))
        if row is None:
            return False
        try:
            # Raw descriptor and one positioned read: a Python file object costs more than the read.
            fd = os.open(self.path, os.O_RDONLY)
            try:
                # (ndarray is a buffer; numpy declares __buffer__ for Python >= 3.12 only)
                return os.preadv(fd, [memoryview(out).cast("B")],  # type: ignore[arg-type]
                                 self.data_offset + row * self.frame_bytes) \
                    == out.nbytes
            finally:
                os.close(fd)
        except OSError:
            return False


def find_frame_cache(clip_dir: str, img_size: int, listing: JpgListing) -> Optional[CachedFrames]:
    """The clip's cache if it is up to date with ``listing`` (see the module docstring), else None."""
    if len(listing.ids) == 0:
        return None
    path = os.path.join(clip_dir, cache_file_name(img_size, listing))
    try:
        info = os.stat(path)
    except OSError:
        return None
    if info.st_mtime_ns < listing.newest_mtime_ns:
        return None  # a frame was rewritten after the cache was built
    header = npy_header(path)
    expected = (len(listing.ids), 3, img_size, img_size)
    if header is None or tuple(header[0]) != expected or header[1] != np.uint8 or header[2]:
        return None
    if info.st_size != header[3] + int(np.prod(expected)):
        return None  # truncated (e.g. a copy interrupted by a full disk)
    return CachedFrames(path, header[3], listing.ids, img_size)


class FrameCacheWriter:
    """Streams a clip's frames, in id order, into a temp file renamed into place by ``commit``.

    Use as a context manager: leaving the block with an exception (or without ``commit``) deletes
    the temp file. Rows are written with ordinary writes, so a full disk raises OSError.

    Args:
        clip_dir: the clip folder (its jpgs name the cache).
        count: number of frames that will be appended.
        img_size: side S of the frames.
        out_dir: folder the cache is written to (created if missing). Default: ``clip_dir``.
    Raises:
        OSError: the folder is not writable.
    """

    def __init__(self, clip_dir: str, count: int, img_size: int, out_dir: Optional[str] = None) -> None:
        self.clip_dir, self.count, self.img_size, self.written = clip_dir, int(count), int(img_size), 0
        self.out_dir = out_dir or clip_dir
        os.makedirs(self.out_dir, exist_ok=True)
        self.temp_path = os.path.join(self.out_dir, f".{CACHE_PREFIX}{img_size}.{os.getpid()}."
                                                    f"{next(_TEMP_NAMES)}.tmp")
        self._file = open(self.temp_path, "wb")
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
                  "shape": (self.count, 3, self.img_size, self.img_size)}
        try:
            np.lib.format.write_array_header_1_0(self._file, header)
        except BaseException:
            self.abort()
            raise
        self.data_offset = self._file.tell()

    def append(self, frame: np.ndarray) -> None:
        """Write the next frame, given as an (S, S, 3) uint8 image (stored as its 3 planes)."""
        if frame.shape != (self.img_size, self.img_size, 3) or frame.dtype != np.uint8:
            raise ValueError(f"frame cache rows are ({self.img_size}, {self.img_size}, 3) uint8 images, "
                             f"got {frame.shape} {frame.dtype}")
        if self.written == self.count:
            raise ValueError(f"frame cache of {self.clip_dir} announced {self.count} frames, got more")
        # ndarray is a buffer; numpy declares __buffer__ for Python >= 3.12 only.
        self._file.write(memoryview(np.ascontiguousarray(frame.transpose(2, 0, 1))).cast("B"))  # type: ignore[arg-type]
        self.written += 1

    def commit(self, listing: Optional[JpgListing] = None) -> Optional[CachedFrames]:
        """Move the finished cache into place and delete the clip's other caches of this size.

        Args:
            listing: ``scan_jpgs`` of the clip taken before its frames were decoded or after they
                were written (default: scanned now).
        Returns:
            ``CachedFrames`` for the new file, or None (nothing written) when fewer frames were
            appended than announced or the clip's jpgs do not number ``count``.
        """
        self._file.close()
        listing = listing if listing is not None else scan_jpgs(self.clip_dir)
        if self.written != self.count or len(listing.ids) != self.count:
            self.abort()
            return None
        name = cache_file_name(self.img_size, listing)
        final = os.path.join(self.out_dir, name)
        os.replace(self.temp_path, final)
        for other in os.listdir(self.out_dir):
            if other.startswith(f"{CACHE_PREFIX}{self.img_size}_") and other.endswith(".npy") and other != name:
                try:
                    os.remove(os.path.join(self.out_dir, other))
                except OSError:
                    pass  # another process removed it first, or a read-only file: stale but harmless
        return CachedFrames(final, self.data_offset, listing.ids, self.img_size)

    def abort(self) -> None:
        """Drop the temp file (safe to call more than once)."""
        self._file.close()
        try:
            os.remove(self.temp_path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> FrameCacheWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.abort()  # after a commit the temp file is gone and this does nothing


def build_frame_cache(clip_dir: str, img_size: int, listing: Optional[JpgListing] = None,
                      out_dir: Optional[str] = None) -> Optional[CachedFrames]:
    """Decode every jpg of a clip once and write its cache (into ``out_dir``, default the clip folder).

    Returns:
        ``CachedFrames`` (or None when the clip has no jpg, or its jpgs changed while decoding).
    Raises:
        UnreadableFrame: a jpg does not decode (nothing is written).
        OSError: the folder is not writable.
    """
    listing = listing if listing is not None else scan_jpgs(clip_dir)
    if len(listing.ids) == 0:
        return None
    with FrameCacheWriter(clip_dir, len(listing.ids), img_size, out_dir=out_dir) as writer:
        for frame_id in listing.ids:
            writer.append(decode_frame(os.path.join(clip_dir, f"{frame_id}.jpg"), img_size))
        return writer.commit(listing)


def write_frame_cache(clip_dir: str, frames: np.ndarray) -> Optional[CachedFrames]:
    """Write the cache of a clip whose N jpgs are already on disk.

    Args:
        frames: (N, S, S, 3) uint8 images, row k exactly as the k-th jpg in id order decodes
            (see ``write_jpg``).
    Returns:
        ``CachedFrames`` or None (the folder does not hold exactly N jpgs).
    """
    with FrameCacheWriter(clip_dir, len(frames), frames.shape[1]) as writer:
        for frame in frames:
            writer.append(frame)
        return writer.commit()
