"""Figures without a display: matplotlib's object API, one style for every experiment.

Library hygiene: nothing here calls ``matplotlib.use`` or imports ``matplotlib.pyplot``,
so the backend, the open figures and the global ``rcParams`` of a notebook or an
application that imports rnnkit are left alone. Each figure draws on its own Agg canvas
(files only: no window, works on servers and in tests), and matplotlib and Pillow are
imported when a figure is drawn, not when rnnkit is imported.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

# Colours per model, kept fixed so the same model looks the same in every figure.
COLOURS = {
    "RNN tanh": "tab:red",
    "RNN relu": "tab:orange",
    "GRU": "tab:green",
    "LSTM": "tab:blue",
    "MinGRU": "tab:olive",
    "MinLSTM": "tab:cyan",
}

# One text style for every experiment; applied only while a figure is built and saved.
STYLE: dict[RcKeyType, Any] = {"font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10}


@contextmanager
def style() -> Iterator[None]:
    """Apply :data:`STYLE` inside the block; the caller's ``rcParams`` are restored after.

    Build a figure from :func:`figure` to :func:`save` inside it, so that titles, labels,
    legends and ticks created along the way get the style.
    """
    import matplotlib

    with matplotlib.rc_context(STYLE):
        yield


def figure(rows: int, cols: int, *, width: float, height: float) -> tuple[Any, Any]:
    """A figure and its axes array (always 2-D), sized in inches, on its own Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with style():
        fig = Figure(figsize=(width, height))
        FigureCanvasAgg(fig)  # attaches itself to fig: no pyplot, no global figure manager
        axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


# What rnnkit writes into its figures' metadata (a PNG's "Software" text, an SVG's creator):
# ``rnnkit explain`` replaces a figure of its own name only where it finds this.
MARK = "rnnkit explain"


def written_by_rnnkit(path: Path) -> bool:
    """Whether ``path`` is a figure rnnkit wrote: a plain file whose header (a PNG's text
    chunks come before its pixels) holds :data:`MARK`; a symbolic link never is."""
    from rnnkit.train.files import marked

    return marked(path, MARK)


def save(fig: Any, path: str | Path, title: str) -> Path:
    """Write ``fig`` as a PNG with ``title`` (the claim tested) on top; returns the path.

    Written atomically (:func:`rnnkit.train.files.atomic_write`): a kill leaves the old
    file or the new one, and a symbolic link at ``path`` is replaced, never followed."""
    from rnnkit.train.files import write_figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with style():
        fig.suptitle(title, fontsize=11, fontweight="bold")
        fig.tight_layout()
        # 80 dpi: 10-pt labels stay readable. A 256-colour palette keeps figures small
        # enough to commit (tens of KB, not hundreds) with no visible loss on line plots
        # and heat maps. No pyplot, so nothing to close: the figure is freed with its last
        # reference.
        return write_figure(fig, path, dpi=80, colours=256, software=MARK)
