"""Character tagging of Python source: bidirectional vs unidirectional, in one run.

Every character of the standard library's held-out TEST files (split by file, as
`rnnkit train tag` splits them) is tagged NAME, KEYWORD, OP, NUMBER, STRING, COMMENT,
NEWLINE or WHITESPACE (:mod:`rnnkit.data.tagging`). Compared on that one split:

- rnnkit bidirectional LSTM (1 layer, H = 64 per direction), trained with
  `rnnkit.train.train("tag", ...)`, the trainer of `rnnkit train tag`;
- the same LSTM left to right only (H = 64: the same layer, half its recurrent weights),
  the same steps, batches and seed;
- a unidirectional LSTM with as many parameters as the bidirectional one (H = 96);
- the per-character prior: each character's most frequent tag in the training files;
- scikit-learn: ``SGDClassifier(loss="log_loss")`` on a window of +-K = 16 characters
  around each character (one-hot characters, and character pairs and triples, at each
  offset, hashed into 2^20 features), fitted on a seeded sample of the training files
  (about 1 M characters: the whole 11 M would take it over 10 minutes on one thread).

It prints markdown tables: character accuracy on the test files and seconds of training;
per-tag accuracy of uni- vs bidirectional; accuracy by position inside a run of one tag
(the first characters of a token are the ones whose tag the future decides); the words
and string prefixes the unidirectional model gets wrong most. With ``--img DIR`` it
writes ``tag-uni-vs-bi.png`` (per-tag error rates) and ``tag-tagged.png`` (a test snippet
coloured by the bidirectional model's tags).

    python benchmarks/tag.py --img docs/img --overwrite   # ~10 minutes on one CPU thread
    python benchmarks/tag.py --quick                 # a smoke run (about a minute)
"""

from __future__ import annotations

import argparse
import io
import itertools
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

import rnnkit
from rnnkit.data import tagging
from rnnkit.data.vocab import Vocabulary
from rnnkit.tasks.tag import (
    FIGURE_COLOURS,
    Encoded,
    draw_tagged,
    encode,
    predict,
    prior_table,
)
from rnnkit.train import TrainConfig, train
from rnnkit.train.files import write_figure

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _args
from _timing import machine

HASH_FEATURES = 1 << 20
# The widest window of the sklearn classifier, +-K characters: its 2K + 1 one-hot offsets
# (and the 2K pairs, 2K - 1 triples) are salted with n * 100 + offset before hashing
# (window_features), distinct while every offset is below 100: at K = 50 a character at
# offset 100 would hash as the pair at offset 0 that starts outside the file. A row holds
# 6K hashed features: some 7 KB of memory per character at K = 49 while they are built,
# 7 GB for the default 1 M training characters.
K_MAX = 49
FIGURES = ("tag-uni-vs-bi.png", "tag-tagged.png")  # what --img DIR receives


def main() -> None:
    p = _args.parser(__doc__.split("\n\n")[0])
    # --steps and --sk-chars are left None when not given: --quick sets both, and a value
    # given with it would be silently replaced.
    p.add_argument("--steps", type=_args.int_in(1, 10**9),  # rnnkit's --steps
                   help="optimiser steps per rnnkit model (default: 3000)")  # fmt: skip
    p.add_argument("--hidden", type=_args.int_in(1, 65536), default=64,
                   help="H per direction of the LSTMs")  # fmt: skip
    p.add_argument("--k", type=_args.int_in(0, K_MAX), default=16,
                   help=f"sklearn's window: +-K characters, K <= {K_MAX}")  # fmt: skip
    p.add_argument("--sk-chars", type=_args.positive_int,
                   help="sklearn's training sample (default: 1000000)")  # fmt: skip
    p.add_argument("--seed", type=_args.seed, default=0)
    p.add_argument("--img", type=_args.folder,
                   help=f"folder for {' and '.join(FIGURES)}")  # fmt: skip
    p.add_argument("--overwrite", action="store_true",
                   help="replace the figures in --img's folder (else refused)")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="30 steps, 50 k sklearn characters")
    args = p.parse_args()
    if args.img is not None:  # checked before ten minutes of work
        _args.writable(p, "--img", args.img)
        if not args.overwrite:
            _refuse_held_figures(p, Path(args.img))
    if args.quick:
        _args.no_effect(p, "with --quick", {"--steps": args.steps, "--sk-chars": args.sk_chars})
        args.steps, args.sk_chars = 30, 50_000
    args.steps = args.steps or 3000
    args.sk_chars = args.sk_chars or 1_000_000
    args.img = None if args.img is None else Path(args.img)
    torch.set_num_threads(1)
    began = time.perf_counter()
    print(f"machine: {machine()}; python {sys.version.split()[0]}")

    data = tagging.load_stdlib()
    print(data.describe())
    vocab = Vocabulary.from_text([str(d.x) for d in data.train])
    train_enc = encode(data.train, vocab)
    test = encode(data.test, vocab)
    truth = test.y.long()
    tags = data.tags
    results: dict[str, dict[str, Any]] = {}

    prior = prior_table(train_enc, len(vocab), len(tags))
    results["per-character prior"] = {"pred": prior[test.x.long()], "seconds": 0.0, "params": ""}

    # ---- rnnkit: the same trainer as `rnnkit train tag`, three models ----------------
    matched = matched_hidden(args.hidden, len(vocab))
    runs = [
        ("rnnkit bidirectional LSTM", True, args.hidden),
        ("rnnkit unidirectional LSTM", False, args.hidden),
        ("rnnkit unidirectional LSTM, same parameters", False, matched),
    ]
    models = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, bi, hidden in runs:
            options = {"bidirectional": bi, "hidden_size": hidden}
            config = TrainConfig(
                steps=args.steps, eval_every=max(args.steps // 4, 1), seed=args.seed, threads=1
            )
            start = time.perf_counter()
            out = Path(tmp) / name.replace(" ", "_")
            _args.stop_if_signalled(train("tag", options, config, out=out, log=lambda _: None,
                                          progress=io.StringIO()), saved=False)  # fmt: skip
            seconds = time.perf_counter() - start
            model = rnnkit.load(out)
            pred, _, _ = predict(model, test, 256, 128)  # the task's default windows
            n = sum(p.numel() for p in model.parameters())
            results[f"{name} (H = {hidden})"] = {"pred": pred, "seconds": seconds, "params": n}
            models[name] = model
            print(f"  {name} H = {hidden}: {accuracy(pred, truth):.4%} ({seconds:.0f} s)",
                  flush=True)  # fmt: skip

    # ---- scikit-learn ------------------------------------------------------------------
    sk_pred, sk_seconds, sk_chars = sklearn_window(data, vocab, args.k, args.sk_chars, args.seed)
    results[f"sklearn SGDClassifier, window +-{args.k} ({sk_chars / 1e6:.1f} M chars)"] = {
        "pred": sk_pred,
        "seconds": sk_seconds,
        "params": "",
    }

    # ---- tables ------------------------------------------------------------------------
    print()
    print(f"## Character accuracy on the {len(data.test)} held-out test files "
          f"({len(truth):,} characters)\n")  # fmt: skip
    print("| method | parameters | test accuracy | train seconds |")
    print("|---|---:|---:|---:|")
    for name, r in results.items():
        params = f"{r['params']:,}" if r["params"] else ""
        secs = f"{r['seconds']:.0f}" if r["seconds"] else "0"
        print(f"| {name} | {params} | {accuracy(r['pred'], truth):.2%} | {secs} |")
    print(f"\nrnnkit models: {args.steps} steps of 32 windows x 256 characters, seed "
          f"{args.seed}; train seconds: the whole `train()` call (data encoding, "
          f"4 validation passes, training); sklearn: fit only.")  # fmt: skip

    bi_name = f"rnnkit bidirectional LSTM (H = {args.hidden})"
    uni_name = f"rnnkit unidirectional LSTM (H = {args.hidden})"
    uni_m_name = f"rnnkit unidirectional LSTM, same parameters (H = {matched})"
    bi, uni, uni_m = (results[k]["pred"] for k in (bi_name, uni_name, uni_m_name))
    base = results["per-character prior"]["pred"]
    print("\n## Per-tag accuracy: unidirectional vs bidirectional\n")
    print(f"| tag | characters | prior | uni H={args.hidden} | uni H={matched} | "
          f"bi H={args.hidden} | errors uni / bi |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    per_tag = {}
    for k, tag in enumerate(tags):
        here = truth == k
        if not here.any():
            continue
        row = [accuracy(m[here], truth[here]) for m in (base, uni, uni_m, bi)]
        per_tag[tag] = row
        ratio = (1 - row[1]) / max(1 - row[3], 1e-9)
        print(f"| {tag} | {int(here.sum()):,} | {row[0]:.2%} | {row[1]:.2%} | {row[2]:.2%} | "
              f"{row[3]:.2%} | {ratio:.1f}x |")  # fmt: skip

    position = run_position(test)
    print("\n## Accuracy by position inside a run of one tag (a token, roughly)\n")
    print(f"| position | characters | uni H={args.hidden} | uni H={matched} | "
          f"bi H={args.hidden} |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    for label, sel in (
        ("1st character", position == 0),
        ("2nd character", position == 1),
        ("3rd character", position == 2),
        ("4th and later", position >= 3),
    ):
        cells = " | ".join(f"{accuracy(m[sel], truth[sel]):.2%}" for m in (uni, uni_m, bi))
        print(f"| {label} | {int(sel.sum()):,} | {cells} |")

    text = "".join(str(d.x) for d in data.test)
    print("\n## Names, keywords, numbers, operators the unidirectional model errs on most\n")
    print(f"| run of one tag | true tag | uni H={args.hidden} wrong | "
          f"bi H={args.hidden} wrong |")  # fmt: skip
    print("|---|---|---:|---:|")
    for (word, tag), n_uni, n_bi in worst_runs(text, test, uni, bi, tags):
        print(f"| `{word}` | {tag} | {n_uni} | {n_bi} |")
    prefix = string_prefixes(text, test, tags)
    if prefix.any():
        print(f"\nfirst character of a prefixed string (`f\"`, `r'`, `b\"`, ...; "
              f"{int(prefix.sum()):,} characters): uni {accuracy(uni[prefix], truth[prefix]):.2%}, "
              f"bi {accuracy(bi[prefix], truth[prefix]):.2%}")  # fmt: skip

    if args.img is not None:
        args.img.mkdir(parents=True, exist_ok=True)
        per_tag_png, tagged_png = (args.img / n for n in FIGURES)
        plot_per_tag(per_tag, args.hidden, matched, per_tag_png)
        model = models["rnnkit bidirectional LSTM"]
        title = f"bidirectional LSTM H = {args.hidden}, {args.steps} steps"
        draw_tagged(data.test, test, bi, truth, tags, tagged_png, title)
        print(f"\nfigures: {per_tag_png}, {tagged_png}")
        del model
    print(f"\nwhole benchmark: {time.perf_counter() - began:.0f} s")


def _refuse_held_figures(p: argparse.ArgumentParser, folder: Path) -> None:
    held = [n for n in FIGURES if (folder / n).exists() or (folder / n).is_symlink()]
    if held:
        _args.refuse(
            p,
            "--img",
            f"expected a folder without {' or '.join(FIGURES)}; got {folder}, which holds "
            f"{' and '.join(held)} (--overwrite replaces them)",
        )


def accuracy(pred: torch.Tensor, truth: torch.Tensor) -> float:
    # A count over a count in float64, as rnnkit.tasks.tag.accuracy: a float32 mean kept 7 digits.
    return int((pred == truth).sum()) / len(truth) if len(truth) else float("nan")


def matched_hidden(hidden: int, vocab_size: int, embed: int = 32, tags: int = 8) -> int:
    """The H of a unidirectional LSTM with about the parameters of a bidirectional one."""

    def params(h: int, directions: int) -> int:
        lstm = directions * (4 * h * (embed + h) + 8 * h)
        return vocab_size * embed + lstm + directions * h * tags + tags

    goal = params(hidden, 2)
    return min(range(hidden, 4 * hidden), key=lambda h: abs(params(h, 1) - goal))


def run_position(data: Encoded) -> torch.Tensor:
    """Each step's position inside its run of one tag (0: the run's first character);
    runs restart at each document."""
    y = data.y.long()
    start = torch.ones_like(y, dtype=torch.bool)
    start[1:] = y[1:] != y[:-1]
    start[data.bounds[:-1]] = True
    idx = torch.arange(len(y))
    last_start = torch.where(start, idx, torch.zeros_like(idx)).cummax(0).values
    return idx - last_start


def worst_runs(
    text: str, data: Encoded, uni: torch.Tensor, bi: torch.Tensor, tags: list[str], top: int = 12
) -> list[tuple[tuple[str, str], int, int]]:
    """The short runs of one tag (up to 12 characters: names, keywords, numbers,
    operators), by text and tag, with the most characters the unidirectional model gets
    wrong, with the bidirectional model's count."""
    y = data.y.long()
    pos = run_position(data)
    starts = [*(pos == 0).nonzero().squeeze(1).tolist(), len(y)]
    wrong_uni = (uni != y).numpy()
    wrong_bi = (bi != y).numpy()
    n_uni: Counter[tuple[str, str]] = Counter()
    n_bi: Counter[tuple[str, str]] = Counter()
    for a, b in itertools.pairwise(starts):
        tag = tags[int(y[a])]
        if b - a > 12 or tag not in ("NAME", "KEYWORD", "NUMBER", "OP"):
            continue
        u = int(wrong_uni[a:b].sum())
        v = int(wrong_bi[a:b].sum())
        if u or v:
            key = (text[a:b].replace("|", "\\|"), tag)
            n_uni[key] += u
            n_bi[key] += v
    return [(key, n, n_bi[key]) for key, n in n_uni.most_common(top)]


def string_prefixes(text: str, data: Encoded, tags: list[str]) -> torch.Tensor:
    """The first character of every STRING run that starts with a letter (a prefix)."""
    y = data.y.long()
    pos = run_position(data)
    first = (pos == 0) & (y == tags.index("STRING"))
    letters = torch.tensor([c.isalpha() for c in text])
    return first & letters


def sklearn_window(
    data: tagging.TaggedData, vocab: Vocabulary, k: int, chars: int, seed: int
) -> tuple[torch.Tensor, float, int]:
    """A linear classifier on hashed character n-grams (n = 1, 2, 3) at each offset of a
    +-k window, fitted on a seeded sample of training files of about ``chars``."""
    from sklearn.linear_model import SGDClassifier

    order = np.random.default_rng(seed).permutation(len(data.train))
    sample, n = [], 0
    for i in order:
        if n >= chars:
            break
        sample.append(data.train[i])
        n += len(data.train[i])
    X, y = window_features(sample, vocab, k)
    start = time.perf_counter()
    clf = SGDClassifier(loss="log_loss", alpha=1e-6, max_iter=5, tol=None, random_state=seed)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter=5 on purpose: "did not converge"
        clf.fit(X, y)
    seconds = time.perf_counter() - start
    Xt, _ = window_features(data.test, vocab, k)
    return torch.from_numpy(clf.predict(Xt)).long(), seconds, n


def window_features(docs: list[tagging.Document], vocab: Vocabulary, k: int) -> Any:
    import scipy.sparse as sp

    V = len(vocab) + 1  # 0: outside the file
    rows, ys = [], []
    for doc in docs:
        ids = vocab.encode(str(doc.x)).numpy().astype(np.int64) + 1
        pad = np.concatenate([np.zeros(k, np.int64), ids, np.zeros(k, np.int64)])
        cols = []
        for g in (1, 2, 3):
            for o in range(2 * k + 2 - g):
                code = np.zeros(len(ids), np.int64)
                for j in range(g):
                    code = code * V + pad[o + j : o + j + len(ids)]
                cols.append((code * 1_000_003 + (g * 100 + o) * 7919) % HASH_FEATURES)
        rows.append(np.stack(cols, 1))
        ys.append(doc.y)
    idx = np.concatenate(rows)
    width = idx.shape[1]
    X = sp.csr_matrix(
        (np.ones(idx.size, np.float32), idx.ravel(), np.arange(0, idx.size + 1, width)),
        shape=(len(idx), HASH_FEATURES),
    )
    X.sum_duplicates()
    return X, np.concatenate(ys)


def plot_per_tag(per_tag: dict[str, list[float]], hidden: int, matched: int, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    names = list(per_tag)
    x = np.arange(len(names))
    series = [
        (f"unidirectional H={hidden}", 1, "tab:orange"),
        (f"unidirectional H={matched} (same parameters)", 2, "tab:red"),
        (f"bidirectional H={hidden}", 3, "tab:blue"),
    ]
    for j, (label, col, colour) in enumerate(series):
        err = [100 * (1 - per_tag[n][col]) for n in names]
        ax.bar(x + (j - 1) * 0.27, err, 0.27, label=label, color=colour)
    ax.set_yscale("log")
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylabel("test characters wrong (%)")
    ax.set_title("Which tags need the future: per-tag error, left-to-right vs both ways",
                 fontsize=10)  # fmt: skip
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    write_figure(fig, path, colours=FIGURE_COLOURS)  # as the task's tagged.png


if __name__ == "__main__":
    main()
