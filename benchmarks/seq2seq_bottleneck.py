"""The encoding bottleneck, measured: exact match against input length, with and without attention.

The chapter's seq2seq encodes the whole input into one vector; its list of limitations
(10.20) names this the encoding bottleneck. This script trains the same encoder-decoder on
the numbers task twice - with ``attention="none"`` (the decoder sees only the fixed
vector) and with attention - for the same number of steps, scores both on the same held-out
test numbers, and tabulates exact-match accuracy by input length. It prints a Markdown
table and writes a PNG plot.

    python benchmarks/seq2seq_bottleneck.py --runs runs --steps 800 \
        --png docs/img/seq2seq-bottleneck.png

Each run trains through the one training loop (``rnnkit.train.train("numbers", ...)``,
the task's own training defaults with ``--steps`` and ``--eval-every``). A run folder that
already exists under ``--runs`` (``<lang>-<direction>-<attention>``) is scored, not
retrained, so the script can reuse runs made with ``rnnkit train numbers`` and the same
settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

import _args
from rnnkit.seq2seq import evaluate, load_run
from rnnkit.tasks.numbers import NumbersOptions, NumbersTask
from rnnkit.train import train


def bins_of(lengths: list[int], width: int) -> list[tuple[int, int]]:
    top = max(lengths)
    return [(lo, lo + width - 1) for lo in range(0, top + 1, width)]


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every run's options and budget as the task takes them, the language and the plot's
    format, before the first run trains (a bad one would else end the script after it)."""
    from rnnkit.cli._outputs import check_figure_format

    _args.each_once(parser, "--attention", args.attention)
    try:
        for kind in args.attention:
            NumbersOptions(lang=args.lang, direction=args.direction,
                           max_number=args.max_number, attention=kind)  # fmt: skip
        NumbersTask.default_train(steps=args.steps, eval_every=args.eval_every)
        if args.png is not None:
            check_figure_format("--png", args.png)
    except ValueError as e:  # the messages name the option
        parser.error(str(e))
    try:
        NumbersOptions(lang=args.lang).pairs()  # num2words' languages
    except ValueError as e:
        _args.refuse(parser, "--lang", str(e))
    missing = [kind for kind in args.attention if not _scored(run_of(args, kind))]
    for kind in args.attention:
        check_run(parser, args, kind)
    if missing:
        _args.writable(parser, "--runs", args.runs)


def run_of(args: argparse.Namespace, kind: str) -> Path:
    return Path(args.runs) / f"{args.lang}-{args.direction}-{kind}"


def _scored(out: Path) -> bool:
    """Whether the run folder ``out`` is scored as it is (it has weights), not trained."""
    return (out / "model.safetensors").exists()


def check_run(parser: argparse.ArgumentParser, args: argparse.Namespace, kind: str) -> None:
    """A run folder with weights is scored, not trained again: refuse one of other settings,
    or one stopped before its steps, whose scores would be printed and plotted as these
    settings'. A folder without weights is trained into: refuse one that is not a run."""
    from rnnkit.train.runfolder import RunFolder, is_run_folder

    out = run_of(args, kind)
    if not _scored(out):
        if out.is_symlink() or (out.exists() and not (_args.empty(out) or is_run_folder(out))):
            _args.refuse(
                parser,
                "--runs",
                f"expected a folder whose {out.name} is absent or an rnnkit run folder (a run "
                f"is trained there); got {out}, which is not a run folder",
            )
        return
    folder = RunFolder(out)
    try:
        config, manifest = folder.read_config(), folder.read_manifest()
    except ValueError as e:
        _args.refuse(parser, "--runs", f"expected a numbers run folder; got {out}: {e}")
    options = NumbersOptions(
        lang=args.lang, direction=args.direction, max_number=args.max_number, attention=kind
    )
    wanted = dataclasses.asdict(options)
    given = config.options
    differ = [] if config.task == "numbers" else [f"task {config.task}"]
    differ += [f"{k} {given.get(k)!r}" for k in wanted if given.get(k) != wanted[k]]
    step = 0 if manifest is None else int(manifest["step"])
    if config.train.steps != args.steps:
        differ.append(f"steps {config.train.steps}")
    elif step < args.steps:
        differ.append(f"its training stopped at step {step}")
    if differ:
        _args.refuse(
            parser,
            "--runs",
            f"expected {out} (scored, not trained again) to be a finished run of these "
            f"settings; got one with {', '.join(differ)}",
        )


def main() -> None:
    parser = _args.parser(__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=_args.folder, default="runs",
                        help="folder of the run folders")  # fmt: skip
    parser.add_argument("--lang", default="en")
    parser.add_argument("--direction", default="words2digits")
    parser.add_argument("--max-number", type=_args.integer, default=999_999)
    parser.add_argument("--steps", type=_args.integer, default=800)
    parser.add_argument("--eval-every", type=_args.integer, default=200)
    parser.add_argument("--attention", nargs="+", default=["none", "general"])
    parser.add_argument("--bin", type=_args.positive_int, default=10,
                        help="input-length bin width (chars)")  # fmt: skip
    parser.add_argument("--png", type=_args.new_file, default=None, help="write the plot here")
    args = parser.parse_args()
    check(parser, args)
    torch.set_num_threads(1)

    results = {}
    for kind in args.attention:
        out = run_of(args, kind)
        if not _scored(out):
            options = NumbersOptions(
                lang=args.lang,
                direction=args.direction,
                max_number=args.max_number,
                attention=kind,
            )
            # The task's defaults (Adam-like AdamW without decay, cosine decay to 5 %,
            # clipping at 1, one thread) with this budget: a TrainConfig.
            config = NumbersTask.default_train(steps=args.steps, eval_every=args.eval_every)
            t0 = time.perf_counter()
            _args.stop_if_signalled(train("numbers", options, config, out=out))
            print(f"trained {out} in {time.perf_counter() - t0:.0f}s")
        run = load_run(out)
        results[kind] = evaluate(run, "test")
        r = results[kind]
        print(f"{kind}: exact {r.exact:.2%}, CER {r.cer:.2%} on {len(r.examples)} test numbers")

    lengths = [len(e.source) for e in next(iter(results.values())).examples]
    bins = bins_of(lengths, args.bin)
    header = "| input length (chars) | test numbers | " + " | ".join(
        f"exact match, attention={k}" for k in results
    )
    print()
    print(header + " |")
    print("|---" * (2 + len(results)) + "|")
    curves: dict[str, list[float]] = {k: [] for k in results}
    centers, counts = [], []
    for lo, hi in bins:
        cells = []
        n = 0
        for kind, r in results.items():
            sel = [e for e in r.examples if lo <= len(e.source) <= hi]
            n = len(sel)
            acc = sum(e.output == e.target for e in sel) / n if n else float("nan")
            curves[kind].append(acc)
            cells.append(f"{acc:.1%}" if n else "-")
        if n:
            centers.append((lo + hi) / 2)
            counts.append(n)
            print(f"| {lo}-{hi} | {n} | " + " | ".join(cells) + " |")
    total = " | ".join(f"**{r.exact:.1%}**" for r in results.values())
    print(f"| all | {len(lengths)} | {total} |")

    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.2, 3.2), dpi=100)
        styles = [("o", "-"), ("s", "--"), ("^", ":"), ("D", "-.")]
        for (kind, accs), (marker, line) in zip(curves.items(), styles, strict=False):
            ys = [100 * a for a in accs if a == a]  # drop empty bins (NaN)
            label = "no attention (fixed vector)" if kind == "none" else f"attention: {kind}"
            ax.plot(centers, ys, marker=marker, linestyle=line, label=label)
        ax.set_xlabel("input length (characters)")
        ax.set_ylabel("exact match on held-out numbers (%)")
        ax.set_title(f"{args.lang} {args.direction}, {args.steps} steps each", fontsize=9)
        ax.set_ylim(0, 102)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        _args.write_file(parser, "--png", args.png, _args.figure_bytes(fig, args.png),
                         args.overwrite)  # fmt: skip
        print(f"plot written to {args.png}")


if __name__ == "__main__":
    main()
