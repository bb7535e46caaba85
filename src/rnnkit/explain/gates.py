"""Inside a trained LSTM language model: its gates and cell units, character by character.

The chapter calls the cell state the long-term memory and says the forget gate decides how
much of it passes on (10.9, 10.10, 10.16). To look, the gates are recomputed step by step
from the layer's own cells and parameters with the chapter's equations (10.4-10.7):

    i^t, f^t, o^t = σ(·),  c̃^t = tanh(·),  c^t = f^t ∘ c^{t-1} + i^t ∘ c̃^t,  h^t = o^t ∘ tanh(c^t)

and :func:`trace_lstm` checks nothing in the layer differs from them (the recomputed h^t
must equal the layer's output). Then, following Karpathy, Johnson & Fei-Fei 2015
("Visualizing and Understanding Recurrent Networks", sec. 4.2), each cell unit is
correlated with properties of the text that need memory — inside a string, bracket depth,
indentation, position in the line — and the best unit per property is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.cells import LSTMCell
from rnnkit.cells.base import Params
from rnnkit.layers import LSTM

GATE_NAMES = ("i", "f", "g", "o")  # torch's order of the blocks in weight_ih / weight_hh


@dataclass
class LSTMTrace:
    """Per-step values of one LSTM layer, each (T, B, H): gates, candidate, states."""

    i: Tensor
    f: Tensor
    g: Tensor  # the candidate c̃^t
    o: Tensor
    c: Tensor
    h: Tensor


def lstm_gates(cell: LSTMCell, p: Params, gx: Tensor, h_prev: Tensor) -> tuple[Tensor, ...]:
    """i^t, f^t, c̃^t, o^t (each (B, H)) from the projected input and h^{t-1} (10.4-10.7).

    ``gx`` is ``cell.project(p, x^t)``: the input half W_x· x^t + b_x· of all four gates.
    """
    if cell.layer_norm:
        # Ba et al. 2016: the recurrent product is normalised before its bias.
        wh = F.linear(h_prev, p["weight_hh"])
        gh = F.layer_norm(wh, wh.shape[-1:], p["ln_hh_weight"], p["ln_hh_bias"])
        gh = gh + p["bias_hh"] if "bias_hh" in p else gh
    else:
        gh = F.linear(h_prev, p["weight_hh"], p.get("bias_hh"))
    a_i, a_f, a_g, a_o = (gx + gh).chunk(4, dim=-1)  # torch's order i, f, g, o
    return torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g), torch.sigmoid(a_o)


def lstm_output(cell: LSTMCell, p: Params, o: Tensor, c: Tensor) -> Tensor:
    """h^t = o^t ∘ tanh(c^t) (10.7), with the layer-normalised cell state if the cell has it."""
    if cell.layer_norm:
        c = F.layer_norm(c, c.shape[-1:], p["ln_c_weight"], p["ln_c_bias"])
    return o * torch.tanh(c)


def trace_lstm(layer: LSTM, x: Tensor, *, check: bool = True) -> list[LSTMTrace]:
    """Recompute every gate of a unidirectional ``rnnkit.LSTM`` over x (T, B, I).

    Returns one :class:`LSTMTrace` per stacked layer. With ``check``, the recomputed
    last-layer h^t must match ``layer(x)`` (to 1e-4; float32 kernels round differently over
    long texts, while a real mismatch is of order 0.1), so the heat maps show
    what the layer really computed. The layer should be in eval mode (no dropout).
    """
    if not isinstance(layer, LSTM):
        raise TypeError(f"trace_lstm: layer must be an rnnkit.LSTM; got {type(layer).__name__}")
    if layer.bidirectional:
        raise ValueError("trace_lstm: layer must be unidirectional; got bidirectional=True")
    if layer.batch_first:
        raise ValueError("trace_lstm: layer must be time-major; got batch_first=True")
    traces = []
    inp = x
    with torch.no_grad():
        for k, module in enumerate(layer.cells):
            cell = cast(LSTMCell, module)  # an rnnkit.LSTM's cells are LSTMCells
            p = layer.cell_parameters(k, 0)
            gx = cell.project(p, inp)  # (T, B, 4H)
            B, H = inp.size(1), cell.hidden_size
            h, c = inp.new_zeros(B, H), inp.new_zeros(B, H)
            steps: dict[str, list[Tensor]] = {name: [] for name in ("i", "f", "g", "o", "c", "h")}
            for t in range(inp.size(0)):
                i, f, g, o = lstm_gates(cell, p, gx[t], h)
                c_new = f * c + i * g  # (10.6)
                h_new = lstm_output(cell, p, o, c_new)
                if cell.zoneout > 0:
                    # In eval mode zoneout keeps the expected state p·s^{t-1} + (1-p)·s^t.
                    h_new = cell.zoneout * h + (1 - cell.zoneout) * h_new
                    c_new = cell.zoneout * c + (1 - cell.zoneout) * c_new
                h, c = h_new, c_new
                for name, value in zip("ifgoch", (i, f, g, o, c, h), strict=True):
                    steps[name].append(value)
            trace = LSTMTrace(**{name: torch.stack(v) for name, v in steps.items()})
            traces.append(trace)
            inp = trace.h  # (T, B, H): the next layer's input (no dropout in eval)
        if check:
            out, _ = layer(x)
            if not torch.allclose(out, traces[-1].h, rtol=1e-4, atol=1e-4):
                err = (out - traces[-1].h).abs().max().item()
                raise ValueError(
                    f"trace_lstm: recomputed h differs from the layer's output by {err:.3g}; "
                    "expected a plain LSTM layer in eval mode"
                )
    return traces


# ---- properties of the text that need memory ---------------------------------------


def text_features(text: str) -> dict[str, Tensor]:
    """Per character, the value of each property *after* reading it, shape (T,) each.

    Properties of Python-like source, as in Karpathy et al. 2015 (fig. 3):

    - ``inside quotes``: 1 inside a '...', "..." or triple-quoted string (a backslash
      escapes; a newline ends a one-line string);
    - ``inside comment``: 1 from a ``#`` outside strings to the end of the line;
    - ``bracket depth``: open ( [ { minus closed ones, outside strings and comments;
    - ``indentation``: leading spaces of the current line read so far;
    - ``line position``: characters since the last newline.
    """
    quote = ""  # the delimiter of the string we are in: ', ", \'\'\' or \"\"\"; "" outside
    comment = escaped = closing = False
    depth = indent = column = 0
    at_line_start = True
    skip = 0  # characters of a triple quote still to read
    rows: list[tuple[float, ...]] = []
    for t, ch in enumerate(text):
        if ch == "\n":
            column, indent, at_line_start, comment = 0, 0, True, False
        else:
            column += 1
            if at_line_start and ch == " ":
                indent += 1
            else:
                at_line_start = False
        if skip:
            skip -= 1
            if skip == 0 and closing:
                quote = ""
        elif quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif len(quote) == 3 and text[t : t + 3] == quote:
                skip, closing = 2, True
            elif len(quote) == 1 and (ch == quote or ch == "\n"):
                quote = ""
        elif comment:
            pass
        elif ch == "#":
            comment = True
        elif ch in "'\"":
            if text[t : t + 3] == ch * 3:
                quote, skip, closing = ch * 3, 2, False
            else:
                quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(depth - 1, 0)
        rows.append(
            (float(bool(quote)), float(comment), float(depth), float(indent), float(column))
        )
    values = torch.tensor(rows, dtype=torch.float64).reshape(-1, len(FEATURES))
    return {name: values[:, j] for j, name in enumerate(FEATURES)}


FEATURES = ("inside quotes", "inside comment", "bracket depth", "indentation", "line position")


def correlations(units: Tensor, feature: Tensor) -> Tensor:
    """Pearson r of each column of ``units`` (T, H) with ``feature`` (T,); 0 where undefined."""
    u = units.double() - units.double().mean(0)
    v = feature.double() - feature.double().mean()
    denom = u.norm(dim=0) * v.norm()
    r = (u * v[:, None]).sum(0) / denom
    return torch.where(denom > 0, r, torch.zeros_like(r))


@dataclass
class UnitMatch:
    feature: str
    unit: int
    r: float  # Pearson correlation of the unit's c^t with the feature (sign kept)
    varies: bool  # False when the feature is constant over the text (r undefined)


@dataclass
class GateAnalysis:
    """Gates and cell state of one layer over a text, and the units that track it."""

    text: str
    layer: int
    trace: LSTMTrace  # tensors (T, 1, H)
    features: dict[str, Tensor]
    matches: list[UnitMatch]
    units: list[int] = field(default_factory=list)  # the units shown in the heat maps

    def report(self) -> str:
        t = self.trace
        f, i, o = (v[:, 0] for v in (t.f, t.i, t.o))
        lines = [
            f"LSTM layer {self.layer}, {len(self.text)} characters, {t.c.size(-1)} cell units",
            f"mean gate values: forget {f.mean():.3f}, input {i.mean():.3f}, output {o.mean():.3f}",
            f"share of forget-gate values > 0.9 (memory kept): {(f > 0.9).float().mean():.1%}; "
            f"< 0.1 (memory erased): {(f < 0.1).float().mean():.1%}",
            "cell units that track the text (Pearson r of c^t with the property):",
        ]
        for m in self.matches:
            if m.varies:
                lines.append(f"  {m.feature:<14} unit {m.unit:4d}  r = {m.r:+.3f}")
            else:
                lines.append(f"  {m.feature:<14} constant in this text: no correlation defined")
        return "\n".join(lines)

    def plot(self, path: str | Path, *, max_chars: int = 100) -> Path:
        from rnnkit.explain import plotting

        n = min(len(self.text), max_chars)
        chars = [_visible(ch) for ch in self.text[:n]]
        labels = []
        for u in self.units:
            found = [
                f"{SHORT[m.feature]} {m.r:+.2f}" for m in self.matches if m.varies and m.unit == u
            ]
            labels.append(f"unit {u}" + (f" ({', '.join(found)})" if found else ""))
        t = self.trace
        props = torch.stack(
            [v[:n] / max(float(v.abs().max()), 1e-12) for v in self.features.values()]
        )
        panels = [
            (
                "text properties, each scaled to [0, 1]",
                props,
                [SHORT[f] for f in self.features],
                (0.0, 1.0),
                "Greys",
            ),
            ("forget gate f^t (1 = keep the cell state)", t.f, labels, (0.0, 1.0), "viridis"),
            ("input gate i^t (1 = write the candidate)", t.i, labels, (0.0, 1.0), "viridis"),
            ("output gate o^t (1 = expose the cell)", t.o, labels, (0.0, 1.0), "viridis"),
            (
                "cell state tanh(c^t): the long-term memory",
                torch.tanh(t.c),
                labels,
                (-1.0, 1.0),
                "RdBu_r",
            ),
        ]
        heights = [len(p[2]) for p in panels]
        with plotting.style():  # the caller's rcParams are restored after
            fig, axes = plotting.figure(
                len(panels),
                1,
                width=max(8.0, 0.11 * n + 3.0),
                height=1.2 + 0.9 * len(panels) + 0.2 * sum(heights),
            )
            for ax, (name, values, rows, lim, cmap) in zip(axes[:, 0], panels, strict=True):
                if values.dim() == 3:
                    values = values[:n, 0, self.units].T  # (units, chars)
                im = ax.imshow(values.numpy(), aspect="auto", cmap=cmap, vmin=lim[0], vmax=lim[1])
                ax.set_title(name, loc="left")
                ax.set_yticks(range(len(rows)), rows, fontsize=8)
                ax.set_xticks(range(n), chars, fontsize=8, fontfamily="monospace")
                ax.tick_params(axis="x", length=0)
                fig.colorbar(im, ax=ax, fraction=0.015, pad=0.01)
            title = (
                "Claim (10.9-10.16): the cell state is a long-term memory and the gates decide "
                "what it keeps\n"
                f"LSTM layer {self.layer} over the text "
                f"(first {n} of {len(self.text)} characters); "
                "units chosen by correlation with the text properties (Pearson r)"
            )
            return plotting.save(fig, path, title)


SHORT = {
    "inside quotes": "quotes",
    "inside comment": "comment",
    "bracket depth": "brackets",
    "indentation": "indent",
    "line position": "column",
}


def _visible(ch: str) -> str:
    return {"\n": "⏎", " ": "·", "\t": "⇥"}.get(ch, ch)


class _Vocabulary(Protocol):
    """What :func:`analyse_gates` reads of ``model.vocab``."""

    def encode(self, text: str) -> Tensor: ...


def analyse_gates(
    model: nn.Module, text: str, *, layer: int | None = None, units: list[int] | None = None
) -> GateAnalysis:
    """Recompute the gates of a character LSTM language model over ``text``.

    ``model`` needs ``vocab.encode(text) -> LongTensor``, ``embedding`` and ``rnn`` (an
    ``rnnkit.LSTM``), as ``rnnkit.models.lm.CharLM`` has. ``layer`` picks the stacked layer
    (default: the last); ``units`` the cell units shown (default: the best unit per
    property, then the first units, up to 8).
    """
    rnn = getattr(model, "rnn", None)
    if not isinstance(rnn, LSTM):
        given = type(rnn).__name__ if rnn is not None else "no .rnn"
        raise TypeError(f"analyse_gates: model.rnn must be an rnnkit.LSTM; got {given}")
    if len(text) < 2:
        raise ValueError(f"analyse_gates: text must have at least 2 characters; got {len(text)}")
    L, H = rnn.num_layers, rnn.hidden_size
    k = L - 1 if layer is None else layer
    if not 0 <= k < L:
        raise ValueError(f"analyse_gates: layer must lie in [0, {L - 1}]; got {layer}")
    was_training = model.training
    model.eval()
    try:
        # The duck-typed parts of ``model`` the docstring names.
        ids = cast(_Vocabulary, model.vocab).encode(text).reshape(-1, 1)  # (T, 1)
        with torch.no_grad():
            x = cast(nn.Module, model.embedding)(ids)  # (T, 1, E)
        trace = trace_lstm(rnn, x)[k]
    finally:
        model.train(was_training)
    features = text_features(text)
    matches = []
    c = trace.c[:, 0]  # (T, H)
    for name, values in features.items():
        r = correlations(c, values)
        best = int(r.abs().argmax())
        matches.append(UnitMatch(name, best, float(r[best]), bool(values.std() > 0)))
    if units is None:
        chosen: list[int] = []
        for m in matches:
            if m.varies and m.unit not in chosen:
                chosen.append(m.unit)
        chosen += [u for u in range(H) if u not in chosen][: max(0, 8 - len(chosen))]
        units = chosen
    bad = [u for u in units if not 0 <= u < H]
    if bad or not units:
        raise ValueError(
            f"analyse_gates: units must be non-empty and lie in [0, {H - 1}]; got {units}"
        )
    return GateAnalysis(text, k, trace, features, matches, list(units))


# The run `rnnkit explain gates` trains when no run folder is given: fixed options, seed and
# step count (not a time budget), one thread, so the figures in docs/chapter.md repeat to the
# last digit on the same machine and torch build.
# Pinned, not the lm task's defaults: docs/chapter.md (10.16) quotes this model's figures,
# and they must not move when those defaults are tuned.
REFERENCE_OPTIONS: dict[str, Any] = {
    "cell": "lstm",
    "num_layers": 1,
    "hidden_size": 128,
    "seq_len": 128,
    "dropout": 0.0,
}
REFERENCE_STEPS = 2000


def train_reference_model(
    *,
    steps: int = REFERENCE_STEPS,
    seed: int = 0,
    out: str | Path | None = None,
    log: Any = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train the reference LSTM language model and return it with its validation result.

    A 1-layer, 128-unit LSTM on the Python standard library, ``steps`` steps from ``seed``
    on one thread, through the one trainer (:func:`rnnkit.train.run.train`): the same
    arguments give the same weights. The run folder is written into ``out`` (a new folder)
    or into a temporary folder that is removed afterwards.
    """
    import tempfile

    from rnnkit.train.config import TrainConfig
    from rnnkit.train.run import load, train

    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"train_reference_model: steps must be a positive integer; got {steps!r}")
    config = TrainConfig(steps=steps, seed=seed, threads=1, eval_every=steps, log_every=steps)
    threads = torch.get_num_threads()
    try:
        with tempfile.TemporaryDirectory(prefix="rnnkit-gates-") as tmp:
            folder = Path(tmp) / "run" if out is None else Path(out)
            summary = train("lm", dict(REFERENCE_OPTIONS), config, out=folder, log=log)
            model = load(folder)
    finally:
        torch.set_num_threads(threads)
    return model, {"steps": steps, "seed": seed, **summary.best}


def load_model(run_dir: str | Path) -> Any:
    """``rnnkit.load(run_dir)``: the language model saved in a training run folder."""
    import rnnkit

    load = getattr(rnnkit, "load", None)
    if load is None:
        raise ValueError(
            "gates needs rnnkit.load to rebuild a language model from a run folder "
            "(config.json + model.safetensors); this rnnkit build has no language models"
        )
    return load(run_dir)


SAMPLE_TEXT = '''def greet(name, times=1):
    """Say hello to (name) several times."""
    for n in range(times):
        # the greeting: "hello, " plus the name
        print("hello, " + name, [n, {"k": (n + 1)}])
    return {'name': name, "count": (times * 2)}


class Counter:
    def __init__(self, start=0):
        self.value = int(start)  # never negative

    def add(self, items):
        for item in items:
            if isinstance(item, (int, float)):
                self.value += max(0, int(item))
        return self.value
'''
