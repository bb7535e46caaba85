"""The anchor check, replayed over seeds: which forecasts each rule keeps, and their test MASE.

``rnnkit train forecast`` keeps, among its evaluations, the model with the lowest
validation MASE; with ``--margin K`` a network counts only where it beats the anchor it
corrects by K standard errors (``rnnkit.tasks.forecast.anchors.anchor_check``), else the model
forecasts the anchor. The check decides what is kept, not how the network trains, so one
run per set, seed and anchor (seasonal naive, and the one ``--anchor auto`` takes) serves
every rule: at each evaluation this script records
every validation window's MASE and the test MASE of the network, then replays the
trainer's choice under each rule:

* ``seasonal-naive, no check``: the network with the lowest validation MASE, relative to
  seasonal naive (rnnkit's forecaster before the check);
* ``auto, margin K``: the anchor whose forecasts alone validate best, and the check with
  K standard errors (``--anchor auto --margin K``; K = 2 is the default).

Each replay of the run's own options is checked against the step the run kept (an
``AssertionError`` if they differ). Printed: the test MASE over seasonal naive's for each
set and seed (``<1``: better than seasonal naive), the point forecasts kept (``a``: the
anchor's), and per rule the count of sets below seasonal naive.

    python benchmarks/forecast_check.py --seeds 0,1,2,3,4 --jobs 2
    python benchmarks/forecast_check.py --sets elnino,sunspots --origins 60 --seeds 0,1,2,3,4

``--origins R`` trains and scores every set with R rolling origins instead of the
dataset's own number (run folders ``SET-oR-ANCHOR-SEED``): more test values for the
long single series.
"""

from __future__ import annotations

import argparse
import io
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import _args
from _timing import machine
from rnnkit.deploy import ANCHORS
from rnnkit.tasks.forecast import (
    DATASET_NAMES,
    ForecastTask,
    anchor_check,
    anchor_forecasts,
    distinct_horizons,
    model_forecasts,
    naive_forecasts,
    window_mases,
)
from rnnkit.train import train
from rnnkit.train.distributed import Context

SETS = (
    "m1-yearly", "airline", "co2", "uschange", "sunspots", "lynx", "shampoo", "nile", "elnino",
)  # fmt: skip


def mean(v: Any) -> float:
    v = np.asarray(v, dtype=float)
    return float(np.mean(v[np.isfinite(v)])) if np.isfinite(v).any() else math.nan


def options_of(name: str, origins: int | None) -> dict[str, Any]:
    """The options of a set's runs: the dataset's defaults, or ``origins`` rolling origins."""
    return {"dataset": name} if origins is None else {"dataset": name, "origins": origins}


def folder_of(runs: str | Path, name: str, anchor: str, seed: int, origins: int | None) -> Path:
    """Where the run of a set, anchor and seed lives (the dataset's origins, or ``oR``)."""
    where = name if origins is None else f"{name}-o{origins}"
    return Path(runs) / f"{where}-{anchor}-{seed}"


def record(
    name: str, anchor: str, seed: int, runs: str, origins: int | None = None
) -> dict[str, Any]:
    """Train the task's defaults with ``anchor``; every evaluation's window MASEs."""
    torch.set_num_threads(1)
    options = {**options_of(name, origins), "anchor": anchor}
    task = ForecastTask(ForecastTask.parse_options(options, "options", partial=True))
    config = ForecastTask.default_train(seed=seed, threads=1)
    task.prepare(config, Context(0, 1, torch.device("cpu")))
    h, m, values = task.derived["horizon"], task.derived["seasonality"], task.values
    valid, test = task.valid, task.test

    def mases(scored: Any, fcs: Any) -> list[float]:
        return window_mases(values, scored, fcs, h, m).tolist()

    out: dict[str, Any] = {
        "set": name, "anchor": anchor, "seed": seed, "evals": [],
        "horizons": distinct_horizons(valid, h), "margin": task.options.margin,
        "anchor_valid": mases(valid, anchor_forecasts(values, valid, h, m, anchor)),
        "anchor_test": mases(test, anchor_forecasts(values, test, h, m, anchor)),
        "naive_test": mean(mases(test, naive_forecasts(values, test, h, m))),
    }  # fmt: skip

    def hook(trainer: Any) -> None:  # after the step, before the trainer evaluates it
        if trainer.step % trainer.train.eval_every == 0:
            model = trainer.model
            model.correction.fill_(1.0)  # the network's own forecasts (evaluate resets it)
            out["evals"].append({
                "step": trainer.step,
                "valid": mases(valid, model_forecasts(model, values, valid)),
                "test": mases(test, model_forecasts(model, values, test)),
            })  # fmt: skip

    folder = folder_of(runs, name, anchor, seed, origins)
    shutil.rmtree(folder, ignore_errors=True)
    summary = _args.stop_if_signalled(train("forecast", options, config, out=folder,
                    log=lambda _: None, progress=io.StringIO(), on_step=hook))  # fmt: skip
    out["kept_step"] = summary.best["step"]
    return out


def replay(run: dict[str, Any], margin: float | None) -> tuple[int, float, bool]:
    """(step, test MASE, network kept) of the model the trainer keeps under ``margin``
    (None: no check), evaluation by evaluation, the first strict minimum as the trainer."""
    anchor = np.asarray(run["anchor_valid"])
    best: tuple[float, int, float, bool] | None = None
    for e in run["evals"]:
        valid = np.asarray(e["valid"])
        kept = margin is None or anchor_check(valid, anchor, run["horizons"], margin).kept
        value = mean(valid) if kept else mean(anchor)
        test = mean(e["test"]) if kept else mean(run["anchor_test"])
        if math.isfinite(value) and (best is None or value < best[0]):
            best = (value, e["step"], test, kept)
    assert best is not None
    return best[1], best[2], best[3]


def auto_anchor(name: str, origins: int | None = None) -> str:
    """The anchor ``--anchor auto`` takes for a set: the one whose forecasts alone have the
    lowest validation MASE (``rnnkit.tasks.forecast.anchors.choose_anchor``; no training)."""
    options = options_of(name, origins)
    task = ForecastTask(ForecastTask.parse_options(options, "options", partial=True))
    task.prepare(ForecastTask.default_train(), Context(0, 1, torch.device("cpu")))
    return str(task.derived["anchor"])


def run_arguments(p: argparse.ArgumentParser) -> None:
    """The options that name the runs, shared with forecast_coverage.py, which reads them."""
    p.add_argument(
        "--sets",
        type=_args.listed(_args.one_of(DATASET_NAMES, "datasets"), "datasets"),
        default=",".join(SETS),
        help="comma-separated datasets",
    )
    p.add_argument("--seeds", type=_args.listed(_args.seed, "seeds"), default="0,1,2",
                   help="comma-separated seeds")  # fmt: skip
    p.add_argument("--runs", type=_args.folder, default="runs/bench-forecast-check",
                   help="the run folders")  # fmt: skip
    p.add_argument("--origins", type=_args.int_in(1, 10_000), default=None,  # rnnkit's bounds
                   help="rolling origins per series (default: each dataset's own)")  # fmt: skip


def _record(job: tuple[Any, ...]) -> dict[str, Any]:
    """:func:`record` in a pool's worker, a signal's stop shared (``_args.pool_task``)."""
    return _args.pool_task(record, *job)


def anchors_of(p: argparse.ArgumentParser, sets: list[str], origins: int | None) -> dict[str, str]:
    """:func:`auto_anchor` of each set, before any trains: a set whose series are too short
    for ``origins`` is refused now, in one line."""
    flag = "--origins" if origins is not None else "--sets"
    return {name: _args.check(p, flag, auto_anchor, name, origins) for name in sets}


def main(argv: list[str] | None = None) -> int:
    p = _args.parser(__doc__.splitlines()[0])
    run_arguments(p)
    p.add_argument(
        "--margins",
        type=_args.listed(_args.float_in(0, 100), "margins"),  # rnnkit's --margin
        default="0,1,2",
        help="the margins K replayed with auto",
    )
    p.add_argument("--jobs", type=_args.positive_int, default=1,
                   help="runs side by side (one thread each)")  # fmt: skip
    args = p.parse_args(argv)
    sets, seeds, margins = args.sets, args.seeds, args.margins
    start = time.perf_counter()
    chosen = anchors_of(p, sets, args.origins)
    anchors = {name: dict.fromkeys([ANCHORS[0], chosen[name]]) for name in sets}
    jobs = [(n, a, s, args.runs, args.origins) for s in seeds for n in sets for a in anchors[n]]
    # record() replaces each run folder: a folder of that name the user made is refused.
    _args.replaceable_runs(p, "--runs", [folder_of(r, n, a, s, o) for n, a, s, r, o in jobs])
    _args.writable(p, "--runs", args.runs)
    _args.exit_on_signals()  # the pool's exit then terminates its workers too
    workers, stop = _args.pool(args.jobs)
    with workers:
        done = list(_args.gather(workers.imap_unordered(_record, jobs), stop))
    runs = {(r["set"], r["anchor"], r["seed"]): r for r in done}
    for r in runs.values():  # a replay of the run's own options is what the run kept
        step, _, _ = replay(r, r["margin"])
        assert step == r["kept_step"], (r["set"], r["anchor"], r["seed"], step, r["kept_step"])

    rules: list[tuple[str, str, float | None]] = [("seasonal-naive, no check", "sn", None)]
    rules += [(f"auto, margin {k:g}", "auto", k) for k in margins]
    header = "| rule | set | " + " | ".join(f"seed {s}" for s in seeds) + " |"
    lines = [header, "|---|---|" + "---:|" * len(seeds)]
    for label, how, margin in rules:
        below = [0] * len(seeds)
        for name in sets:
            cells = []
            for j, s in enumerate(seeds):
                run = runs[name, ANCHORS[0] if how == "sn" else chosen[name], s]
                _, test, kept = replay(run, margin)
                ratio = test / run["naive_test"]
                below[j] += ratio < 1
                cells.append(f"{ratio:.2f}{'' if kept else ' a'}")
            lines.append(f"| {label} | {name} | " + " | ".join(cells) + " |")
        counts = " | ".join(f"**{b} of {len(sets)}**" for b in below)
        lines.append(f"| {label} | below seasonal naive | {counts} |")
    print("--anchor auto takes: " + ", ".join(f"{n} {a}" for n, a in chosen.items()) + "\n")
    print("\n".join(lines))
    command = "python benchmarks/forecast_check.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    minutes = (time.perf_counter() - start) / 60
    # The runs trained in the pool's workers, on one thread each (record()); --jobs at once.
    at_once = "one run at a time" if args.jobs == 1 else f"up to {args.jobs} runs side by side"
    used = machine(threads=f"1 thread per run, {at_once}")
    print(f"\n`{command.strip()}`: {minutes:.1f} minutes on {used}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
