"""Defects found reviewing a CSV's frequency from its dates, one error line under
torchrun, and the benchmark scripts' pools; each pinned where it was found.

- A CSV's dates: pandas' ``to_csv()`` of a ``DatetimeIndex`` (an unnamed first column)
  gave no frequency; business month starts and ends, ISO weeks, times with a fraction of
  a second, and daily dates stamped in UTC across a change of clocks gave none either; a
  wide CSV's quarters or years going back (or twice) were read backwards; a rows CSV
  headed by quarters was refused as a long one; each time was read three times.
- torchrun: ``WORLD_SIZE`` set to no number ended every refusal in a traceback; with
  torchrun's store gone a process waited 20 s and printed some 60 lines of C++ logs
  before its one line; a program that caught a lost process's error went on with
  SIGTERM ignored.
- The pools: a worker's error, or the main process's, made the workers stopped by the
  pool's terminate() say "stopped by SIGTERM"; a second Ctrl-C ended the workers in
  KeyboardInterrupt tracebacks after the main process had said the stop.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import torch

from _processes import group, kill_started, start, wait_for
from rnnkit.cli import main
from rnnkit.data import dates, series
from rnnkit.data.series import read_series
from rnnkit.train import TrainConfig, distributed, train

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import _args  # noqa: E402


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def described(path: Path) -> str:
    return read_series(path).describe()


# ---- a CSV's frequency from its dates ------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "frequency"),
    [(timedelta(hours=1), "hourly"), (timedelta(days=1), "daily")],
)
def test_pandas_to_csv_of_a_datetime_index_gives_the_frequency(
    tmp_path: Path, step: timedelta, frequency: str
) -> None:
    # df.to_csv() of an unnamed DatetimeIndex: ",a,b" over "2020-01-01 00:00:00,0.0,1.0".
    rows = "".join(f"{datetime(2020, 1, 1) + k * step},{k}.0,{2 * k}.0\n" for k in range(30))
    path = write(tmp_path, "p.csv", f",a,b\n{rows}")
    assert described(path) == f"{path}: 2 series of length 30, {frequency} (from the dates)"


def test_pandas_index_of_numbers_is_no_time_and_of_dates_newest_first_is_refused(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "n.csv", ",a,b\n0,1.0,2.0\n1,3.0,4.0\n2,5.0,6.0\n")
    assert described(path) == f"{path}: 2 series of length 3"
    path = write(tmp_path, "d.csv", ",a,b\n2020-03-01,1,2\n2020-02-01,3,4\n2020-01-01,5,6\n")
    with pytest.raises(ValueError) as err:
        read_series(path)
    assert str(err.value) == (
        f"{path}, line 3: time '2020-02-01' of column '' comes before line 2's; expected the "
        "rows of a wide CSV in time order, oldest first"
    )


def _month_ends(months: range, back: int) -> list[str]:
    """The last working day of each month: its last day, moved off a weekend, ``back``
    more days (a holiday) in every third month."""
    out = []
    for m in months:
        day = datetime(2019 + m // 12, m % 12 + 1, 1) + timedelta(days=40)
        day = day.replace(day=1) - timedelta(days=1)
        while day.weekday() >= 5:
            day -= timedelta(days=1)
        out.append(str((day - timedelta(days=back * (m % 3 == 0))).date()))
    return out


def _month_starts(months: range) -> list[str]:
    out = []
    for m in months:
        day = datetime(2019 + m // 12, m % 12 + 1, 1)
        while day.weekday() >= 5:
            day += timedelta(days=1)
        out.append(str(day.date()))
    return out


@pytest.mark.parametrize(
    ("times", "frequency"),
    [
        (_month_ends(range(24), 0), "monthly"),  # pandas' BME
        (_month_ends(range(24), 1), "monthly"),  # a holiday on some
        (_month_starts(range(24)), "monthly"),  # pandas' BMS
        (_month_ends(range(2, 36, 3), 0), "quarterly"),  # pandas' BQE
        (_month_ends(range(11, 60, 12), 0), "yearly"),
    ],
)
def test_business_month_starts_and_ends_read_as_calendar_months(
    tmp_path: Path, times: list[str], frequency: str
) -> None:
    rows = "".join(f"{t},{k}\n" for k, t in enumerate(times))
    path = write(tmp_path, "b.csv", f"date,close\n{rows}")
    assert (
        described(path) == f"{path}: 1 series of length {len(times)}, {frequency} (from the dates)"
    )


def test_first_days_of_one_month_are_days_not_months(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", "date,x\n2020-01-01,1\n2020-01-02,2\n2020-01-03,3\n")
    assert described(path) == f"{path}: 1 series of length 3, daily (from the dates)"


def test_iso_weeks_read_as_weekly_across_a_year(tmp_path: Path) -> None:
    weeks = ["2020-W52", "2020-W53", "2021-W01", "2021W02", "2021-W04"]
    path = write(tmp_path, "w.csv", "week,x\n" + "".join(f"{w},{k}\n" for k, w in enumerate(weeks)))
    assert described(path) == (
        f"{path}: 1 series of length 5, weekly (from the dates; 1 missing date(s), not filled in)"
    )
    path = write(tmp_path, "v.csv", "week,x\n2021-W52,1\n2021-W53,2\n2022-W01,3\n")
    assert (
        described(path)
        == f"{path}: 1 series of length 3, no frequency: the time column mixes formats"
    )


def test_times_with_a_fraction_of_a_second(tmp_path: Path) -> None:
    rows = "".join(f"2020-01-01 {h:02d}:00:00.000,{h}\n" for h in range(6))
    path = write(tmp_path, "ms.csv", f"ts,x\n{rows}")  # as SQL Server exports them
    assert described(path) == f"{path}: 1 series of length 6, hourly (from the dates)"
    rows = "".join(f"2020-01-01 00:00:{s // 2:02d}.{5 * (s % 2)},{s}\n" for s in range(6))
    path = write(tmp_path, "half.csv", f"ts,x\n{rows}")
    assert described(path) == f"{path}: 1 series of length 6, no frequency: dates 0.5 seconds apart"


def test_local_midnights_in_utc_across_a_change_of_clocks_read_daily(tmp_path: Path) -> None:
    # Berlin's midnights: 23:00 UTC the day before until 2020-03-29, 22:00 after it.
    days = [datetime(2020, 3, 20) + timedelta(days=k) for k in range(20)]
    stamps = [d - timedelta(hours=1 if d < datetime(2020, 3, 29) else 2) for d in days]
    rows = "".join(f"{t:%Y-%m-%dT%H:%M:%S},{k}\n" for k, t in enumerate(stamps))
    path = write(tmp_path, "utc.csv", f"date,x\n{rows}")
    assert described(path) == f"{path}: 1 series of length 20, daily (from the dates)"
    # An hour off only: 21 hours are no day.
    text = (
        "date,x\n2020-01-01 00:00,1\n2020-01-02 00:00,2\n2020-01-02 21:00,3\n2020-01-03 21:00,4\n"
    )
    path = write(tmp_path, "odd.csv", text)
    assert (
        described(path) == f"{path}: 1 series of length 4, no frequency: dates irregularly spaced"
    )


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("quarter,x\n1991Q1,1\n1990Q4,2\n1990Q3,3\n",
         "line 3: time '1990Q4' of column 'quarter' comes before line 2's; expected the rows "
         "of a wide CSV in time order, oldest first"),
        ("year,x\n1995,1\n1994,2\n1993,3\n",
         "line 3: time '1994' of column 'year' comes before line 2's; expected the rows of a "
         "wide CSV in time order, oldest first"),
        ("week,x\n2020-W03,1\n2020-W02,2\n",
         "line 3: time '2020-W02' of column 'week' comes before line 2's; expected the rows "
         "of a wide CSV in time order, oldest first"),
        ("quarter,x\n1991Q1,1\n1991Q1,2\n1991Q2,3\n",
         "line 3: time '1991Q1' of column 'quarter' comes again (first on line 2); expected "
         "one row per time step in a wide CSV, and a long CSV's id column named id, "
         "unique_id, series, series_id, series_name, item_id, name, key"),
    ],
)  # fmt: skip
def test_a_wide_csv_of_quarters_weeks_or_years_going_back_is_refused(
    tmp_path: Path, text: str, said: str
) -> None:
    path = write(tmp_path, "w.csv", text)
    with pytest.raises(ValueError) as err:
        read_series(path)
    assert str(err.value) == f"{path}, {said}"


def test_a_long_csv_of_quarters_going_back_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "l.csv", "id,quarter,value\nx,1991Q1,1\nx,1990Q4,2\nx,1990Q3,3\n")
    with pytest.raises(ValueError) as err:
        read_series(path)
    assert str(err.value) == (
        f"{path}, line 3: time '1990Q4' of series 'x' does not come after line 2's; the rows "
        "of a series must be in time order, each time once"
    )
    # Times of two kinds in one series are not compared; its frequency says why.
    path = write(tmp_path, "m.csv", "id,date,value\nx,2020Q2,1\nx,2020-01-01,2\nx,2020Q3,3\n")
    assert (
        described(path)
        == f"{path}: 1 series of length 3, no frequency: series 'x': the time column mixes formats"
    )


def test_a_rows_csv_headed_by_quarters(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", "id,1990Q3,1990Q4,1991Q1\na,1,2,3\nb,4,5,6\n")
    data = read_series(path)
    assert (data.info["format"], data.describe()) == (
        "rows",
        f"{path}: 2 series of length 3, quarterly (from the dates)",
    )


def test_each_time_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading stays fast: a wide CSV's time column is read once for its order and its
    frequency both, and a long CSV's times once however many series share them."""
    texts: list[str] = []

    def counted(text: str, years: bool) -> Any:
        if text[:1].isdigit():  # not the header's names, which say no date at once
            texts.append(text)
        return stamp_of(text, years)

    stamp_of = dates.stamp_of
    monkeypatch.setattr(dates, "stamp_of", counted)
    monkeypatch.setattr(series, "stamp_of", counted)
    hours = [datetime(2020, 1, 1) + timedelta(hours=k) for k in range(50)]
    rows = "".join(f"{t},{k},{k}\n" for k, t in enumerate(hours))
    assert read_series(write(tmp_path, "w.csv", f"date,a,b\n{rows}")).frequency == "hourly"
    assert len(texts) == 50
    texts.clear()
    rows = "".join(f"{s},{t},{k}\n" for s in "abc" for k, t in enumerate(hours))
    assert read_series(write(tmp_path, "l.csv", f"id,date,value\n{rows}")).frequency == "hourly"
    assert len(texts) == 50


# ---- torchrun: one error line ---------------------------------------------------------------

GONE = (
    "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection "
    "closed by peer [127.0.0.1]:45726"
)


@pytest.mark.parametrize("world", ["", "two"])
def test_world_size_set_to_no_number_still_ends_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], world: str
) -> None:
    # The refusal's print met int(WORLD_SIZE) again, and ended in its traceback.
    monkeypatch.setenv("WORLD_SIZE", world)
    assert distributed.prints_error("rnnkit train: error: x")
    with pytest.raises(SystemExit) as stop:
        main(["train", "classify", "--hidden", "0"])
    assert stop.value.code == 2
    assert capsys.readouterr().err == (
        "rnnkit train classify: error: argument --hidden: expected an integer in [1, 65536]; "
        "got '0'\n"
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_torchruns_store_gone_the_line_is_printed_at_once_and_alone(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # It took 20 s, its store client logging each try to connect with a C++ stack.
    for name, value in (("TORCHELASTIC_USE_AGENT_STORE", "True"), ("WORLD_SIZE", "2"),
                        ("RANK", "1"), ("MASTER_ADDR", "127.0.0.1"),
                        ("MASTER_PORT", str(_closed_port()))):  # fmt: skip
        monkeypatch.setenv(name, value)
    began = time.monotonic()
    assert distributed.prints_error("rnnkit train: error: x")
    assert time.monotonic() - began < distributed.STORE_CONNECT_S + 1
    assert capfd.readouterr() == ("", "")


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """torchrun's store, as its agent holds it, and a worker's environment pointing to it."""
    from datetime import timedelta as span

    import torch.distributed as dist

    server = dist.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False,
                           timeout=span(seconds=10))  # fmt: skip
    for name, value in (("TORCHELASTIC_USE_AGENT_STORE", "True"), ("WORLD_SIZE", "2"),
                        ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", str(server.port)),
                        ("TORCHELASTIC_RUN_ID", uuid.uuid4().hex),
                        ("TORCHELASTIC_RESTART_COUNT", "0")):  # fmt: skip
        monkeypatch.setenv(name, value)
    yield server


def _as_rank(monkeypatch: pytest.MonkeyPatch, rank: int) -> None:
    monkeypatch.setenv("RANK", str(rank))


def test_the_rule_of_one_line_with_torchruns_store(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    line = "rnnkit train: error: --data x.ts does not exist; expected a .ts file"
    monkeypatch.setattr(distributed, "WAIT_FOR_RANK_0_S", 0.5)
    _as_rank(monkeypatch, 0)
    assert distributed.prints_error(line)  # rank 0 says it
    _as_rank(monkeypatch, 1)
    assert not distributed.prints_error(line)  # rank 0 said the same
    assert distributed.prints_error(line + "!")  # a line of its own
    # A process that saw the other leave, who said why: nothing more.
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    _as_rank(monkeypatch, 1)
    assert distributed.prints_error(line)  # rank 0 wrote nothing in this attempt: after the wait
    _as_rank(monkeypatch, 0)
    assert not distributed.prints_error("rnnkit train: error: process 1 of 2 left ...",
                                        peer_loss=True, lost=1)  # fmt: skip


def test_a_program_that_catches_a_lost_process_keeps_its_sigterm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SIGTERM stayed ignored for the rest of the program.
    seen: list[Any] = []

    def gone(ctx: distributed.Context, text: str) -> str:
        raise RuntimeError(GONE)

    monkeypatch.setattr(
        distributed, "setup", lambda device: distributed.Context(0, 2, torch.device("cpu"))
    )
    monkeypatch.setattr(distributed, "broadcast_str", gone)
    monkeypatch.setattr(
        distributed, "teardown", lambda ctx: seen.append(signal.getsignal(signal.SIGTERM))
    )

    def own(signum: int, frame: Any) -> None:
        pass

    before = signal.signal(signal.SIGTERM, own)
    try:
        with pytest.raises(distributed.PeerLostError) as err:
            train(
                "adding",
                {"length": 10, "hidden_size": 4},
                TrainConfig(steps=2),
                out=tmp_path / "run",
            )
        assert signal.getsignal(signal.SIGTERM) is own
    finally:
        signal.signal(signal.SIGTERM, before)
    assert str(err.value) == (
        "process 1 of 2 left the process group (Connection closed by peer); no checkpoint was "
        "written: run the command again"
    )
    assert seen == [signal.SIG_IGN]  # held while the group was torn down


def test_the_command_line_ends_a_lost_process_with_sigterm_ignored(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rnnkit.cli import _guarded

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RNNKIT_TRACEBACK", raising=False)
    said = (
        "process 1 of 2 left the process group (Connection closed by peer); no checkpoint "
        "was written: run the command again"
    )

    def run() -> int:
        raise distributed.PeerLostError(said, 1)

    before = signal.getsignal(signal.SIGTERM)
    try:
        assert _guarded("train", run) == 1
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, before)
    assert capsys.readouterr().err == f"rnnkit train: error: {said}\n"


# ---- the benchmark pools ---------------------------------------------------------------------


@pytest.fixture
def _handlers_kept() -> Iterator[None]:
    kept = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, h in kept.items():
        signal.signal(s, h)


def test_a_second_ctrl_c_ends_a_worker_without_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing

    stop = multiprocessing.get_context("spawn").Array("i", 3)
    monkeypatch.setattr(_args, "_STOP", stop)

    def aborted() -> None:
        raise KeyboardInterrupt  # the trainer, asked twice

    with pytest.raises(SystemExit) as ended:
        _args.pool_task(aborted)
    assert (ended.value.code, ended.value.__suppress_context__) == (130, True)
    assert list(stop) == [130, 0, 0]


@pytest.mark.usefixtures("_handlers_kept")
def test_a_signal_as_a_pool_closes_after_its_work_stops_the_script(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Kept as it was: a signal while the pool ends its workers now waits for them, and
    # is then taken (not lost, for a pool that did its work).
    _args.exit_on_signals()
    workers, _ = _args.pool(1)
    terminate = workers.terminate

    def interrupted() -> None:
        os.kill(os.getpid(), signal.SIGINT)  # as the workers end
        terminate()

    monkeypatch.setattr(workers, "terminate", interrupted)
    with pytest.raises(SystemExit) as ended, workers:
        pass
    assert ended.value.code == 130
    assert capfd.readouterr().err == "stopped by SIGINT\n"


DRIVER = r"""
import io, os, sys, time
sys.path.insert(0, {benchmarks!r})
import _args

def job(kind, k, out):
    from rnnkit.train import train
    if kind == "quick":
        return k
    if kind == "raise":
        while not os.path.exists(f"{{out}}/run1/config.json"):  # the other trains
            time.sleep(0.1)
        time.sleep(1)
        raise ValueError("the worker's own error")
    config = train_config()
    summary = train("adding", {{"length": 10, "hidden_size": 4}}, config, out=f"{{out}}/run{{k}}",
                    log=lambda _: None, progress=io.StringIO())
    return _args.stop_if_signalled(summary).step

def train_config():
    from rnnkit.train import TrainConfig
    return TrainConfig(steps=10**7, eval_every=10**7, log_every=10**7, threads=1)

def task(job_):
    return _args.pool_task(job, *job_)

if __name__ == "__main__":
    mode, out = sys.argv[1], sys.argv[2]
    _args.exit_on_signals()
    jobs = {{"worker": [("raise", 0, out), ("train", 1, out)],
             "main": [("train", 0, out), ("quick", 1, out)],
             "killed": [("train", 0, out)]}}[mode]
    workers, stop = _args.pool(len(jobs))
    with workers:
        for result in _args.gather(workers.imap_unordered(task, jobs), stop):
            while not os.path.exists(f"{{out}}/run0/config.json"):
                time.sleep(0.1)
            time.sleep(1)
            raise RuntimeError("the main process's own error")
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "last"),
    [("worker", "ValueError: the worker's own error"),
     ("main", "RuntimeError: the main process's own error")],
)  # fmt: skip
def test_an_error_says_no_signal_of_the_workers_the_pool_ends(
    tmp_path: Path, mode: str, last: str
) -> None:
    # The worker still training said "stopped by SIGTERM; the run is saved" before the
    # error's traceback: the pool's terminate() had stopped it, no one's signal.
    script = write(tmp_path, "driver.py", DRIVER.format(benchmarks=str(BENCHMARKS)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script), mode, str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=240, env=env)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(("Traceback", "multiprocessing.pool.RemoteTraceback")), (
        done.stderr
    )
    assert done.stderr.splitlines()[-1] == last
    assert "stopped by" not in done.stderr


@pytest.fixture
def _no_leftovers() -> Iterator[None]:
    yield
    kill_started()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table")
@pytest.mark.usefixtures("_no_leftovers")
def test_a_worker_killed_mid_run_stops_the_script(tmp_path: Path) -> None:
    # The out-of-memory killer's SIGKILL: the pool started another worker, and the script
    # waited for the killed one's result for ever.
    script = write(tmp_path, "driver.py", DRIVER.format(benchmarks=str(BENCHMARKS)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = start([sys.executable, str(script), "killed", str(tmp_path / "out")], tmp_path, env)
    wait_for(tmp_path / "out" / "run0" / "config.json", proc)
    (worker,) = [pid for pid, command in group(proc.pid).items() if "spawn_main" in command]
    os.kill(worker, signal.SIGKILL)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("still waiting 60 s after its worker was killed")
    assert (proc.returncode, err) == (
        1,
        f"stopped: pool worker {worker} ended in the middle of its run, killed (out of "
        "memory?); expected each run to end with a result or a stop\n",
    )


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table")
@pytest.mark.usefixtures("_no_leftovers")
def test_a_second_ctrl_c_to_long_memory_is_one_line(tmp_path: Path) -> None:
    # The main process said "stopped by SIGINT" as the second Ctrl-C unwound it out of the
    # pool's terminate(), then each worker ended in a KeyboardInterrupt traceback.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    rows = "adding-100-rnn,adding-100-lstm"
    argv = [sys.executable, str(BENCHMARKS / "long_memory.py"), "--rows", rows, "--jobs", "2",
            "--results", "res"]  # fmt: skip
    proc = start(argv, tmp_path, env, ctrl_c=True)
    for name in ("adding-100-rnn", "adding-100-lstm"):
        wait_for(tmp_path / "res" / "runs" / name / "config.json", proc)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("still running 120 s after the signals")
    assert proc.returncode == 130
    assert err in {"stopped by SIGINT\n", "stopped by SIGINT; the run is saved\n",
                   "stopped by SIGINT; the 2 runs are saved\n"}, err  # fmt: skip
    deadline = time.monotonic() + 30
    while group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert group(proc.pid) == {}
