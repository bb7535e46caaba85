"""Argument types, error style and runtime options shared by the commands."""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

import torch

from rnnkit.data.ts_format import parse_number


def one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Make ``parser`` report a bad argument as one line (no usage block), exit status 2."""

    def error(message: str) -> NoReturn:
        print(f"{parser.prog}: error: {' '.join(message.split())}", file=sys.stderr)
        sys.exit(2)

    parser.error = error  # type: ignore[method-assign]


def integer(text: str) -> int:
    # ASCII digits only: int() also reads "1_000" and the digits of other scripts.
    if not re.fullmatch(r"\s*[+-]?[0-9]+\s*", text):
        raise argparse.ArgumentTypeError(f"expected an integer; got {text!r}")
    return int(text)


def positive_int(text: str, allow_zero: bool = False) -> int:
    value = integer(text)
    if value < 0 or (value == 0 and not allow_zero):
        kind = "an integer >= 0" if allow_zero else "a positive integer"
        raise argparse.ArgumentTypeError(f"expected {kind}; got {value}")
    return value


def nonnegative_int(text: str) -> int:
    return positive_int(text, allow_zero=True)


def folder_name(text: str) -> str:
    """A folder (or file) name to write or read: an empty one would mean the working
    folder without saying so."""
    if not text:
        raise argparse.ArgumentTypeError("expected a name; got an empty string")
    return text


def folder_path(text: str) -> Path:
    """:func:`folder_name` as a path."""
    return Path(folder_name(text))


SEED_MAX = 2**63 - 1  # torch.manual_seed takes a signed 64-bit integer, as train's --seed


def seed(text: str) -> int:
    """A --seed: larger ones would overflow in torch with a message naming no flag."""
    value = integer(text)
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, {SEED_MAX}]; got {value}")
    return value


def finite_float(text: str) -> float:
    try:
        value = parse_number(text)  # as the data files' numbers: not "1_000" or "٣"
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number; got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number; got {text!r}")
    return value


def nonnegative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0; got {text!r}")
    return value


THREADS_MAX = 4096  # as train's --threads (TrainConfig.threads)


def threads(text: str) -> int:
    """A --threads: torch crashes (segmentation fault) on 100000 threads and overflows on
    more than a C long, so the bound is train's."""
    value = integer(text)
    if not 1 <= value <= THREADS_MAX:
        raise argparse.ArgumentTypeError(f"expected an integer in [1, {THREADS_MAX}]; got {value}")
    return value


def add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=threads,
        default=1,
        help="CPU threads PyTorch may use (default: 1; the default models are too small to "
        "gain from more, and threads that wait for each other on a busy CPU waste it; "
        "give more for large models on an idle machine)",
    )


def set_threads(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)


def add_runtime(parser: argparse.ArgumentParser) -> None:
    """--device, --precision and --threads: where and how a command runs its model."""
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="where the model runs; auto picks cuda when available (default: auto)",
    )
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16"],
        default="fp32",
        help="autocast precision of the forward pass (default: fp32)",
    )
    add_threads(parser)


def runtime(args: argparse.Namespace) -> tuple[torch.device, Any]:
    """(device, autocast context) from :func:`add_runtime`'s options; sets the threads."""
    from rnnkit.train.config import autocast, resolve_device

    set_threads(args)
    device = resolve_device(args.device)
    return device, autocast(device, args.precision)
