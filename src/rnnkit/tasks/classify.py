"""`rnnkit train classify`: one class per whole sequence (many-to-one, the chapter's 10.4).

A recurrent layer reads each series to its own end (``lengths=``: no padding enters the
result) and a read-out of its outputs - the last state, or the mean or maximum of the
outputs over the valid steps - goes through a linear layer to the classes.

The data are UEA/UCR ``.ts`` files read by :mod:`rnnkit.data.ts_format`: the official
train/test splits of a dataset aeon ships (``--dataset``), or the user's own files
(``--data``, ``--test-data``; without a test file a seeded stratified share of ``--data``
is held out). A seeded stratified ``--val-fraction`` of the training series validates
(it picks the best model; with ``--val-fraction 0`` every training series trains and the
last model is kept); the test split is scored only at the end, by :meth:`finish`
and ``rnnkit eval``. Each input channel is normalised with the mean and standard
deviation of the training series; the statistics, the splits and the files read (with
their SHA-256) are recorded in ``config.json``.
"""

from __future__ import annotations

import importlib.util
import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeAlias

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit import _checks, _options
from rnnkit._options import option
from rnnkit.data.ts_format import TSData, read_ts
from rnnkit.layers.base import RecurrentLayer
from rnnkit.layers.members import AverageProbabilities, Members
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
from rnnkit.train.files import file_sha256, refuse_same_file

# The classification sets aeon ships with official _TRAIN/_TEST .ts files, under
# aeon/datasets/data/NAME/ (its _eq variants and the regression sets are left out).
DATASETS = (
    "JapaneseVowels",
    "BasicMotions",
    "ArrowHead",
    "GunPoint",
    "ItalyPowerDemand",
    "PickupGestureWiimoteZ",
    "ACSF1",
    "OSULeaf",
    "Covid3Month_disc",
    "UnitTest",
)
DEFAULT_DATASET = "JapaneseVowels"
TEST_FRACTION = 0.25  # the default --test-fraction: any other value asks for a held-out split
POOLS = ("last", "mean", "max")
MISSING = ("ffill", "error")
EVAL_BATCH = 256  # series scored at once
AUTO_STEPS = 64  # --downsample 0 shortens the longest training series to at most this
DERIVED_KEYS = ("source", "classes", "dimensions", "split", "mean", "std", "majority", "downsample")


@dataclass
class ClassifyOptions:
    """The classification task's data and model options."""

    # -- the data
    dataset: str | None = option(
        None,
        "a UEA/UCR dataset aeon ships, read from its official _TRAIN/_TEST .ts files "
        f"(default {DEFAULT_DATASET} when --data is not given)",
        choices=DATASETS,
    )
    data: str | None = option(
        None,
        "your own labelled .ts file (UEA/UCR format) to train on, instead of --dataset",
        metavar="FILE",
    )
    test_data: str | None = option(
        None,
        "your own .ts test file (default: a seeded stratified --test-fraction of --data is "
        "held out)",
        metavar="FILE",
    )
    # Its range, (0, 1), is checked in __post_init__: option() has no open low bound, and
    # a declared [0, 1) would have the parser announce a range that 0 is not in.
    test_fraction: float = option(
        TEST_FRACTION,
        "share of --data held out as the test split when --test-data is not given, in (0, 1)",
    )
    val_fraction: float = option(
        0.2,
        "share of the training series held out (stratified) to validate and pick the best "
        "model; 0: none - every training series trains, the training series are scored and "
        "the last model is kept (a refit)",
        low=0,
        high=0.9,
    )
    split_seed: int = option(
        0, "seeds the stratified test and validation splits", low=0, high=2**63 - 1
    )
    missing: str = option(
        "ffill",
        "missing values ('?' or NaN): ffill carries the last value forward within the "
        "series (a leading gap takes the first value); error refuses the file",
        choices=MISSING,
    )
    # -- the model
    cell: str = option("gru", "recurrent cell", choices=tuple(CELLS))
    hidden_size: int = option(128, "hidden units per layer and direction H", flag="--hidden",
                              low=1, high=65536)  # fmt: skip
    num_layers: int = option(1, "stacked recurrent layers", flag="--layers", low=1, high=64)
    bidirectional: bool = option(True, "read each series in both directions")
    pool: str = option(
        "mean",
        "read-out: the last state (last), or the mean or maximum of the outputs over the "
        "valid steps",
        choices=POOLS,
    )
    dropout: float = option(
        0.1,
        "dropout between stacked layers and before the output layer",
        low=0,
        high=1,
        open_high=True,
    )
    downsample: int = option(
        0,
        "average every K steps into one before the recurrent layer (piecewise aggregate "
        f"approximation); 0: the smallest K that leaves the longest training series at most "
        f"{AUTO_STEPS} steps",
        low=0,
        high=10**6,
    )
    noise: float = option(
        1.5,
        "standard deviation of Gaussian noise added to the normalised inputs in training "
        "(0: none), a regulariser for small training sets; 1.5 was chosen on JapaneseVowels, "
        "smooth univariate shapes want less (0.5)",
        low=0,
        high=10,
    )
    members: int = option(
        1,
        "train an ensemble of this many independent networks together and average their "
        "class probabilities (a deep ensemble; each costs one network's time)",
        low=1,
        high=64,
    )
    batch_size: int = option(32, "series per step, summed over all processes", low=1, high=10**6)

    def __post_init__(self) -> None:
        _options.check(self)
        for flag, value in (("--data", self.data), ("--test-data", self.test_data)):
            if value is not None and not value.strip():
                raise ValueError(f"{flag} must name a .ts file; got {value!r}")
        if self.dataset is not None and self.data is not None:
            raise ValueError(
                f"give --dataset or --data, not both; got --dataset {self.dataset} and "
                f"--data {self.data}"
            )
        if self.test_data is not None and self.data is None:
            raise ValueError("--test-data needs --data (the training file of your own data)")
        if not 0 < self.test_fraction < 1:
            raise ValueError(
                f"--test-fraction must be a finite number in (0, 1); got {self.test_fraction!r}"
            )


# ---- the model ---------------------------------------------------------------------------


class SequenceClassifier(nn.Module):
    """Normalise -> recurrent layer over the valid steps -> read-out -> linear -> logits.

    ``forward(x, lengths=None)``: x is (B, T, D) raw values, right-padded, ``lengths`` (B,)
    the true lengths (None: all T); returns (B, classes) logits. The channel statistics
    are buffers set from the training split, so a loaded model takes raw series.
    """

    # Buffers (register_buffer in __init__): declared so that they read as tensors.
    mean: Tensor
    std: Tensor

    def __init__(
        self,
        input_size: int,
        num_classes: int,
        cell: str = "gru",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = True,
        pool: str = "mean",
        dropout: float = 0.0,
        noise: float = 0.0,
        downsample: int = 1,
        mean: Tensor | list[float] | None = None,
        std: Tensor | list[float] | None = None,
        members: int = 1,
    ) -> None:
        super().__init__()
        # isinstance first: a list is unhashable, and `in` a dict failed in Python's words.
        if not isinstance(cell, str) or cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}; got {cell!r}")
        if not isinstance(pool, str) or pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}; got {pool!r}")
        # numbers.Integral: a NumPy integer (len(np.unique(y)), y.max() + 1) is one too.
        if not _integer(downsample) or downsample < 1:
            raise ValueError(f"downsample must be a positive integer; got {downsample!r}")
        if not _integer(members) or members < 1:
            raise ValueError(f"members must be a positive integer; got {members!r}")
        if not _integer(num_classes) or num_classes < 2:
            raise ValueError(
                "SequenceClassifier: num_classes must be an integer >= 2 (a classifier "
                f"chooses among classes); got {num_classes!r}"
            )
        downsample, members, num_classes = int(downsample), int(members), int(num_classes)
        # The layers take Python integers; a NumPy one (D = X.shape[1]) is the same number.
        input_size, hidden_size, num_layers = (
            int(v) if _integer(v) else v for v in (input_size, hidden_size, num_layers)
        )
        _checks.probability("SequenceClassifier", "dropout", dropout, upper_open=True)
        finite = isinstance(noise, (int, float)) and not isinstance(noise, bool)
        if not finite or not 0 <= noise < math.inf:
            raise ValueError(
                f"SequenceClassifier: noise must be a finite number >= 0; got {noise!r}"
            )
        self.pool, self.noise, self.downsample = pool, float(noise), downsample
        self.members = members

        def layer() -> RecurrentLayer:
            return CELLS[cell](
                input_size,
                hidden_size,
                num_layers,
                batch_first=True,
                bidirectional=bidirectional,
                dropout=dropout if num_layers > 1 else 0.0,
            )

        self.drop = nn.Dropout(dropout)
        self.rnn: RecurrentLayer | Members
        self.head: nn.Linear | AverageProbabilities
        if members == 1:
            self.rnn = layer()
            self.head = nn.Linear(self.rnn.output_size, num_classes)
        else:  # a deep ensemble: independent members side by side, probabilities averaged
            self.rnn = Members([layer() for _ in range(members)])
            self.head = AverageProbabilities(self.rnn, num_classes)
        mean_t = torch.zeros(input_size) if mean is None else channel_values("mean", mean)
        std_t = torch.ones(input_size) if std is None else channel_values("std", std)
        for name, value in (("mean", mean_t), ("std", std_t)):
            if value.shape != (input_size,):
                raise ValueError(
                    f"SequenceClassifier: {name} must hold one value per channel "
                    f"(input_size = {input_size}); got shape {tuple(value.shape)}"
                )
        if not bool((std_t > 0).all()):
            raise ValueError(
                f"SequenceClassifier: std must be > 0 in every channel (the inputs are "
                f"divided by it); got {std_t.tolist()}"
            )
        # Not in the state dict: config.json's derived statistics rebuild them.
        self.register_buffer("mean", mean_t.float().reshape(input_size), persistent=False)
        self.register_buffer("std", std_t.float().reshape(input_size), persistent=False)

    def features(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, D*H): the read-out of each series before the linear layer (an ensemble's:
        (B, D*K*H), its members' side by side)."""
        z, lengths = self._inputs(x, self._checked(x, lengths))
        out, state = self.rnn(z, lengths=lengths)  # out (B, T, D*H), zero past each end
        return self._pool(out, state, lengths)

    def _checked(self, x: object, lengths: object) -> Tensor:
        """``lengths`` as a CPU long tensor once ``x`` and ``lengths`` are what forward
        takes: a mistake here would otherwise surface deep inside the layer, or not at
        all (a float length truncated, an empty series classified from its bias alone)."""
        owner, size = "SequenceClassifier", self.mean.numel()
        x = _checks.tensor_input(owner, "x", x, f"(B, T, {size}) of raw values")
        if x.dim() != 3 or x.size(-1) != size:
            raise ValueError(
                f"{owner}: x must be (B, T, {size}) raw values (input_size = {size}); got "
                f"shape {tuple(x.shape)}"
            )
        if x.is_complex():  # its imaginary part would be dropped with only a warning
            raise TypeError(f"{owner}: x must hold real values; got {x.dtype}")
        B, T = x.shape[:2]
        # No lengths means every series is T steps long: the same checks apply (returned
        # early, a NaN step made the logits NaN and T = 0 was classified from the bias).
        if lengths is None:
            if B and T == 0:
                raise ValueError(
                    f"{owner}: x must have at least one step (a series of no steps has "
                    f"nothing to classify); got shape {tuple(x.shape)}"
                )
            checked = torch.full((B,), T, dtype=torch.long)
        else:
            checked = _checks.lengths(owner, lengths, T, B)
        if B and not torch.compiler.is_compiling() and int(checked.min()) < 1:
            raise ValueError(
                f"{owner}: lengths must be >= 1 (a series of no steps has nothing to "
                f"classify); got {checked.tolist()}"
            )
        _checks.finite_steps(owner, "x", x, checked)
        return checked

    def _inputs(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor]:
        """Standardised (averaged, and noisy in training) inputs and their lengths."""
        B, T, _ = x.shape
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long)
        lengths = lengths.to("cpu", torch.long)
        # In the model's dtype: float64 or integer values would reach the layer as such.
        z = (x.to(self.mean.dtype) - self.mean) / self.std
        if self.downsample > 1:
            z, lengths = aggregate(z, lengths, self.downsample)
        if self.training and self.noise > 0:
            z = z + self.noise * torch.randn_like(z)
        return z, lengths

    def _pool(self, out: Tensor, state: Any, lengths: Tensor) -> Tensor:
        B, T, _ = out.shape
        if self.pool == "last":
            h = state[0] if isinstance(state, tuple) else state  # (L*D, B, H)
            D = self.rnn.num_directions
            return h[-D:].transpose(0, 1).reshape(B, -1)
        if self.pool == "mean":
            n = lengths.clamp(min=1).to(out.device, out.dtype).unsqueeze(1)
            return out.sum(1) / n
        valid = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
        masked = out.masked_fill(~valid.to(out.device).unsqueeze(-1), float("-inf"))
        return masked.max(1).values

    def forward(self, x: Tensor, lengths: Tensor | None = None, members: bool = False) -> Tensor:
        """(B, classes) logits; an ensemble's are the log of its mean probabilities.

        ``members=True`` trains an ensemble: the batch holds one batch per member, one after
        the other (K*b series), each member reads its own with its own noise, and the
        result is each member's logits, (K, b, classes).
        """
        if not members:
            return self.head(self.drop(self.features(x, lengths)))
        lengths = self._checked(x, lengths)
        if isinstance(self.rnn, Members):
            assert isinstance(self.head, AverageProbabilities)
            pairs = list(zip(self.rnn.layers, self.head.linear.linears, strict=True))
        else:
            pairs = [(self.rnn, self.head)]
        K = len(pairs)
        logits = []
        for (layer, head), xk, nk in zip(pairs, x.chunk(K), lengths.chunk(K), strict=True):
            z, nk = self._inputs(xk[:, : int(nk.max())], nk)
            out, state = layer(z, lengths=nk)
            logits.append(head(self.drop(self._pool(out, state, nk))))
        return torch.stack(logits)


# ---- batches -----------------------------------------------------------------------------


def _integer(value: object) -> bool:
    """Whether ``value`` is an integer (a Python or NumPy one), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def channel_values(name: str, values: Tensor | list[float]) -> Tensor:
    """``values`` (one number per channel) as a float tensor, refused unless finite."""
    try:
        t = torch.as_tensor(values, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(
            f"SequenceClassifier: {name} must be a list or tensor of numbers, one per "
            f"channel; got {type(values).__name__}"
        ) from None
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"SequenceClassifier: {name} must be finite; got {t.tolist()}")
    return t


def aggregate(x: Tensor, lengths: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Each window of ``k`` steps averaged into one (the last window of a series over its
    valid steps only): (B, ceil(T / k), D) and the new lengths ceil(length / k)."""
    if not _integer(k) or k < 1:
        raise ValueError(f"aggregate: k must be a positive integer (steps per window); got {k!r}")
    B, T, D = x.shape
    windows = -(-T // k)
    valid = (torch.arange(windows * k).unsqueeze(0) < lengths.unsqueeze(1)).to(x.device)
    x = F.pad(x, (0, 0, 0, windows * k - T)).masked_fill(~valid.unsqueeze(-1), 0.0)
    total = x.reshape(B, windows, k, D).sum(2)
    count = valid.reshape(B, windows, k).sum(2, keepdim=True).clamp(min=1).to(x.dtype)
    return total / count, torch.div(lengths + k - 1, k, rounding_mode="floor")


def pad(series: list[Tensor]) -> tuple[Tensor, Tensor]:
    """(padded (N, T, D), lengths (N,)) of (T_i, D) series."""
    lengths = torch.tensor([int(s.size(0)) for s in series], dtype=torch.long)
    return nn.utils.rnn.pad_sequence(series, batch_first=True), lengths


class SeriesBatches(SeededBatches):
    """Shuffled passes over the training series: every process draws the same global
    batch from one seeded generator and keeps its rows. The generator, the current pass's
    order and the position in it are the state a checkpoint restores."""

    def __init__(
        self,
        x: Tensor,
        lengths: Tensor,
        y: Tensor,
        batch_size: int,
        seed: int,
        rows: slice,
        members: int = 1,
    ) -> None:
        self.x, self.lengths, self.y = x, lengths, y
        self.batch_size, self.rows = batch_size, rows
        super().__init__(seed)
        # An ensemble's members each make their own passes in their own order, as
        # separate runs would; their batches come one after the other.
        self.orders = [torch.randperm(len(y), generator=self.generator) for _ in range(members)]
        self.positions = [0] * members

    def __next__(self) -> tuple[Tensor, Tensor, Tensor]:
        index = torch.cat([self._draw(k) for k in range(len(self.orders))])
        lengths = self.lengths[index]
        return self.x[index, : int(lengths.max())], lengths, self.y[index]

    def _draw(self, k: int) -> Tensor:
        picks = []
        need = self.batch_size
        while need:
            take = self.orders[k][self.positions[k] : self.positions[k] + need]
            picks.append(take)
            need -= len(take)
            self.positions[k] += len(take)
            if self.positions[k] >= len(self.orders[k]):  # a new pass
                self.orders[k] = torch.randperm(len(self.y), generator=self.generator)
                self.positions[k] = 0
        return torch.cat(picks)[self.rows]

    def state_dict(self) -> dict[str, Any]:
        if len(self.orders) == 1:  # the form of a single network's checkpoints
            return {
                **super().state_dict(),
                "order": self.orders[0].clone(),
                "position": self.positions[0],
            }
        return {
            **super().state_dict(),
            "orders": torch.stack(self.orders),
            "positions": list(self.positions),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "orders" in state:
            self.orders = [o.to("cpu", torch.long).clone() for o in state["orders"]]
            self.positions = [int(p) for p in state["positions"]]
            return
        self.orders = [state["order"].to("cpu", torch.long).clone()]
        self.positions = [int(state["position"])]


# ---- the task ----------------------------------------------------------------------------


class Split:
    """The series of one split, padded once: x (N, T, D) raw values, lengths, labels."""

    def __init__(self, series: list[Tensor], labels: list[int], what: str) -> None:
        self.what, self.n = what, len(series)
        self.x, self.lengths = pad(series) if series else (torch.zeros(0, 1, 1), torch.zeros(0))
        self.y = torch.tensor(labels, dtype=torch.long)


class ClassifyTask(Task):
    name = "classify"
    summary = "sequence classification: one class per whole series (UEA/UCR .ts files)"
    Options = ClassifyOptions
    # AdamW, cosine decay to a tenth, a short warm-up, clipping at 1: measured on
    # JapaneseVowels (docs/classify.md). Evaluations are few: a small validation split
    # often ties at its best accuracy, the trainer keeps the first of tied evaluations, and
    # the validation loss keeps falling to the end of the schedule.
    train_defaults: ClassVar[dict[str, Any]] = {
        "steps": 1500,
        "lr": 3e-3,
        "weight_decay": 0.01,
        "warmup_steps": 50,
        "eval_every": 500,
        "clip_norm": 1.0,
    }
    metric = "accuracy"
    higher_is_better = True
    extra_files = ("confusion.png",)

    options: ClassifyOptions
    train_split: Split
    val_split: Split | None
    test_split: Split

    @property
    def selects(self) -> bool:
        """With ``--val-fraction 0`` every training series trains (a refit): the training
        series are scored, which says nothing about new series, so the last model is kept."""
        return self.options.val_fraction > 0

    @property
    def scored_on(self) -> str:
        """What the log says the evaluations score: without a validation split, the
        training series (:meth:`evaluate`)."""
        return "validation" if self.selects else "training (no validation split)"

    # ---- data -------------------------------------------------------------------------

    def prepare(self, train: TrainConfig, ctx: distributed.Context) -> None:
        o = self.options
        distributed.rows(ctx, o.batch_size)  # divisible by the number of processes
        resuming = bool(self.derived)
        if resuming:
            check_derived(self.derived, "derived")
            source = self.derived["source"]
        else:
            check_test_fraction_used(o)
            source = describe_source(o)
        train_file, test_file = read_source(source, o.missing, check=resuming)
        classes = train_file.classes
        present = sorted(set(train_file.labels))
        if len(present) < 2:
            only = classes[present[0]]
            raise ValueError(
                f"{train_file.path}: every series is of class {only!r}; classification needs "
                "at least two classes"
            )
        if test_file is not None:
            test_labels = map_labels(test_file, classes, train_file.path)
            if test_file.dimensions != train_file.dimensions:
                raise ValueError(
                    f"{test_file.path}: its series have {test_file.dimensions} dimension(s); "
                    f"the training file's have {train_file.dimensions}"
                )
        if resuming:
            if self.derived["classes"] != classes:
                raise DerivedError(
                    f"derived: classes {self.derived['classes']} are not those of "
                    f"the training file {train_file.path} ({', '.join(classes)})"
                )
            split = self.derived["split"]
            check_split(split, len(train_file), test_file is None, "derived")
        else:
            split = make_split(train_file.labels, o, test_file is None)
        held = set(split["val"]) | set(split["test"] or [])
        train_idx = [i for i in range(len(train_file)) if i not in held]
        if not resuming:
            series = [train_file[i][0] for i in train_idx]
            mean, std = channel_stats(series)
            source["train"]["sha256"] = file_sha256(train_file.path)
            if source.get("test"):
                source["test"]["sha256"] = file_sha256(test_file.path)  # type: ignore[union-attr]
            self.derived = {
                "source": source,
                "classes": classes,
                "dimensions": train_file.dimensions,
                "split": split,
                "mean": mean,
                "std": std,
                "majority": majority_class([train_file[i][1] for i in train_idx], len(classes)),
                "downsample": o.downsample or -(-max(len(x) for x in series) // AUTO_STEPS),
            }

        def pick(idx: list[int], what: str) -> Split:
            return Split([train_file[i][0] for i in idx], [train_file[i][1] for i in idx], what)

        self.train_split = pick(train_idx, "train")
        self.val_split = pick(split["val"], "validation") if split["val"] else None
        if test_file is not None:
            self.test_split = Split([x for x, _ in test_file], test_labels, "test")
            self.test_name = Path(test_file.path).name
        else:
            self.test_split = pick(split["test"], "test")
            self.test_name = f"the held-out {o.test_fraction:g} of {Path(train_file.path).name}"
        self.train_name = Path(train_file.path).name
        every = train_file.lengths + (test_file.lengths if test_file is not None else [])
        self.lengths = (min(every), max(every))

    def describe(self) -> str:
        d = self.derived
        name = d["source"].get("dataset") or self.train_name
        val = (
            f"{self.val_split.n} validation"
            if self.val_split is not None
            else ("no validation (the training series are scored)")
        )
        lo, hi = self.lengths
        k = d["downsample"]
        every = f" (averaged every {k} steps)" if k > 1 else ""
        return (
            f"{name}: {self.train_split.n} train / {val} / {self.test_split.n} "
            f"test series, {d['dimensions']} dimension(s), lengths {lo}-{hi}{every}, "
            f"{len(d['classes'])} classes"
        )

    # ---- model ------------------------------------------------------------------------

    def build_model(self) -> SequenceClassifier:
        check_derived(self.derived, "derived")
        o, d = self.options, self.derived
        return SequenceClassifier(
            d["dimensions"],
            len(d["classes"]),
            cell=o.cell,
            hidden_size=o.hidden_size,
            num_layers=o.num_layers,
            bidirectional=o.bidirectional,
            pool=o.pool,
            dropout=o.dropout,
            noise=o.noise,
            downsample=d["downsample"],
            mean=d["mean"],
            std=d["std"],
            members=o.members,
        )

    def title(self, model: nn.Module) -> str:
        o, d = self.options, self.derived
        name = d["source"].get("dataset") or Path(d["source"]["train"]["path"]).name
        both = "bidirectional " if o.bidirectional else ""
        many = f"{o.members} x " if o.members > 1 else ""
        return (
            f"classify {name}: {many}{both}{o.cell.upper()} {o.num_layers}x{o.hidden_size}, "
            f"{o.pool} read-out, {len(d['classes'])} classes"
        )

    # ---- training ---------------------------------------------------------------------

    def batches(self, train: TrainConfig, ctx: distributed.Context) -> SeriesBatches:
        s = self.train_split
        rows = distributed.rows(ctx, self.options.batch_size)
        return SeriesBatches(
            s.x, s.lengths, s.y, self.options.batch_size, train.seed, rows, self.options.members
        )

    def loss(self, net: nn.Module, batch: Any, device: Any) -> Tensor:
        x, lengths, y = batch
        y = y.to(device, non_blocking=True)
        if self.options.members == 1:
            logits = net(x.to(device, non_blocking=True), lengths)
            return F.cross_entropy(logits.float(), y)
        # An ensemble: each member its own batch, scored on its own (the mean of their
        # losses), so that the members train as independent networks would - not as one
        # mixture fitted together.
        logits = net(x.to(device, non_blocking=True), lengths, members=True)  # (K, b, C)
        return F.cross_entropy(logits.float().flatten(0, 1), y)

    def items(self, batch: Any) -> int:
        return int(batch[2].numel())

    # ---- evaluation -------------------------------------------------------------------

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Accuracy and loss on the validation split (the training split without one)."""
        split = self.val_split if self.val_split is not None else self.train_split
        predicted, loss = predict(model, split)
        return {"accuracy": accuracy(predicted, split.y), "loss": loss}

    def finish(self, model: nn.Module, run_dir: Any) -> list[str]:
        predicted, _ = predict(model, self.test_split)
        right = int((predicted == self.test_split.y).sum())
        n = self.test_split.n
        majority = self.derived["majority"]
        base = int((self.test_split.y == majority).sum())
        return [
            f"test accuracy {right / n:.2%} ({right}/{n} series of {self.test_name}); "
            f"majority-class baseline {base / n:.2%} (always class "
            f"{self.derived['classes'][majority]!r}, the most frequent in training)",
            f"  per-class accuracy and confusion.png: rnnkit eval {run_dir}",
        ]

    def report(self, model: nn.Module, run_dir: Any, out_dir: Any) -> list[str]:
        """Test accuracy, per-class accuracy, and ``confusion.png`` in ``out_dir``."""
        from rnnkit.train.files import atomic_write

        classes = self.derived["classes"]
        split = self.test_split
        predicted, loss = predict(model, split)
        confusion = confusion_matrix(split.y, predicted, len(classes))
        right = int(confusion.diag().sum())
        majority = self.derived["majority"]
        base = int(confusion[majority].sum())
        lines = [
            f"test: {self.test_name}, {split.n} series",
            f"test accuracy: {right / split.n:.4f} ({right}/{split.n}); majority-class "
            f"baseline {base / split.n:.4f} (always {classes[majority]!r})",
            f"test loss: {loss:.4f}",
            "per-class accuracy (true class: right/series):",
        ]
        width = max(display_width(c) for c in classes)
        for k, name in enumerate(classes):
            total = int(confusion[k].sum())
            share = f"{confusion[k, k] / total:7.2%}" if total else "    n/a"
            label = " " * (width - display_width(name)) + name
            lines.append(f"  {label}: {share} ({int(confusion[k, k])}/{total})")
        path = report_folder(out_dir, "confusion.png") / "confusion.png"
        what = self.derived["source"].get("dataset") or self.train_name
        title = f"{what}: test accuracy {right / split.n:.2%} ({right}/{split.n})"
        atomic_write(path, confusion_png(confusion, classes, title))
        lines.append(f"confusion matrix: {path}")
        return lines


# ---- helpers -----------------------------------------------------------------------------


# Class indices as the functions below take them (a pandas Series too, untyped here).
ClassIndices: TypeAlias = "Tensor | np.ndarray | Sequence[int]"


def accuracy(predicted: ClassIndices, truth: ClassIndices) -> float:
    """The share of ``predicted`` equal to ``truth``: a count over a count, in float64 (a
    float32 mean was 363/370 to 7 digits only). Tensors, arrays or lists of class indices."""
    predicted, truth = _class_indices("accuracy", ("predicted", "truth"), predicted, truth)
    return int((predicted == truth).sum()) / max(truth.numel(), 1)


def confusion_matrix(truth: ClassIndices, predicted: ClassIndices, classes: int) -> Tensor:
    """(classes, classes) counts: row the true class, column the predicted one; every
    class has its row and column, whether or not it occurs. ``truth`` and ``predicted``:
    tensors, arrays or lists of class indices in [0, classes)."""
    if not _integer(classes) or classes < 1:
        raise ValueError(
            f"confusion_matrix: classes must be a positive integer (the number of classes); "
            f"got {classes!r}"
        )
    truth, predicted = _class_indices("confusion_matrix", ("truth", "predicted"), truth, predicted)
    for name, values in (("truth", truth), ("predicted", predicted)):
        if values.numel() and not 0 <= int(values.min()) <= int(values.max()) < classes:
            raise ValueError(
                f"confusion_matrix: {name} must hold class indices in [0, {classes}); got "
                f"values from {int(values.min())} to {int(values.max())}"
            )
    confusion = torch.zeros(int(classes), int(classes), dtype=torch.long)
    confusion.index_put_((truth, predicted), torch.ones_like(truth), accumulate=True)
    return confusion


def _class_indices(owner: str, names: tuple[str, str], a: Any, b: Any) -> tuple[Tensor, Tensor]:
    """``a`` and ``b`` (called ``names`` in ``owner``'s messages) as 1-D long tensors of
    one length; refused unless integers."""
    out = []
    for name, values in zip(names, (a, b), strict=True):
        try:
            # A pandas Series is an array to numpy, not to torch.
            array = hasattr(values, "__array__") and not isinstance(values, Tensor)
            t = torch.as_tensor(np.array(values) if array else values)
        except (TypeError, ValueError, RuntimeError):
            t = None
        if t is not None and t.dim() == 1 and t.numel() == 0:
            t = t.long()  # [] reads as float32: no entries, no class index to refuse
        if t is None or t.dim() != 1 or t.is_floating_point() or t.is_complex():
            what = type(values).__name__ if t is None else f"shape {tuple(t.shape)} of {t.dtype}"
            raise TypeError(
                f"{owner}: {name} must be a 1-D tensor, array or list of class indices; got {what}"
            )
        out.append(t.long())
    if len(out[0]) != len(out[1]):
        first, second = names
        raise ValueError(
            f"{owner}: {first} and {second} must have one entry per series; got "
            f"{len(out[0])} and {len(out[1])}"
        )
    return out[0], out[1]


def majority_class(labels: list[int], classes: int) -> int:
    """The most frequent of ``labels``; on a tie the lowest class index."""
    return int(torch.bincount(torch.tensor(labels, dtype=torch.long), minlength=classes).argmax())


@torch.no_grad()
def predict(model: nn.Module, split: Split) -> tuple[Tensor, float]:
    """(predicted classes (N,), mean cross-entropy) of ``split``, in eval mode."""
    logits = logits_of(model, split.x, split.lengths)
    total = 0.0
    for index in eval_chunks(split.lengths):
        total += float(F.cross_entropy(logits[index], split.y[index], reduction="sum"))
    return logits.argmax(-1), total / max(split.n, 1)


def eval_chunks(lengths: Tensor) -> list[Tensor]:
    """The indices of the series scored together: by length, so that a chunk is padded to
    about its own length, ``EVAL_BATCH`` at a time."""
    order = torch.argsort(lengths, stable=True)
    return [order[i : i + EVAL_BATCH] for i in range(0, len(order), EVAL_BATCH)]


@torch.no_grad()
def logits_of(model: nn.Module, x: Tensor, lengths: Tensor) -> Tensor:
    """(N, classes) float32 logits of the padded series ``x`` (N, T, D) of ``lengths``, in
    eval mode, chunk by chunk (:func:`eval_chunks`), each cut to its longest series."""
    device = model_device(model)
    was_training = model.training
    model.eval()
    out: Tensor | None = None
    try:
        for index in eval_chunks(lengths):
            chunk = x[index, : int(lengths[index].max())].to(device)
            logits = model(chunk, lengths[index]).float().cpu()
            if out is None:
                out = logits.new_empty(len(lengths), logits.size(-1))
            out[index] = logits
    finally:
        model.train(was_training)
    return out if out is not None else torch.zeros(0, 0)


def aeon_data_dir() -> Path:
    """aeon's folder of shipped datasets (found without importing aeon)."""
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            "--dataset reads the .ts files aeon ships, and aeon is not installed: "
            "pip install 'rnnkit[timeseries]', or give your own file with --data"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def dataset_files(name: str) -> tuple[Path, Path]:
    """The official _TRAIN and _TEST .ts files of a dataset aeon ships."""
    if name not in DATASETS:
        raise ValueError(f"--dataset must be one of {', '.join(DATASETS)}; got {name!r}")
    folder = aeon_data_dir() / name
    files = (folder / f"{name}_TRAIN.ts", folder / f"{name}_TEST.ts")
    for f in files:
        if not f.is_file():
            raise ValueError(f"--dataset {name}: {f} is missing from this aeon installation")
    return files


def describe_source(o: ClassifyOptions) -> dict[str, Any]:
    """What a new run reads, as config.json records it."""
    if o.data is None:
        name = o.dataset or DEFAULT_DATASET
        train_file, test_file = dataset_files(name)
        return {
            "dataset": name,
            "train": {"file": train_file.name},
            "test": {"file": test_file.name},
        }
    for flag, value in (("--data", o.data), ("--test-data", o.test_data)):
        if value is not None and not Path(value).is_file():
            what = "is a folder" if Path(value).is_dir() else "does not exist"
            raise ValueError(f"{flag} {value} {what}; expected a .ts file")
    if o.test_data is not None:
        refuse_same_file("--test-data", o.test_data, "--data", o.data)
    test = {"path": str(Path(o.test_data).resolve())} if o.test_data else None
    return {"dataset": None, "train": {"path": str(Path(o.data).resolve())}, "test": test}


def read_source(source: dict[str, Any], missing: str, check: bool) -> tuple[TSData, TSData | None]:
    """The training and test files of ``source``; with ``check`` their SHA-256 must be
    the recorded one (a resumed or evaluated run reads the data it was trained on)."""
    if source.get("dataset"):
        paths: list[Path | None] = list(dataset_files(source["dataset"]))
    else:
        test = source.get("test")
        paths = [Path(source["train"]["path"]), Path(test["path"]) if test else None]
    out: list[TSData | None] = []
    for path, part in zip(paths, ("train", "test"), strict=True):
        if path is None:
            out.append(None)
            continue
        if not path.is_file():
            raise ValueError(f"{path}: the {part} file of this run is missing")
        recorded = (source.get(part) or {}).get("sha256")
        if check and recorded is not None and file_sha256(path) != recorded:
            raise ValueError(
                f"{path} changed since the run started (its SHA-256 differs from the one in "
                "config.json); restore it, or start a new run"
            )
        out.append(read_ts(path, missing=missing))
    assert out[0] is not None
    return out[0], out[1]


def map_labels(test: TSData, classes: list[str], train_path: str) -> list[int]:
    """The test file's labels as indices of the training file's classes (by name)."""
    index = {name: k for k, name in enumerate(classes)}
    out = []
    for (_, y), line in zip(test.samples, test.lines, strict=True):
        name = test.classes[y]
        if name not in index:
            raise ValueError(
                f"{test.path}, line {line}: class {name!r} is not a class of the training "
                f"file {train_path} ({', '.join(classes)})"
            )
        out.append(index[name])
    return out


def stratified(
    labels: list[int], index: list[int], fraction: float, g: torch.Generator
) -> list[int]:
    """A seeded, stratified ``fraction`` of ``index`` (sorted): per class round(fraction *
    n_c) series, never all of a class."""
    by_class: dict[int, list[int]] = {}
    for i in index:
        by_class.setdefault(labels[i], []).append(i)
    held = []
    for c in sorted(by_class):
        members = by_class[c]
        k = min(round(fraction * len(members)), len(members) - 1)
        order = torch.randperm(len(members), generator=g).tolist()
        held += [members[j] for j in order[:k]]
    return sorted(held)


def make_split(labels: list[int], o: ClassifyOptions, hold_test: bool) -> dict[str, Any]:
    """The seeded stratified split of the training file: test (when there is no test
    file), then validation from the rest."""
    g = torch.Generator().manual_seed(o.split_seed)
    everything = list(range(len(labels)))
    test = stratified(labels, everything, o.test_fraction, g) if hold_test else None
    if hold_test and not test:
        raise ValueError(
            f"--test-fraction {o.test_fraction:g} of {len(labels)} series holds out none for "
            "the test; give a larger --test-fraction or a --test-data file"
        )
    rest = [i for i in everything if i not in set(test or [])]
    val = stratified(labels, rest, o.val_fraction, g) if o.val_fraction > 0 else []
    if o.val_fraction > 0 and not val:
        raise ValueError(
            f"--val-fraction {o.val_fraction:g} of {len(rest)} training series holds out none; "
            "give a larger one, or --val-fraction 0 to validate on the training series"
        )
    return {"seed": o.split_seed, "test": test, "val": val}


def check_split(split: Any, n: int, hold_test: bool, where: str) -> None:
    """Refuse a recorded split of ``n`` series that no run makes (a hand-edited one)."""
    if not isinstance(split, dict) or not isinstance(split.get("val"), list):
        raise DerivedError(f"{where}: split must be an object with a list 'val'")
    parts = {"val": split["val"]}
    if hold_test:
        if not isinstance(split.get("test"), list):
            raise DerivedError(f"{where}: split must hold the list 'test' of held-out series")
        if not split["test"]:
            raise DerivedError(f"{where}: split.test must hold at least one series; got []")
        parts["test"] = split["test"]
    elif split.get("test") is not None:
        raise DerivedError(f"{where}: split.test must be null: the run has a test file")
    for key, part in parts.items():
        if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n for i in part):
            raise DerivedError(f"{where}: split.{key}: indices must be integers in [0, {n})")
        twice = sorted({i for i in part if part.count(i) > 1})
        if twice:
            raise DerivedError(f"{where}: split.{key} holds series {twice[0]} twice")
    both = sorted(set(parts["val"]) & set(parts.get("test", [])))
    if both:
        raise DerivedError(f"{where}: split.test and split.val share series {both[0]}")
    if len(set(parts["val"]) | set(parts.get("test", []))) >= n:
        raise DerivedError(
            f"{where}: split.test and split.val hold out all {n} series and leave no training "
            "series"
        )


def check_derived(derived: dict[str, Any], where: str) -> None:
    """Refuse ``derived`` without what a classify run needs (a hand-edited config.json)."""
    missing = [k for k in DERIVED_KEYS if k not in derived]
    if missing:
        raise DerivedError(f"{where}: missing key(s) {', '.join(missing)} of a classify run")
    d = derived
    classes = d["classes"]
    if (
        not isinstance(classes, list)
        or len(classes) < 2
        or not all(isinstance(c, str) and c for c in classes)
    ):
        raise DerivedError(
            f"{where}: classes must be a list of at least two names; got {classes!r}"
        )
    twice = sorted({c for c in classes if classes.count(c) > 1})
    if twice:
        raise DerivedError(f"{where}: classes: {twice[0]!r} is named twice")
    dims = d["dimensions"]
    if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
        raise DerivedError(f"{where}: dimensions must be a positive integer; got {dims!r}")
    for key, low in (("mean", None), ("std", 0.0)):
        v = d[key]
        if (
            not isinstance(v, list)
            or len(v) != dims
            or not all(_finite(a) and (low is None or a > low) for a in v)
        ):
            # std divides the inputs: 0 would make them infinite
            more = " > 0" if low is not None else ""
            raise DerivedError(f"{where}: {key} must be {dims} finite numbers{more}; got {v!r}")
    k = d["downsample"]
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise DerivedError(f"{where}: downsample must be a positive integer; got {k!r}")
    m = d["majority"]
    if isinstance(m, bool) or not isinstance(m, int) or not 0 <= m < len(classes):
        raise DerivedError(
            f"{where}: majority must be a class index in [0, {len(classes)}); got {m!r}"
        )
    check_source(d["source"], where)


def _finite(a: Any) -> bool:
    return isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a)


def check_source(source: Any, where: str) -> None:
    """Refuse a recorded ``source`` that names no file to read (see :func:`describe_source`)."""
    if not isinstance(source, dict) or "train" not in source:
        raise DerivedError(f"{where}: source must be an object naming the training file")
    dataset = source.get("dataset")
    if dataset is not None and dataset not in DATASETS:
        raise DerivedError(
            f"{where}: source.dataset must be null or one of {', '.join(DATASETS)}; got {dataset!r}"
        )
    if dataset is not None:
        return  # the files are aeon's, found by the name
    for part in ("train", "test"):
        value = source.get(part)
        if part == "test" and value is None:
            continue  # the test split is held out of the training file
        if not isinstance(value, dict) or not isinstance(value.get("path"), str):
            null = "null or " if part == "test" else ""
            raise DerivedError(
                f"{where}: source.{part} must be {null}an object with the 'path' of the "
                f"{part} file; got {value!r}"
            )


def check_test_fraction_used(o: ClassifyOptions) -> None:
    """Refuse a --test-fraction that a new run would ignore (and yet record as if used):
    it shares out --data only, when no test file is given. The default is no request."""
    if o.test_fraction == TEST_FRACTION:
        return
    if o.test_data is not None:
        split = f"--test-data {o.test_data} is the test split"
    elif o.data is None:
        split = f"--dataset {o.dataset or DEFAULT_DATASET} has its official test split"
    else:
        return
    raise ValueError(
        f"--test-fraction {o.test_fraction:g} holds out a share of --data, and {split}; "
        "leave --test-fraction out"
    )


def channel_stats(series: list[Tensor]) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation over every step of ``series`` (a constant
    channel gets 1, so it is only centred)."""
    steps = torch.cat(series).double()  # (sum T_i, D)
    mean = steps.mean(0)
    std = steps.std(0, unbiased=False) if len(steps) > 1 else torch.ones_like(mean)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    return [float(v) for v in mean], [float(v) for v in std]


def confusion_png(confusion: Tensor, classes: list[str], title: str) -> bytes:
    """The confusion matrix (rows: true class, columns: predicted) as PNG bytes.

    matplotlib's object API on an Agg canvas: no pyplot, no global backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from rnnkit.train.files import figure_bytes

    C = len(classes)
    if tuple(confusion.shape) != (C, C):
        raise ValueError(
            f"confusion_png: confusion must be ({C}, {C}) for {C} class names; got shape "
            f"{tuple(confusion.shape)}"
        )
    size = min(max(3.6, 0.45 * C + 2.2), 14.0)
    fig = Figure(figsize=(size + 0.8, size), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    totals = confusion.sum(1, keepdim=True).clamp(min=1)
    share = (confusion / totals).numpy()  # each true class's row sums to 1
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    if C <= 30:
        font = 8 if C <= 12 else 6
        for i in range(C):
            for j in range(C):
                n = int(confusion[i, j])
                if n:
                    ax.text(j, i, str(n), ha="center", va="center", fontsize=font,
                            color="white" if share[i, j] > 0.6 else "black")  # fmt: skip
        ax.set_xticks(range(C), classes, fontsize=font, rotation=90 if C > 12 else 0)
        ax.set_yticks(range(C), classes, fontsize=font)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title, fontsize=9)
    with warnings.catch_warnings():
        # A class name in a script the font lacks (e.g. CJK) is drawn as boxes; the
        # warning would only repeat on stderr what the figure shows.
        warnings.filterwarnings("ignore", "Glyph .* missing from font", UserWarning)
        fig.tight_layout()
        return figure_bytes(fig)
