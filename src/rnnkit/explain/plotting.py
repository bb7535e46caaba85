"""Figures without a display: matplotlib's Agg backend, one style for every experiment."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib
from PIL import Image

matplotlib.use("Agg")  # files only: no window, works on servers and in tests

import matplotlib.pyplot as plt  # after matplotlib.use: the backend is fixed first

# Colours per model, kept fixed so the same model looks the same in every figure.
COLOURS = {
    "RNN tanh": "tab:red",
    "RNN relu": "tab:orange",
    "GRU": "tab:green",
    "LSTM": "tab:blue",
    "MinGRU": "tab:olive",
    "MinLSTM": "tab:cyan",
}


def figure(rows: int, cols: int, *, width: float, height: float) -> tuple[Any, Any]:
    """A figure and its axes array (always 2-D), sized in inches."""
    plt.rcParams.update({"font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10})
    fig, axes = plt.subplots(rows, cols, figsize=(width, height), squeeze=False)
    return fig, axes


def save(fig: Any, path: str | Path, title: str) -> Path:
    """Write ``fig`` as a PNG with ``title`` (the claim tested) on top; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.suptitle(title, fontsize=11, fontweight="bold")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)  # 80 dpi: 10-pt labels stay readable
    plt.close(fig)
    # A 256-colour palette keeps figures small enough to commit (tens of KB, not hundreds)
    # with no visible loss on line plots and heat maps.
    buffer.seek(0)
    with Image.open(buffer) as image:
        # Octree without dithering keeps colour maps smooth (median cut shifts their ends).
        small = image.convert("RGB").quantize(
            colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
        )
        small.save(path, format="PNG", optimize=True)
    return path
