"""Using a trained numbers run: translate texts, score the test split, plot attention.

Inputs are checked before the model sees them, so that a question the model cannot
answer gives a clear error rather than a confident wrong answer: empty inputs,
characters outside the training vocabulary, inputs longer than any of the trained range,
numbers outside the trained range (digits), and outputs that never reach end-of-sequence
are all refused with a one-line message.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from rnnkit import _checks
from rnnkit.seq2seq.data import normalise, pad_sources
from rnnkit.seq2seq.decode import Decoded, beam_search, greedy, sample
from rnnkit.train.files import write_figure

if TYPE_CHECKING:
    from rnnkit.seq2seq.run import NumbersRun


@dataclass
class Translation:
    source: str  # the normalised input the model read
    output: str
    score: float  # log-probability (beam: divided by the length penalty)
    attention: Tensor | None  # (len(output) + 1, len(source)): rows are output chars + EOS


def prepare_source(run: NumbersRun, text: str) -> str:
    """The normalised input, or a ValueError saying why the model cannot read it."""
    if run.task.direction == "digits2words":
        source = "".join(text.replace(",", "").replace("_", "").split())
    else:
        source = normalise(text)
    if not source:
        raise ValueError("empty input: expected a number in " + _what_input(run))
    unknown = run.src_vocab.unknown(source)
    if unknown:
        shown = ", ".join(repr(c) for c in unknown)
        raise ValueError(
            f"input {text!r} has characters outside the vocabulary: {shown}; expected "
            + _what_input(run)
        )
    if run.task.direction == "digits2words" and source.isdigit():
        t = run.task
        if str(int(source)) != source or not t.min_number <= int(source) <= t.max_number:
            raise ValueError(
                f"input {text!r} is not a number of the trained range {t.min_number}.."
                f"{t.max_number} written without leading zeros"
            )
    if len(source) > run.max_source_length:
        raise ValueError(
            f"input is {len(source)} characters long; the longest input of the trained "
            f"range {run.task.min_number}..{run.task.max_number} has {run.max_source_length}"
        )
    return source


def _what_input(run: NumbersRun) -> str:
    t = run.task
    kind = "digits" if t.direction == "digits2words" else f"{t.lang} words"
    return f"{kind} for {t.min_number}..{t.max_number}"


def decode_sources(
    run: NumbersRun,
    sources: Sequence[str],
    *,
    beam: int = 1,
    alpha: float = 0.0,
    temperature: float | None = None,
    generator: torch.Generator | None = None,
) -> list[Decoded]:
    """Decode already-checked sources in one batch: greedy, beam or sampling."""
    # translate and evaluate both come here: a negative exponent favoured long outputs.
    if not (
        isinstance(alpha, Real)
        and not isinstance(alpha, bool)
        and math.isfinite(alpha)
        and alpha >= 0
    ):
        raise ValueError(f"alpha must be a finite number >= 0 (a length penalty); got {alpha!r}")
    src, lengths = pad_sources([run.src_vocab.encode(s) for s in sources])
    src = src.to(next(run.model.parameters()).device)
    max_len = 2 * run.max_target_length + 8
    if temperature is not None:
        return sample(run.model, src, lengths, max_len, temperature, generator)
    if beam > 1:
        return beam_search(run.model, src, lengths, max_len, beam, alpha)
    return greedy(run.model, src, lengths, max_len)


def _check_beam(where: str, beam: object) -> None:
    """Refuse a beam width that is not an integer >= 1. True (== 1) decoded greedily and
    0 did too, unannounced: only a width above 1 searches."""
    if isinstance(beam, bool) or not isinstance(beam, int):
        raise TypeError(f"{where}: beam must be an integer >= 1; got {beam!r}")
    if beam < 1:
        raise ValueError(f"{where}: beam must be >= 1; got {beam}")


def translate(
    run: NumbersRun,
    texts: Sequence[str],
    *,
    beam: int = 1,
    alpha: float = 0.0,
    temperature: float | None = None,
    seed: int | None = None,
) -> list[Translation]:
    """Translate each text; a ValueError names the first input the model cannot read."""
    if isinstance(texts, str):  # would be read as one input per character
        raise TypeError(
            f"translate: texts must be a list of str, one per input; got the str {texts!r}"
        )
    # None said "empty input", a number "'int' object has no attribute 'lower'".
    if not isinstance(texts, Sequence):
        raise TypeError(
            f"translate: texts must be a list of str, one per input; got {type(texts).__name__}"
        )
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(
                "translate: texts must be a list of str, one per input; got "
                f"{type(text).__name__} {text!r} at index {index}"
            )
    _check_beam("translate", beam)
    if temperature is not None and beam > 1:
        raise ValueError(
            "translate: sampling (a temperature) and beam search exclude each other; expected "
            f"temperature None or beam 1; got temperature {temperature!r} and beam {beam}"
        )
    # A float seed ended in torch's "manual_seed expected a long, but got float".
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, Integral)):
        raise TypeError(f"translate: seed must be an integer or None; got {seed!r}")
    if not texts:
        raise ValueError("empty input: no text to translate")
    sources = [prepare_source(run, t) for t in texts]
    generator = None if seed is None else torch.Generator().manual_seed(int(seed))
    decoded = decode_sources(
        run, sources, beam=beam, alpha=alpha, temperature=temperature, generator=generator
    )
    out = []
    for text, source, d in zip(texts, sources, decoded, strict=True):
        if not d.finished:
            raise ValueError(
                f"no end of output for {text!r} within {2 * run.max_target_length + 8} "
                "characters; the model cannot translate it"
            )
        out.append(Translation(source, run.tgt_vocab.decode(d.tokens), d.score, d.attention))
    return out


# ---- scoring --------------------------------------------------------------------------


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


@dataclass
class Example:
    number: int
    source: str
    target: str
    output: str


@dataclass
class EvalResult:
    split: str
    examples: list[Example]

    @property
    def exact(self) -> float:
        """Share of outputs equal to the target."""
        return sum(e.output == e.target for e in self.examples) / len(self.examples)

    @property
    def cer(self) -> float:
        """Character error rate: total edit distance over total target characters."""
        edits = sum(edit_distance(e.output, e.target) for e in self.examples)
        return edits / sum(len(e.target) for e in self.examples)


def evaluate(
    run: NumbersRun,
    split: str = "test",
    *,
    beam: int = 1,
    alpha: float = 0.0,
    limit: int | None = None,
    batch_size: int = 250,
) -> EvalResult:
    """Decode the fixed ``split`` set of the run's task and score it."""
    # limit 0 scored every number and a negative one all but the last; batch_size 0 was
    # range()'s "arg 3 must not be zero".
    if limit is not None:
        _checks.positive_int("evaluate", "limit", limit)
    _checks.positive_int("evaluate", "batch_size", batch_size)
    _check_beam("evaluate", beam)
    # "train" scored --n-valid training numbers, as if they were held out.
    if split not in ("valid", "test"):
        raise ValueError(
            f"evaluate: split must be 'valid' or 'test' (the held-out numbers); got {split!r}"
        )
    n = run.options.n_test if split == "test" else run.options.n_valid
    numbers = run.task.fixed_set(split, n)[:limit]
    examples = []
    for i in range(0, len(numbers), batch_size):
        chunk = numbers[i : i + batch_size]
        pairs = [run.task.pair(k) for k in chunk]
        decoded = decode_sources(run, [s for s, _ in pairs], beam=beam, alpha=alpha)
        for k, (s, t), d in zip(chunk, pairs, decoded, strict=True):
            examples.append(Example(k, s, t, run.tgt_vocab.decode(d.tokens)))
    return EvalResult(split, examples)


# ---- attention heat map ---------------------------------------------------------------


def plot_attention(translation: Translation, path: str | Path, title: str = "") -> None:
    """Write the attention weights as a heat map PNG (the longer of input and output across)."""
    if translation.attention is None:
        raise ValueError(
            "plot_attention: translation has no attention weights to plot; expected one by a "
            "model with attention; got one by a model with attention='none'"
        )
    if Path(path).is_dir():  # the atomic write's rename said "[Errno 21] Is a directory"
        raise ValueError(f"plot_attention: path must be a file name; got the folder {path}")
    # matplotlib's object API on an Agg canvas: no pyplot, no matplotlib.use, so the
    # backend and open figures of a notebook or application are left alone.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    weights = translation.attention.numpy()  # (len(output) + 1, len(source))
    outputs = [*translation.output, "<eos>"]
    inputs = [c if c != " " else "␣" for c in translation.source]
    # The longer sequence goes across, so that the picture stays wide and readable.
    across, down, names = inputs, outputs, ("input", "output")
    if len(outputs) > len(inputs):
        weights, across, down, names = weights.T, outputs, inputs, ("output", "input")
    width = max(4.0, 0.16 * len(across) + 1.6)
    fig = Figure(figsize=(width, 0.22 * len(down) + 1.3), dpi=80)
    FigureCanvasAgg(fig)  # attaches itself to fig
    ax = fig.add_subplot()
    ax.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(across)), [c if c != " " else "␣" for c in across], fontsize=7)
    ax.set_yticks(range(len(down)), down, fontsize=7)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    if title:
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    # The format follows the file's extension; written atomically (a link is replaced).
    path = Path(path)
    write_figure(fig, path, path.suffix.lstrip(".").lower() or "png")
