"""`rnnkit predict`: apply a trained classify or tag run to new data.

The work is :mod:`rnnkit.tasks.predict`'s; this module reads ``--data``, checks
``--out`` before anything is computed, and writes CSV (classify) or JSON lines (tag) to
stdout or ``--out``. A labelled file's accuracy goes to stderr, so that stdout stays pure
CSV or JSON lines.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rnnkit.cli._lm_args import add_runtime, one_line_errors

EXAMPLES = """examples:
  rnnkit predict runs/classify --data new.ts                  # CSV to stdout
  rnnkit predict runs/classify --data new.ts --out classes.csv
  rnnkit predict runs/tag --data script.py                    # every character of a file
  rnnkit predict runs/tag --data lines.jsonl --out tagged.jsonl"""

# --format auto reads these as JSON lines (.ndjson and .jl: the same format's other names)
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson", ".jl")
OUT_SUFFIX = {"classify": ".csv", "tag": ".jsonl"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="apply a trained classify or tag run to new data (CSV of classes, JSON lines of tags)",
        description="Apply the model of a run folder written by rnnkit train classify or "
        "rnnkit train tag to new data, computed as rnnkit eval computes the run's test "
        "predictions. classify: --data is a .ts file, labelled or not (@classLabel false); "
        "the output is CSV, series,predicted,p_<class>... (series: the 0-based index in "
        'the file). tag: --data is JSON lines of {"x": ...} (a "y" is optional and '
        "scored) or a plain text file tagged as a whole; the output is JSON lines, "
        '{"x": ..., "y": [a tag per character or step]}, one per input line (one for a '
        "text file). The output goes to stdout unless --out names a file; the accuracy "
        "of a labelled file goes to stderr.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    one_line_errors(p)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a classify or tag run folder")
    p.add_argument(
        "--data",
        metavar="FILE",
        required=True,
        help="the data: a .ts file (classify), JSON lines or a text file (tag)",
    )
    p.add_argument(
        "--format",
        choices=["auto", "jsonl", "text"],
        default="auto",
        help="what --data of a tag run is: auto (JSON lines if named .jsonl or .json, "
        "otherwise text), jsonl, or text (the whole file is one input) (default: auto)",
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        help="write the output here, FILE.csv (classify) or FILE.jsonl (tag) (default: "
        "stdout); an existing file only with --force",
    )
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    add_runtime(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rnnkit.cli._lm_args import runtime
    from rnnkit.train import load
    from rnnkit.train.runfolder import RunFolder

    config = RunFolder(args.run_dir).read_config()  # a symbolic link refused, as ever
    refuse_task(config.task, args.run_dir)
    if config.task == "classify" and args.format != "auto":
        raise ValueError(
            f"--format {args.format} describes the --data of a tag run; {args.run_dir} is a "
            "classify run, whose --data is a .ts file"
        )
    check_data(args.data)
    check_out(args, config.task, recorded_files(config.derived))
    device, precision = runtime(args)
    model = load(args.run_dir, device)  # the run is checked before the data is read
    with precision:
        if config.task == "classify":
            text, summary, scored = classify(args, model)
        else:
            text, summary, scored = tag(args, config, model)
    if args.out is None:
        sys.stdout.write(text)
    else:
        from rnnkit.cli._outputs import write_output

        write_output("--out", Path(args.out), text.encode("utf-8"))
        print(f"{summary}: {args.out}", file=sys.stderr)
    # Last, once the output is written: a write refused leaves the error as the one line.
    if scored is not None:
        print(scored, file=sys.stderr)
    return 0


def refuse_task(task: str, run_dir: str) -> None:
    """Refuse a run of a task with nothing to predict here, naming the command that
    applies it."""
    if task in OUT_SUFFIX:
        return
    raise ValueError(
        f"{run_dir} is a run of task {task!r}, not a classify or tag run; "
        f"{how_to_apply(task, run_dir)}"
    )


def how_to_apply(task: str, run_dir: str) -> str:
    """The command that applies a run of ``task`` to new data, in words (for a refusal of
    the run by a command of another task)."""
    if task in OUT_SUFFIX:
        return f"label new data with rnnkit predict {run_dir} --data FILE"
    if task == "forecast":
        return f"forecast new series with rnnkit forecast {run_dir} --data FILE"
    if task == "lm":
        return (
            f"it has no classes or tags to predict: continue a text with rnnkit generate "
            f"{run_dir}, score one with rnnkit eval {run_dir} --text FILE"
        )
    if task == "numbers":
        return f"translate numbers with rnnkit translate {run_dir} TEXT"
    if task == "fit":
        return (
            "apply its model in Python, on the model rnnkit.load(run, model=MyModel(...)) returns"
        )
    # the memory tasks: their inputs are generated, there is no file of them
    return (
        "a synthetic task has nothing to predict on new data (its inputs are "
        f"generated); score it with rnnkit eval {run_dir}"
    )


def check_data(name: str) -> None:
    """Refuse a --data that names no file, before --out is judged."""
    path = Path(name)
    if not name:
        raise ValueError("--data needs a file path; got an empty string")
    if path.is_dir():
        raise ValueError(f"--data {name} is a folder; expected a file")
    if not path.exists():
        raise ValueError(f"--data {name} does not exist; expected a file")


def recorded_files(derived: dict[str, Any]) -> list[str]:
    """The data files a run recorded (its training and test files): never an output."""
    source = derived.get("source")
    if not isinstance(source, dict):
        return []
    names = [source.get("data"), source.get("test_data")]  # a tag run's
    for part in ("train", "test"):  # a classify run's
        entry = source.get(part)
        names.append(entry.get("path") if isinstance(entry, dict) else None)
    return [n for n in names if isinstance(n, str)]


def check_out(args: argparse.Namespace, task: str, trained_on: list[str]) -> None:
    """Refuse, before the model or data is read, an --out that would replace a file
    without --force, or at all the --data file, a data file of the run or a file in any
    run folder; a folder, a missing folder, or a name not ending in the task's suffix."""
    from rnnkit.cli._outputs import check_new_file, check_outside_runs, same_file

    if args.out is None:
        return
    if same_file(args.out, args.data):
        raise ValueError(f"--out {args.out} is the --data file; expected another file name")
    for data in trained_on:
        if same_file(args.out, data):
            raise ValueError(f"--out {args.out} is the run's data; expected another file name")
    check_outside_runs("--out", args.out)  # the run's folder or another's, at any depth
    check_new_file("--out", args.out, args.force, OUT_SUFFIX[task])


# ---- classify ----------------------------------------------------------------------------


def classify(args: argparse.Namespace, model: Any) -> tuple[str, str, str | None]:
    """The CSV of a classify run's predictions, the line that says where it went, and
    the accuracy line of a labelled file (None for an unlabelled one)."""
    import csv
    import io

    from rnnkit.tasks.predict import predict_classes

    result = predict_classes(args.run_dir, args.data, model=model)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["series", "predicted", *(f"p_{c}" for c in result.classes)])
    for i, (name, row) in enumerate(zip(result.predicted, result.probabilities, strict=True)):
        writer.writerow([i, name, *(f"{p:.6f}" for p in row.tolist())])
    n, right = len(result.predicted), result.right
    scored = None
    if right is not None:
        scored = f"accuracy: {right / n:.4f} ({right}/{n} series, labelled in {args.data})"
    return out.getvalue(), f"classes of {n} series", scored


# ---- tag ---------------------------------------------------------------------------------


def tag(args: argparse.Namespace, config: Any, model: Any) -> tuple[str, str, str | None]:
    """The JSON lines of a tag run's predictions, the line that says where they went, and
    the accuracy line of the inputs given a "y" (None without any)."""
    import json

    from rnnkit.tasks.predict import predict_tags

    shown, inputs, truth = read_tag_data(args, config)
    tags = predict_tags(args.run_dir, inputs, model=model)
    lines = [
        json.dumps({"x": x, "y": t}, ensure_ascii=False) + "\n"
        for x, t in zip(shown, tags, strict=True)
    ]
    unit = "characters" if isinstance(inputs[0], str) else "steps"
    pairs = [(p, y) for p_list, y_list in zip(tags, truth, strict=True) if y_list
             for p, y in zip(p_list, y_list, strict=True)]  # fmt: skip
    scored = None
    if pairs:
        right, given = sum(p == y for p, y in pairs), sum(bool(y) for y in truth)
        scored = (
            f"accuracy: {right / len(pairs):.4%} ({right:,}/{len(pairs):,} {unit} of the "
            f"{given:,} line(s) with y; a tag the run does not know is always wrong)"
        )
    steps = sum(map(len, tags))
    return "".join(lines), f"tags of {len(tags):,} input(s), {steps:,} {unit}", scored


def read_tag_data(args: argparse.Namespace, config: Any) -> tuple[list[Any], list[Any], list[Any]]:
    """(x as the output shows it, the inputs to tag, the given tags or [] per input) of
    --data: JSON lines or one text file, as --format says."""
    from rnnkit.data.corpus import read_text_file
    from rnnkit.data.tagging import read_jsonl
    from rnnkit.tasks.predict import trained_on_text

    text_run = trained_on_text(config)
    as_text = args.format == "text" or (
        args.format == "auto" and Path(args.data).suffix.lower() not in JSONL_SUFFIXES
    )
    if as_text:
        if not text_run:
            raise ValueError(
                f"--data {args.data} is read as text, and {args.run_dir} was trained on "
                'feature sequences; give JSON lines of {"x": [[features], ...]}'
            )
        try:
            text = read_text_file(Path(args.data))
        except ValueError as err:  # empty, binary, not UTF-8: named as the flag's
            raise ValueError(f"--data: {err}; expected a text file to tag") from None
        return [text], [text], [[]]
    examples = read_jsonl(args.data, "--data", require_labels=False)
    first = examples[0].x
    if isinstance(first, str) != text_run:
        kind, trained = ("text", "features") if isinstance(first, str) else ("features", "text")
        raise ValueError(
            f"--data {args.data}: x is {kind}, and {args.run_dir} was trained on {trained}"
        )
    # not text_run: first is a (T, F) array (a string was refused just above)
    if not isinstance(first, str) and first.shape[1] != int(config.derived["features"]):
        raise ValueError(
            f"--data {args.data}: x has {first.shape[1]} feature(s) per step, and "
            f"{args.run_dir} was trained on {config.derived['features']}"
        )
    shown = [e.x for e in examples] if text_run else original_x(args.data, examples)
    return shown, [e.x for e in examples], [e.y for e in examples]


def original_x(path: str, examples: list[Any]) -> list[Any]:
    """Each example's x as the file wrote it (its numbers not rounded to float32), from
    the lines :func:`rnnkit.data.tagging.read_jsonl` has already checked."""
    import codecs
    import json

    lines = Path(path).read_bytes().removeprefix(codecs.BOM_UTF8).decode("utf-8").split("\n")
    return [json.loads(lines[e.line - 1])["x"] for e in examples]
