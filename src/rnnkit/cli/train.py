"""`rnnkit train`: train a character-level language model (the chapter's section 10.1)."""

from __future__ import annotations

import argparse
import sys
import textwrap

from rnnkit.cli import memory_args, seq2seq_args
from rnnkit.cli._lm_args import (
    add_threads,
    nonnegative_float,
    nonnegative_int,
    one_line_errors,
    positive_float,
    positive_int,
    set_threads,
)
from rnnkit.models.lm import CELLS, CharLMConfig
from rnnkit.train import TrainConfig, train

# Options that define a run; a resumed run takes them from its config.json.
_RUN_OPTIONS = (
    "text",
    "min_count",
    "cell",
    "layers",
    "hidden",
    "embed",
    "dropout",
    "forget_bias",
    "seq_len",
    "batch_size",
    "lr",
    "eval_every",
    "seed",
    "device",
    "out",
)

EXAMPLES = """examples:
  rnnkit train                                   # LSTM on the standard library, 3 minutes
  rnnkit train --text notes.txt --cell gru --hidden 128 --steps 500 --out runs/notes
  rnnkit train --resume runs/notes --steps 1000  # continue where it stopped
  torchrun --nproc_per_node=2 -m rnnkit train --batch-size 64   # 2 processes, 32 streams each
  rnnkit train --task numbers --lang en --direction words2digits --out runs/en   # seq2seq
  rnnkit train --task adding --length 1000 --cell mingru --steps 2000   # long memory

Ctrl-C (or SIGTERM) stops after the current step and saves; --resume continues exactly."""


def register(sub: argparse._SubParsersAction) -> None:
    m, t = CharLMConfig(vocab_size=2), TrainConfig()
    p = sub.add_parser(
        "train",
        help="train a character-level language model (default: an LSTM on Python's own sources)",
        description=textwrap.fill(
            "Train a character-level language model with truncated backpropagation "
            "through time: the text is read as --batch-size parallel streams, --seq-len "
            "characters at a time, with the hidden state carried from window to window. "
            "Without --text the corpus is the Python standard library's .py files of this "
            "interpreter (split into train/validation/test by file). The run folder gets "
            "config.json, model.safetensors (best validation weights), the training state, "
            "metrics.csv and loss.png.",
            88,
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    one_line_errors(p)
    p.add_argument(
        "--task",
        choices=["lm", "numbers", "adding", "copy", "selective-copy"],
        default="lm",
        help="lm: the character language model (default); numbers: the seq2seq task, "
        "numbers in words <-> digits (options in the 'numbers task' group); adding, copy, "
        "selective-copy: the long-memory tasks (options in their group)",
    )
    data = p.add_argument_group("data")
    data.add_argument(
        "--text",
        metavar="FILE|DIR",
        help="a UTF-8 text file, or a folder of them (default: the Python standard library)",
    )
    data.add_argument(
        "--min-count",
        type=positive_int,
        help="characters seen fewer times than this in the training text join the "
        "unknown-character class (default: 1, keep every character)",
    )
    model = p.add_argument_group("model")
    model.add_argument(
        "--cell",
        choices=list(CELLS),
        help=f"recurrent cell (default: {m.cell})",
    )
    model.add_argument(
        "--layers", type=positive_int, help=f"stacked recurrent layers (default: {m.num_layers})"
    )
    model.add_argument(
        "--hidden", type=positive_int, help=f"hidden units per layer H (default: {m.hidden_size})"
    )
    model.add_argument(
        "--embed", type=positive_int, help=f"character embedding size E (default: {m.embed_size})"
    )
    model.add_argument(
        "--dropout",
        type=nonnegative_float,
        help=f"dropout probability in [0, 1) on embeddings, between layers and before the "
        f"output (default: {m.dropout})",
    )
    model.add_argument(
        "--forget-bias",
        type=float,
        help="initial forget-gate bias of lstm (update-gate bias of gru); "
        "1 is Jozefowicz et al.'s advice (default: PyTorch's initialisation)",
    )
    tr = p.add_argument_group("training")
    tr.add_argument(
        "--seq-len",
        type=positive_int,
        help=f"truncated-BPTT window in characters (default: {t.seq_len})",
    )
    tr.add_argument(
        "--batch-size",
        type=positive_int,
        help=f"parallel streams, summed over all processes (default: {t.batch_size})",
    )
    tr.add_argument("--lr", type=positive_float, help=f"peak AdamW learning rate (default: {t.lr})")
    tr.add_argument(
        "--steps",
        type=positive_int,
        help="budget in optimiser steps (default: none; with --steps alone the run is "
        "deterministic and has no time limit)",
    )
    tr.add_argument(
        "--minutes",
        type=positive_float,
        help=f"budget in wall-clock minutes (default: {t.minutes:g} when --steps is not given)",
    )
    tr.add_argument(
        "--eval-every",
        type=positive_int,
        help=f"steps between validations, checkpoints and samples (default: {t.eval_every})",
    )
    tr.add_argument("--seed", type=nonnegative_int, help=f"random seed (default: {t.seed})")
    tr.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        help="auto picks cuda when available (default: auto)",
    )
    run = p.add_argument_group("run folder")
    run.add_argument(
        "--out", metavar="DIR", help="run folder to create (default: runs/<cell>-<date-time>)"
    )
    run.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run in DIR exactly where it stopped; only --steps and --minutes "
        "may be given with it (a new, larger budget)",
    )
    add_threads(p)
    seq2seq_args.add_numbers_arguments(p)
    memory_args.add_memory_arguments(p)
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    if memory_args.is_memory_task(args):
        set_threads(args)
        return memory_args.run_memory_train(args)
    if args.length is not None or args.no_chrono or args.until_goal or args.cosine:
        raise ValueError(
            "--length, --no-chrono, --until-goal, --cosine: only for --task "
            "adding|copy|selective-copy"
        )
    resuming_numbers = args.resume is not None and seq2seq_args.is_numbers_run(args.resume)
    if args.task == "numbers" or resuming_numbers:  # a numbers run resumes as one
        return seq2seq_args.run_numbers_train(
            args, foreign=("text", "min_count", "seq_len", "device")
        )
    if seq2seq_args.numbers_only_flags(args):
        raise ValueError(f"{seq2seq_args.numbers_only_flags(args)}: only for --task numbers")
    set_threads(args)
    if args.resume is not None:
        given = [name for name in _RUN_OPTIONS if getattr(args, name) is not None]
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise ValueError(
                f"--resume continues {args.resume} with its own config.json; {flags} cannot "
                "be given with it (only --steps and --minutes)"
            )
        summary = train(resume=args.resume, steps=args.steps, minutes=args.minutes)
    else:
        if args.dropout is not None and args.dropout >= 1:
            raise ValueError(f"--dropout must lie in [0, 1); got {args.dropout}")
        model_options = {
            key: value
            for key, value in (
                ("cell", args.cell),
                ("num_layers", args.layers),
                ("hidden_size", args.hidden),
                ("embed_size", args.embed),
                ("dropout", args.dropout),
                ("forget_bias", args.forget_bias),
            )
            if value is not None
        }
        budget = {"steps": args.steps, "minutes": args.minutes}
        if args.steps is None and args.minutes is None:
            budget = {}  # the config's default: a few minutes
        train_options = {
            key: value
            for key, value in (
                ("seq_len", args.seq_len),
                ("batch_size", args.batch_size),
                ("lr", args.lr),
                ("eval_every", args.eval_every),
                ("seed", args.seed),
                ("device", args.device),
            )
            if value is not None
        }
        source = {"kind": "text", "path": args.text} if args.text is not None else None
        summary = train(
            args.out,
            model_options=model_options,
            train_config=TrainConfig(**train_options, **budget),
            source=source,
            vocab_min_count=args.min_count or 1,
        )
    if not summary.is_main:
        return 0  # not the main process of a distributed run: rank 0 reports
    how = f"stopped by {summary.stopped_by}" if summary.stopped_by else "finished"
    print(
        f"{how} at step {summary.step}: validation bpc {summary.val_bpc:.4f}, best "
        f"{summary.best_val_bpc:.4f}; {summary.chars_per_s:,.0f} training chars/s"
    )
    print("sample from the best model:")
    print(summary.sample)
    print(f"run saved to {summary.run_dir}")
    print(f"  continue: rnnkit train --resume {summary.run_dir} --steps N")
    print(f"  generate: rnnkit generate {summary.run_dir} --prompt 'def '")
    sys.stdout.flush()
    return 0
