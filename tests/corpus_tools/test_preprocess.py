"""Preprocessing raw videos into the corpus layout (crops, audio, mels, split lists)."""

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ppgan.datasets.frame_cache import CACHE_PREFIX, find_frame_cache, scan_jpgs
from ppgan.datasets.lrs2 import Wav2LipDataset
from ppgan.corpus_tools.preprocess import assign_splits, preprocess_corpus
from ppgan.corpus_tools.preprocess_video import DetectorSpec, PreprocessOptions, load_boxes_json, process_video
from ppgan.faceutils.detector import FaceDetector
from ppgan.utils.audio import load_audio, melspectrogram
from ppgan.utils.cli import run_main
from ppgan.utils.video import probe_video, read_video, write_video
from tests import REPO_ROOT

REPO = REPO_ROOT


def raw_dir(corpus):
    return corpus / "raw"


def assert_cache_matches_jpgs(clip_dir, size=96):
    """The clip has one frame cache, up to date, holding exactly its jpgs as OpenCV decodes them."""
    caches = list(Path(clip_dir).glob(CACHE_PREFIX + "*"))
    assert len(caches) == 1
    listing = scan_jpgs(str(clip_dir))
    assert find_frame_cache(str(clip_dir), size, listing).path == str(caches[0])
    jpgs = np.stack([cv2.imread(str(Path(clip_dir) / f"{i}.jpg")).transpose(2, 0, 1) for i in listing.ids])
    np.testing.assert_array_equal(np.load(caches[0]), jpgs)


def boxes_spec(corpus):
    path = str(raw_dir(corpus) / "boxes.json")
    return DetectorSpec(boxes=load_boxes_json(path), boxes_path=path)


@pytest.fixture(scope="module")
def preprocessed(synthetic_corpus_raw, tmp_path_factory):
    """The raw synthetic videos preprocessed with two worker processes."""
    out = tmp_path_factory.mktemp("preprocessed") / "corpus"
    summary = preprocess_corpus(str(raw_dir(synthetic_corpus_raw)), str(out), boxes_spec(synthetic_corpus_raw),
                                workers=2, progress=False)
    return out, summary


def test_preprocessing_reproduces_the_generated_corpus(synthetic_corpus_raw, preprocessed):
    out, summary = preprocessed
    lengths = json.loads((synthetic_corpus_raw / "corpus.json").read_text())["num_frames"]
    assert summary.count("done") == len(lengths) and summary.count("failed") == 0
    assert summary.frames == sum(lengths.values())
    for key, count in lengths.items():
        made, truth = out / key, synthetic_corpus_raw / key
        assert sorted(p.name for p in made.glob("*.jpg")) == sorted(p.name for p in truth.glob("*.jpg"))
        assert len(list(made.glob("*.jpg"))) == count
        assert_cache_matches_jpgs(made)
        np.testing.assert_array_equal(np.load(made / "mel.npy"), np.load(truth / "mel.npy"))
        np.testing.assert_array_equal(load_audio(str(made / "audio.wav")), load_audio(str(truth / "audio.wav")))
        ours = np.stack([cv2.imread(str(made / f"{i}.jpg")) for i in range(count)]).astype(np.float32)
        theirs = np.stack([cv2.imread(str(truth / f"{i}.jpg")) for i in range(count)]).astype(np.float32)
        assert ours.shape == theirs.shape == (count, 96, 96, 3)
        same = np.abs(ours - theirs).mean()
        assert same < 10  # H.264 and a second JPEG pass only
        assert same < np.abs(ours[3:] - theirs[:-3]).mean()  # and frame i is frame i, not a neighbour
    splits = {name: (out / f"{name}.txt").read_text().split() for name in ("train", "val", "test")}
    assert sorted(sum(splits.values(), [])) == sorted(lengths)
    assert all(splits.values())  # 4 clips: at least one in each split
    assert "4 done" in str(summary) and "frames/s" in str(summary)
    assert len(Wav2LipDataset(str(out), "train")) > 0  # the datasets read it directly
    assert not (out / ".partial").exists()


def test_rerun_resumes_and_only_redoes_unfinished_videos(synthetic_corpus_raw, preprocessed, tmp_path):
    out = tmp_path / "corpus"
    shutil.copytree(preprocessed[0], out)
    key = sorted(json.loads((synthetic_corpus_raw / "corpus.json").read_text())["num_frames"])[0]
    (out / ".preprocess" / f"{key}.json").unlink()  # as if the run died before finishing this video
    untouched = sorted((out / key).parent.iterdir())[-1] / "0.jpg"
    stamp = untouched.stat().st_mtime_ns
    summary = preprocess_corpus(str(raw_dir(synthetic_corpus_raw)), str(out), boxes_spec(synthetic_corpus_raw),
                                progress=False)
    assert (summary.count("resumed"), summary.count("done")) == (3, 1)
    assert [r.key for r in summary.results if r.status == "done"] == [key]
    assert untouched.stat().st_mtime_ns == stamp
    assert len((out / "train.txt").read_text().split()) == len((preprocessed[0] / "train.txt").read_text().split())


class GappyDetector(FaceDetector):
    """A fixed box, except on the frames listed in ``missing`` (counted across batches)."""

    def __init__(self, box, missing):
        top, bottom, left, right = box
        self.box, self.missing, self.seen = [left, top, right, bottom, 1.0], set(missing), 0

    def detect_batch(self, frames):
        out = []
        for _ in frames:
            out.append(np.zeros((0, 5)) if self.seen in self.missing else np.array([self.box], float))
            self.seen += 1
        return out


def one_raw_video(corpus):
    boxes = load_boxes_json(str(raw_dir(corpus) / "boxes.json"))
    key = sorted(boxes)[0]
    return key, str(raw_dir(corpus) / f"{key}.mp4"), boxes[key]


def test_short_gaps_interpolated_long_gaps_split(synthetic_corpus_raw, tmp_path):
    key, path, box = one_raw_video(synthetic_corpus_raw)
    count = probe_video(path).num_frames
    missing = [10, 11] + list(range(20, 28))  # a 2-frame gap and an 8-frame gap
    options = PreprocessOptions(max_gap=5, min_frames=10)
    result = process_video(key, path, str(tmp_path), GappyDetector(box, missing), options)
    assert result.status == "done" and result.clips == [f"{key}_part0", f"{key}_part1"]
    assert (result.interpolated, result.dropped, result.frames) == (2, 8, count - 8)
    wav = load_audio(path)
    for name, (a, b) in zip(result.clips, [(0, 20), (28, count)]):
        assert len(list((tmp_path / name).glob("*.jpg"))) == b - a
        assert_cache_matches_jpgs(tmp_path / name)  # one cache per piece, rows streamed as cropped
        piece = wav[a * 640:] if b == count else wav[a * 640:b * 640]
        np.testing.assert_array_equal(load_audio(str(tmp_path / name / "audio.wav")), piece)
        np.testing.assert_allclose(np.load(tmp_path / name / "mel.npy"), melspectrogram(piece), atol=1e-6)
    dropped = process_video(key, path, str(tmp_path / "drop"), GappyDetector(box, missing),
                            PreprocessOptions(max_gap=5, long_gaps="drop"))
    assert dropped.status == "skipped" and "8 frames in a row" in dropped.reason
    noface = process_video(key, path, str(tmp_path / "none"), GappyDetector(box, range(count)), options)
    assert noface.status == "skipped" and "no face" in noface.reason
    assert not (tmp_path / "drop" / key).exists() and not (tmp_path / "none" / key).exists()


def test_other_frame_rates_are_brought_to_25_fps(synthetic_corpus_raw, tmp_path):
    key, path, box = one_raw_video(synthetic_corpus_raw)
    frames = read_video(path)[:40]
    audio = load_audio(path)[:int(40 / 50 * 16000)]
    fast = tmp_path / "in" / "clip50.mp4"
    fast.parent.mkdir()
    write_video(str(fast), frames, 50, audio=audio, audio_codec="flac")
    summary = preprocess_corpus(str(fast.parent), str(tmp_path / "out"),
                                DetectorSpec(name="box", kwargs={"box": box}), progress=False,
                                options=PreprocessOptions(min_frames=5))
    assert summary.count("done") == 1
    written = sorted(int(p.stem) for p in (tmp_path / "out" / "clip50").glob("*.jpg"))
    assert written == list(range(20))  # 0.8 s at 25 fps


def test_bad_videos_fail_with_reasons_and_leave_nothing(synthetic_corpus_raw, tmp_path):
    key, path, box = one_raw_video(synthetic_corpus_raw)
    tree = tmp_path / "mvlrs_v1" / "main" / "spk"  # LRS2 layout: main/ is entered automatically
    tree.mkdir(parents=True)
    shutil.copy(path, tree / "good.mp4")
    write_video(str(tree / "silent.mp4"), read_video(path)[:20], 25)  # no audio stream
    (tree / "broken.mp4").write_bytes(b"\x00not a video at all" * 10)
    (tree / "notes.txt").write_text("not a video")
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps({f"spk/{name}": box for name in ("good", "silent", "broken")}))
    out = tmp_path / "out"
    tool = [sys.executable, str(REPO / "tools" / "preprocess.py"), "--data-root", str(tmp_path / "mvlrs_v1"),
            "--out", str(out), "--boxes-json", str(boxes), "--quiet", "--no-frame-cache"]
    run = subprocess.run(tool, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert run.returncode == 1, run.stderr
    assert "1 done, 0 already done, 0 skipped, 2 failed" in run.stdout
    assert "failed: spk/silent: no audio stream" in run.stdout
    assert "failed: spk/broken: cannot read video" in run.stdout
    assert sorted(p.name for p in (out / "spk").iterdir()) == ["good"]
    assert list((out / "spk" / "good").glob("*.jpg")) and not list((out / "spk" / "good").glob(CACHE_PREFIX + "*"))
    assert not (out / ".partial").exists()


def test_tool_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("preprocess_tool", REPO / "tools" / "preprocess.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    with pytest.raises(SystemExit) as exited:
        run_main(tool.main, ["--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip().startswith("error: input folder")
    with pytest.raises(SystemExit) as exited:
        run_main(tool.main, ["--data-root", str(tmp_path), "--out", str(tmp_path / "out"),
                             "--box", "0", "9", "0", "9", "--boxes-json", "b.json"])
    assert exited.value.code == 2 and "either --box or --boxes-json" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_split_assignment(tmp_path):
    keys = [f"spk{s}/{c:05d}" for s in range(4) for c in range(5)]
    splits = assign_splits(keys, val_fraction=0.1, test_fraction=0.1)
    assert (len(splits["val"]), len(splits["test"]), len(splits["train"])) == (2, 2, 16)
    assert sorted(sum(splits.values(), [])) == sorted(keys)
    assert assign_splits(list(reversed(keys)), val_fraction=0.1, test_fraction=0.1) == splits
    small = assign_splits(keys[:3])
    assert all(len(v) == 1 for v in small.values())  # every split non-empty once there are 3 clips
    (tmp_path / "train.txt").write_text("spk0/00000\nspk0/00001 NF\n")
    (tmp_path / "test.txt").write_text("spk1/00000\n")
    listed = assign_splits(keys, splits_dir=str(tmp_path))
    assert listed == {"train": ["spk0/00000", "spk0/00001"], "val": [], "test": ["spk1/00000"]}


# ------------------------------------------------------------------------- losses are never silent

def preprocess_tool():
    spec = importlib.util.spec_from_file_location("preprocess_tool", REPO / "tools" / "preprocess.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_readme_command_picks_up_the_synthetic_boxes(synthetic_corpus_raw, tmp_path, capsys):
    """The README's plain command (no --boxes-json) on the synthetic raw videos loses none of them."""
    out = tmp_path / "corpus"
    with pytest.raises(SystemExit) as exited:
        run_main(preprocess_tool().main, ["--data-root", str(raw_dir(synthetic_corpus_raw)), "--out", str(out),
                                          "--quiet", "--no-frame-cache"])
    printed = capsys.readouterr().out
    assert exited.value.code == 0
    assert f"using the fixed face boxes of {raw_dir(synthetic_corpus_raw) / 'boxes.json'}" in printed
    assert "videos: 4 done, 0 already done, 0 skipped, 0 failed" in printed


def test_skipped_videos_are_named_and_too_many_losses_exit_1(tmp_path, capsys):
    from tests.apps.test_predictor import astronaut, make_speech

    speech = load_audio(make_speech(tmp_path / "speech.wav", 0.8))
    tree = tmp_path / "videos" / "spk"
    tree.mkdir(parents=True)
    write_video(str(tree / "face.mp4"), [astronaut(256)] * 20, 25, audio=speech)
    write_video(str(tree / "wall.mp4"), [np.full((256, 256, 3), 128, np.uint8)] * 20, 25, audio=speech)
    argv = ["--data-root", str(tmp_path / "videos"), "--out", str(tmp_path / "out"), "--quiet",
            "--no-frame-cache", "--min-frames", "10"]
    with pytest.raises(SystemExit) as exited:
        run_main(preprocess_tool().main, argv)
    captured = capsys.readouterr()
    assert exited.value.code == 1
    assert "videos: 1 done, 0 already done, 1 skipped, 0 failed" in captured.out
    assert "skipped: spk/wall: no face found in any frame" in captured.out
    errors = captured.err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: 1 of 2 videos were skipped or failed (50 %")
    with pytest.raises(SystemExit) as exited:  # a looser limit: the same corpus passes
        run_main(preprocess_tool().main, argv + ["--max-fail-ratio", "0.5"])
    assert exited.value.code == 0
    assert "skipped: spk/wall: no face found" in capsys.readouterr().out
