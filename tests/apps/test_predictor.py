"""Wav2LipPredictor through the Python API: stills, videos, ping-pong, fps, policies, engines."""

import numpy as np
import pytest

from ppgan.apps import Wav2LipPredictor
from ppgan.apps.face_paste import feather_mask, paste_face
from ppgan.apps.frame_io import FrameSource, prepare_frame
from ppgan.data.contract import pingpong_index
from ppgan.apps.generator_loader import generator_width, load_generator
from ppgan.apps.wav2lip_predictor import generator_inputs
from ppgan.utils.audio import load_audio, save_wav
from ppgan.utils.errors import ConfigError, WeightsError
from ppgan.utils.video import probe_video, read_video, write_video

TINY_WIDTH = 0.0625


# ------------------------------------------------------------------------------ media helpers

def make_speech(path, seconds, seed=0):
    """Formant-synthesised speech (the synthetic corpus' voice) written as a 16 kHz wav."""
    from ppgan.corpus_tools.synthetic_faces import synthesize_clip
    from ppgan.corpus_tools.synthetic_voice import random_speaker

    rng = np.random.default_rng(seed)
    num_frames = int(np.ceil(seconds * 25))
    _, wav, _ = synthesize_clip(rng, random_speaker(rng), num_frames, img_size=32)
    save_wav(str(path), wav[:int(round(seconds * 16000))])
    return str(path)


def astronaut(size=None):
    """skimage's bundled photograph as BGR, optionally resized to size x size."""
    import cv2
    from skimage import data

    image = np.ascontiguousarray(data.astronaut()[:, :, ::-1])
    return image if size is None else cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def write_image(path, image):
    import cv2
    assert cv2.imwrite(str(path), image)
    return str(path)


def make_tiny_weights(path, seed=0):
    """A random tiny-width generator saved as a flat state dict (like wav2lip_hq.pdparams)."""
    import paddle
    from ppgan.models.generators.wav2lip import Wav2Lip
    from ppgan.utils.weights import save_weights_file

    paddle.seed(seed)
    save_weights_file(Wav2Lip(width_mult=TINY_WIDTH).state_dict(), str(path))
    return str(path)


def index_video(path, num_frames, fps=25.0, size=64):
    """Frame i is a flat grey of value 20 + 20 * (i % 11): its index can be read back."""
    frames = [np.full((size, size, 3), 20 + 20 * (i % 11), np.uint8) for i in range(num_frames)]
    write_video(str(path), frames, fps)
    return str(path)


def reference_generator(mels, faces):
    """Returns the unmasked input face, so pasted frames equal the input (up to resampling)."""
    return faces[:, 3:]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("predictor_media")
    return {"folder": folder,
            "weights": make_tiny_weights(folder / "tiny.pdparams"),
            "speech_1s": make_speech(folder / "speech_1s.wav", 1.0),
            "photo": write_image(folder / "astronaut.png", astronaut(256))}


# ------------------------------------------------------------------------------ end to end

def test_still_photo_with_speech_changes_only_the_lower_face(media, tmp_path):
    out = tmp_path / "photo.mp4"
    predictor = Wav2LipPredictor(checkpoint_path=media["weights"], engine="dynamic", progress=False)
    result = predictor.run(media["photo"], media["speech_1s"], out)
    assert (result.frames, result.fps, result.source_frames) == (25, 25.0, 1)
    assert (result.faces_detected, result.frames_kept) == (1, 0)
    assert set(result.seconds) == {"decode", "detect", "generate", "blend", "enhance", "encode"}
    info = probe_video(out)
    assert info.num_frames == 25 and (info.width, info.height) == (256, 256) and info.has_audio
    assert abs(len(load_audio(str(out))) / 16000 - 1.0) < 1 / 25
    import av
    with av.open(str(out)) as container:
        codecs = (container.streams.video[0].codec_context.name,
                  container.streams.audio[0].codec_context.name)
    assert codecs == ("h264", "aac")
    frames = read_video(str(out)).astype(np.float32)
    source = astronaut(256).astype(np.float32)
    # Haar finds the face near x 86-139, y 31-84 (+10 px bottom pad): the feathered paste only
    # touches its lower part, so the forehead, eyes and the background are unchanged.
    top_error = np.abs(frames[:, :55] - source[:55]).mean()
    mouth_change = np.abs(frames[:, 68:90, 100:125] - source[68:90, 100:125]).mean()
    assert top_error < 4.0 and mouth_change > 15.0
    assert not list(tmp_path.glob(".*partial*"))


def test_synthetic_video_with_shorter_audio_is_truncated(media, tmp_path):
    from ppgan.corpus_tools.synthetic_faces import synthesize_clip
    from ppgan.corpus_tools.synthetic_voice import random_speaker

    rng = np.random.default_rng(2)  # a speaker whose drawn face Haar detects
    frames, _, _ = synthesize_clip(rng, random_speaker(rng), 40, img_size=160)
    video = tmp_path / "synthetic.mp4"
    write_video(str(video), frames, 25)
    predictor = Wav2LipPredictor(checkpoint_path=media["weights"], engine="dynamic", progress=False,
                                 wav2lip_batch_size=8)
    result = predictor.run(video, media["speech_1s"], tmp_path / "out.mp4")
    assert (result.frames, result.source_frames) == (25, 25)
    assert result.faces_detected >= 20 and result.frames_kept == 0
    assert result.faces_detected + result.faces_interpolated == 25
    assert probe_video(tmp_path / "out.mp4").num_frames == 25


def test_longer_audio_plays_the_video_forward_and_back(media, tmp_path):
    video = index_video(tmp_path / "ten.mp4", 10)
    predictor = Wav2LipPredictor(generator=reference_generator, box=(8, 56, 8, 56), progress=False)
    result = predictor.run(video, media["speech_1s"], tmp_path / "out.mp4")
    assert (result.frames, result.source_frames) == (25, 10)
    shown = [int(round((f[:, :, 0].mean() - 20) / 20)) for f in read_video(str(tmp_path / "out.mp4"))]
    assert shown == [pingpong_index(k, 10) for k in range(25)]
    assert shown[:12] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 8, 7]


def test_child_process_encoder_writes_the_same_video(media, tmp_path):
    video = index_video(tmp_path / "ten.mp4", 10)
    outputs = {}
    for encoder in ("inline", "process"):
        predictor = Wav2LipPredictor(generator=reference_generator, box=(8, 56, 8, 56), progress=False,
                                     encoder=encoder)
        result = predictor.run(video, media["speech_1s"], tmp_path / f"{encoder}.mp4")
        assert result.frames == 25
        outputs[encoder] = read_video(str(tmp_path / f"{encoder}.mp4"))
    assert outputs["process"].shape == outputs["inline"].shape == (25, 64, 64, 3)
    assert np.abs(outputs["process"].astype(int) - outputs["inline"]).max() <= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inline.mp4", "process.mp4", "ten.mp4"]
    with pytest.raises(ConfigError, match="encoder"):
        Wav2LipPredictor(generator=reference_generator, encoder="thread")


def test_29_97_fps_video_keeps_its_rate_and_matches_the_audio_length(tmp_path):
    video = index_video(tmp_path / "ntsc.mp4", 30, fps=30000 / 1001)
    audio = make_speech(tmp_path / "speech.wav", 0.8)
    predictor = Wav2LipPredictor(generator=reference_generator, box=(8, 56, 8, 56), progress=False)
    result = predictor.run(video, audio, tmp_path / "out.mp4")
    assert result.fps == pytest.approx(29.97, abs=0.01)
    assert result.frames == round(0.8 * 30000 / 1001) == 24
    info = probe_video(tmp_path / "out.mp4")
    assert info.fps == pytest.approx(29.97, abs=0.01) and info.num_frames == 24
    assert abs(info.duration - 0.8) <= 1 / 29.97


def test_static_flag_uses_the_first_frame_only(media, tmp_path):
    video = index_video(tmp_path / "ten.mp4", 10)
    predictor = Wav2LipPredictor(generator=reference_generator, box=(8, 56, 8, 56), static=True,
                                 progress=False)
    result = predictor.run(video, media["speech_1s"], tmp_path / "out.mp4")
    assert (result.frames, result.source_frames) == (25, 1)
    first = read_video(video)[0].astype(float)  # what the predictor decoded
    assert np.abs(read_video(str(tmp_path / "out.mp4")) - first).max() <= 6  # re-encoding only


def test_faceless_frames_follow_the_no_face_policy(media, tmp_path):
    face, blank = astronaut(256), np.full((256, 256, 3), 128, np.uint8)
    frames = [face] * 6 + [blank] * 2 + [face] * 6
    video = tmp_path / "gap.mp4"
    write_video(str(video), frames, 25)
    audio = make_speech(tmp_path / "speech.wav", len(frames) / 25)
    results = {}
    for policy in ("interpolate", "keep"):
        predictor = Wav2LipPredictor(generator=reference_generator, no_face=policy, detect_every=1,
                                     progress=False)
        results[policy] = predictor.run(video, audio, tmp_path / f"{policy}.mp4")
    assert (results["interpolate"].faces_detected, results["interpolate"].faces_interpolated,
            results["interpolate"].frames_kept) == (12, 2, 0)
    assert (results["keep"].faces_interpolated, results["keep"].frames_kept) == (0, 2)
    kept = read_video(str(tmp_path / "keep.mp4"))[6:8].astype(float)
    decoded = read_video(str(video))[6:8].astype(float)
    assert np.abs(kept - decoded).max() <= 6  # faceless frames pass through (re-encoded only)


def test_generator_batch_halves_on_out_of_memory(media, tmp_path):
    sizes = []

    def picky(mels, faces):
        sizes.append(len(faces))
        if len(faces) > 4:
            raise MemoryError("out of memory")
        return faces[:, 3:]

    predictor = Wav2LipPredictor(generator=picky, box=(60, 200, 60, 200), wav2lip_batch_size=16,
                                 progress=False)
    result = predictor.run(media["photo"], media["speech_1s"], tmp_path / "out.mp4")
    assert result.frames == 25 and predictor.batch_size == 4
    assert sizes[:3] == [16, 8, 4] and max(sizes[3:]) == 4


def test_predictor_runs_the_exported_program_fast_path(media, tmp_path):
    from ppgan.inference.generator import export_generator

    predictor = Wav2LipPredictor(checkpoint_path=media["weights"], box=(60, 200, 60, 200),
                                 engine="static", progress=False)  # export + oneDNN, CPU
    result = predictor.run(media["photo"], media["speech_1s"], tmp_path / "out.mp4")
    assert result.frames == 25
    dynamic = load_generator(media["weights"], engine="dynamic")
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (3, 96, 96, 3), dtype=np.uint8)
    mels, faces = generator_inputs(crops, rng.uniform(-4, 4, (3, 80, 16)).astype(np.float32))
    np.testing.assert_allclose(predictor.generator(mels, faces), dynamic(mels, faces), atol=1e-4)
    assert predictor.generator.engine == "static"
    # A photo runs the still-face network (face encoder once), also exported, with the same faces.
    still = predictor.still_generator(crops[0])
    assert still is not None and still.engine == "static"
    np.testing.assert_allclose(still(mels[:1]), dynamic(mels[:1], faces[:1]), atol=1e-4)
    # An exported program given as the checkpoint is used directly.
    export_generator(dynamic.net, str(tmp_path / "exported"))
    from_program = load_generator(str(tmp_path / "exported.json"))
    np.testing.assert_allclose(from_program(mels, faces), dynamic(mels, faces), atol=1e-4)


# ------------------------------------------------------------------------------ checkpoints

def test_checkpoints_without_download_and_of_the_wrong_architecture(media, tmp_path):
    import paddle
    from ppgan.models.discriminators.syncnet import SyncNetColor
    from ppgan.utils.weights import save_weights_file

    with pytest.raises(ConfigError, match="checkpoint_path"):
        Wav2LipPredictor(checkpoint_path=None)
    paddle.seed(0)
    save_weights_file(SyncNetColor().state_dict(), str(tmp_path / "syncnet.pdparams"))
    # One line naming the file, what it holds and what was expected.
    with pytest.raises(WeightsError, match=r"syncnet.pdparams holds a lip-sync expert .* not a Wav2Lip generator"):
        Wav2LipPredictor(checkpoint_path=str(tmp_path / "syncnet.pdparams"), engine="dynamic")


def test_training_checkpoint_builds_the_generator_from_its_config(media, tmp_path):
    from ppgan.utils.weights import read_weights_file, save_weights_file

    state = read_weights_file(media["weights"])
    assert generator_width(state) == TINY_WIDTH
    checkpoint = {"format": "ppgan-wav2lip-checkpoint", "nets": {"netG": state},
                  "config": {"model": {"generator": {"name": "Wav2Lip", "width_mult": TINY_WIDTH}}}}
    save_weights_file(checkpoint, str(tmp_path / "iter_1.pdparams"))
    generator = load_generator(str(tmp_path / "iter_1.pdparams"), engine="dynamic")
    assert generator.net.face_encoder_blocks[0][0].conv_block[0].weight.shape[0] == 4


# ------------------------------------------------------------------------------ building blocks

def test_frame_source_reads_backward_in_blocks_exactly(tmp_path):
    video = index_video(tmp_path / "v.mp4", 30)
    forward = list(FrameSource(video, 25.0, lambda f: f).forward())
    source = FrameSource(video, 25.0, lambda f: f, block_bytes=4 * forward[0].nbytes)
    list(source.forward(limit=1))  # learns the frame size
    backward = list(source.backward(28, 1))
    assert len(backward) == 28
    for got, expected in zip(backward, forward[28:0:-1]):
        np.testing.assert_array_equal(got, expected)


def test_pingpong_order():
    assert [pingpong_index(k, 4) for k in range(10)] == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert [pingpong_index(k, 1) for k in range(3)] == [0, 0, 0]


def test_generator_inputs_mask_the_lower_half_and_append_the_reference():
    crops = np.full((2, 96, 96, 3), 255, np.uint8)
    mels, faces = generator_inputs(crops, np.zeros((2, 80, 16), np.float32))
    assert mels.shape == (2, 1, 80, 16) and faces.shape == (2, 6, 96, 96)
    assert faces[:, :3, :48].min() == 1.0 and faces[:, :3, 48:].max() == 0.0
    assert faces[:, 3:].min() == 1.0


def test_paste_hard_replaces_the_box_and_feather_keeps_its_edges():
    frame = np.zeros((100, 100, 3), np.uint8)
    face = np.full((96, 96, 3), 200.0, np.float32)
    hard = paste_face(frame, [10, 20, 60, 80], face, "hard")
    assert (hard[20:80, 10:60] == 200).all() and hard.sum() == 200 * 50 * 60 * 3
    soft = paste_face(frame, [10, 20, 60, 80], face, "feather")
    assert soft[20:40, 10:60].max() <= 2          # upper face untouched
    assert soft[20:80, 10].max() <= 2 and soft[79, 10:60].max() <= 20   # sides and bottom fade out
    assert soft[65, 35].min() >= 198              # lower-face centre fully generated
    assert frame.max() == 0                       # the input frame is not modified
    mask = feather_mask(60, 50)
    assert mask.shape == (60, 50, 1) and 0.0 <= mask.min() and mask.max() <= 1.0


def test_prepare_frame_resizes_rotates_then_crops():
    frame = np.zeros((40, 80, 3), np.uint8)
    frame[:, :40] = 255  # left half white
    top = prepare_frame(frame, resize_factor=2, rotate=True, crop=(0, 20, 0, -1))
    bottom = prepare_frame(frame, resize_factor=2, rotate=True, crop=(20, -1, 0, -1))
    assert top.shape == bottom.shape == (20, 20, 3)   # 20x40 -> turned 40x20 -> halves
    assert top.min() == 255 and bottom.max() == 0     # a clockwise turn puts the left side on top
    with pytest.raises(ConfigError, match="crop"):
        prepare_frame(frame, crop=(30, 20, 0, -1))


# ------------------------------------------------------------------------------ rotation metadata

def sideways_video(path, image, num_frames, display_rotation=None):
    """``image`` stored turned 90 degrees counter-clockwise, as a phone held upright records it;
    with ``display_rotation`` (counter-clockwise degrees, -90 for that phone) the stream carries
    the display matrix that tells players to turn it back."""
    import av
    import cv2

    stored = cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.height, stream.width = stored.shape[:2]
        stream.pix_fmt = "yuv420p"
        if display_rotation is not None:
            stream.set_display_rotation(display_rotation)
        for _ in range(num_frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(stored), format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


def test_phone_rotation_metadata_is_applied_and_rotate_overrides(media, tmp_path):
    """Issue 14, item 8: a video whose display matrix says "turn 90 degrees" is turned upright
    before face detection; without the metadata the error names --rotate, which still works."""
    from ppgan.utils.errors import MediaError
    from ppgan.utils.video import probe_video, video_rotation

    photo = astronaut(128)
    tagged = sideways_video(tmp_path / "phone.mp4", photo, 3, display_rotation=-90)
    assert video_rotation(tagged) == 90
    predictor = Wav2LipPredictor(generator=reference_generator, progress=False, nosmooth=True)
    result = predictor.run(tagged, media["speech_1s"], str(tmp_path / "upright.mp4"))
    assert result.faces_detected > 0
    info = probe_video(tmp_path / "upright.mp4")
    assert (info.width, info.height) == (128, 128)
    first = read_video(str(tmp_path / "upright.mp4"), max_frames=1)[0]
    assert np.abs(first.astype(int) - photo).mean() < 12  # upright: close to the photo itself

    plain = sideways_video(tmp_path / "plain.mp4", photo, 3)
    assert video_rotation(plain) == 0
    with pytest.raises(MediaError, match="--rotate"):
        predictor.run(plain, media["speech_1s"], str(tmp_path / "sideways.mp4"))
    rotated = Wav2LipPredictor(generator=reference_generator, progress=False, nosmooth=True,
                               rotate=True)
    assert rotated.run(plain, media["speech_1s"], str(tmp_path / "override.mp4")).faces_detected > 0
