"""tools/main.py: flags, config errors as one line, evaluate-only, resolved config dump."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
import yaml

from tests import REPO_ROOT

REPO = str(REPO_ROOT)
DEMO_SYNCNET = os.path.join(REPO, "configs", "demo", "syncnet.yaml")
DEMO_WAV2LIP = os.path.join(REPO, "configs", "demo", "wav2lip.yaml")
LIPSYNC_ROWS = ("ground_truth", "generated", "shuffled_audio")


def load_tool():
    spec = importlib.util.spec_from_file_location("main_tool",
                                                  os.path.join(REPO, "tools", "main.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOL = load_tool()


def run_tool(argv, capsys):
    """Run tools/main.py in this process; returns (exit code, stderr)."""
    from ppgan.utils.cli import run_main
    with pytest.raises(SystemExit) as exit_info:
        run_main(TOOL.main, argv)
    return exit_info.value.code, capsys.readouterr().err


def tiny(corpus, out, *extra):
    return ["-c", DEMO_SYNCNET, "--output-dir", str(out), "-o",
            f"dataset.train.dataroot={corpus}", f"dataset.test.dataroot={corpus}",
            "model.syncnet.width_mult=0.125", "dataset.train.batch_size=4",
            "dataset.test.batch_size=4", "validate.max_eval_steps=2", "enable_visualdl=false",
            *extra]


def assert_one_error_line(code, err, pattern):
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1, err
    assert "Traceback" not in err
    import re
    assert re.search(pattern, lines[0]), lines[0]


def test_script_reports_a_bad_override_in_one_line(tmp_path):
    # The real script, as users run it (no install, from the repo root).
    result = subprocess.run([sys.executable, "tools/main.py", "-c", DEMO_SYNCNET, "-o",
                             "log_config.visiual_interval=5", "--output-dir", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: unknown override key 'log_config.visiual_interval'; closest existing key: "
        "'log_config.visual_interval'")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args, pattern", [
    (["--amp"], r"--amp needs a GPU"),
    (["--device", "gpu"], r"--device gpu: .*use --device cpu"),
    (["--resume", "a.pdparams", "--load", "b.pdparams"], r"--resume and --load exclude"),
    (["--resume", "missing.pdparams"], r"checkpoint not found: missing.pdparams"),
])
def test_flag_errors(args, pattern, synthetic_corpus, tmp_path, capsys):
    code, err = run_tool(tiny(synthetic_corpus, tmp_path / "run") + args, capsys)
    assert_one_error_line(code, err, pattern)


def test_config_file_errors(synthetic_corpus, tmp_path, capsys):
    code, err = run_tool(["-c", str(tmp_path / "nope.yaml")], capsys)
    assert_one_error_line(code, err, r"config file not found: .*nope.yaml")
    misspelt = tmp_path / "misspelt.yaml"
    misspelt.write_text(f"_base_: {DEMO_SYNCNET}\nlog_config:\n  visiual_interval: 5\n")
    code, err = run_tool(["-c", str(misspelt), "--output-dir", str(tmp_path / "o")], capsys)
    assert_one_error_line(code, err, r"unknown key 'log_config.visiual_interval' in .*misspelt.yaml"
                                     r"; did you mean 'visual_interval'")
    code, err = run_tool(tiny(synthetic_corpus, tmp_path / "o", "model.syncnet.name=SyncNet"),
                         capsys)
    assert_one_error_line(code, err, r"unknown discriminator name 'SyncNet'.*SyncNetColor")


def test_missing_expert_fails_before_training(synthetic_corpus, tmp_path, capsys):
    config = os.path.join(REPO, "configs", "demo", "wav2lip.yaml")
    code, err = run_tool(["-c", config, "--output-dir", str(tmp_path), "-o",
                          f"dataset.train.dataroot={synthetic_corpus}",
                          f"model.syncnet_weights={tmp_path / 'expert.pdparams'}"], capsys)
    assert_one_error_line(code, err, r"model.syncnet_weights: expert weights file not found")
    assert not any(name.endswith(".pdparams") for name in os.listdir(tmp_path))


def test_train_then_evaluate_only_and_truncated_resume(synthetic_corpus, tmp_path, capsys):
    run = tmp_path / "run"
    code, _ = run_tool(tiny(synthetic_corpus, run, "total_iters=2", "validate.interval=0",
                            "snapshot_config.interval=2") + ["--seed", "7"], capsys)
    assert code == 0
    dumped = yaml.safe_load((run / "config.yaml").read_text())
    assert dumped["seed"] == 7 and dumped["total_iters"] == 2 and dumped["output_dir"] == str(run)
    checkpoint = run / "iter_2_checkpoint.pdparams"

    evaluation = tmp_path / "eval"
    code, _ = run_tool(tiny(synthetic_corpus, evaluation) + ["--evaluate-only", "--resume",
                                                             str(checkpoint)], capsys)
    assert code == 0
    evaluation = evaluation / "eval" / "iter_2_checkpoint"  # --evaluate-only's own subfolder
    report = json.loads((evaluation / "eval_metrics.json").read_text())
    assert report["iteration"] == 2 and report["weights"] == str(checkpoint)
    assert set(report["metrics"]) == {"accuracy", "sync_loss"}
    assert 0.0 <= report["metrics"]["accuracy"] <= 1.0
    assert not list(evaluation.glob("*.pdparams"))               # evaluation writes no checkpoint
    assert "lipsync" not in report and not (evaluation / "evaluation").exists()  # no generator

    # --resume evaluates with the run's stored config (seed 7): give --load the same
    code, _ = run_tool(tiny(synthetic_corpus, tmp_path / "eval2") + ["--evaluate-only", "--load",
                                                                     str(checkpoint), "--seed", "7"],
                       capsys)
    loaded = json.loads((tmp_path / "eval2" / "eval" / "iter_2_checkpoint" / "eval_metrics.json").read_text())
    assert code == 0 and loaded["metrics"] == report["metrics"]  # same weights, same numbers

    truncated = tmp_path / "cut.pdparams"
    truncated.write_bytes(checkpoint.read_bytes()[:5000])
    code, err = run_tool(tiny(synthetic_corpus, tmp_path / "r") + ["--resume", str(truncated)],
                         capsys)
    assert_one_error_line(code, err, r"cut.pdparams is corrupt or truncated")


def test_evaluate_only_scores_a_generator_with_its_expert(synthetic_corpus, tmp_path, capsys):
    import paddle
    from ppgan.models.discriminators.syncnet import SyncNetColor
    from ppgan.models.generators.wav2lip import Wav2Lip
    from ppgan.utils.weights import save_weights_file

    paddle.seed(0)
    expert, generator = tmp_path / "expert.pdparams", tmp_path / "generator.pdparams"
    save_weights_file(SyncNetColor(width_mult=0.125).state_dict(), str(expert))
    save_weights_file(Wav2Lip(width_mult=0.125).state_dict(), str(generator))
    out = tmp_path / "eval"
    code, err = run_tool(["-c", DEMO_WAV2LIP, "--output-dir", str(out), "-o",
                          f"dataset.train.dataroot={synthetic_corpus}",
                          f"dataset.test.dataroot={synthetic_corpus}", f"model.syncnet_weights={expert}",
                          "model.generator.width_mult=0.125", "model.discriminator.width_mult=0.125",
                          "dataset.test.batch_size=2",
                          "validate.max_eval_steps=1", "enable_visualdl=false",
                          "--evaluate-only", "--max-clips", "2", "--load", str(generator)], capsys)
    assert code == 0, err
    out = out / "eval" / "generator"  # --evaluate-only's own subfolder of the run
    report = json.loads((out / "eval_metrics.json").read_text())
    assert report["split"] == "val" and "window_psnr" in report["metrics"]
    assert report["weights"] == str(generator) and {"l1_loss", "sync_loss"} <= set(report["metrics"])
    lipsync = report["lipsync"]
    assert lipsync["clips"] == 2  # the demo config's test split is the corpus's 2 val clips
    assert lipsync["reconstruction_psnr"] > 0 and 0 < lipsync["reconstruction_ssim"] <= 1
    assert "psnr" not in report["metrics"] and "psnr" not in lipsync  # one name per meaning
    evaluation = out / "evaluation"
    for stem in ("lipsync", "reconstruction"):
        for suffix in (".json", ".md", "_offsets.png"):
            assert (evaluation / f"{stem}{suffix}").is_file()
    # eval_metrics.json holds the three rows exactly as the written report has them
    written = json.loads((evaluation / "lipsync.json").read_text())["rows"]
    assert set(lipsync["rows"]) == set(LIPSYNC_ROWS)
    for key, row in zip(LIPSYNC_ROWS, written):
        assert lipsync["rows"][key] == {"lse_d": row["lse_d"], "lse_c": row["lse_c"],
                                        "num_videos": 2}
        assert row["lse_d"] > 0 and row["lse_c"] >= 0
    assert "| shuffled audio (floor) |" in (evaluation / "lipsync.md").read_text()
    assert "lip sync on 2 clips of the 'val' split: LSE-D" in (out / "log.txt").read_text()
    # a synthetic corpus: the dubbed clips are also scored against the oracle
    oracle = lipsync["oracle"]
    assert oracle["videos"] == 2 and oracle["ceiling_lower_psnr"] > oracle["floor_lower_psnr"]
    assert "| input unchanged (floor) |" in (evaluation / "lipsync.md").read_text()
    assert (evaluation / "lipsync_opening.png").is_file()
    assert "oracle: lower-half PSNR" in (out / "log.txt").read_text()


def test_max_clips_needs_evaluate_only_and_two_clips(tmp_path, capsys):
    for extra in (["--max-clips", "3"], ["--evaluate-only", "--max-clips", "1"]):
        code, err = run_tool(["-c", DEMO_SYNCNET, "--output-dir", str(tmp_path / "out")] + extra, capsys)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: --max-clips"), err
    assert not (tmp_path / "out").exists()
