"""Backpropagation through time written out, and checked against autograd (chapter 10.7, 10.15).

The chapter's sections 10.7 and 10.15 are cut off; this module writes the backward pass of
the Elman RNN and of the LSTM as the recurrences that BPTT runs, in plain tensor code
(no autograd), and checks every gradient against ``loss.backward()`` through rnnkit's own
layers. The loss is the chapter's L = Σ_t L^t (10.3) with a linear read-out and squared
error per step, summed over the batch:

    y^t = W_hy h^t + b_y,   L^t = ½ ‖y^t − ŷ^t‖²,   so ∂L^t/∂y^t = y^t − ŷ^t.

Elman RNN (10.2), a^t = W_xh x^t + b + W_hh h^{t−1}, h^t = tanh(a^t). With
δh^t = ∂L/∂h^t (all that h^t reaches: y^t now and h^{t+1} next), for t = T−1 down to 0:

    δh^t = W_hyᵀ ∂L^t/∂y^t + W_hhᵀ δa^{t+1},   δa^t = δh^t ∘ (1 − (h^t)²),   δa^T = 0
    ∂L/∂W_hh = Σ_t δa^t (h^{t−1})ᵀ,   ∂L/∂W_xh = Σ_t δa^t (x^t)ᵀ,   ∂L/∂b = Σ_t δa^t
    ∂L/∂x^t = W_xhᵀ δa^t,   ∂L/∂h^{−1} = W_hhᵀ δa^0

LSTM (10.4-10.7; the cell of :mod:`rnnkit.cells.lstm`), z^t = W_x· x^t + b + W_h· h^{t−1}
split into the pre-activations of i, f, c̃, o in torch's order i, f, g (= c̃), o:

    δh^t = W_hyᵀ ∂L^t/∂y^t + W_hhᵀ δz^{t+1}
    δc^t = δh^t ∘ o^t ∘ (1 − tanh² c^t) + δc^{t+1} ∘ f^{t+1}
    δo^t = δh^t ∘ tanh c^t ∘ o^t(1 − o^t),      δi^t = δc^t ∘ c̃^t ∘ i^t(1 − i^t)
    δf^t = δc^t ∘ c^{t−1} ∘ f^t(1 − f^t),       δc̃^t = δc^t ∘ i^t ∘ (1 − (c̃^t)²)
    δz^t = [δi^t; δf^t; δc̃^t; δo^t],  then the weight gradients as for the RNN with δz for δa,
    and ∂L/∂c^{−1} = δc^0 ∘ f^0.

The term δc^{t+1} ∘ f^{t+1} is the chapter's ∂c^t/∂c^{t−1} = f^t (10.14): the cell state's
direct path; the rest of δc^t arrives through h^t. The two biases of torch (b_ih, b_hh)
enter only as their sum, so both get the same gradient Σ_t δa^t. The initial state is
h^{−1} (the chapter counts steps from t = 0); torch calls it h_0.

References: Werbos 1990 (BPTT); Hochreiter & Schmidhuber 1997 (LSTM); Greff et al. 2017,
"LSTM: A Search Space Odyssey", appendix A (the LSTM's backward pass).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from torch import Tensor, nn

from rnnkit import _checks
from rnnkit.explain import _memory
from rnnkit.layers import LSTM, RNN, RecurrentLayer

CELLS = ("rnn", "lstm", "both")
# Peak resident memory on the CPU, measured in float64: the step-by-step autograd run keeps
# ~36 KiB of graph per time step whatever the sizes; the recurrences' and autograd's
# tensors ~250 B per step, sample and unit; the weights, their gradients and autograd's
# copies of them ~150 B per weight of W_x·, W_h· and the head.
MEMORY_RULE = "32 MiB + T·(40 KiB + 320 B·B·(H + I + O)) + 160 B·H·(H + I + O) within 2 GiB"


def memory_estimate(input_size: int, output_size: int, hidden: int, batch: int, length: int) -> int:
    """Bytes ``run_bptt`` holds at its peak, about, for either cell or both."""
    width = hidden + input_size + output_size
    return 32 * 2**20 + length * (40 * 2**10 + 320 * batch * width) + 160 * hidden * width


def check_memory(sizes: dict[str, int], *, flags: bool = False) -> None:
    """Refuse sizes past the memory bound, before any work. ``sizes`` holds input_size,
    output_size, hidden, batch and length in that order, under their API names or
    (``flags``) their flags; the length is bounded last, at the others given."""
    order = [(name, value, 1) for name, value in sizes.items()]
    _memory.check("bptt", order, memory_estimate, MEMORY_RULE, flags=flags)


TOLERANCE = 1e-12  # float64: a real mistake in a recurrence is of order 1e-2, rounding 1e-16

# Report labels: torch's name of each gradient and the chapter's symbol for it.
LABELS = {
    "weight_ih_l0": "weight_ih_l0  W_x·",
    "weight_hh_l0": "weight_hh_l0  W_h·",
    "bias_ih_l0": "bias_ih_l0    b_ih",
    "bias_hh_l0": "bias_hh_l0    b_hh",
    "head.weight": "head.weight   W_hy",
    "head.bias": "head.bias     b_y",
    "x": "∂L/∂x^t, all t",
    "h0": "∂L/∂h^(-1)  (h_0)",
    "c0": "∂L/∂c^(-1)  (c_0)",
    "delta_h": "δh^t, all t",
    "delta_c": "δc^t, all t",
}


@dataclass
class Backward:
    """One backward pass: the loss, its gradients and the per-step deltas.

    ``grads`` has the layer's parameter names (``weight_hh_l0``, ...), ``head.weight``,
    ``head.bias`` (if the head has one), ``x`` (T, B, I), ``h0`` (B, H) and for the LSTM
    ``c0`` (B, H). ``delta_h`` and ``delta_c`` are (T, B, H): δh^t = ∂L/∂h^t and
    δc^t = ∂L/∂c^t. ``forget`` is f^t (T, B, H), from the recurrences' forward pass.
    """

    loss: float
    grads: dict[str, Tensor]
    delta_h: Tensor
    delta_c: Tensor | None = None
    forget: Tensor | None = None


# ---- argument checks ----------------------------------------------------------------


def _check(
    owner: str,
    layer: object,
    kind: type[RecurrentLayer],
    head: object,
    x: object,
    target: object,
    states: dict[str, object],
) -> None:
    """Refuse what the recurrences here do not cover, in one line naming the argument."""
    if not isinstance(layer, kind):
        raise TypeError(
            f"{owner}: layer must be an rnnkit.{kind.__name__}; got {type(layer).__name__}"
        )
    if layer.bidirectional:
        raise ValueError(f"{owner}: layer must be unidirectional; got bidirectional=True")
    if layer.num_layers != 1:
        raise ValueError(f"{owner}: layer must have num_layers=1; got {layer.num_layers}")
    if layer.batch_first:
        raise ValueError(f"{owner}: layer must be time-major (T, B, I); got batch_first=True")
    if isinstance(layer, RNN) and layer.nonlinearity != "tanh":
        raise ValueError(f"{owner}: layer must use nonlinearity='tanh'; got {layer.nonlinearity!r}")
    cell = layer.first_cell
    options = {
        "layer_norm": getattr(cell, "layer_norm", False),
        "zoneout": cell.zoneout,
        "recurrent_dropout": cell.recurrent_dropout,
    }
    used = [f"{name}={value!r}" for name, value in options.items() if value]
    if used:
        raise ValueError(
            f"{owner}: layer must not use layer_norm, zoneout or recurrent_dropout; "
            f"got {', '.join(used)}"
        )
    if not isinstance(head, nn.Linear):
        raise TypeError(f"{owner}: head must be a torch.nn.Linear; got {type(head).__name__}")
    H = layer.hidden_size
    if head.in_features != H:
        raise ValueError(
            f"{owner}: head.in_features must equal the layer's hidden_size {H}; "
            f"got {head.in_features}"
        )
    ref = layer.weight_ih_l0
    x = _checks.tensor_arg(owner, "x", x)
    if x.dim() != 3 or x.size(0) < 1 or x.size(1) < 1 or x.size(2) != layer.input_size:
        raise ValueError(
            f"{owner}: x must have shape (T, B, {layer.input_size}) with T, B >= 1; "
            f"got {tuple(x.shape)}"
        )
    T, B, _ = x.shape
    _checks.same_dtype_device(owner, "x", x, ref, "the layer's parameters")
    expected = {"target": (T, B, head.out_features), **{name: (B, H) for name in states}}
    for name, value in {"target": target, **states}.items():
        value = _checks.tensor_arg(owner, name, value)
        _checks.shape_is(owner, name, value, expected[name])
        _checks.same_dtype_device(owner, name, value, ref, "the layer's parameters")


# ---- the recurrences ----------------------------------------------------------------


def _read_out(head: nn.Linear, h: Tensor, target: Tensor) -> tuple[float, Tensor]:
    """L = Σ_t ½‖W_hy h^t + b_y − ŷ^t‖² (10.3) and ∂L^t/∂y^t = y^t − ŷ^t, (T, B, O)."""
    y = h @ head.weight.T
    if head.bias is not None:
        y = y + head.bias
    dy = y - target
    return float(0.5 * dy.pow(2).sum()), dy


def _sums_over_time(
    layer: RecurrentLayer,
    head: nn.Linear,
    delta_a: Tensor,
    x: Tensor,
    h: Tensor,
    dy: Tensor,
) -> dict[str, Tensor]:
    """The weight gradients, each a sum over t (the weights are shared by every step, 10.3).

    ``delta_a`` (T, B, G·H) are the pre-activation deltas, ``h`` (T+1, B, H) the states
    h^{−1}..h^{T−1}, ``dy`` (T, B, O) the read-out's ∂L^t/∂y^t.
    """
    grads = {
        "weight_ih_l0": torch.einsum("tbg,tbi->gi", delta_a, x),  # Σ_t δa^t (x^t)ᵀ
        "weight_hh_l0": torch.einsum("tbg,tbh->gh", delta_a, h[:-1]),  # Σ_t δa^t (h^{t−1})ᵀ
    }
    if layer.bias:
        grads["bias_ih_l0"] = delta_a.sum((0, 1))  # b = b_ih + b_hh: one gradient for both
        grads["bias_hh_l0"] = delta_a.sum((0, 1))
    grads["head.weight"] = torch.einsum("tbo,tbh->oh", dy, h[1:])  # Σ_t ∂L^t/∂y^t (h^t)ᵀ
    if head.bias is not None:
        grads["head.bias"] = dy.sum((0, 1))
    W_ih = layer.weight_ih_l0
    grads["x"] = delta_a @ W_ih  # ∂L/∂x^t = W_xhᵀ δa^t (rows are samples)
    return grads


def rnn_bptt(layer: RNN, head: nn.Linear, x: Tensor, target: Tensor, h0: Tensor) -> Backward:
    """Backward pass of an Elman RNN (tanh) and a linear head by the recurrences, no autograd.

    Args:
        layer: a one-layer unidirectional time-major ``rnnkit.RNN`` with tanh.
        head: the read-out y^t = W_hy h^t + b_y, an ``nn.Linear(H, O)``.
        x: (T, B, I) inputs; target: (T, B, O) ŷ^t; h0: (B, H) the initial state h^{−1}.
    """
    _check("rnn_bptt", layer, RNN, head, x, target, {"h0": h0})
    with torch.no_grad():
        W_ih, W_hh = layer.weight_ih_l0, layer.weight_hh_l0
        b = layer.bias_ih_l0 + layer.bias_hh_l0 if layer.bias else 0.0
        T = x.size(0)
        h = [h0]  # h[t + 1] is h^t; h[0] the initial state h^{−1}
        for t in range(T):
            h.append(torch.tanh(x[t] @ W_ih.T + b + h[t] @ W_hh.T))  # (10.2)
        hs = torch.stack(h)  # (T+1, B, H)
        loss, dy = _read_out(head, hs[1:], target)
        delta_h = torch.zeros_like(hs[1:])
        delta_a = torch.zeros_like(hs[1:])
        da_next = torch.zeros_like(h0)  # δa^T = 0: no step after the last one
        for t in reversed(range(T)):
            # Rows are samples, so W_hyᵀ v and W_hhᵀ v are written v @ W_hy and v @ W_hh.
            delta_h[t] = dy[t] @ head.weight + da_next @ W_hh
            delta_a[t] = delta_h[t] * (1 - hs[t + 1] ** 2)  # tanh'(a^t) = 1 − (h^t)²
            da_next = delta_a[t]
        grads = _sums_over_time(layer, head, delta_a, x, hs, dy)
        grads["h0"] = delta_a[0] @ W_hh
    return Backward(loss, grads, delta_h)


def lstm_bptt(
    layer: LSTM, head: nn.Linear, x: Tensor, target: Tensor, h0: Tensor, c0: Tensor
) -> Backward:
    """Backward pass of an LSTM and a linear head by the recurrences, no autograd.

    Arguments as in :func:`rnn_bptt`, with ``layer`` a one-layer unidirectional
    ``rnnkit.LSTM`` and ``c0`` (B, H) the initial cell state c^{−1}.
    """
    _check("lstm_bptt", layer, LSTM, head, x, target, {"h0": h0, "c0": c0})
    with torch.no_grad():
        W_ih, W_hh = layer.weight_ih_l0, layer.weight_hh_l0
        b = layer.bias_ih_l0 + layer.bias_hh_l0 if layer.bias else 0.0
        T = x.size(0)
        h, c, gates = [h0], [c0], []
        for t in range(T):
            z_i, z_f, z_g, z_o = (x[t] @ W_ih.T + b + h[t] @ W_hh.T).chunk(4, dim=-1)
            i, f = torch.sigmoid(z_i), torch.sigmoid(z_f)  # input, forget gate (10.5, 10.4)
            g, o = torch.tanh(z_g), torch.sigmoid(z_o)  # candidate c̃^t (10.5), output (10.7)
            c.append(f * c[t] + i * g)  # (10.6)
            h.append(o * torch.tanh(c[t + 1]))  # (10.7)
            gates.append((i, f, g, o))
        i, f, g, o = (torch.stack(gate) for gate in zip(*gates, strict=True))  # (T, B, H)
        hs, cs = torch.stack(h), torch.stack(c)  # (T+1, B, H), index 0 the initial state
        tanh_c = torch.tanh(cs[1:])
        loss, dy = _read_out(head, hs[1:], target)
        delta_h = torch.zeros_like(hs[1:])
        delta_c = torch.zeros_like(cs[1:])
        delta_z = torch.zeros(T, *h0.shape[:-1], 4 * h0.size(-1), dtype=h0.dtype, device=h0.device)
        dz_next = delta_z[0].clone()  # δz^T = 0 and δc^T = 0: no step after the last one
        dc_next, f_next = torch.zeros_like(c0), torch.zeros_like(c0)
        for t in reversed(range(T)):
            delta_h[t] = dy[t] @ head.weight + dz_next @ W_hh
            delta_c[t] = delta_h[t] * o[t] * (1 - tanh_c[t] ** 2) + dc_next * f_next
            d_o = delta_h[t] * tanh_c[t] * o[t] * (1 - o[t])  # σ' = σ(1 − σ)
            d_i = delta_c[t] * g[t] * i[t] * (1 - i[t])
            d_f = delta_c[t] * cs[t] * f[t] * (1 - f[t])  # cs[t] is c^{t−1}
            d_g = delta_c[t] * i[t] * (1 - g[t] ** 2)  # tanh' = 1 − tanh²
            delta_z[t] = torch.cat((d_i, d_f, d_g, d_o), dim=-1)  # torch's order i, f, g, o
            dz_next, dc_next, f_next = delta_z[t], delta_c[t], f[t]
        grads = _sums_over_time(layer, head, delta_z, x, hs, dy)
        grads["h0"] = delta_z[0] @ W_hh
        grads["c0"] = delta_c[0] * f[0]
    return Backward(loss, grads, delta_h, delta_c, f)


# ---- the same with autograd -----------------------------------------------------------


def autograd_bptt(
    layer: RNN | LSTM,
    head: nn.Linear,
    x: Tensor,
    target: Tensor,
    h0: Tensor,
    c0: Tensor | None = None,
) -> Backward:
    """The same loss through the layer and head, differentiated by ``loss.backward()``.

    The parameters' gradients are their ``.grad`` after one call of the layer over the
    whole sequence (set to these values here). δh^t and δc^t come from a second run
    through the layer's own cell, one step at a time, that keeps each state h^t (and c^t)
    as a tensor read by the head and by the next step, so that ``torch.autograd.grad``
    with respect to it is the total ∂L/∂h^t (∂L/∂c^t).
    """
    lstm = isinstance(layer, LSTM)
    states0: dict[str, object] = {"h0": h0, "c0": c0} if lstm else {"h0": h0}
    _check("autograd_bptt", layer, LSTM if lstm else RNN, head, x, target, states0)
    _check_trainable(layer, head)
    # _check made c0 a tensor for an LSTM; an RNN has no cell state and ignores a c0.
    c0 = c0 if lstm else None
    layer.zero_grad(set_to_none=True)
    head.zero_grad(set_to_none=True)
    x_in = x.detach().clone().requires_grad_(True)
    h_in = h0.detach().clone().requires_grad_(True)
    c_in = c0.detach().clone().requires_grad_(True) if c0 is not None else None
    state_in = (h_in[None], c_in[None]) if c_in is not None else h_in[None]  # (L*D = 1, B, H)
    out, _ = layer(x_in, state_in)
    loss = 0.5 * (head(out) - target).pow(2).sum()
    loss.backward()
    grads = {name: _grad(p).detach().clone() for name, p in layer.named_parameters()}
    grads |= {f"head.{name}": _grad(p).detach().clone() for name, p in head.named_parameters()}
    grads["x"], grads["h0"] = _grad(x_in), _grad(h_in)
    if c_in is not None:
        grads["c0"] = _grad(c_in)

    # δh^t, δc^t: the layer's own cell, one step at a time, keeping every state. The cell
    # computes h^t from c^t, so ∂L/∂c^t reaches c^t through h^t and through c^{t+1}.
    cell, p = layer.first_cell, layer.cell_parameters(0, 0)
    gx = cell.project(p, x)  # W_x· x^t + b_ih for every t
    state: tuple[Tensor, ...] = (h0, c0) if c0 is not None else (h0,)
    states: list[Tensor] = []
    step_loss = x.new_zeros(())
    for t in range(x.size(0)):
        state = cell.recur(p, gx[t], state, None)
        states.extend(state)
        step_loss = step_loss + 0.5 * (head(state[0]) - target[t]).pow(2).sum()
    deltas = torch.autograd.grad(step_loss, states)
    n = len(state)  # values per step: (h,) or (h, c)
    delta_h = torch.stack(deltas[0::n])  # (T, B, H)
    delta_c = torch.stack(deltas[1::n]) if lstm else None
    return Backward(float(loss.detach()), grads, delta_h, delta_c)


def _check_trainable(layer: RecurrentLayer, head: nn.Linear) -> None:
    """Refuse a frozen parameter: backward leaves its .grad None, which ended in an
    AttributeError ("'NoneType' object has no attribute 'detach'")."""
    frozen = [name for name, p in layer.named_parameters() if not p.requires_grad]
    frozen += [f"head.{name}" for name, p in head.named_parameters() if not p.requires_grad]
    if frozen:
        raise ValueError(
            "autograd_bptt: every parameter of layer and head must require grad; "
            f"got requires_grad=False for {', '.join(frozen)}"
        )


def _grad(t: Tensor) -> Tensor:
    """``t.grad`` after ``loss.backward()`` in :func:`autograd_bptt`: every tensor read this
    way is a leaf that requires grad (the parameters checked by :func:`_check_trainable`)
    and that the loss reads, so backward filled it."""
    return cast(Tensor, t.grad)


# ---- the experiment -------------------------------------------------------------------


@dataclass
class CellCheck:
    """One cell's backward pass by the recurrences and by autograd."""

    name: str
    recurrences: Backward
    autograd: Backward

    def differences(self) -> dict[str, float]:
        """max |recurrences − autograd| per gradient, per delta and for the loss."""
        mine, ref = self.recurrences, self.autograd
        diffs = {
            name: float((mine.grads[name] - ref.grads[name]).abs().max()) for name in ref.grads
        }
        diffs["delta_h"] = float((mine.delta_h - ref.delta_h).abs().max())
        if ref.delta_c is not None and mine.delta_c is not None:
            diffs["delta_c"] = float((mine.delta_c - ref.delta_c).abs().max())
        diffs["loss"] = abs(mine.loss - ref.loss)
        return diffs

    def max_difference(self) -> float:
        return max(self.differences().values())


@dataclass
class BPTTResult:
    length: int
    batch: int
    input_size: int
    hidden: int
    output_size: int
    seed: int
    cells: list[CellCheck]
    seconds: float

    def report(self) -> str:
        lines = [
            f"BPTT by the recurrences (10.7, 10.15) against autograd: T = {self.length}, "
            f"B = {self.batch}, I = {self.input_size}, H = {self.hidden}, "
            f"O = {self.output_size}, float64, seed {self.seed}",
            "loss L = Σ_t L^t (10.3), L^t = ½‖W_hy h^t + b_y − target^t‖² summed over the batch",
        ]
        for check in self.cells:
            mine = check.recurrences
            lstm = mine.delta_c is not None
            lines += ["", f"{check.name}: L = {mine.loss:.6f}; backwards from t = T−1 to 0:"]
            header = f"{'t':>5}{'‖δh^t‖':>14}"
            lines.append(header + (f"{'‖δc^t‖':>14}{'mean f^t':>11}" if lstm else ""))
            for t in reversed(range(self.length)):
                row = f"{t:>5}{float(mine.delta_h[t].norm()):>14.6e}"
                if lstm:
                    assert mine.delta_c is not None and mine.forget is not None
                    row += f"{float(mine.delta_c[t].norm()):>14.6e}"
                    row += f"{float(mine.forget[t].mean()):>11.4f}"
                lines.append(row)
        lines += [
            "",
            f"{'gradient':<22}{'cell':<6}{'‖recurrences‖':>16}{'‖autograd‖':>16}{'max |diff|':>12}",
        ]
        for check in self.cells:
            cell = check.name.split()[0]
            diffs = check.differences()
            mine, ref = check.recurrences, check.autograd
            tensors = {
                **{n: (mine.grads[n], ref.grads[n]) for n in ref.grads},
                "delta_h": (mine.delta_h, ref.delta_h),
            }
            if mine.delta_c is not None and ref.delta_c is not None:
                tensors["delta_c"] = (mine.delta_c, ref.delta_c)
            for name, (a, b) in tensors.items():
                lines.append(
                    f"{LABELS.get(name, name):<22}{cell:<6}{float(a.norm()):>16.9e}"
                    f"{float(b.norm()):>16.9e}{diffs[name]:>12.1e}"
                )
            lines.append(
                f"{'L':<22}{cell:<6}{mine.loss:>16.9e}{ref.loss:>16.9e}{diffs['loss']:>12.1e}"
            )
        worst = max(check.max_difference() for check in self.cells)
        verdict = "equal" if worst <= TOLERANCE else "do NOT equal"
        relation = "<=" if worst <= TOLERANCE else ">"
        names = " and ".join(check.name for check in self.cells)
        lstm = any(check.recurrences.delta_c is not None for check in self.cells)
        deltas = "δh^t, δc^t" if lstm else "δh^t"
        lines += [
            "",
            f"check: the recurrences {verdict} autograd for {names} (every gradient, "
            f"{deltas}, L): max |difference| = {worst:.1e} {relation} {TOLERANCE:.0e} (float64)",
            f"({self.seconds:.2f} s)",
        ]
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        from rnnkit.explain import plotting

        colours = {"RNN": "tab:red", "LSTM": "tab:blue"}
        with plotting.style():  # the caller's rcParams are restored after
            fig, axes = plotting.figure(1, 2, width=12.0, height=4.6)
            ax = axes[0, 0]
            steps = list(range(self.length))
            for check in self.cells:
                cell = check.name.split()[0]
                curves = [("h", check.recurrences.delta_h, check.autograd.delta_h, "-")]
                if check.recurrences.delta_c is not None:
                    assert check.autograd.delta_c is not None
                    curves.append(("c", check.recurrences.delta_c, check.autograd.delta_c, "--"))
                for state, mine, ref, ls in curves:
                    ax.plot(
                        steps,
                        mine.flatten(1).norm(dim=1).tolist(),
                        ls,
                        color=colours[cell],
                        label=f"{cell} ‖δ{state}^t‖, recurrences",
                    )
                    ax.plot(
                        steps,
                        ref.flatten(1).norm(dim=1).tolist(),
                        "o" if state == "h" else "s",
                        mfc="none",
                        color=colours[cell],
                        label=f"{cell} ‖∂L/∂{state}^t‖, autograd",
                    )
            ax.set_yscale("log")
            ax.set_xlabel("time step t  (the backward pass runs from T−1 down to 0)")
            ax.set_ylabel("norm over the batch")
            ax.set_title(
                "the deltas at every step: lines = recurrences, marks = autograd", loc="left"
            )
            ax.legend(fontsize=8)
            ax = axes[0, 1]
            floor = 1e-18  # an exact 0 drawn at the floor: log axes have no 0
            labels, values, bar_colours = [], [], []
            for check in self.cells:
                cell = check.name.split()[0]
                for name, diff in check.differences().items():
                    labels.append(f"{cell} {LABELS.get(name, name).split('  ')[0]}")
                    values.append(max(diff, floor))
                    bar_colours.append(colours[cell])
            ax.barh(range(len(values)), values, color=bar_colours)
            ax.set_yticks(range(len(values)), labels, fontsize=7)
            ax.invert_yaxis()
            ax.set_xscale("log")
            ax.set_xlim(floor, 1e-6)
            ax.axvline(TOLERANCE, color="black", ls="--", label=f"tolerance {TOLERANCE:.0e}")
            ax.set_xlabel("max |recurrences − autograd|  (float64; exactly 0: no bar)")
            ax.set_title("every gradient: difference to autograd", loc="left")
            ax.legend(fontsize=8)
            cells = " and ".join(check.name.split()[0] for check in self.cells)
            title = (
                f"Claim (10.7, 10.15): the BPTT recurrences for {cells} equal autograd\n"
                f"L = Σ_t ½‖y^t − target^t‖², T = {self.length}, B = {self.batch}, "
                f"H = {self.hidden}, float64"
            )
            return plotting.save(fig, path, title)


def sample(
    length: int, batch: int, input_size: int, hidden: int, output_size: int, seed: int
) -> dict[str, Tensor]:
    """Inputs x, targets, and non-zero initial states h0, c0 (so ∂L/∂h^{−1} is tested too)."""
    gen = torch.Generator().manual_seed(seed)

    def normal(*shape: int, scale: float = 1.0) -> Tensor:
        return scale * torch.randn(*shape, generator=gen, dtype=torch.float64, device="cpu")

    return {
        "x": normal(length, batch, input_size),
        "target": normal(length, batch, output_size),
        "h0": normal(batch, hidden, scale=0.5),
        "c0": normal(batch, hidden, scale=0.5),
    }


def run_bptt(
    *,
    cell: str = "both",
    length: int = 12,
    batch: int = 2,
    input_size: int = 3,
    hidden: int = 4,
    output_size: int = 2,
    seed: int = 0,
) -> BPTTResult:
    """Backward pass of ``rnnkit.RNN`` (tanh) and/or ``rnnkit.LSTM`` by hand and by autograd.

    Layers and head are built in float64 on torch's default device, initialised from
    ``seed``; the data come from ``seed`` too.
    """
    if cell not in CELLS:
        raise ValueError(f"bptt: cell must be one of {CELLS}; got {cell!r}")
    sizes = {
        "length": length,
        "batch": batch,
        "input_size": input_size,
        "hidden": hidden,
        "output_size": output_size,
    }
    for name, value in sizes.items():
        _checks.positive_int("bptt", name, value)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"bptt: seed must be a non-negative integer; got {seed!r}")
    check_memory({"input_size": input_size, "output_size": output_size, "hidden": hidden,
                  "batch": batch, "length": length})  # fmt: skip
    start = time.perf_counter()
    kinds = {"rnn": (RNN, "RNN (tanh)"), "lstm": (LSTM, "LSTM")}
    chosen = ("rnn", "lstm") if cell == "both" else (cell,)
    checks = []
    for kind in chosen:
        layer_class, name = kinds[kind]
        torch.manual_seed(seed)
        layer = layer_class(input_size, hidden, dtype=torch.float64)
        head = nn.Linear(hidden, output_size, dtype=torch.float64)
        device = layer.weight_ih_l0.device
        data = {
            k: v.to(device)
            for k, v in sample(length, batch, input_size, hidden, output_size, seed).items()
        }
        args = (layer, head, data["x"], data["target"], data["h0"])
        if kind == "rnn":
            checks.append(CellCheck(name, rnn_bptt(*args), autograd_bptt(*args)))
        else:
            c0 = data["c0"]
            checks.append(CellCheck(name, lstm_bptt(*args, c0), autograd_bptt(*args, c0)))
    return BPTTResult(
        length, batch, input_size, hidden, output_size, seed, checks, time.perf_counter() - start
    )
