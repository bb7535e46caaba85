"""`rnnkit eval`: bits per character of a trained language model on a text."""

from __future__ import annotations

import argparse
import textwrap

from rnnkit.cli import seq2seq_args
from rnnkit.cli._lm_args import add_threads, one_line_errors, positive_int, set_threads
from rnnkit.data.corpus import SPLITS, load_corpus, read_all
from rnnkit.data.vocab import UNK_ID
from rnnkit.train import bits_per_char, load
from rnnkit.train.checkpoint import read_run_config

EXAMPLES = """examples:
  rnnkit eval runs/lstm                      # the test split of the run's own corpus
  rnnkit eval runs/lstm --text notes.txt     # any UTF-8 file or folder
  rnnkit eval runs/en --beam 4               # a numbers run: exact match and CER"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="bits per character of a trained language model on a text",
        description=textwrap.fill(
            "Score the model of a run folder on a text: the average number of bits "
            "it needs per character (lower is better; log2 of the vocabulary size is what a "
            "model that knows nothing pays). The last line printed is 'bpc: <number>'. "
            "Characters the model never saw count as its unknown-character class.",
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
    add_threads(p)
    seq2seq_args.add_numbers_eval_arguments(p)
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    set_threads(args)
    if seq2seq_args.is_numbers_run(args.run_dir):  # config.json says "task": "numbers"
        return seq2seq_args.run_numbers_eval(args, foreign=("text",))
    if seq2seq_args.numbers_eval_flags(args):
        raise ValueError(f"{seq2seq_args.numbers_eval_flags(args)}: only for numbers runs")
    model = load(args.run_dir)  # the run folder is checked before the text is read
    if args.text is not None:
        text, what = read_all(args.text), args.text
    else:
        split = args.split or "test"
        corpus = load_corpus(read_run_config(args.run_dir).data)
        text, what = corpus.split(split), f"the {split} split of the run's corpus"
    ids = model.vocab.encode(text)
    unknown = int((ids == UNK_ID).sum())
    bpc, scored = bits_per_char(model, ids, args.batch_size, args.seq_len, args.reset_every)
    print(f"text: {what}: {len(text):,} characters, {unknown:,} unknown to the model")
    context = "all earlier" if args.reset_every is None else f"at most {args.reset_every}"
    print(f"scored: {scored:,} characters, each with {context} characters of context")
    print(f"bpc: {bpc:.4f}")
    return 0
