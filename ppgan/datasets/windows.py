"""The sample index shared by the lip-sync datasets: one reproducible window per index.

Unlike the reference loaders (which ignore the index and loop until a random draw works), every
index names one window: a clip and the frame its ``syncnet_T`` frames start at. Windows are
enumerated once at construction (frames present, audio long enough), ordered round-robin over
clips (window 0 of every clip, then window 1, ...) so a truncated validation pass still sees every
clip. Whatever else a sample needs (the off-sync or reference window, augmentation) is drawn
from a generator seeded by (seed, epoch, index), so samples are reproducible and a distributed
sampler's shards are disjoint.

Samples come in two forms: ``compact_item(i)`` holds the frames as uint8 (4-6x fewer bytes: what
``build_dataloader`` moves between processes) and ``expand_batch`` turns a batch of those into the
float32 network input; ``dataset[i]`` is exactly ``expand_batch`` of a batch of one.
"""

import os
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np
from paddle.io import Dataset
from tqdm import tqdm

from ..data.contract import FACE_SIZE, SYNC_T, check_face_size, mel_window_fits, mel_windows, to_unit_float
from ..utils.audio import MEL_STEP_SIZE
from ..utils.comm import is_main_process
from ..utils.errors import ConfigError, DataError
from ..utils.logger import get_logger
from .augment import build_augment
from .corpus import CorpusReader, frame_ids
from .frame_cache import UnreadableFrame

MAX_ATTEMPTS = 16  # samples tried in a row before unreadable data is reported instead of skipped


def window_starts(ids: np.ndarray, length: int) -> np.ndarray:
    """Frame ids s such that s, s+1, ..., s+length-1 are all in the sorted ``ids``."""
    if len(ids) < length:
        return ids[:0]
    return ids[:len(ids) - length + 1][ids[length - 1:] - ids[:len(ids) - length + 1] == length - 1]


class LipSyncWindows(CorpusReader, Dataset[Dict[str, np.ndarray]]):
    """Shared machinery of the two datasets: window index, reproducible draws, frame and mel windows.

    Subclasses define ``_usable_starts`` (which windows they can build a sample at),
    ``_make_sample`` (the compact sample) and ``expand_batch`` (compact batch -> float32 batch).
    Arguments: see the datasets (``lrs2``).
    """

    def __init__(self, dataroot: str, filelist: str, img_size: int = FACE_SIZE, syncnet_T: int = SYNC_T,
                 mel_step_size: int = MEL_STEP_SIZE, fps: float = 25, seed: int = 0, augment: Optional[Dict[str, float]] = None,
                 is_train: bool = True, frame_cache: bool = True, cache_dir: Optional[str] = None,
                 config_dir: Optional[str] = None):
        check_face_size(img_size, "dataset.img_size")
        for key, value in dict(syncnet_T=syncnet_T, mel_step_size=mel_step_size).items():
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"dataset.{key} must be a positive integer, got {value!r}")
        if not fps > 0:
            raise ConfigError(f"dataset.fps must be positive, got {fps!r}")
        if not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"the dataset seed must be a non-negative integer, got {seed!r}")
        Dataset.__init__(self)
        CorpusReader.__init__(self, dataroot, filelist, img_size, frame_cache=frame_cache, cache_dir=cache_dir,
                              config_dir=config_dir)
        self.syncnet_T, self.mel_step_size, self.fps = syncnet_T, mel_step_size, fps
        self.seed, self.is_train, self.epoch = int(seed), bool(is_train), 0
        self.augment = build_augment(augment) if is_train else None
        self._index_windows(self.listed_keys())

    # ---------------------------------------------------------------- construction
    def _index_windows(self, keys: List[str]) -> None:
        """Find every clip's frames and mel length, keep the clips with a usable window, order the windows."""
        self.clip_starts, self.clip_video_starts = [], []  # usable / every complete T-frame run
        too_short = []
        # Scanning LRS2 (45k clip folders) takes a while: show progress, once, for big lists only.
        for key in tqdm(keys, desc=f"scan {os.path.basename(self.filelist)}", unit="clip",
                        disable=len(keys) < 2000 or not is_main_process()):
            clip_dir = os.path.join(self.dataroot, key)
            video_starts = window_starts(frame_ids(clip_dir), self.syncnet_T)
            starts = self._usable_starts(video_starts, self.mel_length(clip_dir))
            if len(starts) == 0:
                too_short.append(key)
                self._pinned_mels.pop(clip_dir, None)
                continue
            self.add_clip(key)
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

    def _mel_starts_ok(self, frames: np.ndarray, mel_len: int) -> np.ndarray:
        """Boolean mask: the ``mel_step_size`` window starting at each frame lies inside the mel."""
        return (frames >= 0) & mel_window_fits(frames, self.fps, mel_len, steps=self.mel_step_size)

    def _usable_starts(self, video_starts: np.ndarray, mel_len: int) -> np.ndarray:
        """Which of a clip's complete video windows a sample can be built at.

        Args:
            video_starts: (W,) first frame ids of every run of ``syncnet_T`` present frames.
            mel_len: the clip's mel length in steps.
        Returns:
            The subset whose in-sync mel window lies inside the audio.
        """
        return video_starts[self._mel_starts_ok(video_starts, mel_len)]

    # ---------------------------------------------------------------- sampling
    def __len__(self) -> int:
        return len(self._window_clip)

    def set_epoch(self, epoch: int) -> None:
        """Choose which draws training samples make (negatives, references, augmentation)."""
        self.epoch = int(epoch)

    def window(self, index: int) -> Tuple[int, int]:
        """(clip number, first frame id) of window ``index``."""
        return int(self._window_clip[index]), int(self._window_start[index])

    def __getitem__(self, index: int) -> Dict[str, np.ndarray]:
        """Sample ``index`` as float32 arrays (keys and shapes: see the dataset class)."""
        batch = self.expand_batch({key: value[None] for key, value in self.compact_item(index).items()})
        return {key: value[0] for key, value in batch.items()}

    def compact_item(self, index: int) -> Dict[str, np.ndarray]:
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
                self.skipped_samples += 1
                self.note_bad_file(bad)
                last_error = bad
                # Move on to another window, drawn reproducibly; bounded, never an endless retry.
                target = int(rng.integers(len(self)))
        raise DataError(f"{MAX_ATTEMPTS} samples in a row had unreadable frames (last: {last_error}): "
                        f"the corpus under {self.dataroot} looks damaged, re-run preprocessing")

    def _make_sample(self, window_index: int, requested_index: int, epoch: int,
                     rng: np.random.Generator) -> Dict[str, np.ndarray]:
        raise NotImplementedError  # abstract: the compact sample

    def expand_batch(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Compact batch (dict of arrays, batch axis first) -> float32 network input."""
        raise NotImplementedError  # abstract

    # ---------------------------------------------------------------- reading
    def read_frames(self, clip: int, starts: Iterable[int]) -> np.ndarray:
        """Read the ``syncnet_T``-frame windows starting at each of ``starts``.

        Returns:
            (len(starts) * T, 3, S, S) uint8 BGR planes, S = img_size (crops of another size are
            resized).
        Raises:
            UnreadableFrame: a frame is missing or does not decode.
        """
        starts, steps = list(starts), self.syncnet_T
        out = np.empty((len(starts) * steps, 3, self.img_size, self.img_size), dtype=np.uint8)
        for n, start in enumerate(starts):
            self.read_run(clip, start, out[n * steps:(n + 1) * steps])
        return out

    def augmented(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
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

    def mel_window(self, clip: int, frame: int) -> np.ndarray:
        """(80, mel_step_size) float32 mel window starting at video frame ``frame``."""
        return self.mel_windows(clip, np.array([frame]))[0]

    def mel_windows(self, clip: int, frames: np.ndarray) -> np.ndarray:
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
