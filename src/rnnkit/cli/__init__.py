"""The command line: a thin shell that parses arguments and calls the library.

Each command lives in its own module with ``register(subparsers)``; `rnnkit train` builds
one parser per task (:mod:`rnnkit.cli.train`). A user's mistake ends in a one-line message
and exit status 2, never a traceback; a run that diverged, or that lost one of its
processes under torchrun, ends in one line and status 1. Under torchrun a line that every
process would print is printed once.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence

from rnnkit._version import __version__
from rnnkit.cli import demo, explain, export, forecast, generate, predict, train, translate
from rnnkit.cli import eval as eval_command
from rnnkit.cli._lm_args import one_line_errors

COMMANDS = [demo, train, generate, eval_command, predict, translate, forecast, explain, export]


class CLIError(Exception):
    """A mistake in what the user asked for; printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnkit",
        description="Recurrent neural networks for PyTorch: train, sample and inspect them.",
    )
    parser.add_argument("--version", action="version", version=f"rnnkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    _one_line_errors_everywhere(parser)
    return parser


def _one_line_errors_everywhere(parser: argparse.ArgumentParser) -> None:
    """Every parser and sub-parser reports a mistake in one line (exit 2), no usage block."""
    one_line_errors(parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _one_line_errors_everywhere(child)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":  # one parser per task: built once the task is known
        return _guarded("train", lambda: train.main(argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return _guarded(args.command, lambda: int(args.func(args) or 0))


def _guarded(command: str, run: Callable[[], int]) -> int:
    """Run a command; its errors become one line on stderr and an exit status.

    Under torchrun the line is printed once, not once per process
    (:func:`rnnkit.train.distributed.prints_error` says which process prints it); a process
    that stays silent ends with the same status."""
    from rnnkit.train.distributed import PeerLostError, hold_sigterm
    from rnnkit.train.loop import TrainingDivergedError

    try:
        return run()
    except BrokenPipeError:
        # The reader of stdout left (`rnnkit generate RUN | head`): no mistake of the
        # user's, so no message; stdout goes to the null device so that Python's flush at
        # exit cannot fail again. 141 is what a shell reports for a SIGPIPE death.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except (CLIError, ValueError, TypeError, OSError, TrainingDivergedError) as err:
        if os.environ.get("RNNKIT_TRACEBACK"):
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        _print_error(f"rnnkit {command}: error: {message}")
        return 1 if isinstance(err, TrainingDivergedError) else 2
    except PeerLostError as err:
        # Another process of a torchrun run is gone: no mistake of the user's; the run
        # folder keeps its last checkpoint, as the message says. torchrun's SIGTERM, sent
        # as the other process ended, must not cut this one's line short: ignored, as the
        # process ends.
        hold_sigterm()
        if os.environ.get("RNNKIT_TRACEBACK"):
            raise
        _print_error(f"rnnkit {command}: error: {err}", peer_loss=True, lost=err.lost)
        return 1
    except RuntimeError as err:
        oom = _out_of_memory(err)
        if oom is None or os.environ.get("RNNKIT_TRACEBACK"):
            raise  # any other RuntimeError is a bug: its traceback is wanted
        _print_error(f"rnnkit {command}: error: {oom}")
        return 2
    except KeyboardInterrupt:
        print(f"rnnkit {command}: interrupted", file=sys.stderr)
        return 130


def _print_error(line: str, *, peer_loss: bool = False, lost: int | None = None) -> None:
    """Print the one line of an error on stderr, unless another process of the same
    torchrun run prints it."""
    from rnnkit.train import distributed

    if distributed.prints_error(line, peer_loss=peer_loss, lost=lost):
        print(line, file=sys.stderr)


def _out_of_memory(err: RuntimeError) -> str | None:
    """The one line for an allocation that failed (sizes asked for beyond the machine, such
    as --hidden 65536), or None for any other error."""
    import torch

    oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    text = " ".join(str(err).split())
    if not isinstance(err, oom) and "can't allocate memory" not in text:
        return None
    # torch's CPU allocator says "you tried to allocate N bytes"; CUDA's "Tried to allocate X GiB".
    found = re.search(r"[Tt]ried to allocate ([\d.]+ ?[KMGT]?i?B|\d+ bytes)", text)
    asked = f"an allocation of {found.group(1)}" if found else "an allocation"
    return (
        f"out of memory: {asked} failed; expected sizes that fit this machine (a smaller "
        "model, batch or sequence length)"
    )


def entry() -> None:
    sys.exit(main())
