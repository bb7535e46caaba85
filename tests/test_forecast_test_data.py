"""`rnnkit train forecast --data TRAIN --test-data TEST`: a test file of each series' next
horizon values (M4's and the Monash archive's train and test files), scored from one
origin per series, the end of TRAIN; validation and training see TRAIN alone
(docs/forecast.md, "Your own data")."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import rnnkit
from _refusals import raises_exactly, refused
from rnnkit.cli import main
from rnnkit.data.series import join_test, read_series
from rnnkit.tasks.base import DerivedError
from rnnkit.tasks.forecast import ForecastOptions, ForecastTask, check_derived
from rnnkit.tasks.forecast.rundata import checksum, read_new
from rnnkit.train import TrainConfig, train
from rnnkit.train.distributed import Context
from rnnkit.train.files import load_tensors
from rnnkit.train.runfolder import RunFolder

N, H = 30, 3  # training values and test values of each series
NAMES = ("north", "south", "east")
SMALL = {"hidden_size": 8, "batch_size": 4, "context": 8}
TINY = ["--steps", "4", "--eval-every", "2", "--hidden", "8", "--batch-size", "4",
        "--context", "8", "--threads", "1"]  # fmt: skip
QUIET: dict[str, Any] = {"log": lambda _: None, "progress": io.StringIO()}
CPU = Context(0, 1, torch.device("cpu"))


def columns(seed: int = 0) -> dict[str, np.ndarray]:
    """Three series of N + H values, rounded as the files write them."""
    rng = np.random.default_rng(seed)
    t = np.arange(N + H)
    return {
        name: np.round(20 + 5 * k + np.cumsum(rng.normal(0.3, 1.0, N + H)) + 2 * np.sin(t), 3)
        for k, name in enumerate(NAMES)
    }


def wide(path: Path, values: dict[str, Any], first: int = 0) -> Path:
    """A wide CSV: a time column, then a column per series."""
    names = list(values)
    rows = ["t," + ",".join(names)]
    for i in range(max(len(v) for v in values.values())):
        cells = [str(values[n][i]) if i < len(values[n]) else "" for n in names]
        rows.append(f"{first + i}," + ",".join(cells))
    path.write_text("\n".join(rows) + "\n")
    return path


def files(tmp_path: Path, test: dict[str, Any] | None = None) -> tuple[Path, Path, Path]:
    """(train, test, the two joined) wide CSVs of the same series; ``test`` replaces
    the test file's columns."""
    cols = columns()
    train_file = wide(tmp_path / "train.csv", {n: v[:N] for n, v in cols.items()})
    held = test if test is not None else {n: v[N:] for n, v in cols.items()}
    test_file = wide(tmp_path / "test.csv", held, first=N)
    whole = wide(tmp_path / "all.csv", cols)
    return train_file, test_file, whole


def task_of(run: Path) -> ForecastTask:
    """The task of a finished run, prepared from its config.json as ``rnnkit eval`` does."""
    config = RunFolder(run).read_config()
    task = ForecastTask(ForecastTask.parse_options(config.options, "options"), config.derived)
    task.prepare(config.train, CPU)
    return task


def prepared(**options: Any) -> ForecastTask:
    task = ForecastTask(ForecastTask.parse_options(options, "options", partial=True))
    task.prepare(TrainConfig(steps=1, threads=1), CPU)
    return task


def weights(run: Path) -> dict[str, torch.Tensor]:
    return rnnkit.load(run).state_dict()


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_the_split_is_the_joined_series_with_one_origin(tmp_path: Path) -> None:
    """A run on TRAIN and TEST is the run on the series joined with --origins 1: the same
    windows, the same training, the same test scores, bit for bit."""
    train_file, test_file, whole = files(tmp_path)
    config = TrainConfig(steps=4, eval_every=2, seed=0, threads=1)
    split = {**SMALL, "data": str(train_file), "test_data": str(test_file)}
    joined = {**SMALL, "data": str(whole), "horizon": H, "origins": 1}
    train("forecast", split, config, out=tmp_path / "split", **QUIET)
    train("forecast", joined, config, out=tmp_path / "joined", **QUIET)
    a, b = task_of(tmp_path / "split"), task_of(tmp_path / "joined")
    assert a.derived["horizon"] == H and a.derived["origins"] == 1  # H from the test file
    for x, y in zip(a.values, b.values, strict=True):
        assert np.array_equal(x, y)
    assert a.test == b.test and a.valid == b.valid and a.ends == b.ends
    # The one test forecast per series is from the end of TRAIN, scored on TEST's values.
    cols = columns()
    assert [w.origin for w in a.test] == [N] * len(NAMES)
    for w in a.test:
        assert np.array_equal(a.values[w.series][w.origin :], cols[NAMES[w.series]][N:])
    assert same_weights(tmp_path / "split", tmp_path / "joined")
    model = rnnkit.load(tmp_path / "split")
    assert a.scores(model, "test") == b.scores(model, "test")
    assert a.scores(model, "validation") == b.scores(model, "validation")
    # What the run recorded: both files, absolute, and a checksum of each one's values.
    d = a.derived
    assert d["source"]["path"] == str(train_file.resolve())
    assert d["source"]["test"] == {"path": str(test_file.resolve())}
    assert d["checksum"] == checksum(read_series(train_file).values)  # as --data alone
    assert d["test_checksum"] == checksum(read_series(test_file).values)
    assert d["described"] == (
        f"{train_file}: 3 series of length {N}; test: {test_file}, the next {H} values of each"
    )


def test_no_test_value_reaches_training_or_validation(tmp_path: Path) -> None:
    """TEST values a million times larger change the test scores and nothing else: the
    same training windows, weights, validation scores, interval scale and test forecasts."""
    train_file, test_file, _ = files(tmp_path)
    huge = wide(tmp_path / "huge.csv", {n: [1e9, -1e9, 1e9] for n in NAMES}, first=N)
    config = TrainConfig(steps=4, eval_every=2, seed=0, threads=1)
    runs = {}
    for name, held in (("plain", test_file), ("huge", huge)):
        options = {**SMALL, "data": str(train_file), "test_data": str(held)}
        runs[name] = train("forecast", options, config, out=tmp_path / name, **QUIET)
    scores = {k: [(step, m) for step, _, m in r.history] for k, r in runs.items()}
    assert scores["plain"] == scores["huge"]  # every validation score
    assert same_weights(tmp_path / "plain", tmp_path / "huge")  # interval scale included
    plain, big = task_of(tmp_path / "plain"), task_of(tmp_path / "huge")
    assert plain.ends == big.ends == [N - H] * len(NAMES)  # training: before validation
    assert min(w.origin for w in big.valid) + H <= N  # validation: inside TRAIN
    batches = big.batches(config, CPU)
    assert max(float(np.abs(p.y).max()) for p in batches.prepared) < 100
    assert all(float(t[0].abs().max()) < 1e3 for t in batches.targets)
    assert plain.derived["anchor_validation_mase"] == big.derived["anchor_validation_mase"]
    model = rnnkit.load(tmp_path / "huge")
    ours = plain.test_forecasts(model, plain.test)
    theirs = big.test_forecasts(model, big.test)
    for f, g in zip(ours, theirs, strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(f, g, strict=True))
    assert big.scores(model, "test")[0].mase > 1e6 > plain.scores(model, "test")[0].mase


def test_eval_forecast_and_resume_of_a_run_with_a_test_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train_file, test_file, _ = files(tmp_path)
    run = tmp_path / "run"
    argv = ["train", "forecast", "--data", str(train_file), "--test-data", str(test_file),
            *TINY, "--seed", "0", "--out", str(run)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    head = f"test (test.csv: the next {H} values of each of 3 series, 3 forecasts):"
    assert head in printed

    def test_lines(text: str) -> list[str]:
        lines = text.splitlines()
        start = lines.index(head)
        return lines[start : start + 3]

    assert main(["eval", str(run)]) == 0  # the run's own test scores, read again
    assert test_lines(capsys.readouterr().out) == test_lines(printed)
    # `rnnkit forecast RUN`: after the last value known, the test file's
    assert main(["forecast", str(run)]) == 0
    csv = capsys.readouterr().out.splitlines()
    assert csv[0] == "series,step,forecast,lo80,hi80" and len(csv) == 1 + 3 * H
    # stopped (as by SIGTERM) and resumed, the run reads both files again and ends as the
    # run never stopped
    options = {**SMALL, "data": str(train_file), "test_data": str(test_file)}
    config = ForecastTask.default_train(steps=4, eval_every=2, seed=0, threads=1)
    train("forecast", options, config, out=tmp_path / "straight", **QUIET)

    def stop_at_3(trainer: Any) -> None:
        if trainer.step == 3:
            trainer.request_stop("SIGTERM")

    first = train("forecast", options, config, out=tmp_path / "half", on_step=stop_at_3, **QUIET)
    assert first.step == 3 and first.stopped_by == "SIGTERM"
    assert main(["train", "--resume", str(tmp_path / "half")]) == 0
    assert "test (test.csv: the next" in capsys.readouterr().out
    assert same_weights(tmp_path / "half", tmp_path / "straight")
    last = "train_state-00000004.safetensors"  # the weights, optimiser and batches at step 4
    ends = [load_tensors(tmp_path / r / last) for r in ("half", "straight")]
    assert ends[0].keys() == ends[1].keys()
    assert all(torch.equal(ends[0][k], ends[1][k]) for k in ends[0])
    stored = json.loads((tmp_path / "half" / "config.json").read_text())
    assert stored["options"]["test_data"] == str(test_file.resolve())


def test_a_changed_test_file_is_refused_by_eval_forecast_and_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train_file, test_file, _ = files(tmp_path)
    run = tmp_path / "run"
    argv = ["train", "forecast", "--data", str(train_file), "--test-data", str(test_file),
            *TINY, "--out", str(run)]  # fmt: skip
    assert main(argv) == 0
    text = test_file.read_text()
    lines = text.splitlines()
    lines[1] = ",".join([*lines[1].split(",")[:1], "1000", *lines[1].split(",")[2:]])
    test_file.write_text("\n".join(lines) + "\n")  # one value changed
    expected = (
        f"{test_file} has changed since this run started (its values differ from the ones "
        "recorded in config.json); start a new run"
    )
    assert refused(capsys, ["eval", str(run)], tmp_path) == f"rnnkit eval: error: {expected}"
    assert refused(capsys, ["forecast", str(run)], tmp_path) == (
        f"rnnkit forecast: error: {expected}"
    )
    resume = ["train", "--resume", str(run), "--steps", "6"]
    assert refused(capsys, resume, tmp_path) == f"rnnkit train: error: {expected}"
    # the same values in another order of series are the same test
    rows = [line.split(",") for line in text.splitlines()]
    test_file.write_text("\n".join(",".join([r[0], r[3], r[1], r[2]]) for r in rows) + "\n")
    assert main(["eval", str(run)]) == 0
    # an output of `rnnkit forecast` never replaces the run's test file, even with --force
    test_file.write_text(text)
    line = refused(capsys, ["forecast", str(run), "--out", str(test_file), "--force"], tmp_path)
    assert line == (
        f"rnnkit forecast: error: --out {test_file} is the run's test data; expected another "
        "file name"
    )


# ---- formats -------------------------------------------------------------------------------


def test_long_csv_and_tsf_test_files(tmp_path: Path) -> None:
    cols = columns()

    def long(path: Path, part: slice) -> Path:
        rows = ["id,time,value"]
        rows += [f"{n},{t},{v}" for n, values in cols.items()
                 for t, v in enumerate(values[part])]  # fmt: skip
        path.write_text("\n".join(rows) + "\n")
        return path

    def tsf(path: Path, part: slice, horizon: int | None) -> Path:
        lines = ["@relation r", "@attribute series_name string"]
        lines += [f"@horizon {horizon}"] if horizon else []
        lines += ["@data", *(f"{n}:" + ",".join(map(str, v[part])) for n, v in cols.items())]
        path.write_text("\n".join(lines) + "\n")
        return path

    want = [list(v) for v in cols.values()]
    pairs = [
        (long(tmp_path / "a.csv", slice(0, N)), long(tmp_path / "b.csv", slice(N, None))),
        (tsf(tmp_path / "a.tsf", slice(0, N), H), tsf(tmp_path / "b.tsf", slice(N, None), None)),
        (long(tmp_path / "c.csv", slice(0, N)), tsf(tmp_path / "c.tsf", slice(N, None), None)),
    ]
    for train_file, test_file in pairs:
        task = prepared(**SMALL, data=str(train_file), test_data=str(test_file))
        assert [list(v) for v in task.values] == want
        assert task.derived["horizon"] == H and [w.origin for w in task.test] == [N] * 3


def test_format_and_time_column_apply_to_both_files(tmp_path: Path) -> None:
    cols = columns()
    for name, part, first in (("train.csv", slice(0, N), 0), ("test.csv", slice(N, None), N)):
        rows = ["north,when,south,east"]
        rows += [f"{cols['north'][part][i]},{first + i},{cols['south'][part][i]},"
                 f"{cols['east'][part][i]}" for i in range(len(cols["north"][part]))]  # fmt: skip
        (tmp_path / name).write_text("\n".join(rows) + "\n")
    task = prepared(**SMALL, data=str(tmp_path / "train.csv"),
                    test_data=str(tmp_path / "test.csv"), time_column="when")  # fmt: skip
    assert [list(v) for v in task.values] == [list(v) for v in cols.values()]


def test_join_test_matches_by_name_in_any_order(tmp_path: Path) -> None:
    cols = columns()
    train_file = wide(tmp_path / "train.csv", {n: v[:N] for n, v in cols.items()})
    test_file = wide(tmp_path / "test.csv", {n: cols[n][N:] for n in reversed(NAMES)})
    joined = join_test(read_series(train_file), read_series(test_file))
    assert joined.names == list(NAMES) and joined.horizon == H
    assert joined.values == [list(v) for v in cols.values()]
    assert joined.info["test_values"] == H and joined.info["origins"] == 1


# ---- refusals: one line, exit 2, nothing written ------------------------------------------


def refusal_cases(tmp_path: Path) -> list[tuple[list[str], str]]:
    cols = columns()
    train_file, test_file, _ = files(tmp_path)
    copy = tmp_path / "copy.csv"
    shutil.copyfile(train_file, copy)
    held = {n: v[N:] for n, v in cols.items()}
    extra = wide(tmp_path / "extra.csv", {**held, "west": [1, 2, 3]}, first=N)
    fewer = wide(tmp_path / "fewer.csv", {n: held[n] for n in NAMES[:2]}, first=N)
    gap = wide(tmp_path / "gap.csv", {**held, "south": [held["south"][0], "", 5]}, first=N)
    short = wide(tmp_path / "short.csv", {**held, "east": held["east"][:2]}, first=N)
    long_file = tmp_path / "uneven.csv"
    long_file.write_text("id,time,value\n" + "".join(
        f"{n},{t},{v}\n" for n in NAMES for t, v in enumerate(held[n][: 2 if n == "east" else 3])
    ))  # fmt: skip
    tsf = tmp_path / "train.tsf"
    tsf.write_text("@relation r\n@attribute series_name string\n@horizon 4\n@data\n" + "".join(
        f"{n}:" + ",".join(map(str, v[:N])) + "\n" for n, v in cols.items()
    ))  # fmt: skip
    missing = tmp_path / "none.csv"
    train, test = str(train_file), str(test_file)
    return [
        (["--test-data", test],
         f"--test-data needs --data (the training file whose series it continues); got "
         f"--test-data {test} without --data"),
        (["--dataset", "nile", "--test-data", test],
         f"--test-data needs --data (the training file whose series it continues); got "
         f"--test-data {test} without --data"),
        (["--data", train, "--test-data", test, "--origins", "2"],
         "forecast options: --test-data holds each series' next horizon values, forecast "
         "from one origin, the end of --data; got --origins 2 (leave it out)"),
        (["--data", train, "--test-data", train],
         f"--test-data {train} holds the same bytes as --data {train}; a test split must be "
         "other examples (leave out --test-data for a test of the last values of --data)"),
        (["--data", train, "--test-data", str(copy)],
         f"--test-data {copy} holds the same bytes as --data {train}; a test split must be "
         "other examples (leave out --test-data for a test of the last values of --data)"),
        (["--data", train, "--test-data", str(missing)],
         f"--test-data: series file not found: {missing}; expected a .tsf or .csv file"),
        (["--data", train, "--test-data", str(extra)],
         f"{extra}: series 'west' is not a series of {train}; a test file holds the next "
         "values of the training file's series, by name"),
        (["--data", train, "--test-data", str(fewer)],
         f"{fewer}: no test values for series 'east' of {train}; a test file holds the next "
         "values of every series of the training file, by name"),
        (["--data", train, "--test-data", str(gap)],
         f"{gap}: series 'south' has 1 missing value(s) (a missing cell, or a column that "
         "ends early); every test value must be observed, as a filled-in one would be "
         "scored as the series' own"),
        (["--data", train, "--test-data", str(short)],
         f"{short}: series 'east' has 1 missing value(s) (a missing cell, or a column that "
         "ends early); every test value must be observed, as a filled-in one would be "
         "scored as the series' own"),
        (["--data", train, "--test-data", str(long_file)],
         f"{long_file}: the test series differ in length: 'north' has 3 value(s), 'east' 2; "
         "expected each series' next horizon values"),
        (["--data", train, "--test-data", test, "--horizon", "2"],
         f"{test}: series 'north' has 3 test value(s); expected --horizon 2, a test series "
         "holding the next horizon values"),
        (["--data", str(tsf), "--test-data", test],
         f"{test}: the test series hold 3 value(s) each, but {tsf} says @horizon 4; give "
         "--horizon 3 to forecast 3 steps"),
    ]  # fmt: skip


def test_every_refusal_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never"
    for extra, message in refusal_cases(tmp_path):
        line = refused(capsys, ["train", "forecast", *extra, *TINY, "--out", str(out)], tmp_path)
        assert line == f"rnnkit train: error: {message}"
        assert not out.exists()


def test_the_python_entry_refuses_as_the_command_line(tmp_path: Path) -> None:
    train_file, test_file, _ = files(tmp_path)
    options = {"data": str(train_file), "test_data": str(test_file), "horizon": 5}
    raises_exactly(
        ValueError,
        f"{test_file}: series 'north' has 3 test value(s); expected --horizon 5, a test "
        "series holding the next horizon values",
        train, "forecast", options, out=tmp_path / "never", **QUIET,
    )  # fmt: skip
    assert not (tmp_path / "never").exists()
    raises_exactly(
        ValueError,
        "--test-data holds each series' next horizon values, forecast from one origin, the "
        "end of --data; got --origins 3 (leave it out)",
        ForecastOptions, data=str(train_file), test_data=str(test_file), origins=3,
    )  # fmt: skip
    ForecastOptions(data=str(train_file), test_data=str(test_file), origins=1)  # the same
    assert len(read_new(ForecastOptions(data=str(train_file), test_data=str(test_file)))) == 3


def test_a_recorded_test_source_that_is_not_a_path_is_refused() -> None:
    derived = {"source": {"path": "/x.csv", "test": "/y.csv"}, "horizon": 3,
               "seasonality": 1, "origins": 1, "scale_window": 3}  # fmt: skip
    raises_exactly(
        DerivedError,
        "derived: source's test must be an object with a path; got '/y.csv'",
        check_derived, derived, "derived",
    )  # fmt: skip
    check_derived({**derived, "source": {"path": "/x.csv", "test": {"path": "/y.csv"}}}, "d")
