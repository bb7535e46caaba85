"""SIGTERM stops a benchmark script, not only the run it is training.

The trainer takes SIGINT/SIGTERM to end its run after the step and save it, then returns
as at the end of its budget; a script that trains run after run must stop there too
(exit 143), and one whose runs train in a pool's workers must leave none running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _processes import group, kill_started, start, wait_for

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"

pytest.importorskip("aeon")
pytest.importorskip("statsmodels")


@pytest.fixture(autouse=True)
def _no_leftovers():
    """Whatever a test leaves running in its scripts' process groups is killed."""
    yield
    kill_started()


def _start(script: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(BENCH), "OMP_NUM_THREADS": "1"}
    return start([sys.executable, str(BENCH / script), *args], ROOT, env)


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=120)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table in /proc")
def test_sigterm_stops_forecast_py_after_the_run_it_is_training(tmp_path):
    runs = tmp_path / "runs"
    proc = _start("forecast.py", "--sets", "nile,lynx", "--steps", "100000", "--runs", str(runs))
    wait_for(runs / "nile" / "config.json", proc)
    _, err = _stop(proc)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM; the run is saved" in err
    assert not (runs / "lynx").exists()  # the next set never started
    assert (runs / "nile" / "metrics.csv").is_file() or (runs / "nile" / "config.json").is_file()
    assert not group(proc.pid)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table in /proc")
def test_sigterm_stops_forecast_check_py_and_its_workers(tmp_path):
    runs = tmp_path / "runs"
    proc = _start(
        "forecast_check.py", "--sets", "nile", "--seeds", "0,1,2", "--jobs", "1",
        "--runs", str(runs),
    )  # fmt: skip
    wait_for(runs, proc)
    while not any(runs.glob("*/config.json")):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    _, err = _stop(proc)
    assert proc.returncode == 143, err
    deadline = time.monotonic() + 60
    while group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not group(proc.pid), "a worker is still running"
    assert len(list(runs.glob("*/config.json"))) == 1  # no worker took the next run
