"""The forecasting Python API given a user's data as pandas and dicts hold it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from _refusals import raises_exactly
from rnnkit.tasks.forecast import ForecastConfig, ForecastModel, forecast


@pytest.fixture
def model() -> ForecastModel:
    torch.manual_seed(0)
    return ForecastModel(ForecastConfig(horizon=3, seasonality=4, hidden_size=4)).eval()


def refusal(kind: str) -> str:
    return (
        "forecast: series must be a list of series, each a sequence of numbers; got a "
        f"{kind}, which iterates over its names (give list(d.values()) for a dict, "
        "[df[c] for c in df] for a DataFrame)"
    )


def test_a_dict_of_series_is_refused_naming_what_to_give(model: ForecastModel) -> None:
    data = {"north": [1.0, 2.0, 3.0, 4.0, 5.0], "south": [2.0, 1.0, 2.0, 1.0, 2.0]}
    raises_exactly(TypeError, refusal("dict"), forecast, model, data)
    by_id = {1: [1.0, 2.0, 3.0]}  # its keys are numbers, once read as one series of them
    raises_exactly(TypeError, refusal("dict"), forecast, model, by_id)
    # What the message says to give forecasts each series as a list of lists does.
    given = forecast(model, list(data.values()))
    expected = forecast(model, [data["north"], data["south"]])
    for a, b in zip(given, expected, strict=True):
        np.testing.assert_array_equal(a.mean, b.mean)


def test_a_dataframe_is_refused_and_its_columns_forecast(model: ForecastModel) -> None:
    frame = pd.DataFrame({"north": [1.0, 2.0, 3.0, 4.0, 5.0], "south": [2.0, 1.0, 2.0, 1.0, 2.0]})
    raises_exactly(TypeError, refusal("DataFrame"), forecast, model, frame)
    given = forecast(model, [frame[c] for c in frame])
    expected = forecast(model, [[1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 1.0, 2.0, 1.0, 2.0]])
    for a, b in zip(given, expected, strict=True):
        np.testing.assert_array_equal(a.mean, b.mean)
        np.testing.assert_array_equal(a.upper, b.upper)
