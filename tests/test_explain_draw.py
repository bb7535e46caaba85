"""`rnnkit explain draw`: the chapter's figures, with every size read from the module drawn."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import torch
from PIL import Image

import rnnkit
from _refusals import raises_exactly
from rnnkit.cli import main
from rnnkit.explain.draw import KINDS, build, describe, draw_figure, numbers_model
from rnnkit.seq2seq.model import Seq2Seq, Seq2SeqConfig

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    yield  # the commands set one thread themselves (--threads, default 1)
    torch.set_num_threads(threads)


def _svg_labels(path) -> list[str]:
    """The text of every <text> element: one per label drawn (the file must be valid XML)."""
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    return ["".join(e.itertext()).strip() for e in root.iter(f"{SVG}text")]


def _check_png(path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()  # raises on a truncated or corrupt file
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 500 and image.height > 250
    assert path.stat().st_size <= 100_000


def _small_seq2seq(**options) -> Seq2Seq:
    return Seq2Seq(Seq2SeqConfig(src_vocab_size=9, tgt_vocab_size=7, **options))


# ---- reading the module ------------------------------------------------------------------


def test_lstm_gate_blocks_and_shapes_are_read_from_the_module() -> None:
    spec = describe(rnnkit.LSTM(8, 16)).layer
    assert spec.parameters == 4 * 16 * (8 + 16 + 2) == 1664
    assert [(b.name, b.activation, b.rows) for b in spec.blocks] == [
        ("i", "σ", (0, 16)),
        ("f", "σ", (16, 32)),
        ("g", "tanh", (32, 48)),
        ("o", "σ", (48, 64)),
    ]
    assert spec.matrix("weight_ih_l0").size == "4H×I = 64×8"
    assert spec.matrix("weight_hh_l0").size == "4H×H = 64×16"
    assert spec.matrix("bias_hh_l0").size == "4H = 64"
    f = ["$f^t$", "σ", "rows 16:32", "$W_{xf}$", "16×8", "$W_{hf}$", "16×16"]
    assert spec.blocks[1].cells() == f


def test_torch_layers_read_like_rnnkit_layers() -> None:
    for ours, theirs in (
        (rnnkit.LSTM(5, 7, 2, bidirectional=True), torch.nn.LSTM(5, 7, 2, bidirectional=True)),
        (rnnkit.GRU(3, 4), torch.nn.GRU(3, 4)),
        (rnnkit.RNN(3, 4, nonlinearity="relu"), torch.nn.RNN(3, 4, nonlinearity="relu")),
    ):
        a, b = describe(ours).layer, describe(theirs).layer
        assert (a.mode, a.blocks, a.matrices) == (b.mode, b.blocks, b.matrices)
        assert a.parameters == b.parameters
        assert a.owner == f"rnnkit.{type(ours).__name__}"
        assert b.owner == f"torch.nn.{type(theirs).__name__}"
    spec = describe(torch.nn.LSTM(5, 7, 2, bidirectional=True)).layer
    # The second layer reads both directions of the first: 2H columns.
    assert spec.matrix("weight_ih_l1_reverse").size == "4H×2H = 28×14"


def test_gru_and_the_default_figure_of_each_layer() -> None:
    d = describe(rnnkit.GRU(8, 16))
    assert d.kind == "gru" and d.layer.parameters == 3 * 16 * (8 + 16 + 2)
    assert [b.name for b in d.layer.blocks] == ["r", "z", "n"]
    assert describe(rnnkit.RNN(8, 16)).kind == "rnn"
    assert describe(rnnkit.LSTM(8, 16)).kind == "lstm"
    assert describe(rnnkit.GRU(8, 16, bidirectional=True)).kind == "bidirectional"
    assert describe(_small_seq2seq()).kind == "seq2seq"
    assert describe(_small_seq2seq(), kind="gru").layer.owner == "rnnkit.GRU"  # its encoder


def test_the_numbers_model_is_read_with_its_defaults() -> None:
    q = describe(numbers_model()).seq2seq
    assert q is not None
    # `rnnkit train numbers` defaults: English words -> digits, GRU 64 per direction -> 128.
    assert q.encoder.call() == "rnnkit.GRU(input_size=32, hidden_size=64, bidirectional=True)"
    assert (q.decoder, q.decoder_input, q.decoder_hidden) == ("GRUCell", 160, 128)
    assert q.attention == "general" and q.input_feeding
    assert q.matrix("src_embed").size == "V_src×E = 25×32"
    assert q.matrix("head").size == "V_tgt×Hd = 14×128"
    assert q.matrix("bridge").size == "Hd×2He = 128×128"
    assert q.matrix("combine").size == "Hd×(2He+Hd) = 128×256"
    assert q.matrix("cells.0.weight_ih").size == "3Hd×(E+Hd) = 384×160"


# ---- drawing -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_draws_a_png_and_an_svg_with_its_shapes(kind, tmp_path) -> None:
    module = _small_seq2seq() if kind == "seq2seq" else build(kind, input_size=5, hidden=6)
    _check_png(draw_figure(module, tmp_path / f"{kind}.png", kind=kind))
    labels = _svg_labels(draw_figure(module, tmp_path / f"{kind}.svg", kind=kind))
    weight_ih = {"rnn": "H×I = 6×5", "lstm": "4H×I = 24×5", "gru": "3H×I = 18×5"}
    expected = {
        "rnn": [weight_ih["rnn"], "weight_ih_l0", "H×H = 6×6"],
        "lstm": [weight_ih["lstm"], "4H×H = 24×6", "rows 18:24", "6×5"],
        "gru": [weight_ih["gru"], "3H×H = 18×6", "rows 12:18"],
        "bidirectional": ["weight_hh_l0_reverse", "H×H = 6×6", "2H = 12 = output_size"],
        "seq2seq": ["V_src×E = 9×32", "V_tgt×Hd = 7×128", "3Hd×(E+Hd) = 384×160"],
    }[kind]
    for label in expected:
        assert label in labels, f"{label!r} missing from the {kind} SVG"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{kind}.png", f"{kind}.svg"]


def test_the_labels_follow_the_module(tmp_path) -> None:
    small = _svg_labels(draw_figure(rnnkit.LSTM(8, 16), tmp_path / "a.svg"))
    large = _svg_labels(draw_figure(rnnkit.LSTM(8, 32), tmp_path / "b.svg"))
    assert "4H×H = 64×16" in small and "4H×H = 64×16" not in large
    assert "4H×H = 128×32" in large and "4H×H = 128×32" not in small
    assert "rows 96:128" in large and "1 664 parameters" in small


def test_a_torch_lstm_draws_too(tmp_path) -> None:
    labels = _svg_labels(draw_figure(torch.nn.LSTM(5, 7), tmp_path / "torch.svg"))
    assert "read from torch.nn.LSTM(input_size=5, hidden_size=7):" in labels
    assert "4H×I = 28×5" in labels and "4H×H = 28×7" in labels
    _check_png(draw_figure(torch.nn.GRU(5, 7), tmp_path / "torch.png"))


def test_unrolled_figure_has_one_copy_per_step_and_layer(tmp_path) -> None:
    layer = rnnkit.RNN(4, 3, num_layers=2)
    labels = _svg_labels(draw_figure(layer, tmp_path / "rnn.svg", steps=5))
    assert sum(label.startswith("tanh") for label in labels) == 1 + 2 * 5  # folded + copies
    assert "H×H = 3×3" in labels and "weight_ih_l1" in labels  # the second layer reads H


def test_the_same_module_gives_the_same_svg(tmp_path) -> None:
    module = rnnkit.GRU(8, 16)
    a = draw_figure(module, tmp_path / "a.svg").read_bytes()
    b = draw_figure(module, tmp_path / "b.svg").read_bytes()
    assert a == b


def test_drawing_leaves_the_callers_rcparams_alone(tmp_path) -> None:
    import matplotlib

    before = {k: matplotlib.rcParams[k] for k in ("svg.fonttype", "svg.hashsalt", "font.size")}
    draw_figure(rnnkit.LSTM(3, 4), tmp_path / "x.svg")
    draw_figure(rnnkit.LSTM(3, 4), tmp_path / "x.png")
    assert {k: matplotlib.rcParams[k] for k in before} == before


def test_bad_arguments_are_refused_before_anything_is_written(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"path must end in \.png or \.svg; got"):
        draw_figure(rnnkit.RNN(3, 4), tmp_path / "x.jpg")
    with pytest.raises(ValueError, match=r"steps must be an integer in \[1, 6\]; got 7"):
        draw_figure(rnnkit.RNN(3, 4), tmp_path / "x.png", steps=7)
    with pytest.raises(ValueError, match="kind must be one of"):
        describe(rnnkit.RNN(3, 4), kind="cnn")
    with pytest.raises(
        ValueError, match=r"^draw: kind 'lstm' needs an LSTM layer; got rnnkit\.GRU \(GRU\)$"
    ):
        describe(rnnkit.GRU(3, 4), kind="lstm")
    with pytest.raises(ValueError, match="kind 'bidirectional' needs bidirectional=True"):
        describe(rnnkit.GRU(3, 4), kind="bidirectional")
    with pytest.raises(ValueError, match="at most 4 layers; got num_layers=5"):
        describe(rnnkit.RNN(3, 4, num_layers=5), kind="rnn")
    with pytest.raises(TypeError, match="kind 'seq2seq' needs a rnnkit Seq2Seq; got LSTM"):
        describe(rnnkit.LSTM(3, 4), kind="seq2seq")
    with pytest.raises(TypeError, match="module must be an RNN, LSTM or GRU layer"):
        describe(torch.nn.Linear(3, 4))
    with pytest.raises(ValueError, match="proj_size must be 0"):
        describe(torch.nn.LSTM(3, 4, proj_size=2))
    raises_exactly(ValueError, "draw: hidden must be a positive integer; got 0", build, "rnn",
                   hidden=0)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


# ---- the command -------------------------------------------------------------------------


def test_draw_command_writes_the_figure(tmp_path, capsys) -> None:
    argv = ["explain", "draw", "gru", "--hidden", "12", "--input-size", "5", "--format", "svg"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "rnnkit.GRU(input_size=5, hidden_size=12): 684 parameters" in out
    assert f"wrote {tmp_path / 'draw-gru.svg'}" in out
    assert "3H×H = 36×12" in _svg_labels(tmp_path / "draw-gru.svg")
    argv = ["explain", "draw", "bidirectional", "--cell", "lstm", "--steps", "2"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "rnnkit.LSTM(input_size=8, hidden_size=16, bidirectional=True)" in out
    _check_png(tmp_path / "draw-bidirectional.png")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["blah"], "argument KIND: invalid choice: 'blah'"),
        (["rnn", "--hidden", "0"], "argument --hidden: expected a positive integer; got 0"),
        (["rnn", "--format", "jpg"], "argument --format: invalid choice: 'jpg'"),
        (["rnn", "--steps", "9"], "argument --steps: expected an integer from 1 to 6; got 9"),
        (
            ["rnn", "--layers", "5"],
            "draw: --layers: the unrolled rnn figure draws at most 4 layers; got 5",
        ),
        ([], "draw: give KIND (rnn, lstm, gru, bidirectional, seq2seq) or --run"),
        (["lstm", "--cell", "gru"], "draw: kind 'lstm' draws the lstm cell; got cell='gru'"),
        (["--run", "runs/x", "--hidden", "4"], "--run reads the sizes from the run; got --hidden"),
    ],
)
def test_draw_command_mistakes_exit_2_with_one_line(argv, message, tmp_path, capsys) -> None:
    try:
        code = main(["explain", "draw", *argv, "--out", str(tmp_path)])
    except SystemExit as exc:  # argparse's own checks
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err
    assert list(tmp_path.iterdir()) == []


def test_draw_command_reads_a_run_folder(tmp_path, capsys) -> None:
    corpus = tmp_path / "code.py"
    corpus.write_text("def f(x):\n    return [x, 'a(b)']\n" * 8, encoding="utf-8")
    run = tmp_path / "run"
    train = ["train", "--text", str(corpus), "--cell", "gru", "--layers", "2", "--hidden", "6"]
    train += ["--embed", "4", "--seq-len", "8", "--batch-size", "2", "--steps", "1"]
    assert main([*train, "--eval-every", "1", "--threads", "1", "--out", str(run)]) == 0
    capsys.readouterr()
    out = tmp_path / "figures"
    assert main(["explain", "draw", "--run", str(run), "--format", "svg", "--out", str(out)]) == 0
    assert "rnnkit.GRU(input_size=4, hidden_size=6, num_layers=2)" in capsys.readouterr().out
    assert "3H×H = 18×6" in _svg_labels(out / "draw-gru.svg")
    assert main(["explain", "draw", "rnn", "--run", str(run), "--out", str(out)]) == 0
    _check_png(out / "draw-rnn.png")
    assert main(["explain", "draw", "lstm", "--run", str(run), "--out", str(out)]) == 2
    assert "kind 'lstm' needs an LSTM layer; got rnnkit.GRU" in capsys.readouterr().err
