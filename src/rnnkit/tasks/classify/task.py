"""``rnnkit train classify``: :class:`ClassifyTask`, the training loop's task - it reads
the data and splits it (or reads the split a resumed run recorded), builds the model,
draws the batches and computes the loss (each member of an ensemble on its own batch),
evaluates on validation, and scores the test: its accuracy at the end of training, and
per class with ``confusion.png`` in ``rnnkit eval``'s report.

It ties the other modules together, and none of them imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.tasks.base import DerivedError, Task, display_width, report_folder
from rnnkit.tasks.classify.batches import SeriesBatches, Split
from rnnkit.tasks.classify.model import SequenceClassifier
from rnnkit.tasks.classify.options import AUTO_STEPS, ClassifyOptions
from rnnkit.tasks.classify.rundata import (
    channel_stats,
    check_derived,
    check_split,
    check_test_fraction_used,
    describe_source,
    make_split,
    map_labels,
    read_source,
)
from rnnkit.tasks.classify.scoring import (
    accuracy,
    confusion_matrix,
    confusion_png,
    majority_class,
    predict,
)
from rnnkit.train import distributed
from rnnkit.train.config import TrainConfig
from rnnkit.train.files import file_sha256


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
