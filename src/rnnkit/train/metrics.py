"""What a run shows: ``metrics.csv`` (one schema for every task), ``loss.png``, a progress line.

``metrics.csv`` is long-format - ``step, time, split, metric, value`` - so every task's
metrics fit it: the training loss and learning rate every ``log_every`` steps (split
``train``), and every metric of every evaluation (split ``validation``). The split names
the row's kind, which every reader keys on, so a refit's evaluations keep it too: they
score training data (``Task.scored_on``), which the log and the model card say.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from rnnkit.train.files import figure_bytes

COLUMNS = ("step", "time", "split", "metric", "value")


@dataclass(frozen=True)
class Row:
    step: int
    time: float  # seconds of training so far
    split: str  # "train" or "validation"
    metric: str
    value: float


def to_csv(rows: list[Row]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([r.step, f"{r.time:.2f}", r.split, r.metric, f"{r.value:.6g}"])
    return buf.getvalue().encode("utf-8")


def read_csv(path: Path, up_to_step: int) -> list[Row]:
    """The rows of ``path`` up to ``up_to_step`` (a resumed run continues them)."""
    if not path.is_file() or path.is_symlink():
        return []
    rows = []
    with path.open(encoding="utf-8", newline="") as f:
        for rec in csv.DictReader(f):
            try:
                row = Row(
                    int(rec["step"]),
                    float(rec["time"]),
                    rec["split"],
                    rec["metric"],
                    float(rec["value"]),
                )
            except (KeyError, TypeError, ValueError):
                continue  # a hand-edited line: the curve goes on without it
            if row.step <= up_to_step:
                rows.append(row)
    return rows


def plot(rows: list[Row], title: str) -> bytes:
    """The training loss and each validation metric against steps, as PNG bytes
    (:func:`rnnkit.train.files.figure_bytes`, the writer every figure of rnnkit goes
    through)."""
    return figure_bytes(figure(rows, title))


def figure(rows: list[Row], title: str) -> Any:
    """The matplotlib Figure of :func:`plot`, on its own canvas.

    matplotlib's object API: no global backend is set, so a notebook's is untouched.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    val_metrics = sorted({r.metric for r in rows if r.split == "validation"})
    fig = Figure(figsize=(6.4, 3.2 + 1.2 * len(val_metrics)), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1 + len(val_metrics), 1, sharex=True, squeeze=False)[:, 0]
    train = [r for r in rows if r.split == "train" and r.metric == "loss"]
    axes[0].plot([r.step for r in train], [r.value for r in train], lw=1, label="train loss")
    val_loss = [r for r in rows if r.split == "validation" and r.metric == "loss"]
    if val_loss:
        axes[0].plot(
            [r.step for r in val_loss],
            [r.value for r in val_loss],
            "o-",
            ms=3,
            label="validation loss",
        )
    axes[0].set_ylabel("loss")
    axes[0].legend(fontsize=8)
    for ax, metric in zip(axes[1:], val_metrics, strict=True):
        pts = [r for r in rows if r.split == "validation" and r.metric == metric]
        ax.plot([r.step for r in pts], [r.value for r in pts], "o-", ms=3)
        ax.set_ylabel(metric)
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("step")
    axes[0].set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


class Progress:
    """A one-line progress bar on a terminal; plain lines when output is redirected."""

    def __init__(self, out: TextIO | None = None, width: int = 24) -> None:
        self.out = out or sys.stderr
        self.width = width
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())
        self._open = False

    def update(self, fraction: float, text: str) -> None:
        filled = round(self.width * min(max(fraction, 0.0), 1.0))
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"[{bar}] {fraction:4.0%} {text}"
        if self.tty:
            self.out.write("\r" + line + "\033[K")
            self._open = True
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def message(self, text: str) -> None:
        """A line of its own (an evaluation, a sample) that the bar does not overwrite."""
        if self._open:
            self.out.write("\n")
            self._open = False
        self.out.write(text + "\n")
        self.out.flush()

    def close(self) -> None:
        if self._open:
            self.out.write("\n")
            self.out.flush()
            self._open = False


def clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"


def fmt(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) and abs(value) < 1e4 else f"{value:.4g}"
