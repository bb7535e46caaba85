"""The options of ``rnnkit train forecast``: :class:`ForecastOptions` (data, evaluation and
model), each with its default, its help and its checks, and the names they choose from.

Apart from the task because they are its interface, read on their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from rnnkit import _options
from rnnkit._options import option
from rnnkit.deploy import ADAPT, ANCHORS
from rnnkit.models.lm import CELLS
from rnnkit.tasks.forecast.config import HEADS
from rnnkit.tasks.forecast.intervals import recalibrates

TRAIN_UNTIL = ("validation", "test")
DATASET_NAMES = (
    "m1-yearly",
    "airline",
    "lynx",
    "shampoo",
    "uschange",
    "sunspots",
    "co2",
    "elnino",
    "nile",
)  # fmt: skip  (rnnkit.data.series.DATASETS; listed here so that no data package loads)


@dataclass
class ForecastOptions:
    """The forecasting task's data, evaluation and model options."""

    data: str | None = option(
        None,
        "your series: a Monash .tsf file, a wide CSV (a column per series), a long CSV "
        "(id,time,value) or a rows CSV (a row per series, as M4's files); see "
        "docs/forecast.md (default: --dataset)",
        metavar="FILE",
    )
    test_data: str | None = option(
        None,
        "the test file: the next horizon values of every series of --data, named as there "
        "and in a format --data takes (M4's and the Monash archive's test files); the test "
        "forecasts each series once, from the end of --data (default: the last values of "
        "each series of --data are the test)",
        metavar="FILE",
    )
    dataset: str = option(
        "m1-yearly",
        "shipped series set, read from the files aeon and statsmodels install (used when "
        "--data is not given)",
        choices=DATASET_NAMES,
    )
    format: str = option(
        "auto",
        "format of --data and --test-data: auto reads .tsf by extension, a long or rows "
        "CSV by its header, else a wide CSV",
        choices=("auto", "tsf", "wide", "long", "rows"),  # rnnkit.data.series.FORMATS
    )
    time_column: str | None = option(
        None,
        "the time column of a wide CSV (--data and --test-data), the one column skipped "
        "(default: the first, when named like a time or holding no number)",
        metavar="NAME",
    )
    horizon: int | None = option(
        None,
        "steps ahead forecast at once (default: the data's: a .tsf @horizon or the "
        "dataset's, or the length of --test-data's series; required for a CSV)",
        low=1,
        high=10_000,
    )
    seasonality: int | None = option(
        None,
        "seasonal period m of seasonal naive and MASE (default: from the data's frequency, else 1)",
        low=1,
        high=100_000,
    )
    origins: int | None = option(
        None,
        "forecast origins per series for test and validation, one step apart (default: "
        "the dataset's; 1 for --data with several series, the horizon for a single one; "
        "with --test-data only 1)",
        low=1,
        high=10_000,
    )
    context: int = option(
        64,
        "steps of a training window (the values before it are run through the model "
        "without gradients first)",
        low=2,
        high=100_000,
    )
    scale_window: int | None = option(
        None,
        "trailing values whose mean absolute value scales the inputs (default: the larger "
        "of horizon and seasonality)",
        low=1,
        high=100_000,
    )
    anchor: str = option(
        "auto",
        "what the forecasts are learned relative to: seasonal-naive (the last season "
        "repeated), climatology (each phase's mean so far plus the last value's deviation "
        "from it, damped by 0.8 per step ahead), drift (seasonal naive plus the mean change "
        "over a season so far, per season ahead), or auto: the one of the three with the "
        "lowest MASE on the validation windows",
        choices=(*ANCHORS, "auto"),
    )
    margin: float = option(
        2.0,
        "the network's point forecasts replace its anchor's only where their validation "
        "MASE is lower by this many standard errors (of the paired difference, over the "
        "distinct values scored, counted in horizons); else the model forecasts its anchor "
        "with the network's intervals. 0: wherever lower at all",
        low=0,
        high=100,
    )
    head: str = option(
        "quantile",
        "output: quantile (median and 10/90 % quantiles, pinball loss) or gaussian (mean "
        "and scale, negative log-likelihood)",
        choices=HEADS,
    )
    cell: str = option("lstm", "recurrent cell", choices=tuple(CELLS))
    hidden_size: int = option(64, "hidden units per layer H", flag="--hidden", low=1, high=65536)
    num_layers: int = option(1, "stacked recurrent layers", flag="--layers", low=1, high=64)
    dropout: float = option(
        0.1, "dropout between layers and before the head", low=0, high=1, open_high=True
    )
    members: int = option(
        1,
        "train an ensemble of this many independent networks together and average their "
        "forecasts and intervals (a deep ensemble; each costs one network's time)",
        low=1,
        high=64,
    )
    batch_size: int = option(
        32, "training windows per step, summed over all processes", low=1, high=1_000_000
    )
    calibrate: bool = option(
        True,
        "scale the 80% intervals so that they cover 80% of the validation values, at "
        "each evaluation (split conformal; --no-calibrate: the head's own intervals)",
    )
    adapt: float | None = option(
        None,
        "the step of adaptive conformal inference for the test intervals, recalibrated at "
        "each origin: from the first test origin on, the level of their conformal quantile "
        "moves after each value by this times (0.2 - the share of its forecasts' intervals "
        "it fell outside); 0: split conformal at 80% (default: 0.05 where the intervals "
        "are recalibrated, else 0)",
        low=0,
        high=1,
    )
    train_until: str = option(
        "validation",
        "the values training sees: those before the validation windows (validation then "
        "picks the best model and scales the intervals), or all before the test windows "
        "(test: a refit, for the --steps an earlier run chose, with its --interval-scale; "
        "the validation windows are then training data and choose nothing)",
        choices=TRAIN_UNTIL,
    )
    interval_scale: float | None = option(
        None,
        "with --train-until test: the factor of the 80% intervals, the interval_scale "
        "an earlier run found on validation (default 1)",
        low=0.01,
        high=100,
    )

    def __post_init__(self) -> None:
        _options.check(self)
        if self.test_data is not None and self.origins not in (None, 1):
            # A test file holds one forecast's values per series: earlier origins would
            # score values of --data, which validation and training use.
            raise ValueError(
                "--test-data holds each series' next horizon values, forecast from one "
                f"origin, the end of --data; got --origins {self.origins} (leave it out)"
            )
        if self.interval_scale is not None and self.train_until != "test":
            raise ValueError(
                "--interval-scale is for --train-until test (a refit); with --train-until "
                "validation the intervals are scaled on validation (--calibrate); got "
                f"--interval-scale {self.interval_scale:g}"
            )
        recalibrated = recalibrates(self.calibrate, self.train_until)
        if self.adapt is None:  # (config.json records the step the run used)
            self.adapt = ADAPT if recalibrated else 0.0
        elif self.adapt > 0 and not recalibrated:
            raise ValueError(
                "--adapt is for test intervals recalibrated at each origin (--calibrate "
                f"with --train-until validation); got --adapt {self.adapt:g} with "
                + ("--no-calibrate" if not self.calibrate else "--train-until test")
            )
