"""`rnnkit demo`: a one-minute run that shows an LSTM's loss falling."""

from __future__ import annotations

import argparse

from rnnkit.cli._lm_args import add_runtime, folder_name, positive_int, seed
from rnnkit.cli._outputs import check_out_folder, probe_new_folder
from rnnkit.demo import run_demo


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train a small LSTM on the adding problem and print its loss falling",
        description="Train a small LSTM on the adding problem (Hochreiter & Schmidhuber "
        "1997), generated on the fly, and print the validation loss as it falls. It is "
        "`rnnkit train adding` with an LSTM of 64 units and --lr 1e-2.",
        epilog="example: rnnkit demo --steps 200 --out runs/demo",
    )
    p.add_argument(
        "--steps",
        type=positive_int,
        default=600,
        help="optimiser steps (default: 600, about half a minute on 2 CPU cores)",
    )
    p.add_argument(
        "--length",
        type=positive_int,
        default=50,
        help="sequence length T in steps, at least 10 (default: 50)",
    )
    p.add_argument("--seed", type=seed, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--out",
        type=folder_name,
        metavar="DIR",
        help="keep the run in this new folder (default: a temporary folder, removed after)",
    )
    add_runtime(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.out is not None:  # as rnnkit train --out: named as the flag, before any output
        check_out_folder("--out", args.out)
        probe_new_folder("--out", args.out)
    run_demo(
        steps=args.steps, length=args.length, seed=args.seed, out=args.out,
        device=args.device, precision=args.precision, threads=args.threads,
    )  # fmt: skip
    return 0
