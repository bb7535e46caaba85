"""Each error message of the forecast task (``rnnkit.tasks.forecast``) that no other test
reaches, through the Python API or `rnnkit` itself, asserted word for word: the command
line's in one line on stderr, exit status 2, no traceback and nothing written."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit
from _refusals import raises_exactly as _raises
from _refusals import refused
from rnnkit.cli import main
from rnnkit.tasks.forecast import (
    ForecastConfig,
    ForecastModel,
    OnlineForecaster,
    forecast,
    recalibrated,
    windows,
)


@pytest.fixture(scope="module")
def model() -> ForecastModel:
    """An untrained forecaster: the refusals come before the network runs."""
    torch.manual_seed(0)
    return ForecastModel(ForecastConfig(horizon=2, hidden_size=4)).eval()


# ---- ForecastConfig ------------------------------------------------------------------


def test_a_head_that_is_not_one_of_the_heads() -> None:
    _raises(
        ValueError,
        "head must be one of quantile, gaussian; got 'median'",
        ForecastConfig,
        horizon=2,
        head="median",
    )


# ---- forecast ------------------------------------------------------------------------


def test_series_that_are_not_a_list(model) -> None:
    _raises(
        TypeError,
        "forecast: series must be a list of series, each a sequence of numbers; got int",
        forecast,
        model,
        5,
    )


def test_an_empty_series(model) -> None:
    _raises(
        ValueError,
        "forecast: series 2 is empty: a forecast needs at least one value",
        forecast,
        model,
        [[1.0, 2.0], []],
    )


def test_a_numpy_integer_horizon_is_an_integer(model) -> None:
    # It was refused as "must be an integer ...; got np.int64(1)".
    (f,) = forecast(model, [[1.0, 2.0, 3.0]], horizon=np.int64(1))
    assert f.mean.shape == (1,)
    (g,) = forecast(model, [[1.0, 2.0, 3.0]], horizon=1)
    np.testing.assert_array_equal(f.mean, g.mean)
    _raises(
        ValueError,
        "forecast: horizon must be an integer in [1, 2] (the trained horizon); got np.int64(3)",
        forecast,
        model,
        [[1.0]],
        horizon=np.int64(3),
    )


# ---- OnlineForecaster ------------------------------------------------------------------


def test_online_forecaster_of_another_model() -> None:
    _raises(
        TypeError,
        "OnlineForecaster: model must be a ForecastModel (rnnkit.load of a forecast run); got LSTM",
        OnlineForecaster,
        rnnkit.LSTM(3, 4),
    )


@pytest.mark.parametrize("adapt", ["0.1", True, float("nan"), -0.5])
def test_online_forecaster_adapt_that_is_not_a_number(model, adapt) -> None:
    # A string failed in math's words ("must be real number, not str") and True adapted
    # by steps of 1; the others were named without their owner.
    _raises(
        ValueError,
        f"OnlineForecaster: adapt must be a number >= 0; got {adapt!r}",
        OnlineForecaster,
        model,
        [1.0, 2.0],
        recalibrate=True,
        adapt=adapt,
    )


@pytest.mark.parametrize("hold", ["3", False, -1, 2.0])
def test_online_forecaster_hold_that_is_not_a_count(model, hold) -> None:
    _raises(
        ValueError,
        f"OnlineForecaster: hold must be a count of time steps >= 0; got {hold!r}",
        OnlineForecaster,
        model,
        [1.0, 2.0],
        recalibrate=True,
        hold=hold,
    )


def test_online_forecaster_takes_a_numpy_integer_hold(model) -> None:
    # It was refused as "hold must be a count of time steps >= 0; got np.int64(3)".
    online = OnlineForecaster(model, [1.0, 2.0], recalibrate=True, hold=np.int64(3))
    assert online.recalibration.hold == 3 and type(online.recalibration.hold) is int


def test_a_bad_history_value_names_history(model) -> None:
    # It said "OnlineForecaster, value 2", not which argument held the value.
    _raises(
        ValueError,
        "OnlineForecaster: history, value 2: a forecast value must be a finite number; got nan",
        OnlineForecaster,
        model,
        [1.0, float("nan")],
    )


# ---- recalibrated ----------------------------------------------------------------------


@pytest.mark.parametrize("adapt_from", [-1, "3", True, 2.5])
def test_recalibrated_adapt_from_that_is_not_a_count(model, adapt_from) -> None:
    # "3" failed late in Python's words ("'<' not supported ..."); True and 2.5 were read
    # as counts; -1 was named without a repr.
    y = [float(v) for v in range(1, 13)]
    test = windows([len(y)], 2, 1, "test")
    _raises(
        ValueError,
        f"recalibrated: adapt_from must be a count of values >= 0 or None; got {adapt_from!r}",
        recalibrated,
        model,
        [np.asarray(y)],
        test,
        1,
        adapt=0.05,
        adapt_from=adapt_from,
    )
    assert len(recalibrated(model, [np.asarray(y)], test, 1, adapt=0.05, adapt_from=0)) == 1


# ---- the command line --------------------------------------------------------------------


def test_data_that_does_not_exist(capsys, tmp_path) -> None:
    missing, out = tmp_path / "none.csv", tmp_path / "run"
    line = refused(
        capsys,
        ["train", "forecast", "--data", str(missing), "--horizon", "2", "--out", str(out)],
        tmp_path,
    )
    assert line == (
        f"rnnkit train: error: --data: series file not found: {missing}; expected a .tsf or "
        ".csv file"
    )


SERIES = {
    "a": [1, 2, 3, 5, 4, 6, 7, 8, 9, 10, 12, 11],
    "b": [1, 3, 2, 5, 4, 6, 7, 8, 9, 10, 12, 11],
}
LONG = "id,time,value\n" + "".join(
    f"{s},{t + 1},{v}\n" for s, values in SERIES.items() for t, v in enumerate(values)
)
TINY = ["--horizon", "2", "--steps", "2", "--eval-every", "2", "--hidden", "4"]


def test_forecast_of_a_run_whose_data_changed(capsys, tmp_path) -> None:
    """``rnnkit forecast RUN`` reads the run's own data again: changed since training, it
    is refused as ``rnnkit eval`` and ``--resume`` refuse it (it forecast from the edited
    values)."""
    data, run, out = tmp_path / "m.csv", tmp_path / "run", tmp_path / "f.csv"
    data.write_text(LONG)
    assert main(["train", "forecast", "--data", str(data), *TINY, "--out", str(run)]) == 0
    assert main(["forecast", str(run), "--out", str(out)]) == 0  # unchanged: forecast
    out.unlink()
    data.write_text(LONG.replace("b,12,11\n", "b,12,1000\n"))
    expected = (
        f"{data} has changed since this run started (its values differ from the ones "
        "recorded in config.json); start a new run"
    )
    for argv in (["forecast", str(run)], ["forecast", str(run), "--out", str(out)]):
        line = refused(capsys, argv, tmp_path)
        assert line == f"rnnkit forecast: error: {expected}"
    assert refused(capsys, ["eval", str(run)], tmp_path) == f"rnnkit eval: error: {expected}"


@pytest.mark.parametrize(
    ("head", "limit", "how"),
    [("quantile", "1e+15", ""), ("gaussian", "1e+08", " and --head gaussian squares them")],
)
def test_a_training_value_too_far_out_of_scale(capsys, tmp_path, head, limit, how) -> None:
    """A value whose target overflowed float32 (or whose loss did) skipped every step and
    left a run folder without a model: refused before the folder is made."""
    data, run = tmp_path / "spike.csv", tmp_path / "run"
    data.write_text(LONG.replace("a,5,4\n", "a,5,1e39\n"))
    argv = ["train", "forecast", "--data", str(data), *TINY, "--head", head, "--out", str(run)]
    assert refused(capsys, argv, tmp_path) == (
        f"rnnkit train: error: {data}: value 5 of series 'a' is 1e+39, 1e+39 units from its "
        "anchor forecast, a unit being the mean absolute (seasonal) change of the values "
        f"before it; the network's targets are float32{how}, so at most {limit} units are "
        "accepted"
    )
    assert not run.exists()


def test_write_csv_never_replaces_without_overwrite(tmp_path):
    """write_csv returns the CSV; it writes a file only where nothing is, or with
    overwrite=True, and refuses names and forecasts that do not pair up."""
    from rnnkit.deploy import Forecast
    from rnnkit.tasks.forecast import write_csv

    one = Forecast(torch.tensor([1.0, 2.0]), torch.tensor([0.5, 1.0]), torch.tensor([2.0, 3.0]))
    expected = "series,step,forecast,lo80,hi80\na,1,1,0.5,2\na,2,2,1,3\n"
    assert write_csv(None, ["a"], [one]) == expected
    target = tmp_path / "f.csv"
    target.write_text("mine\n")
    _raises(ValueError, f"write_csv: {target} exists; pass overwrite=True to replace it",
            write_csv, target, ["a"], [one])  # fmt: skip
    _raises(ValueError, "write_csv: 2 names but 1 forecasts", write_csv, tmp_path / "g.csv",
            ["a", "b"], [one])  # fmt: skip
    assert target.read_text() == "mine\n" and sorted(tmp_path.iterdir()) == [target]
    assert write_csv(target, ["a"], [one], overwrite=True) == expected
    assert target.read_text() == expected
