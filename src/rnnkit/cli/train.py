"""`rnnkit train [TASK] [options]`: train any registered task through the one loop.

TASK is ``lm`` when omitted (``--task TASK`` is a synonym). Each task's parser is built
from its ``Options`` fields and :class:`~rnnkit.train.TrainConfig`'s, with the task's own
defaults, so ``rnnkit train TASK --help`` lists exactly what that task reads.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from rnnkit.cli._lm_args import folder_name, one_line_errors
from rnnkit.cli._outputs import check_out_folder, probe_new_folder
from rnnkit.cli.options import add_fields, given
from rnnkit.tasks import NAMES, REGISTRY, get_task
from rnnkit.tasks.base import SOURCE_OPTIONS, SOURCES, Task
from rnnkit.train import TrainConfig, distributed, train
from rnnkit.train.config import BUDGET_KEYS
from rnnkit.train.files import read_json
from rnnkit.train.runfolder import CONFIG, RunFolder, RunFolderError, not_found, parse_config

EXAMPLES = """examples:
  rnnkit train                                      # lm: an LSTM on the standard library, 3 min
  rnnkit train lm --text notes.txt --cell gru --steps 500 --out runs/notes
  rnnkit train --resume runs/notes --steps 1000     # continue exactly where it stopped
  rnnkit train --config runs/notes/config.json --seed 1 --out runs/notes-2   # a new run
  rnnkit train numbers --lang fr --direction digits2words --out runs/fr
  rnnkit train adding --length 1000 --cell mingru --steps 2000
  torchrun --nproc_per_node=2 -m rnnkit train --batch-size 64

Ctrl-C (or SIGTERM) stops after the current step and saves; a second Ctrl-C stops at once."""

RESUME_ALLOWS = BUDGET_KEYS  # a resumed run continues its own config; only the budget grows


def register(sub: argparse._SubParsersAction) -> None:
    tasks = ", ".join(NAMES)
    sub.add_parser(
        "train",
        add_help=False,
        help=f"train a task: {tasks} (default lm; `rnnkit train TASK --help` for its options)",
    )


def build_parser(
    task_cls: type[Task],
) -> tuple[argparse.ArgumentParser, dict[str, str], dict[str, str]]:
    """The parser of `rnnkit train TASK`, with {dest: field} maps for options and training."""
    p = argparse.ArgumentParser(
        prog=f"rnnkit train {task_cls.name}",
        description=textwrap.fill(
            f"Train {task_cls.summary}. Other tasks: "
            + ", ".join(n for n in NAMES if n != task_cls.name)
            + ". The run folder gets config.json, model.safetensors (the best weights), the "
            "training state (committed atomically at every evaluation), metrics.csv and "
            "loss.png; see docs/run-folder.md.",
            88,
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _one_line_errors_once(p)
    task_dests = add_fields(p.add_argument_group(f"{task_cls.name} options"), task_cls.Options, {})
    defaults = task_cls.default_train().to_dict()
    group = p.add_argument_group(
        "training (a --steps or --minutes given replaces the default budget)"
    )
    train_dests = add_fields(group, TrainConfig, defaults)
    run = p.add_argument_group("run folder")
    run.add_argument(
        "--out",
        type=folder_name,
        metavar="DIR",
        help="run folder to create (default: runs/TASK-<time>)",
    )
    run.add_argument(
        "--resume",
        type=folder_name,
        metavar="DIR",
        help="continue the run in DIR exactly where it stopped; only --steps and --minutes "
        "may be given with it",
    )
    run.add_argument(
        "--config",
        type=folder_name,
        metavar="FILE",
        help="start a new run from a config file (a run's config.json is one); flags given "
        "with it override it",
    )
    return p, task_dests, train_dests


def _one_line_errors_once(parser: argparse.ArgumentParser) -> None:
    """:func:`one_line_errors`, and under torchrun the line printed once, not once per
    process (every process parses the same arguments)."""
    one_line_errors(parser)

    def error(message: str) -> NoReturn:
        line = f"{parser.prog}: error: {' '.join(message.split())}"
        if distributed.prints_error(line):
            print(line, file=sys.stderr)
        sys.exit(2)

    parser.error = error  # type: ignore[method-assign]


def main(argv: Sequence[str]) -> int:
    """`rnnkit train ...`: parse, train, report; errors propagate to :func:`rnnkit.cli.main`."""
    task, rest = pick_task(list(argv))
    task_cls = get_task(task)
    parser, task_dests, train_dests = build_parser(task_cls)
    args = parser.parse_args(rest)
    options, training = given(args, task_dests), given(args, train_dests)
    if args.resume is not None:
        extra = [k for k in [*options, *training] if k not in RESUME_ALLOWS]
        if extra or args.out is not None or args.config is not None:
            names = {
                f: "--" + d.replace("_", "-") for d, f in {**task_dests, **train_dests}.items()
            }
            flags = [names[k] for k in extra]
            flags += [f for f, v in (("--out", args.out), ("--config", args.config)) if v]
            raise ValueError(
                f"--resume continues {args.resume} with its own config.json; {', '.join(flags)} "
                "cannot be given with it (only --steps and --minutes)"
            )
        summary = train(
            task, resume=args.resume, steps=training.get("steps"), minutes=training.get("minutes")
        )
    else:
        if args.out is not None:  # before the data is read: a link or a file is no run folder
            check_out_folder("--out", args.out)
        if args.config is not None:
            file_options, file_train = _read_config_file(args.config)
            if any(k in options for k in SOURCES):  # new data: none of the file's source
                file_options = {k: v for k, v in file_options.items() if k not in SOURCE_OPTIONS}
            options = {**file_options, **options}
            if any(k in training for k in BUDGET_KEYS):
                file_train = {k: v for k, v in file_train.items() if k not in BUDGET_KEYS}
            training = {**file_train, **training}
        opts = task_cls.parse_options(options, where=f"{task} options", partial=True)
        if args.out is not None:  # a folder the system refuses, said naming --out
            _probe_out(args.out)
        summary = train(task, opts, task_cls.default_train(**training), out=args.out)
    return report(summary)


def _probe_out(out: str) -> None:
    """:func:`probe_new_folder` in the process that writes the run folder: under torchrun,
    rank 0 alone. Each probe makes the folder and removes it, so another rank's probe
    raced rank 0's, and its mkdir could meet the folder rank 0 had just made ("File
    exists"), ending the run with a refusal of a folder nothing was wrong with."""
    if distributed.launched_rank() == 0:
        probe_new_folder("--out", out)


def pick_task(argv: list[str]) -> tuple[str, list[str]]:
    """The task named by a leading TASK, ``--task``, or the run of ``--resume``/``--config``."""
    named: list[str] = []
    rest: list[str] = []
    if argv and not argv[0].startswith("-"):
        named.append(argv.pop(0))
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--task":
            if i + 1 >= len(argv):
                raise ValueError(f"--task needs a task name, one of {', '.join(NAMES)}; got none")
            named.append(argv[i + 1])
            i += 2
            continue
        if arg.startswith("--task="):
            named.append(arg.split("=", 1)[1])
        else:
            rest.append(arg)
        i += 1
    for name in named:
        if name not in REGISTRY:
            raise ValueError(f"TASK must be one of {', '.join(NAMES)}; got {name!r}")
    if len(set(named)) > 1:
        raise ValueError(
            f"expected one task (TASK or --task); got {' and '.join(dict.fromkeys(named))}"
        )
    from_file = _task_of_files(rest)
    if from_file is not None and named and named[0] != from_file[0]:
        raise ValueError(f"{from_file[1]} is a run of task {from_file[0]!r}, not {named[0]!r}")
    task = named[0] if named else from_file[0] if from_file else "lm"
    return task, rest


def _task_of_files(argv: list[str]) -> tuple[str, str] | None:
    """(task, what) read from ``--resume DIR`` or ``--config FILE`` among ``argv``."""
    if "-h" in argv or "--help" in argv:
        return None
    for i, arg in enumerate(argv):
        for flag in ("--resume", "--config"):
            value = None
            if arg == flag and i + 1 < len(argv):
                value = argv[i + 1]
            elif arg.startswith(flag + "="):
                value = arg.split("=", 1)[1]
            if value is None:
                continue
            if not value:  # read before argparse, which would say the same
                raise ValueError(f"argument {flag}: expected a name; got an empty string")
            if flag == "--resume":
                task = RunFolder(value).read_config().task
            else:
                task = _config_task(value)
            if task == "fit" and flag == "--resume":  # the model is the caller's own class
                raise ValueError(
                    f"{value} is a run of rnnkit.fit; continue it in Python with "
                    "rnnkit.fit(model, train_loader, out=RUN, resume=True)"
                )
            if task == "fit":
                raise ValueError(
                    f"{value} is the config of a run of rnnkit.fit, which trains in Python "
                    f"only; rnnkit train's tasks: {', '.join(NAMES)}"
                )
            if task not in REGISTRY:
                raise ValueError(f"{value} names task {task!r}; known: {', '.join(NAMES)}")
            return task, value
    return None


def _config_task(path: str) -> str:
    data = read_json(_config_path(path))
    return parse_config(data, path, partial=True).task


def _config_path(path: str) -> Path:
    """The file ``--config`` reads: a run's config.json, given as the run folder or as
    FOLDER/config.json, or a JSON file the user wrote.

    A run's is read as every reader of a run folder reads it: a symbolic link as the
    folder or as its config.json is refused, not followed. A file of another name is the
    user's own, not part of a run, and may be a link to where they keep it.
    """
    p = Path(path)
    folder = p if p.is_dir() else p.parent if p.name == CONFIG else None
    if folder is not None and folder.is_symlink():
        raise RunFolderError(not_found(folder))  # the run-folder readers' words
    file = p / CONFIG if p.is_dir() else p
    if folder is not None and file.is_symlink():
        return file  # a run's config.json: read_json refuses the link, as in a run
    if not file.is_file():
        if file is p:
            raise FileNotFoundError(f"--config: no such file: {path}")
        raise FileNotFoundError(f"--config: {path} is a folder with no config.json")
    if p.is_symlink():
        return Path(os.path.realpath(p))  # the user's own file, wherever it is kept
    return file


def _read_config_file(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The options and the training fields a config file gives (checked, not yet merged)."""
    data = read_json(_config_path(path))
    config = parse_config(data, path, partial=True)
    # The file's options checked against its task here, so that a mistake names the file.
    get_task(config.task).parse_options(config.options, where=f"{path}: options", partial=True)
    return config.options, dict(data.get("train", {}))


def report(summary: Any) -> int:
    """What `rnnkit train` prints when a run ends (main process only); the exit status:
    1 when no evaluation gave a finite score, so that no model was saved."""
    if not summary.is_main:
        return 0
    item = summary.item_name
    how = {None: "finished", "goal": "reached its goal"}.get(
        summary.stopped_by, f"stopped by {summary.stopped_by}"
    )
    shown = "  ".join(f"{k} {v:.4g}" for k, v in summary.metrics.items())
    best = summary.best
    kept = "best" if summary.selects else "kept (the last evaluated)"
    best_text = (
        f"; {kept} {best['metric']} {best['value']:.4g} at step {best['step']}"
        if best.get("value") is not None
        else ""
    )
    print(f"{how} at step {summary.step}: {summary.scored_on} {shown}{best_text}")
    print(f"{summary.items_per_s:,.0f} training {item}/s", end="")
    print(f"; {summary.skipped_steps} non-finite step(s) skipped" if summary.skipped_steps else "")
    for line in summary.lines:
        print(line)
    if best.get("value") is None and summary.history:
        what = f"{summary.scored_on} {best['metric']}"
        print(f"no model saved in {summary.run_dir}: the {what} was not a finite number at "
              "any evaluation", file=sys.stderr)  # fmt: skip
        return 1
    print(f"run saved to {summary.run_dir}")
    # Quoted as the shell needs it: a folder name with spaces is one argument.
    print(f"  continue: rnnkit train --resume {shlex.quote(str(summary.run_dir))} --steps N")
    print(f"  load:     rnnkit.load({summary.run_dir!r})")
    sys.stdout.flush()
    return 0
