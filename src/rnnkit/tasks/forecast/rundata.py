"""The data of a run: read as given or as the run recorded it (refused where its values
have changed), what a run derives from it (horizon, seasonality, origins, scale window,
anchor), the check of a recorded ``derived``, and the model configuration that follows.

Apart from the task because ``rnnkit forecast`` reads a run's data too, without training.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from rnnkit.deploy import ANCHORS
from rnnkit.tasks.base import DerivedError
from rnnkit.tasks.forecast.anchors import anchor_mase, choose_anchor
from rnnkit.tasks.forecast.config import ForecastConfig
from rnnkit.tasks.forecast.metrics import windows
from rnnkit.tasks.forecast.options import DATASET_NAMES, ForecastOptions


def source_of(o: ForecastOptions) -> dict[str, Any]:
    """How to read the run's data again (an absolute path, or a dataset's name; and the
    test file's absolute path, read with the same format and time column)."""
    if o.test_data is not None and o.data is None:
        raise ValueError(
            "--test-data needs --data (the training file whose series it continues); got "
            f"--test-data {o.test_data} without --data"
        )
    if o.data is None:
        if o.format != "auto" or o.time_column is not None:
            raise ValueError("--format and --time-column describe --data; give --data FILE")
        return {"dataset": o.dataset}
    if o.dataset != DATASET_NAMES[0]:
        raise ValueError(f"give --data or --dataset, not both; got --data {o.data} and "
                         f"--dataset {o.dataset}")  # fmt: skip
    source: dict[str, Any] = {
        "path": os.path.abspath(o.data),
        "format": o.format,
        "time_column": o.time_column,
    }
    if o.test_data is not None:
        source["test"] = {"path": os.path.abspath(o.test_data)}
    return source


def read_new(o: ForecastOptions) -> Any:
    """A new run's data, read as given (messages name the files as the user did; the run
    records them absolute): ``--data``, or the shipped set, followed by ``--test-data``'s
    values where given (:func:`rnnkit.data.series.join_test`)."""
    from rnnkit.data.series import join_test
    from rnnkit.train.files import refuse_same_file

    source = source_of(o)
    if o.data is None:
        return read_given(source)
    data = read_given({**source, "path": o.data})
    if o.test_data is None:
        return data
    test = read_given({**source, "path": o.test_data}, "--test-data")
    refuse_same_file(
        "--test-data", o.test_data, "--data", o.data, "a test of the last values of --data"
    )
    return join_test(data, test, o.horizon)


def read_source(source: dict[str, Any]) -> Any:
    from rnnkit.data.series import load_dataset, read_series

    if "dataset" in source:
        return load_dataset(source["dataset"])
    return read_series(source["path"], source.get("format", "auto"), source.get("time_column"))


def read_recorded(derived: dict[str, Any]) -> Any:
    """The data a run recorded (``derived["source"]``), refused if its values differ from
    those it started with: resuming, evaluating or forecasting from other values would
    pass them off as the run's own."""
    from rnnkit.data.series import join_test

    source = derived["source"]
    data = read_source(source)
    if checksum(data.values) != derived.get("checksum"):
        raise changed(data.source)
    if source.get("test") is None:
        return data
    test = read_source({**source, "path": source["test"]["path"]})
    joined = join_test(data, test, derived["horizon"])
    if checksum(held_values(joined)) != derived.get("test_checksum"):
        raise changed(test.source)
    return joined


def changed(where: str) -> ValueError:
    return ValueError(
        f"{where} has changed since this run started (its values differ from the ones "
        "recorded in config.json); start a new run"
    )


def held_values(data: Any) -> list[list[float]]:
    """The values a test file added to each series (:func:`rnnkit.data.series.join_test`),
    in the training file's order of series; empty ones without a test file."""
    held = int(data.info.get("test_values", 0))
    return [v[len(v) - held :] for v in data.values] if held else [[] for _ in data.values]


def read_given(source: dict[str, Any], flag: str = "--data") -> Any:
    """:func:`read_source` of a file the user names with ``flag`` now: a missing one says
    so by the flag (a run's recorded file that is gone says which run needs it)."""
    try:
        return read_source(source)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{flag}: {err}; expected a .tsf or .csv file") from None


# How far the M4 competition forecast each frequency (Makridakis et al. 2020): what the
# refusal of a file that names no horizon suggests, never applied unasked.
M4_HORIZONS = {"yearly": 6, "annual": 6, "quarterly": 8, "monthly": 18, "weekly": 13,
               "daily": 14, "hourly": 48}  # fmt: skip


def checksum(values: Sequence[Sequence[float]]) -> str:
    h = hashlib.sha256()
    for v in values:
        h.update(np.asarray(v, dtype=np.float64).tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]


def derive(o: ForecastOptions, data: Any) -> dict[str, Any]:
    """What a run takes from its data: horizon, seasonality, origins, scale window."""
    horizon = o.horizon or data.horizon
    if horizon is None:
        frequency = data.frequency
        example = (
            f"{M4_HORIZONS[frequency]}, as M4 forecast its {frequency} series"
            if frequency in M4_HORIZONS
            else "6 for yearly, 8 for quarterly, 18 for monthly series, as in M4"
        )
        raise ValueError(
            f"{data.source} does not say how far to forecast: give --horizon (e.g. {example})"
        )
    seasonality = o.seasonality or data.seasonality or 1
    origins = o.origins or data.info.get("origins") or (1 if len(data) > 1 else horizon)
    if not o.seasonality and seasonality >= longest_test_origin(data, horizon, origins):
        # A season read from a CSV's dates (or a file's frequency) that no test origin has
        # a whole season before it would be used nowhere: none, rather than a refusal of
        # a file the user said nothing wrong about (40 weeks of weekly sales).
        seasonality = 1
    values = [np.asarray(v, dtype=np.float64) for v in data.values]
    scored = windows([len(v) for v in values], int(horizon), int(origins), "validation")
    validated = {a: anchor_mase(values, scored, int(horizon), int(seasonality), a) for a in ANCHORS}
    held = held_values(data)  # the training file's values are checked apart from them
    trained = [v[: len(v) - len(t)] for v, t in zip(data.values, held, strict=True)]
    return {
        "source": source_of(o),
        "described": data.describe(),
        "series": len(data),
        "checksum": checksum(trained),
        **({"test_checksum": checksum(held)} if "test_values" in data.info else {}),
        "horizon": int(horizon),
        "seasonality": int(seasonality),
        "origins": int(origins),
        "scale_window": int(o.scale_window or max(horizon, seasonality)),
        "anchor": choose_anchor(o.anchor, validated),
        "anchor_validation_mase": validated,
    }


def longest_test_origin(data: Any, horizon: int, origins: int) -> int:
    """The most history any test forecast has: a seasonality as long is used nowhere."""
    tests = windows([len(v) for v in data.values], int(horizon), int(origins), "test")
    return max((w.origin for w in tests), default=0)


DERIVED_KEYS = ("source", "horizon", "seasonality", "origins", "scale_window")


def check_derived(derived: dict[str, Any], where: str) -> None:
    """Refuse ``derived`` without what a forecast run needs (a hand-edited config.json)."""
    missing = [k for k in DERIVED_KEYS if k not in derived]
    if missing:
        raise DerivedError(f"{where}: missing key(s) {', '.join(missing)} of a forecast run")
    for key in DERIVED_KEYS[1:]:
        value = derived[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DerivedError(f"{where}: {key} must be a positive integer; got {value!r}")
    source = derived["source"]
    if not (
        isinstance(source, dict)
        and (isinstance(source.get("dataset"), str) or isinstance(source.get("path"), str))
    ):
        raise DerivedError(
            f"{where}: source must be an object with a path or a dataset; got {source!r}"
        )
    test = source.get("test")
    if test is not None and not (isinstance(test, dict) and isinstance(test.get("path"), str)):
        raise DerivedError(f"{where}: source's test must be an object with a path; got {test!r}")
    anchor = derived.get("anchor", ANCHORS[0])  # runs from before anchors have none
    if anchor not in ANCHORS:
        raise DerivedError(f"{where}: anchor must be one of {', '.join(ANCHORS)}; got {anchor!r}")


def model_config(o: ForecastOptions, d: dict[str, Any]) -> ForecastConfig:
    return ForecastConfig(
        horizon=d["horizon"],
        seasonality=d["seasonality"],
        scale_window=d["scale_window"],
        head=o.head,
        cell=o.cell,
        hidden_size=o.hidden_size,
        num_layers=o.num_layers,
        dropout=o.dropout,
        members=o.members,
        anchor=d.get("anchor", ANCHORS[0]),  # runs from before anchors: seasonal naive
    )
