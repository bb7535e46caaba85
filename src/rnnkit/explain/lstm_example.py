"""A one-unit LSTM with weights set by hand: a memory the reader can trace (chapter 10.16).

The chapter's claim (10.16): "Cell state and hidden state represent long-term and
short-term memory. Forget gate will decide how much of the long-term memory to pass on."
Here the claim is built rather than measured: an ``rnnkit.LSTM(4, 1)`` whose 28
parameters are set by hand solves a small memory task, and every number of every step is
printed, using the gate equations of 10.10-10.13 (the candidate written c̃^t):

    f^t = σ(w_xf x^t + w_hf h^{t-1} + b_f)          (10.4)  forget gate
    i^t = σ(w_xi x^t + w_hi h^{t-1} + b_i)          (10.5)  input gate
    c̃^t = tanh(w_xc x^t + w_hc h^{t-1} + b_c)       (10.5)  candidate
    c^t = f^t ∘ c^{t-1} + i^t ∘ c̃^t                  (10.6)  cell state
    o^t = σ(w_xo x^t + w_ho h^{t-1} + b_o),  h^t = o^t ∘ tanh(c^t)    (10.7)

The task. The input x^t has four channels (value, store, recall, erase): a value in
[-1, 1] at every step and at most one cue. On *store* the cell must remember the value of
that step, through any number of distractor values; on *recall* it must show what it
holds; on *erase* it must forget it. A store overwrites what was held.

The hand-set weights (G = :data:`GATE` = 10; rows in torch's order i, f, g = c̃, o;
``weight_hh`` = 0 and ``bias_hh`` = 0):

    gate        value  store  recall  erase   bias    what it does
    i (input)     0    +2G      0       0     -G      shut, σ(-10) = 0.000045, except on store
    f (forget)    0    -2G      0     -2G     +G      open, σ(+10) = 0.999955, except on store
                                                        and erase, where it shuts
    g (c̃)        +1      0      0       0      0      the candidate is tanh(value)
    o (output)    0      0    +2G       0     -G      shut except on recall

So between cues c^t ≈ c^{t-1} (f ≈ 1, i ≈ 0: the distractors do not get in), a store sets
c^t ≈ tanh(value) (f ≈ 0 drops the old value, i ≈ 1 writes the new one), an erase sets
c^t ≈ 0, and h^t ≈ 0 except on recall, where h^t ≈ tanh(tanh(value)). The cues arrive in
x^t, so the cell needs no feedback from h^{t-1}: the cell state carries the memory alone,
while h^t is what the cell shows at this step. The forget gate doing the erasing is the
addition of Gers, Schmidhuber & Cummins 2000 ("Learning to forget") to the LSTM of
Hochreiter & Schmidhuber 1997, whose cell state could only be written to.

Every gate is recomputed from the layer's own parameters (:func:`rnnkit.explain.gates.trace_lstm`)
and the recomputed h^t and c^t are checked against what the layer returns, in float64, to
1e-12. With ``trained=True`` an LSTM of the same size is also trained on the task from a
seeded random start, so that the hand-set mechanism can be compared with a learned one.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import torch
from torch import Tensor

from rnnkit.explain.gates import trace_lstm
from rnnkit.layers import LSTM

GATE = 10.0  # a gate pre-activation of ±G is σ = 0.999955 or 0.000045: open or shut
CHANNELS = ("value", "store", "recall", "erase")
GATES = ("i", "f", "g", "o")  # torch's order of the rows of weight_ih / weight_hh
MAX_STEPS = 64  # a longer table is no longer read step by step
TOLERANCE = 1e-12  # recomputed h^t, c^t against the layer's own, in float64

# Per gate: (weights on value, store, recall, erase), bias, what it does.
HAND_SET: dict[str, tuple[tuple[float, float, float, float], float, str]] = {
    "i": ((0.0, 2 * GATE, 0.0, 0.0), -GATE, "shut (c unchanged) except on store: write"),
    "f": ((0.0, -2 * GATE, 0.0, -2 * GATE), GATE, "open (keep c) except on store, erase: drop"),
    "g": ((1.0, 0.0, 0.0, 0.0), 0.0, "candidate c̃ = tanh(value)"),
    "o": ((0.0, 0.0, 2 * GATE, 0.0), -GATE, "shut (h = 0) except on recall: show c"),
}

# Steps: a number is a distractor value, S<v> stores v, R recalls, E erases.
DEFAULT_SEQUENCE = "0.3,S0.8,-0.5,0.9,-1,R,0.4,E,-0.7,R,S-0.6,0.5,0.2,R,S0.9,R"
_STEP = re.compile(r"(?P<cue>[SRE]?)(?P<value>[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?)?", re.I)


def parse_sequence(text: str) -> Tensor:
    """The inputs x^t, (T, 4) float64, from comma-separated steps.

    A step is a number v in [-1, 1] (a distractor), ``S<v>`` (store v), ``R`` (recall) or
    ``E`` (erase); R and E may carry a distractor value (``R0.4``). Example:
    ``"0.3,S0.8,-0.5,R,E,R"``.
    """
    if not isinstance(text, str):
        raise TypeError(f"lstm_example: sequence must be a str; got {type(text).__name__}")
    steps = [part.strip() for part in text.split(",")]
    if not text.strip() or len(steps) > MAX_STEPS:
        raise ValueError(
            f"lstm_example: sequence must have 1 to {MAX_STEPS} comma-separated steps; "
            f"got {0 if not text.strip() else len(steps)}"
        )
    rows = []
    for t, step in enumerate(steps):
        match = _STEP.fullmatch(step)
        if not step or match is None or (match["cue"].upper() == "S" and not match["value"]):
            raise ValueError(
                f"lstm_example: sequence step {t} is {step!r}; expected a number in [-1, 1], "
                "S<number> (store), R or E (recall, erase; optionally with a number)"
            )
        value = float(match["value"]) if match["value"] else 0.0
        if not -1.0 <= value <= 1.0:
            raise ValueError(
                f"lstm_example: sequence step {t} has value {value:g}; expected one in [-1, 1]"
            )
        cue = match["cue"].upper()
        rows.append([value, float(cue == "S"), float(cue == "R"), float(cue == "E")])
    return torch.tensor(rows, dtype=torch.float64, device="cpu")


def hand_set_lstm() -> LSTM:
    """The ``rnnkit.LSTM(4, 1)`` of the module docstring, in float64."""
    layer = LSTM(len(CHANNELS), 1, dtype=torch.float64)
    with torch.no_grad():
        for p in layer.parameters():
            p.zero_()
        for row, gate in enumerate(GATES):
            weights, bias, _ = HAND_SET[gate]
            layer.weight_ih_l0[row] = torch.tensor(weights, dtype=torch.float64)
            layer.bias_ih_l0[row] = bias
    return layer.eval()


def stored_values(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per step, the value the task asks to hold (0 if none) and whether one is held.

    Both (T, ...) for inputs x (T, ..., 4): a store holds its value from its own step on,
    an erase drops it.
    """
    held = torch.zeros_like(x[0, ..., 0])
    holding = torch.zeros_like(held, dtype=torch.bool)
    values, flags = [], []
    for t in range(x.size(0)):
        store, erase = x[t, ..., 1] > 0, x[t, ..., 3] > 0
        held = torch.where(store, x[t, ..., 0], torch.where(erase, torch.zeros_like(held), held))
        holding = (holding | store) & ~erase
        values.append(held)
        flags.append(holding)
    return torch.stack(values), torch.stack(flags)


def task_targets(x: Tensor) -> Tensor:
    """The output the task asks for, (T, ...): tanh(tanh(v)) of the held v on recall, else 0.

    tanh(tanh(v)) is what a one-unit LSTM can show: the candidate squashes the value once
    (c̃ = tanh(v)) and the output squashes the cell state again (h = o ∘ tanh(c)).
    """
    held, _ = stored_values(x)
    return torch.where(x[..., 2] > 0, torch.tanh(torch.tanh(held)), torch.zeros_like(held))


class _Placement(TypedDict):
    dtype: torch.dtype
    device: str


def memory_batch(batch: int, length: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Random task sequences x (T, B, 4) and targets (T, B), float64 on the CPU.

    Each step is a distractor with probability 0.55, else a store, recall or erase (0.15
    each); values are uniform in [-1, 1].
    """
    cpu: _Placement = {"dtype": torch.float64, "device": "cpu"}  # the generator is a CPU one
    probs = torch.tensor([0.55, 0.15, 0.15, 0.15], **cpu)
    cue = torch.multinomial(probs, batch * length, replacement=True, generator=generator)
    cue = cue.reshape(length, batch)
    x = torch.zeros(length, batch, len(CHANNELS), **cpu)
    x[..., 0] = torch.rand(length, batch, generator=generator, **cpu) * 2 - 1
    for k in (1, 2, 3):
        x[..., k] = (cue == k).double()
    return x, task_targets(x)


def train_lstm(
    *, steps: int, seed: int, batch: int = 64, length: int = 16, lr: float = 0.05
) -> tuple[LSTM, list[float]]:
    """An ``rnnkit.LSTM(4, 1)`` trained on the task from torch's default start (float64).

    The loss is the mean squared error on the recall steps plus that on the other steps,
    so that the rare recalls weigh as much as the silent steps. Returns the layer (eval
    mode) and the loss per step. From seed 0, 1000 steps find the hand-set mechanism (a
    leakier one: f ≈ 0.985 between cues); not every seed does, some keep the output gate
    shut and output 0 throughout, which the report shows by the error of always 0 next
    to the trained one.
    """
    torch.manual_seed(seed)
    layer = LSTM(len(CHANNELS), 1, dtype=torch.float64)
    device = layer.weight_ih_l0.device
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        x, y = (v.to(device) for v in memory_batch(batch, length, gen))
        out, _ = layer(x)
        err = (out[..., 0] - y) ** 2
        recall = x[..., 2] > 0
        loss = err[recall].mean() + err[~recall].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return layer.eval(), losses


@dataclass
class ModelTrace:
    """One model over the sequence: its parameters and every step's values, each (T,)."""

    name: str
    weight_ih: Tensor  # (4, 4): rows i, f, g, o; columns value, store, recall, erase
    weight_hh: Tensor  # (4,)
    bias_ih: Tensor  # (4,)
    bias_hh: Tensor  # (4,)
    f: Tensor
    i: Tensor
    g: Tensor  # the candidate c̃^t
    o: Tensor
    c: Tensor
    h: Tensor
    recompute_error: float  # max |Δ| of the recomputed h^t, c^t against the layer's own


def trace_model(name: str, layer: LSTM, x: Tensor) -> ModelTrace:
    """Recompute every gate of ``layer`` over x (T, 4) and check h^t, c^t against the layer.

    The layer's h^t come from one call over the whole sequence, its c^t from one call per
    step that carries the state (h, c) on; both must equal the recomputation to 1e-12.
    """
    x = x.to(layer.weight_ih_l0.device)
    tr = trace_lstm(layer, x[:, None], check=False)[0]  # (T, 1, 1) each
    with torch.no_grad():
        out, _ = layer(x[:, None])
        state = None
        cells = []
        for t in range(x.size(0)):
            _, state = layer(x[t : t + 1, None], state)
            cells.append(state[1][0])
        c_layer = torch.stack(cells)  # (T, 1, 1)
    error = max(float((out - tr.h).abs().max()), float((c_layer - tr.c).abs().max()))
    if not error <= TOLERANCE:
        raise ValueError(
            f"lstm_example: recomputed h^t, c^t differ from the layer's by {error:.3g}; "
            f"expected at most {TOLERANCE:g} (a plain float64 LSTM)"
        )
    p = {k: v.detach().cpu() for k, v in layer.cell_parameters(0, 0).items()}
    values = {k: getattr(tr, k)[:, 0, 0].cpu() for k in ("f", "i", "g", "o", "c", "h")}
    return ModelTrace(
        name, p["weight_ih"], p["weight_hh"][:, 0], p["bias_ih"], p["bias_hh"], **values,
        recompute_error=error,
    )  # fmt: skip


@dataclass
class Training:
    """How the trained model was made and how well both models do the task."""

    steps: int
    seed: int
    final_loss: float  # mean of the last 50 training losses
    mse_trained: float  # on 512 held-out sequences of length 16, all steps
    mse_hand_set: float
    mse_silent: float  # an output of 0 at every step
    seconds: float  # training time; not in the report, which must repeat to the digit


@dataclass
class LSTMExampleResult:
    """The sequence, the hand-set model's trace and, optionally, a trained model's."""

    sequence: str
    x: Tensor  # (T, 4) float64
    hand_set: ModelTrace
    trained: ModelTrace | None = None
    training: Training | None = None

    @property
    def expected_cell(self) -> Tensor:
        """tanh(v) of the held value per step (0 when none): what c^t should be, (T,)."""
        held, _ = stored_values(self.x)
        return torch.tanh(held)

    def hold_error(self, model: ModelTrace | None = None) -> float:
        """max_t |c^t - tanh(held value)|: how well the cell keeps (and drops) the memory."""
        model = model or self.hand_set
        return float((model.c - self.expected_cell).abs().max())

    def erased_max(self, model: ModelTrace | None = None) -> float | None:
        """max |c^t| over the steps after an erase and before the next store (None if none)."""
        model = model or self.hand_set
        _, holding = stored_values(self.x)
        erase_seen = (self.x[:, 3] > 0).cummax(0).values
        erased = erase_seen & ~holding
        return float(model.c[erased].abs().max()) if bool(erased.any()) else None

    def report(self) -> str:
        lines = [
            "Claim (10.16): the cell state c^t is the long-term memory, the forget gate decides "
            "how much of it passes on.",
            f"1-unit LSTM, inputs x^t = ({', '.join(CHANNELS)}), {self.x.size(0)} steps: "
            f"{self.sequence}",
            "",
            *_weight_lines(self.hand_set, meanings=True),
            "",
            *self._trace_lines(self.hand_set),
        ]
        if self.trained is not None and self.training is not None:
            tr = self.training
            lines += [
                "",
                f"trained: the same LSTM(4, 1) from torch's default start, seed {tr.seed}, "
                f"{tr.steps} Adam steps (lr 0.05, batches of 64 random sequences of 16 steps, "
                f"float64); final loss {tr.final_loss:.2e}",
                f"mean squared error on 512 held-out sequences: trained {tr.mse_trained:.2e}, "
                f"hand-set {tr.mse_hand_set:.2e}, always 0 {tr.mse_silent:.2e}",
                "",
                *_weight_lines(self.trained, meanings=False),
                "",
                *self._trace_lines(self.trained),
            ]
        return "\n".join(lines)

    def _trace_lines(self, m: ModelTrace) -> list[str]:
        header = (
            f"{'t':>3} {'cue':<7}{'value':>7}{'store':>6}{'recall':>7}{'erase':>6}"
            f"{'f^t':>10}{'i^t':>10}{'c̃^t':>12}{'o^t':>10}{'c^t':>11}{'h^t':>11}"
        )
        lines = [f"{m.name}: step by step", header]
        for t, row in enumerate(self.x.tolist()):
            lines.append(
                f"{t:>3} {_cue(row):<7}{row[0]:>+7.3f}{row[1]:>6.0f}{row[2]:>7.0f}{row[3]:>6.0f}"
                f"{m.f[t]:>10.6f}{m.i[t]:>10.6f}{m.g[t]:>+11.6f}{m.o[t]:>10.6f}"
                f"{m.c[t]:>+11.6f}{m.h[t]:>+11.6f}"
            )
        erased = self.erased_max(m)
        recall = self.x[:, 2] > 0
        asked = task_targets(self.x)[recall]
        shown = ", ".join(
            f"t={t} {h:+.6f} ({y:+.6f})"
            for t, h, y in zip(
                recall.nonzero()[:, 0].tolist(), m.h[recall].tolist(), asked.tolist(), strict=True
            )
        )
        lines += [
            "h^t on recall (the task asks tanh(tanh(held value))): " + (shown or "no recall"),
            f"recomputed h^t and c^t equal the layer's: max |Δ| = {m.recompute_error:.1e} "
            f"(float64, tolerance {TOLERANCE:g})",
            f"memory: max_t |c^t - tanh(held value)| = {self.hold_error(m):.2e}; "
            + (
                f"max |c^t| after an erase = {erased:.2e}"
                if erased is not None
                else "no erase in this sequence"
            ),
        ]
        return lines

    def plot(self, path: str | Path) -> Path:
        from rnnkit.explain import plotting

        models = [m for m in (self.hand_set, self.trained) if m is not None]
        T = self.x.size(0)
        steps = list(range(T))
        held, _ = stored_values(self.x)
        shades = {1: ("store", "tab:green"), 2: ("recall", "tab:blue"), 3: ("erase", "tab:red")}
        with plotting.style():  # the caller's rcParams are restored after
            fig, axes = plotting.figure(
                3, len(models), width=3.0 + max(4.5, 0.42 * T) * len(models), height=8.0
            )
            for col, m in enumerate(models):
                for ax in axes[:, col]:
                    for t in steps:  # shade each cue's step in every panel
                        for k, (_, colour) in shades.items():
                            if self.x[t, k] > 0:
                                ax.axvspan(t - 0.5, t + 0.5, color=colour, alpha=0.13, lw=0)
                    ax.set_xlim(-0.5, T - 0.5)
                    ax.set_xticks(steps)
                ax = axes[0, col]
                ax.bar(steps, self.x[:, 0].tolist(), color="0.55", width=0.6, label="value")
                for name, colour in shades.values():  # legend entries for the shading
                    ax.bar([0], [0], color=colour, alpha=0.3, label=f"{name} cue")
                ax.axhline(0, color="black", lw=0.6)
                ax.set_ylim(-1.1, 1.1)
                ax.set_ylabel("input x^t")
                ax.set_title(f"{m.name}: inputs (value; shaded: cues)", loc="left")
                _legend(ax, col == len(models) - 1)
                ax = axes[1, col]
                for name, values, colour in (
                    ("forget f^t", m.f, "tab:red"),
                    ("input i^t", m.i, "tab:green"),
                    ("output o^t", m.o, "tab:blue"),
                ):
                    ax.plot(steps, values.tolist(), "o-", color=colour, ms=4, label=name)
                ax.set_ylim(-0.05, 1.05)
                ax.set_ylabel("gate")
                ax.set_title("gates (1 = open)", loc="left")
                _legend(ax, col == len(models) - 1)
                ax = axes[2, col]
                ax.step(
                    steps, torch.tanh(held).tolist(), where="mid", color="0.5", ls="--",
                    label="tanh(held value)",
                )  # fmt: skip
                ax.plot(steps, m.c.tolist(), "o-", color="tab:purple", ms=4, label="cell c^t")
                ax.plot(steps, m.h.tolist(), "s-", color="tab:orange", ms=3, label="hidden h^t")
                ax.axhline(0, color="black", lw=0.6)
                ax.set_ylim(-1.05, 1.05)
                ax.set_xlabel("step t")
                ax.set_ylabel("state")
                ax.set_title("c^t: long-term memory, h^t: what is shown now", loc="left")
                _legend(ax, col == len(models) - 1)
            title = (
                "Claim (10.16): the cell state is the long-term memory; the forget gate decides "
                "how much of it passes on\n"
                "c^t holds the stored value while f^t ≈ 1 and drops it when f^t closes "
                "(store overwrites, erase empties)"
            )
            return plotting.save(fig, path, title)


def _legend(ax: Any, show: bool) -> None:
    if show:  # right of the last column, off the data
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _cue(row: list[float]) -> str:
    names = [name for k, name in ((1, "store"), (2, "recall"), (3, "erase")) if row[k] > 0]
    return ",".join(names) or "-"


def _weight_lines(m: ModelTrace, *, meanings: bool) -> list[str]:
    lines = [
        f"{m.name}: every parameter (rows: gates in torch's order; w_h: weight_hh)",
        f"{'gate':<12}"
        + "".join(f"{'w_' + c:>10}" for c in CHANNELS)
        + f"{'w_h':>9}{'bias_ih':>10}{'bias_hh':>10}"
        + ("   what it does" if meanings else ""),
    ]
    # "c̃" is two code points shown as one character: one more space keeps the columns.
    names = {"i": "i (input)", "f": "f (forget)", "g": "g (c̃) ", "o": "o (output)"}
    for row, gate in enumerate(GATES):
        lines.append(
            f"{names[gate]:<12}"
            + "".join(f"{float(w):>+10.3f}" for w in m.weight_ih[row])
            + f"{float(m.weight_hh[row]):>+9.3f}{float(m.bias_ih[row]):>+10.3f}"
            + f"{float(m.bias_hh[row]):>+10.3f}"
            + (f"   {HAND_SET[gate][2]}" if meanings else "")
        )
    if meanings:
        lines.append(
            f"a gate pre-activation of ±{GATE:g} gives σ = {_sigmoid(GATE):.6f} (open) or "
            f"{_sigmoid(-GATE):.6f} (shut)"
        )
    return lines


def _sigmoid(a: float) -> float:
    return 1.0 / (1.0 + math.exp(-a))


def run_lstm_example(
    sequence: str | None = None, *, trained: bool = False, steps: int = 1000, seed: int = 0
) -> LSTMExampleResult:
    """Trace the hand-set LSTM over ``sequence`` (default :data:`DEFAULT_SEQUENCE`).

    With ``trained``, also train an LSTM of the same size on the task for ``steps`` Adam
    steps from seed ``seed`` and trace it over the same sequence.
    """
    text = DEFAULT_SEQUENCE if sequence is None else sequence
    x = parse_sequence(text)
    if not isinstance(trained, bool):
        raise TypeError(f"lstm_example: trained must be a bool; got {trained!r}")
    if trained and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"lstm_example: steps must be a positive integer; got {steps!r}")
    hand = hand_set_lstm()
    shown = ",".join(part.strip() for part in text.split(","))
    result = LSTMExampleResult(shown, x, trace_model("hand-set weights", hand, x))
    if trained:
        start = time.perf_counter()
        layer, losses = train_lstm(steps=steps, seed=seed)
        seconds = time.perf_counter() - start
        x_val, y_val = memory_batch(512, 16, torch.Generator().manual_seed(seed + 1))
        result.trained = trace_model(f"trained (seed {seed}, {steps} steps)", layer, x)
        result.training = Training(
            steps=steps,
            seed=seed,
            final_loss=sum(losses[-50:]) / len(losses[-50:]),
            mse_trained=_mse(layer, x_val, y_val),
            mse_hand_set=_mse(hand, x_val, y_val),
            mse_silent=float((y_val**2).mean()),
            seconds=seconds,
        )
    return result


def _mse(layer: LSTM, x: Tensor, y: Tensor) -> float:
    """Mean squared error of the layer's h^t against the task's targets, over all steps."""
    with torch.no_grad():
        out, _ = layer(x.to(layer.weight_ih_l0.device))
    return float(((out[..., 0].cpu() - y) ** 2).mean())
