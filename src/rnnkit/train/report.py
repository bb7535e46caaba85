"""What a run shows while it trains: a progress line, ``metrics.csv`` and ``loss.png``."""

from __future__ import annotations

import csv
import io
import math
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TextIO

from rnnkit.train.checkpoint import atomic_write

LN2 = math.log(2.0)


@dataclass
class Row:
    """One line of ``metrics.csv``; ``val_bpc`` is empty except at evaluations."""

    step: int
    chars: int  # training characters seen so far, summed over all processes
    elapsed_s: float
    lr: float
    train_loss: float  # mean cross-entropy in nats since the previous row
    train_bpc: float  # the same in bits per character: loss / ln 2
    chars_per_s: float  # training throughput since the previous row
    val_bpc: float | None = None


COLUMNS = [f.name for f in fields(Row)]


def write_metrics(path: Path, rows: list[Row]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow(
            [
                r.step,
                r.chars,
                f"{r.elapsed_s:.2f}",
                f"{r.lr:.6g}",
                f"{r.train_loss:.5f}",
                f"{r.train_bpc:.5f}",
                f"{r.chars_per_s:.0f}",
                "" if r.val_bpc is None else f"{r.val_bpc:.5f}",
            ]
        )
    atomic_write(path, buf.getvalue().encode("utf-8"))


def read_metrics(path: Path, up_to_step: int) -> list[Row]:
    """The rows of an earlier run up to ``up_to_step`` (a resumed run continues them)."""
    if not path.is_file():
        return []
    rows = []
    with path.open(encoding="utf-8", newline="") as f:
        for rec in csv.DictReader(f):
            try:
                row = Row(
                    step=int(rec["step"]),
                    chars=int(rec["chars"]),
                    elapsed_s=float(rec["elapsed_s"]),
                    lr=float(rec["lr"]),
                    train_loss=float(rec["train_loss"]),
                    train_bpc=float(rec["train_bpc"]),
                    chars_per_s=float(rec["chars_per_s"]),
                    val_bpc=float(rec["val_bpc"]) if rec.get("val_bpc") else None,
                )
            except (KeyError, TypeError, ValueError):
                continue  # a hand-edited or foreign line: the curve goes on without it
            if row.step <= up_to_step:
                rows.append(row)
    return rows


def plot_loss(path: Path, rows: list[Row], title: str) -> None:
    """Training and validation bits per character against steps, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed; must precede pyplot's import
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    ax.plot([r.step for r in rows], [r.train_bpc for r in rows], label="train", lw=1)
    val = [r for r in rows if r.val_bpc is not None]
    if val:
        ax.plot([r.step for r in val], [r.val_bpc for r in val], "o-", label="validation", ms=3)
    ax.set_xlabel("step")
    ax.set_ylabel("bits per character")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write(path, buf.getvalue())


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
