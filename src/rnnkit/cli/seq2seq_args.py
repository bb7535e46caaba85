"""Command-line options of numbers runs (seq2seq) for `rnnkit eval`.

`rnnkit train numbers` is the generic `rnnkit train` with the fields of
:class:`~rnnkit.tasks.numbers.NumbersOptions`; `rnnkit translate` is its own command
(:mod:`rnnkit.cli.translate`). A numbers run is recognised by its ``config.json``
(``"task": "numbers"``, see :func:`is_numbers_run`).
"""

from __future__ import annotations

import argparse

from rnnkit.cli._lm_args import nonnegative_float, positive_int, runtime
from rnnkit.seq2seq import evaluate, is_numbers_run, load_run

__all__ = [
    "add_numbers_eval_arguments",
    "is_numbers_run",
    "numbers_eval_flags",
    "run_numbers_eval",
]


def add_numbers_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `rnnkit eval` that only a numbers run reads.

    The host command's own options (but --split, --device, --precision, --threads) do not apply to
    a numbers run; giving one with a value other than its default is an error there.
    """
    foreign = {
        a.dest: a.default
        for a in parser._actions
        if a.option_strings and a.dest not in ("help", "split", "device", "precision", "threads")
    }
    parser.set_defaults(numbers_eval_foreign=foreign)
    group = parser.add_argument_group("numbers runs")
    group.add_argument(
        "--beam", type=positive_int, default=None, help="beam width (default: greedy)"
    )
    group.add_argument(
        "--alpha",
        type=nonnegative_float,
        default=None,
        help="beam length penalty exponent, >= 0 (default: 0)",
    )
    group.add_argument(
        "--limit",
        type=positive_int,
        default=None,
        help="score only the first N numbers of the split",
    )


def numbers_eval_flags(args: argparse.Namespace) -> str:
    """The numbers-only options of `rnnkit eval` given (", "-joined)."""
    dests = ("beam", "alpha", "limit")
    return ", ".join("--" + d for d in dests if getattr(args, d, None) is not None)


def run_numbers_eval(args: argparse.Namespace, foreign: tuple[str, ...] = ()) -> int:
    """`rnnkit eval RUN_DIR` of a numbers run: exact match and CER on a split.

    ``foreign`` names options of the host command that do not apply to a numbers run (in
    addition to those found by :func:`add_numbers_eval_arguments`); giving one is an
    error rather than being silently ignored.
    """
    defaults = {**getattr(args, "numbers_eval_foreign", {}), **dict.fromkeys(foreign)}
    given = [d for d, default in defaults.items() if getattr(args, d, None) != default]
    if given:
        flags = ", ".join("--" + d.replace("_", "-") for d in given)
        raise ValueError(f"{flags}: not used by a numbers run")
    split = getattr(args, "split", None) or "test"
    split = {"validation": "valid"}.get(split, split)
    if split not in ("valid", "test"):
        raise ValueError(f"a numbers run is scored on its valid or test split; got {split!r}")
    beam = args.beam or 1  # the parser took care of the range
    device, precision = runtime(args)
    run = load_run(args.run_dir, device)  # refuses a folder that is not a numbers run
    with precision:
        result = evaluate(run, split, beam=beam, alpha=args.alpha or 0.0, limit=args.limit)
    t = run.task
    how = "greedy" if beam == 1 else f"beam {beam}, alpha {args.alpha or 0.0:g}"
    print(
        f"numbers {t.lang} {t.direction}, {split} split: {len(result.examples)} held-out "
        f"numbers in {t.min_number}..{t.max_number}, {how}"
    )
    print(f"character error rate: {result.cer:.4f}")
    print(f"exact match: {result.exact:.4f}")
    return 0
