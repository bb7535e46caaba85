"""The chapter's figures, drawn from a real module (chapter 10.2, 10.5, 10.8-10.13, 10.17-10.19).

Every size and gate in a figure is read from the module it draws, not typed in: the input and
hidden sizes, the layers and directions, and the parameter shapes. torch stacks a gated
cell's weights in blocks of H rows, ``weight_ih_l0`` (G·H, I) and ``weight_hh_l0`` (G·H, H),
in the order i, f, g (= c̃), o for the LSTM and r, z, n for the GRU; the figures name each
block with the chapter's symbol and give its rows and shape, e.g. "W_hh  4H×H = 64×16".

Five figures:

- ``rnn``: the recurrent neuron folded, y^t = f(x^t, h^{t-1}) (10.1), and unrolled over
  ``steps`` time steps with the same weights at every step (sections 10.2, 10.5, 10.6);
- ``lstm``: the LSTM cell with its cell state, the "conveyor belt" across the top (10.8-10.13;
  Hochreiter & Schmidhuber 1997; drawn as in Olah 2015, "Understanding LSTM Networks");
- ``gru``: the gated recurrent unit, torch's variant (10.17; Cho et al. 2014);
- ``bidirectional``: a forward and a backward row whose states are concatenated into y^t
  (10.18; Schuster & Paliwal 1997);
- ``seq2seq``: the encoder, the vector, the decoder and attention of
  :class:`~rnnkit.seq2seq.model.Seq2Seq` (10.19; Sutskever et al. 2014; Luong et al. 2015).

:func:`draw_figure` writes a PNG (through :func:`rnnkit.explain.plotting.save`) or an SVG whose
labels stay text, chosen by the file's suffix. Layers of rnnkit and of ``torch.nn`` work
alike: both use torch's parameter names.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from torch import nn

import rnnkit
from rnnkit.explain import _memory
from rnnkit.layers.base import RecurrentLayer
from rnnkit.train.files import atomic_write

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

    from rnnkit.cells.base import RecurrentCell
    from rnnkit.seq2seq.model import Seq2Seq

KINDS = ("rnn", "lstm", "gru", "bidirectional", "seq2seq")
LAYERS: dict[str, type[RecurrentLayer]] = {
    "rnn": rnnkit.RNN,
    "lstm": rnnkit.LSTM,
    "gru": rnnkit.GRU,
    "mingru": rnnkit.MinGRU,
    "minlstm": rnnkit.MinLSTM,
}
MAX_STEPS = 6  # time steps drawn; more would not fit a page
GATES = {"rnn": 1, "lstm": 4, "gru": 3, "mingru": 2, "minlstm": 3}  # G: blocks of H
# Peak resident memory on the CPU, measured: the module's float32 weights, ~4 B each, and
# the figure. P bounds the weights: layer l > 0 reads D·H inputs; the numbers model has a
# bidirectional encoder, a bridge, decoder cells fed h̃ too, attention and small embeddings.
MEMORY_RULE = (
    "32 MiB + 8 B·P within 2 GiB, P = D·L·G·H·(I + (D+1)·H + 2), D = 2 for bidirectional, "
    "else 1 (seq2seq: P = 3·L·G·H·(I + 4H + 2) + 64·(I + H)), G = 1, 4, 3, 2, 3 for rnn, "
    "lstm, gru, mingru, minlstm"
)


def memory_estimate(kind: str, cell: str, input_size: int, layers: int, hidden: int) -> int:
    """Bytes building ``kind`` with these sizes and drawing it takes at its peak, about."""
    G, I, L, H = GATES[cell], input_size, layers, hidden
    if kind == "seq2seq":
        weights = 3 * L * G * H * (I + 4 * H + 2) + 64 * (I + H)
    else:
        D = 2 if kind == "bidirectional" else 1
        weights = D * L * G * H * (I + (D + 1) * H + 2)
    return 32 * 2**20 + 8 * weights


def check_memory(
    kind: str, cell: str | None, sizes: dict[str, int | None], *, flags: bool = False
) -> None:
    """Refuse sizes past the memory bound, before the module is built. ``sizes`` holds
    input_size, layers and hidden in that order (None: the kind's default), under their API
    names or (``flags``) their flags; the hidden size is bounded last, at the others."""
    seq2seq = kind == "seq2seq"
    defaults = (32, 1, 128) if seq2seq else (8, 1, 16)  # seq2seq: the larger hidden size
    cell = cell or (kind if kind in ("lstm", "gru") else "gru" if seq2seq else "rnn")
    values = [d if v is None else v for v, d in zip(sizes.values(), defaults, strict=True)]
    order = [(name, v, 1) for name, v in zip(sizes, values, strict=True)]
    _memory.check(
        "draw", order, lambda *v: memory_estimate(kind, cell, *v), MEMORY_RULE, flags=flags
    )


MAX_ROWS = 4  # stacked layers drawn in the unrolled figure

# The blocks of H rows stacked in weight_ih / weight_hh, in the layer's order, as
# (torch's name, the chapter's symbol in mathtext, activation, subscript of its weights).
BLOCKS: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "RNN_TANH": (("h", "h^t", "tanh", "h"),),
    "RNN_RELU": (("h", "h^t", "relu", "h"),),
    "LSTM": (
        ("i", "i^t", "σ", "i"),
        ("f", "f^t", "σ", "f"),
        ("g", r"\tilde{c}^t", "tanh", "c"),  # the candidate, which (10.5) also calls c^t
        ("o", "o^t", "σ", "o"),
    ),
    "GRU": (("r", "r^t", "σ", "r"), ("z", "z^t", "σ", "z"), ("n", "n^t", "tanh", "n")),
    "MINGRU": (("z", "z^t", "σ", "z"), ("h̃", r"\tilde{h}^t", "linear", "h")),
    "MINLSTM": (
        ("f", "f^t", "σ", "f"),
        ("i", "i^t", "σ", "i"),
        ("h̃", r"\tilde{h}^t", "linear", "h"),
    ),
}
CELL_NAMES = {
    "RNN_TANH": "RNN tanh",
    "RNN_RELU": "RNN relu",
    "LSTM": "LSTM",
    "GRU": "GRU",
    "MINGRU": "MinGRU",
    "MINLSTM": "MinLSTM",
}

# ---- reading the module ----------------------------------------------------------------


@dataclass(frozen=True)
class Matrix:
    """One parameter: its name, its shape and the shape in symbols (``"4H×I"``)."""

    name: str
    shape: tuple[int, ...]
    symbols: str

    @property
    def size(self) -> str:
        """``"4H×I = 64×8"``: the shape in symbols and in numbers."""
        numbers = "×".join(str(n) for n in self.shape)
        return f"{self.symbols} = {numbers}" if self.symbols else numbers


@dataclass(frozen=True)
class Block:
    """One gate (or the candidate) of layer 0: H rows of weight_ih_l0 and weight_hh_l0."""

    name: str  # torch's block name: i, f, g, o / r, z, n / h
    symbol: str  # the chapter's symbol, mathtext without the dollars: f^t, \tilde{c}^t
    activation: str  # σ, tanh, relu, linear
    sub: str  # subscript of its weights: W_xf, W_hf
    rows: tuple[int, int]  # [start, stop) rows of the stacked matrices
    w_x: tuple[int, int]
    w_h: tuple[int, int] | None  # None: the minimal cells have no recurrent matrix

    def cells(self) -> list[str]:
        """Table cells: symbol, activation, rows, then each matrix's symbol and shape."""
        cells = [f"${self.symbol}$", self.activation, f"rows {self.rows[0]}:{self.rows[1]}"]
        cells += [f"$W_{{x{self.sub}}}$", "×".join(map(str, self.w_x))]
        if self.w_h is not None:
            cells += [f"$W_{{h{self.sub}}}$", "×".join(map(str, self.w_h))]
        return cells


@dataclass(frozen=True)
class LayerSpec:
    """What a recurrent layer is, as read from its attributes and parameter shapes."""

    owner: str  # "rnnkit.LSTM", "torch.nn.LSTM"
    mode: str  # torch's mode name: RNN_TANH, RNN_RELU, LSTM, GRU (or MINGRU, MINLSTM)
    input_size: int
    hidden_size: int
    num_layers: int
    bidirectional: bool
    blocks: tuple[Block, ...]  # layer 0, forward direction
    matrices: tuple[Matrix, ...]  # every parameter, per layer and direction
    parameters: int

    @property
    def cell(self) -> str:
        return CELL_NAMES[self.mode]

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    def matrix(self, name: str) -> Matrix | None:
        return next((m for m in self.matrices if m.name == name), None)

    def call(self) -> str:
        """``"rnnkit.LSTM(input_size=8, hidden_size=16)"`` with the options that differ."""
        args = [f"input_size={self.input_size}", f"hidden_size={self.hidden_size}"]
        if self.num_layers > 1:
            args.append(f"num_layers={self.num_layers}")
        if self.bidirectional:
            args.append("bidirectional=True")
        if self.mode == "RNN_RELU":
            args.append("nonlinearity='relu'")
        return f"{self.owner}({', '.join(args)})"

    def weights(self, k: int = 0, d: int = 0) -> list[list[str]]:
        """Table rows for layer ``k``, direction ``d``: the chapter's symbol, torch's name
        and the shape of W_xh, W_hh and the bias b (= b_ih + b_hh)."""
        suffix = f"_l{k}{'_reverse' if d else ''}"
        rows = []
        for name, symbol in (("weight_ih", "$W_{xh}$"), ("weight_hh", "$W_{hh}$")):
            m = self.matrix(name + suffix)
            if m is not None:
                rows.append([symbol, m.name, m.size])
        b = self.matrix("bias_ih" + suffix)
        if b is not None:
            both = self.matrix("bias_hh" + suffix) is not None
            rows.append(["$b$", b.name + (f" + bias_hh{suffix}" if both else ""), b.size])
        return rows


def _rows(n: int, H: int, unit: str = "H") -> str:
    """A row count in units of H: ``4H``, ``H``, or the number itself."""
    if n % H:
        return str(n)
    return unit if n == H else f"{n // H}{unit}"


def describe_layer(module: nn.Module) -> LayerSpec:
    """Read a recurrent layer of rnnkit or ``torch.nn``: sizes, gate blocks and shapes."""
    if isinstance(module, RecurrentLayer):
        mode, owner = module.kind, f"rnnkit.{type(module).__name__}"
    elif isinstance(module, nn.RNNBase):
        mode, owner = module.mode, f"torch.nn.{type(module).__name__}"
        if getattr(module, "proj_size", 0):
            raise ValueError(f"draw: proj_size must be 0 to be drawn; got {module.proj_size}")
    else:
        raise TypeError(
            "draw: module must be an RNN, LSTM or GRU layer of rnnkit or torch.nn, or a "
            f"rnnkit Seq2Seq; got {type(module).__name__}"
        )
    if mode not in BLOCKS:
        raise ValueError(f"draw: the cell {mode!r} has no figure; expected one of {list(BLOCKS)}")
    I, H, L = int(module.input_size), int(module.hidden_size), int(module.num_layers)
    D = 2 if module.bidirectional else 1
    params = dict(module.named_parameters())
    w_ih, w_hh = params["weight_ih_l0"], params.get("weight_hh_l0")
    names = BLOCKS[mode]
    if w_ih.shape[0] != len(names) * H:
        raise ValueError(
            f"draw: weight_ih_l0 of a {mode} layer must have {len(names)}·H = "
            f"{len(names) * H} rows; got the shape {tuple(w_ih.shape)}"
        )
    blocks = tuple(
        Block(
            name,
            symbol,
            activation,
            sub,
            (g * H, (g + 1) * H),
            (H, int(w_ih.shape[1])),
            None if w_hh is None else (H, int(w_hh.shape[1])),
        )
        for g, (name, symbol, activation, sub) in enumerate(names)
    )
    matrices = []
    for name, p in params.items():
        rows = _rows(int(p.shape[0]), H)
        if p.dim() == 1:
            symbols = rows
        elif name.startswith("weight_ih_l0"):
            symbols = f"{rows}×I"
        elif name.startswith("weight_ih"):  # reads the layer below: H, or 2H from both directions
            symbols = f"{rows}×{'H' if D == 1 else '2H'}"
        else:
            symbols = f"{rows}×H"
        matrices.append(Matrix(name, tuple(int(n) for n in p.shape), symbols))
    return LayerSpec(
        owner,
        mode,
        I,
        H,
        L,
        D == 2,
        blocks,
        tuple(matrices),
        sum(p.numel() for p in module.parameters()),
    )


@dataclass(frozen=True)
class Seq2SeqSpec:
    """What an encoder-decoder is, as read from a :class:`~rnnkit.seq2seq.model.Seq2Seq`."""

    encoder: LayerSpec
    decoder: str  # the decoder cell's class name: GRUCell, LSTMCell, ...
    decoder_input: int  # embedding + fed-back h̃ (input feeding)
    decoder_hidden: int
    decoder_layers: int
    embed: int
    attention: str  # none | additive | dot | general
    matrices: tuple[Matrix, ...]  # embeddings, bridge, decoder cell 0, attention, W_c, W_s
    parameters: int

    @property
    def input_feeding(self) -> bool:
        """Whether h̃^{t-1} is fed back into the decoder (Luong et al. 2015, sec. 3.3)."""
        return self.decoder_input > self.embed

    def matrix(self, name: str) -> Matrix | None:
        return next((m for m in self.matrices if m.name == name), None)


def describe_seq2seq(model: nn.Module) -> Seq2SeqSpec:
    """Read a :class:`~rnnkit.seq2seq.model.Seq2Seq`: its sizes, from its parameters.

    Symbols: V_src, V_tgt the vocabularies, E the embedding, He and Hd the encoder's (per
    direction) and the decoder's hidden sizes.
    """
    seq2seq = cast("Seq2Seq", model)  # what the docstring asks for (draw checks it)
    encoder = describe_layer(seq2seq.encoder)
    cell = cast("RecurrentCell", seq2seq.cells[0])  # a decoder cell, from DECODER_CELLS
    Hd = int(cell.hidden_size)
    shape = {name: tuple(int(n) for n in p.shape) for name, p in model.named_parameters()}
    E = shape["tgt_embed.weight"][1]
    out = "2He" if encoder.bidirectional else "He"  # the size of h̄^s and of the vector
    fed = "(E+Hd)" if int(cell.input_size) > E else "E"  # input feeding adds h̃^{t-1}
    symbols = {
        "src_embed.weight": "V_src×E",
        "bridge.weight": f"{_rows(shape['bridge.weight'][0], Hd, 'Hd')}×{out}",  # L·Hd rows
        "cells.0.weight_ih": f"{_rows(shape['cells.0.weight_ih'][0], Hd, 'Hd')}×{fed}",
        "cells.0.weight_hh": f"{_rows(shape.get('cells.0.weight_hh', (1,))[0], Hd, 'Hd')}×Hd",
        "tgt_embed.weight": "V_tgt×E",
        "attention.W_a.weight": f"Hd×{out}",
        "attention.W_1.weight": f"Hd×{out}",
        "attention.W_2.weight": "Hd×Hd",
        "attention.v_a.weight": "1×Hd",
        "combine.weight": f"Hd×({out}+Hd)",
        "head.weight": "V_tgt×Hd",
    }
    matrices = tuple(
        Matrix(name.removesuffix(".weight"), shape[name], text)
        for name, text in symbols.items()
        if name in shape
    )
    return Seq2SeqSpec(
        encoder,
        type(cell).__name__,
        int(cell.input_size),
        Hd,
        len(seq2seq.cells),
        E,
        str(seq2seq.attention.kind),
        matrices,
        sum(p.numel() for p in model.parameters()),
    )


# ---- the diagram -----------------------------------------------------------------------


def _number(n: int) -> str:
    return f"{n:,}".replace(",", " ")


def _plain(text: str) -> str:
    """Mathtext for the terminal: drop the dollars, braces and backslash commands."""
    for old, new in ((r"\tilde{c}", "c̃"), (r"\tilde{h}", "h̃"), ("$", ""), ("{", ""), ("}", "")):
        text = text.replace(old, new)
    return text


@dataclass(frozen=True)
class Diagram:
    """One of the chapter's figures for one module: what was read, ready to draw."""

    kind: str
    steps: int
    layer: LayerSpec  # the encoder for seq2seq
    seq2seq: Seq2SeqSpec | None = None

    def title(self) -> str:
        s = self.layer
        layer = s.owner + (f" ({s.mode[4:].lower()})" if s.mode.startswith("RNN") else "")
        sizes = f"I = {s.input_size}, H = {s.hidden_size}"
        if self.kind == "rnn":
            return (
                f"Unrolling the RNN (sections 10.2, 10.5): {layer}, {sizes}, "
                f"{s.num_layers} layer{'s' if s.num_layers > 1 else ''}, {self.steps} steps"
            )
        if self.kind == "lstm":
            return f"The LSTM cell (sections 10.8-10.13): {layer}, {sizes}"
        if self.kind == "gru":
            return f"The gated recurrent unit (section 10.17): {layer}, {sizes}"
        if self.kind == "bidirectional":
            return f"Bidirectional RNN (section 10.18): {layer}, {sizes} per direction"
        q = self.seq2seq
        assert q is not None
        return (
            f"Seq2seq (section 10.19): {'bidirectional ' if s.bidirectional else ''}{s.cell} "
            f"encoder {s.hidden_size} → {q.decoder} decoder {q.decoder_hidden}, attention "
            f"{q.attention}"
        )

    def report(self) -> str:
        """The figure's title and everything read from the module, as text."""
        s, q = self.layer, self.seq2seq
        lines = [self.title()]
        lines.append(f"{'encoder ' if q else ''}{s.call()}: {_number(s.parameters)} parameters")
        lines += [f"  {m.name:<24}{m.size}" for m in s.matrices]
        if len(s.blocks) > 1:
            lines.append(f"  blocks of H rows, in order: {', '.join(b.name for b in s.blocks)}")
            for b in s.blocks:
                symbol, activation, rows, *weights = b.cells()
                pairs = "   ".join(
                    f"{_plain(weights[j])} {weights[j + 1]}" for j in range(0, len(weights), 2)
                )
                lines.append(f"    {_plain(symbol):<6}{activation:<8}{rows:<16}{pairs}")
        if q is not None:
            layers = f" × {q.decoder_layers}" if q.decoder_layers > 1 else ""
            fed = f" + fed-back h̃ {q.decoder_input - q.embed}" if q.input_feeding else ""
            lines.append(
                f"decoder {q.decoder}(input {q.decoder_input} = embedding {q.embed}{fed}, hidden "
                f"{q.decoder_hidden}){layers}, attention {q.attention!r}; the whole model: "
                f"{_number(q.parameters)} parameters"
            )
            lines += [f"  {m.name:<24}{m.size}" for m in q.matrices]
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        """Draw the figure into ``path``: a PNG or an SVG, by the suffix."""
        path = _checked_path(path)
        from rnnkit.explain import plotting

        figure = {
            "rnn": _draw_unrolled,
            "lstm": _draw_lstm,
            "gru": _draw_gru,
            "bidirectional": _draw_bidirectional,
            "seq2seq": _draw_seq2seq,
        }[self.kind]
        with plotting.style():  # the caller's rcParams are restored after
            fig = figure(self)
            if path.suffix.lower() == ".svg":
                return _save_svg(fig, path, self.title())
            return plotting.save(fig, path, self.title())


def _checked_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg"):
        raise ValueError(f"draw: path must end in .png or .svg; got {str(path)!r}")
    return path


def _default_kind(module: nn.Module) -> str:
    from rnnkit.seq2seq.model import Seq2Seq

    if isinstance(module, Seq2Seq):
        return "seq2seq"
    spec = describe_layer(module)
    if spec.bidirectional:
        return "bidirectional"
    return {"LSTM": "lstm", "GRU": "gru"}.get(spec.mode, "rnn")


def describe(module: nn.Module, *, kind: str | None = None, steps: int = 3) -> Diagram:
    """Read ``module`` for the figure ``kind`` (default: the module's own).

    ``rnn``: any recurrent layer; ``bidirectional``: one with ``bidirectional=True``;
    ``lstm``, ``gru``: an LSTM or a GRU layer; ``seq2seq``: a
    :class:`~rnnkit.seq2seq.model.Seq2Seq`, whose encoder the other kinds draw.
    """
    from rnnkit.seq2seq.model import Seq2Seq

    if kind is not None and kind not in KINDS:
        raise ValueError(f"draw: kind must be one of {', '.join(KINDS)}; got {kind!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"draw: steps must be an integer in [1, {MAX_STEPS}]; got {steps!r}")
    kind = kind or _default_kind(module)
    if kind == "seq2seq":
        if not isinstance(module, Seq2Seq):
            raise TypeError(
                f"draw: kind 'seq2seq' needs a rnnkit Seq2Seq; got {type(module).__name__}"
            )
        q = describe_seq2seq(module)
        return Diagram(kind, steps, q.encoder, q)
    spec = describe_layer(module.encoder if isinstance(module, Seq2Seq) else module)
    need = {"lstm": "LSTM", "gru": "GRU"}.get(kind)
    if need is not None and spec.mode != need:
        raise ValueError(
            f"draw: kind {kind!r} needs an {need} layer; got {spec.owner} ({spec.cell})"
        )
    if kind == "bidirectional" and not spec.bidirectional:
        raise ValueError(f"draw: kind 'bidirectional' needs bidirectional=True; got {spec.call()}")
    if kind == "rnn" and spec.num_layers > MAX_ROWS:
        raise ValueError(
            f"draw: the unrolled figure draws at most {MAX_ROWS} layers; got num_layers="
            f"{spec.num_layers}"
        )
    return Diagram(kind, steps, spec)


def draw_figure(
    module: nn.Module, path: str | Path, *, kind: str | None = None, steps: int = 3
) -> Path:
    """Draw the chapter's figure ``kind`` of ``module`` into ``path`` (.png or .svg).

    Example (the figure written into a temporary folder)::

        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     path = draw_figure(rnnkit.LSTM(8, 16), f"{tmp}/lstm.svg")
        ...     path.name, path.stat().st_size > 0
        ('lstm.svg', True)
    """
    path = _checked_path(path)
    return describe(module, kind=kind, steps=steps).plot(path)


# ---- modules to draw ---------------------------------------------------------------------


def numbers_model(**options: Any) -> nn.Module:
    """The encoder-decoder ``rnnkit train numbers`` builds, with its defaults (English,
    words → digits) or ``options`` of :class:`~rnnkit.tasks.numbers.NumbersOptions`; the
    vocabulary sizes come from the task's own sample of numbers (this imports num2words)."""
    from rnnkit.seq2seq.data import CharVocab
    from rnnkit.seq2seq.model import Seq2Seq
    from rnnkit.tasks.numbers import NumbersOptions

    o = NumbersOptions(**options)
    src, tgt = o.pairs().vocab_texts()
    return Seq2Seq(o.model_config(len(CharVocab("".join(src))), len(CharVocab("".join(tgt)))))


def build(
    kind: str,
    *,
    input_size: int | None = None,
    hidden: int | None = None,
    layers: int | None = None,
    cell: str | None = None,
) -> nn.Module:
    """A module for the figure ``kind``: an rnnkit layer (defaults I = 8, H = 16, one layer,
    ``cell`` rnn for the unrolled and bidirectional figures) or, for ``seq2seq``, the
    numbers task's model, whose embedding size, hidden sizes (encoder per direction and
    decoder), layers and cells (encoder and decoder) the arguments replace when given."""
    if kind not in KINDS:
        raise ValueError(f"draw: kind must be one of {', '.join(KINDS)}; got {kind!r}")
    for name, value in (("input_size", input_size), ("hidden", hidden), ("layers", layers)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ValueError(f"draw: {name} must be a positive integer; got {value!r}")
    if cell is not None and cell not in LAYERS:
        raise ValueError(f"draw: cell must be one of {', '.join(LAYERS)}; got {cell!r}")
    check_memory(kind, cell, {"input_size": input_size, "layers": layers, "hidden": hidden})
    if kind == "seq2seq":
        given = {
            "embed_size": input_size,
            "encoder_hidden": hidden,
            "decoder_hidden": hidden,
            "encoder_layers": layers,
            "decoder_layers": layers,
            "encoder": cell,
            "decoder": cell,
        }
        return numbers_model(**{k: v for k, v in given.items() if v is not None})
    if kind in ("lstm", "gru"):
        if cell is not None and cell != kind:
            raise ValueError(f"draw: kind {kind!r} draws the {kind} cell; got cell={cell!r}")
        cell = kind
    return LAYERS[cell or "rnn"](
        input_size or 8, hidden or 16, num_layers=layers or 1, bidirectional=kind == "bidirectional"
    )


def recurrent_module(model: nn.Module) -> nn.Module:
    """The part of a loaded model to draw: a Seq2Seq itself, else its first recurrent layer."""
    from rnnkit.seq2seq.model import Seq2Seq

    if isinstance(model, Seq2Seq):
        return model
    for module in model.modules():
        if isinstance(module, RecurrentLayer | nn.RNNBase):
            return module
    raise ValueError(f"draw: the model has no recurrent layer to draw; got {type(model).__name__}")


# ---- drawing primitives ------------------------------------------------------------------

UNIT = 0.5  # inches per unit of the drawing's coordinates
INK = "#333333"
COLOURS = {
    "σ": "#cfe2f3",  # gates
    "tanh": "#d9ead3",  # candidates and squashing
    "relu": "#d9ead3",
    "linear": "#d9ead3",
    "op": "#fce5cd",  # pointwise × and +
    "encoder": "#d9ead3",
    "decoder": "#cfe2f3",
    "attention": "#fff2cc",
}


def _canvas(x0: float, x1: float, y0: float, y1: float) -> tuple[Any, Any]:
    """A figure with one bare axes whose data units are :data:`UNIT` inches, equal in x, y."""
    from rnnkit.explain import plotting

    fig, axes = plotting.figure(1, 1, width=(x1 - x0) * UNIT, height=(y1 - y0) * UNIT)
    fig.subplots_adjust(left=0.0, right=1.0, bottom=0.0, top=1.0)  # so that 1 unit = UNIT
    fig.set_dpi(80)  # plotting.save's: text is measured as it will be drawn (hinting included)
    ax = axes[0, 0]
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def _fit(fig: Any, ax: Any, margin: float = 0.5) -> Any:
    """Grow the limits to hold every label and size the figure at :data:`UNIT` inches per
    unit: a label sticking out would make the layout shrink the whole drawing."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    box = ax.get_tightbbox(fig.canvas.get_renderer())
    (a, b), (c, e) = ax.transData.inverted().transform([[box.x0, box.y0], [box.x1, box.y1]])
    x0, x1, y0, y1 = min(x0, a - margin), max(x1, c + margin), min(y0, b - margin), max(y1, e)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    fig.set_size_inches((x1 - x0) * UNIT, (y1 - y0) * UNIT + 0.8)  # + the title
    return fig


def _box(
    ax: Any, x: float, y: float, w: float, h: float, text: str, colour: str, size: float = 10
) -> None:
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle="round,pad=0,rounding_size=0.12",
            fc=colour,
            ec=INK,
            lw=1.2,
            zorder=3,
        )
    )
    ax.text(x, y, text, ha="center", va="center", fontsize=size, zorder=4, linespacing=1.4)


def _background(x: float, y: float, w: float, h: float) -> Any:
    """The grey frame of a cell (or of the encoder's memory)."""
    from matplotlib.patches import FancyBboxPatch

    return FancyBboxPatch(
        (x, y),
        w,
        h,
        boxstyle="round,pad=0,rounding_size=0.3",
        fc="#f6f6f6",
        ec="#999999",
        lw=1.0,
        zorder=1,
    )


def _op(ax: Any, x: float, y: float, symbol: str, r: float = 0.26) -> None:
    """A pointwise operation: the Hadamard product ∘ (drawn ×) or the sum +."""
    from matplotlib.patches import Circle

    ax.add_patch(Circle((x, y), r, fc=COLOURS["op"], ec=INK, lw=1.2, zorder=3))
    ax.text(x, y, symbol, ha="center", va="center", fontsize=12, fontweight="bold", zorder=4)


def _dot(ax: Any, x: float, y: float) -> None:
    """Where a line splits in two (the same vector goes both ways)."""
    from matplotlib.patches import Circle

    ax.add_patch(Circle((x, y), 0.07, fc=INK, ec=INK, zorder=3))


def _line(
    ax: Any, *points: tuple[float, float], arrow: bool = True, halo: bool = False, colour: str = INK
) -> None:
    """A polyline through ``points``, with an arrow head at the end; ``halo`` draws a white
    margin around it, so that it visibly passes over the lines it crosses."""
    from matplotlib import patheffects
    from matplotlib.patches import FancyArrowPatch
    from matplotlib.path import Path as MplPath

    effects = [patheffects.withStroke(linewidth=5, foreground="white")] if halo else None
    ax.add_patch(
        FancyArrowPatch(
            path=MplPath(points),
            arrowstyle="-|>" if arrow else "-",
            mutation_scale=11,
            color=colour,
            lw=1.4,
            zorder=2.5 if halo else 2,
            shrinkA=0,
            shrinkB=0,
            path_effects=effects,
            joinstyle="miter",
            capstyle="butt",
        )
    )


def _text(
    ax: Any, x: float, y: float, text: str, size: float = 10, ha: str = "center", **kw: Any
) -> Any:
    return ax.text(x, y, text, ha=ha, va="center", fontsize=size, zorder=5, **kw)


def _width(ax: Any, artist: Any) -> float:
    """How wide ``artist`` is drawn, in data units."""
    box = artist.get_window_extent(ax.figure.canvas.get_renderer())
    (a, _), (b, _) = ax.transData.inverted().transform([[box.x0, 0.0], [box.x1, 0.0]])
    return float(b - a)


def _lines(
    ax: Any,
    x: float,
    y: float,
    blocks: list[str | list[list[str]]],
    size: float = 9.5,
    step: float = 0.55,
) -> float:
    """Text below (x, y), left-aligned: a string is one line, a list of rows is a table whose
    columns are as wide as their widest cell. One label per cell, so that each shape read
    from the module is one text element of an SVG. Returns the y under the last line."""
    renderer = ax.figure.canvas.get_renderer()
    points = 72 / ax.figure.dpi
    for block in blocks:
        rows = [[block]] if isinstance(block, str) else block
        left = 0.0  # points from x: the columns keep their widths if the drawing is scaled
        for column in range(max(len(row) for row in rows)):
            texts = [
                ax.annotate(
                    row[column],
                    (x, y - k * step),
                    xytext=(left, 0),
                    textcoords="offset points",
                    ha="left",
                    va="center",
                    fontsize=size,
                    zorder=5,
                    annotation_clip=False,
                )
                for k, row in enumerate(rows)
                if column < len(row)
            ]
            left += max(t.get_window_extent(renderer).width for t in texts) * points + 14
        y -= step * len(rows)
    return y


# ---- the figures -------------------------------------------------------------------------


def _cell_text(spec: LayerSpec) -> str:
    if spec.mode.startswith("RNN"):
        return "tanh" if spec.mode == "RNN_TANH" else "relu"
    return spec.cell


def _state(spec: LayerSpec, t: str) -> str:
    """The state passed along: h^t, or h^t, c^t for the LSTM."""
    return f"$h^{{{t}}}, c^{{{t}}}$" if spec.mode == "LSTM" else f"$h^{{{t}}}$"


def _equation(spec: LayerSpec) -> str:
    if spec.mode.startswith("RNN"):
        g = r"\tanh" if spec.mode == "RNN_TANH" else r"\mathrm{relu}"
        return f"(10.2)  $h^t = {g}(W_{{xh}}x^t + W_{{hh}}h^{{t-1}} + b)$"
    where = {"LSTM": "sections 10.8-10.13", "GRU": "section 10.17"}.get(
        spec.mode, "Feng et al. 2024"
    )
    blocks = ", ".join(b.name for b in spec.blocks)
    return f"{spec.cell} cell ({where}): blocks {blocks} of H rows in each matrix"


def _weight_rows(s: LayerSpec, layers: int) -> list[list[str]]:
    """The weights of the first ``layers`` layers, both directions, as table rows."""
    rows = []
    for k in range(layers):
        for d in range(s.directions):
            where = ["forward", "backward"][d] if s.bidirectional else "layer"
            where = f"{where} {k}" if s.num_layers > 1 or not s.bidirectional else where
            for j, row in enumerate(s.weights(k, d)):
                rows.append([f"{where}:" if j == 0 else "", *row])
    return rows


def _draw_unrolled(d: Diagram) -> Any:
    """10.2 folded, y^t = f(x^t, h^{t-1}), and 10.5 unrolled: one copy per step, same W."""
    s, K, L = d.layer, d.steps, d.layer.num_layers
    dx, w, h = 3.4, 1.8, 1.0
    x0 = 8.6  # centre of the first copy
    rows = [2.0 + 2.2 * k for k in range(L)]
    top, mid = rows[-1], sum(rows) / L
    last = x0 + (K - 1) * dx
    fig, ax = _canvas(-0.2, last + 3.0, -2.0, top + 2.0)

    # Folded (10.2): one cell, its state fed back into itself.
    _box(ax, 1.4, mid, w, h, _cell_text(s) + (f"\n{L} layers" if L > 1 else ""), COLOURS["tanh"])
    _line(ax, (1.4, 0.3), (1.4, mid - h / 2))
    _text(ax, 1.4, 0.0, "$x^t$")
    _line(ax, (1.4, mid + h / 2), (1.4, top + 1.2))
    _text(ax, 1.4, top + 1.5, "$y^t$")
    _line(
        ax,
        (1.4 + w / 2, mid + 0.15),
        (3.1, mid + 0.15),
        (3.1, mid + 1.1),
        (2.0, mid + 1.1),
        (2.0, mid + h / 2),
    )
    _text(ax, 3.25, mid + 0.65, "$h^{t-1}$", ha="left")
    _text(ax, 1.4, -0.6, "folded: $y^t = f(x^t, h^{t-1})$ (10.1)", size=9, style="italic")
    _text(ax, 4.7, mid, "=", size=20)

    # Unrolled (10.5): the same cell at every step.
    for k, y in enumerate(rows):
        label = _cell_text(s) + (f"\nlayer {k}" if L > 1 else "\n$W_{xh},\\ W_{hh}$")
        _line(ax, (x0 - w / 2 - 2.5, y), (x0 - w / 2, y))
        _text(ax, x0 - w / 2 - 1.25, y + 0.3, _state(s, "-1") + " = 0", size=9)
        for t in range(K):
            cx = x0 + t * dx
            _box(ax, cx, y, w, h, label, COLOURS["tanh"])
            end = cx + dx - w / 2 if t + 1 < K else cx + w / 2 + 1.3
            _line(ax, (cx + w / 2, y), (end, y))
            _text(ax, (cx + w / 2 + end) / 2, y + 0.3, _state(s, str(t)), size=9)
            if k + 1 < L:
                _line(ax, (cx, y + h / 2), (cx, rows[k + 1] - h / 2))
    for t in range(K):
        cx = x0 + t * dx
        _line(ax, (cx, 0.3), (cx, rows[0] - h / 2))
        _text(ax, cx, 0.0, f"$x^{{{t}}}$")
        _line(ax, (cx, top + h / 2), (cx, top + 1.2))
        _text(ax, cx, top + 1.5, f"$y^{{{t}}}$")
    # The parameters are shared: one bracket under all the copies.
    _line(
        ax,
        (x0 - w / 2, -0.3),
        (x0 - w / 2, -0.4),
        (last + w / 2, -0.4),
        (last + w / 2, -0.3),
        arrow=False,
    )
    _text(
        ax,
        (x0 + last) / 2,
        -0.7,
        "same $W_{xh}$, $W_{hh}$, $b$ at every step "
        "(section 10.6: share parameters across the sequence)",
        size=9,
        style="italic",
    )
    drawn = "; the forward direction is drawn" if s.bidirectional else ""
    _lines(
        ax,
        0.2,
        -1.5,
        [
            _equation(s) + ";  the layer's output is $y^t = h^t$ (the read-out $W_{hy}$ is a head)",
            _weight_rows(s, L),
            f"{s.call()}: {_number(s.parameters)} parameters{drawn}",
        ],
    )
    return _fit(fig, ax)


def _gate_table(ax: Any, s: LayerSpec, x: float, y: float, equations: dict[str, str]) -> None:
    """What the cell figures read from the module: the stacked matrices and each block."""
    blocks = ", ".join(b.name for b in s.blocks)
    rows = s.weights()
    rows[0] = [*rows[0], f"blocks {blocks} (torch's order)"]
    layers = ""
    if s.num_layers > 1 or s.bidirectional:
        forward = ", forward direction," if s.bidirectional else ""
        layers = f"; layer 0{forward} drawn, of {s.num_layers} × {s.directions} in all"
    _lines(
        ax,
        x,
        y,
        [
            f"read from {s.call()}:",
            rows,
            " ",
            [[*b.cells(), equations.get(b.name, "")] for b in s.blocks],
            " ",
            f"{_number(s.parameters)} parameters{layers}",
        ],
    )


def _draw_lstm(d: Diagram) -> Any:
    """The LSTM cell (10.8-10.13): the cell state across the top, four gates below."""
    s = d.layer
    fig, ax = _canvas(-2.0, 13.0, -1.3, 8.3)
    ax.add_patch(_background(0.4, 0.3, 10.6, 6.7))
    y_c, y_bus, y_gate = 6.2, 0.9, 2.6
    gates = {b.name: b for b in s.blocks}
    xs = {"f": 2.0, "i": 3.6, "g": 5.6, "o": 7.2}
    # The cell state: in from the left, × forget, + input·candidate, out on the right.
    _line(ax, (-1.2, y_c), (1.74, y_c))
    _op(ax, 2.0, y_c, "×")
    _line(ax, (2.26, y_c), (4.34, y_c))
    _op(ax, 4.6, y_c, "+")
    _line(ax, (4.86, y_c), (12.4, y_c))
    _text(ax, -1.2, y_c + 0.35, f"$c^{{t-1}} \\in \\mathbb{{R}}^{{{s.hidden_size}}}$", ha="left")
    _text(ax, 12.4, y_c + 0.35, "$c^t$", ha="right")
    _text(
        ax,
        5.1,
        y_c + 0.3,
        "cell state: the conveyor belt (10.9)",
        size=9,
        style="italic",
        ha="left",
    )
    _text(ax, 4.6, 7.4, r"(10.6)  $c^t = f^t \circ c^{t-1} + i^t \circ \tilde{c}^t$")
    # The inputs: h^{t-1} from the left, x^t from below, read by every gate.
    _line(ax, (-1.2, y_bus), (xs["o"], y_bus), arrow=False)
    _line(ax, (1.0, -0.5), (1.0, y_bus), arrow=False)
    _dot(ax, 1.0, y_bus)
    _text(ax, -1.2, y_bus + 0.35, f"$h^{{t-1}} \\in \\mathbb{{R}}^{{{s.hidden_size}}}$", ha="left")
    _text(ax, 1.0, -0.85, f"$x^t \\in \\mathbb{{R}}^{{{s.input_size}}}$")
    for name, x in xs.items():
        b = gates[name]
        _line(ax, (x, y_bus), (x, y_gate - 0.4))
        if name != "o":
            _dot(ax, x, y_bus)
        _box(ax, x, y_gate, 1.2, 0.8, b.activation, COLOURS[b.activation], size=11)
    # f^t to the forget ×; i^t and c̃^t multiplied, then added to the cell state.
    _line(ax, (xs["f"], y_gate + 0.4), (xs["f"], y_c - 0.26))
    _text(ax, xs["f"] - 0.15, 4.4, f"${gates['f'].symbol}$", ha="right")
    _op(ax, 4.6, 4.3, "×")
    _line(ax, (xs["i"], y_gate + 0.4), (xs["i"], 4.3), (4.34, 4.3))
    _text(ax, xs["i"] - 0.15, 3.65, f"${gates['i'].symbol}$", ha="right")
    _line(ax, (xs["g"], y_gate + 0.4), (xs["g"], 4.3), (4.86, 4.3))
    _text(ax, xs["g"] + 0.15, 3.65, f"${gates['g'].symbol}$", ha="left")
    _line(ax, (4.6, 4.56), (4.6, y_c - 0.26))
    # o^t times tanh(c^t) is h^t, out to the right and up.
    _line(ax, (9.0, y_c), (9.0, 5.15))
    _dot(ax, 9.0, y_c)
    _box(ax, 9.0, 4.8, 1.2, 0.7, "tanh", COLOURS["tanh"], size=11)
    _line(ax, (9.0, 4.45), (9.0, 3.66))
    _op(ax, 9.0, 3.4, "×")
    _line(ax, (xs["o"], y_gate + 0.4), (xs["o"], 3.4), (8.74, 3.4))
    _text(ax, xs["o"] + 0.15, 3.65, f"${gates['o'].symbol}$", ha="left")
    _line(ax, (9.0, 3.14), (9.0, y_bus), (12.4, y_bus))
    _line(ax, (10.2, y_bus), (10.2, 7.6), halo=True)
    _dot(ax, 10.2, y_bus)
    _text(ax, 12.4, y_bus + 0.35, "$h^t$", ha="right")
    _text(ax, 10.35, 7.75, "$h^t$ (the output $y^t$)", ha="left")
    _text(ax, 9.2, 2.7, r"$h^t = o^t \circ \tanh(c^t)$", size=9.5, ha="left")
    _gate_table(
        ax,
        s,
        13.4,
        7.2,
        {
            "i": r"(10.5)  $i^t = \sigma(W_{xi}x^t + W_{hi}h^{t-1} + b_i)$",
            "f": r"(10.4)  $f^t = \sigma(W_{xf}x^t + W_{hf}h^{t-1} + b_f)$",
            "g": r"(10.5)  $\tilde{c}^t = \tanh(W_{xc}x^t + W_{hc}h^{t-1} + b_c)$",
            "o": r"(10.7)  $o^t = \sigma(W_{xo}x^t + W_{ho}h^{t-1} + b_o)$",
        },
    )
    return _fit(fig, ax)


def _draw_gru(d: Diagram) -> Any:
    """The GRU (10.17), torch's variant: r, z, n and h^t = (1 − z^t)∘n^t + z^t∘h^{t-1}."""
    s = d.layer
    fig, ax = _canvas(-2.0, 13.0, -1.3, 8.3)
    ax.add_patch(_background(0.4, 0.3, 10.6, 6.7))
    y_h, y_bus, y_gate = 6.2, 0.9, 2.6
    gates = {b.name: b for b in s.blocks}
    x_z, x_r, x_n = 2.2, 3.8, 7.8
    # The state along the top: h^{t-1}, × z^t, + (1 − z^t)·n^t, out as h^t.
    _line(ax, (-1.2, y_h), (4.94, y_h))
    _op(ax, 5.2, y_h, "×")
    _line(ax, (5.46, y_h), (9.14, y_h))
    _op(ax, 9.4, y_h, "+")
    _line(ax, (9.66, y_h), (12.4, y_h))
    _line(ax, (10.6, y_h), (10.6, 7.6))
    _dot(ax, 10.6, y_h)
    _text(ax, -1.6, y_h + 0.35, f"$h^{{t-1}} \\in \\mathbb{{R}}^{{{s.hidden_size}}}$", ha="left")
    _text(ax, 12.4, y_h + 0.35, "$h^t$", ha="right")
    _text(ax, 10.75, 7.75, "$h^t$ (the output $y^t$)", ha="left")
    _text(ax, 5.2, 7.4, r"$h^t = (1 - z^t) \circ n^t + z^t \circ h^{t-1}$")
    # h^{t-1} also goes down to the gates, with x^t from below.
    _line(ax, (0.7, y_h), (0.7, y_bus), (x_n, y_bus), arrow=False)
    _dot(ax, 0.7, y_h)
    _line(ax, (1.2, -0.5), (1.2, y_bus), arrow=False)
    _dot(ax, 1.2, y_bus)
    _text(ax, 1.2, -0.85, f"$x^t \\in \\mathbb{{R}}^{{{s.input_size}}}$")
    for name, x in (("z", x_z), ("r", x_r), ("n", x_n)):
        b = gates[name]
        _line(ax, (x, y_bus), (x, y_gate - 0.4))
        if name != "n":
            _dot(ax, x, y_bus)
        _box(ax, x, y_gate, 1.2, 0.8, b.activation, COLOURS[b.activation], size=11)
    # z^t: the share of h^{t-1} kept, and 1 − z^t the share of n^t written.
    _line(ax, (x_z, y_gate + 0.4), (x_z, 4.6), (5.2, 4.6), (5.2, y_h - 0.26))
    _dot(ax, 5.2, 4.6)
    _text(ax, x_z + 0.15, 3.8, f"${gates['z'].symbol}$", ha="left")
    _line(ax, (5.2, 4.6), (6.8, 4.6))
    _box(ax, 7.3, 4.6, 1.0, 0.6, "1 −", COLOURS["op"], size=10)
    _line(ax, (7.8, 4.6), (9.14, 4.6))
    _text(ax, 8.45, 4.85, "$1 - z^t$", size=9)
    _op(ax, 9.4, 4.6, "×")
    _line(ax, (9.4, 4.86), (9.4, y_h - 0.26))
    # r^t resets the recurrent part of the candidate n^t (after the product, as torch does).
    _line(ax, (x_r + 0.6, y_gate), (5.74, y_gate))
    _text(ax, 5.0, y_gate + 0.25, f"${gates['r'].symbol}$", size=10)
    _op(ax, 6.0, y_gate, "×")
    _line(ax, (6.0, y_bus), (6.0, y_gate - 0.26))
    _dot(ax, 6.0, y_bus)
    _text(ax, 5.9, 1.6, "$W_{hn}h^{t-1} + b_{hn}$", size=9, ha="right")
    _text(ax, 7.95, 1.6, "$W_{xn}x^t + b_{in}$", size=9, ha="left")
    _line(ax, (6.26, y_gate), (x_n - 0.6, y_gate))
    _line(ax, (x_n, y_gate + 0.4), (x_n, 3.6), (9.4, 3.6), (9.4, 4.34))
    _text(ax, 8.6, 3.85, f"${gates['n'].symbol}$", size=10)
    _gate_table(
        ax,
        s,
        13.4,
        7.2,
        {
            "r": r"$r^t = \sigma(W_{xr}x^t + W_{hr}h^{t-1} + b_r)$  reset",
            "z": r"$z^t = \sigma(W_{xz}x^t + W_{hz}h^{t-1} + b_z)$  update",
            "n": r"$n^t = \tanh(W_{xn}x^t + b_{in} + r^t \circ (W_{hn}h^{t-1} + b_{hn}))$",
        },
    )
    # Every parameter of a GRU layer is stacked in 3 blocks of H rows, an LSTM's in 4.
    _lines(
        ax,
        13.4,
        1.2,
        [
            f"3 blocks of H rows against the LSTM's 4: an LSTM of these sizes has "
            f"{_number(s.parameters // 3 * 4)} parameters;",
            "no output gate and no cell state (10.17)",
        ],
    )
    return _fit(fig, ax)


def _draw_bidirectional(d: Diagram) -> Any:
    """10.18: a forward and a backward row; y^t concatenates both states."""
    s, K = d.layer, d.steps
    dx, w, h, shift = 4.4, 1.9, 0.9, 1.3
    x0, y_f, y_b, y_cat = 3.2, 2.2, 4.4, 6.3
    last = x0 + (K - 1) * dx
    fwd, bwd = r"_{\rightarrow}", r"_{\leftarrow}"  # h^t_→ forward, h^t_← backward
    fig, ax = _canvas(-0.4, last + shift + 3.4, -1.0, 8.2)
    cell = _cell_text(s)
    _line(ax, (x0 - w / 2 - 1.8, y_f), (x0 - w / 2, y_f))
    _text(ax, x0 - w / 2 - 0.9, y_f + 0.35, f"$h^{{-1}}{fwd} = 0$", size=9)
    right = last + shift + w / 2
    _line(ax, (right + 1.8, y_b), (right, y_b))
    _text(ax, right + 0.9, y_b + 0.35, f"$h^{{{K}}}{bwd} = 0$", size=9)
    for t in range(K):
        cx, cb = x0 + t * dx, x0 + t * dx + shift
        _box(ax, cx, y_f, w, h, f"forward\n{cell}", COLOURS["tanh"])
        _box(ax, cb, y_b, w, h, f"backward\n{cell}", COLOURS["σ"])
        # x^t feeds both rows; the line to the backward row passes over the forward arrow.
        _text(ax, cx, 0.0, f"$x^{{{t}}}$")
        _line(ax, (cx, 0.3), (cx, 0.8), arrow=False)
        _dot(ax, cx, 0.8)
        _line(ax, (cx, 0.8), (cx, y_f - h / 2))
        _line(ax, (cx, 0.8), (cb, 0.8), (cb, y_b - h / 2), halo=True)
        # Both states up into the concatenation.
        _line(ax, (cx, y_f + h / 2), (cx, y_cat - 0.35), halo=True)
        _line(ax, (cb, y_b + h / 2), (cb, y_cat - 0.35))
        _box(ax, cx + shift / 2, y_cat, 2.2, 0.7, "concatenate", COLOURS["attention"], size=9)
        _line(ax, (cx + shift / 2, y_cat + 0.35), (cx + shift / 2, y_cat + 1.0))
        _text(ax, cx + shift / 2, y_cat + 1.3, f"$y^{{{t}}}$")
        # The forward state moves right, the backward state left.
        end = cx + dx - w / 2 if t + 1 < K else cx + w / 2 + 1.8
        _line(ax, (cx + w / 2, y_f), (end, y_f))
        _text(ax, (cx + shift + end) / 2, y_f + 0.35, f"$h^{{{t}}}{fwd}$", size=10)
        if t + 1 < K:
            _line(ax, (cb + dx - w / 2, y_b), (cb + w / 2, y_b))
            _text(ax, (cb + w / 2 + cx + dx) / 2, y_b + 0.35, f"$h^{{{t + 1}}}{bwd}$", size=10)
    _line(ax, (x0 + shift - w / 2, y_b), (x0 + shift - w / 2 - 1.8, y_b))
    _text(ax, x0 + shift - w / 2 - 0.9, y_b + 0.35, f"$h^{{0}}{bwd}$", size=10)
    layers = f"; layer 0 of {s.num_layers} drawn" if s.num_layers > 1 else ""
    _lines(
        ax,
        0.0,
        -1.0,
        [
            _weight_rows(s, 1),
            [[f"$y^t = [h^t{fwd};\\ h^t{bwd}]$:", f"2H = {2 * s.hidden_size} = output_size"]],
            f"$h^t{fwd}$ has read $x^0, ..., x^t$ and $h^t{bwd}$ has read "
            f"$x^t, ..., x^{{{K - 1}}}$: $y^t$ depends on the future too (10.18)",
            f"{s.call()}: {_number(s.parameters)} parameters{layers}",
        ],
    )
    return _fit(fig, ax)


def _draw_seq2seq(d: Diagram) -> Any:
    """10.19: the encoder reads x, the vector starts the decoder, attention reads all h̄^s."""
    q, e, K = d.seq2seq, d.layer, d.steps
    assert q is not None
    dx_e, dx_d, w, h = 2.6, 3.4, 1.8, 0.9
    enc = [1.5 + s * dx_e for s in range(K)]
    x_vec = enc[-1] + 2.6
    x_bridge = x_vec + 2.4
    dec = [x_bridge + 2.7 + t * dx_d for t in range(K)]
    y, y_att, y_head, y_mem = 2.0, 4.0, 5.6, 7.3
    E = e.hidden_size * e.directions
    fig, ax = _canvas(-0.2, dec[-1] + 1.6, -1.0, y_mem + 0.9)
    attends = q.attention != "none"
    # What every decoder step reads: the encoder outputs h̄^s (attention), or the vector alone.
    memory = (
        f"memory: the encoder outputs $\\bar{{h}}^s \\in \\mathbb{{R}}^{{{E}}}$, read by "
        "attention at every decoder step"
        if attends
        else "no attention: $c^t$ is the vector at every decoder step (the bottleneck, 10.20)"
    )
    label = _text(ax, 0.0, y_mem + 0.3, memory, size=9.5)
    right = max(dec[-1] + 1.4, 1.0 + _width(ax, label))  # the bar holds its label
    label.set_x((0.4 + right) / 2)
    ax.add_patch(_background(0.4, y_mem, right - 0.4, 0.6))
    name = e.cell + (" ⇄" if e.bidirectional else "")
    for s_, cx in enumerate(enc):
        _box(ax, cx, y, w, h, f"encoder\n{name}", COLOURS["encoder"])
        _text(ax, cx, 0.0, f"$x^{{{s_}}}$")
        _line(ax, (cx, 0.3), (cx, y - h / 2))
        if attends:
            _line(ax, (cx, y + h / 2), (cx, y_mem))
            _text(ax, cx + 0.15, 3.3, f"$\\bar{{h}}^{{{s_}}}$", ha="left")
        if s_ + 1 < len(enc):
            _line(ax, (cx + w / 2, y + 0.15), (cx + dx_e - w / 2, y + 0.15))
            if e.bidirectional:
                _line(ax, (cx + dx_e - w / 2, y - 0.15), (cx + w / 2, y - 0.15))
    _line(ax, (enc[-1] + w / 2, y), (x_vec - 0.9, y))
    _box(ax, x_vec, y, 1.8, h, f"vector\n{E}", COLOURS["attention"])
    if not attends:
        _line(ax, (x_vec, y + h / 2), (x_vec, y_mem))
    _line(ax, (x_vec + 0.9, y), (x_bridge - 0.8, y))
    _box(ax, x_bridge, y, 1.6, h, "bridge\ntanh", COLOURS["tanh"])
    _line(ax, (x_bridge + 0.8, y), (dec[0] - w / 2, y))
    _text(ax, (x_bridge + 0.8 + dec[0] - w / 2) / 2, y + 0.3, "$h^{-1}$", size=9)
    for t, cx in enumerate(dec):
        _box(ax, cx, y, w, h, f"decoder\n{q.decoder}", COLOURS["decoder"])
        _text(ax, cx, 0.0, "<bos>" if t == 0 else f"$y^{{{t - 1}}}$")
        _line(ax, (cx, 0.3), (cx, y - h / 2))
        _line(ax, (cx, y + h / 2), (cx, y_att - h / 2))
        _text(ax, cx - 0.15, 3.0, f"$h^{{{t}}}$", ha="right", size=9)
        inside = "attention" if attends else "combine"
        _box(ax, cx, y_att, 2.2, h, inside + "\n$c^t$, $\\tilde{h}^t$", COLOURS["attention"])
        _line(ax, (cx + 0.95, y_mem), (cx + 0.95, y_att + h / 2))
        _line(ax, (cx, y_att + h / 2), (cx, y_head - 0.35))
        _box(ax, cx, y_head, 1.6, 0.7, "softmax", COLOURS["σ"], size=9)
        _text(ax, cx - 0.95, y_head, "$W_s$", ha="right", size=9)
        _line(ax, (cx, y_head + 0.35), (cx, 6.45))
        _text(ax, cx - 0.2, 6.75, f"$y^{{{t}}}$")
        if t + 1 < K:
            _line(ax, (cx + w / 2, y), (cx + dx_d - w / 2, y))
            _text(ax, cx + dx_d / 2, y + 0.3, f"$h^{{{t}}}$", size=9)
        if t + 1 < K and q.input_feeding:  # h̃^t goes into the next step with y^t
            _line(ax, (cx + 1.1, y_att - 0.2), (cx + dx_d - 0.5, y + h / 2), colour="#777777")
            _text(ax, cx + 1.9, 3.6, f"$\\tilde{{h}}^{{{t}}}$", size=9, color="#555555")

    def row(part: str, symbol: str, name: str, role: str) -> list[str]:
        m = q.matrix(name)
        return [part, symbol, name, m.size if m else "", role]

    scores = {
        "general": r"score $h^{t\top} W_a \bar{h}^s$",
        "dot": r"score $h^{t\top} \bar{h}^s$",
        "additive": r"score $v_a^\top \tanh(W_1 \bar{h}^s + W_2 h^t)$",
        "none": "none: $c^t$ is the vector at every step",
    }
    rows = [row("source", "", "src_embed", "embedding of $x^s$")]
    rows += [
        ["encoder" if j == 0 else "", *r, e.call() if j == 0 else ""]
        for j, r in enumerate(e.weights())
    ]
    stacked = f" × {q.decoder_layers} stacked" if q.decoder_layers > 1 else ""
    fed = "[embedding; $\\tilde{h}^{t-1}$] (input feeding)" if q.input_feeding else "embedding"
    rows += [
        row("vector", "", "bridge", "the decoder's $h^{-1}$ = tanh(bridge · vector + b)"),
        row("target", "", "tgt_embed", "embedding of $y^{t-1}$"),
        row("decoder", "$W_{xh}$", "cells.0.weight_ih", f"{q.decoder}{stacked}: input {fed}"),
    ]
    if q.matrix("cells.0.weight_hh") is not None:
        rows.append(row("", "$W_{hh}$", "cells.0.weight_hh", ""))
    attention = [n for n in ("W_a", "W_1", "W_2", "v_a") if q.matrix(f"attention.{n}")]
    for j, n in enumerate(attention):
        rows.append(
            row(
                "attention" if j == 0 else "",
                f"${n}$",
                f"attention.{n}",
                scores[q.attention] if j == 0 else "",
            )
        )
    if not attention:
        rows.append(["attention", "", "", "", scores[q.attention]])
    rows += [
        row("", "$W_c$", "combine", r"$\tilde{h}^t = \tanh(W_c [c^t; h^t])$"),
        row("output", "$W_s$", "head", r"$p(y^t) = \mathrm{softmax}(W_s \tilde{h}^t)$"),
    ]
    _lines(
        ax,
        0.0,
        -1.0,
        [
            rows,
            f"{_number(q.parameters)} parameters in rnnkit.seq2seq.model.Seq2Seq, the model of "
            "`rnnkit train numbers`; He, Hd: the encoder's and the decoder's hidden sizes",
        ],
    )
    return _fit(fig, ax)


# ---- saving ------------------------------------------------------------------------------


def _save_svg(fig: Any, path: Path, title: str) -> Path:
    """Write ``fig`` as an SVG whose labels stay text (searchable, selectable), atomically:
    a half-written file never replaces a good one."""
    import matplotlib

    from rnnkit.explain import plotting

    path.parent.mkdir(parents=True, exist_ok=True)
    # Text as <text>, not glyph outlines; fixed ids and no date, so that the same module
    # gives the same bytes.
    rc: dict[RcKeyType, Any] = {"svg.fonttype": "none", "svg.hashsalt": "rnnkit"}
    with plotting.style(), matplotlib.rc_context(rc):
        fig.suptitle(title, fontsize=11, fontweight="bold")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": plotting.MARK})
    # atomic_write: its temporary file is named so that a killed write's is removed later.
    atomic_write(path, buffer.getvalue())
    return path
