"""The two registered datasets over the preprocessed corpus: the lip-sync expert's and the generator's.

Both index reproducible windows of the clips a filelist names (``windows``) read from a corpus
(``corpus``: layout, paths, caches); here is only what their samples hold.
"""

from typing import Dict, Optional

import numpy as np

from ..data.contract import FACE_SIZE, SYNC_T, TRAIN_MEL_FRAME_OFFSET, generator_faces, lower_half_stack, to_unit_float
from ..utils.audio import MEL_STEP_SIZE
from ..utils.errors import ConfigError
from .builder import DATASETS
from .windows import LipSyncWindows


@DATASETS.register()
class SyncNetDataset(LipSyncWindows):
    """Samples for the lip-sync expert: in-sync and off-sync (lower-face window, mel) pairs.

    Window ``i`` fixes the audio: the mel window at its first frame. Positives show the frames of
    that window; negatives show a window of the same clip starting at least ``min_offset`` frames
    away (as the reference does, the video is shifted, not the audio). Labels alternate with
    ``(index + epoch) % 2`` so every epoch is exactly balanced and each window serves as both.

    Args:
        dataroot, filelist, config_dir: see ``corpus``.
        img_size: side S of the face crops fed to the expert. Default: 96.
        syncnet_T: frames per window. Default: 5.
        mel_step_size: mel steps per window (16 = 0.2 s). Default: 16.
        fps: video frame rate of the corpus. Default: 25.
        min_offset: smallest distance, in frames, between a negative's video and its audio. Default: 5.
        seed: seeds every per-sample draw. Default: 0.
        augment: ``WindowAugment`` config (training only). Default: None (off).
        is_train: training (draws change with ``set_epoch``) or validation (fixed). Default: True.
        frame_cache: read frames from per-clip uint8 caches when present. Default: True.
        cache_dir: folder where caches the corpus lacks are written (the dataroot itself: beside
            the clips). Default: None, nothing is written (``corpus``).

    Item (dict of float32 arrays): ``face`` (3T, S/2, S) lower halves of the T frames stacked on
    channels (frame t in channels 3t..3t+2), BGR in [0, 1]; ``mel`` (1, 80, mel_step_size);
    ``label`` (1,) 1 = in sync, 0 = off. Compact item: ``frames`` (3T, S/2, S) uint8 instead of
    ``face``.
    """

    def __init__(self, dataroot: str, filelist: str, img_size: int = FACE_SIZE, syncnet_T: int = SYNC_T,
                 mel_step_size: int = MEL_STEP_SIZE, fps: float = 25, min_offset: int = 5, seed: int = 0,
                 augment: Optional[Dict[str, float]] = None, is_train: bool = True, frame_cache: bool = True,
                 cache_dir: Optional[str] = None, config_dir: Optional[str] = None):
        if not isinstance(min_offset, int) or min_offset < 1:
            raise ConfigError(f"dataset.min_offset must be a positive integer (frames), got {min_offset!r}")
        self.min_offset = min_offset
        super().__init__(dataroot, filelist, img_size=img_size, syncnet_T=syncnet_T,
                         mel_step_size=mel_step_size, fps=fps, seed=seed, augment=augment,
                         is_train=is_train, frame_cache=frame_cache, cache_dir=cache_dir,
                         config_dir=config_dir)

    def _usable_starts(self, video_starts: np.ndarray, mel_len: int) -> np.ndarray:
        starts = super()._usable_starts(video_starts, mel_len)
        if len(starts) == 0:
            return starts
        # A negative needs some video window of the clip at least min_offset frames away.
        has_negative = (starts - video_starts[0] >= self.min_offset) | \
                       (video_starts[-1] - starts >= self.min_offset)
        return starts[has_negative]

    def _make_sample(self, window_index: int, requested_index: int, epoch: int,
                     rng: np.random.Generator) -> Dict[str, np.ndarray]:
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

    def expand_batch(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
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
        dataroot, filelist, config_dir: see ``corpus``.
        img_size: side S of the face crops. Default: 96.
        syncnet_T: frames per window. Default: 5.
        mel_step_size: mel steps per window. Default: 16.
        fps: video frame rate of the corpus. Default: 25.
        mel_frame_offset: frame offset of the per-frame mel windows (-1 reference, 0 inference). Default: -1.
        seed: seeds every per-sample draw. Default: 0.
        augment: ``WindowAugment`` config, one draw for target and reference (training only). Default: None.
        is_train: training (draws change with ``set_epoch``) or validation (fixed). Default: True.
        frame_cache: read frames from per-clip uint8 caches when present. Default: True.
        cache_dir: folder where caches the corpus lacks are written (the dataroot itself: beside
            the clips). Default: None, nothing is written (``corpus``).

    Item (dict of float32 arrays): ``x`` (6, T, S, S) masked target + reference, BGR in [0, 1];
    ``indiv_mels`` (T, 1, 80, mel_step_size); ``mel`` (1, 80, mel_step_size); ``y`` (3, T, S, S).
    Compact item: ``frames`` (2T, 3, S, S) uint8 (target window, then reference window) instead
    of ``x`` and ``y``.
    """

    def __init__(self, dataroot: str, filelist: str, img_size: int = FACE_SIZE, syncnet_T: int = SYNC_T,
                 mel_step_size: int = MEL_STEP_SIZE, fps: float = 25, mel_frame_offset: int = TRAIN_MEL_FRAME_OFFSET,
                 seed: int = 0, augment: Optional[Dict[str, float]] = None, is_train: bool = True, frame_cache: bool = True,
                 cache_dir: Optional[str] = None, config_dir: Optional[str] = None):
        if not isinstance(mel_frame_offset, int):
            raise ConfigError(f"dataset.mel_frame_offset must be an integer (frames), got {mel_frame_offset!r}")
        self.mel_frame_offset = mel_frame_offset
        super().__init__(dataroot, filelist, img_size=img_size, syncnet_T=syncnet_T,
                         mel_step_size=mel_step_size, fps=fps, seed=seed, augment=augment,
                         is_train=is_train, frame_cache=frame_cache, cache_dir=cache_dir,
                         config_dir=config_dir)

    def _usable_starts(self, video_starts: np.ndarray, mel_len: int) -> np.ndarray:
        starts = super()._usable_starts(video_starts, mel_len)
        first = starts + self.mel_frame_offset
        last = starts + self.syncnet_T - 1 + self.mel_frame_offset
        starts = starts[self._mel_starts_ok(first, mel_len) & self._mel_starts_ok(last, mel_len)]
        # A reference needs a second window in the clip.
        return starts if len(video_starts) >= 2 else starts[:0]

    def _make_sample(self, window_index: int, requested_index: int, epoch: int,
                     rng: np.random.Generator) -> Dict[str, np.ndarray]:
        clip, start = self.window(window_index)
        video_windows = self.clip_video_starts[clip]
        others = video_windows[video_windows != start]
        reference = int(others[rng.integers(len(others))])  # the draw of rng.choice(others), cheaper
        frames = self.augmented(self.read_frames(clip, [start, reference]), rng)  # (2T, 3, S, S)
        indiv_mels = self.mel_windows(clip, np.arange(self.syncnet_T) + start + self.mel_frame_offset)
        return {"frames": frames,
                "indiv_mels": indiv_mels[:, None],
                "mel": self.mel_window(clip, start)[None]}

    def expand_batch(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """{frames (B, 2T, 3, S, S) uint8, indiv_mels, mel} -> {x, indiv_mels, mel, y} float32."""
        # (B, 3, 2T, S, S) view: converting through it moves whole S x S planes, no transpose copy.
        frames, steps = batch["frames"].transpose(0, 2, 1, 3, 4), self.syncnet_T
        target, reference = frames[:, :, :steps], frames[:, :, steps:]
        return {"x": generator_faces(target, reference), "indiv_mels": batch["indiv_mels"],
                "mel": batch["mel"], "y": to_unit_float(target)}
