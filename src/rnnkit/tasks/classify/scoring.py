"""Scoring a classifier: its logits for padded series, a chunk of about one length at a
time (:func:`logits_of`), a split's predicted classes and mean cross-entropy
(:func:`predict`), :func:`accuracy`, :func:`confusion_matrix` and its figure
(:func:`confusion_png`), and the majority class that the baseline predicts.

Apart from the task because they take any model and any class indices: the task's
evaluation and report, ``rnnkit predict``, the benchmarks and a user's code call them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.tasks.base import model_device
from rnnkit.tasks.classify.batches import Split
from rnnkit.tasks.classify.model import _integer

EVAL_BATCH = 256  # series scored at once


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
