"""The lip-sync data contract (ppgan.data.contract): one test per function, and one that the
dataset, the predictor and the LSE scorer build identical arrays for the same frame and audio."""

import os

import cv2
import numpy as np
import paddle
import pytest

from ppgan.data import contract
from ppgan.utils.audio import load_audio, mel_index, melspectrogram
from ppgan.utils.errors import ConfigError


# ------------------------------------------------------------------------------ face size

@pytest.mark.parametrize("size", [96, 192, 288, 48, 2])
def test_check_face_size_accepts_positive_even_sizes(size):
    assert contract.check_face_size(np.int64(size)) == size


@pytest.mark.parametrize("size", [0, -96, 97, 96.0, "96", True, None])
def test_check_face_size_names_the_key(size):
    with pytest.raises(ConfigError, match="dataset.img_size"):
        contract.check_face_size(size, "dataset.img_size")


def test_face_size_factors_bring_sizes_down_to_96():
    assert contract.face_size_factors(96) == ()
    assert contract.face_size_factors(192) == (2,)
    assert contract.face_size_factors(288) == (3,)
    assert contract.face_size_factors(384) == (2, 2)
    assert contract.face_size_factors(576) == (2, 3)
    for size in (48, 100, 480, 98, 97):  # 480 = 96 * 5
        with pytest.raises(ConfigError, match="model.img_size"):
            contract.face_size_factors(size, "model.img_size")


# ------------------------------------------------------------------------------ resampling

def test_resize_face_averages_areas_when_shrinking_and_interpolates_when_growing():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    assert contract.resize_face(image, 60, 40) is image
    np.testing.assert_array_equal(contract.resize_face(image, 30, 20),
                                  cv2.resize(image, (30, 20), interpolation=cv2.INTER_AREA))
    np.testing.assert_array_equal(contract.resize_face(image, 120, 80),
                                  cv2.resize(image, (120, 80), interpolation=cv2.INTER_LINEAR))
    # One side growing is enough for bilinear: area "enlarging" would replicate pixels.
    np.testing.assert_array_equal(contract.resize_face(image, 30, 50),
                                  cv2.resize(image, (30, 50), interpolation=cv2.INTER_LINEAR))
    floats = contract.resize_face(image.astype(np.float32), 30, 20)
    assert floats.dtype == np.float32 and floats.shape == (20, 30, 3)


def test_crop_face_cuts_the_box_and_resizes_it_to_the_face_size():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    np.testing.assert_array_equal(contract.crop_face(frame, [10, 20, 58, 68], 48), frame[20:68, 10:58])
    crop = contract.crop_face(frame, np.array([10, 20, 106, 116]), 48)
    np.testing.assert_array_equal(crop, cv2.resize(frame[20:116, 10:106], (48, 48),
                                                   interpolation=cv2.INTER_AREA))


def test_to_unit_float_scales_into_a_new_or_given_array():
    pixels = np.array([[0, 51, 255]], np.uint8)
    np.testing.assert_allclose(contract.to_unit_float(pixels), [[0.0, 0.2, 1.0]], atol=1e-7)
    out = np.zeros((3, 1), np.float32)
    assert contract.to_unit_float(pixels.T, out=out) is out and out[2, 0] == 1.0
    strided = contract.to_unit_float(np.zeros((4, 5, 3), np.uint8).transpose(2, 0, 1))
    assert strided.flags.c_contiguous and strided.dtype == np.float32


# ------------------------------------------------------------------------------ lower half

def test_upper_and_lower_half_split_rows_at_half_height():
    faces = np.arange(2 * 3 * 6 * 4).reshape(2, 3, 6, 4)
    np.testing.assert_array_equal(contract.upper_half(faces), faces[:, :, :3])
    np.testing.assert_array_equal(contract.lower_half(faces), faces[:, :, 3:])
    tensor = paddle.to_tensor(faces.astype("float32"))
    np.testing.assert_array_equal(contract.lower_half(tensor).numpy(), faces[:, :, 3:])


def test_mask_lower_half_zeroes_the_mouth_in_place():
    faces = np.ones((2, 3, 4, 4), np.float32)
    assert contract.mask_lower_half(faces) is faces
    assert faces[:, :, :2].min() == 1.0 and faces[:, :, 2:].max() == 0.0


@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (2, 3, 5, 8, 8)])
def test_generator_faces_stack_masked_target_and_reference(shape):
    rng = np.random.default_rng(2)
    target = rng.integers(0, 256, shape, dtype=np.uint8)
    reference = rng.integers(0, 256, shape, dtype=np.uint8)
    faces = contract.generator_faces(target, reference)
    assert faces.shape == (2, 6) + shape[2:] and faces.dtype == np.float32
    np.testing.assert_allclose(faces[:, :3, ..., :4, :], target[..., :4, :] / 255.0, atol=1e-7)
    assert faces[:, :3, ..., 4:, :].max() == 0.0
    np.testing.assert_allclose(faces[:, 3:], reference / 255.0, atol=1e-7)
    out = np.full_like(faces, 7.0)
    assert contract.generator_faces(target, reference, out=out) is out
    np.testing.assert_array_equal(out, faces)
    with pytest.raises(ValueError):
        contract.generator_faces(target, reference[:1])


def test_expert_face_shape():
    assert contract.expert_face_shape(96) == (15, 48, 96)
    assert contract.expert_face_shape(192, steps=3) == (9, 96, 192)


def test_lower_half_stack_orders_frames_on_channels_for_numpy_and_paddle():
    faces = np.arange(2 * 3 * 5 * 4 * 2, dtype=np.float32).reshape(2, 3, 5, 4, 2)
    stacked = contract.lower_half_stack(faces)
    assert stacked.shape == (2, 15, 2, 2)
    # channel 3t + c is colour c of frame t, lower rows 2..3
    np.testing.assert_array_equal(stacked[1, 3 * 4 + 2], faces[1, 2, 4, 2:])
    np.testing.assert_array_equal(contract.lower_half_stack(paddle.to_tensor(faces)).numpy(), stacked)
    assert contract.lower_half_stack(faces.astype(np.uint8)).dtype == np.uint8


# ------------------------------------------------------------------------------ mel windows

def test_mel_index_takes_scalars_and_arrays_alike():
    frames = np.array([-1, 0, 1, 2, 5, 25, 1001])
    expected = [int(80 * int(f) / 25) for f in frames]
    assert [mel_index(int(f), 25) for f in frames] == expected
    np.testing.assert_array_equal(mel_index(frames, 25), expected)
    assert mel_index(3, 30) == 8 and mel_index(np.array([3]), 29.97)[0] == int(80 * 3 / 29.97)


def test_mel_window_fits_inside_the_mel_only():
    # frame 7 starts at 22 (22 + 16 = 38 <= 40), frame 8 at 25 (41 > 40), frame -1 at -3
    np.testing.assert_array_equal(contract.mel_window_fits(np.array([-1, 0, 7, 8]), 25, 40),
                                  [False, True, True, False])
    assert contract.mel_window_fits(8, 25, 40, offset=-1)
    assert not contract.mel_window_fits(0, 25, 40, offset=-1)


def test_pad_mel_pads_short_mels_with_silence():
    mel = np.zeros((80, 5), np.float32)
    padded = contract.pad_mel(mel)
    assert padded.shape == (80, 16) and (padded[:, 5:] == -4.0).all() and (padded[:, :5] == 0).all()
    long = np.zeros((80, 20), np.float32)
    assert contract.pad_mel(long) is long


def test_mel_window_follows_the_frame_and_offset_and_clamps_at_both_ends():
    mel = np.arange(80 * 50, dtype=np.float32).reshape(80, 50)
    np.testing.assert_array_equal(contract.mel_window(mel, 2, 25.0), mel[:, 6:22])  # int(80*2/25) = 6
    np.testing.assert_array_equal(contract.mel_window(mel, 3, 25.0, offset=-1), mel[:, 6:22])
    np.testing.assert_array_equal(contract.mel_window(mel, 40, 25.0), mel[:, 34:50])  # past the end
    np.testing.assert_array_equal(contract.mel_window(mel, 0, 25.0, offset=-1), mel[:, 0:16])
    short = contract.mel_window(mel[:, :3], 5, 25.0)
    assert short.shape == (80, 16) and (short[:, 3:] == -4.0).all()


def test_mel_windows_stack_one_window_per_frame():
    mel = np.random.default_rng(3).normal(size=(80, 60)).astype(np.float32)
    frames = np.array([0, 4, 9, 17])
    windows = contract.mel_windows(mel, frames, 25.0, offset=-1)
    assert windows.shape == (4, 80, 16) and windows.dtype == np.float32
    for window, frame in zip(windows, frames):
        np.testing.assert_array_equal(window, contract.mel_window(mel, frame, 25.0, offset=-1))


# ------------------------------------------------------------------------------ end to end

class _Recorder:
    """A generator that records its inputs and returns the reference face unchanged."""

    img_size = 96

    def __init__(self):
        self.mels, self.faces = [], []

    def __call__(self, mels, faces):
        self.mels.append(mels.copy())
        self.faces.append(faces.copy())
        return faces[:, 3:]


def test_dataset_predictor_and_scorer_build_the_same_arrays(synthetic_corpus, tmp_path):
    """For one frame and its audio: the training sample, the predictor's generator input and the
    LSE scorer's input are identical arrays (faces, lower-half stacks and mel windows)."""
    from ppgan.apps.evaluate import load_faces
    from ppgan.apps.wav2lip_predictor import Wav2LipPredictor
    from ppgan.datasets.lrs2 import SyncNetDataset, Wav2LipDataset
    from ppgan.metrics.lse import ExpertScorer
    from ppgan.models.discriminators.syncnet import SyncNetColor

    offset, fps, steps = contract.TRAIN_MEL_FRAME_OFFSET, 25.0, contract.SYNC_T
    generator_set = Wav2LipDataset(str(synthetic_corpus), "train", mel_frame_offset=offset,
                                   is_train=False)
    expert_set = SyncNetDataset(str(synthetic_corpus), "train", is_train=False)
    # A window both datasets have, drawn as a positive (in-sync) sample by the expert's set.
    expert_windows = {expert_set.window(i): i for i in range(0, len(expert_set), 2)}
    index = next(i for i in range(len(generator_set)) if generator_set.window(i) in expert_windows)
    clip, start = generator_set.window(index)
    sample = generator_set[index]
    expert_sample = expert_set[expert_windows[(clip, start)]]
    assert expert_sample["label"][0] == 1.0
    clip_dir = generator_set.clip_dirs[clip]

    # The predictor, on frame `start` as a still image and the clip's audio, with a box that is
    # the whole crop (so its crop is the stored frame itself).
    recorder = _Recorder()
    predictor = Wav2LipPredictor(generator=recorder, box=(0, 96, 0, 96), mel_frame_offset=offset,
                                 wav2lip_batch_size=64, progress=False)
    predictor.run(os.path.join(clip_dir, f"{start}.jpg"), os.path.join(clip_dir, "audio.wav"),
                  tmp_path / "out.mp4")
    mels, faces = np.concatenate(recorder.mels), np.concatenate(recorder.faces)
    np.testing.assert_array_equal(faces[start, :3], sample["x"][:3, 0])  # masked target
    np.testing.assert_array_equal(faces[start, 3:], sample["y"][:, 0])   # the unmasked face
    np.testing.assert_array_equal(mels[start:start + steps], sample["indiv_mels"])

    # The LSE scorer reading the same clip folder.
    scorer = ExpertScorer(SyncNetColor(width_mult=0.0625), engine="dynamic")
    crops, wav, clip_fps = load_faces(clip_dir, scorer)
    assert clip_fps == fps
    np.testing.assert_array_equal(scorer.face_windows(crops, start, start + 1)[0], expert_sample["face"])
    mel = melspectrogram(load_audio(os.path.join(clip_dir, "audio.wav")))
    np.testing.assert_array_equal(scorer.audio_windows(mel, fps, start, start + 1)[0], expert_sample["mel"])
    np.testing.assert_array_equal(sample["mel"], expert_sample["mel"])
    # And the training model's expert input built from the generator sample's target frames.
    stacked = contract.lower_half_stack(paddle.to_tensor(sample["y"][None])).numpy()[0]
    np.testing.assert_array_equal(stacked, expert_sample["face"])
