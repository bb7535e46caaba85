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
        "series 2 is empty: a forecast needs at least one value",
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
