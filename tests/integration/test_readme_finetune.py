"""The README's "Train on your own footage" commands, read from the README itself, run end to end
on a tiny synthetic raw-video corpus: preprocessing, the expert check, fine-tuning released
weights and inference. Only documented flags are added (``-o`` for tiny widths and iterations,
``--box`` because the drawn faces are not faces to the Haar cascade), so the README stays true."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from tests import REPO_ROOT

REPO = REPO_ROOT
SECTION = "### Train on your own footage"

# What the test adds to each README command, by the config or tool it runs.
TINY = {
    "configs/finetune_syncnet.yaml": ["-o", "model.syncnet.width_mult=0.125", "dataset.test.batch_size=2",
                                      "validate.max_eval_steps=1", "enable_visualdl=false"],
    "configs/finetune.yaml": ["-o", "model.generator.width_mult=0.0625", "model.discriminator.width_mult=0.125",
                              "total_iters=2", "validate.interval=2", "validate.max_eval_steps=1",
                              "snapshot_config.interval=2", "log_config.interval=1",
                              "log_config.visual_interval=2", "dataset.train.batch_size=2",
                              "dataset.test.batch_size=2", "dataset.train.num_workers=0",
                              "enable_visualdl=false"],
    "tools/preprocess.py": ["--quiet"],
}


def readme_commands():
    """The shell commands of the README section, continuation lines joined, comments dropped."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n### ", start + len(SECTION))
    section = text[start:end if end >= 0 else None]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                commands.append(shlex.split(line))
    return commands


def test_readme_section_has_the_four_steps():
    tools = [command[1] for command in readme_commands()]
    assert tools == ["tools/preprocess.py", "tools/main.py", "tools/main.py", "tools/wav2lip.py"]
    for command in readme_commands():
        # the corpus path is given once per command, as dataroot
        assert sum("dataroot" in arg for arg in command) <= 1


@pytest.fixture
def workplace(synthetic_corpus_raw, tmp_path):
    """A user's folder: my_videos/ (the raw synthetic videos and their boxes.json), the released
    weights at tiny widths, new speech."""
    import paddle
    from ppgan.models.discriminators.syncnet import SyncNetColor
    from ppgan.models.generators.wav2lip import Wav2Lip
    from ppgan.utils.weights import save_weights_file
    from tests.apps.test_predictor import make_speech

    shutil.copytree(synthetic_corpus_raw / "raw", tmp_path / "my_videos")
    paddle.seed(0)
    save_weights_file(SyncNetColor(width_mult=0.125).state_dict(), str(tmp_path / "syncnet.pdparams"))
    save_weights_file(Wav2Lip(width_mult=0.0625).state_dict(), str(tmp_path / "wav2lip_hq.pdparams"))
    make_speech(tmp_path / "new_speech.wav", 0.6)
    return tmp_path


def localise(command, workplace):
    """Point the README command at this checkout and the test's files; add the tiny flags."""
    boxes = json.loads((workplace / "my_videos" / "boxes.json").read_text())
    face_key = sorted(boxes)[0]
    argv = [sys.executable if command[0] == "python" else command[0]]
    for arg in command[1:]:
        if arg.startswith(("tools/", "configs/")):
            argv.append(str(REPO / arg))
        elif arg == "my_videos/talk.mp4":  # the README's example name for one of the user's videos
            argv.append(f"my_videos/{face_key}.mp4")
        else:
            argv.append(arg)
    for key, extra in TINY.items():
        if key in command:
            argv += extra
    if command[1] == "tools/wav2lip.py":
        argv += ["--box", *map(str, boxes[face_key]), "--engine", "dynamic"]
    return argv


def test_readme_finetune_commands_run_end_to_end(workplace):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for command in readme_commands():
        done = subprocess.run(localise(command, workplace), cwd=workplace, env=env, capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, timeout=900)
        assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    corpus = workplace / "data" / "my_speaker"
    assert all((corpus / f"{split}.txt").read_text().strip() for split in ("train", "val"))
    # --evaluate-only writes into eval/<checkpoint name>/ of the run folder
    expert = json.loads((workplace / "output" / "finetune_syncnet" / "eval" / "syncnet" / "eval_metrics.json").read_text())
    assert 0.0 <= expert["metrics"]["accuracy"] <= 1.0 and expert["split"] == "val"
    assert (workplace / "output" / "finetune" / "best.pdparams").is_file()
    assert (workplace / "results" / "my_speaker.mp4").stat().st_size > 0
