"""Logger (console on rank 0, one file per rank), rank helpers and the CLI error wrapper."""

import os
import subprocess
import sys
import textwrap

from ppgan.utils import comm
from ppgan.utils.logger import setup_logger
from tests import REPO_ROOT

REPO = REPO_ROOT


def test_rank_helpers_read_launcher_env(monkeypatch):
    monkeypatch.delenv("PADDLE_TRAINER_ID", raising=False)
    monkeypatch.delenv("PADDLE_TRAINERS_NUM", raising=False)
    assert (comm.get_rank(), comm.get_world_size(), comm.is_main_process()) == (0, 1, True)
    monkeypatch.setenv("PADDLE_TRAINER_ID", "1")
    monkeypatch.setenv("PADDLE_TRAINERS_NUM", "2")
    assert (comm.get_rank(), comm.get_world_size(), comm.is_main_process()) == (1, 2, False)


def run_logger(tmp_path, rank):
    code = textwrap.dedent(f"""
        from ppgan.utils.logger import setup_logger
        setup_logger({str(tmp_path)!r}).info("hello from the run")
    """)
    env = {"PADDLE_TRAINER_ID": str(rank), "PADDLE_TRAINERS_NUM": "2", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(REPO)}  # this checkout's ppgan, whatever the installed one is
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          check=True)


def test_console_only_on_rank0_and_one_file_per_rank(tmp_path):
    out0 = run_logger(tmp_path, 0)
    out1 = run_logger(tmp_path, 1)
    assert "hello from the run" in out0.stdout
    assert out1.stdout == "" and out1.stderr == ""
    assert "hello from the run" in (tmp_path / "log.txt").read_text()
    assert "hello from the run" in (tmp_path / "log.txt.rank1").read_text()


def test_setup_twice_does_not_duplicate_handlers(tmp_path):
    logger = setup_logger(str(tmp_path), name="ppgan.test")
    logger = setup_logger(str(tmp_path), name="ppgan.test")
    assert len(logger.handlers) == 2
    for handler in logger.handlers:
        handler.close()


def test_cli_wrapper_turns_user_errors_into_one_line():
    code = textwrap.dedent("""
        from ppgan.utils.cli import run_main
        from ppgan.utils.errors import ConfigError
        def main(argv):
            raise ConfigError("unknown key 'x' in model")
        run_main(main)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: unknown key 'x' in model"
