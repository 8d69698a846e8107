"""BackgroundVideoWriter: the same file as VideoWriter, errors as one MediaError, nothing left
behind on failure."""

import numpy as np
import pytest

from ppgan.utils.audio import load_audio, to_pcm16
from ppgan.utils.background_writer import BackgroundVideoWriter
from ppgan.utils.errors import MediaError
from ppgan.utils.video import read_video, write_video


def _frames(count):
    return [np.full((48, 64, 3), 10 * i, np.uint8) for i in range(count)]


def test_child_process_writes_what_videowriter_writes(tmp_path):
    audio = np.random.default_rng(0).uniform(-1, 1, 16000).astype(np.float32)
    with BackgroundVideoWriter(tmp_path / "bg.mp4", 25, live_audio=True, audio_codec="flac") as writer:
        for i, frame in enumerate(_frames(25)):
            writer.write(frame)
            writer.add_audio(audio[640 * i:640 * (i + 1)])
    assert writer.frames_written == 25 and writer.encode_seconds > 0
    write_video(str(tmp_path / "fg.mp4"), _frames(25), 25, audio=audio, audio_codec="flac")
    np.testing.assert_array_equal(read_video(str(tmp_path / "bg.mp4")), read_video(str(tmp_path / "fg.mp4")))
    assert np.array_equal(to_pcm16(load_audio(str(tmp_path / "bg.mp4"))), to_pcm16(audio))


def test_child_failures_surface_as_one_media_error_and_leave_nothing(tmp_path):
    writer = BackgroundVideoWriter(tmp_path / "mixed.mp4", 25)
    writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.write(np.zeros((32, 32, 3), np.uint8))  # another size: the child's VideoWriter refuses it
    with pytest.raises(MediaError, match="video is"):
        writer.close()
    with pytest.raises(MediaError, match="no frames"):
        BackgroundVideoWriter(tmp_path / "empty.mp4", 25).close()
    with pytest.raises(RuntimeError):
        with BackgroundVideoWriter(tmp_path / "aborted.mp4", 25) as aborted:
            aborted.write(np.zeros((48, 64, 3), np.uint8))
            raise RuntimeError("caller failed")
    assert list(tmp_path.iterdir()) == []
