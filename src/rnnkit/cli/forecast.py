"""`rnnkit forecast`: forecast the next values of series with a trained forecast run."""

from __future__ import annotations

import argparse
import os
import sys
from typing import cast

from rnnkit.cli._lm_args import add_runtime, one_line_errors, positive_int, runtime
from rnnkit.cli.predict import how_to_apply

EXAMPLES = """examples:
  rnnkit forecast runs/m1                               # the run's own series, to stdout
  rnnkit forecast runs/m1 --data sales.csv --out forecasts.csv --plot forecasts.png
  rnnkit forecast runs/m1 --data sales.csv --horizon 3 --series north --series south"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "forecast",
        help="forecast series with a trained forecast run (CSV of forecasts and intervals)",
        description="Forecast the values after the end of each series with the model of a "
        "run folder written by rnnkit train forecast: the point forecast and the 80% "
        "interval per series and step, as CSV (series,step,forecast,lo80,hi80). The series "
        "are the run's own (all their values) unless --data names a file in any format "
        "the task reads (.tsf, wide CSV, long CSV). The intervals of the run's own series "
        "are calibrated on every value after its training data (validation's and the "
        "test's, all known now); those of --data on the run's validation windows.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    one_line_errors(p)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a forecast run folder")
    p.add_argument(
        "--data", metavar="FILE", help="series to forecast (default: the run's own data)"
    )
    p.add_argument(
        "--format",
        choices=["auto", "tsf", "wide", "long", "rows"],
        default="auto",
        help="format of --data (default: auto, by extension and header)",
    )
    p.add_argument("--time-column", metavar="NAME", help="the time column of a wide CSV")
    p.add_argument(
        "--horizon",
        type=positive_int,
        default=None,
        help="steps to forecast, at most the trained horizon (default: the trained horizon)",
    )
    p.add_argument(
        "--out",
        metavar="FILE.csv",
        help="write the CSV here (default: stdout); an existing file only with --force",
    )
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        help="draw the forecasts and intervals of a few series; an existing file only with --force",
    )
    p.add_argument("--force", action="store_true", help="replace --out and --plot if they exist")
    p.add_argument(
        "--series",
        action="append",
        metavar="NAME",
        help="a series to draw with --plot (repeatable; default: the first four)",
    )
    add_runtime(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from rnnkit.cli._outputs import write_output, writing
    from rnnkit.tasks.forecast import (
        Forecast,
        ForecastModel,
        Window,
        check_derived,
        forecast,
        plot_forecasts,
        recalibrated,
        recalibrates,
        write_csv,
    )
    from rnnkit.tasks.forecast.rundata import read_given, read_recorded
    from rnnkit.train import load
    from rnnkit.train.runfolder import RunFolder

    if args.data is None and (args.format != "auto" or args.time_column is not None):
        raise ValueError("--format and --time-column describe --data; give --data FILE")
    if args.series and not args.plot:
        raise ValueError("--series picks the series drawn by --plot; give --plot FILE.png")
    config = RunFolder(args.run_dir).read_config()
    if config.task != "forecast":
        raise ValueError(
            f"{args.run_dir} is a run of task {config.task!r}, not a forecast run; "
            f"{how_to_apply(config.task, args.run_dir)}"
        )
    check_derived(config.derived, f"{Path(args.run_dir) / 'config.json'}: derived")
    source = config.derived["source"]
    check_outputs(args, source.get("path"), source.get("test", {}).get("path"))
    trained = int(config.derived["horizon"])
    if args.horizon is not None and args.horizon > trained:
        raise ValueError(
            f"--horizon must be at most {trained}, the horizon {args.run_dir} was trained "
            f"for; got {args.horizon}"
        )
    device, precision = runtime(args)
    # A forecast run's model (its task is checked above), loaded before the data is read.
    model = cast(ForecastModel, load(args.run_dir, device))
    if args.data is None:
        data = read_recorded(config.derived)  # refused if changed, as eval and --resume do
    else:
        data = read_given(
            {"path": args.data, "format": args.format, "time_column": args.time_column}
        )
    names = list(data.names)
    picked = list(range(min(4, len(names))))
    if args.series:
        missing = [s for s in args.series if s not in names]
        if missing:
            raise ValueError(
                f"--series {missing[0]!r} is not a series of {data.source}; it has "
                f"{', '.join(repr(n) for n in names[:5])}{', ...' if len(names) > 5 else ''}"
            )
        picked = [names.index(s) for s in dict.fromkeys(args.series)]
    own = args.data is None and recalibrates(
        config.options.get("calibrate", True), config.options.get("train_until", "validation")
    )
    with precision:
        if own:
            # The run's own series: every value after its validation windows is known now,
            # and calibrates the intervals too (as the test scores were made, at the
            # run's --adapt; runs from before it recalibrated at a fixed level).
            values = [np.asarray(v, dtype=np.float64) for v in data.values]
            ends = [Window(i, len(v)) for i, v in enumerate(values)]
            h = trained if args.horizon is None else args.horizon
            origins, adapt = int(config.derived["origins"]), config.options.get("adapt", 0.0)
            forecasts = [
                Forecast(*(b[:h] for b in f))
                for f in recalibrated(model, values, ends, origins, adapt=float(adapt))
            ]
        else:
            forecasts = forecast(model, data.values, args.horizon)
    text = write_csv(None, names, forecasts)
    h = len(forecasts[0].mean)
    # The figure first: a figure that cannot be drawn leaves no CSV behind either.
    if args.plot:
        with writing("--plot", args.plot):
            plot_forecasts(
                args.plot,
                [names[i] for i in picked],
                [data.values[i] for i in picked],
                [len(data.values[i]) for i in picked],
                [forecasts[i] for i in picked],
                f"{Path(args.run_dir).name}: forecasts of {data.source}, 80% intervals",
            )
    if args.out is None:
        sys.stdout.write(text)
    else:
        write_output("--out", Path(args.out), text.encode("utf-8"))
        print(f"forecasts of {len(names)} series, {h} steps each: {args.out}", file=sys.stderr)
    if args.plot:
        print(f"figure: {args.plot}", file=sys.stderr)
    return 0


def check_outputs(
    args: argparse.Namespace, trained_on: str | None, tested_on: str | None = None
) -> None:
    """Refuse, before the model or data is read or anything written, an output that would
    replace a file without --force, or at all the --data file, the run's own data file
    (``trained_on``) or test file (``tested_on``, its --test-data) or any file in the run
    folder (which holds only what rnnkit writes); a folder, a missing folder, a CSV not
    named .csv or a figure not named .png."""
    from rnnkit.cli._outputs import check_new_file, check_outside_runs, same_file

    if args.out is not None and args.plot is not None and same_file(args.out, args.plot):
        raise ValueError(f"--out and --plot name the same file: {args.out}")
    # --out is CSV whatever its name: a .txt name would hide that from whoever opens it.
    for flag, name, suffix in (("--out", args.out, ".csv"), ("--plot", args.plot, ".png")):
        if name is None:
            continue
        for data, what in (
            (args.data, "the --data file"),
            (trained_on, "the run's data"),
            (tested_on, "the run's test data"),
        ):
            if data is not None and same_file(name, data):
                raise ValueError(f"{flag} {name} is {what}; expected another file name")
        if same_file(os.path.dirname(os.path.abspath(name)), args.run_dir):
            raise ValueError(
                f"{flag} {name} is in the run folder, which holds only what rnnkit writes; "
                "expected a file elsewhere"
            )
        check_outside_runs(flag, name)  # another run's folder, at any depth
        check_new_file(flag, name, args.force, suffix)
