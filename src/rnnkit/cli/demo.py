"""`rnnkit demo`: a one-minute run that shows an LSTM's loss falling."""

from __future__ import annotations

import argparse

from rnnkit.cli._lm_args import positive_int
from rnnkit.demo import run_demo


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train a small LSTM on the adding problem and print its loss falling",
        description="Train a small LSTM on the adding problem (Hochreiter & Schmidhuber "
        "1997), generated on the fly, and print the validation loss as it falls.",
        epilog="example: rnnkit demo --steps 200",
    )
    p.add_argument(
        "--steps",
        type=positive_int,
        default=600,
        help="optimiser steps (default: 600, about half a minute on 2 CPU cores)",
    )
    p.add_argument(
        "--length", type=positive_int, default=50, help="sequence length T in steps (default: 50)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.length < 2:
        raise ValueError(f"--length must be at least 2; got {args.length}")
    run_demo(steps=args.steps, length=args.length, seed=args.seed)
    return 0
