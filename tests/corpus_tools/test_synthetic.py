"""ppgan.corpus_tools.synthetic* and tools/make_synthetic_data.py: layout, determinism, and that mouth and
voice follow the same hidden track at the same frame."""

import json
import os
import subprocess
import sys
import wave
from pathlib import Path

import cv2
import numpy as np
import pytest

from ppgan.corpus_tools import synthetic, synthetic_faces
from ppgan.corpus_tools.synthetic import make_synthetic_corpus, split_clips
from ppgan.corpus_tools.synthetic_faces import draw_face, synthesize_clip
from ppgan.corpus_tools.synthetic_voice import SAMPLES_PER_FRAME, UNITS, random_speaker, synthesize_audio
from ppgan.utils.audio import load_audio, melspectrogram, to_pcm16
from ppgan.utils.errors import ConfigError, DataError
from ppgan.utils.video import probe_video, read_video
from tests import REPO_ROOT


def _split_lists(root):
    return {name: (root / f"{name}.txt").read_text().split() for name in ("train", "val", "test")}


def _frame_energy(wav):
    """(T,) RMS of each video frame's 640 audio samples."""
    return np.sqrt((np.asarray(wav, np.float64).reshape(-1, SAMPLES_PER_FRAME) ** 2).mean(axis=1))


def _shifted_correlation(pairs, shift):
    """Pearson correlation of mouth[t + shift] with energy[t], pooled over (mouth, energy) clips."""
    mouths, energies = [], []
    for mouth, energy in pairs:
        n = len(mouth)
        mouths.append(mouth[max(0, shift):n + min(0, shift)])
        energies.append(energy[max(0, -shift):n - max(0, shift)])
    return np.corrcoef(np.concatenate(mouths), np.concatenate(energies))[0, 1]


def sync_evidence(pairs):
    """True when mouth opening and voiced energy agree at the same frame and clearly less one frame
    off: levels correlate strongly at shift 0 and more than at +-1, and frame-to-frame CHANGES
    (nearly uncorrelated in time, unlike the levels) coincide at shift 0 only."""
    level = {s: _shifted_correlation(pairs, s) for s in (-1, 0, 1)}
    change = {s: _shifted_correlation([(np.diff(m), np.diff(e)) for m, e in pairs], s) for s in (-1, 0, 1)}
    return (level[0] > 0.9 and level[0] > max(level[-1], level[1]) + 0.08
            and change[0] > 0.85 and max(change[-1], change[1]) < 0.45)


@pytest.fixture(scope="module")
def clips():
    """Eight in-memory clips from different speakers: (frames, wav, mouth_open)."""
    result = []
    for index in range(8):
        rng = np.random.default_rng([7, index])
        result.append(synthesize_clip(rng, random_speaker(rng), 50, img_size=48))
    return result


# ----------------------------------------------------------------------------- one clip
def test_clip_shapes_and_ranges(clips):
    frames, wav, mouth = clips[0]
    assert frames.shape == (50, 48, 48, 3) and frames.dtype == np.uint8
    assert wav.shape == (50 * 640,) and wav.dtype == np.float32
    assert np.abs(wav).max() <= 0.95
    assert mouth.shape == (50,) and mouth.min() >= 0 and mouth.max() <= 1


def test_mouth_follows_voice_at_the_same_frame(clips):
    pairs = [(mouth, _frame_energy(wav)) for _, wav, mouth in clips]
    assert sync_evidence(pairs)


def test_sync_check_fails_for_misaligned_or_independent_audio(clips):
    """The check above is not vacuous: one frame of offset, or audio from another clip, fails it."""
    pairs = [(mouth, _frame_energy(wav)) for _, wav, mouth in clips]
    for shift in (-1, 1):
        shifted = [(np.roll(mouth, shift)[1:-1], energy[1:-1]) for mouth, energy in pairs]
        assert not sync_evidence(shifted)
    swapped = [(pairs[i][0], pairs[(i + 1) % len(pairs)][1]) for i in range(len(pairs))]
    assert not sync_evidence(swapped)
    assert abs(_shifted_correlation(swapped, 0)) < 0.4


def test_drawn_mouth_really_moves(clips):
    """mouth_open is what is drawn: frames with a wide-open mouth differ from closed-mouth frames
    below the nose far more than above it."""
    frames, _, mouth = clips[1]
    open_frame = frames[np.argmax(mouth)].astype(int)
    closed_frame = frames[np.argmin(mouth)].astype(int)
    difference = np.abs(open_frame - closed_frame)
    assert difference[24:].mean() > 2 * difference[:24].mean()


def test_every_unit_has_its_own_mouth_in_the_lower_half():
    speaker = random_speaker(np.random.default_rng(0))
    still = synthetic_faces.HeadPose(dx=0.0, dy=0.0, scale=1.0, eye_open=1.0)
    faces = [draw_face(speaker, (u.height, u.width, u.roundness), still, 96).astype(int) for u in UNITS]
    for i in range(len(UNITS)):
        for j in range(i + 1, len(UNITS)):
            assert np.array_equal(faces[i][:48], faces[j][:48])  # the upper half never changes
            assert np.abs(faces[i][48:] - faces[j][48:]).mean() > 1.0, (UNITS[i].name, UNITS[j].name)


def _unit_audio(unit_name, seconds_frames=25, seed=0):
    index = [u.name for u in UNITS].index(unit_name)
    speaker = random_speaker(np.random.default_rng(seed))
    return synthesize_audio(np.random.default_rng(seed), speaker, np.full(seconds_frames, index))


def test_audio_carries_the_unit_identity():
    vowels = [u.name for u in UNITS if u.kind in ("open", "rounded", "spread")]
    profiles = {name: melspectrogram(_unit_audio(name)).mean(axis=1) for name in vowels}
    for i, a in enumerate(vowels):
        for b in vowels[i + 1:]:
            # Mean distance per mel band, in the [-4, 4] units: formants move whole bands.
            assert np.abs(profiles[a] - profiles[b]).mean() > 0.25, (a, b)
    # Spread vowels put the second formant high, rounded ones keep it low: compare each vowel's
    # 2-3.3 kHz bands against its own 150-600 Hz bands (independent of overall loudness).
    def tilt(name):
        return profiles[name][45:60].mean() - profiles[name][5:25].mean()

    assert tilt("i") > tilt("u") + 1.0
    assert tilt("e") > tilt("o") + 0.5


def test_silence_is_silent_and_the_nasal_is_weak_and_low():
    assert np.all(_unit_audio("_") == 0.0)
    nasal, vowel = _unit_audio("m"), _unit_audio("a")
    assert np.sqrt(np.mean(nasal ** 2)) < 0.2 * np.sqrt(np.mean(vowel ** 2))
    spectrum = np.abs(np.fft.rfft(nasal)) ** 2
    frequencies = np.fft.rfftfreq(len(nasal), 1 / 16000)
    assert spectrum[frequencies < 600].sum() > 0.8 * spectrum.sum()


def test_same_seed_same_clip_other_seed_other_clip():
    def make(seed):
        rng = np.random.default_rng(seed)
        return synthesize_clip(rng, random_speaker(rng), 20, img_size=48)

    first, again, other = make(3), make(3), make(4)
    for a, b in zip(first, again):
        assert np.array_equal(a, b)
    assert not np.array_equal(first[1], other[1])


def test_clip_needs_frames():
    with pytest.raises(ConfigError):
        synthesize_clip(np.random.default_rng(0), random_speaker(np.random.default_rng(0)), 0)


# ----------------------------------------------------------------------------- splits
@pytest.mark.parametrize("clips_per_speaker", [[3], [1, 1, 1], [4, 4, 4], [2, 1], [6, 6, 6, 6, 6, 6]])
def test_split_clips_covers_everything_with_non_empty_splits(clips_per_speaker):
    keys = [[f"s{s}/{c}" for c in range(n)] for s, n in enumerate(clips_per_speaker)]
    splits = split_clips(keys, (0.7, 0.15, 0.15), np.random.default_rng(0))
    assert all(splits[name] for name in ("train", "val", "test"))
    everything = splits["train"] + splits["val"] + splits["test"]
    assert sorted(everything) == sorted(k for group in keys for k in group)
    assert len(set(everything)) == len(everything)
    if min(clips_per_speaker) >= 3:
        # Every speaker keeps training data when it has enough clips.
        assert {k.split("/")[0] for k in splits["train"]} == {f"s{s}" for s in range(len(keys))}


def test_split_clips_errors():
    with pytest.raises(ConfigError, match="at least 3 clips"):
        split_clips([["a/0", "a/1"]], (0.7, 0.15, 0.15), np.random.default_rng(0))
    with pytest.raises(ConfigError, match="three non-negative"):
        split_clips([["a/0", "a/1", "a/2"]], (1.0, -0.5, 0.5), np.random.default_rng(0))


# ----------------------------------------------------------------------------- the written corpus
def test_corpus_layout(synthetic_corpus):
    root = Path(synthetic_corpus)
    splits = _split_lists(root)
    meta = json.loads((root / "corpus.json").read_text())
    keys = sorted(meta["num_frames"])
    assert len(keys) == 12 and all(splits.values())
    assert sorted(splits["train"] + splits["val"] + splits["test"]) == keys
    for key in keys:
        clip = root / key
        count = meta["num_frames"][key]
        assert 40 <= count <= 60
        assert sorted(p.name for p in clip.glob("*.jpg")) == sorted(f"{i}.jpg" for i in range(count))
        assert cv2.imread(str(clip / "0.jpg")).shape == (96, 96, 3)
        with wave.open(str(clip / "audio.wav")) as f:
            assert (f.getnchannels(), f.getsampwidth(), f.getframerate()) == (1, 2, 16000)
            assert f.getnframes() == count * 640
        mel = np.load(clip / "mel.npy")
        assert mel.shape == (80, 1 + count * 640 // 200) and mel.dtype == np.float32
        # The stored mel is exactly the project's mel of the stored (quantised) audio.
        assert np.array_equal(mel, melspectrogram(load_audio(str(clip / "audio.wav"))))
    assert meta["params"]["seed"] == 0 and meta["summary"]["frames"] == sum(meta["num_frames"].values())


def test_written_clips_are_the_synthesized_clips_in_sync(synthetic_corpus):
    """Clip (s, c) is synthesize_clip with the generator seeded (seed, s, c): the written jpgs and
    wav are those frames and samples at the same indices (JPEG and int16 aside), so the mouth/voice
    alignment shown in memory survives into the files."""
    root = Path(synthetic_corpus)
    meta = json.loads((root / "corpus.json").read_text())
    pairs = []
    for key, count in sorted(meta["num_frames"].items()):
        s, c = int(key.split("/")[0][len("speaker"):]), int(key.split("/")[1])
        speaker = random_speaker(np.random.default_rng([0, s]), name=f"speaker{s:02d}")
        rng = np.random.default_rng([0, s, c])
        assert int(rng.integers(40, 61)) == count
        frames, wav, mouth = synthesize_clip(rng, speaker, count, 96)
        jpgs = np.stack([cv2.imread(str(root / key / f"{i}.jpg")) for i in range(count)]).astype(int)
        assert np.abs(jpgs - frames).mean(axis=(1, 2, 3)).max() < 3
        stored = load_audio(str(root / key / "audio.wav"))
        assert np.array_equal(to_pcm16(stored), to_pcm16(wav))
        pairs.append((mouth, _frame_energy(stored)))
    assert sync_evidence(pairs)


def test_raw_videos_reproduce_crops_and_audio(synthetic_corpus_raw):
    root = Path(synthetic_corpus_raw)
    boxes = json.loads((root / "raw" / "boxes.json").read_text())
    meta = json.loads((root / "corpus.json").read_text())
    assert sorted(boxes) == sorted(meta["num_frames"])
    for key, (top, bottom, left, right) in boxes.items():
        video = root / "raw" / f"{key}.mp4"
        info = probe_video(str(video))
        assert (info.fps, info.width, info.height, info.has_audio) == (25.0, 160, 160, True)
        frames = read_video(str(video))
        assert len(frames) == meta["num_frames"][key]
        jpgs = np.stack([cv2.imread(str(root / key / f"{i}.jpg")) for i in range(len(frames))]).astype(int)
        error = np.abs(frames[:, top:bottom, left:right].astype(int) - jpgs).mean()
        moved = np.roll(frames, (3, 3), axis=(1, 2))  # the same crop 3 pixels off
        shifted = np.abs(moved[:, top:bottom, left:right].astype(int) - jpgs).mean()
        assert error < 8 and shifted > error + 3
        # FLAC in the mp4: decoding it gives exactly the corpus's audio, hence exactly its mel.
        assert np.array_equal(load_audio(str(video)), load_audio(str(root / key / "audio.wav")))


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_corpus_is_deterministic_and_clips_do_not_depend_on_corpus_size(tmp_path):
    options = dict(clips=3, seed=5, min_frames=12, max_frames=16, img_size=48, progress=False)
    make_synthetic_corpus(str(tmp_path / "a"), speakers=1, **options)
    make_synthetic_corpus(str(tmp_path / "b"), speakers=1, **options)
    make_synthetic_corpus(str(tmp_path / "c"), speakers=2, **options)
    a, b, c = _tree(tmp_path / "a"), _tree(tmp_path / "b"), _tree(tmp_path / "c")
    assert a == b
    assert all(c[name] == data for name, data in a.items() if name.startswith("speaker00/"))
    assert any(c[name] != data for name, data in a.items() if name.endswith(".txt"))  # splits differ
    make_synthetic_corpus(str(tmp_path / "d"), speakers=1, **dict(options, seed=6))
    assert _tree(tmp_path / "d")["speaker00/00000/audio.wav"] != a["speaker00/00000/audio.wav"]


def test_existing_corpus_is_protected_and_failures_leave_nothing(tmp_path, monkeypatch):
    options = dict(speakers=1, clips=3, min_frames=10, max_frames=10, img_size=48, progress=False)
    out = tmp_path / "corpus"
    make_synthetic_corpus(str(out), **options)
    before = _tree(out)
    with pytest.raises(DataError, match="not empty"):
        make_synthetic_corpus(str(out), seed=1, **options)
    assert _tree(out) == before

    calls = []

    def failing_clip(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return synthetic_clip_plan(*args, **kwargs)

    synthetic_clip_plan = synthetic_faces.synthesize_clip_plan
    monkeypatch.setattr(synthetic, "synthesize_clip_plan", failing_clip)
    with pytest.raises(RuntimeError):
        make_synthetic_corpus(str(out), seed=1, overwrite=True, **options)
    assert _tree(out) == before  # the old corpus is intact
    with pytest.raises(RuntimeError):
        calls.clear()
        make_synthetic_corpus(str(tmp_path / "fresh"), **options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus"]  # no partial folders

    monkeypatch.undo()
    make_synthetic_corpus(str(out), seed=1, overwrite=True, **options)
    assert _tree(out) != before and json.loads((out / "corpus.json").read_text())["params"]["seed"] == 1


@pytest.mark.parametrize("options", [
    dict(speakers=0), dict(seed=-1), dict(min_frames=20, max_frames=10), dict(img_size=16),
    dict(raw_videos=True, raw_frame_size=(64, 64)), dict(speakers=1, clips=2),
])
def test_bad_parameters(tmp_path, options):
    with pytest.raises(ConfigError):
        make_synthetic_corpus(str(tmp_path / "out"), **dict(dict(progress=False), **options))
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# ----------------------------------------------------------------------------- the tool
def _run_tool(*args):
    return subprocess.run([sys.executable, "tools/make_synthetic_data.py", *args], cwd=str(REPO_ROOT),
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)


def test_tool_writes_corpus_and_prints_summary(tmp_path):
    out = tmp_path / "demo"
    result = _run_tool("--out", str(out), "--speakers", "1", "--clips", "3", "--seed", "2",
                       "--min-frames", "10", "--max-frames", "12", "--img-size", "48", "--quiet")
    assert result.returncode == 0, result.stderr
    meta = json.loads((out / "corpus.json").read_text())
    frames = sum(meta["num_frames"].values())
    assert f"wrote 3 clips (1 speakers), {frames} frames" in result.stdout
    assert "train 1 / val 1 / test 1" in result.stdout
    assert os.path.isfile(out / "speaker00" / "00000" / "mel.npy")


def test_tool_refuses_a_non_empty_folder_with_one_line(tmp_path, capsys):
    import importlib.util

    from ppgan.utils.cli import run_main

    script = REPO_ROOT / "tools" / "make_synthetic_data.py"
    spec = importlib.util.spec_from_file_location("make_synthetic_data", script)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as exit_info:
        run_main(tool.main, ["--out", str(tmp_path / "taken"), "--clips", "3", "--quiet"])
    assert exit_info.value.code == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error:") and "--overwrite" in errors[0]
    assert sorted(p.name for p in (tmp_path / "taken").iterdir()) == ["notes.txt"]
