"""Options given from Python: NumPy numbers (a value read from an array) and pathlib paths
are taken and stored as the JSON types config.json holds; what is refused is shown short
(a DataFrame's repr is its whole table)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnkit.tasks.classify import ClassifyOptions
from rnnkit.tasks.forecast import ForecastOptions
from rnnkit.train.config import TrainConfig


def test_numpy_numbers_are_taken_as_python_numbers() -> None:
    options = ForecastOptions(horizon=np.int64(6), dropout=np.int32(0))
    assert (options.horizon, type(options.horizon)) == (6, int)
    assert (options.dropout, type(options.dropout)) == (0.0, float)
    config = TrainConfig(steps=np.int64(5), lr=np.float32(0.5))
    assert (config.steps, type(config.steps), config.lr) == (5, int, 0.5)
    json.dumps(dataclasses.asdict(options))
    json.dumps(dataclasses.asdict(config))


def test_a_path_option_takes_a_pathlib_path_as_its_string() -> None:
    options = ClassifyOptions(data=Path("a/TRAIN.ts"), test_data=Path("a/TEST.ts"))
    assert (options.data, options.test_data) == ("a/TRAIN.ts", "a/TEST.ts")
    assert ForecastOptions(data=Path("sales.csv")).data == "sales.csv"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: ForecastOptions(hidden_size=np.float64(3.0)),
            "--hidden (hidden_size) must be an integer in [1, 65536]; got np.float64(3.0)",
        ),
        (
            lambda: ForecastOptions(data=pd.DataFrame({"a": range(30)})),
            "--data must be a path (a string or a pathlib.Path); got a DataFrame",
        ),
        (
            # A path is no name of a shipped set: choices stay strings.
            lambda: ForecastOptions(dataset=Path("m1-yearly")),
            "--dataset must be one of m1-yearly, airline, lynx, shampoo, uschange, sunspots, "
            "co2, elnino, nile; got PosixPath('m1-yearly')",
        ),
        (
            lambda: TrainConfig(steps=np.bool_(True)),
            "--steps must be an integer in [1, 1000000000]; got np.True_",
        ),
    ],
)
def test_refusals_name_the_option_and_show_the_value_short(build, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        build()
