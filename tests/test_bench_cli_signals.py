"""Ctrl-C and SIGTERM stop the benchmark scripts that train in other processes, whichever
process the signal reaches: no traceback, exit 130 or 143, no process of theirs left
running, and no next run started.

A terminal's Ctrl-C reaches the whole process group; `kill PID` (or a task manager) one
process, the script or one of its workers.
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

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

pytestmark = pytest.mark.skipif(
    not Path("/proc").is_dir(), reason="reads the process table in /proc"
)


@pytest.fixture(autouse=True)
def _no_leftovers():
    yield
    kill_started()


def _start(script: str, *args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return start([sys.executable, str(BENCHMARKS / script), *args], cwd, env, ctrl_c=True)


def _workers(proc: subprocess.Popen[str]) -> list[int]:
    return [pid for pid, cmd in group(proc.pid).items() if "spawn_main" in cmd]


def _ended(proc: subprocess.Popen[str], seconds: float = 120) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {seconds} s after the signal")


def _no_group_left(pgid: int) -> None:
    deadline = time.monotonic() + 30
    while group(pgid) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert group(pgid) == {}


ROWS = ("--rows", "adding-100-rnn,adding-100-lstm")  # the first trains for minutes


def test_sigterm_to_a_long_memory_worker_ends_the_script(tmp_path: Path) -> None:
    # The worker stopped its row and exited; the pool started a new worker, handed it the
    # next row, and the script then waited for ever for the stopped row's result.
    proc = _start("long_memory.py", *ROWS, "--results", "res", cwd=tmp_path)
    wait_for(tmp_path / "res" / "runs" / "adding-100-rnn" / "config.json", proc)
    (worker,) = _workers(proc)
    os.kill(worker, signal.SIGTERM)
    _, err = _ended(proc)
    assert (proc.returncode, err) == (143, "stopped by SIGTERM; the run is saved\n")
    assert not (tmp_path / "res" / "runs" / "adding-100-lstm").exists()
    _no_group_left(proc.pid)


def test_ctrl_c_stops_long_memory_without_a_traceback(tmp_path: Path) -> None:
    # The script ended in a KeyboardInterrupt traceback from inside the pool.
    proc = _start("long_memory.py", *ROWS, "--results", "res", cwd=tmp_path)
    wait_for(tmp_path / "res" / "runs" / "adding-100-rnn" / "config.json", proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = _ended(proc)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert not (tmp_path / "res" / "runs" / "adding-100-lstm").exists()
    _no_group_left(proc.pid)


LM = ("--minutes", "2", "--models", "lstm,gru", "--eval-chars", "2000", "--curve-s", "600")


def _lm_worker(proc: subprocess.Popen[str], seconds: float = 120) -> int:
    end = time.monotonic() + seconds
    while True:
        workers = [pid for pid, cmd in group(proc.pid).items() if "--worker" in cmd]
        if workers:
            return workers[0]
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "no worker started"
        time.sleep(0.2)


def test_sigterm_to_lm_vs_transformer_leaves_no_worker_running(tmp_path: Path) -> None:
    # The script died at once and its worker trained on, alone, to the end of its budget,
    # then failed writing to the closed pipe (BrokenPipeError).
    proc = _start("lm_vs_transformer.py", *LM, "--out", "out", cwd=tmp_path)
    _lm_worker(proc)
    time.sleep(3)  # into its training
    proc.send_signal(signal.SIGTERM)
    _, err = _ended(proc, 60)
    assert (proc.returncode, err) == (143, "")
    _no_group_left(proc.pid)
    assert not (tmp_path / "out").exists()


def test_ctrl_c_stops_lm_vs_transformer_without_a_traceback(tmp_path: Path) -> None:
    # Both the script and its worker ended in KeyboardInterrupt tracebacks.
    proc = _start("lm_vs_transformer.py", *LM, "--out", "out", cwd=tmp_path)
    _lm_worker(proc)
    time.sleep(3)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = _ended(proc, 60)
    assert (proc.returncode, err) == (130, "")
    _no_group_left(proc.pid)
