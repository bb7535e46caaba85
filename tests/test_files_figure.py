"""One way from a matplotlib figure to a file: :func:`rnnkit.train.files.write_figure`.

The explain figures, the tagger's ``tagged.png``, the numbers task's attention heat map
and the classifier's confusion matrix all render through it, each with its own palette
and mark, so that atomic writing and marking are done (and fixed) in one place.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.train import files


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1.5), dpi=50)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(np.linspace(0, 1, 400).reshape(20, 20), cmap="viridis")
    return fig


def test_figure_bytes_reduces_the_palette_and_marks_the_png(tmp_path: Path) -> None:
    from PIL import Image

    plain = files.figure_bytes(_figure())
    small = files.figure_bytes(_figure(), colours=16, software="rnnkit test")
    with Image.open(io.BytesIO(plain)) as image:
        assert image.mode == "RGBA"
    with Image.open(io.BytesIO(small)) as image:
        assert image.mode == "P" and len(image.getcolors()) <= 16
        assert image.info["Software"] == "rnnkit test"
    path = files.write_figure(_figure(), tmp_path / "f.png", software="rnnkit test")
    assert path == tmp_path / "f.png" and files.marked(path, "rnnkit test")
    with Image.open(io.BytesIO(files.figure_bytes(_figure(), dpi=100))) as image:
        assert image.size == (200, 150)  # the dpi given, not the figure's 50


def test_a_palette_or_mark_is_refused_for_another_format() -> None:
    with pytest.raises(ValueError, match="apply to a PNG figure; got format 'svg'"):
        files.figure_bytes(_figure(), "svg", colours=16)
    assert files.figure_bytes(_figure(), "svg").lstrip().startswith(b"<?xml")


def test_write_figure_replaces_a_link_and_writes_nothing_when_drawing_fails(
    tmp_path: Path,
) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    link = tmp_path / "f.png"
    link.symlink_to(precious)
    files.write_figure(_figure(), link)
    assert precious.read_text() == "keep me" and not link.is_symlink()
    fig = _figure()
    fig.axes[0].text(0, 0, "$\\frac{$")  # bad mathtext: fails while rendering
    with pytest.raises(ValueError):
        files.write_figure(fig, tmp_path / "g.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "precious.txt"]


def test_every_figure_writer_renders_through_the_one_helper(tmp_path, monkeypatch) -> None:
    from rnnkit.explain import plotting
    from rnnkit.seq2seq import Translation, plot_attention
    from rnnkit.tasks.classify import confusion_png
    from rnnkit.tasks.tag import Encoded, draw_tagged

    calls: list[tuple[str, dict]] = []
    real = files.figure_bytes

    def spy(fig, fmt="png", **kwargs):
        calls.append((fmt, kwargs))
        return real(fig, fmt, **kwargs)

    monkeypatch.setattr(files, "figure_bytes", spy)

    fig, axes = plotting.figure(1, 1, width=2, height=1.5)
    axes[0, 0].plot([0, 1], [1, 0])
    plotting.save(fig, tmp_path / "explain.png", "title")
    assert plotting.written_by_rnnkit(tmp_path / "explain.png")
    attention = torch.softmax(torch.randn(3, 5), dim=-1)
    plot_attention(Translation("forty", "42", -0.1, attention), tmp_path / "a.svg")
    data = Encoded(torch.tensor([0, 1, 2]), torch.tensor([0, 1, 0]), torch.tensor([0, 3]))
    from rnnkit.data.tagging import Document

    docs = [Document("ab\n", np.array([0, 1, 0]), "line 1")]
    draw_tagged(docs, data, data.y.long(), data.y.long(), ["A", "B"], tmp_path / "t.png", "t")
    confusion_png(torch.tensor([[2, 1], [0, 3]]), ["a", "b"], "title")
    assert calls == [
        ("png", {"dpi": 80, "colours": 256, "software": plotting.MARK}),
        ("svg", {"dpi": None, "colours": None, "software": None}),
        ("png", {"dpi": None, "colours": 64, "software": None}),
        ("png", {}),
    ]
