"""Five defects of the benchmark scripts, each pinned where it was found:

- classify.py on a user's files named as a shipped dataset's replaced that dataset's saved
  row, and the table presented the user's files as the shipped benchmark;
- tag.py's --k had no upper bound, and a large one ran out of memory after the training;
- after Ctrl-C, a pool's worker of long_memory.py and forecast_check.py said "stopped by
  SIGTERM" (the pool's terminate() reached its trainer after the SIGINT), and a Ctrl-C
  while the workers started ended one in a KeyboardInterrupt traceback;
- forecast_check.py's last line named the main process's threads, not the runs';
- classify.py's MiniRocket ended in aeon's traceback on series under 9 steps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from _processes import group, kill_started, start, wait_for

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import _args  # noqa: E402
import _timing  # noqa: E402

# ---- classify.py: a user's files are rows of their own --------------------------------


def _shipped_row() -> dict[str, Any]:
    method = {"accuracy": 0.985, "seconds": 130.0}
    return {
        "rnnkit": {**method, "cell": "lstm:1.5"},
        "MiniRocket": dict(method),
        "1-NN DTW": dict(method),
        "machine": "the shipped table's machine",
    }


def _user_files(folder: Path, seed: int) -> None:
    from rnnkit.data.ts_format import write_ts

    g = torch.Generator().manual_seed(seed)
    folder.mkdir()
    # 12 steps: MiniRocket takes series of 9 steps or more.
    train = [torch.randn(12, 2, generator=g) for _ in range(12)]
    test = [torch.randn(12, 2, generator=g) for _ in range(6)]
    write_ts(folder / "JapaneseVowels_TRAIN.ts", train, ["x", "y"] * 6)
    write_ts(folder / "JapaneseVowels_TEST.ts", test, ["x", "y"] * 3)


@pytest.fixture
def _threads_kept() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("_threads_kept")
def test_classify_keeps_a_shipped_row_and_two_users_files_of_one_name_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The row was named JapaneseVowels and saved as results/JapaneseVowels.json, over the
    # shipped set's; b's files then replaced a's row too.
    pytest.importorskip("aeon")
    import classify

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(classify, "limit_threads", lambda n: None)  # this process's
    results = tmp_path / "results"
    results.mkdir()
    shipped = json.dumps(_shipped_row(), indent=2) + "\n"
    (results / "JapaneseVowels.json").write_text(shipped)
    _user_files(tmp_path / "a", 0)
    _user_files(tmp_path / "b", 1)

    def compare(folder: str) -> None:
        argv = [
            "--data", f"{folder}/JapaneseVowels_TRAIN.ts",
            "--test-data", f"{folder}/JapaneseVowels_TEST.ts",
            "--results", "results", "--candidates", "gru:1.5", "--seeds", "0", "--no-refit",
            "--minutes-per-run", "0.002",
        ]  # fmt: skip
        assert classify.main(argv) == 0

    compare("a")
    compare("b")
    compare("a")  # a rerun on the same files replaces its own row
    assert (results / "JapaneseVowels.json").read_text() == shipped
    rows = sorted(results.glob("*.json"))
    assert len(rows) == 3
    users = [json.loads(r.read_text()) for r in rows if r.name != "JapaneseVowels.json"]
    assert sorted((u["name"], u["data"], u["test_data"]) for u in users) == [
        (f"{f}/JapaneseVowels_TRAIN.ts", f"{f}/JapaneseVowels_TRAIN.ts",
         f"{f}/JapaneseVowels_TEST.ts")
        for f in ("a", "b")
    ]  # fmt: skip
    capsys.readouterr()
    assert classify.main(["--table-only", "--results", "results"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" | ")[0] for line in lines[2:5]] == [
        "| JapaneseVowels",
        "| a/JapaneseVowels_TRAIN.ts",
        "| b/JapaneseVowels_TRAIN.ts",
    ]
    assert lines[2].startswith("| JapaneseVowels | **98.5** | lstm:1.5 |")


def test_classify_names_a_users_row_by_its_file_never_as_a_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import classify

    (tmp_path / "JapaneseVowels").write_text("")
    stem, name = classify.user_row(str(tmp_path / "JapaneseVowels"), str(tmp_path / "t.ts"))
    assert name == str(tmp_path / "JapaneseVowels")
    assert stem.startswith("JapaneseVowels-") and stem not in classify.DATASETS
    monkeypatch.chdir(tmp_path)
    assert classify.user_row("JapaneseVowels", "t.ts") == (stem, "./JapaneseVowels")
    row = {**_shipped_row(), "name": "a|b_TRAIN.ts"}  # the table's | inside a name
    table = classify.table({"a|b_TRAIN.ts-0": row}, "m").splitlines()
    assert table[2].startswith("| a\\|b_TRAIN.ts | **98.5** |")


def test_classify_pads_series_under_minirockets_nine_steps() -> None:
    # aeon's MiniRocket refuses a series under 9 steps ("n_timepoints must be >= 9"): a
    # user's file of short series ended the script in that traceback.
    import numpy as np

    import classify

    rng = np.random.default_rng(0)
    X = [rng.standard_normal((1, 5)) for _ in range(12)]
    y = np.array([0, 1] * 6)
    data = {"X_train": X[:8], "y_train": y[:8], "X_test": X[8:], "y_test": y[8:]}
    result = classify.run_minirocket(data, [0], threads=1)
    assert result["padded_to"] == classify.MINIROCKET_MIN == 9
    assert 0.0 <= result["accuracy"] <= 1.0


# ---- tag.py: --k bounded -----------------------------------------------------------------


def _script(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("k", ["50", "1000000"])
def test_tag_refuses_a_window_wider_than_its_features_keep_apart(tmp_path: Path, k: str) -> None:
    # --k 1000000 --quick trained its three models for a minute, then ran out of memory
    # building the sklearn features (a MemoryError traceback under a 6 GB limit).
    done = _script("tag.py", "--quick", "--k", k, cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        f"tag.py: error: argument --k: expected an integer in [0, 49]; got {k}\n",
    )
    assert list(tmp_path.iterdir()) == []


def test_tag_takes_the_widest_window_whose_offsets_keep_their_own_salt(tmp_path: Path) -> None:
    import tag

    # window_features salts n-grams of order n at offset o with n * 100 + o: the
    # unigrams' 2k + 1 offsets stay apart from the pairs' and triples' up to k = 49.
    def salts(k: int) -> list[int]:
        return [g * 100 + o for g in (1, 2, 3) for o in range(2 * k + 2 - g)]

    assert len(set(salts(tag.K_MAX))) == len(salts(tag.K_MAX))
    assert len(set(salts(tag.K_MAX + 1))) < len(salts(tag.K_MAX + 1))
    (tmp_path / "file").write_text("")
    # --k 49 is taken: the refusal is the next argument's.
    done = _script("tag.py", "--k", "49", "--img", "file", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (
        2,
        "tag.py: error: argument --img: expected a folder; got file, a file\n",
    )


# ---- Ctrl-C and SIGTERM to the scripts that train in a pool ----------------------------

signals = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table")


@pytest.fixture
def _no_leftovers() -> Iterator[None]:
    yield
    kill_started()


def _started(script: str, *args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return start([sys.executable, str(BENCHMARKS / script), *args], cwd, env, ctrl_c=True)


def _ended(proc: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("still running 120 s after the signal")
    return proc.returncode, err


def _none_left(pgid: int) -> None:
    deadline = time.monotonic() + 30
    while group(pgid) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert group(pgid) == {}


ROWS = ("--rows", "adding-100-rnn,adding-100-lstm")  # the first trains for minutes
SAVED = "stopped by SIGINT; the run is saved\n"
CHECK = ("--sets", "nile", "--seeds", "0,1,2", "--runs", "runs")


@signals
@pytest.mark.usefixtures("_no_leftovers")
def test_ctrl_c_to_long_memory_is_said_once_as_an_interruption(tmp_path: Path) -> None:
    # It said "stopped by SIGTERM; the run is saved", exit 130.
    proc = _started("long_memory.py", *ROWS, "--results", "res", cwd=tmp_path)
    wait_for(tmp_path / "res" / "runs" / "adding-100-rnn" / "config.json", proc)
    os.killpg(proc.pid, signal.SIGINT)
    assert _ended(proc) == (130, SAVED)
    assert not (tmp_path / "res" / "runs" / "adding-100-lstm").exists()
    _none_left(proc.pid)


@signals
@pytest.mark.usefixtures("_no_leftovers")
@pytest.mark.parametrize(
    ("jobs", "saved"), [("1", "the run is saved"), ("2", "the 2 runs are saved")]
)
def test_ctrl_c_to_forecast_check_is_said_once_as_an_interruption(
    tmp_path: Path, jobs: str, saved: str
) -> None:
    # It said "stopped by SIGTERM; the run is saved", once per worker, exit 130.
    proc = _started("forecast_check.py", *CHECK, "--jobs", jobs, cwd=tmp_path)
    wait_for(tmp_path / "runs", proc)
    while len(list((tmp_path / "runs").glob("*/config.json"))) < int(jobs):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    assert _ended(proc) == (130, f"stopped by SIGINT; {saved}\n")
    _none_left(proc.pid)


@signals
@pytest.mark.usefixtures("_no_leftovers")
def test_sigterm_to_forecast_check_is_still_said_as_sigterm(tmp_path: Path) -> None:
    proc = _started("forecast_check.py", *CHECK, "--jobs", "1", cwd=tmp_path)
    wait_for(tmp_path / "runs", proc)
    while not any((tmp_path / "runs").glob("*/config.json")):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    assert _ended(proc) == (143, "stopped by SIGTERM; the run is saved\n")
    _none_left(proc.pid)


@signals
@pytest.mark.usefixtures("_no_leftovers")
def test_ctrl_c_while_the_workers_start_ends_no_worker_in_a_traceback(tmp_path: Path) -> None:
    # It said nothing, or a worker importing torch ended in a KeyboardInterrupt traceback.
    proc = _started("long_memory.py", *ROWS, "--results", "res", cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not any("spawn_main" in command for command in group(proc.pid).values()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no worker started"
        time.sleep(0.05)
    time.sleep(0.5)  # into its imports (a worker that is training yet saves its run)
    os.killpg(proc.pid, signal.SIGINT)
    code, err = _ended(proc)
    assert (code, err) in [(130, "stopped by SIGINT\n"), (130, SAVED)]
    _none_left(proc.pid)


# ---- forecast_check.py: the threads its runs used ------------------------------------


class _Results:
    def __init__(self, runs: list[dict[str, Any]]) -> None:
        self.runs = iter(runs)

    def next(self, timeout: float | None = None) -> dict[str, Any]:
        return next(self.runs)


class _Pool:
    """In place of the spawn pool: each job's run, as a worker's record() returns it."""

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def imap_unordered(self, fn: Any, jobs: list[tuple[Any, ...]]) -> _Results:
        evals = [{"step": 100, "valid": [1.0, 1.0], "test": [0.5, 0.7]}]
        return _Results([
            {"set": n, "anchor": a, "seed": s, "evals": evals, "horizons": 2.0,
             "margin": 2.0, "anchor_valid": [1.6, 1.6], "anchor_test": [0.9, 0.9],
             "naive_test": 1.0, "kept_step": 100}
            for n, a, s, _, _ in jobs
        ])  # fmt: skip


@pytest.mark.usefixtures("_threads_kept")
@pytest.mark.parametrize(
    ("jobs", "at_once"), [("1", "one run at a time"), ("2", "up to 2 runs side by side")]
)
def test_forecast_check_says_the_threads_its_runs_used(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    jobs: str,
    at_once: str,
) -> None:
    # It said "2 threads", the main process's, where each run used one.
    import forecast_check as bench
    from rnnkit.deploy import ANCHORS

    monkeypatch.setattr(bench, "anchors_of", lambda p, sets, origins: {"nile": ANCHORS[0]})
    monkeypatch.setattr(_args, "exit_on_signals", lambda: None)
    monkeypatch.setattr(_args, "pool", lambda processes: (_Pool(), [0, 0, 0]))
    monkeypatch.setattr(bench, "time", SimpleNamespace(perf_counter=lambda: 0.0))
    torch.set_num_threads(2)
    argv = ["--sets", "nile", "--seeds", "0", "--runs", str(tmp_path / "runs"), "--jobs", jobs]
    assert bench.main(argv) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == (
        f"`python benchmarks/forecast_check.py {' '.join(argv)}`: 0.0 minutes on "
        f"{_timing.cpu_name()}, {os.cpu_count()} CPUs, torch "
        f"{torch.__version__}, 1 thread per run, {at_once}."
    )
