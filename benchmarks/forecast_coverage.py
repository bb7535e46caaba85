"""How often the forecaster's 80 % intervals hold the test values, over sets and seeds.

Reads the run folders ``benchmarks/forecast_check.py`` leaves (``--runs``, the same
default): for each set and seed the run with the anchor ``--anchor auto`` takes, which is
the model ``rnnkit train forecast --dataset SET --seed S`` keeps with the defaults. No
training: each run's best weights are loaded and its test windows forecast again, with
the intervals calibrated three ways, and as the head gave them:

* ``the head's own``: the quantile head's 10 % and 90 % quantiles, no factor
  (``--no-calibrate``);
* ``validation only``: the factor fitted on the validation windows (``interval_scale``);
* ``split conformal``: at each origin, split conformal at 80 % on every forecast whose
  outcome is known there (``rnnkit.tasks.forecast.intervals.recalibrated`` with ``adapt=0``);
* ``adaptive`` (the default): the same, its level adapting from the first test origin on
  by ``--adapt`` (Gibbs & Candes 2021; ``rnnkit train forecast --adapt``, 0.05).

Printed per way: the coverage for each set and seed, the number of sets inside 75-85 %
and inside their 9-in-10 band, the coverage over every test value of every set
together, the mean of the sets' coverages and their mean distance from 80 %. Beside each
set, the number of distinct values its test windows hold (a single series' 3-12
overlapping windows hold 8-23) and its 9-in-10 band: the range in which a calibrated
interval's coverage would land 9 times in 10 if the hits of those values were
independent (80 % +- 1.645 sqrt(0.16 / n)), how finely the test windows can tell a
coverage.

    python benchmarks/forecast_check.py --seeds 0,1,2,3,4 --jobs 2   # trains the runs
    python benchmarks/forecast_coverage.py --seeds 0,1,2,3,4
    python benchmarks/forecast_coverage.py --sets elnino,sunspots --origins 60 --seeds 0,1,2,3,4

``--origins R`` reads the runs ``forecast_check.py --origins R`` trained. ``--online``
scores instead the forecasts an ``OnlineForecaster(recalibrate=True)`` makes when given
the values its run trained on as its history and then fed the validation and test
values one at a time (single-series sets): its level held at 80 % throughout, adapting
from the first value, and its default (adapting after 2 * horizon - 1 values).

    python benchmarks/forecast_coverage.py --online --seeds 0,1,2,3,4
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

import _args
from _timing import machine
from forecast_check import SETS, anchors_of, folder_of, run_arguments
from rnnkit.deploy import Forecast, scaled
from rnnkit.tasks.forecast import (
    ForecastModel,
    ForecastTask,
    OnlineForecaster,
    model_forecasts,
    score,
)
from rnnkit.train import RunConfig, load
from rnnkit.train.distributed import Context

WAYS = ("the head's own", "validation only", "split conformal", "adaptive")
# --online: OnlineForecaster's level held at 80 % throughout, adapting from the first
# value after the history, and its default (holding still over 2 * horizon - 1 values).
ONLINE: dict[str, dict[str, Any]] = {
    "online, split conformal": {"adapt": 0.0},
    "online, adapting from the first value": {"hold": 0},
    "online, the default": {},
}
SINGLE = tuple(n for n in SETS if n not in ("m1-yearly", "uschange"))  # one series each


def prepared(folder: Path) -> tuple[ForecastModel, ForecastTask]:
    """A run's kept model and its task, its series split as the run split them."""
    if not (folder / "config.json").is_file():
        raise SystemExit(f"{folder}: no run folder; train it with benchmarks/forecast_check.py")
    model = cast(ForecastModel, load(folder))
    config = cast(RunConfig, model.rnnkit_config)  # a plain attribute, set by load
    task = ForecastTask(ForecastTask.parse_options(config.options, "options"))
    task.prepare(ForecastTask.default_train(), Context(0, 1, torch.device("cpu")))
    return model, task


def coverages(folder: Path, adapt: float) -> dict[str, Any]:
    """The test coverage of one run's kept model, each way, and its test values."""
    model, task = prepared(folder)
    values, test = task.values, task.test
    validated = model_forecasts(model, values, test)
    fcs = {
        "the head's own": [scaled(f, 1 / float(model.interval_scale)) for f in validated],
        "validation only": validated,
        "split conformal": task.test_forecasts(model, test, adapt=0.0),
        "adaptive": task.test_forecasts(model, test, adapt=adapt),
    }
    return scored(task, fcs)


def online_coverages(folder: Path, adapt: float) -> dict[str, Any]:
    """The test coverage of a single series' forecasts made online: an
    ``OnlineForecaster(recalibrate=True)`` given the values training saw as its history,
    then fed one value at a time over the validation and test periods, each way."""
    model, task = prepared(folder)
    y = task.values[0]
    if len(task.values) > 1:
        raise SystemExit(f"{folder}: --online reads single-series sets; got {len(task.values)}")
    start = min(w.origin for w in task.valid)  # the first value training never saw
    fcs = {}
    for way, options in ONLINE.items():
        kw = {"adapt": adapt, **options}
        online = OnlineForecaster(model, y[:start], recalibrate=True, **kw)
        made = {start: online.forecast}
        for t in range(start, max(w.origin for w in task.test)):
            made[t + 1] = online.update(float(y[t]))
        fcs[way] = [made[w.origin] for w in task.test]
    return scored(task, fcs)


def scored(task: ForecastTask, fcs: dict[str, list[Forecast]]) -> dict[str, Any]:
    """Each way's coverage of the test values, and how many values the test holds."""
    values, test, h = task.values, task.test, task.derived["horizon"]
    m = task.derived["seasonality"]
    out: dict[str, Any] = {
        way: 100 * score(values, test, f, h, m).coverage for way, f in fcs.items()
    }
    out["values"] = sum(len(values[w.series][w.origin : w.origin + h]) for w in test)
    out["distinct"] = len({(w.series, t) for w in test for t in range(w.origin, w.origin + h)
                           if t < len(values[w.series])})  # fmt: skip
    return out


def band(n: int) -> tuple[float, float]:
    """Where a calibrated 80 % interval's coverage of n values lands 9 times in 10 if its
    hits were independent: 80 % +- 1.645 sqrt(0.16 / n), in percent, within [0, 100]."""
    half = 164.5 * math.sqrt(0.16 / n)
    return max(0.0, 80 - half), min(100.0, 80 + half)


def table(runs: dict[tuple[str, int], dict[str, Any]], way: str, sets: list[str],
          seeds: list[int]) -> str:  # fmt: skip
    """The coverage of one way, per set and seed, with the summary rows."""
    head = "| set | distinct test values | 9 in 10 calibrated intervals | "
    lines = [head + " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---|---:|---:|" + "---:|" * len(seeds)]  # fmt: skip
    for name in sets:
        n = runs[name, seeds[0]]["distinct"]
        lo, hi = band(n)
        cells = " | ".join(f"{runs[name, s][way]:.1f} %" for s in seeds)
        lines.append(f"| {name} | {n} | {lo:.0f}-{hi:.0f} % | {cells} |")

    def row(label: str, each: Any) -> None:
        lines.append(f"| {label} | | | " + " | ".join(each(s) for s in seeds) + " |")

    def inside(s: int) -> str:
        k = sum(75 <= runs[n, s][way] <= 85 for n in sets)
        return f"**{k} of {len(sets)}**"

    def pooled(s: int) -> str:
        hits = sum(runs[n, s][way] * runs[n, s]["values"] for n in sets)
        return f"{hits / sum(runs[n, s]['values'] for n in sets):.1f} %"

    def calibrated(s: int) -> str:
        bands = {n: band(runs[n, s]["distinct"]) for n in sets}
        k = sum(bands[n][0] <= runs[n, s][way] <= bands[n][1] for n in sets)
        return f"{k} of {len(sets)}"

    row("inside 75-85 %", inside)
    row("inside the 9 in 10 band", calibrated)
    row("every test value of every set", pooled)
    row("mean of the sets", lambda s: f"{np.mean([runs[n, s][way] for n in sets]):.1f} %")
    row("mean distance from 80 %",
        lambda s: f"{np.mean([abs(runs[n, s][way] - 80) for n in sets]):.1f} points")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = _args.parser(__doc__.splitlines()[0])
    run_arguments(p)  # those forecast_check.py trained the runs with
    p.add_argument("--adapt", type=_args.float_in(0, 1), default=0.05,  # rnnkit's --adapt
                   help="the adaptive ways' step")  # fmt: skip
    p.add_argument("--online", action="store_true",
                   help="forecast online instead (single-series sets; default: those)")  # fmt: skip
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.online and args.sets == list(SETS):
        args.sets = list(SINGLE)
    sets, seeds = args.sets, args.seeds
    several = [name for name in sets if name not in SINGLE]
    if args.online and several:
        reads = f"--online reads single-series sets ({', '.join(SINGLE)})"
        _args.refuse(p, "--sets", f"{reads}; got {', '.join(several)}")
    _args.check(p, "--runs", _args.existing_folder, args.runs)
    start = time.perf_counter()
    anchors = anchors_of(p, sets, args.origins)
    folders = {
        (name, s): folder_of(args.runs, name, anchors[name], s, args.origins)
        for name in sets
        for s in seeds
    }
    # Every run is looked for before any is scored, so a missing one is told at once.
    missing = [f for f in folders.values() if not (f / "config.json").is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        _args.refuse(
            p, "--runs", f"expected the runs forecast_check.py trains; got no {missing[0]}{more}"
        )
    each, ways = (online_coverages, list(ONLINE)) if args.online else (coverages, WAYS)
    runs = {key: each(folder, args.adapt) for key, folder in folders.items()}
    for way in ways:
        adapting = way not in WAYS[:2] and "split" not in way
        what = f"{way}, adapt {args.adapt:g}" if adapting else way
        print(f"80 % interval coverage on the test windows, {what}:\n")
        print(table(runs, way, sets, seeds) + "\n")
    command = "python benchmarks/forecast_coverage.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    seconds = time.perf_counter() - start
    print(f"`{command.strip()}`: {seconds:.0f} s on {machine()}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
