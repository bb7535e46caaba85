"""rnnkit's global forecaster against seasonal naive, ETS, Theta and ARIMA, same windows.

For each series set, one process and one torch thread: the set is read and split as
``rnnkit train forecast`` splits it (test = the last ``horizon`` values of each series, or
``origins`` rolling origins of a single series; training sees only the values before
validation's), rnnkit's model is trained once on the training values with the task's
defaults (an ordinary run folder under ``--runs``), and then every method forecasts every
test window from the same history:

* rnnkit: the best model (by validation MASE) of the run, one pass over each history;
  its 80 % intervals calibrated, at each origin, on every forecast from the validation
  windows on whose outcome is known there (``rnnkit.tasks.forecast.intervals.recalibrated``, as
  the task's test scores);
* seasonal naive: the last season repeated, with its normal 80 % interval;
* ETS: statsmodels' ``ETSModel``, additive or multiplicative error (the latter for
  positive series), no / additive / damped trend, additive season where m > 1 and the
  history holds two seasons; chosen per window by AICc (the ``forecast::ets`` recipe);
* Theta: statsmodels' ``ThetaModel`` (SES with drift, Assimakopoulos & Nikolopoulos
  2000), deseasonalised where m > 1 and the history holds two seasons;
* ARIMA: statsmodels' ``ARIMA`` with d = 1 and a drift, (p, q) in {0, 1, 2}^2 with
  p + q <= 2, chosen per window by AIC; where m > 1 and the history holds three seasons,
  a seasonal (0,1,1)_m part instead of the drift (the airline model's family). (Choosing
  d by the KPSS test, as auto.arima does, was worse on M1 yearly: MASE 3.620 against
  3.426.)

The statistical models are fitted afresh on every window's history (rolling origin); the
rnnkit model is not retrained between origins. Each prints MASE (M4/Monash: scaled by the
in-sample seasonal naive error of the history), sMAPE and the coverage of its 80 %
intervals, and its time. A model fit that fails falls back to seasonal naive (counted).

With ``--refit``, rnnkit is also trained a second time, from scratch, on every value
before the test windows (``--train-until test``) for the number of steps its first run
chose on validation and with that run's interval factor, and scored as "rnnkit, refit":
what the statistical peers do at every origin, done once.

    python benchmarks/forecast.py                  # m1-yearly, airline, nile, sunspots
    python benchmarks/forecast.py --sets m1-yearly --steps 300   # a quick look
    python benchmarks/forecast.py --markdown docs/forecast-table.md
    python benchmarks/forecast.py --sets elnino --origins 60   # five years of origins
    python benchmarks/forecast.py --sets elnino --origins 60 --adapt 0   # split conformal
    python benchmarks/forecast.py --data Yearly-train.csv --test-data Yearly-test.csv

``--data FILE`` (with ``--test-data``, ``--format``, ``--time-column``, ``--horizon`` and
``--seasonality``, as ``rnnkit train forecast`` takes them) runs the same comparison on
your own series instead of the shipped sets: the set is named by the file.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

import _args
from _timing import machine
from rnnkit.data.series import FORMATS
from rnnkit.tasks.forecast import (
    DATASET_NAMES,
    Forecast,
    ForecastModel,
    ForecastTask,
    Scores,
    anchor_forecasts,
    model_forecasts,
    naive_forecasts,
    score,
    seasonal_naive,
)
from rnnkit.train import TrainConfig, load, train
from rnnkit.train.distributed import Context

DEFAULT_SETS = ("m1-yearly", "airline", "nile", "sunspots")
Z80 = 1.2815515655446004


# ---- the statistical peers: each (history, h, m) -> Forecast --------------------------------


def ets(y: np.ndarray, h: int, m: int) -> Forecast:
    import pandas as pd
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    series = pd.Series(y)  # ETSModel's prediction intervals need a pandas index

    errors = ["add", "mul"] if np.all(y > 0) else ["add"]
    seasons = [None, "add"] if m > 1 and len(y) >= 2 * m + 2 else [None]
    best = None
    for error in errors:
        for trend, damped in ((None, False), ("add", False), ("add", True)):
            for season in seasons:
                if len(y) < 4 + (trend is not None) * 2 + (season is not None) * m:
                    continue
                try:
                    model = ETSModel(
                        series, error=error, trend=trend, damped_trend=damped, seasonal=season,
                        seasonal_periods=m if season else None,
                    )  # fmt: skip
                    fit = model.fit(disp=False, maxiter=200)
                except Exception:
                    continue
                if np.isfinite(fit.aicc) and (best is None or fit.aicc < best.aicc):
                    best = fit
    if best is None:
        raise RuntimeError("no ETS model could be fitted")
    # Multiplicative-error intervals are simulated: seeded, so a rerun gives the same table.
    prediction = best.get_prediction(start=len(y), end=len(y) + h - 1, rng=np.random.default_rng(0))
    frame = prediction.summary_frame(alpha=0.2)
    return _checked(frame["mean"], frame["pi_lower"], frame["pi_upper"])


def theta(y: np.ndarray, h: int, m: int) -> Forecast:
    from statsmodels.tsa.forecasting.theta import ThetaModel

    seasonal = m > 1 and len(y) >= 2 * m
    fit = ThetaModel(y, period=max(m, 1), deseasonalize=seasonal, use_test=False).fit()
    mean = np.asarray(fit.forecast(h))
    bounds = np.asarray(fit.prediction_intervals(h, alpha=0.2))
    return _checked(mean, bounds[:, 0], bounds[:, 1])


def arima(y: np.ndarray, h: int, m: int) -> Forecast:
    from statsmodels.tsa.arima.model import ARIMA

    seasonal = (0, 1, 1, m) if m > 1 and len(y) >= 3 * m + 2 else (0, 0, 0, 0)
    trend = "n" if seasonal[1] else "t"
    best = None
    for p, q in ((0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (0, 2)):
        try:
            model = ARIMA(y, order=(p, 1, q), seasonal_order=seasonal, trend=trend)
            fit = model.fit()
        except Exception:
            continue
        if np.isfinite(fit.aic) and (best is None or fit.aic < best.aic):
            best = fit
    if best is None:
        raise RuntimeError("no ARIMA model could be fitted")
    frame = best.get_forecast(h).summary_frame(alpha=0.2)
    return _checked(frame["mean"], frame["mean_ci_lower"], frame["mean_ci_upper"])


def _checked(mean: Any, lower: Any, upper: Any) -> Forecast:
    f = Forecast(*(np.asarray(v, dtype=np.float64) for v in (mean, lower, upper)))
    if not all(np.all(np.isfinite(v)) for v in f):
        raise RuntimeError("non-finite forecast")
    return f


PEERS = {"ETS": ets, "Theta": theta, "ARIMA": arima}


# ---- one series set --------------------------------------------------------------------------


# The options of your own data, passed to rnnkit as given (with --data).
DATA_OPTIONS = ("data", "test_data", "format", "time_column", "horizon", "seasonality")


def set_options(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """rnnkit's options for the set ``name`` (the stem of --data, when it is given)."""
    options: dict[str, Any] = {"members": args.members}
    if args.data is None:
        options["dataset"] = name
    for key in DATA_OPTIONS:
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    for key in ("anchor", "margin"):  # else the task's defaults
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    if args.origins:
        options["origins"] = args.origins
    return options


def prepared(name: str, args: argparse.Namespace) -> tuple[ForecastTask, TrainConfig]:
    """The task of the set ``name``, its series read and split, and its training budget."""
    task = ForecastTask(ForecastTask.parse_options(set_options(name, args), name, partial=True))
    config = ForecastTask.default_train(steps=args.steps, seed=args.seed, threads=1)
    task.prepare(config, Context(0, 1, torch.device("cpu")))
    return task, config


def run_set(name: str, args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(1)
    options = set_options(name, args)
    task, config = prepared(name, args)
    h, m = task.derived["horizon"], task.derived["seasonality"]
    values, test = task.values, task.test
    rows: dict[str, tuple[Scores, float, int]] = {}
    print(f"== {name}: {task.describe()}", flush=True)

    out = Path(args.runs) / name
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(out.with_name(f"{name}-refit"), ignore_errors=True)
    start = time.perf_counter()
    summary = _args.stop_if_signalled(
        train("forecast", options, config, out=out, log=lambda _: None, progress=io.StringIO())
    )
    model = cast(ForecastModel, load(out))
    # intervals: every outcome known at the origin, the level adapting by --adapt
    # from the first test origin on
    ours = task.test_forecasts(model, test, adapt=args.adapt)
    rows["rnnkit"] = (score(values, test, ours, h, m), time.perf_counter() - start, 0)
    kept = (
        ""
        if float(model.correction)
        else " (the network did not beat its anchor on validation: the anchor's point forecasts)"
    )
    print(f"  rnnkit  {rows['rnnkit'][0].line()}  {rows['rnnkit'][1]:.0f} s{kept}", flush=True)
    if args.refit:
        # The run's choices - its best step and its validation interval scale - then
        # a fresh model trained that long on every value before the test windows.
        steps, scale = summary.best["step"], float(model.interval_scale)
        refit = {**options, "train_until": "test", "interval_scale": max(scale, 0.01)}
        again = ForecastTask.default_train(
            steps=steps, eval_every=steps, warmup_steps=min(50, steps // 2), seed=args.seed,
            threads=1,
        )  # fmt: skip
        t0 = time.perf_counter()
        _args.stop_if_signalled(train("forecast", refit, again, out=out.with_name(f"{name}-refit"),
              log=lambda _: None, progress=io.StringIO()))  # fmt: skip
        again_model = cast(ForecastModel, load(out.with_name(f"{name}-refit")))
        # A refit's validation values are training data: the first run's check decides
        # whether the network's point forecasts or its anchor's are kept.
        again_model.correction.copy_(model.correction)
        ours = model_forecasts(again_model, values, test)
        seconds = rows["rnnkit"][1] + time.perf_counter() - t0
        rows["rnnkit, refit"] = (score(values, test, ours, h, m), seconds, 0)
        print(f"  rnnkit, refit for {steps} steps  {rows['rnnkit, refit'][0].line()}  "
              f"{seconds:.0f} s", flush=True)  # fmt: skip

    start = time.perf_counter()
    naive = naive_forecasts(values, test, h, m)
    rows["seasonal naive"] = (score(values, test, naive, h, m), time.perf_counter() - start, 0)
    anchor = task.derived["anchor"]
    if anchor != "seasonal-naive":  # what the network's forecasts are relative to, alone
        start = time.perf_counter()
        alone = score(values, test, anchor_forecasts(values, test, h, m, anchor), h, m)
        alone.coverage = float("nan")  # a point forecast: no interval
        rows[f"its anchor alone ({anchor})"] = (alone, time.perf_counter() - start, 0)

    for peer, fit in PEERS.items():
        if args.skip and peer in args.skip:
            continue
        start = time.perf_counter()
        forecasts, failed = [], 0
        # record=True: statsmodels adds an "always" filter for its ConvergenceWarning when
        # first imported (inside this block), which would print one per fit.
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("ignore")
            for w in test:
                history = values[w.series][: w.origin]
                try:
                    forecasts.append(fit(history, h, m))
                except Exception:
                    failed += 1
                    forecasts.append(seasonal_naive(history, h, m))
        rows[peer] = (score(values, test, forecasts, h, m), time.perf_counter() - start, failed)
        print(f"  {peer:7s} {rows[peer][0].line()}  {rows[peer][1]:.0f} s", flush=True)
    return {"name": name, "task": task, "rows": rows, "network": bool(float(model.correction))}


def table(result: dict[str, Any]) -> str:
    task, rows = result["task"], result["rows"]
    d = task.derived
    what = (
        f"the last {d['horizon']} values of each series"
        if d["origins"] == 1
        else f"{d['origins']} rolling origins, horizon {d['horizon']}"
    )
    naive = rows["seasonal naive"][0].mase
    kept = "the network's" if result["network"] else "its anchor's (the network did not beat it)"
    # With --test-data the description names the test file and its values already.
    test = "" if "test" in (d.get("source") or {}) else f"test: {what} "
    lines = [
        f"**{result['name']}**: {task.data.describe()}; {test}({len(task.test)} "
        f"forecasts), seasonality {d['seasonality']}; rnnkit's anchor: {d['anchor']}, point "
        f"forecasts: {kept}",
        "",
        "| method | MASE | MASE / naive | sMAPE % | 80% coverage | seconds | fits failed |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for method, (s, seconds, failed) in rows.items():
        coverage = "-" if np.isnan(s.coverage) else f"{s.coverage:.1%}"
        lines.append(
            f"| {method} | {s.mase:.3f} | {s.mase / naive:.2f} | {s.smape:.2f} | {coverage} | "
            f"{seconds:.0f} | {failed} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = _args.parser(__doc__.splitlines()[0])
    p.add_argument(
        "--sets",
        type=_args.listed(_args.one_of(DATASET_NAMES, "datasets"), "datasets"),
        default=None,
        help=f"comma-separated datasets (default: {','.join(DEFAULT_SETS)})",
    )
    p.add_argument(
        "--data",
        type=_args.existing_file,
        metavar="FILE",
        help="your own series instead of --sets: a .tsf file, or a wide, long or rows CSV "
        "(as rnnkit train forecast --data)",
    )
    p.add_argument("--test-data", type=_args.existing_file, metavar="FILE",
                   help="the test file of --data: each series' next values")  # fmt: skip
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="the format of --data and --test-data (default: auto)")  # fmt: skip
    p.add_argument("--time-column", type=_args.nonempty, metavar="NAME",
                   help="the time column of a wide CSV")  # fmt: skip
    p.add_argument("--horizon", type=_args.int_in(1, 10_000), default=None,
                   help="steps to forecast (default: --data's, or --test-data's)")  # fmt: skip
    p.add_argument("--seasonality", type=_args.int_in(1, 10_000), default=None,
                   help="the seasonal period m (default: by --data's frequency)")  # fmt: skip
    # The bounds are those of rnnkit's --steps, --seed, --members, --origins, --adapt and
    # --margin: a value past them would be refused by the task after the earlier sets ran.
    p.add_argument(
        "--steps",
        type=_args.int_in(1, 10**9),
        default=None,
        help="training steps (default: task's)",
    )
    p.add_argument("--seed", type=_args.seed, default=0)
    p.add_argument("--runs", type=_args.folder, default="runs/bench-forecast",
                   help="run folders go here")  # fmt: skip
    p.add_argument(
        "--members", type=_args.int_in(1, 64), default=1, help="rnnkit's ensemble size (--members)"
    )
    p.add_argument(
        "--origins",
        type=_args.int_in(1, 10_000),
        default=None,
        help="test and validation origins per series (default: the dataset's); more origins "
        "judge a single long series on more windows, and leave training fewer values",
    )
    p.add_argument(
        "--adapt",
        type=_args.float_in(0, 1),
        default=None,
        help="rnnkit's recalibration: the step of adaptive conformal inference (default: the "
        "task's --adapt, 0.05; 0: split conformal at 80 %%)",
    )
    p.add_argument(
        "--anchor",
        default=None,
        choices=("seasonal-naive", "climatology", "auto"),
        help="rnnkit's --anchor (default: the task's)",
    )
    p.add_argument(
        "--margin",
        type=_args.float_in(0, 100),
        default=None,
        help="rnnkit's --margin: the standard errors by which the network must beat its "
        "anchor on validation (default: the task's)",
    )
    p.add_argument(
        "--skip",
        type=_args.listed(_args.one_of(PEERS, "peers"), "peers"),
        default=[],
        help="peers to leave out, comma-separated",
    )
    p.add_argument("--markdown", type=_args.new_file, metavar="FILE",
                   help="write the tables here too")  # fmt: skip
    p.add_argument(
        "--refit",
        action="store_true",
        help="also train rnnkit again, on every value before the test windows, for the "
        "steps its run chose on validation (--train-until test), and score that too",
    )
    args = p.parse_args(argv)
    if args.data is None:
        mine = [flag for flag in DATA_OPTIONS[1:] if getattr(args, flag) is not None]
        if mine:
            _args.refuse(p, "--" + mine[0].replace("_", "-"), "describes --data; give --data FILE")
        args.sets = args.sets or list(DEFAULT_SETS)
    elif args.sets is not None:
        _args.refuse(p, "--sets", "--data replaces the shipped sets; give one or the other")
    else:
        args.sets = [Path(args.data).stem]
    for name in args.sets:  # each set's options and split as the task takes them,
        # before any set trains (the series may be too short for --origins)
        flag = "--origins" if args.origins else "--data" if args.data else "--sets"
        _args.check(p, flag, prepared, name, args)
    runs = [Path(args.runs) / f"{name}{end}" for name in args.sets for end in ("", "-refit")]
    _args.writable(p, "--runs", args.runs)
    _args.replaceable_runs(p, "--runs", runs)
    start = time.perf_counter()
    tables = [table(run_set(name, args)) for name in args.sets]
    total = time.perf_counter() - start
    given = argv if argv is not None else sys.argv[1:]
    command = "python benchmarks/forecast.py " + " ".join(given)
    text = "\n\n".join(
        [*tables, f"`{command.strip()}`: {total / 60:.1f} minutes in all on {machine()}."]
    )
    print(text)
    if args.markdown:
        _args.write_file(p, "--markdown", args.markdown, text + "\n", args.overwrite)
    return 0


if __name__ == "__main__":
    sys.exit(main())
