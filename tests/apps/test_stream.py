"""Streaming: the chunked mel equals the whole-file mel, and Wav2LipStream yields the predictor's
frames whatever the chunk sizes, in order, with bounded memory."""

import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from ppgan.apps import Wav2LipPredictor, Wav2LipStream
from ppgan.utils import background_writer
from ppgan.utils.audio import load_audio, mel_index, melspectrogram, num_video_frames, to_pcm16
from ppgan.utils.cli import run_main
from ppgan.utils.errors import MediaError
from ppgan.utils.video import probe_video
from ppgan.utils.mel_stream import MelStream
from tests.apps.test_predictor import astronaut, index_video, make_speech, make_tiny_weights, write_image
from tests import REPO_ROOT, load_tool


def push_randomly(push, wav, rng, largest=3000):
    """Push ``wav`` in chunks of random length (1..largest); returns what ``push`` returned."""
    out, start = [], 0
    while start < wav.size:
        size = int(rng.integers(1, largest + 1))
        out.append(push(wav[start:start + size]))
        start += size
    return out


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stream_media")
    return {"weights": make_tiny_weights(folder / "tiny.pdparams"),
            "speech": make_speech(folder / "speech.wav", 1.3, seed=3),
            "photo": write_image(folder / "astronaut.png", astronaut(256))}


# ------------------------------------------------------------------------------ mel

@pytest.mark.parametrize("length", [1, 399, 401, 3400, 16000 * 2 + 123])
def test_streamed_mel_equals_the_whole_file_mel(length):
    rng = np.random.default_rng(length)
    wav = (0.3 * rng.standard_normal(length)).astype(np.float32)
    stream = MelStream()
    parts = push_randomly(stream.push, wav, rng, largest=1500) + [stream.finish()]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), melspectrogram(wav))


def test_mel_steps_come_out_as_soon_as_they_are_final():
    stream = MelStream()
    assert stream.push(np.zeros(400, np.float32)).shape == (80, 0)   # step 0 needs 401 samples
    assert stream.push(np.zeros(1, np.float32)).shape == (80, 1)
    assert stream.push(np.zeros(198, np.float32)).shape == (80, 0)
    assert stream.push(np.zeros(1, np.float32)).shape == (80, 1)     # step 1 needs 600
    assert stream.finish().shape == (80, 2)                           # 1 + 600 // 200 = 4 in all
    with pytest.raises(MediaError, match="finished"):
        stream.push(np.zeros(10, np.float32))


def test_mel_stream_rejects_bad_chunks():
    stream = MelStream()
    with pytest.raises(MediaError, match="mono"):
        stream.push(np.zeros((2, 100), np.float32))
    with pytest.raises(MediaError, match="NaN"):
        stream.push(np.array([0.0, np.nan], np.float32))
    with pytest.raises(MediaError, match="no audio"):
        MelStream().finish()


# ------------------------------------------------------------------------------ frames

def predictor_frames(predictor, face, audio, out, monkeypatch):
    """Frames ``Wav2LipPredictor.run`` hands to its video writer (before encoding)."""
    captured = []

    class Capture:
        def __init__(self, path, fps, audio=None):
            self.frames_written = 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, frame):
            captured.append(np.array(frame))
            self.frames_written += 1

    monkeypatch.setattr(background_writer, "VideoWriter", Capture)
    monkeypatch.setattr(predictor, "encoder", "inline")  # frames captured in this process
    predictor.run(face, audio, out)
    return captured


@pytest.mark.parametrize("face_kind", ["photo", "video"])
def test_random_chunks_give_the_predictors_frames(media, tmp_path, monkeypatch, face_kind):
    if face_kind == "photo":
        face = media["photo"]
        options = dict(checkpoint_path=media["weights"], engine="dynamic", wav2lip_batch_size=8)
    else:  # 12 frames for 1.3 s of audio: played forward, back and forward again
        face = index_video(tmp_path / "twelve.mp4", 12)
        options = dict(checkpoint_path=media["weights"], engine="dynamic", box=(8, 56, 8, 56),
                       wav2lip_batch_size=8)
    predictor = Wav2LipPredictor(progress=False, **options)
    expected = predictor_frames(predictor, face, media["speech"], tmp_path / "o.mp4", monkeypatch)
    wav = load_audio(media["speech"])
    assert len(expected) == num_video_frames(wav.size, 25.0) == 32
    stream = Wav2LipStream(predictor)
    avatar = stream.prepare(face)
    assert avatar.fps == 25.0 and avatar.source_frames == (1 if face_kind == "photo" else 12)
    for seed in (0, 1):
        stream.reset()
        rng = np.random.default_rng(seed)
        got = [f for part in push_randomly(stream.push, wav, rng, largest=2500) for f in part]
        got += stream.finish()
        assert [f.index for f in got] == list(range(32))
        assert [f.timestamp for f in got] == [i / 25.0 for i in range(32)]
        for frame, reference in zip(got, expected):
            np.testing.assert_array_equal(frame.image, reference)


def test_still_face_cache_matches_the_full_generator(media):
    from ppgan.apps.generator_loader import load_generator
    from ppgan.apps.still_face import StillFaceGenerator, still_face_generator
    from ppgan.apps.wav2lip_predictor import generator_inputs

    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (1, 96, 96, 3), dtype=np.uint8)
    mels = rng.uniform(-4, 4, (5, 80, 16)).astype(np.float32)
    full = load_generator(media["weights"], engine="dynamic")
    expected = full(*generator_inputs(np.repeat(crop, 5, axis=0), mels))
    faces = generator_inputs(crop, mels[:1])[1]
    dynamic = still_face_generator(full, faces)
    assert dynamic.engine == "dynamic"
    np.testing.assert_array_equal(dynamic(mels[:, None]), expected)
    static = StillFaceGenerator(full.net, faces, engine="static", threads=1)
    np.testing.assert_allclose(static(mels[:, None]), expected, atol=1e-4)
    assert still_face_generator(lambda m, f: f[:, 3:], faces) is None  # no network to split


def test_batch_size_is_measured_not_assumed():
    from ppgan.apps.batch_size import measure_batch_size

    # A fake engine: 10 ms per call plus 1 ms per frame; the clock advances by the work done.
    now = [0.0]
    run = lambda batch: now.__setitem__(0, now[0] + 0.010 + 0.001 * batch)
    chosen, rates = measure_batch_size(run, lambda n: n, largest=64, clock=lambda: now[0])
    # Rates 91, 167, 286, 444, 615, 762, 865 frames/s: every doubling gains more than 5 %.
    assert sorted(rates) == [1, 2, 4, 8, 16, 32, 64] and chosen == 64
    # Saturated at 8: 16 is no more than 5 % faster, so doubling stops there and 8 is chosen.
    run = lambda batch: now.__setitem__(0, now[0] + 0.001 * max(batch, 8))
    chosen, rates = measure_batch_size(run, lambda n: n, largest=64, clock=lambda: now[0])
    assert sorted(rates) == [1, 2, 4, 8, 16] and chosen == 8


def test_stream_measures_its_batch_size_on_the_avatar(media):
    calls = []

    def generator(mels, faces):
        calls.append(len(faces))
        return faces[:, 3:]

    stream = Wav2LipStream(generator=generator, box=(60, 200, 60, 200), batch_size="auto")
    stream.prepare(media["photo"])
    assert stream.batch_size in stream.batch_rates and calls[:2] == [1, 1]
    assert "measure" in stream.prepare_seconds


def test_frames_come_out_while_audio_arrives_with_bounded_memory(tmp_path):
    """A cheap generator and 60 s of audio in 40 ms chunks: every frame is out 0.21 s of audio
    after its start, and the mel kept does not grow."""
    face = index_video(tmp_path / "ten.mp4", 10)
    stream = Wav2LipStream(generator=lambda mels, faces: faces[:, 3:], box=(8, 56, 8, 56))
    stream.prepare(face)
    rng = np.random.default_rng(0)
    chunk, seconds = 640, 60
    produced, held = 0, []
    for k in range(seconds * 25):
        frames = stream.push((0.1 * rng.standard_normal(chunk)).astype(np.float32))
        produced += len(frames)
        held.append(stream.buffered_mel_steps)
        # Every frame the audio heard so far certainly has and whose 16 mel steps are final.
        heard = (k + 1) * chunk
        final_steps = (heard - 400) // 200 + 1
        assert produced == sum(1 for i in range(k + 1) if mel_index(i, 25.0) + 16 <= final_steps)
    produced += len(stream.finish())
    assert produced == seconds * 25
    assert max(held) <= 20


def test_stream_needs_an_avatar_and_audio(media, tmp_path):
    stream = Wav2LipStream(generator=lambda mels, faces: faces[:, 3:], box=(8, 56, 8, 56))
    with pytest.raises(MediaError, match="prepare"):
        stream.push(np.zeros(100, np.float32))
    with pytest.raises(MediaError, match="not found"):
        stream.prepare(tmp_path / "missing.mp4")
    stream.prepare(media["photo"])
    with pytest.raises(MediaError, match="no audio"):
        stream.finish()
    stream.push(np.zeros(100, np.float32))
    assert stream.finish() == []  # 100 samples are less than half a frame at 25 fps


# ------------------------------------------------------------------------------ the tool

TOOL = os.path.join(str(REPO_ROOT), "tools",
                    "wav2lip_stream.py")


@pytest.fixture(scope="module")
def tool():
    return load_tool("wav2lip_stream")


@pytest.mark.parametrize("engine, precision", [("dynamic", "fp32"), ("static", "auto")])
def test_tool_streams_a_file_and_reports_latency(tool, media, tmp_path, capsys, engine, precision):
    out = tmp_path / "stream.mp4"
    with pytest.raises(SystemExit) as done:
        run_main(tool.main, ["--face", media["photo"], "--audio", media["speech"], "--checkpoint_path",
                             media["weights"], "--outfile", str(out), "--engine", engine,
                             "--precision", precision, "--chunk_ms", "30", "--box", "60", "200", "60", "200"])
    assert done.value.code == 0
    printed = capsys.readouterr().out
    assert "first frame" in printed and "sustained" in printed and "generate" in printed
    # auto has chosen by the time frames flow (during prepare's batch measurement)
    assert re.search(r"precision (fp32|bf16)\b", printed)
    info = probe_video(out)
    assert info.num_frames == 32 and info.has_audio
    assert 0 <= len(load_audio(str(out))) - 16000 * 1.3 < 1024  # AAC ends on a whole 1024-sample frame


def test_tool_reads_raw_pcm_from_stdin(media, tmp_path):
    wav = load_audio(media["speech"])
    out = tmp_path / "stdin.mp4"
    done = subprocess.run(
        [sys.executable, TOOL, "--face", media["photo"], "--audio", "-", "--checkpoint_path",
         media["weights"], "--outfile", str(out), "--engine", "dynamic", "--box", "60", "200", "60",
         "200"], input=to_pcm16(wav).astype("<i2").tobytes(), capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    assert probe_video(out).num_frames == 32


@pytest.mark.parametrize("flags, expected", [
    (["--audio", "-"], "no audio samples"),
    (["--audio", "missing.wav"], "audio file not found"),
    (["--outfile", "x.avi"], "use one of"),
    (["--chunk_ms", "0"], "chunk_ms"),
])
def test_tool_bad_input_is_one_error_line_and_no_output(tool, media, tmp_path, capsys, flags, expected):
    argv = ["--face", media["photo"], "--audio", media["speech"], "--checkpoint_path", media["weights"],
            "--outfile", str(tmp_path / "out" / "o.mp4"), "--box", "60", "200", "60", "200"] + flags
    with pytest.raises(SystemExit) as done:
        run_main(lambda a: tool.main(a, stdin=io.BytesIO(b"")), argv)
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert done.value.code == 2 and len(errors) == 1 and expected in errors[0], errors
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
