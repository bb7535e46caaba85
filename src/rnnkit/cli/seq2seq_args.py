"""Command-line options of the numbers task (seq2seq), for `rnnkit train` and `rnnkit eval`.

``add_numbers_arguments`` adds the task's options to a parser; options the parser already
has (``--steps``, ``--lr``, ...) are shared, not added twice. Every option defaults to
None so that only what the user gave overrides :class:`~rnnkit.seq2seq.NumbersConfig`.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from rnnkit.seq2seq import NumbersConfig, evaluate, load_run, train_numbers
from rnnkit.seq2seq.attention import KINDS
from rnnkit.seq2seq.checkpoint import dataclass_from_dict, is_numbers_run, read_config
from rnnkit.seq2seq.data import DIRECTIONS
from rnnkit.seq2seq.model import DECODER_CELLS, ENCODERS

# (flags, dest, type, help): dest is a NumbersConfig field, or one of the CLI-only names
# "minutes", "out", "resume", "cell", "embed", "hidden", "layers" handled in
# config_from_args. Shared options keep the dest the host command gives them.
_SHARED: list[tuple[str, str, Any, str]] = [
    ("--steps", "steps", int, "optimiser steps"),
    ("--minutes", "minutes", float, "stop (and save) after this many minutes of training"),
    ("--batch-size", "batch_size", int, "pairs per optimiser step"),
    ("--lr", "lr", float, "Adam learning rate at the start of the cosine decay"),
    ("--eval-every", "eval_every", int, "steps between validations and checkpoints"),
    ("--seed", "seed", int, "random seed"),
    ("--dropout", "dropout", float, "dropout between layers and before the output layer"),
    ("--embed", "embed", int, "character embedding size"),
    ("--hidden", "hidden", int, "hidden size of encoder (per direction) and decoder"),
    ("--layers", "layers", int, "stacked layers of encoder and decoder"),
    ("--cell", "cell", str, "kind of encoder and decoder (gru, lstm, rnn, ...)"),
    ("--threads", "threads", int, "torch CPU threads"),
    ("--out", "out", str, "run folder to create"),
    ("--resume", "resume", str, "continue the run in this folder (only --steps/--minutes)"),
]
_OWN: list[tuple[str, str, Any, str]] = [
    ("--lang", "lang", str, "num2words language code: en, fr, de, es, ... (default: en)"),
    ("--direction", "direction", str, f"one of {', '.join(DIRECTIONS)} (default: words2digits)"),
    ("--min-number", "min_number", int, "smallest number of the range (default: 0)"),
    ("--max-number", "max_number", int, "largest number of the range (default: 999999)"),
    ("--split-seed", "split_seed", int, "which numbers go to train/valid/test (default: 0)"),
    ("--n-valid", "n_valid", int, "validation numbers scored at each evaluation"),
    ("--n-test", "n_test", int, "test numbers scored by rnnkit eval"),
    ("--encoder", "encoder", str, "encoder: any rnnkit layer (default: gru)"),
    ("--decoder", "decoder", str, "decoder: any rnnkit cell (default: gru)"),
    ("--encoder-hidden", "encoder_hidden", int, "encoder hidden size per direction"),
    ("--decoder-hidden", "decoder_hidden", int, "decoder hidden size"),
    ("--encoder-layers", "encoder_layers", int, "stacked encoder layers"),
    ("--decoder-layers", "decoder_layers", int, "stacked decoder cells"),
    ("--attention", "attention", str, f"one of {', '.join(KINDS)} (default: general)"),
    ("--label-smoothing", "label_smoothing", float, "label smoothing in [0, 1)"),
    ("--scheduled-sampling", "scheduled_sampling", float, "final share of own tokens read"),
    ("--clip", "clip", float, "maximum gradient norm"),
]
_CHOICES = {
    "direction": list(DIRECTIONS),
    "attention": list(KINDS),
    "encoder": list(ENCODERS),
    "decoder": list(DECODER_CELLS),
    "cell": [k for k in ENCODERS if k in DECODER_CELLS],
}


def add_numbers_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the numbers task's options (an argument group) to ``parser``."""
    group = parser.add_argument_group("numbers task (--task numbers)")
    taken = set(parser._option_string_actions)
    for flags, dest, kind, text in [*_OWN, *_SHARED]:
        if flags in taken:
            continue  # shared with the parser's own command: one option, read by both
        group.add_argument(
            flags, dest=dest, type=kind, default=None, choices=_CHOICES.get(dest), help=text
        )
    group.add_argument(
        "--unidirectional",
        action="store_true",
        default=None,
        help="run the encoder forward only (default: bidirectional)",
    )
    group.add_argument(
        "--no-input-feeding",
        action="store_true",
        default=None,
        help="do not feed h̃_{t-1} back into the decoder (Luong et al. 2015, sec. 3.3)",
    )
    own = {d for _, d, _, _ in [*_OWN, *_SHARED]} | {"unidirectional", "no_input_feeding"}
    # The host command's other options do not apply to this task: giving one is an error,
    # never silently ignored (checked in run_numbers_train).
    foreign = {
        a.dest: a.default
        for a in parser._actions
        if a.dest not in own and a.option_strings and a.dest not in ("help", "task")
    }
    parser.set_defaults(
        numbers_options=tuple(d for _, d, _, _ in [*_OWN, *_SHARED]), numbers_foreign=foreign
    )


def numbers_only_flags(args: argparse.Namespace) -> str:
    """The numbers-only options given (", "-joined), for a host command's other tasks."""
    dests = [d for _, d, _, _ in _OWN] + ["unidirectional", "no_input_feeding"]
    return ", ".join("--" + d.replace("_", "-") for d in dests if _given(args, d) is not None)


def _given(args: argparse.Namespace, dest: str) -> Any:
    return getattr(args, dest, None)


def config_from_args(args: argparse.Namespace, base: NumbersConfig | None = None) -> NumbersConfig:
    """A :class:`NumbersConfig`: ``base`` (or the defaults) with the options the user gave."""
    names = {f.name for f in fields(NumbersConfig)}
    values: dict[str, Any] = {}
    cell, hidden, layers = _given(args, "cell"), _given(args, "hidden"), _given(args, "layers")
    if cell is not None:
        if cell not in _CHOICES["cell"]:
            raise ValueError(f"--cell must be one of {', '.join(_CHOICES['cell'])}; got {cell!r}")
        values.update(encoder=cell, decoder=cell)
    if _given(args, "embed") is not None:
        values["embed_size"] = args.embed
    if hidden is not None:
        values.update(encoder_hidden=hidden, decoder_hidden=hidden)
    if layers is not None:
        values.update(encoder_layers=layers, decoder_layers=layers)
    for dest in names:
        value = _given(args, dest)
        if value is not None:
            values[dest] = value
    if _given(args, "minutes") is not None:
        values["max_seconds"] = 60.0 * args.minutes
    if _given(args, "unidirectional"):
        values["bidirectional"] = False
    if _given(args, "no_input_feeding"):
        values["input_feeding"] = False
    return replace(base or NumbersConfig(), **values)


def run_numbers_train(args: argparse.Namespace, foreign: tuple[str, ...] = ()) -> int:
    """`rnnkit train --task numbers ...`: train (or resume) a numbers run.

    ``foreign`` names options of the host command that do not apply to this task (in
    addition to those found by :func:`add_numbers_arguments`); giving one is an error
    rather than being silently ignored.
    """
    defaults = {**getattr(args, "numbers_foreign", {}), **dict.fromkeys(foreign)}
    given = [d for d, default in defaults.items() if getattr(args, d, None) != default]
    if given:
        flags = ", ".join("--" + d.replace("_", "-") for d in given)
        raise ValueError(f"{flags}: not used by --task numbers")
    if args.resume is not None:
        allowed = {"steps", "minutes", "resume", "threads"}
        extra = [
            d
            for d in (*args.numbers_options, "unidirectional", "no_input_feeding")
            if d not in allowed and getattr(args, d, None) not in (None, False)
        ]
        if extra:
            flags = ", ".join("--" + d.replace("_", "-") for d in extra)
            raise ValueError(
                f"--resume continues {args.resume} with its own config.json; {flags} cannot "
                "be given with it (only --steps and --minutes)"
            )
        meta = read_config(args.resume)
        stored = dataclass_from_dict(NumbersConfig, meta["config"], "config.json: config")
        config = config_from_args(args, base=stored)
        out = Path(args.resume)
        resume = True
    else:
        config = config_from_args(args)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = Path(args.out or f"runs/numbers-{config.lang}-{config.direction}-{stamp}")
        resume = False
    train_numbers(config, out, print, resume=resume)
    result = evaluate(load_run(out), "valid")
    print(f"valid exact match {result.exact:.2%}, character error rate {result.cer:.2%}")
    print(f"run saved to {out}")
    print(f'  translate: rnnkit translate {out} "{_example_input(config)}"')
    print(f"  evaluate:  rnnkit eval {out}")
    return 0


def _example_input(config: NumbersConfig) -> str:
    n = min(max(312, config.min_number), config.max_number)
    return str(n) if config.direction == "digits2words" else config.task().words(n)


def add_numbers_eval_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `rnnkit eval` that only a numbers run reads.

    The host command's own options (but --split and --threads) do not apply to a numbers
    run; giving one with a value other than its default is an error there.
    """
    foreign = {
        a.dest: a.default
        for a in parser._actions
        if a.option_strings and a.dest not in ("help", "split", "threads")
    }
    parser.set_defaults(numbers_eval_foreign=foreign)
    group = parser.add_argument_group("numbers runs")
    group.add_argument("--beam", type=int, default=None, help="beam width (default: greedy)")
    group.add_argument(
        "--alpha", type=float, default=None, help="beam length penalty exponent (default: 0)"
    )
    group.add_argument(
        "--limit", type=int, default=None, help="score only the first N numbers of the split"
    )


def numbers_eval_flags(args: argparse.Namespace) -> str:
    """The numbers-only options of `rnnkit eval` given (", "-joined)."""
    dests = ("beam", "alpha", "limit")
    return ", ".join("--" + d for d in dests if getattr(args, d, None) is not None)


def run_numbers_eval(args: argparse.Namespace, foreign: tuple[str, ...] = ()) -> int:
    """`rnnkit eval RUN_DIR` of a numbers run: exact match and CER on a split."""
    if not is_numbers_run(args.run_dir):
        read_config(args.run_dir)  # raises the reason
    defaults = {**getattr(args, "numbers_eval_foreign", {}), **dict.fromkeys(foreign)}
    given = [d for d, default in defaults.items() if getattr(args, d, None) != default]
    if given:
        flags = ", ".join("--" + d.replace("_", "-") for d in given)
        raise ValueError(f"{flags}: not used by a numbers run")
    split = getattr(args, "split", None) or "test"
    split = {"validation": "valid"}.get(split, split)
    if split not in ("valid", "test"):
        raise ValueError(f"a numbers run is scored on its valid or test split; got {split!r}")
    beam = args.beam or 1
    if beam < 1:
        raise ValueError(f"--beam must be >= 1; got {beam}")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1; got {args.limit}")
    run = load_run(args.run_dir)
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
