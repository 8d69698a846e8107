"""ppgan.metrics.oracle and ppgan.apps.oracle_evaluation: the mouth-opening measure, the three
oracle rows, their reports, and tools/evaluate.py --oracle."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ppgan.apps.oracle_evaluation import evaluate_oracle, read_pairs, write_pairs
from ppgan.corpus_tools import oracle as corpus_oracle
from ppgan.corpus_tools.synthetic_faces import HeadPose, draw_face, synthesize_clip
from ppgan.corpus_tools.synthetic_voice import random_speaker
from ppgan.metrics.oracle import compare_with_oracle, mouth_opening, oracle_row, pearson
from ppgan.metrics.report import write_report
from ppgan.utils.errors import DataError
from ppgan.utils.video import write_video
from tests import REPO_ROOT


def _jpeg(frame, quality=75):
    return cv2.imdecode(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], 1)


def test_opening_tracks_the_drawn_height():
    """Over random speakers, poses, widths and roundness, through JPEG: the measure follows the
    drawn mouth height closely, and at one speaker and pose it grows with the height."""
    rng = np.random.default_rng(0)
    heights, measured = [], []
    for _ in range(150):
        speaker = random_speaker(rng)
        pose = HeadPose(rng.uniform(-1.5, 1.5), rng.uniform(-1.2, 1.2), 1 + rng.uniform(-0.02, 0.02), 1.0)
        shape = (rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0, 1))
        heights.append(shape[0])
        measured.append(mouth_opening(_jpeg(draw_face(speaker, shape, pose, 96)))[0])
    assert pearson(heights, measured) > 0.95
    speaker, still = random_speaker(np.random.default_rng(1)), HeadPose(0.0, 0.0, 1.0, 1.0)
    ladder = mouth_opening(np.stack([draw_face(speaker, (h, 0.6, 0.2), still, 96)
                                     for h in (0.0, 0.3, 0.6, 1.0)]))
    assert ladder[0] < 0.03 and np.all(np.diff(ladder) > 0.02)


def test_opening_follows_real_clips_frame_by_frame():
    pooled_height, pooled_measure = [], []
    for index in range(6):
        rng = np.random.default_rng([5, index])
        frames, _, height = synthesize_clip(rng, random_speaker(rng), 60, img_size=96)
        measure = mouth_opening(np.stack([_jpeg(f) for f in frames]))
        assert pearson(height, measure) > 0.93
        pooled_height.append(height)
        pooled_measure.append(measure)
    assert pearson(np.concatenate(pooled_height), np.concatenate(pooled_measure)) > 0.96


def test_comparison_numbers():
    rng = np.random.default_rng([5, 0])
    frames, _, _ = synthesize_clip(rng, random_speaker(rng), 30, img_size=64)
    same = compare_with_oracle(frames, frames)
    assert same["lower_psnr"] == float("inf") and same["lower_ssim"] == pytest.approx(1.0)
    assert same["opening_corr"] == pytest.approx(1.0)
    changed = frames.copy()
    changed[:, :32] = 0  # the upper half does not count
    assert compare_with_oracle(changed, frames)["lower_psnr"] == float("inf")
    shifted = np.roll(frames, 3, axis=0)
    worse = compare_with_oracle(shifted, frames)
    assert worse["lower_psnr"] < 30 and worse["opening_corr"] < 0.9
    row = oracle_row("generated", [same, worse])
    assert row["num_videos"] == 2 and row["lower_psnr"] == float("inf")
    assert oracle_row("floor", [])["lower_psnr"] is None
    with pytest.raises(DataError, match="differ in shape"):
        compare_with_oracle(frames[:-1], frames)
    assert pearson([1, 1, 1], [1, 2, 3]) is None


def _write_dubbed(folder, corpus, pairs, make_frames):
    """Dubbed videos drawn by ``make_frames(face plan, audio plan)`` plus pairs.json."""
    for face_key, audio_key in pairs:
        face = corpus_oracle.load_clip_plan(str(corpus / face_key))
        audio = corpus_oracle.load_clip_plan(str(corpus / audio_key))
        path = folder / f"{face_key}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(str(path), make_frames(face, audio), 25.0)
    write_pairs(str(folder), pairs)


@pytest.fixture(scope="module")
def dubbed_sets(synthetic_corpus, tmp_path_factory):
    """Two dubbed sets of the test clips: a perfect one (the oracle itself) and a frozen mouth
    (the face clip's own frames)."""
    corpus = Path(synthetic_corpus)
    keys = (corpus / "test.txt").read_text().split()
    pairs = [(key, keys[(i + 1) % len(keys)]) for i, key in enumerate(keys)]
    root = tmp_path_factory.mktemp("dubbed")
    _write_dubbed(root / "perfect", corpus, pairs, corpus_oracle.render_oracle)
    _write_dubbed(root / "frozen", corpus, pairs,
                  lambda face, audio: corpus_oracle.source_frames(face, audio.num_frames))
    return corpus, root, pairs


def test_oracle_rows_separate_right_from_frozen_mouths(dubbed_sets):
    corpus, root, pairs = dubbed_sets
    perfect = evaluate_oracle(str(root / "perfect"), str(corpus), progress=False)
    frozen = evaluate_oracle(str(root / "frozen"), str(corpus), pairs=pairs, progress=False)
    assert [row["name"] for row in perfect["rows"]] == [
        "generated", "input unchanged (floor)", "oracle (ceiling)"]
    gen, floor, ceiling = (perfect["summary"][k] for k in ("generated", "floor", "ceiling"))
    # the perfect set went through the same codec as the ceiling: the same numbers
    assert gen["lower_psnr"] == pytest.approx(ceiling["lower_psnr"], abs=0.01)
    assert gen["lower_psnr"] > 27 and gen["opening_corr"] > 0.9
    assert floor["lower_psnr"] < gen["lower_psnr"] - 3 and floor["opening_corr"] < 0.5
    frozen_gen = frozen["summary"]["generated"]
    assert frozen_gen["lower_psnr"] == pytest.approx(frozen["summary"]["floor"]["lower_psnr"], abs=0.01)
    assert frozen["summary"]["floor"] == floor  # floor and ceiling depend on the pairs only
    entry = perfect["per_video"][0]
    assert entry["face"] == pairs[0][0] and entry["audio"] == pairs[0][1]
    assert len(entry["oracle_opening"]) == len(entry["generated"]["opening"]) == entry["frames"]


def test_oracle_report_files(dubbed_sets, tmp_path):
    corpus, root, _ = dubbed_sets
    result = evaluate_oracle(str(root / "perfect"), str(corpus), progress=False)
    lse_rows = [{"name": "generated", "num_videos": 2, "lse_d": 0.2, "lse_c": 0.3, "av_offset": 0,
                 "offsets": [-1, 0, 1], "mdist": [0.4, 0.2, 0.4]}]
    paths = write_report(str(tmp_path), lse_rows, {"title": "t"}, stem="both", oracle=result)
    text = Path(paths["markdown"]).read_text()
    assert "LSE-D" in text  # the LSE table stays first
    assert "| input unchanged (floor) |" in text and "| oracle (ceiling) |" in text
    assert json.loads(Path(paths["json"]).read_text())["oracle"]["rows"][0]["name"] == "generated"
    assert Path(paths["plot"]).is_file() and Path(paths["opening_plot"]).stat().st_size > 1000
    only = write_report(str(tmp_path), [], {"title": "oracle only"}, stem="only", oracle=result)
    assert "plot" not in only and "LSE-D" not in Path(only["markdown"]).read_text()


def test_bad_inputs_fail_clearly(dubbed_sets, tmp_path):
    corpus, root, pairs = dubbed_sets
    with pytest.raises(DataError, match="pairs.json"):
        read_pairs(str(tmp_path))
    with pytest.raises(DataError, match="is missing"):
        evaluate_oracle(str(tmp_path), str(corpus), pairs=pairs, progress=False)
    swapped = [(face, face) for face, _ in pairs]  # wrong audio: other frame counts
    if any(corpus_oracle.load_clip_plan(str(corpus / a)).num_frames
           != corpus_oracle.load_clip_plan(str(corpus / f)).num_frames for f, a in pairs):
        with pytest.raises(DataError, match="frames"):
            evaluate_oracle(str(root / "perfect"), str(corpus), pairs=swapped, progress=False)


def _run_evaluate(args):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, str(REPO_ROOT / "tools" / "evaluate.py"), *args],
                          capture_output=True, text=True, env=env, cwd=str(REPO_ROOT))


def test_evaluate_cli_oracle_on_dubbed_videos(dubbed_sets, tmp_path):
    corpus, root, _ = dubbed_sets
    proc = _run_evaluate(["--oracle", "--videos", str(root / "perfect"), "--reference", str(corpus),
                          "--out", str(tmp_path)])
    assert proc.returncode == 0, proc.stderr
    assert "| oracle (ceiling) |" in proc.stdout and (tmp_path / "oracle.json").is_file()
    bad = _run_evaluate(["--oracle", "--videos", str(root / "perfect")])
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error:")]
    assert bad.returncode != 0 and len(errors) == 1 and "--reference" in errors[0]


def test_evaluate_cli_oracle_dubs_with_a_generator(synthetic_corpus, tmp_path):
    import paddle
    from ppgan.models.generators.wav2lip import Wav2Lip
    from ppgan.utils.weights import save_weights_file

    paddle.seed(0)
    weights = tmp_path / "generator.pdparams"
    save_weights_file(Wav2Lip(width_mult=0.125).state_dict(), str(weights))
    out = tmp_path / "out"
    proc = _run_evaluate(["--oracle", "--generator", str(weights), "--reference",
                          str(synthetic_corpus), "--max-clips", "2", "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    assert "| input unchanged (floor) |" in proc.stdout
    report = json.loads((out / "oracle.json").read_text())
    assert [row["num_videos"] for row in report["oracle"]["rows"]] == [2, 2, 2]
    assert not (out / "reconstructed").exists()  # without --weights only the dubbed set is made
    assert len(read_pairs(str(out / "dubbed"))) == 2
