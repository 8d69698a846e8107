"""Reading a preprocessed corpus: its filelists and its clips' frames and mels, through their caches.

Corpus layout (written by ``tools/preprocess.py`` or the synthetic corpus writer)::

    <dataroot>/<speaker>/<clip>/0.jpg 1.jpg ...   face crops (BGR), one per video frame at ``fps``
    <dataroot>/<speaker>/<clip>/mel.npy           (80, T) mel of the clip's audio, 80 steps/s
    <dataroot>/<speaker>/<clip>/audio.wav         16 kHz mono (only read when mel.npy is missing)
    <dataroot>/<speaker>/<clip>/frames_<S>_<sig>.npy  (N, 3, S, S) uint8 frame cache (frame_cache.py)
    <dataroot>/train.txt val.txt test.txt         one "<speaker>/<clip>" per line

Paths follow the one rule of ``ppgan.utils.config_paths``: ``dataroot`` absolute as given, else
in the working directory, then in ``config_dir`` (the folder of the config file) and its two
parents; ``filelist`` absolute as given, else in ``dataroot`` (a split name ``train`` finds
``<dataroot>/train.txt``), then beside the config (so ``filelists/train.txt`` from
``configs/x.yaml`` finds the project's ``filelists/``); never the working directory.

Reading never writes into the corpus unless asked. Mels are read from each clip's cache, never
recomputed per sample; a process keeps the recently used ones in memory. Frames are read from the
clip's frame cache when one is up to date with its JPEGs, else decoded from the JPEGs. Caches the
corpus lacks (a mel.npy missing or holding NaN/Inf, a frame cache missing, stale or of another
crop size) are handled by ``cache_dir``:

* ``None`` (default): nothing is written; a missing mel is computed from audio.wav and kept in
  memory, frames without a cache are decoded per sample (one warning names the key);
* a folder: missing caches are built once and written to ``<cache_dir>/<speaker>/<clip>/`` for
  every later process and run (looked for there after the corpus's own); setting it to the
  dataroot itself writes them beside the clips, as this reader did before it asked.

A clip with an undecodable JPEG is not cached and is read frame by frame, so the bad frame is
skipped, counted and reported.
"""

from __future__ import annotations

import collections
import os
from typing import Dict, List, Optional, Set

import numpy as np

from ..utils.audio import NUM_MELS, load_audio, melspectrogram
from ..utils.config_paths import resolve_config_path
from ..utils.errors import DataError, MediaError
from ..utils.logger import get_logger
from .frame_cache import (CachedFrames, JpgListing, UnreadableFrame, build_frame_cache, decode_frame, find_frame_cache,
                          npy_header, scan_jpgs)

_MEL_CACHE_BYTES = 64 << 20  # per process: a few hundred LRS2 clips' mels


def read_filelist(path: str, root: Optional[str] = None) -> List[str]:
    """Clip paths listed in ``path``: the first token of each non-blank, non-``#`` line.

    Later tokens are ignored (LRS2's test list tags lines with NF / MV).

    Args:
        path: the split list.
        root: the corpus folder the keys are relative to; when given, keys that lead outside
            it (``../x``, absolute paths) are refused: clips are read and caches written there,
            so a list must not reach other folders.
    Raises:
        DataError: an empty list, or a key outside ``root``.
    """
    with open(path, "r", encoding="utf-8") as f:
        keys = [line.split()[0] for line in f if line.strip() and not line.lstrip().startswith("#")]
    if not keys:
        raise DataError(f"filelist {path} lists no clips: an empty split cannot be used")
    if root is not None:
        for key in keys:
            # Lexical: a corpus may hold symlinked speakers on another disk; what is refused is a
            # list entry that itself names a place outside the corpus.
            if os.path.isabs(key) or os.path.normpath(key).split(os.sep)[0] in ("..", ""):
                raise DataError(f"filelist {path} lists {key!r}, which is outside the corpus "
                                f"folder {root}; list clips as <speaker>/<clip> relative to it")
    return keys


def frame_ids(clip_dir: str) -> np.ndarray:
    """Sorted integer ids of the ``<id>.jpg`` frames in a clip folder, as an int64 array."""
    ids = [int(name[:-4]) for name in os.listdir(clip_dir)
           if name.endswith(".jpg") and name[:-4].isdigit()]
    return np.array(sorted(ids), dtype=np.int64)


class CorpusReader:
    """The clips of one filelist in a corpus: their frames and mels, read through caches.

    Clips are numbered in the order ``add_clip`` was called (the datasets add the clips they
    keep). Unreadable files are remembered (``note_bad_file``) and never read again.

    Args:
        dataroot, filelist, config_dir: see the module docstring.
        img_size: side S of the face crops read (crops of another size are resized).
        frame_cache: read frames from per-clip uint8 caches when present. Default: True.
        cache_dir: where caches the corpus lacks are written (module docstring). Default: None
            (nothing is written).
    """

    def __init__(self, dataroot: str, filelist: str, img_size: int, frame_cache: bool = True,
                 cache_dir: Optional[str] = None, config_dir: Optional[str] = None):
        self.img_size = img_size
        self.dataroot = resolve_config_path(dataroot, "dataroot", config_dir)
        self.filelist = resolve_config_path(filelist, "filelist", config_dir, anchor=self.dataroot)
        # Created, not looked up: relative to the working directory, like output_dir.
        self.cache_dir = os.path.abspath(cache_dir) if cache_dir else None
        self.clip_keys: List[str] = []
        self.clip_dirs: List[str] = []
        self.skipped_samples = 0
        self._bad_files: Set[str] = set()
        self.frame_cache = bool(frame_cache)
        # clip -> CachedFrames, or None (read its JPEGs); decided at first use
        self._frame_caches: Dict[int, Optional[CachedFrames]] = {}
        self._cache_writable = self.cache_dir is not None  # False once a write failed: stop trying
        self._uncached_warned = False
        self._mel_paths: Dict[str, str] = {}  # clip folder -> its mel cache in cache_dir, when the corpus's is unusable
        # clip -> (80, T) mel, least recently used first
        self._mels: "collections.OrderedDict[int, np.ndarray]" = collections.OrderedDict()
        self._mel_bytes = 0
        self._pinned_mels: Dict[str, np.ndarray] = {}  # clip folder -> computed mel that is not written anywhere

    @property
    def num_clips(self) -> int:
        return len(self.clip_dirs)

    def listed_keys(self) -> List[str]:
        """The filelist's clip keys, every one an existing clip folder.

        Raises:
            DataError: a listed clip folder does not exist (the first is named).
        """
        keys = read_filelist(self.filelist, self.dataroot)
        missing = [k for k in keys if not os.path.isdir(os.path.join(self.dataroot, k))]
        if missing:
            raise DataError(f"{len(missing)} clip folder(s) listed in {self.filelist} do not exist under "
                            f"{self.dataroot} (first: {missing[0]}): fix the list or re-run preprocessing")
        return keys

    def add_clip(self, key: str) -> int:
        """Number the clip ``key`` (a folder under the corpus) for reading; returns its number."""
        self.clip_keys.append(key)
        self.clip_dirs.append(os.path.join(self.dataroot, key))
        return len(self.clip_dirs) - 1

    def cache_folder(self, clip_dir: str) -> Optional[str]:
        """``<cache_dir>/<speaker>/<clip>`` for a clip folder, or None without a ``cache_dir``."""
        if self.cache_dir is None:
            return None
        return os.path.join(self.cache_dir, os.path.relpath(clip_dir, self.dataroot))

    # ---------------------------------------------------------------- mels
    def mel_length(self, clip_dir: str) -> int:
        """Mel length of a clip from its cache header; a missing or broken cache is rebuilt once."""
        cache_folder = self.cache_folder(clip_dir)
        folders = [clip_dir] + ([cache_folder] if cache_folder else [])
        for folder in folders:
            header = npy_header(os.path.join(folder, "mel.npy"))
            if header is not None and len(header[0]) == 2 and header[0][0] == NUM_MELS:
                if folder != clip_dir:
                    self._mel_paths[clip_dir] = os.path.join(folder, "mel.npy")
                return header[0][1]
        wav_path = os.path.join(clip_dir, "audio.wav")
        if not os.path.isfile(wav_path):
            raise DataError(f"clip {clip_dir} has neither a valid mel.npy nor audio.wav: re-run preprocessing")
        try:
            mel = melspectrogram(load_audio(wav_path))
        except MediaError as exc:
            raise DataError(f"clip {clip_dir}: {exc}") from None
        self._store_mel(clip_dir, mel)
        return mel.shape[1]

    def _store_mel(self, clip_dir: str, mel: np.ndarray) -> None:
        """Keep a computed mel: written to ``cache_dir`` when set and writable, else in memory."""
        folder = self.cache_folder(clip_dir)
        if folder is not None:
            path = os.path.join(folder, "mel.npy")
            try:
                os.makedirs(folder, exist_ok=True)
                tmp = f"{path}.tmp{os.getpid()}.npy"
                np.save(tmp, mel)
                os.replace(tmp, path)
                self._mel_paths[clip_dir] = path
                self._pinned_mels.pop(clip_dir, None)
                get_logger().info("computed the mel of %s into %s", clip_dir, path)
                return
            except OSError as exc:
                get_logger().warning("cannot write the mel cache %s (%s): kept in memory", path, exc)
        self._pinned_mels[clip_dir] = mel

    def mel(self, clip: int) -> np.ndarray:
        """(80, T) float32 mel of a clip, from a small per-process LRU cache over mel.npy."""
        pinned = self._pinned_mels.get(self.clip_dirs[clip])
        if pinned is not None:
            return pinned
        cached = self._mels.get(clip)
        if cached is not None:
            self._mels.move_to_end(clip)
            return cached
        clip_dir = self.clip_dirs[clip]
        path = self._mel_paths.get(clip_dir) or os.path.join(clip_dir, "mel.npy")
        try:
            mel = np.load(path)
        except (OSError, ValueError) as exc:
            raise UnreadableFrame(path, f"unreadable mel cache ({exc})") from None
        if not np.isfinite(mel).all():
            mel = self._recompute_mel(clip, path)
        self._mels[clip] = mel
        self._mel_bytes += mel.nbytes
        while self._mel_bytes > _MEL_CACHE_BYTES and len(self._mels) > 1:
            self._mel_bytes -= self._mels.popitem(last=False)[1].nbytes
        return mel

    def _recompute_mel(self, clip: int, path: str) -> np.ndarray:
        """A mel cache holding NaN/Inf (a damaged file) is rebuilt from the clip's audio.wav.

        Raises:
            UnreadableFrame: no audio to rebuild it from (the clip's samples are skipped and
                the file named).
        """
        wav_path = os.path.join(self.clip_dirs[clip], "audio.wav")
        try:
            mel = melspectrogram(load_audio(wav_path))
        except MediaError:
            raise UnreadableFrame(path, "the mel cache holds NaN/Inf values and there is no "
                                        "readable audio.wav to rebuild it from; re-run "
                                        "preprocessing") from None
        get_logger().warning("%s holds NaN/Inf values: rebuilt it from %s", path, wav_path)
        self._store_mel(self.clip_dirs[clip], mel)
        return mel

    # ---------------------------------------------------------------- frames
    def read_run(self, clip: int, start: int, out: np.ndarray) -> None:
        """Fill ``out`` ((n, 3, S, S) uint8 BGR planes) with frames start .. start+n-1 of a clip.

        Raises:
            UnreadableFrame: a frame is missing or does not decode.
        """
        cache = self.frame_cache_of(clip)
        # Frames the cache lacks (gone before it was built) go to the JPEGs, which say why.
        if cache is None or not cache.read(start, out):
            self._decode_run(clip, start, out)

    def _decode_run(self, clip: int, start: int, out: np.ndarray) -> None:
        """Decode frames start .. start+len(out)-1 of a clip from their JPEGs into ``out``."""
        for k in range(len(out)):
            path = os.path.join(self.clip_dirs[clip], f"{start + k}.jpg")
            if path in self._bad_files:
                raise UnreadableFrame(path, "unreadable earlier")
            out[k] = decode_frame(path, self.img_size).transpose(2, 0, 1)

    def frame_cache_of(self, clip: int) -> Optional[CachedFrames]:
        """The clip's up-to-date frame cache (the corpus's, else ``cache_dir``'s, else built there
        now when ``cache_dir`` is set); None: read its JPEGs."""
        if clip in self._frame_caches:
            return self._frame_caches[clip]
        cache, clip_dir = None, self.clip_dirs[clip]
        if self.frame_cache and os.path.isdir(clip_dir):  # a vanished clip: the JPEG reads report it
            listing = scan_jpgs(clip_dir)
            folder = self.cache_folder(clip_dir)
            cache = find_frame_cache(clip_dir, self.img_size, listing)
            if cache is None and folder is not None:
                cache = find_frame_cache(folder, self.img_size, listing)
            if cache is None:
                cache = self._build_frame_cache(clip_dir, folder, listing)
        self._frame_caches[clip] = cache
        return cache

    def _build_frame_cache(self, clip_dir: str, folder: Optional[str], listing: JpgListing) -> Optional[CachedFrames]:
        """Build a missing frame cache into ``folder`` (``cache_dir``'s); None when not asked or failed."""
        if not self._cache_writable:
            if self.cache_dir is None and not self._uncached_warned:
                self._uncached_warned = True
                get_logger().warning("%s has no up-to-date %d px frame cache (first: %s): frames are decoded "
                                     "from the JPEGs for every sample; set dataset cache_dir to build the "
                                     "caches once (outside the corpus, or the dataroot to write beside the "
                                     "clips)", self.dataroot, self.img_size, clip_dir)
            return None
        try:
            return build_frame_cache(clip_dir, self.img_size, listing, out_dir=folder)
        except UnreadableFrame as bad:
            self.note_bad_file(bad)  # its windows are skipped when drawn, not before
        except OSError as exc:
            self._cache_writable = False
            get_logger().warning("cannot write frame caches under %s (%s): frames are decoded "
                                 "from the JPEGs for every sample", self.cache_dir, exc)
        return None

    def note_bad_file(self, bad: UnreadableFrame) -> None:
        """Remember an unreadable file (never read again in this process) and report it once."""
        if bad.path not in self._bad_files:
            self._bad_files.add(bad.path)
            get_logger().warning("skipping samples that need %s (%s); %d sample(s) skipped so far "
                                 "in this process", bad.path, bad.reason, self.skipped_samples)
