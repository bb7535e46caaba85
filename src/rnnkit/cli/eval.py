"""`rnnkit eval`: score the model of a run folder of any task.

A language model is scored in bits per character on a text or a split of its corpus; a
numbers run in exact match and character error rate; any other task on its own
validation metrics.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, cast

from rnnkit.cli import seq2seq_args
from rnnkit.cli._lm_args import (
    add_runtime,
    folder_name,
    one_line_errors,
    positive_int,
    runtime,
)
from rnnkit.cli._outputs import check_new_folder, check_outside_runs, same_file, staged_folder
from rnnkit.data.corpus import SPLITS, load_corpus, read_files_counted, skipped_note
from rnnkit.data.vocab import UNK_ID
from rnnkit.train import bits_per_char, load
from rnnkit.train.evaluate import stream_lengths
from rnnkit.train.run import recorded_in
from rnnkit.train.runfolder import RunFolder

if TYPE_CHECKING:
    from rnnkit.models.lm import CharLM

EXAMPLES = """examples:
  rnnkit eval runs/lstm                      # the test split of the run's own corpus
  rnnkit eval runs/lstm --text notes.txt     # any UTF-8 file or folder
  rnnkit eval runs/en --beam 4               # a numbers run: exact match and CER
  rnnkit eval runs/vowels --out figures      # a classify run: confusion.png in figures/"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="score a trained run: bits per character of a language model, test "
        "accuracy or MASE of the other tasks",
        description=textwrap.fill(
            "Score the model of a run folder. A language model on a text: the average "
            "number of bits it needs per character (lower is better; log2 of the "
            "vocabulary size is what a model that knows nothing pays); the last line "
            "printed is 'bpc: <number>', and characters the model never saw count as its "
            "unknown-character class. A numbers run: exact match and character error rate. "
            "A classify, tag or forecast run: its test split (accuracy per class and "
            "confusion.png, accuracy per tag and tagged.png, MASE and sMAPE against "
            "seasonal naive and forecast.png), the figure written into --out.",
            88,
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    one_line_errors(p)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by rnnkit train")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--text", metavar="FILE|DIR", help="a UTF-8 text file or folder to score")
    src.add_argument(
        "--split",
        choices=list(SPLITS),
        help="a split of the run's own corpus (default: test, when --text is not given)",
    )
    p.add_argument(
        "--batch-size",
        type=positive_int,
        default=32,
        help="parallel streams the text is read as (default: 32)",
    )
    p.add_argument(
        "--seq-len",
        type=positive_int,
        default=256,
        help="characters per forward call; the state carries over (default: 256)",
    )
    p.add_argument(
        "--reset-every",
        type=positive_int,
        default=None,
        metavar="K",
        help="set the hidden state back to zeros every K characters (default: never); "
        "the rise in bpc shows how much the model uses context older than K characters",
    )
    p.add_argument(
        "--out",
        type=folder_name,
        metavar="DIR",
        help="folder for the figures a task's evaluation writes, e.g. a confusion matrix "
        "(default: the run folder); files already there are replaced only with --force",
    )
    p.add_argument(
        "--force", action="store_true", help="replace figures already in the --out folder"
    )
    add_runtime(p)
    seq2seq_args.add_numbers_eval_arguments(p)
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    task = RunFolder(args.run_dir).read_config().task
    if task == "fit":  # the model is the caller's own Python class: rnnkit eval has none
        raise ValueError(
            f"{args.run_dir} is a run of rnnkit.fit; evaluate it in Python, on the model "
            "rnnkit.load(run, model=MyModel(...)) returns"
        )
    if task == "numbers":
        return seq2seq_args.run_numbers_eval(args, foreign=("text",))
    if seq2seq_args.numbers_eval_flags(args):
        raise ValueError(f"{seq2seq_args.numbers_eval_flags(args)}: only for numbers runs")
    if task != "lm":
        return _eval_task(args)
    if args.out is not None or args.force:
        flag = "--out" if args.out is not None else "--force"
        raise ValueError(f"{flag}: a language-model evaluation writes no figure")
    device, precision = runtime(args)
    # An lm run's model is a CharLM; the run folder is checked before the text is read.
    model = cast("CharLM", load(args.run_dir, device))
    added = ""
    if args.text is not None:
        named, skipped = read_files_counted(args.text)
        # Joined as read_all joins them (and training reads its files): each file ends in a
        # newline. The newlines added are named, so that the count is the files' own + these.
        text = "".join(t if t.endswith("\n") else t + "\n" for _, t in named)
        what, ended = args.text, sum(not t.endswith("\n") for _, t in named)
        if len(named) > 1 or skipped:  # a folder: how many of its files were read
            read = _count(len(named), "file")
            what += f" ({read}, {skipped_note(skipped)})" if skipped else f" ({read})"
        if ended:
            added = f" (with a newline added at the end of {_count(ended, 'file')})"
    else:
        split = args.split or "test"
        config = RunFolder(args.run_dir).read_config()
        corpus = load_corpus(config.derived.get("corpus"))
        text, what = corpus.split(split), f"the {split} split of the run's corpus"
    ids = model.vocab.encode(text)
    unknown = int((ids == UNK_ID).sum())
    with precision:
        bpc, scored = bits_per_char(model, ids, args.batch_size, args.seq_len, args.reset_every)
    print(
        f"text: {what}: {_count(len(text), 'character')}{added}, {unknown:,} unknown to the model"
    )
    print(f"scored: {_scored(scored, len(text), args.batch_size, args.reset_every)}")
    print(f"bpc: {bpc:.4f}")
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _scored(scored: int, n_chars: int, batch_size: int, reset_every: int | None) -> str:
    """What :func:`bits_per_char` scored, and from what context, in words."""
    what = f"{_count(scored, 'character')}, all but the first (nothing comes before it)"
    if reset_every is not None:
        most = _count(reset_every, "character")
        return f"{what}; the state set to zeros every {most}, each has at most {most} of context"
    lengths = stream_lengths(n_chars, batch_size)
    if len(lengths) == 1:
        return f"{what}; each with every earlier character as context"
    low, high = min(lengths), max(lengths)
    size = _count(high, "character") if low == high else f"{low:,}-{high:,} characters"
    return (
        f"{what}; read as {len(lengths)} streams of {size}, each from a zero state: a "
        "character's context is the earlier characters of its stream"
    )


_LM_ONLY = {"text": None, "split": None, "batch_size": 32, "seq_len": 256, "reset_every": None}


def _eval_task(args: argparse.Namespace) -> int:
    """Any other task: its validation metrics, from its own data and its best model."""
    from rnnkit.tasks import get_task
    from rnnkit.train.distributed import Context

    given = [k for k, default in _LM_ONLY.items() if getattr(args, k) != default]
    config = RunFolder(args.run_dir).read_config()
    if given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise ValueError(
            f"{flags}: only for language-model runs; "
            f"{args.run_dir} is a run of task {config.task!r}"
        )
    task_cls = get_task(config.task)
    if not task_cls.extra_files and (args.out is not None or args.force):
        flag = "--out" if args.out is not None else "--force"  # it would write nothing there
        raise ValueError(
            f"{flag}: the evaluation of a run of task {config.task!r} writes no figure"
        )
    if args.out is not None:  # a link (even to the run), a file, no folder to make it in
        check_new_folder("--out", args.out)
    own = args.out is None or same_file(args.out, args.run_dir)  # the task's own figures
    if not own:  # another run's folder does not own this task's figures: --resume refuses it
        check_outside_runs("--out", args.out, folder=True)
    if not (own or args.force):  # a clash known now is refused before the work
        taken = [f for f in task_cls.extra_files if (Path(args.out) / f).exists()]
        if taken:
            raise ValueError(
                f"--out {args.out} already holds {', '.join(taken)}; pass --force to replace "
                "it, or name another folder"
            )
    device, precision = runtime(args)
    options = task_cls.parse_options(config.options, where=f"{args.run_dir}/config.json")
    task = task_cls(options, config.derived)
    model = load(args.run_dir, device)
    with recorded_in(Path(args.run_dir) / "config.json"):
        task.prepare(config.train, Context(0, 1, device))
    # The figures are drawn into a scratch folder and moved in at the end: a file the
    # user saved in --out is refused (unless --force) and nothing is half-written.
    out = args.out or args.run_dir
    with staged_folder("--out", out, args.force, own=own) as stage, precision:
        lines = task.report(model, args.run_dir, stage)
    lines = [line.replace(str(stage), str(Path(out))) for line in lines]
    print(f"{config.task} run {args.run_dir}:")
    for line in lines:
        print(line)
    return 0
