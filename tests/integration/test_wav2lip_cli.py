"""tools/wav2lip.py: bad input gives one error line, exit code 2 and no output file; good input
writes a lip-synced video. Most cases call the tool's ``main`` through ``run_main`` in-process (as
``python tools/wav2lip.py`` does); two run it as a real subprocess."""

import os
import subprocess
import sys
import wave

import numpy as np
import pytest

from ppgan.utils.cli import run_main
from tests.apps.test_predictor import astronaut, make_speech, make_tiny_weights, write_image
from tests import REPO_ROOT, load_tool

REPO_ROOT = str(REPO_ROOT)
TOOL = os.path.join(REPO_ROOT, "tools", "wav2lip.py")


@pytest.fixture(scope="module")
def tool():
    return load_tool("wav2lip")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import av
    import paddle
    from ppgan.models.discriminators.syncnet import SyncNetColor
    from ppgan.utils.video import write_video
    from ppgan.utils.weights import save_weights_file

    folder = tmp_path_factory.mktemp("cli_media")
    paths = {"weights": make_tiny_weights(folder / "tiny.pdparams"),
             "speech": make_speech(folder / "speech.wav", 0.6),
             "photo": write_image(folder / "astronaut.png", astronaut(256)),
             "flat": write_image(folder / "flat.png", np.full((128, 128, 3), 140, np.uint8))}
    paths["garbage"] = str(folder / "garbage.mp4")
    with open(paths["garbage"], "wb") as f:
        f.write(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    paths["svg"] = str(folder / "face.svg")
    with open(paths["svg"], "w") as f:
        f.write('<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"></svg>')
    paths["silent_video"] = str(folder / "silent.mp4")  # video only: no audio stream
    write_video(paths["silent_video"], [np.full((64, 64, 3), 90, np.uint8)] * 5, 25)
    paths["empty_wav"] = str(folder / "empty.wav")
    with wave.open(paths["empty_wav"], "wb") as f:
        f.setnchannels(1), f.setsampwidth(2), f.setframerate(16000)
    paths["no_frames"] = str(folder / "no_frames.avi")  # a video stream holding zero frames
    with av.open(paths["no_frames"], "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        container.start_encoding()
    paddle.seed(0)
    paths["folder"] = str(folder)
    paths["syncnet"] = str(folder / "syncnet.pdparams")
    save_weights_file(SyncNetColor().state_dict(), paths["syncnet"])
    return paths


def run_tool(tool, capsys, **flags):
    """Run the CLI in-process; returns (exit code, stderr lines)."""
    argv = []
    for key, value in flags.items():
        argv += [f"--{key}"] + ([] if value is True else [str(value)])
    with pytest.raises(SystemExit) as exit_info:
        run_main(tool.main, argv)
    return exit_info.value.code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


BAD_INPUTS = {
    # case: (flags to change, words the error line must contain)
    "missing face": ({"face": "nowhere/face.mp4"}, "face file not found"),
    "missing audio": ({"audio": "nowhere/speech.wav"}, "audio file not found"),
    "unreadable media": ({"face": "garbage"}, "cannot read"),
    "video with no frames": ({"face": "no_frames"}, "no frames"),
    "audio with no stream": ({"audio": "silent_video"}, "no audio stream"),
    "zero-length audio": ({"audio": "empty_wav"}, "no samples"),
    "unsupported image type": ({"face": "svg"}, "images are not supported"),
    "no face in any frame": ({"face": "flat"}, "no face found in any"),
    "wrong architecture": ({"checkpoint_path": "syncnet"},
                           "syncnet.pdparams holds a lip-sync expert (SyncNet) state dict"),
    # issue 14: folders given as files, frame rates and thread counts out of range
    "face is a folder": ({"face": "folder"}, "is a folder; give a video or image file"),
    "audio is a folder": ({"audio": "folder"}, "is a folder; give an audio or video file"),
    "fps inf": ({"fps": "inf"}, "--fps must be between 1 and 120"),
    "fps huge": ({"fps": "100000"}, "--fps must be between 1 and 120"),
    "fps nan": ({"fps": "nan"}, "--fps must be between 1 and 120"),
    "negative threads": ({"threads": "-4"}, "--threads must be at least 1"),
    "no checkpoint": ({"checkpoint_path": None}, "--checkpoint_path"),
    "unsupported output": ({"outfile": "out.avi"}, "use one of"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_error_line_and_no_output(case, tool, files, tmp_path, capsys, monkeypatch):
    changes, expected = BAD_INPUTS[case]
    monkeypatch.setenv("HOME", str(tmp_path))  # no released weights cached for "no checkpoint"
    monkeypatch.delenv("PPGAN_HOME", raising=False)
    flags = {"face": files["photo"], "audio": files["speech"], "checkpoint_path": files["weights"],
             "outfile": "out.mp4"}
    for key, value in changes.items():
        flags[key] = files.get(value, value) if value is not None else None
    flags = {k: v for k, v in flags.items() if v is not None}
    flags["outfile"] = str(tmp_path / "results" / flags["outfile"])
    code, errors = run_tool(tool, capsys, **flags)
    assert code == 2
    assert len(errors) == 1 and errors[0].startswith("error: ") and expected in errors[0], errors
    assert len(errors[0]) < 500, errors  # one readable line, not a dump of key lists
    leftovers = list((tmp_path / "results").iterdir()) if (tmp_path / "results").exists() else []
    assert leftovers == []


def test_outfile_naming_an_input_is_refused(tool, files, tmp_path, capsys):
    """--outfile equal to --face or --audio, by the same name, another spelling, a symlink or a
    hard link, would replace the user's input: refused before anything is written."""
    folder = tmp_path / "media"
    folder.mkdir()
    video = folder / "clip.mp4"
    video.write_bytes(open(files["silent_video"], "rb").read())
    original = video.read_bytes()
    (folder / "link.mp4").symlink_to(video)
    os.link(video, folder / "hard.mp4")
    spellings = [str(video), str(folder / ".." / "media" / "clip.mp4"), str(folder / "link.mp4"),
                 str(folder / "hard.mp4"), os.path.relpath(video)]
    for outfile in spellings:
        for flag, other in (("face", "audio"), ("audio", "face")):
            flags = {flag: str(video), other: files["speech"] if other == "audio" else files["photo"],
                     "checkpoint_path": files["weights"], "outfile": outfile}
            code, errors = run_tool(tool, capsys, **flags)
            assert code == 2 and len(errors) == 1, (outfile, errors)
            assert f"is the same file as --{flag}" in errors[0], errors
    assert video.read_bytes() == original and sorted(os.listdir(folder)) == \
        ["clip.mp4", "hard.mp4", "link.mp4"]


def test_cli_lip_syncs_a_photo_with_real_flags(tool, files, tmp_path, capsys):
    out = tmp_path / "photo.mp4"
    code, errors = run_tool(tool, capsys, face=files["photo"], audio=files["speech"],
                            checkpoint_path=files["weights"], outfile=out, nosmooth=True,
                            blend="hard", wav2lip_batch_size=8, resize_factor=2, engine="dynamic")
    assert code == 0
    from ppgan.utils.video import probe_video
    info = probe_video(out)
    assert info.num_frames == 15 and (info.width, info.height) == (128, 128) and info.has_audio


def test_boolean_flags_are_real_flags(tool):
    args = tool.parse_args(["--face", "f.mp4", "--audio", "a.wav", "--static", "--rotate"])
    assert args.static is True and args.rotate is True and args.nosmooth is False
    with pytest.raises(SystemExit):
        tool.parse_args(["--face", "f.mp4", "--audio", "a.wav", "--rotate", "False"])


def _subprocess(args):
    return subprocess.run([sys.executable, TOOL] + args, cwd=REPO_ROOT, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=300)


def test_tool_runs_as_a_script_from_the_repo_root(files, tmp_path):
    out = tmp_path / "still.mp4"
    done = _subprocess(["--face", files["photo"], "--audio", files["speech"], "--checkpoint_path",
                        files["weights"], "--outfile", str(out), "--box", "60", "200", "60", "200",
                        "--engine", "dynamic"])
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and out.is_file()


def test_tool_script_reports_errors_in_one_line(files, tmp_path):
    done = _subprocess(["--face", files["flat"], "--audio", files["speech"], "--checkpoint_path",
                        files["weights"], "--outfile", str(tmp_path / "out.mp4")])
    errors = [line for line in done.stderr.splitlines() if line.strip() and "Warning" not in line
              and "warnings.warn" not in line]
    assert done.returncode == 2 and len(errors) == 1 and errors[0].startswith("error: no face")
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGHUP"])
def test_termination_signals_clean_up_like_ctrl_c(files, tmp_path, signum):
    """kill / a closed terminal during rendering: one error line, exit 128 + N, and no hidden
    ``.partial`` video left behind (issue 14, item 14)."""
    import signal
    import time

    speech = make_speech(tmp_path / "long.wav", 30.0)
    results = tmp_path / "results"
    results.mkdir()
    process = subprocess.Popen(
        [sys.executable, TOOL, "--face", files["photo"], "--audio", speech, "--checkpoint_path",
         files["weights"], "--outfile", str(results / "out.mp4"), "--box", "60", "200", "60", "200",
         "--engine", "dynamic"], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 240
    while not os.listdir(results) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None and os.listdir(results), "the video was never started"
    number = getattr(signal, signum)
    process.send_signal(number)
    _, stderr = process.communicate(timeout=300)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert process.returncode == 128 + number, stderr[-2000:]
    assert lines[-1] == f"error: stopped by {signum}", stderr[-2000:]
    assert os.listdir(results) == []
