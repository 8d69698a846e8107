"""The demo (tools/demo.py): a smoke run of the whole pipeline with tiny iteration counts."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _demo_module():
    spec = importlib.util.spec_from_file_location("demo_tool", os.path.join(ROOT, "tools", "demo.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_demo_runs_every_stage(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "demo.py"), "--out", str(out),
                           "--quick", "--nproc", "1"], capture_output=True, text=True, cwd=ROOT,
                          stdin=subprocess.DEVNULL, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "## Demo summary" in proc.stdout and "| shuffled audio (floor) |" in proc.stdout

    from ppgan.utils.video import probe_video
    info = probe_video(str(out / "result.mp4"))
    assert info.has_audio and info.width == info.height == 96

    import cv2
    grid = cv2.imread(str(out / "grid.png"))
    assert grid.shape == (3 * 96, 6 * 96, 3)  # input / generated / audio speaker, 6 times

    with open(out / "summary.json") as f:
        summary = json.load(f)
    assert list(summary["seconds"]) == ["corpus", "expert training", "expert evaluation",
                                        "generator training", "HQ generator training",
                                        "evaluation", "inference"]
    assert 0.0 <= summary["expert_accuracy"] <= 1.0
    assert [row["name"] for row in summary["lipsync_rows"]] == [
        "ground truth", "generated", "shuffled audio (floor)"]
    assert summary["lipsync_gap"] is not None and summary["psnr"] > 0
    oracle = summary["oracle"]
    for key in ("lower_psnr", "lower_ssim", "opening_corr", "floor_lower_psnr"):
        assert key in oracle
    assert oracle["ceiling_lower_psnr"] > oracle["floor_lower_psnr"]
    assert "input unchanged (floor)" in (out / "summary.md").read_text()
    for name in ("syncnet/best.pdparams", "wav2lip/best.pdparams", "wav2lip_hq/best.pdparams",
                 "syncnet_test/eval_metrics.json", "evaluation/lipsync.md",
                 "evaluation/reconstruction_offsets.png", "summary.md"):
        assert (out / name).is_file(), name
    # the face of one held-out clip was driven by the other's audio
    assert summary["inference"]["face"] != summary["inference"]["audio"]


def test_demo_refuses_a_foreign_folder(tmp_path):
    from ppgan.utils.errors import ConfigError

    demo = _demo_module()
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty"):
        demo.prepare_out(str(tmp_path))
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    # a folder an earlier demo wrote is replaced
    earlier = tmp_path / "earlier"
    demo.prepare_out(str(earlier))
    (earlier / "stale.txt").write_text("old run")
    demo.prepare_out(str(earlier))
    assert sorted(os.listdir(earlier)) == [demo.MARKER]
