"""The pieces the forecasting benchmarks' tables rest on: forecast_check.py's replay of
the trainer's choice under a rule, forecast_coverage.py's counts, band and pooled rows."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import forecast_check as bench
import forecast_coverage


def _run(evals, anchor_valid, anchor_test=(1.0, 1.0)):
    return {"anchor_valid": list(anchor_valid), "anchor_test": list(anchor_test),
            "horizons": 2.0, "evals": evals}  # fmt: skip


def test_replay_keeps_the_first_lowest_validation_and_falls_back_to_the_anchor():
    evals = [
        {"step": 100, "valid": [2.0, 2.2], "test": [1.5, 1.5]},
        {"step": 200, "valid": [1.0, 1.0], "test": [0.5, 0.7]},  # lowest
        {"step": 300, "valid": [1.0, 1.0], "test": [0.1, 0.1]},  # a tie: not taken
    ]
    run = _run(evals, anchor_valid=[1.6, 1.6], anchor_test=[0.9, 0.9])
    assert bench.replay(run, None) == (200, pytest.approx(0.6), True)
    # The network's lead at step 200 (0.6) has a standard error of 0 over two windows
    # that agree: kept under any margin.
    assert bench.replay(run, 2.0) == (200, pytest.approx(0.6), True)
    noisy = _run(
        [{"step": 100, "valid": [0.0, 3.0], "test": [0.2, 0.2]}],
        anchor_valid=[1.6, 1.6],
        anchor_test=[0.9, 0.9],
    )
    # 0.1 better on average, but the two windows disagree by 3: the anchor is kept.
    step, test, kept = bench.replay(noisy, 2.0)
    assert (step, kept) == (100, False) and test == pytest.approx(0.9)


def test_the_coverage_table_counts_the_sets_inside_75_to_85_and_their_band_and_pools_the_values():
    way = "adaptive"
    runs = {
        ("a", 0): {way: 76.0, "values": 100, "distinct": 19},
        ("b", 0): {way: 90.0, "values": 10, "distinct": 64},
        ("a", 1): {way: 86.0, "values": 100, "distinct": 19},
        ("b", 1): {way: 80.0, "values": 10, "distinct": 64},
    }
    lines = forecast_coverage.table(runs, way, ["a", "b"], [0, 1]).splitlines()
    half = 164.5 * math.sqrt(0.16 / 19)  # 15.1 points
    assert lines[2] == f"| a | 19 | {80 - half:.0f}-{80 + half:.0f} % | 76.0 % | 86.0 % |"
    assert lines[3] == "| b | 64 | 72-88 % | 90.0 % | 80.0 % |"
    assert lines[4] == "| inside 75-85 % | | | **1 of 2** | **1 of 2** |"
    assert lines[5] == "| inside the 9 in 10 band | | | 1 of 2 | 2 of 2 |"  # b: 90 > 88
    assert lines[6] == "| every test value of every set | | | 77.3 % | 85.5 % |"  # 85/110, 94/110
    assert lines[7] == "| mean of the sets | | | 83.0 % | 83.0 % |"
    assert lines[8] == "| mean distance from 80 % | | | 7.0 points | 3.0 points |"
    assert forecast_coverage.band(19) == pytest.approx((80 - half, 80 + half))
    assert forecast_coverage.band(4) == pytest.approx((47.1, 100.0))  # (112.9 clipped)


def test_runs_with_their_own_origins_live_in_their_own_folders():
    assert bench.options_of("nile", None) == {"dataset": "nile"}
    assert bench.options_of("nile", 60) == {"dataset": "nile", "origins": 60}
    assert bench.folder_of("r", "nile", "climatology", 3, None) == Path("r/nile-climatology-3")
    assert bench.folder_of("r", "nile", "drift", 0, 60) == Path("r/nile-o60-drift-0")


def test_online_coverage_replays_the_test_windows_value_by_value(tmp_path: Path) -> None:
    # One series, horizon 4, 8 origins: the online forecaster fed one value at a time from
    # the first validation value makes the run's test forecasts, recalibrated as
    # `recalibrated` does over the same values with the level moving from the same value:
    # never (split conformal), from the first, or after the default hold (2 * 4 - 1 steps).
    from rnnkit.cli import main
    from rnnkit.tasks.forecast import recalibrated

    rng = np.random.default_rng(0)
    y = 20 + np.cumsum(rng.normal(0.3, 1.0, 90)) + 3 * np.sin(np.arange(90) * np.pi / 2)
    data = tmp_path / "one.csv"
    data.write_text("value\n" + "".join(f"{v:.4f}\n" for v in y))
    run = tmp_path / "run"
    argv = ["train", "forecast", "--data", str(data), "--horizon", "4", "--origins", "8",
            "--steps", "30", "--eval-every", "10", "--hidden", "8", "--batch-size", "4",
            "--context", "8", "--margin", "0", "--out", str(run), "--threads", "1"]  # fmt: skip
    assert main(argv) == 0
    adapt = 1.0  # a step large enough to move the level within these few values
    online = forecast_coverage.online_coverages(run, adapt)
    model, task = forecast_coverage.prepared(run)
    h, r = 4, 8
    first = 2 * h + 2 * r - 2  # the first validation value, counted from the end
    offline = forecast_coverage.scored(task, {
        way: recalibrated(model, task.values, task.test, r, adapt=a, adapt_from=moving)
        for way, a, moving in [("online, split conformal", 0.0, None),
                               ("online, adapting from the first value", adapt, first),
                               ("online, the default", adapt, first - (2 * h - 1))]
    })  # fmt: skip
    assert online == pytest.approx(offline)
    assert online["values"] == 32 and online["distinct"] == 11
    # the three ways differ on this run, so that the equalities above tell them apart
    assert len({online[way] for way in forecast_coverage.ONLINE}) == 3


def test_the_heads_own_intervals_are_those_of_a_run_that_does_not_calibrate(
    tmp_path: Path,
) -> None:
    # forecast_coverage's "the head's own" undoes the validated factor; a run trained
    # the same way with --no-calibrate keeps factor 1 and scores exactly that.
    from rnnkit.cli import main
    from rnnkit.tasks.forecast import model_forecasts

    rng = np.random.default_rng(1)
    y = 50 + np.cumsum(rng.normal(0.2, 1.0, 80)) + 4 * np.sin(np.arange(80) * np.pi / 3)
    data = tmp_path / "one.csv"
    data.write_text("value\n" + "".join(f"{v:.4f}\n" for v in y))
    argv = ["train", "forecast", "--data", str(data), "--horizon", "3", "--origins", "6",
            "--steps", "20", "--eval-every", "10", "--hidden", "8", "--batch-size", "4",
            "--context", "8", "--margin", "0", "--threads", "1"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    assert main([*argv, "--out", str(tmp_path / "raw"), "--no-calibrate"]) == 0
    ways = forecast_coverage.coverages(tmp_path / "run", 0.05)
    model, task = forecast_coverage.prepared(tmp_path / "raw")
    assert float(model.interval_scale) == 1.0
    raw = forecast_coverage.scored(task, {"raw": model_forecasts(model, task.values, task.test)})
    assert ways["the head's own"] == pytest.approx(raw["raw"])
    assert ways["the head's own"] != ways["validation only"]  # the factor is not 1 here


def test_the_comparison_runs_on_a_users_own_train_and_test_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """benchmarks/forecast.py --data TRAIN --test-data TEST: the peers and rnnkit on the
    user's series, scored on TEST's values from the end of TRAIN, as `rnnkit train
    forecast` scores them."""
    import forecast as bench_forecast
    from rnnkit.data.series import join_test, read_series
    from rnnkit.tasks.forecast import Window, naive_forecasts, score

    rng = np.random.default_rng(2)
    series = {f"s{k}": 30 + np.cumsum(rng.normal(0.5, 1.0, 33)) for k in range(4)}

    def rows(part: slice) -> str:
        return "".join(
            f"{name}," + ",".join(f"{v:.3f}" for v in y[part]) + "\n" for name, y in series.items()
        )

    train_file, test_file = tmp_path / "shop.csv", tmp_path / "shop-test.csv"
    train_file.write_text("id," + ",".join(str(t) for t in range(30)) + "\n" + rows(slice(30)))
    test_file.write_text("id,30,31,32\n" + rows(slice(30, None)))
    argv = ["--data", str(train_file), "--test-data", str(test_file), "--steps", "10",
            "--runs", str(tmp_path / "runs"), "--skip", "ETS,ARIMA"]  # fmt: skip
    assert bench_forecast.main(argv) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "runs" / "shop" / "model.safetensors").exists()
    table = out[out.index("**shop**") :]
    methods = [line.split(" | ")[0][2:] for line in table.splitlines() if line.startswith("| ")]
    assert methods[0] == "method" and {"rnnkit", "seasonal naive", "Theta"} <= set(methods)
    # Seasonal naive's row is its score on the joined series, from the end of TRAIN.
    joined = join_test(read_series(train_file), read_series(test_file))
    values = [np.asarray(v) for v in joined.values]
    test = [Window(k, 30) for k in range(4)]
    naive = score(values, test, naive_forecasts(values, test, 3, 1), 3, 1)
    (line,) = [x for x in table.splitlines() if x.startswith("| seasonal naive |")]
    assert line.split(" | ")[1] == f"{naive.mase:.3f}"
