"""Evaluation of generated videos: report files, the three rows, PSNR / SSIM, the CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ppgan.apps.clips import find_clips
from ppgan.apps.evaluate import ROW_NAMES, evaluate_videos, lse_gap_summary
from ppgan.metrics.image import PairedFrameMetrics, video_psnr_ssim
from ppgan.metrics.report import markdown_table, write_report
from ppgan.utils.errors import DataError
from tests.metrics.test_lse import MouthEnergyScorer, _delay
from tests import REPO_ROOT

ROOT = str(REPO_ROOT)


def _write_clip_folder(folder, frames, wav):
    import cv2
    from ppgan.utils.audio import save_wav

    os.makedirs(folder)
    for index, frame in enumerate(frames):
        cv2.imwrite(os.path.join(folder, f"{index}.jpg"), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
    save_wav(os.path.join(folder, "audio.wav"), wav)


@pytest.fixture(scope="module")
def video_sets(tmp_path_factory):
    """Reference clip folders plus generated videos: exact copies (a perfect generator) and a
    copy whose audio is delayed by 3 frames."""
    from ppgan.corpus_tools.synthetic_faces import synthesize_clip
    from ppgan.corpus_tools.synthetic_voice import random_speaker
    from ppgan.utils.video import write_video

    root = tmp_path_factory.mktemp("eval")
    refs, perfect, delayed = root / "refs", root / "perfect", root / "delayed"
    for index in range(3):
        speaker = random_speaker(np.random.default_rng([7, index]))
        frames, wav, _ = synthesize_clip(np.random.default_rng([11, index]), speaker, 90)
        key = f"speaker{index:02d}/00000"
        _write_clip_folder(str(refs / key), frames, wav)
        for folder, audio in ((perfect, wav), (delayed, _delay(wav, 3))):
            os.makedirs(folder / f"speaker{index:02d}", exist_ok=True)
            write_video(str(folder / f"{key}.mp4"), frames, 25, audio=audio)
            if folder == perfect and index < 2:  # two short copies for the (slower) CLI test
                os.makedirs(root / "short", exist_ok=True)
                write_video(str(root / "short" / f"{index}.mp4"), frames[:30], 25,
                            audio=wav[:30 * 640])
    return {"refs": str(refs), "perfect": str(perfect), "delayed": str(delayed),
            "short": str(root / "short")}


def test_report_has_three_rows_and_all_files(video_sets, tmp_path):
    out = tmp_path / "report"
    result = evaluate_videos(video_sets["perfect"], video_sets["refs"], scorer=MouthEnergyScorer(),
                             out_dir=str(out), progress=False)
    for kind in ("json", "markdown", "plot"):
        assert os.path.isfile(result["paths"][kind])
    assert sorted(os.listdir(out)) == ["evaluation.json", "evaluation.md", "evaluation_offsets.png"]
    with open(result["paths"]["plot"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    with open(result["paths"]["json"]) as f:
        report = json.load(f)
    names = [row["name"] for row in report["rows"]]
    assert names == list(ROW_NAMES)
    gt, gen, floor = report["rows"]
    assert gt["num_videos"] == gen["num_videos"] == floor["num_videos"] == 3
    assert len(gen["mdist"]) == 31 and gen["offsets"][0] == -15
    # A perfect generator scores like the ground truth and clearly above the floor.
    assert gen["av_offset"] == 0
    assert gen["lse_d"] == pytest.approx(gt["lse_d"], abs=0.05)
    assert gen["lse_d"] < floor["lse_d"] and gen["lse_c"] > floor["lse_c"]
    assert lse_gap_summary(report["rows"])["closer_to_ground_truth"]
    # H.264 copies of the frames: high but finite PSNR, SSIM near 1
    assert 28 < gen["psnr"] < 80 and 0.85 < gen["ssim"] <= 1.0
    assert len(report["per_video"]) == 3 and "shuffled_audio" in report["per_video"][0]

    with open(result["paths"]["markdown"], encoding="utf-8") as f:
        text = f.read()
    for name in ROW_NAMES:
        assert f"| {name} |" in text
    assert "LSE-D" in text and "LSE-C" in text


def test_delayed_audio_shows_in_the_generated_row(video_sets, tmp_path):
    result = evaluate_videos(video_sets["delayed"], video_sets["refs"], scorer=MouthEnergyScorer(),
                             out_dir=str(tmp_path), image_metrics=False, progress=False)
    gt, gen, _ = result["rows"]
    assert abs(gen["av_offset"] - 3) <= 1 and gt["av_offset"] == 0
    assert gen["psnr"] is None  # image metrics were switched off


def test_without_references_the_ground_truth_row_says_why(video_sets, tmp_path):
    result = evaluate_videos(video_sets["perfect"], None, scorer=MouthEnergyScorer(),
                             out_dir=str(tmp_path), progress=False)
    gt = result["rows"][0]
    assert gt["lse_d"] is None and gt["num_videos"] == 0 and "--reference" in gt["note"]
    assert "--reference" in result["markdown"]
    assert lse_gap_summary(result["rows"]) is None


def test_bad_folders_fail_clearly(video_sets, tmp_path):
    with pytest.raises(DataError, match="no videos"):
        evaluate_videos(str(tmp_path), scorer=MouthEnergyScorer(), progress=False)
    with pytest.raises(DataError, match="not found"):
        evaluate_videos(str(tmp_path / "missing"), scorer=MouthEnergyScorer(), progress=False)
    other = tmp_path / "other_refs"
    other.mkdir()
    with pytest.raises(DataError, match="matches"):
        evaluate_videos(video_sets["perfect"], str(other), scorer=MouthEnergyScorer(),
                        out_dir=str(tmp_path / "out"), progress=False)
    assert not (tmp_path / "out").exists()  # nothing written for a failed evaluation


def test_clip_discovery_pairs_folders_and_videos(video_sets):
    refs = find_clips(video_sets["refs"], allow_folders=True)
    gens = find_clips(video_sets["perfect"])
    assert sorted(refs) == sorted(gens) == [f"speaker{i:02d}/00000" for i in range(3)]
    assert all(os.path.isdir(p) for p in refs.values())
    assert all(p.endswith(".mp4") for p in gens.values())


# ------------------------------------------------------------------------------ image metrics

def test_psnr_and_ssim_values():
    rng = np.random.default_rng(0)
    frame = rng.integers(20, 200, size=(32, 48, 3)).astype(np.uint8)
    brighter = frame + 10  # MSE 100 everywhere
    result = video_psnr_ssim([brighter, brighter], [frame, frame])
    assert result["psnr"] == pytest.approx(10 * np.log10(255 ** 2 / 100.0))
    assert result["frames"] == 2 and 0 < result["ssim"] < 1
    same = video_psnr_ssim([frame], [frame])
    assert same["psnr"] == float("inf") and same["ssim"] == pytest.approx(1.0)
    assert video_psnr_ssim([], [frame]) is None
    with pytest.raises(DataError, match="differs"):
        PairedFrameMetrics("clip").update(frame[:16], frame)


def test_report_writer_formats_missing_and_infinite_values(tmp_path):
    rows = [{"name": "a", "num_videos": 1, "lse_d": 1.23456, "lse_c": 0.5, "av_offset": -2,
             "psnr": float("inf"), "ssim": 1.0, "sync_accuracy": 0.925,
             "offsets": [-1, 0, 1], "mdist": [2.0, 1.23456, 2.0]},
            {"name": "b", "num_videos": 0, "note": "nothing to score"}]
    table = markdown_table(rows)
    assert "| a | 1 | 1.235 | 0.500 | -2 | ∞ | 1.0000 | 92.5% |" in table
    assert "| b | 0 | – | – | – | – | – | – |" in table and "- b: nothing to score" in table
    paths = write_report(str(tmp_path), rows, {"scorer": "test"})
    with open(paths["json"]) as f:
        data = json.load(f)
    assert data["rows"][0]["psnr"] == "inf" and data["meta"]["scorer"] == "test"
    assert not [n for n in os.listdir(tmp_path) if ".tmp" in n]


# ------------------------------------------------------------------------------------ the CLI

def _run_tool(*args):
    return subprocess.run([sys.executable, os.path.join(ROOT, "tools", "evaluate.py"), *args],
                          capture_output=True, text=True, cwd=ROOT, stdin=subprocess.DEVNULL,
                          timeout=300)


def test_cli_writes_the_report_with_an_expert_checkpoint(video_sets, tmp_path):
    import paddle
    from ppgan.models.discriminators.syncnet import SyncNetColor
    from ppgan.utils.weights import save_weights_file

    paddle.seed(1)
    weights = tmp_path / "expert.pdparams"
    save_weights_file(SyncNetColor(width_mult=0.125).state_dict(), str(weights))
    out = tmp_path / "cli_report"
    # the references of the short videos are themselves: a perfect generator again
    proc = _run_tool("--videos", video_sets["short"], "--reference", video_sets["short"],
                     "--weights", str(weights), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "| ground truth |" in proc.stdout and "| shuffled audio (floor) |" in proc.stdout
    with open(out / "evaluation.json") as f:
        report = json.load(f)
    assert report["meta"]["scorer"] == "expert"
    assert [row["num_videos"] for row in report["rows"]] == [2, 2, 2]
    gt, gen, _ = report["rows"]
    assert gen["lse_d"] == pytest.approx(gt["lse_d"]) and gen["psnr"] == "inf"
    assert gen["sync_accuracy"] is not None  # the expert also scores sync pairs


def test_cli_errors_are_one_line(tmp_path):
    proc = _run_tool("--videos", str(tmp_path / "nowhere"), "--weights", str(tmp_path / "w.pdparams"))
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "w.pdparams" in errors[0]
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------- a generator on a config's split

def test_generator_evaluation_on_the_test_split(synthetic_corpus, tmp_path):
    import paddle
    from ppgan.apps.evaluate import evaluate_generator_from_config
    from ppgan.datasets.corpus import read_filelist
    from ppgan.models.discriminators.syncnet import SyncNetColor
    from ppgan.models.generators.wav2lip import Wav2Lip
    from ppgan.utils.video import probe_video

    paddle.seed(0)
    cfg = {"dataset": {"test": {"dataroot": str(synthetic_corpus), "filelist": "test"}},
           "output_dir": str(tmp_path)}
    result = evaluate_generator_from_config(cfg, Wav2Lip(width_mult=0.125),
                                            SyncNetColor(width_mult=0.125), max_clips=2,
                                            progress=False)
    keys = read_filelist(str(synthetic_corpus / "test.txt"))[:2]
    out = tmp_path / "evaluation"
    for key, other in ((keys[0], keys[1]), (keys[1], keys[0])):
        for folder in ("sources", "reconstructed", "dubbed"):
            assert (out / folder / f"{key}.mp4").is_file()
        # a dubbed face plays for as long as the other clip's audio
        other_frames = len([n for n in os.listdir(synthetic_corpus / other) if n.endswith(".jpg")])
        assert abs(probe_video(str(out / "dubbed" / f"{key}.mp4")).duration - other_frames / 25) < 0.05
    for stem in ("lipsync", "reconstruction"):
        for suffix in (".json", ".md", "_offsets.png"):
            assert (out / f"{stem}{suffix}").is_file()
    lipsync_rows = result["lipsync"]["rows"]
    assert [row["num_videos"] for row in lipsync_rows] == [2, 2, 2]
    assert lipsync_rows[1]["psnr"] is None  # no image metrics for dubbed videos
    summary = result["summary"]
    assert summary["clips"] == 2 and summary["psnr"] > 0 and 0 < summary["ssim"] <= 1
    assert set(summary["lipsync"]) == {"ground_truth", "generated", "floor", "closer_to_ground_truth"}
    # the synthetic corpus carries oracle plans: the dubbed clips get the oracle rows too
    assert [row["name"] for row in result["oracle"]["rows"]] == [
        "generated", "input unchanged (floor)", "oracle (ceiling)"]
    assert json.loads((out / "lipsync.json").read_text())["oracle"]["rows"][2]["lower_psnr"] > 25
    assert summary["oracle"]["videos"] == 2


def test_generation_uses_the_offset_the_generator_was_trained_with():
    from ppgan.apps.evaluate import trained_mel_frame_offset
    from ppgan.utils.config import AttrDict

    unset = AttrDict({"dataset": {"train": {"name": "Wav2LipDataset"}}})
    assert trained_mel_frame_offset(unset) == -1  # the dataset's default: the reference's windows
    as_inference = AttrDict({"dataset": {"train": {"mel_frame_offset": 0}}})
    assert trained_mel_frame_offset(as_inference) == 0
