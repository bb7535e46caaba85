"""The long-memory table: each cell on the adding problem, copy memory and selective copying.

Each row trains one configuration from scratch (fresh data every step, a fixed held-out
batch for evaluation) until it reaches the task's goal or its step or time budget runs
out, and reports the result against the task's memoryless baseline. Rows run in worker
processes of one torch thread each (``--jobs`` at a time), so a row's time is the
training time on one core. Each row is an ordinary run of ``rnnkit.train.train`` into its
own run folder, ``runs/NAME`` under ``--results`` (weights, checkpoint, metrics.csv,
loss.png; a rerun of the row replaces it). Each finished row is saved as JSON under
``--results``; the markdown table is assembled from the saved rows, so rows can be run in
several calls; a row's progress goes to ``NAME.log`` beside its JSON.

    python benchmarks/long_memory.py --preset quick                # minutes: short sequences
    python benchmarks/long_memory.py --preset issue --jobs 2 --out docs/long-memory-table.md \
        --overwrite
    python benchmarks/long_memory.py --preset issue --rows copy-50-gru --jobs 1
    python benchmarks/long_memory.py --preset issue --table-only --out docs/long-memory-table.md \
        --plot docs/img/long-memory.png --overwrite
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import _args
from _timing import machine
from rnnkit.models.memory import baseline, goal
from rnnkit.tasks import get_task
from rnnkit.tasks.memory import MemoryOptions, first_goal
from rnnkit.train import RunFolder, load, train
from rnnkit.train.files import write_json

# A row's keys that are TrainConfig fields; the others are the task's MemoryOptions.
TRAIN_KEYS = ("lr", "steps", "minutes", "seed", "eval_every")


def _row(task: str, length: int, cell: str, hidden: int, **options: Any) -> tuple[str, dict]:
    layers = options.get("num_layers", 1)
    name = f"{task}-{length}-{cell}" + (f"-{layers}x{hidden}" if layers > 1 else "")
    name += "-cosine" if options.get("cosine") else ""
    return name, dict(task=task, length=length, cell=cell, hidden_size=hidden, **options)


PRESETS: dict[str, dict[str, dict]] = {
    # Short sequences that finish in a few minutes.
    "quick": dict(
        _row("adding", 100, c, 64, steps=1500, lr=3e-3, minutes=3, until_goal=True)
        for c in ("lstm", "gru", "mingru", "rnn")
    ),
    # The goals: adding at T = 1000, copy memory at T = 200, selective copying with
    # a 3-layer MinGRU; the Elman RNN at the lengths where it stops solving the adding problem.
    "issue": dict(
        [
            _row("adding", 1000, "lstm", 32, lr=3e-3, steps=5000, minutes=15),
            _row("adding", 1000, "gru", 32, lr=3e-3, steps=6000, minutes=30, until_goal=True),
            _row("adding", 1000, "mingru", 64, lr=3e-3, steps=5000, minutes=15),
            _row("adding", 1000, "rnn", 32, lr=3e-3, steps=6000, minutes=5, until_goal=True),
            *(
                _row("adding", T, "rnn", 32, lr=3e-3, steps=30000, minutes=5, until_goal=True)
                for T in (20, 50, 100)
            ),
            _row("copy", 200, "gru", 128, lr=1e-3, steps=20000, minutes=60, until_goal=True),
            *(
                _row("copy", T, "gru", 128, lr=1e-3, steps=20000, minutes=m, until_goal=True)
                for T, m in ((50, 15), (100, 30))
            ),
            *(
                _row(
                    task,
                    T,
                    "mingru",
                    128,
                    num_layers=3,
                    lr=3e-3,
                    steps=20000,
                    minutes=m,
                    until_goal=True,
                )
                for task, T, m in (("copy", 200, 45), ("selective-copy", 128, 40))
            ),
        ]
    ),
}


def verdict(result: dict) -> str:
    base, final = result["baseline"], result["final"]
    if result["metric"] == "accuracy":
        return f"{final:.1%} right (chance {base:.1%})"
    ratio = base / max(final, 1e-12)
    if ratio < 2:
        return f"{final:.4g}: not solved (baseline {base:.4g})"
    return f"{final:.4g}, {ratio:.0f}× below the baseline {base:.4g}"


def reached(result: dict) -> str:
    if result.get("goal_step") is None:
        return "no"
    return f"step {result['goal_step']}, {result['goal_seconds'] / 60:.1f} min"


def train_row(name: str, row: dict, results: Path) -> tuple[str, dict]:
    """Train one row into its run folder; its JSON result, built from the run's history."""
    options_row = dict(row)
    task = options_row.pop("task")
    given = {key: options_row.pop(key) for key in TRAIN_KEYS if key in options_row}
    if options_row.pop("cosine", False):
        given.update(schedule="cosine", min_lr_ratio=0.0)  # decays to 0 over the steps
    task_cls = get_task(task)
    options = MemoryOptions(**options_row)
    # One core per row (rows run side by side); the CPU, as the table says.
    train_config = task_cls.default_train(**given, threads=1, device="cpu", log_every=100)
    run_dir = results / "runs" / name
    if run_dir.exists():
        RunFolder(run_dir).check_owned()  # a folder rnnkit did not write is left alone
        shutil.rmtree(run_dir)
    results.mkdir(parents=True, exist_ok=True)
    with open(results / f"{name}.log", "w", encoding="utf-8") as progress:

        def log(line: str) -> None:
            progress.write(line + "\n")
            progress.flush()

        summary = train(task, options, train_config, out=run_dir, log=log, progress=progress)
        _args.stop_if_signalled(summary)
    config = options.model_config(task)
    metric = task_cls.metric
    reached = first_goal(config, metric, summary.history)
    result = {
        "config": {"task": task, **dataclasses.asdict(options), **train_config.to_dict()},
        "metric": metric,
        "final": summary.metrics[metric],
        "best": summary.best["value"],
        "baseline": baseline(config),
        "goal": goal(config),
        "goal_step": None if reached is None else reached[0],
        "goal_seconds": None if reached is None else reached[1],
        "steps": summary.step,
        "seconds": summary.history[-1][1] if summary.history else 0.0,
        "parameters": sum(p.numel() for p in load(run_dir).parameters()),
        # (step, metric, seconds) per evaluation, as the table's earlier rows have it
        "history": [(step, m[metric], seconds) for step, seconds, m in summary.history],
        "run": str(run_dir),
        "stopped_by": summary.stopped_by,
        "machine": machine(),
    }
    return name, result


def _train_job(job: tuple[str, dict, Path]) -> tuple[str, dict]:
    return _args.pool_task(train_row, *job)


def table(rows: dict[str, dict], results: Path) -> list[str]:
    lines = [
        "| task | T | cell | layers × H | params | batch, lr | steps | time | goal | reached at "
        "| result vs baseline |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    machines = set()
    for name in rows:
        path = results / f"{name}.json"
        if not path.is_file():
            continue
        result = json.loads(path.read_text(encoding="utf-8"))
        c = result["config"]
        machines.add(result.get("machine", "?"))
        accuracy = result["metric"] == "accuracy"
        goal = f"≥ {result['goal']:.0%}" if accuracy else f"< {result['goal']:.2g}"
        lines.append(
            f"| {c['task']} | {c['length']} | {c['cell']} | {c['num_layers']} × "
            f"{c['hidden_size']} | {result['parameters']:,} | {c['batch_size']}, {c['lr']:g} | "
            f"{result['steps']} | {result['seconds'] / 60:.1f} min | {goal} | "
            f"{reached(result)} | {verdict(result)} |"
        )
    return [f"machine: {'; '.join(sorted(machines))} (one thread per row)", "", *lines]


def plot(rows: dict[str, dict], results: Path, path: Path) -> None:
    """Learning curves of the saved rows: error over its baseline, and accuracy."""
    from rnnkit.explain.plotting import figure
    from rnnkit.explain.plotting import save as save_png

    fig, axes = figure(1, 2, width=11, height=4)
    error, accuracy = axes[0]
    for name in rows:
        path_json = results / f"{name}.json"
        if not path_json.is_file():
            continue
        result = json.loads(path_json.read_text(encoding="utf-8"))
        minutes = [seconds / 60 for _, _, seconds in result["history"]]
        values = [metric for _, metric, _ in result["history"]]
        if result["metric"] == "accuracy":
            accuracy.plot(minutes, values, label=name)
        else:
            style = "--" if result["config"]["task"] == "copy" else "-"  # 2 tasks, 1 panel
            error.plot(minutes, [v / result["baseline"] for v in values], style, label=name)
    error.axhline(1.0, color="grey", lw=0.8, ls="--")
    error.set(yscale="log", xlabel="training minutes (one core)", ylabel="metric / baseline")
    error.set_title("adding (MSE) and copy memory (cross-entropy)")
    accuracy.axhline(0.99, color="grey", lw=0.8, ls="--")
    accuracy.set(xlabel="training minutes (one core)", ylabel="held-out accuracy")
    accuracy.set_title("selective copying")
    for ax in (error, accuracy):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    save_png(fig, path, "Long memory: below 1 beats the memoryless baseline")


def main() -> None:
    parser = _args.parser(__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    parser.add_argument(
        "--rows",
        type=_args.listed(_args.nonempty, "row names"),
        help="comma-separated row names of the preset (default: all)",
    )
    parser.add_argument("--jobs", type=_args.positive_int,
                        help="rows trained at once (default: 1)")  # fmt: skip
    parser.add_argument("--results", type=_args.folder, default="bench-out/long_memory")
    parser.add_argument("--table-only", action="store_true", help="assemble the saved rows")
    parser.add_argument("--out", type=_args.new_file, help="also write the markdown table here")
    parser.add_argument("--plot", type=_args.new_file,
                        help="also draw the learning curves (PNG)")  # fmt: skip
    args = parser.parse_args()
    if args.table_only:
        _args.no_effect(parser, "with --table-only", {"--jobs": args.jobs})
        _args.check(parser, "--results", _args.existing_folder, args.results)
    args.jobs = args.jobs or 1
    args.results = Path(args.results)
    args.out = None if args.out is None else Path(args.out)
    args.plot = None if args.plot is None else Path(args.plot)
    rows = PRESETS[args.preset]
    chosen = args.rows or list(rows)
    unknown = [name for name in chosen if name not in rows]
    if unknown:
        parser.error(
            f"argument --rows: unknown {', '.join(unknown)}; the preset has {', '.join(rows)}"
        )
    if not args.table_only:
        # A rerun replaces a row's run folder: one rnnkit did not write is refused now,
        # not by its worker after the other rows trained.
        _args.writable(parser, "--results", str(args.results))
        _args.replaceable_runs(parser, "--results", [args.results / "runs" / n for n in chosen])
        _args.exit_on_signals()  # the pool's exit then terminates its workers too
        jobs = [(name, rows[name], args.results) for name in chosen]
        workers, stop = _args.pool(args.jobs)
        with workers:
            for name, result in _args.gather(workers.imap_unordered(_train_job, jobs), stop):
                args.results.mkdir(parents=True, exist_ok=True)
                write_json(args.results / f"{name}.json", result)  # whole or absent
                print(f"{name}: {verdict(result)}; goal reached at {reached(result)}", flush=True)
    lines = table(rows, args.results)
    print("\n".join(lines))
    if args.out:
        _args.write_file(parser, "--out", args.out, "\n".join(lines) + "\n", args.overwrite)
    if args.plot:
        plot(rows, args.results, args.plot)


if __name__ == "__main__":
    main()
