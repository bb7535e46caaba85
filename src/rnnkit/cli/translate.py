"""`rnnkit translate`: run a trained numbers model (seq2seq) on inputs."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from rnnkit.cli._lm_args import (
    add_runtime,
    nonnegative_float,
    one_line_errors,
    positive_float,
    positive_int,
    runtime,
    seed,
)
from rnnkit.cli._outputs import check_figure_format, check_new_file, check_outside_runs
from rnnkit.seq2seq import load_run, plot_attention, translate
from rnnkit.seq2seq.evaluate import prepare_source

if TYPE_CHECKING:
    from rnnkit.seq2seq.run import NumbersRun

EXAMPLES = """examples:
  rnnkit translate runs/en "three hundred and twelve"
  rnnkit translate runs/en "nine thousand and one" --beam 4
  printf '12\\n97\\n' | rnnkit translate runs/fr
  rnnkit translate runs/en "forty-two thousand" --plot attention.png"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "translate",
        help="translate numbers with a trained seq2seq run (words <-> digits)",
        description="Translate each input with the encoder-decoder of a numbers run folder "
        "(written by rnnkit train numbers) and print one output per line. Inputs are the "
        "arguments, or the lines of standard input when none is given. An input the model "
        "cannot read (empty, unknown characters, longer than any of the trained range, "
        "digits outside it) is refused with a message rather than answered wrongly.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    one_line_errors(p)
    p.add_argument("run_dir", metavar="RUN_DIR", help="a numbers run folder")
    p.add_argument("text", nargs="*", metavar="TEXT", help="inputs (default: lines of stdin)")
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--beam", type=positive_int, default=1, help="beam width K (default: 1, greedy)"
    )
    how.add_argument(
        "--temperature",
        type=positive_float,
        default=None,
        help="sample each character at this temperature instead of searching",
    )
    p.add_argument(
        "--alpha",
        type=nonnegative_float,  # a negative exponent would favour the longer outputs
        default=0.0,
        help="beam length penalty exponent α >= 0, GNMT's ((5+|Y|)/6)^α (default: 0)",
    )
    p.add_argument("--seed", type=seed, default=None, help="random seed for --temperature")
    p.add_argument(
        "--plot",
        metavar="FILE",
        help="write the attention weights of the (single) input as a heat map (PNG, or "
        "the format of the file's extension); an existing file only with --force",
    )
    p.add_argument("--force", action="store_true", help="replace --plot if it exists")
    p.add_argument("--scores", action="store_true", help="print the log-probability too")
    add_runtime(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.plot is not None:
        check_new_file("--plot", args.plot, args.force)
        check_outside_runs("--plot", args.plot)
        check_figure_format("--plot", args.plot)
    device, precision = runtime(args)
    run_ = load_run(args.run_dir, device)  # the run folder is checked before input is read
    if args.plot is not None and run_.model.config.attention == "none":
        # It was refused after the translations were printed, naming no option.
        raise ValueError(
            f"--plot draws the attention weights; expected a run whose model has attention; "
            f"got {args.run_dir}, with attention 'none'"
        )
    texts = list(args.text) if args.text else _stdin_inputs(run_)
    if not texts:
        raise ValueError("empty input: give TEXT arguments or lines on standard input")
    if args.plot and len(texts) != 1:
        raise ValueError(f"--plot draws one input; got {len(texts)}")
    with precision:
        results = translate(
            run_,
            texts,
            beam=args.beam,
            alpha=args.alpha,
            temperature=args.temperature,
            seed=args.seed,
        )
    for r in results:
        print(f"{r.output}\t{r.score:.4f}" if args.scores else r.output)
    if args.plot:
        plot_attention(results[0], args.plot, title=f"{results[0].source} -> {results[0].output}")
        print(f"attention heat map written to {args.plot}", file=sys.stderr)
    return 0


def _stdin_inputs(run_: NumbersRun) -> list[str]:
    """The lines of standard input as a file saved by an editor or a spreadsheet holds them:
    a byte-order mark and CRLF line ends dropped, blank lines at the end ignored (they were
    refused as "empty input" without saying where). Each line is checked here, so that a
    refusal names its line number."""
    lines = [line.removesuffix("\r") for line in sys.stdin.read().split("\n")]
    lines[0] = lines[0].removeprefix("\ufeff")
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, 1):
        try:
            prepare_source(run_, line)
        except ValueError as err:
            raise ValueError(f"standard input line {number}: {err}") from None
    return lines
