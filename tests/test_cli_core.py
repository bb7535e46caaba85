"""The command line's shell: version, help, the demo, and one-line errors with status 2."""

from __future__ import annotations

import subprocess
import sys

import rnnkit
from rnnkit.cli import main
from rnnkit.demo import BASELINE_MSE, run_demo


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rnnkit", *args], capture_output=True, text=True, timeout=120
    )


def test_version_and_help():
    done = _run("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"rnnkit {rnnkit.__version__}"
    done = _run("--help")
    assert done.returncode == 0
    assert "demo" in done.stdout


def test_bad_option_value_is_one_line_and_status_2():
    done = _run("demo", "--steps", "-3")
    assert done.returncode == 2
    assert "expected a positive integer; got -3" in done.stderr
    assert "Traceback" not in done.stderr


def test_library_value_error_becomes_one_line(capsys):
    assert main(["demo", "--length", "1", "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "rnnkit demo: error: --length must be at least 2; got 1"


def test_demo_loss_falls_below_the_baseline():
    lines: list[str] = []
    history = run_demo(steps=300, length=20, log=lines.append)
    assert history[-1] < 0.25 * BASELINE_MSE
    assert lines[0].startswith("adding problem, T = 20")
