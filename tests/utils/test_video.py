"""ppgan.utils.video: still images, probing, lazy decoding with frame-rate conversion, atomic writing."""

import os

import cv2
import numpy as np
import pytest

from ppgan.utils.audio import load_audio, save_wav, to_pcm16
from ppgan.utils.errors import ConfigError, MediaError
from ppgan.utils.video import (VideoWriter, is_image_file, iter_frames, probe_video, read_image,
                               read_video, write_video)


def _indexed_frames(count, height=48, width=64):
    """Frames that are easy to tell apart after lossy coding: a bright bar moving down the frame."""
    frames = []
    for i in range(count):
        frame = np.full((height, width, 3), (40, 90, 140), np.uint8)
        row = (i * 3) % (height - 4)
        frame[row:row + 4] = 255
        frames.append(frame)
    return frames


def _tone(seconds, freq=440.0):
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


# ----------------------------------------------------------------------------- images
def test_is_image_file():
    assert is_image_file("a/b.JPG") and is_image_file("x.png") and is_image_file("x.jpeg")
    assert not is_image_file("clip.mp4") and not is_image_file("noext")


def test_read_image_colour_and_grey(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "c.png"), image)
    assert np.array_equal(read_image(str(tmp_path / "c.png")), image)
    cv2.imwrite(str(tmp_path / "g.png"), image[:, :, 0])
    grey = read_image(str(tmp_path / "g.png"))
    assert grey.shape == (20, 30, 3) and np.array_equal(grey[:, :, 1], image[:, :, 0])


def test_read_image_errors(tmp_path):
    with pytest.raises(MediaError, match="not found"):
        read_image(str(tmp_path / "none.jpg"))
    with pytest.raises(MediaError, match="not a supported image"):
        read_image(str(tmp_path / "clip.mp4"))
    (tmp_path / "bad.jpg").write_bytes(b"definitely not a jpeg")
    with pytest.raises(MediaError, match="cannot decode"):
        read_image(str(tmp_path / "bad.jpg"))


# ----------------------------------------------------------------------------- write / probe / read
def test_round_trip_frames_and_probe(tmp_path):
    frames = _indexed_frames(30)
    path = tmp_path / "v.mp4"
    assert write_video(str(path), frames, 25) == 30
    info = probe_video(str(path))
    assert (info.fps, info.num_frames, info.width, info.height, info.has_audio) == (25.0, 30, 64, 48, False)
    assert info.duration == pytest.approx(1.2, abs=0.05)
    decoded = read_video(str(path))
    assert decoded.shape == (30, 48, 64, 3) and decoded.dtype == np.uint8
    source = np.stack(frames).astype(np.float32)
    distance = np.abs(decoded.astype(np.float32)[:, None] - source[None]).mean(axis=(2, 3, 4))
    assert np.diag(distance).max() < 6  # lossy H.264 (crf 20, chroma subsampled) stays close
    assert np.array_equal(distance.argmin(axis=1), np.arange(30))  # and every frame is the right one
    assert _listing(tmp_path) == ["v.mp4"]


def test_iter_frames_is_lazy_and_reads_a_prefix(tmp_path):
    path = tmp_path / "v.mp4"
    write_video(str(path), _indexed_frames(20), 25)
    frames = iter_frames(str(path))
    assert not isinstance(frames, (list, tuple, np.ndarray))
    first = next(frames)
    assert first.shape == (48, 64, 3)
    frames.close()
    assert read_video(str(path), max_frames=5).shape[0] == 5


def test_odd_frame_size_is_padded_by_edge_replication(tmp_path):
    frames = [np.tile(np.linspace(0, 255, 33, dtype=np.uint8)[None, :, None], (21, 1, 3))] * 4
    path = tmp_path / "odd.mp4"
    write_video(str(path), frames, 25)
    info = probe_video(str(path))
    assert (info.width, info.height) == (34, 22)
    decoded = read_video(str(path))[0].astype(int)
    assert np.abs(decoded[:21, :33] - frames[0]).mean() < 4
    # The added column repeats the last one (the brightest), not black.
    assert decoded[:, 33].mean() > 200


@pytest.mark.parametrize("source_fps,target_fps", [(30, 25), (25, 50), (25, 10)])
def test_fps_conversion_picks_frames_by_presentation_time(tmp_path, source_fps, target_fps):
    path = tmp_path / "v.mp4"
    write_video(str(path), _indexed_frames(30), source_fps)
    native = read_video(str(path))
    converted = read_video(str(path), fps=target_fps)
    # Output instant k / target shows the source frame on screen then: floor(k * source / target).
    expected_count = int(np.ceil(30 * target_fps / source_fps - 1e-9))
    assert len(converted) == expected_count
    for k, frame in enumerate(converted):
        source_index = int(np.floor(k * source_fps / target_fps + 1e-9))
        assert np.array_equal(frame, native[source_index]), (k, source_index)


def test_same_fps_means_no_conversion(tmp_path):
    path = tmp_path / "v.mp4"
    write_video(str(path), _indexed_frames(12), 25)
    assert np.array_equal(read_video(str(path), fps=25.0), read_video(str(path)))
    with pytest.raises(ConfigError):
        iter_frames(str(path), fps=0)


def test_ntsc_rate_survives(tmp_path):
    path = tmp_path / "ntsc.mp4"
    write_video(str(path), _indexed_frames(10), 30000 / 1001)
    assert probe_video(str(path)).fps == pytest.approx(29.97, abs=0.01)


# ----------------------------------------------------------------------------- audio muxing
def test_lossless_audio_is_bit_exact(tmp_path):
    """FLAC in mp4 gives back exactly the samples a wav written by save_wav would."""
    audio = np.random.default_rng(1).uniform(-1, 1, 16000 * 2 // 25 * 25).astype(np.float32)
    save_wav(str(tmp_path / "ref.wav"), audio)
    path = tmp_path / "v.mp4"
    write_video(str(path), _indexed_frames(50), 25, audio=audio, audio_codec="flac")
    assert probe_video(str(path)).has_audio
    decoded = load_audio(str(path))
    assert np.array_equal(decoded, load_audio(str(tmp_path / "ref.wav")))
    assert np.array_equal(to_pcm16(decoded), to_pcm16(audio))


def test_aac_audio_keeps_length_and_pitch(tmp_path):
    path = tmp_path / "v.mp4"
    write_video(str(path), _indexed_frames(25), 25, audio=_tone(1.0))
    decoded = load_audio(str(path))
    assert abs(len(decoded) - 16000) < 1600
    spectrum = np.abs(np.fft.rfft(decoded[1000:15000]))
    assert np.argmax(spectrum) * 16000 / 14000 == pytest.approx(440, abs=3)


def test_audio_longer_than_video_is_kept_whole(tmp_path):
    path = tmp_path / "v.mp4"
    audio = _tone(2.0)
    write_video(str(path), _indexed_frames(10), 25, audio=audio, audio_codec="flac")
    assert len(load_audio(str(path))) == len(audio)
    assert len(read_video(str(path))) == 10


def test_live_audio_arriving_in_chunks_is_muxed_exactly(tmp_path):
    """Audio added in pieces, before and after the frames it belongs to, ends up bit-exact."""
    audio = np.random.default_rng(2).uniform(-1, 1, 16000 * 2).astype(np.float32)
    frames = _indexed_frames(50)
    path = tmp_path / "live.mp4"
    with VideoWriter(str(path), 25, live_audio=True, audio_codec="flac") as writer:
        done = 0
        for i, frame in enumerate(frames):
            if i % 3 == 0:  # audio runs ahead of the video, then behind it
                writer.add_audio(audio[done:done + 1700])
                done += 1700
            writer.write(frame)
        writer.add_audio(audio[done:])
        assert writer._pending.size < audio.size  # encoded as the video went
    assert np.array_equal(to_pcm16(load_audio(str(path))), to_pcm16(audio))
    with pytest.raises(ConfigError, match="live_audio"):
        VideoWriter(str(tmp_path / "x.mp4"), 25).add_audio(audio)
    with pytest.raises(ConfigError, match="not both"):
        VideoWriter(str(tmp_path / "x.mp4"), 25, audio=audio, live_audio=True)


# ----------------------------------------------------------------------------- atomic writes and errors
def test_exception_while_writing_leaves_nothing(tmp_path):
    path = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(str(path), 25, audio=_tone(1.0)) as writer:
            for frame in _indexed_frames(5):
                writer.write(frame)
            raise RuntimeError("boom")
    assert _listing(tmp_path) == []


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"old result")
    with pytest.raises(ValueError, match="frame 2"):
        write_video(str(path), _indexed_frames(2) + _indexed_frames(1, height=50), 25)
    assert path.read_bytes() == b"old result"
    assert _listing(tmp_path) == ["out.mp4"]


def test_no_frames_is_an_error_and_writes_nothing(tmp_path):
    with pytest.raises(MediaError, match="no frames"):
        write_video(str(tmp_path / "out.mp4"), [], 25)
    assert _listing(tmp_path) == []


def test_writer_rejects_bad_destinations_and_input(tmp_path):
    with pytest.raises(MediaError, match="use one of"):
        VideoWriter(str(tmp_path / "out.gif"), 25)
    with pytest.raises(MediaError, match="does not exist"):
        VideoWriter(str(tmp_path / "missing" / "out.mp4"), 25)
    with pytest.raises(ConfigError):
        VideoWriter(str(tmp_path / "out.mp4"), 0)
    with pytest.raises(MediaError, match="empty"):
        VideoWriter(str(tmp_path / "out.mp4"), 25, audio=np.zeros(0, np.float32))
    with pytest.raises(MediaError, match="unknown audio codec"):
        VideoWriter(str(tmp_path / "out.mp4"), 25, audio=_tone(0.1), audio_codec="nonsense")
    with pytest.raises(ValueError, match="uint8"):
        write_video(str(tmp_path / "out.mp4"), [np.zeros((8, 8, 3), np.float32)], 25)
    assert _listing(tmp_path) == []


def test_probe_and_read_errors(tmp_path):
    with pytest.raises(MediaError, match="not found"):
        probe_video(str(tmp_path / "none.mp4"))
    with pytest.raises(MediaError, match="not found"):
        iter_frames(str(tmp_path / "none.mp4"))  # raised at call time, not at the first frame
    (tmp_path / "junk.mp4").write_bytes(os.urandom(2000))
    with pytest.raises(MediaError, match="junk.mp4"):
        probe_video(str(tmp_path / "junk.mp4"))
    save_wav(str(tmp_path / "sound.wav"), _tone(0.2))
    with pytest.raises(MediaError, match="no video stream"):
        probe_video(str(tmp_path / "sound.wav"))
    with pytest.raises(MediaError, match="no video stream"):
        iter_frames(str(tmp_path / "sound.wav"))


@pytest.mark.parametrize("bgr", [(128, 128, 128), (40, 90, 200), (230, 20, 60)])
def test_flat_colours_survive_a_round_trip(tmp_path, bgr):
    # A biased colour conversion tints every generated video; flat colours must come back within
    # a level or two (H.264 at crf 20 is near-lossless on flat areas).
    path = str(tmp_path / "flat.mp4")
    write_video(path, [np.full((32, 48, 3), bgr, np.uint8)] * 5, fps=25)
    middle = next(iter_frames(path))[16, 24].astype(int)
    assert np.abs(middle - np.array(bgr)).max() <= 2


def test_undecodable_stream_is_a_media_error(tmp_path):
    svg = tmp_path / "face.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>')
    with pytest.raises(MediaError):
        probe_video(str(svg))
