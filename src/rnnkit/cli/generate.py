"""`rnnkit generate`: sample text from a trained language model, streamed as it comes."""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import cast

import torch

from rnnkit.cli._lm_args import (
    add_runtime,
    nonnegative_float,
    nonnegative_int,
    one_line_errors,
    positive_int,
    runtime,
    seed,
)
from rnnkit.cli.predict import how_to_apply
from rnnkit.models.lm import CharLM
from rnnkit.train import RunFolder, load

EXAMPLES = """examples:
  rnnkit generate runs/lstm --prompt 'def ' --length 300
  rnnkit generate runs/lstm --prompt 'import ' --temperature 0.5 --top-k 10 --seed 1"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="sample text from a trained language model",
        description=textwrap.fill(
            "Sample text from the model of a run folder, one character at a time, "
            "printing each as it is sampled. The prompt is read first to set the hidden state "
            "and is printed as is. The same --seed gives the same text.",
            88,
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    one_line_errors(p)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by rnnkit train")
    p.add_argument(
        "--prompt", default="", help="text that primes the state (default: empty: a new line)"
    )
    p.add_argument(
        "--length", type=nonnegative_int, default=500, help="characters to sample (default: 500)"
    )
    p.add_argument(
        "--temperature",
        type=nonnegative_float,
        default=0.8,
        help="divides the logits: below 1 is more conservative, 0 always picks the most "
        "likely character (default: 0.8)",
    )
    p.add_argument(
        "--top-k",
        type=positive_int,
        default=None,
        help="sample only among the K most likely characters (default: all)",
    )
    p.add_argument("--seed", type=seed, default=0, help="random seed (default: 0)")
    add_runtime(p)
    p.set_defaults(func=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    device, precision = runtime(args)
    task = RunFolder(args.run_dir).read_config().task  # before any weight is read
    if task != "lm":
        raise ValueError(
            f"{args.run_dir} is a run of task {task!r}, not a language-model run (rnnkit "
            f"generate samples text); {how_to_apply(task, args.run_dir)}"
        )
    model = cast(CharLM, load(args.run_dir, device))
    missing = unknown_chars(model, args.prompt)
    if missing:  # generated all the same: the model reads each as its unknown class
        shown = ", ".join(repr(c) for c in missing)
        print(
            f"rnnkit generate: --prompt has characters not in the run's vocabulary, read as "
            f"its unknown class: {shown}",
            file=sys.stderr,
        )
    generator = torch.Generator().manual_seed(args.seed)
    out = sys.stdout
    out.write(args.prompt)
    out.flush()
    with precision:
        for ch in model.sample(
            args.prompt,
            args.length,
            temperature=args.temperature,
            top_k=args.top_k,
            generator=generator,
        ):
            out.write(ch)
            out.flush()
    out.write("\n")
    return 0


def unknown_chars(model: CharLM, prompt: str) -> list[str]:
    """The characters of ``prompt`` the model's vocabulary lacks, once each, in order."""
    return list(dict.fromkeys(c for c in prompt if c not in model.vocab))
