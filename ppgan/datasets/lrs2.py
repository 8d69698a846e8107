"""Datasets over the preprocessed LRS2 layout: the lip-sync expert's and the generator's.

Corpus layout (written by ``tools/preprocess.py`` or the synthetic corpus writer)::

    <dataroot>/<speaker>/<clip>/0.jpg 1.jpg ...   face crops (BGR), one per video frame at ``fps``
    <dataroot>/<speaker>/<clip>/mel.npy           (80, T) mel of the clip's audio, 80 steps/s
    <dataroot>/<speaker>/<clip>/audio.wav         16 kHz mono (only read when mel.npy is missing)
    <dataroot>/<speaker>/<clip>/frames_<S>_<sig>.npy  (N, 3, S, S) uint8 frame cache (frame_cache.py)
    <dataroot>/train.txt val.txt test.txt         one "<speaker>/<clip>" per line

Unlike the reference loaders (which ignore the index and loop until a random draw works), every
index names one window: a clip and the frame its ``syncnet_T`` frames start at. Windows are
enumerated once at construction (frames present, audio long enough), ordered round-robin over
clips (window 0 of every clip, then window 1, ...) so a truncated validation pass still sees every
clip. Whatever else a sample needs (the off-sync or reference window, augmentation) is drawn
from a generator seeded by (seed, epoch, index), so samples are reproducible and a distributed
sampler's shards are disjoint. Mels are read from each clip's cache, never recomputed per sample.
Frames are read from the clip's frame cache, built from the JPEGs the first time a process needs
a clip whose cache is missing or stale (and written for later runs); a clip with an undecodable
JPEG is not cached and is read frame by frame, so the bad frame is skipped, counted and reported.

Samples come in two forms: ``compact_item(i)`` holds the frames as uint8 (4-6x fewer bytes: what
``build_dataloader`` moves between processes) and ``expand_batch`` turns a batch of those into the
float32 network input; ``dataset[i]`` is exactly ``expand_batch`` of a batch of one.

Paths follow the one rule of ``ppgan.utils.config_paths``: ``dataroot`` absolute as given, else
in the working directory, then in ``config_dir`` (the folder of the config file) and its two
parents; ``filelist`` absolute as given, else in ``dataroot`` (a split name ``train`` finds
``<dataroot>/train.txt``), then beside the config (so ``filelists/train.txt`` from
``configs/x.yaml`` finds the project's ``filelists/``); never the working directory.
"""

import collections
import os

import numpy as np
from paddle.io import Dataset
from tqdm import tqdm

from ..data.contract import (FACE_SIZE, SYNC_T, TRAIN_MEL_FRAME_OFFSET, check_face_size, generator_faces,
                             lower_half_stack, mel_window_fits, mel_windows, to_unit_float)
from ..utils.audio import MEL_STEP_SIZE, NUM_MELS, load_audio, melspectrogram
from ..utils.comm import is_main_process
from ..utils.config_paths import resolve_config_path
from ..utils.errors import ConfigError, DataError, MediaError
from ..utils.logger import get_logger
from .augment import build_augment
from .builder import DATASETS
from .frame_cache import (UnreadableFrame, build_frame_cache, decode_frame, find_frame_cache, npy_header,
                          scan_jpgs)

MAX_ATTEMPTS = 16  # samples tried in a row before unreadable data is reported instead of skipped
_MEL_CACHE_BYTES = 64 << 20  # per process: a few hundred LRS2 clips' mels


def read_filelist(path, root=None):
    """Clip paths listed in ``path``: the first token of each non-blank, non-``#`` line.

    Later tokens are ignored (LRS2's test list tags lines with NF / MV).

    Args:
        path: the split list.
        root: the corpus folder the keys are relative to; when given, keys that lead outside
            it (``../x``, absolute paths) are refused: clips are read and frame caches written
            there, so a list must not reach other folders.
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


def frame_ids(clip_dir):
    """Sorted integer ids of the ``<id>.jpg`` frames in a clip folder, as an int64 array."""
    ids = [int(name[:-4]) for name in os.listdir(clip_dir)
           if name.endswith(".jpg") and name[:-4].isdigit()]
    return np.array(sorted(ids), dtype=np.int64)


def window_starts(ids, length):
    """Frame ids s such that s, s+1, ..., s+length-1 are all in the sorted ``ids``."""
    if len(ids) < length:
        return ids[:0]
    return ids[:len(ids) - length + 1][ids[length - 1:] - ids[:len(ids) - length + 1] == length - 1]


class LipSyncWindows(Dataset):
    """Shared machinery of the two datasets: clip scan, window index, frame and mel reading.

    Subclasses define ``_usable_starts`` (which windows they can build a sample at),
    ``_make_sample`` (the compact sample) and ``expand_batch`` (compact batch -> float32 batch).
    """

    def __init__(self, dataroot, filelist, img_size=FACE_SIZE, syncnet_T=SYNC_T, mel_step_size=MEL_STEP_SIZE,
                 fps=25, seed=0, augment=None, is_train=True, frame_cache=True, config_dir=None):
        check_face_size(img_size, "dataset.img_size")
        for key, value in dict(syncnet_T=syncnet_T, mel_step_size=mel_step_size).items():
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"dataset.{key} must be a positive integer, got {value!r}")
        if not fps > 0:
            raise ConfigError(f"dataset.fps must be positive, got {fps!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"the dataset seed must be a non-negative integer, got {seed!r}")
        self.img_size, self.syncnet_T, self.mel_step_size, self.fps = img_size, syncnet_T, mel_step_size, fps
        self.seed, self.is_train, self.epoch = int(seed), bool(is_train), 0
        self.augment = build_augment(augment) if is_train else None
        self.dataroot = resolve_config_path(dataroot, "dataroot", config_dir)
        self.filelist = resolve_config_path(filelist, "filelist", config_dir, anchor=self.dataroot)
        self.skipped_samples = 0
        self._bad_files = set()
        self.frame_cache = bool(frame_cache)
        self._frame_caches = {}  # clip -> CachedFrames, or None (read its JPEGs); decided at first use
        self._cache_writable = True  # False once a cache could not be written: stop trying
        self._mels = collections.OrderedDict()  # clip -> (80, T) mel, least recently used first
        self._mel_bytes = 0
        self._pinned_mels = {}  # mels that could not be written back to the corpus
        self._scan(read_filelist(self.filelist, self.dataroot))

    # ---------------------------------------------------------------- construction
    def _scan(self, keys):
        """Find every clip's frames and mel length, then enumerate the usable windows."""
        self.clip_keys, self.clip_dirs, self.clip_starts = [], [], []
        missing = [k for k in keys if not os.path.isdir(os.path.join(self.dataroot, k))]
        if missing:
            raise DataError(f"{len(missing)} clip folder(s) listed in {self.filelist} do not exist under "
                            f"{self.dataroot} (first: {missing[0]}): fix the list or re-run preprocessing")
        self.clip_video_starts = []  # every complete T-frame run, audio or not (negatives, references)
        too_short = []
        # Scanning LRS2 (45k clip folders) takes a while: show progress, once, for big lists only.
        for key in tqdm(keys, desc=f"scan {os.path.basename(self.filelist)}", unit="clip",
                        disable=len(keys) < 2000 or not is_main_process()):
            clip_dir = os.path.join(self.dataroot, key)
            video_starts = window_starts(frame_ids(clip_dir), self.syncnet_T)
            starts = self._usable_starts(video_starts, self._mel_length(len(self.clip_dirs), clip_dir))
            if len(starts) == 0:
                too_short.append(key)
                self._pinned_mels.pop(len(self.clip_dirs), None)
                continue
            self.clip_keys.append(key)
            self.clip_dirs.append(clip_dir)
            self.clip_starts.append(starts)
            self.clip_video_starts.append(video_starts)
        if not self.clip_dirs:
            raise DataError(f"no clip in {self.filelist} has a usable {self.syncnet_T}-frame window with "
                            f"audio ({len(keys)} listed): the clips are too short or hold no frames")
        if too_short:
            get_logger().warning("%s: %d of %d clips have no usable window and are left out (first: %s)",
                                 self.filelist, len(too_short), len(keys), too_short[0])
        counts = np.array([len(s) for s in self.clip_starts])
        clip_of = np.repeat(np.arange(len(counts)), counts)
        rank_in_clip = np.concatenate([np.arange(n) for n in counts])
        order = np.lexsort((clip_of, rank_in_clip))  # round-robin: sort by rank, then by clip
        self._window_clip = clip_of[order].astype(np.int32)
        self._window_start = np.concatenate(self.clip_starts)[order].astype(np.int32)

    def _mel_length(self, clip, clip_dir):
        """Mel length of a clip from its cache header; a missing or broken cache is rebuilt once."""
        path = os.path.join(clip_dir, "mel.npy")
        header = npy_header(path)
        if header is not None and len(header[0]) == 2 and header[0][0] == NUM_MELS:
            return header[0][1]
        wav_path = os.path.join(clip_dir, "audio.wav")
        if not os.path.isfile(wav_path):
            raise DataError(f"clip {clip_dir} has neither a valid mel.npy nor audio.wav: re-run preprocessing")
        try:
            mel = melspectrogram(load_audio(wav_path))
        except MediaError as exc:
            raise DataError(f"clip {clip_dir}: {exc}") from None
        if self._store_mel(clip, path, mel):
            get_logger().info("computed the missing mel cache %s", path)
        return mel.shape[1]

    def _store_mel(self, clip, path, mel):
        """Write a computed mel cache; on a read-only corpus keep it in memory. True if written."""
        try:
            tmp = f"{path}.tmp{os.getpid()}.npy"
            np.save(tmp, mel)
            os.replace(tmp, path)
            return True
        except OSError:
            self._pinned_mels[clip] = mel
            return False

    def _mel_starts_ok(self, frames, mel_len):
        """Boolean mask: the ``mel_step_size`` window starting at each frame lies inside the mel."""
        return (frames >= 0) & mel_window_fits(frames, self.fps, mel_len, steps=self.mel_step_size)

    def _usable_starts(self, video_starts, mel_len):
        """Which of a clip's complete video windows a sample can be built at.

        Args:
            video_starts: (W,) first frame ids of every run of ``syncnet_T`` present frames.
            mel_len: the clip's mel length in steps.
        Returns:
            The subset whose in-sync mel window lies inside the audio.
        """
        return video_starts[self._mel_starts_ok(video_starts, mel_len)]

    # ---------------------------------------------------------------- sampling
    def __len__(self):
        return len(self._window_clip)

    @property
    def num_clips(self):
        return len(self.clip_dirs)

    def set_epoch(self, epoch):
        """Choose which draws training samples make (negatives, references, augmentation)."""
        self.epoch = int(epoch)

    def window(self, index):
        """(clip number, first frame id) of window ``index``."""
        return int(self._window_clip[index]), int(self._window_start[index])

    def __getitem__(self, index):
        """Sample ``index`` as float32 arrays (keys and shapes: see the dataset class)."""
        batch = self.expand_batch({key: value[None] for key, value in self.compact_item(index).items()})
        return {key: value[0] for key, value in batch.items()}

    def compact_item(self, index):
        """Sample ``index`` with its frames as uint8 (keys and shapes: see the dataset class).

        Unreadable data skips to another window drawn reproducibly, at most ``MAX_ATTEMPTS`` times.
        """
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} windows")
        epoch = self.epoch if self.is_train else 0  # validation samples never change
        target, last_error = index, None
        for attempt in range(MAX_ATTEMPTS):
            rng = np.random.default_rng([self.seed, epoch, index, attempt])
            try:
                return self._make_sample(target, index, epoch, rng)
            except UnreadableFrame as bad:
                self._skip(bad)
                last_error = bad
                # Move on to another window, drawn reproducibly; bounded, never an endless retry.
                target = int(rng.integers(len(self)))
        raise DataError(f"{MAX_ATTEMPTS} samples in a row had unreadable frames (last: {last_error}): "
                        f"the corpus under {self.dataroot} looks damaged, re-run preprocessing")

    def _skip(self, bad):
        self.skipped_samples += 1
        self._note_bad_file(bad)

    def _note_bad_file(self, bad):
        """Remember an unreadable file (never read again in this process) and report it once."""
        if bad.path not in self._bad_files:
            self._bad_files.add(bad.path)
            get_logger().warning("skipping samples that need %s (%s); %d sample(s) skipped so far "
                                 "in this process", bad.path, bad.reason, self.skipped_samples)

    def _make_sample(self, window_index, requested_index, epoch, rng):
        raise NotImplementedError  # abstract: the compact sample

    def expand_batch(self, batch):
        """Compact batch (dict of arrays, batch axis first) -> float32 network input."""
        raise NotImplementedError  # abstract

    # ---------------------------------------------------------------- reading
    def read_frames(self, clip, starts):
        """Read the ``syncnet_T``-frame windows starting at each of ``starts``.

        Returns:
            (len(starts) * T, 3, S, S) uint8 BGR planes, S = img_size (crops of another size are
            resized).
        Raises:
            UnreadableFrame: a frame is missing or does not decode.
        """
        steps = self.syncnet_T
        out = np.empty((len(starts) * steps, 3, self.img_size, self.img_size), dtype=np.uint8)
        cache = self._frame_cache_of(clip)
        for n, start in enumerate(starts):
            window = out[n * steps:(n + 1) * steps]
            # Frames the cache lacks (gone before it was built) go to the JPEGs, which say why.
            if cache is None or not cache.read(start, window):
                self._decode_window(clip, start, window)
        return out

    def _decode_window(self, clip, start, out):
        """Decode frames start .. start+len(out)-1 of a clip from their JPEGs into ``out``."""
        for k in range(len(out)):
            path = os.path.join(self.clip_dirs[clip], f"{start + k}.jpg")
            if path in self._bad_files:
                raise UnreadableFrame(path, "unreadable earlier")
            out[k] = decode_frame(path, self.img_size).transpose(2, 0, 1)

    def _frame_cache_of(self, clip):
        """The clip's up-to-date frame cache, built now if missing or stale; None: read its JPEGs."""
        if clip in self._frame_caches:
            return self._frame_caches[clip]
        cache, clip_dir = None, self.clip_dirs[clip]
        if self.frame_cache and os.path.isdir(clip_dir):  # a vanished clip: the JPEG reads report it
            listing = scan_jpgs(clip_dir)
            cache = find_frame_cache(clip_dir, self.img_size, listing)
            if cache is None and self._cache_writable:
                try:
                    cache = build_frame_cache(clip_dir, self.img_size, listing)
                except UnreadableFrame as bad:
                    self._note_bad_file(bad)  # its windows are skipped when drawn, not before
                except OSError as exc:
                    self._cache_writable = False
                    get_logger().warning("cannot write frame caches under %s (%s): frames are decoded "
                                         "from the JPEGs for every sample", self.dataroot, exc)
        self._frame_caches[clip] = cache
        return cache

    def augmented(self, frames, rng):
        """Frames with one augmentation draw applied to all of them, when configured.

        Args:
            frames: (N, 3, S, S) uint8 BGR planes.
        Returns:
            (N, 3, S, S) uint8 (``frames`` itself when augmentation is off).
        """
        if self.augment is None:
            return frames
        floats = self.augment.apply(to_unit_float(frames.transpose(0, 2, 3, 1)), self.augment.sample(rng))
        # Back to 8 bits, the precision the crops were stored with (error <= 0.5 / 255).
        return np.ascontiguousarray(np.rint(floats * 255.0).astype(np.uint8).transpose(0, 3, 1, 2))

    def mel(self, clip):
        """(80, T) float32 mel of a clip, from a small per-process LRU cache over mel.npy."""
        if clip in self._pinned_mels:
            return self._pinned_mels[clip]
        cached = self._mels.get(clip)
        if cached is not None:
            self._mels.move_to_end(clip)
            return cached
        path = os.path.join(self.clip_dirs[clip], "mel.npy")
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

    def _recompute_mel(self, clip, path):
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
        self._store_mel(clip, path, mel)
        return mel

    def mel_window(self, clip, frame):
        """(80, mel_step_size) float32 mel window starting at video frame ``frame``."""
        return self.mel_windows(clip, np.array([frame]))[0]

    def mel_windows(self, clip, frames):
        """(len(frames), 80, mel_step_size) float32 mel windows starting at each video frame.

        Windows are only ever asked for where they fit (``_usable_starts``); one that does not is
        a mel file that changed under the index, reported instead of clamped.
        """
        mel = self.mel(clip)
        fits = mel_window_fits(frames, self.fps, mel.shape[1], steps=self.mel_step_size)
        if not np.all(fits):
            frame = int(np.asarray(frames)[~fits][0])
            raise UnreadableFrame(os.path.join(self.clip_dirs[clip], "mel.npy"),
                                  f"shorter than its header said (window at frame {frame})")
        return mel_windows(mel, frames, self.fps, steps=self.mel_step_size)


@DATASETS.register()
class SyncNetDataset(LipSyncWindows):
    """Samples for the lip-sync expert: in-sync and off-sync (lower-face window, mel) pairs.

    Window ``i`` fixes the audio: the mel window at its first frame. Positives show the frames of
    that window; negatives show a window of the same clip starting at least ``min_offset`` frames
    away (as the reference does, the video is shifted, not the audio). Labels alternate with
    ``(index + epoch) % 2`` so every epoch is exactly balanced and each window serves as both.

    Args:
        dataroot, filelist, config_dir: see the module docstring.
        img_size: side S of the face crops fed to the expert. Default: 96.
        syncnet_T: frames per window. Default: 5.
        mel_step_size: mel steps per window (16 = 0.2 s). Default: 16.
        fps: video frame rate of the corpus. Default: 25.
        min_offset: smallest distance, in frames, between a negative's video and its audio. Default: 5.
        seed: seeds every per-sample draw. Default: 0.
        augment: ``WindowAugment`` config (training only). Default: None (off).
        is_train: training (draws change with ``set_epoch``) or validation (fixed). Default: True.
        frame_cache: read frames from per-clip uint8 caches, building missing ones. Default: True.

    Item (dict of float32 arrays): ``face`` (3T, S/2, S) lower halves of the T frames stacked on
    channels (frame t in channels 3t..3t+2), BGR in [0, 1]; ``mel`` (1, 80, mel_step_size);
    ``label`` (1,) 1 = in sync, 0 = off. Compact item: ``frames`` (3T, S/2, S) uint8 instead of
    ``face``.
    """

    def __init__(self, dataroot, filelist, img_size=FACE_SIZE, syncnet_T=SYNC_T, mel_step_size=MEL_STEP_SIZE,
                 fps=25, min_offset=5, seed=0, augment=None, is_train=True, frame_cache=True, config_dir=None):
        if not isinstance(min_offset, int) or min_offset < 1:
            raise ConfigError(f"dataset.min_offset must be a positive integer (frames), got {min_offset!r}")
        self.min_offset = min_offset
        super().__init__(dataroot, filelist, img_size=img_size, syncnet_T=syncnet_T,
                         mel_step_size=mel_step_size, fps=fps, seed=seed, augment=augment,
                         is_train=is_train, frame_cache=frame_cache, config_dir=config_dir)

    def _usable_starts(self, video_starts, mel_len):
        starts = super()._usable_starts(video_starts, mel_len)
        if len(starts) == 0:
            return starts
        # A negative needs some video window of the clip at least min_offset frames away.
        has_negative = (starts - video_starts[0] >= self.min_offset) | \
                       (video_starts[-1] - starts >= self.min_offset)
        return starts[has_negative]

    def _make_sample(self, window_index, requested_index, epoch, rng):
        clip, start = self.window(window_index)
        positive = (requested_index + epoch) % 2 == 0
        video_start = start
        if not positive:
            # Any video window of the clip will do: only the audio has to lie inside the clip's mel.
            video_windows = self.clip_video_starts[clip]
            video_start = int(rng.choice(video_windows[np.abs(video_windows - start) >= self.min_offset]))
        # Augment whole crops (a zoom needs them), then stack the lower halves of the
        # (T, 3, S, S) window, viewed as one (1, 3, T, S, S) clip.
        frames = self.augmented(self.read_frames(clip, [video_start]), rng)
        return {"frames": lower_half_stack(frames[None].transpose(0, 2, 1, 3, 4))[0],
                "mel": self.mel_window(clip, start)[None],
                "label": np.array([1.0 if positive else 0.0], dtype=np.float32)}

    def expand_batch(self, batch):
        """{frames (B, 3T, S/2, S) uint8, mel, label} -> {face float32 in [0, 1], mel, label}."""
        return {"face": to_unit_float(batch["frames"]), "mel": batch["mel"], "label": batch["label"]}


@DATASETS.register()
class Wav2LipDataset(LipSyncWindows):
    """Samples for the generator: masked target window + reference window, with their audio.

    Window ``i`` is the target: ``y`` its T frames; ``x`` the same frames with the lower half
    zeroed, stacked on channels with a reference window drawn from the same clip (any other
    complete window, as the reference implementation does). ``mel`` is the in-sync window for the
    expert; ``indiv_mels`` holds one window per frame f starting at frame f + ``mel_frame_offset``.
    The reference trains with -1 (one frame before the frame) while its inference uses 0, a 40 ms
    mismatch; -1 stays the default for weight compatibility, 0 matches our inference.

    Args:
        dataroot, filelist, config_dir: see the module docstring.
        img_size: side S of the face crops. Default: 96.
        syncnet_T: frames per window. Default: 5.
        mel_step_size: mel steps per window. Default: 16.
        fps: video frame rate of the corpus. Default: 25.
        mel_frame_offset: frame offset of the per-frame mel windows (-1 reference, 0 inference). Default: -1.
        seed: seeds every per-sample draw. Default: 0.
        augment: ``WindowAugment`` config, one draw for target and reference (training only). Default: None.
        is_train: training (draws change with ``set_epoch``) or validation (fixed). Default: True.
        frame_cache: read frames from per-clip uint8 caches, building missing ones. Default: True.

    Item (dict of float32 arrays): ``x`` (6, T, S, S) masked target + reference, BGR in [0, 1];
    ``indiv_mels`` (T, 1, 80, mel_step_size); ``mel`` (1, 80, mel_step_size); ``y`` (3, T, S, S).
    Compact item: ``frames`` (2T, 3, S, S) uint8 (target window, then reference window) instead
    of ``x`` and ``y``.
    """

    def __init__(self, dataroot, filelist, img_size=FACE_SIZE, syncnet_T=SYNC_T, mel_step_size=MEL_STEP_SIZE,
                 fps=25, mel_frame_offset=TRAIN_MEL_FRAME_OFFSET, seed=0, augment=None, is_train=True, frame_cache=True, config_dir=None):
        if not isinstance(mel_frame_offset, int):
            raise ConfigError(f"dataset.mel_frame_offset must be an integer (frames), got {mel_frame_offset!r}")
        self.mel_frame_offset = mel_frame_offset
        super().__init__(dataroot, filelist, img_size=img_size, syncnet_T=syncnet_T,
                         mel_step_size=mel_step_size, fps=fps, seed=seed, augment=augment,
                         is_train=is_train, frame_cache=frame_cache, config_dir=config_dir)

    def _usable_starts(self, video_starts, mel_len):
        starts = super()._usable_starts(video_starts, mel_len)
        first = starts + self.mel_frame_offset
        last = starts + self.syncnet_T - 1 + self.mel_frame_offset
        starts = starts[self._mel_starts_ok(first, mel_len) & self._mel_starts_ok(last, mel_len)]
        # A reference needs a second window in the clip.
        return starts if len(video_starts) >= 2 else starts[:0]

    def _make_sample(self, window_index, requested_index, epoch, rng):
        clip, start = self.window(window_index)
        video_windows = self.clip_video_starts[clip]
        others = video_windows[video_windows != start]
        reference = int(others[rng.integers(len(others))])  # the draw of rng.choice(others), cheaper
        frames = self.augmented(self.read_frames(clip, [start, reference]), rng)  # (2T, 3, S, S)
        indiv_mels = self.mel_windows(clip, np.arange(self.syncnet_T) + start + self.mel_frame_offset)
        return {"frames": frames,
                "indiv_mels": indiv_mels[:, None],
                "mel": self.mel_window(clip, start)[None]}

    def expand_batch(self, batch):
        """{frames (B, 2T, 3, S, S) uint8, indiv_mels, mel} -> {x, indiv_mels, mel, y} float32."""
        # (B, 3, 2T, S, S) view: converting through it moves whole S x S planes, no transpose copy.
        frames, steps = batch["frames"].transpose(0, 2, 1, 3, 4), self.syncnet_T
        target, reference = frames[:, :, :steps], frames[:, :, steps:]
        return {"x": generator_faces(target, reference), "indiv_mels": batch["indiv_mels"],
                "mel": batch["mel"], "y": to_unit_float(target)}
