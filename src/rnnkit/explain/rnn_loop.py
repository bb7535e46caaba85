"""An RNN reads a sentence one word at a time (chapter 10.4).

The chapter's implementation: "loop through all individual words in the sentence. Inside
the loop, each word is fed into the RNN model along with the previous hidden state ...
the prediction for the final word is the RNN's output after all the prior words have been
fed in through the model". That loop is the recurrence (10.1), h^t = f(x^t, h^{t-1}), with
x^t the embedding of word t, and a read-out y^t = softmax(W_hy h^t + b) over the
vocabulary, the probability of each next word (10.2).

The experiment trains a word-level language model (embedding, one recurrent layer, a
linear head; Mikolov et al. 2010) on the docstrings of the Python standard library, then
feeds one sentence through a standalone cell that holds the trained layer's weights, in an
explicit Python loop, one word per iteration, and prints what the model predicts after
each word. It checks that the loop computes what the layer computes over the whole
sentence at once (torch's fused kernel where it applies).
"""

from __future__ import annotations

import ast
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, cast

import torch
from torch import Tensor, nn

import rnnkit
from rnnkit.data.corpus import file_split, stdlib_files, stdlib_root
from rnnkit.explain import _memory

# Lowercase words (letters with inner apostrophes: "don't"), numbers, and the sentence
# punctuation . , ; : ! ? as tokens of their own; everything else (quotes, brackets,
# operators, underscores) separates words, so "os.path_join()" reads "os . path join".
WORD = re.compile(r"[a-z]+(?:'[a-z]+)*|[0-9]+|[.,;:!?]")
UNK = "<unk>"
DEFAULT_SENTENCE = "If the file does not exist, raise an"
LAYERS: dict[str, type[rnnkit.RecurrentLayer]] = {
    "rnn": rnnkit.RNN,
    "gru": rnnkit.GRU,
    "lstm": rnnkit.LSTM,
}
CELLS: dict[str, type[rnnkit.RecurrentCell]] = {
    "rnn": rnnkit.RNNCell,
    "gru": rnnkit.GRUCell,
    "lstm": rnnkit.LSTMCell,
}
TOP = 5  # predictions shown per word
GATES = {"rnn": 1, "gru": 3, "lstm": 4}  # G: blocks of H in a layer's gates
# Peak resident memory on the CPU, measured: reading the standard library's docstrings
# (a syntax tree per file, the words) ~250 MiB; the logits, their softmax and gradient
# ~14 B per word of a batch and word of the vocabulary, and the perplexity's windows of
# 64 as many again; the layer ~8 B per word of a batch and unit; the weights with their
# gradients, Adam's moments and the loop's cell ~20 B each. V is the vocabulary asked
# for: an upper bound of the one built (the corpus may hold fewer words).
MEMORY_RULE = (
    "256 MiB + 16 B·T·(B + 64)·V + 16 B·T·B·(E + (G+2)·H) + 24 B·(V + G·H)·(E + H + 2) "
    "within 2 GiB, T = seq_len, G = 1, 3, 4 for rnn, gru, lstm"
)


def memory_estimate(
    cell: str, vocab: int, embed: int, hidden: int, batch: int, seq_len: int
) -> int:
    """Bytes ``run_rnn_loop`` holds at its peak, about."""
    G, V, E, H, B, T = GATES[cell], vocab, embed, hidden, batch, seq_len
    logits = 16 * T * (B + 64) * V
    return 256 * 2**20 + logits + 16 * T * B * (E + (G + 2) * H) + 24 * (V + G * H) * (E + H + 2)


def check_memory(cell: str, sizes: dict[str, int], *, flags: bool = False) -> None:
    """Refuse sizes past the memory bound, before any work. ``sizes`` holds vocab, embed,
    hidden, batch and seq_len in that order, under their API names or (``flags``) their
    flags; the window length is bounded last, at the others given."""
    least = (2, 1, 1, 1, 1)
    order = [(name, v, low) for (name, v), low in zip(sizes.items(), least, strict=True)]
    _memory.check("rnn-loop", order, lambda *v: memory_estimate(cell, *v), MEMORY_RULE, flags=flags)


def _check_int(name: str, value: object, minimum: int, why: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        why = f" {why}" if why else ""
        raise ValueError(f"rnn-loop: {name} must be an integer >= {minimum}{why}; got {value!r}")


def words(text: str) -> list[str]:
    """``text`` lowercased and split by :data:`WORD` into words and sentence punctuation."""
    return WORD.findall(text.lower())


def docstrings(path: Path) -> list[str]:
    """The module, class and function docstrings of one Python file, in source order;
    none for a file that does not parse (or cannot be read as UTF-8)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return []
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    found = [ast.get_docstring(node) for node in ast.walk(tree) if isinstance(node, kinds)]
    return [doc for doc in found if doc]


def docstring_words(
    files: Sequence[Path] | None = None, root: Path | None = None
) -> dict[str, list[str]]:
    """The words of the standard library's docstrings, per split ("train", "validation",
    "test"), each file's docstrings in the split :func:`~rnnkit.data.corpus.file_split`
    gives it (sorted files: the same words in the same order on every run)."""
    if files is None:
        files, root = stdlib_files(), stdlib_root()
    elif root is None:
        raise ValueError("docstring_words: root is needed with files; got root=None")
    split: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
    for path in sorted(files, key=lambda f: f.relative_to(root).as_posix()):
        part = split[file_split(root, path)]
        for doc in docstrings(path):
            part.extend(words(doc))
    return split


@dataclass(frozen=True)
class Vocabulary:
    """Word ↔ index; index 0 is :data:`UNK`, which every word outside the list maps to."""

    itos: tuple[str, ...]

    @classmethod
    def build(cls, train: Sequence[str], size: int) -> Vocabulary:
        """:data:`UNK` and the ``size - 1`` most frequent words of ``train``; among equally
        frequent words the alphabetically first wins, so the list is deterministic."""
        _check_int("vocab", size, 2, "(<unk> and one word)")
        counts = Counter(w for w in train if w != UNK)
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return cls((UNK, *(w for w, _ in ranked[: size - 1])))

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text_words: Sequence[str]) -> list[int]:
        index = {w: i for i, w in enumerate(self.itos)}
        return [index.get(w, 0) for w in text_words]


class WordRNN(nn.Module):
    """Embedding → one recurrent layer → linear head over the vocabulary."""

    def __init__(self, cell: str, vocab: int, embed: int, hidden: int) -> None:
        super().__init__()
        self.cell = cell
        self.embed = nn.Embedding(vocab, embed)
        self.rnn = LAYERS[cell](embed, hidden)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens: Tensor) -> Tensor:
        """Next-word logits (T, B, V) for word indices (T, B), from the zero state."""
        out, _ = self.rnn(self.embed(tokens))
        return self.head(out)


class _CellOptions(TypedDict, total=False):
    """What :func:`standalone_cell` passes on besides the sizes: the RNN's nonlinearity."""

    nonlinearity: str


def standalone_cell(model: WordRNN) -> rnnkit.RecurrentCell:
    """A one-step cell (``rnnkit.RNNCell``, ...) holding the trained layer's weights.

    The layer stores them as ``weight_ih_l0``, ...; the cell's names drop the ``_l0``.
    """
    layer = model.rnn
    options: _CellOptions = (
        {"nonlinearity": cast(rnnkit.RNN, layer).nonlinearity} if model.cell == "rnn" else {}
    )
    cell = CELLS[model.cell](layer.input_size, layer.hidden_size, **options)
    w = layer.weight_ih_l0
    cell.load_state_dict(layer.cell_parameters(0, 0))
    return cell.to(device=w.device, dtype=w.dtype)


@torch.no_grad()
def feed_word_by_word(model: WordRNN, tokens: Sequence[int]) -> tuple[Tensor, Tensor]:
    """The chapter's loop: each word in turn goes into the cell with the previous state.

    Returns the hidden states h^1..h^T (T, H) and the next-word probabilities after each
    word (T, V); the last row is the prediction after the whole sentence.
    """
    cell = standalone_cell(model)
    device = model.head.weight.device
    state = None  # h^0 = 0 (and c^0 = 0 for the LSTM)
    hidden = []
    for index in tokens:
        x = model.embed(torch.tensor(index, device=device))  # x^t, shape (E,)
        state = cell(x, state)  # h^t = f(x^t, h^{t-1})  (10.1)
        hidden.append(state[0] if isinstance(state, tuple) else state)  # LSTM: (h, c)
    h = torch.stack(hidden)
    return h, torch.softmax(model.head(h), dim=-1)  # y^t  (10.2)


@torch.no_grad()
def whole_sentence(model: WordRNN, tokens: Sequence[int]) -> Tensor:
    """h^1..h^T (T, H) from one call of the layer on the whole sentence."""
    device = model.head.weight.device
    out, _ = model.rnn(model.embed(torch.tensor(list(tokens), device=device)))  # (T, I) unbatched
    return out


@torch.no_grad()
def perplexity(model: WordRNN, ids: Tensor, seq_len: int, batch: int = 64) -> float:
    """exp of the mean cross-entropy over non-overlapping windows of ``seq_len`` words of
    ``ids``, each read from the zero state (as in training)."""
    inputs, targets = _windows(ids, seq_len)
    device = model.head.weight.device
    total, count = 0.0, 0
    for start in range(0, inputs.size(1), batch):
        x = inputs[:, start : start + batch].to(device)
        y = targets[:, start : start + batch].to(device)
        logits = model(x)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        total += float(loss) * y.numel()
        count += y.numel()
    return math.exp(total / count)


def unigram_perplexity(train: Tensor, ids: Tensor, seq_len: int, vocab: int) -> float:
    """Perplexity of the word frequencies of ``train`` (add-one smoothed) on the same
    predicted words as :func:`perplexity`: the model that ignores the previous words."""
    counts = torch.bincount(train, minlength=vocab).double() + 1.0
    logp = torch.log(counts / counts.sum())
    _, targets = _windows(ids, seq_len)
    return math.exp(-float(logp[targets].mean()))


def _windows(ids: Tensor, seq_len: int) -> tuple[Tensor, Tensor]:
    """Inputs and next-word targets (seq_len, N) of consecutive windows of ``ids``."""
    n = (ids.numel() - 1) // seq_len
    if n < 1:
        raise ValueError(
            f"rnn-loop: seq_len must be shorter than the text; got seq_len={seq_len} for "
            f"{ids.numel()} words"
        )
    x = ids[: n * seq_len].reshape(n, seq_len).t()
    y = ids[1 : n * seq_len + 1].reshape(n, seq_len).t()
    return x, y


@dataclass
class WordStep:
    """What the loop shows after one word."""

    word: str  # as written in the sentence (lowercased)
    token: str  # the word fed in: itself or <unk>
    norm: float  # ‖h^t‖
    change: float  # ‖h^t - h^{t-1}‖: how far this word moved the state
    top: list[tuple[str, float]]  # the TOP most probable next words and their probabilities
    next_word: str | None  # the sentence's next word (as a token), None after the last
    next_p: float | None  # the probability the model gave it


@dataclass
class RnnLoopResult:
    corpus: str  # where the docstrings came from, in words
    cell: str
    vocab: int
    embed: int
    hidden: int
    steps: int
    seq_len: int
    batch: int
    seed: int
    train_words: int
    validation_words: int
    unk_share: float  # of the validation words
    perplexity: float  # validation
    unigram_perplexity: float  # validation
    losses: list[tuple[int, float]]  # (step, training loss)
    trace: list[WordStep]
    states: list[list[float]]  # h^t per word (T, H), from the loop
    loop_vs_layer: float  # max |h^t(loop) - h^t(layer)| over words and units

    def report(self) -> str:
        last_from = self.losses[-2][0] + 1 if len(self.losses) > 1 else 1
        lines = [
            f"word-level language model on {self.corpus}: {self.train_words:,} training "
            f"words, {self.validation_words:,} validation words ({100 * self.unk_share:.1f}% "
            f"<unk>); vocabulary: <unk> and the {self.vocab - 1:,} most frequent training words",
            f"{self.cell.upper()} layer, embedding {self.embed}, hidden {self.hidden}; "
            f"{self.steps} Adam steps of {self.batch} windows x {self.seq_len} words, seed "
            f"{self.seed}",
            f"training loss (cross-entropy per word): {self.losses[0][1]:.3f} over steps "
            f"1-{self.losses[0][0]}, {self.losses[-1][1]:.3f} over steps {last_from}-{self.steps}",
            f"validation perplexity: {self.perplexity:.1f} (unigram word frequencies: "
            f"{self.unigram_perplexity:.1f})",
            "",
            f"the loop, one word per step: h^t = f(x^t, h^(t-1)), starting from h^0 = 0 "
            f"({self.cell.upper()} cell with the layer's weights; ‖Δh‖ = ‖h^t - h^(t-1)‖)",
            f"{'t':>3}  {'word fed in':<20}{'‖h^t‖':>7}{'‖Δh‖':>7}  {'p(next word)':<22}"
            f"top-{TOP} next words",
        ]
        for t, step in enumerate(self.trace, start=1):
            fed = step.token if step.token == step.word else f"{step.word}→{UNK}"
            nxt = "" if step.next_word is None else f"{step.next_word} {step.next_p:.3f}"
            top = "  ".join(f"{w} {p:.3f}" for w, p in step.top)
            lines.append(f"{t:>3}  {fed:<20}{step.norm:>7.3f}{step.change:>7.3f}  {nxt:<22}{top}")
        last = self.trace[-1]
        lines += [
            "",
            f"prediction after the last word ({last.token!r}): {last.top[0][0]!r} "
            f"(p = {last.top[0][1]:.3f})",
            f"loop against the layer on the whole sentence at once: max |h^t(loop) - "
            f"h^t(layer)| = {self.loop_vs_layer:.1e} over {len(self.trace)} words x "
            f"{self.hidden} units",
        ]
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        from rnnkit.explain import plotting

        T = len(self.trace)
        labels = [f"{t}: {s.token}" for t, s in enumerate(self.trace, start=1)]
        with plotting.style():  # the caller's rcParams are restored after
            fig, axes = plotting.figure(1, 3, width=15.0, height=max(5.4, 2.6 + 0.32 * T))
            ax = axes[0, 0]
            limit = max(max(abs(v) for row in self.states for v in row), 1e-6)
            image = ax.imshow(
                self.states, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit,
                interpolation="nearest",
            )  # fmt: skip
            ax.set_yticks(range(T), labels)
            ax.set_xlabel("hidden unit")
            ax.set_title("h^t after each word (one row per loop step)", loc="left")
            fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
            ax = axes[0, 1]
            ax.barh(range(T), [s.norm for s in self.trace], color="tab:red", label="‖h^t‖")
            ax.plot(
                [s.change for s in self.trace], range(T), "o", color="black",
                label="‖h^t - h^(t-1)‖: the change this word made",
            )  # fmt: skip
            # Every unit of h lies in [-1, 1] (tanh, and for the gated cells a gate times a
            # tanh), so √H bounds ‖h^t‖: near it, most units are saturated.
            bound = math.sqrt(self.hidden)
            ax.axvline(bound, color="gray", ls="--", label=f"√H = {bound:.1f}, the largest")
            ax.set_yticks(range(T), labels)
            ax.invert_yaxis()
            ax.set_xlim(0, 1.05 * bound)
            ax.set_xlabel("norm")
            ax.set_title("the state carried to the next word", loc="left")
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.2))
            ax = axes[0, 2]
            top1 = [s.top[0][1] for s in self.trace]
            ax.barh(range(T), top1, color="tab:blue", label="most probable next word")
            for t, s in enumerate(self.trace):
                right = max(top1[t], s.next_p or 0.0)  # the label clear of bar and dot
                ax.text(right + 0.02, t, s.top[0][0], va="center", fontsize=8)
            shown = [(t, s.next_p) for t, s in enumerate(self.trace) if s.next_p is not None]
            if shown:
                ax.plot(
                    [p for _, p in shown], [t for t, _ in shown], "o", color="tab:orange",
                    label="the sentence's actual next word",
                )  # fmt: skip
            ax.set_yticks(range(T), labels)
            ax.invert_yaxis()
            ax.set_xlim(0, 1.15)
            ax.set_xlabel("p(next word | words so far)")
            ax.set_title(
                f"prediction after each word (last row: after the sentence)\nvalidation "
                f"perplexity {self.perplexity:.0f}, unigram {self.unigram_perplexity:.0f}",
                loc="left",
            )
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0.0, -0.2))
            title = (
                "Claim (10.4): each word is fed into the RNN with the previous hidden state; "
                "the prediction after the final word is the RNN's output\n"
                f"{self.cell.upper()} word model (H = {self.hidden}, {self.vocab:,} words) "
                f"trained on {self.corpus}; the loop matches the layer "
                f"to {self.loop_vs_layer:.0e}"
            )
            return plotting.save(fig, path, title)


def run_rnn_loop(
    *,
    sentence: str = DEFAULT_SENTENCE,
    cell: str = "rnn",
    vocab: int = 5000,
    embed: int = 64,
    hidden: int = 128,
    steps: int = 600,
    seq_len: int = 32,
    batch: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    files: Sequence[Path] | None = None,
    root: Path | None = None,
) -> RnnLoopResult:
    """Train the word model, then feed ``sentence`` through the loop one word at a time.

    ``files`` and ``root`` replace the standard library (tests use a few small files).
    """
    if cell not in LAYERS:
        raise ValueError(f"rnn-loop: cell must be one of {sorted(LAYERS)}; got {cell!r}")
    if not isinstance(sentence, str) or not words(sentence):
        raise ValueError(
            "rnn-loop: sentence must hold at least one word (letters, digits or . , ; : ! ?); "
            f"got {sentence!r}"
        )
    _check_int("vocab", vocab, 2, "(<unk> and one word)")
    for name, value in (
        ("embed", embed), ("hidden", hidden), ("steps", steps), ("seq_len", seq_len),
        ("batch", batch),
    ):  # fmt: skip
        _check_int(name, value, 1)
    # torch's Adam said "Invalid learning rate: nan", naming no function.
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr < float("inf"):
        raise ValueError(f"rnn-loop: lr must be a finite number > 0; got {lr!r}")
    sizes = {"vocab": vocab, "embed": embed, "hidden": hidden, "batch": batch,
             "seq_len": seq_len}  # fmt: skip
    check_memory(cell, sizes)

    split = docstring_words(files, root)
    vocabulary = Vocabulary.build(split["train"], vocab)
    V = len(vocabulary)
    train = torch.tensor(vocabulary.encode(split["train"]), dtype=torch.long, device="cpu")
    valid = torch.tensor(vocabulary.encode(split["validation"]), dtype=torch.long, device="cpu")
    if train.numel() <= seq_len or valid.numel() <= seq_len:
        raise ValueError(
            f"rnn-loop: seq_len must be shorter than each split; got seq_len={seq_len} with "
            f"{train.numel()} training and {valid.numel()} validation words"
        )

    torch.manual_seed(seed)
    model = WordRNN(cell, V, embed, hidden)
    device = model.head.weight.device
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator(device="cpu").manual_seed(seed)  # the windows, independent of init
    offsets = torch.arange(seq_len + 1, device="cpu")
    every = max(1, steps // 50)
    losses, recent = [], []
    for step in range(1, steps + 1):
        starts = torch.randint(0, train.numel() - seq_len, (batch,), generator=gen, device="cpu")
        window = train[starts[None, :] + offsets[:, None]].to(device)  # (T+1, B)
        logits = model(window[:-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, V), window[1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        # Clipping keeps the tanh RNN's occasional exploding gradients (10.14) from
        # undoing the training; it rarely acts on the gated layers.
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        recent.append(loss.item())
        if step % every == 0 or step == steps:
            losses.append((step, sum(recent) / len(recent)))
            recent = []
    model.eval()

    sentence_words = words(sentence)
    tokens = vocabulary.encode(sentence_words)
    h, probs = feed_word_by_word(model, tokens)
    layer_h = whole_sentence(model, tokens)
    trace = []
    for t, (word, index) in enumerate(zip(sentence_words, tokens, strict=True)):
        p, idx = probs[t].topk(min(TOP, V))
        nxt = tokens[t + 1] if t + 1 < len(tokens) else None
        trace.append(
            WordStep(
                word=word,
                token=vocabulary.itos[index],
                norm=float(h[t].norm()),
                change=float((h[t] - h[t - 1]).norm() if t else h[t].norm()),  # h^0 = 0
                top=[(vocabulary.itos[i], float(q)) for i, q in zip(idx.tolist(), p, strict=True)],
                next_word=None if nxt is None else vocabulary.itos[nxt],
                next_p=None if nxt is None else float(probs[t, nxt]),
            )
        )
    return RnnLoopResult(
        corpus="the standard library's docstrings"
        if files is None
        else f"the docstrings of {len(files)} files under {root}",
        cell=cell,
        vocab=V,
        embed=embed,
        hidden=hidden,
        steps=steps,
        seq_len=seq_len,
        batch=batch,
        seed=seed,
        train_words=train.numel(),
        validation_words=valid.numel(),
        unk_share=float((valid == 0).double().mean()),
        perplexity=perplexity(model, valid, seq_len),
        unigram_perplexity=unigram_perplexity(train, valid, seq_len, V),
        losses=losses,
        trace=trace,
        states=h.cpu().tolist(),
        loop_vs_layer=float((h - layer_h).abs().max()),
    )
