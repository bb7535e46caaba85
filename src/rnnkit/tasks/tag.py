"""`rnnkit train tag`: a tag for every character, read in both directions (chapter 10.18).

Many-to-many sequence labelling: each step's output may depend on what comes *after*
it. By default every character of the Python standard library's sources is tagged with
its token type (NAME, KEYWORD, OP, NUMBER, STRING, COMMENT, NEWLINE, WHITESPACE; see
:mod:`rnnkit.data.tagging`); whether ``if`` is a keyword or the start of ``iffy``, or
whether ``f`` starts a name or an f-string, is only known from the characters that
follow, which a bidirectional layer reads::

    e^t          = Embed(x^t)                     (B, T, E)   (or the step's features)
    h^t (fwd)    = RNN(e^1..e^t)                  past and present
    g^t (bwd)    = RNN(e^T..e^t)                  present and future
    p(tag^t)     = softmax(W [h^t; g^t] + b)      one prediction per step

Training reads windows of ``--seq-len`` characters cut from the training files (the last
window of a file is shorter: ``lengths=`` keeps the padding out, its labels are -100),
``--batch-size`` of them drawn at random each step from a generator seeded by
``--seed``. Evaluation scores every character once, each in a window with
``--eval-context`` characters of context on either side. ``--data FILE`` reads your own
JSON lines instead (:func:`rnnkit.data.tagging.read_jsonl`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit import _checks, _options
from rnnkit._options import option
from rnnkit.data import tagging
from rnnkit.data.tagging import IGNORE, Document, TaggedData
from rnnkit.data.vocab import Vocabulary
from rnnkit.models._config import config_from_dict
from rnnkit.models.lm import CELLS
from rnnkit.tasks.base import (
    DerivedError,
    SeededBatches,
    Task,
    display_width,
    model_device,
    report_folder,
)
from rnnkit.train import distributed
from rnnkit.train.config import TrainConfig
from rnnkit.train.files import write_figure

EVAL_BATCH = 64  # windows per forward call at evaluation
FIGURE = "tagged.png"
FIGURE_LINES = 16  # lines of source per snippet in the figure
FIGURE_COLUMNS = 88  # characters per line shown (longer lines are cut)
FIGURE_COLOURS = 64  # the figure's PNG palette


# ---- the model ----------------------------------------------------------------------


@dataclass
class TaggerConfig:
    """Everything that rebuilds a :class:`Tagger`."""

    num_tags: int
    vocab_size: int = 0  # characters + 1 unknown class; 0 for feature inputs
    num_features: int = 0  # features per step; 0 for characters
    cell: str = "lstm"
    num_layers: int = 1
    hidden_size: int = 64
    embed_size: int = 32
    bidirectional: bool = True
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.cell, str) or self.cell not in CELLS:  # a list is unhashable
            raise ValueError(f"cell must be one of {', '.join(CELLS)}; got {self.cell!r}")
        for name in ("num_tags", "num_layers", "hidden_size", "embed_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if self.num_tags < 2:  # as rnnkit train tag refuses one-tag data
            raise ValueError(
                f"num_tags must be >= 2 (a tagger chooses among tags); got {self.num_tags}"
            )
        for name in ("vocab_size", "num_features"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer; got {value!r}")
        if not isinstance(self.bidirectional, bool):  # "no" would read as True
            raise TypeError(f"bidirectional must be True or False; got {self.bidirectional!r}")
        if (self.vocab_size > 0) == (self.num_features > 0):
            # Both default to 0, so neither given is the usual slip: say which it was.
            given = "both" if self.vocab_size > 0 else "neither"
            raise ValueError(
                "give one of vocab_size (characters) or num_features (feature vectors); "
                f"got {given}: vocab_size={self.vocab_size}, num_features={self.num_features}"
            )
        d = self.dropout
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 <= d < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1); got {d!r}")
        self.dropout = float(self.dropout)

    @classmethod
    def from_dict(cls, data: object, where: str = "tagger config") -> TaggerConfig:
        return config_from_dict(cls, data, where=where)


class Tagger(nn.Module):
    """Embedding (or the step's features, standardised) -> rnnkit layer -> Linear per step.

    Shape:
        x (B, T) long character ids, or (B, T, F) float features; lengths (B,) or None;
        logits (B, T, K), zero-input past each sequence's end (the padding is ignored by
        the loss through its -100 labels).

    Example:
        >>> model = Tagger(TaggerConfig(num_tags=3, vocab_size=10, hidden_size=8))
        >>> tuple(model(torch.zeros(2, 5, dtype=torch.long), torch.tensor([5, 2])).shape)
        (2, 5, 3)
    """

    # Buffers (register_buffer in __init__): declared so that they read as tensors.
    mean: Tensor
    std: Tensor

    def __init__(self, config: TaggerConfig) -> None:
        super().__init__()
        self.config = c = config
        if c.vocab_size:
            self.embedding: nn.Embedding | None = nn.Embedding(c.vocab_size, c.embed_size)
            size = c.embed_size
        else:
            self.embedding = None
            size = c.num_features
        # Feature inputs are standardised with the training split's statistics, kept here
        # so that a loaded model takes raw features.
        self.register_buffer("mean", torch.zeros(c.num_features))
        self.register_buffer("std", torch.ones(c.num_features))
        self.drop = nn.Dropout(c.dropout)
        self.rnn = CELLS[c.cell](
            size,
            c.hidden_size,
            c.num_layers,
            batch_first=True,
            bidirectional=c.bidirectional,
            dropout=c.dropout if c.num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(c.hidden_size * (2 if c.bidirectional else 1), c.num_tags)

    def forward(self, x: Tensor, lengths: Tensor | list[int] | None = None) -> Tensor:
        c = self.config
        ids = "(B, T) long character ids"
        shape = ids if c.vocab_size else f"(B, T, {c.num_features}) features"
        x = _checks.tensor_input("Tagger", "x", x, shape)
        if self.embedding is not None and (x.dim() != 2 or x.dtype != torch.long):
            raise ValueError(f"Tagger: x must be {shape}; got {x.dtype} {tuple(x.shape)}")
        if self.embedding is None and (x.dim() != 3 or x.size(-1) != c.num_features):
            raise ValueError(f"Tagger: x must be {shape}; got {tuple(x.shape)}")
        if lengths is not None:
            # Checked here: the rows-by-length path below would otherwise take a length
            # past T, a negative one or a missing row without a word.
            lengths = _checks.lengths("Tagger", lengths, x.size(1), x.size(0))
        if self.embedding is not None:
            check_ids(x, c.vocab_size)
            e = self.embedding(x)
        else:
            full = torch.full((len(x),), x.size(1), dtype=torch.long)
            _checks.finite_steps("Tagger", "x", x, full if lengths is None else lengths)
            e = (x.float() - self.mean) / self.std
        if x.size(1) == 0:  # no characters, no tags (the layer refuses T = 0 without lengths)
            return e.new_zeros((len(x), 0, c.num_tags), dtype=self.head.weight.dtype)
        e = self.drop(e)
        if lengths is None or e.device.type != "cpu":
            out, _ = self.rnn(e, lengths=lengths)  # (B, T, D*H)
        else:
            out = self._by_length(e, lengths)
        return self.head(self.drop(out))  # (B, T, K)

    def _by_length(self, e: Tensor, lengths: Tensor) -> Tensor:
        """The layer's ``lengths=`` result, computed group by group: rows of one length
        run together over exactly that many steps, with no padding. On the CPU, torch's
        kernel on packed sequences (what ``lengths=`` runs) is ~10x slower than on
        unpadded ones, and a batch of windows holds few distinct lengths."""
        T = e.size(1)
        if bool((lengths == T).all()):
            return self.rnn(e)[0]
        out: Tensor | None = None
        for n in lengths.unique().tolist():
            rows = (lengths == n).nonzero().squeeze(1)
            if n > 0:
                part = self.rnn(e[rows, :n])[0]
                if out is None:  # in the layer's dtype: under autocast it is not e's
                    out = part.new_zeros(e.size(0), T, self.head.in_features)
                out[rows, :n] = part.to(out.dtype)
        return out if out is not None else e.new_zeros(e.size(0), T, self.head.in_features)


def check_ids(x: Tensor, vocab_size: int) -> None:
    """Refuse a character id outside the embedding (torch's message names no argument)."""
    if torch.compiler.is_compiling() or x.numel() == 0:
        return
    low, high = int(x.min()), int(x.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(
            f"Tagger: x must hold character ids in [0, {vocab_size}) (vocab_size = "
            f"{vocab_size}); got min {low}, max {high}"
        )


def tag_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy per labelled step of ``logits`` (B, T, K) against ``target`` (B, T);
    steps labelled -100 (padding) are left out. The loss to give :func:`rnnkit.fit`."""
    logits = _checks.tensor_input("tag_loss", "logits", logits, "(B, T, K)")
    target = _checks.tensor_input("tag_loss", "target", target, "(B, T) of tag ids")
    if logits.dim() != 3 or tuple(target.shape) != tuple(logits.shape[:2]):
        raise ValueError(
            f"tag_loss: target must be (B, T) = {tuple(logits.shape[:2])} tag ids, one per "
            f"step of logits (B, T, K); got target {tuple(target.shape)}, logits "
            f"{tuple(logits.shape)}"
        )
    # bool and complex too: torch's cross-entropy refuses them naming no argument.
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise TypeError(f"tag_loss: target must hold integer tag ids; got {target.dtype}")
    K, labelled = logits.size(-1), target[target != IGNORE]
    if labelled.numel() and not torch.compiler.is_compiling():
        low, high = int(labelled.min()), int(labelled.max())
        if low < 0 or high >= K:
            raise ValueError(
                f"tag_loss: target must hold tag ids in [0, {K}) (K = logits.size(-1)), or "
                f"{IGNORE} for padding; got min {low}, max {high}"
            )
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(), target.reshape(-1), ignore_index=IGNORE
    )


# ---- options ------------------------------------------------------------------------


@dataclass
class TagOptions:
    """The tagging task's data and model options."""

    data: str | None = option(
        None,
        'a JSON-lines file, one {"x": "text" or [[features], ...], "y": ["TAG", ...]} a line '
        "(default: the Python standard library, every character tagged by tokenize)",
        metavar="FILE",
    )
    test_data: str | None = option(
        None,
        "a JSON-lines file to test on (default: 10% of --data's lines)",
        metavar="FILE",
    )
    split_seed: int = option(
        0,
        "which lines of --data validate and test (a checksum of seed and line number)",
        low=0,
        high=2**63 - 1,
    )
    cell: str = option("lstm", "recurrent cell", choices=tuple(CELLS))
    num_layers: int = option(1, "stacked recurrent layers", flag="--layers", low=1, high=64)
    hidden_size: int = option(
        64, "hidden units per layer and direction H", flag="--hidden", low=1, high=65536
    )
    embed_size: int = option(32, "character embedding size E", flag="--embed", low=1, high=65536)
    bidirectional: bool = option(
        True, "read each window in both directions (--no-bidirectional: left to right only)"
    )
    dropout: float = option(
        0.0,
        "dropout on the inputs, between layers and before the output",
        low=0,
        high=1,
        open_high=True,
    )
    seq_len: int = option(
        256, "characters (steps) per training window, cut from each file", low=1, high=10**6
    )
    batch_size: int = option(
        32, "windows per step, drawn at random, summed over all processes", low=1, high=10**6
    )
    eval_context: int = option(
        128,
        "characters of context read on either side of each scored window at evaluation",
        low=0,
        high=10**6,
    )
    eval_chars: int = option(
        200_000,
        "validation characters scored per evaluation (spread over the split)",
        low=1,
        high=10**10,
    )

    def __post_init__(self) -> None:
        _options.check(self)
        if self.test_data is not None and self.data is None:
            raise ValueError("--test-data needs --data (the default data has its own test files)")
        self.model_config(num_tags=2, vocab_size=2)  # the model's own checks

    def model_config(
        self, num_tags: int, vocab_size: int = 0, num_features: int = 0
    ) -> TaggerConfig:
        return TaggerConfig(
            num_tags=num_tags,
            vocab_size=vocab_size,
            num_features=num_features,
            cell=self.cell,
            num_layers=self.num_layers,
            hidden_size=self.hidden_size,
            embed_size=self.embed_size,
            bidirectional=self.bidirectional,
            dropout=self.dropout,
        )


# ---- encoded splits and their windows -----------------------------------------------


class Encoded(NamedTuple):
    """A split as one long input and tag tensor, with where each document begins."""

    x: Tensor  # (N,) int32 ids, or (N, F) float32 features
    y: Tensor  # (N,) int32 tag ids (-1: a tag unseen in training)
    bounds: Tensor  # (D + 1,) int64: document d is [bounds[d], bounds[d + 1])


def encode(docs: list[Document], vocab: Vocabulary | None) -> Encoded:
    if vocab is not None:
        x = vocab.encode("".join(str(d.x) for d in docs), torch.int32)
    else:
        x = torch.from_numpy(np.concatenate([np.asarray(d.x, np.float32) for d in docs]))
    # int32: int16 would wrap past 32,767 tags, 65,436 onto -100, the ignored label.
    y = torch.from_numpy(np.concatenate([d.y for d in docs]).astype(np.int32))
    bounds = torch.zeros(len(docs) + 1, dtype=torch.long)
    bounds[1:] = torch.tensor([len(d) for d in docs]).cumsum(0)
    return Encoded(x, y, bounds)


def windows(bounds: Tensor, size: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(start, length, doc)`` of every window of ``size`` steps cut from each document
    (its last window shorter)."""
    lengths = bounds[1:] - bounds[:-1]
    count = (lengths + size - 1) // size  # (D,)
    doc = torch.repeat_interleave(torch.arange(len(lengths)), count)
    first = torch.repeat_interleave(count.cumsum(0) - count, count)
    offset = (torch.arange(len(doc)) - first) * size
    start = bounds[:-1][doc] + offset
    length = torch.minimum(lengths[doc] - offset, torch.tensor(size))
    return start, length, doc


def gather(data: Encoded, start: Tensor, length: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Padded inputs (B, T[, F]), tags (B, T) with -100 on padding, and lengths (B,) of
    the spans ``[start, start + length)``."""
    T = int(length.max())
    steps = torch.arange(T)
    pos = start[:, None] + steps  # (B, T)
    valid = steps < length[:, None]
    pos = torch.where(valid, pos, start[:, None])
    x = data.x[pos]
    if x.dim() == 2:
        x = torch.where(valid, x, torch.zeros((), dtype=x.dtype)).long()
    else:
        x = x * valid[..., None]
    y = torch.where(valid, data.y[pos].long(), torch.tensor(IGNORE))
    return x, y, length.clone()


class WindowBatches(SeededBatches):
    """Random training windows from one seeded generator; this process keeps its rows.

    Among ``processes`` > 1 a batch carries a fourth element: the global batch's number of
    tagged steps over the number of processes, by which :meth:`TagTask.loss` divides this
    process's summed loss. DDP's average of the processes' losses is then the mean over
    every tagged step of the global batch - one process's loss - although the windows
    (the last of a file is shorter) give the processes different numbers of steps.
    """

    def __init__(
        self,
        data: Encoded,
        size: int,
        batch_size: int,
        seed: int,
        rows: slice,
        processes: int = 1,
    ) -> None:
        self.data, self.batch_size, self.rows = data, batch_size, rows
        self.processes = processes
        self.start, self.length, _ = windows(data.bounds, size)
        super().__init__(seed)

    def __next__(self) -> tuple[Tensor, ...]:
        # Every process draws the whole global batch and keeps its share.
        pick = torch.randint(len(self.start), (self.batch_size,), generator=self.generator)
        batch = gather(self.data, self.start[pick[self.rows]], self.length[pick[self.rows]])
        if self.processes == 1:
            return batch
        # Every step inside a window is tagged (only padding is IGNORE).
        share = torch.tensor(float(self.length[pick].sum()) / self.processes)
        return (*batch, share)


@torch.no_grad()
def predict(
    model: nn.Module,
    data: Encoded,
    size: int,
    context: int,
    pick: Tensor | None = None,
) -> tuple[Tensor, Tensor, float]:
    """Predicted and true tags of the windows ``pick`` (default: all) of ``data``, each
    read with ``context`` steps either side (within its document), and the summed loss.

    Returns ``(predicted (N,), truth (N,), loss_sum)`` in the order of the steps.
    """
    device = model_device(model)
    start, length, doc = windows(data.bounds, size)
    if pick is not None:
        start, length, doc = start[pick], length[pick], doc[pick]
    lo = torch.maximum(start - context, data.bounds[doc])
    hi = torch.minimum(start + length + context, data.bounds[doc + 1])
    was_training = model.training
    model.eval()
    preds, truths, loss_sum = [], [], 0.0
    try:
        for i in range(0, len(start), EVAL_BATCH):
            s, n = start[i : i + EVAL_BATCH], length[i : i + EVAL_BATCH]
            a, b = lo[i : i + EVAL_BATCH], hi[i : i + EVAL_BATCH]
            x, _, lengths = gather(data, a, b - a)
            logits = model(x.to(device), lengths).float().cpu()  # (B, T, K)
            steps = torch.arange(logits.size(1))
            core = (steps >= (s - a)[:, None]) & (steps < (s - a + n)[:, None])
            truth = gather(data, s, n)[1]
            truth = truth[truth != IGNORE]
            scores = logits[core]  # (n_core, K), in step order
            known = truth >= 0
            if known.any():
                loss_sum += float(F.cross_entropy(scores[known], truth[known], reduction="sum"))
            preds.append(scores.argmax(-1))
            truths.append(truth)
    finally:
        model.train(was_training)
    return torch.cat(preds), torch.cat(truths), loss_sum


def spread(count: int, total_steps: Tensor, budget: int) -> Tensor:
    """Indices of about ``budget`` steps' worth of ``count`` windows, evenly spread."""
    total = int(total_steps)
    if total <= budget:
        return torch.arange(count)
    keep = max(1, count * budget // total)
    return torch.linspace(0, count - 1, keep).round().long().unique()


# ---- the task -----------------------------------------------------------------------


class TagTask(Task):
    name = "tag"
    summary = "a tag for every character (by default Python's token types): a bidirectional RNN"
    Options = TagOptions
    train_defaults: ClassVar[dict[str, Any]] = {
        "minutes": 4.0,
        "lr": 3e-3,
        "weight_decay": 0.0,
        "warmup_steps": 50,
        "eval_every": 250,
        "clip_norm": 1.0,
    }
    metric = "accuracy"
    higher_is_better = True
    item_name = "chars"
    extra_files = (FIGURE,)

    options: TagOptions
    data: TaggedData

    # ---- data -------------------------------------------------------------------------

    def prepare(self, train: TrainConfig, ctx: distributed.Context) -> None:
        o = self.options
        distributed.rows(ctx, o.batch_size)  # divisible by the number of processes
        source = self.derived.get("source")
        if source is None:
            if o.data is None:
                data = tagging.load_stdlib()
            else:
                data = tagging.load_jsonl(o.data, o.test_data, o.split_seed)
            self.derived = derive(data)
        else:
            if not isinstance(source, dict) or source.get("kind") not in ("stdlib", "jsonl"):
                raise DerivedError("derived.source is not that of a tag run")
            if source["kind"] == "stdlib":
                data = tagging.load_stdlib()
            else:
                data = tagging.load_jsonl(
                    source["data"], source["test_data"], source["split_seed"], recorded=source
                )
            recorded = self.derived.get("tags")
            if data.tags != recorded:
                # A DerivedError: the run's config.json is named in front of it. Both
                # lists are shown, as the order of the tags is what gives them their ids.
                raise DerivedError(
                    f"derived: tags {recorded!r} are not those of the run's data "
                    f"({', '.join(data.tags)})"
                )
        self.data = data
        self.item_name = "chars" if data.is_text else "steps"  # what /s counts, as printed
        vocab = self.vocab()
        self.encoded = {name: encode(data.split(name), vocab) for name in ("train", "validation")}
        self.prior = prior_table(self.encoded["train"], len(vocab) if vocab else 0, len(data.tags))
        count = len(windows(self.encoded["validation"].bounds, o.seq_len)[0])
        self.val_pick = spread(count, self.encoded["validation"].bounds[-1], o.eval_chars)

    def vocab(self) -> Vocabulary | None:
        v = self.derived.get("vocab")
        return None if v is None else Vocabulary.from_dict(v)

    def describe(self) -> str:
        return self.data.describe()

    # ---- model ------------------------------------------------------------------------

    def build_model(self) -> Tagger:
        d = self.derived
        vocab = self.vocab()
        config = self.options.model_config(
            num_tags=len(d["tags"]),
            vocab_size=len(vocab) if vocab is not None else 0,
            num_features=0 if vocab is not None else int(d["features"]),
        )
        model = Tagger(config)
        if vocab is None:
            model.mean.copy_(torch.tensor(d["mean"]))
            model.std.copy_(torch.tensor(d["std"]))
        return model

    def title(self, model: nn.Module) -> str:
        o = self.options
        way = "bidirectional" if o.bidirectional else "unidirectional"
        return f"tag: {way} {o.cell.upper()} {o.num_layers}x{o.hidden_size}"

    # ---- training ---------------------------------------------------------------------

    def batches(self, train: TrainConfig, ctx: distributed.Context) -> WindowBatches:
        o = self.options
        rows = distributed.rows(ctx, o.batch_size)
        return WindowBatches(
            self.encoded["train"], o.seq_len, o.batch_size, train.seed, rows, ctx.world_size
        )

    def loss(self, net: nn.Module, batch: Any, device: Any) -> Tensor:
        x, y, lengths, *share = batch
        logits = net(x.to(device, non_blocking=True), lengths)
        loss = tag_loss(logits, y.to(device, non_blocking=True))
        if not share:
            return loss
        # Under torchrun: this process's summed loss over its share of the global batch's
        # tagged steps (WindowBatches), so that the processes' average is one process's.
        return loss * (float(lengths.sum()) / max(float(share[0]), 1e-12))

    def items(self, batch: Any) -> int:
        return int(batch[2].sum())

    # ---- evaluation -------------------------------------------------------------------

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        o = self.options
        data = self.encoded["validation"]
        pred, truth, loss_sum = predict(model, data, o.seq_len, o.eval_context, self.val_pick)
        return {
            "accuracy": accuracy(pred, truth),
            "loss": loss_sum / max(int((truth >= 0).sum()), 1),
        }

    def baseline(self, data: Encoded, pick: Tensor | None = None) -> tuple[float, str]:
        """The per-character prior's accuracy on the steps that ``predict`` scores
        (characters), or the most frequent training tag's (features)."""
        truth, x = scored(data, self.options.seq_len, pick)
        if x is not None:
            return accuracy(self.prior[x], truth), "per-character prior"
        return accuracy(self.prior[0].expand_as(truth), truth), "most frequent tag"

    def show(self, model: nn.Module, metrics: dict[str, float]) -> list[str]:
        base, what = self.baseline(self.encoded["validation"], self.val_pick)
        return [f"accuracy {metrics['accuracy']:.4%} ({what} {base:.4%})"]

    def finish(self, model: nn.Module, run_dir: Any) -> list[str]:
        m = self.evaluate(model)
        base, what = self.baseline(self.encoded["validation"], self.val_pick)
        n = int(self.encoded["validation"].bounds[-1])
        unit = "character" if self.data.is_text else "step"
        # --eval-chars spreads whole windows over a longer split: about that many are scored
        scored = (
            f"all {n:,}"
            if n <= self.options.eval_chars
            else f"about {self.options.eval_chars:,} of {n:,}"
        )
        return [
            f"validation accuracy {m['accuracy']:.4%} per {unit} ({scored}); {what} "
            f"baseline {base:.4%}",
            f"  evaluate on the test split: rnnkit eval {run_dir}",
        ]

    def report(self, model: nn.Module, run_dir: Any, out_dir: Any) -> list[str]:
        """Accuracy and per-tag accuracy on the test split, and ``tagged.png``."""
        o = self.options
        test_docs = self.data.test
        test = encode(test_docs, self.vocab())
        pred, truth, loss_sum = predict(model, test, o.seq_len, o.eval_context)
        tags = self.data.tags
        base, what = self.baseline(test, None)
        unit = "files" if self.data.source["kind"] == "stdlib" else "lines"
        lines = [
            f"test: {len(test_docs):,} {unit}, {len(truth):,} characters"
            if self.data.is_text
            else f"test: {len(test_docs):,} {unit}, {len(truth):,} steps",
            f"accuracy: {accuracy(pred, truth):.4%}",
            f"{what} baseline: {base:.4%}",
            f"loss: {loss_sum / max(int((truth >= 0).sum()), 1):.4g}",
            "per-tag accuracy (share of each true tag predicted right):",
        ]
        counts = tag_counts(pred, truth, len(tags))
        # Names padded to the widest shown (at least 12 columns), by display width: a CJK
        # tag takes two columns a character.
        width = max([12] + [display_width(t) for t, (_, n) in zip(tags, counts, strict=True) if n])
        for name, (right, total) in zip(tags, counts, strict=True):
            if total:
                label = name + " " * (width - display_width(name))
                lines.append(f"  {label} {right / total:8.4%}  of {total:,}")
        unseen = int((truth < 0).sum())
        if unseen:
            named = named_tags(self.data.unseen) or f"{unseen:,}"
            lines.append(f"  (tags unseen in training, always wrong: {named})")
        wrong = confusions(pred, truth, tags)
        if wrong:
            lines.append("most frequent errors (true -> predicted): " + ", ".join(wrong))
        out = report_folder(out_dir, FIGURE)
        path = draw_tagged(test_docs, test, pred, truth, tags, out / FIGURE, self.title(model))
        lines.append(f"figure: {path}")
        return lines


def named_tags(counts: dict[str, int], shown: int = 5) -> str:
    """Tags and their steps as a report lists them: the first few, and how many in all."""
    names = [f"{name} {count:,}" for name, count in list(counts.items())[:shown]]
    more = f", ... {len(counts):,} tags in all" if len(counts) > shown else ""
    return ", ".join(names) + more


def derive(data: TaggedData) -> dict[str, Any]:
    """What a run records of its data: the source, the tags, the vocabulary of the
    training split (or the feature statistics)."""
    derived: dict[str, Any] = {"source": data.source, "tags": list(data.tags)}
    if data.is_text:
        derived["vocab"] = Vocabulary.from_text([str(d.x) for d in data.train]).to_dict()
    else:
        x = np.concatenate([np.asarray(d.x, np.float64) for d in data.train])
        std = x.std(0)
        derived["features"] = int(x.shape[1])
        derived["mean"] = [float(v) for v in x.mean(0)]
        derived["std"] = [float(v) if v > 1e-12 else 1.0 for v in std]
    if data.source["kind"] == "stdlib":
        derived["skipped_files"] = len(data.skipped)
    return derived


def prior_table(data: Encoded, vocab_size: int, num_tags: int) -> Tensor:
    """Each character's most frequent training tag (the overall most frequent one for
    characters never seen, and for feature inputs: a (1,) table)."""
    y = data.y.long()
    overall = torch.bincount(y[y >= 0], minlength=num_tags).argmax()
    if not vocab_size:
        return overall.reshape(1)
    counts = torch.bincount(data.x.long() * num_tags + y, minlength=vocab_size * num_tags)
    counts = counts.reshape(vocab_size, num_tags)
    table = counts.argmax(1)
    table[counts.sum(1) == 0] = overall
    return table


def scored(data: Encoded, size: int, pick: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """The true tags (and character ids) of the windows ``pick`` in step order."""
    start, length, _ = windows(data.bounds, size)
    if pick is not None:
        start, length = start[pick], length[pick]
    pos = torch.repeat_interleave(start - (length.cumsum(0) - length), length)
    pos = pos + torch.arange(int(length.sum()))
    return data.y[pos].long(), (data.x[pos].long() if data.x.dim() == 1 else None)


def accuracy(pred: Tensor, truth: Tensor) -> float:
    """The share of the scored steps tagged right (a tag unseen in training, -1, never
    is): a count over a count, in float64 (a float32 mean kept 7 digits only)."""
    return int((pred == truth).sum()) / max(truth.numel(), 1)


def tag_counts(pred: Tensor, truth: Tensor, num_tags: int) -> list[tuple[int, int]]:
    """``(right, total)`` of each true tag 0..num_tags-1: its steps and those of them
    predicted as it (its per-tag accuracy is right / total: the tag's recall)."""
    truth, hit = truth.long(), (pred == truth)
    known = truth >= 0  # an unseen tag (-1) is no tag's
    total = torch.bincount(truth[known], minlength=num_tags)
    right = torch.bincount(truth[known & hit], minlength=num_tags)
    return [(int(r), int(t)) for r, t in zip(right, total, strict=True)]


def confusions(pred: Tensor, truth: Tensor, tags: list[str], top: int = 5) -> list[str]:
    k = len(tags)
    wrong = (pred != truth) & (truth >= 0)
    if not wrong.any():
        return []
    # The pairs that occur, counted: a k x k table would not fit for tens of thousands of tags.
    pairs, counts = torch.unique(truth[wrong].long() * k + pred[wrong].long(), return_counts=True)
    order = counts.argsort(descending=True, stable=True)[:top]
    return [
        f"{tags[int(pairs[i]) // k]} -> {tags[int(pairs[i]) % k]} {int(counts[i]):,}" for i in order
    ]


# ---- the figure ---------------------------------------------------------------------

COLOURS = {
    "WHITESPACE": "#f4f4f4",
    "NAME": "#cfe3ff",
    "KEYWORD": "#ffc9a8",
    "OP": "#e0e0e0",
    "NUMBER": "#c9f2c0",
    "STRING": "#fff1a8",
    "COMMENT": "#d9d2f0",
    "NEWLINE": "#f6d0e4",
}
_CYCLE = ["#cfe3ff", "#ffc9a8", "#c9f2c0", "#fff1a8", "#d9d2f0", "#f6d0e4", "#c8f0f0", "#e0e0e0"]


Row = list[tuple[Any, int, int]]  # (character or None, predicted, true) per step


def draw_tagged(
    docs: list[Document],
    data: Encoded,
    pred: Tensor,
    truth: Tensor,
    tags: list[str],
    path: Path,
    title: str,
) -> Path:
    """Snippets of the test data, each character's background coloured by its predicted
    tag and errors boxed in red: a typical block of ``FIGURE_LINES`` lines (the one with
    the most different tags) and, when it is another, the block with the most errors."""
    # Characters the monospace font lacks (emoji, CJK) are drawn as boxes; matplotlib
    # warns once per glyph, which is noise in `rnnkit eval`'s report.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"Glyph \d+ .*missing from font", UserWarning)
        fig = tagged_figure(snippets(docs, data, pred, truth), tags, title)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Never half a file; a symbolic link at path is replaced. A 64-colour palette: a
        # few flat colours and black text, so nothing is lost and the file is a third of
        # the size.
        return write_figure(fig, path, colours=FIGURE_COLOURS)


def tagged_figure(panels: list[tuple[str, list[Row]]], tags: list[str], title: str) -> Any:
    """The figure of :func:`draw_tagged`: a panel per snippet, the legend below them."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle

    colours = [COLOURS.get(t, _CYCLE[i % len(_CYCLE)]) for i, t in enumerate(tags)]
    # The legend lists the tags drawn: a file may have thousands.
    drawn = sorted({k for _, rows in panels for row in rows for _, p, t in row for k in (p, t)})
    drawn = [k for k in drawn if k >= 0]  # -1: a test tag unseen in training
    ncol = min((len(drawn) + 2) // 2, 8)
    legend_rows = -(-(len(drawn) + 1) // ncol)
    width = max((len(r) for _, rows in panels for r in rows), default=1)
    heights = [max(len(rows), 1) + 1.5 for _, rows in panels]
    fig = Figure(
        figsize=(max(1 + 0.085 * width, 8), 0.19 * sum(heights) + 0.8 + 0.22 * legend_rows),
        dpi=100,
        layout="constrained",
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, (caption, rows) in zip(axes, panels, strict=True):
        errors = 0
        for r, row in enumerate(rows):
            for c, (ch, p, t) in enumerate(row):
                ax.add_patch(Rectangle((c, -r - 1), 1, 1, color=colours[p], lw=0))
                if p != t:
                    errors += 1
                    ax.add_patch(Rectangle((c, -r - 1), 1, 1, fill=False, ec="red", lw=1.0))
                shown = {"\n": "\u21b5", "\t": "\u2192"}.get(ch, ch)
                if isinstance(shown, str) and shown.strip():
                    ax.text(
                        c + 0.5,
                        -r - 0.5,
                        shown,
                        ha="center",
                        va="center",
                        family="monospace",
                        fontsize=7,
                    )
        ax.set_xlim(0, width)
        ax.set_ylim(-max(len(rows), 1), 0)
        ax.set_axis_off()
        ax.set_title(f"{caption}: {errors} wrong", fontsize=9, loc="left")
    handles = [Patch(facecolor=colours[k], edgecolor="#999999", label=tags[k]) for k in drawn]
    handles.append(Patch(facecolor="white", edgecolor="red", label="wrong"))
    # "outside": the constrained layout keeps the legend clear of the panels.
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize=8)
    fig.suptitle(f"{title}: background = predicted tag", fontsize=10)
    return fig


def snippets(
    docs: list[Document], data: Encoded, pred: Tensor, truth: Tensor
) -> list[tuple[str, list[Row]]]:
    """(caption, rows) of the blocks to draw: a typical one and the worst one."""
    if not docs:
        return [("no test data", [])]
    # predict() scores every step of the split in order, so step i is pred[i].
    wrong = (pred != truth).numpy()
    true = truth.numpy()
    typical: tuple[int, int, int, int] | None = None  # (variety, -errors, doc, first line)
    worst: tuple[int, int, int] | None = None  # (errors, doc, first line)
    for d, doc in enumerate(docs):
        a = int(data.bounds[d])
        if isinstance(doc.x, str):
            lines = doc.x.splitlines(keepends=True)
            ends = np.cumsum([len(line) for line in lines])
            blocks = range(0, max(len(lines) - FIGURE_LINES, 0) + 1, FIGURE_LINES // 2)
            for first in blocks:
                lo = a + (int(ends[first - 1]) if first else 0)
                hi = a + int(ends[min(first + FIGURE_LINES, len(lines)) - 1])
                errors, variety = int(wrong[lo:hi].sum()), len(np.unique(true[lo:hi]))
                if typical is None or (variety, -errors) > typical[:2]:
                    typical = (variety, -errors, d, first)
                if worst is None or errors > worst[0]:
                    worst = (errors, d, first)
        else:
            errors = int(wrong[a : a + len(doc)].sum())
            if typical is None:
                typical = (0, -errors, d, 0)
            if worst is None or errors > worst[0]:
                worst = (errors, d, 0)
    assert typical is not None and worst is not None
    picks = [("a typical snippet", typical[2], typical[3])]
    if worst[0] > 0 and (worst[1], worst[2]) != (typical[2], typical[3]):
        picks.append(("the snippet with the most errors", worst[1], worst[2]))
    out = []
    for caption, d, first in picks:
        doc, a = docs[d], int(data.bounds[d])
        p, t = pred[a : a + len(doc)].tolist(), truth[a : a + len(doc)].tolist()
        rows: list[Row] = []
        if isinstance(doc.x, str):
            at = 0
            for i, line in enumerate(doc.x.splitlines(keepends=True)):
                if first <= i < first + FIGURE_LINES:
                    steps = range(min(len(line), FIGURE_COLUMNS))
                    rows.append([(line[j], p[at + j], t[at + j]) for j in steps])
                at += len(line)
            caption = f"{caption}, {doc.name} from line {first + 1}"
        else:
            for r in range(0, min(len(doc), FIGURE_COLUMNS * FIGURE_LINES), FIGURE_COLUMNS):
                end = min(r + FIGURE_COLUMNS, len(doc))
                rows.append([(None, p[j], t[j]) for j in range(r, end)])
            caption = f"{caption}, {doc.name}"
        out.append((caption, rows))
    return out


__all__ = ["TagOptions", "TagTask", "Tagger", "TaggerConfig", "tag_loss"]
