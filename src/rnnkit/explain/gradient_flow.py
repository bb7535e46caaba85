"""How the error signal flows back through time (chapter 10.7, 10.14, 10.15).

BPTT reaches h^{t-k} only through the chain of steps in between, so

    ∂L/∂h^{t-k} = (∂h^t/∂h^{t-k})ᵀ ∂L/∂h^t,   ∂h^t/∂h^{t-k} = ∏_{j=t-k+1}^{t} ∂h^j/∂h^{j-1}.

For the Elman RNN h^j = tanh(W_hh h^{j-1} + ...) each factor is diag(1 - (h^j)²) W_hh: when
its norm stays below 1 the product, and with it the gradient, shrinks geometrically
(Bengio et al. 1994; Pascanu et al. 2013). For the LSTM the chapter (10.14) writes
∂c^t/∂c^{t-1} = f^t. That is the *direct* term only: f^t, i^t and c̃^t read
h^{t-1} = o^{t-1} ∘ tanh(c^{t-1}), so the full derivative is

    ∂c^t/∂c^{t-1} = diag(f^t) + [diag(c^{t-1} ∘ f^t(1-f^t)) W_hf + diag(c̃^t ∘ i^t(1-i^t)) W_hi
                                 + diag(i^t ∘ (1-(c̃^t)²)) W_hc] diag(o^{t-1} ∘ (1-tanh²(c^{t-1}))).

This module measures, for RNN (tanh, relu), GRU and LSTM of the same size on the same
sequences, at initialisation and after training on the adding problem:

- ‖∂L/∂h^{T-1-k}‖ (and ‖∂L/∂c^{T-1-k}‖), the loss read at the last step, by autograd
  through rnnkit's own cells run step by step;
- the spectral norm of the product of one-step Jacobians, each taken with torch.func.jacrev
  of the cell's step; for the LSTM, of the full (h, c) state, of the total dc/dc and of
  the direct term ∏ f alone.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, cast

import torch
from torch import Tensor, nn
from torch.func import jacrev

from rnnkit.cells import LSTMCell
from rnnkit.data.tasks import adding_problem
from rnnkit.explain import _memory
from rnnkit.explain.gates import lstm_gates
from rnnkit.layers import GRU, LSTM, RNN, RecurrentLayer

MODELS = ("RNN tanh", "RNN relu", "GRU", "LSTM")
# What the experiment holds at its peak, measured (peak resident memory on the CPU): every
# time step's autograd graph and one-step Jacobian are kept, ~160 KiB + 2 KiB·H + 32 B·H² a
# step, and torch.func.jacrev's batched backward over the 2H-wide state needs ~640 B·H².
MEMORY_LIMIT = _memory.MEMORY_LIMIT


def memory_estimate(length: int, hidden: int) -> int:
    """Bytes ``run_gradient_flow`` holds at its peak, about, for T = length and H = hidden."""
    per_step = 160 * 2**10 + 2 * 2**10 * hidden + 32 * hidden**2
    return length * per_step + 640 * hidden**2


def max_length(hidden: int) -> int:
    """The longest T whose :func:`memory_estimate` stays within :data:`MEMORY_LIMIT`."""
    per_step = memory_estimate(1, hidden) - memory_estimate(0, hidden)
    return max(0, (MEMORY_LIMIT - memory_estimate(0, hidden)) // per_step)


def max_hidden() -> int:
    """The widest H that still fits the shortest sequence (T = 2) in :data:`MEMORY_LIMIT`."""
    return _memory.largest(lambda h: memory_estimate(2, h) <= MEMORY_LIMIT, 1)


MEMORY_RULE = "T·(160 KiB + 2 KiB·H + 32 B·H²) + 640 B·H² within 2 GiB"


def check_memory(sizes: dict[str, int], *, flags: bool = False) -> None:
    """Refuse a hidden size, then a length, past :data:`MEMORY_LIMIT`; ``sizes`` holds
    them under their API names or (``flags``) their command-line flags, in that order."""
    (h_name, hidden), (t_name, length) = sizes.items()
    order = [(h_name, hidden, 1), (t_name, length, 2)]
    _memory.check(
        "gradient-flow", order, lambda h, t: memory_estimate(t, h), MEMORY_RULE, flags=flags
    )


INITS = ("default", "orthogonal", "chrono", "forget-bias")
BASELINE_MSE = 1.0 / 6.0  # adding problem: always predicting the mean target 1


class _GateInit(TypedDict, total=False):
    """The gated cells' initialisation options ``build_layer`` passes on (see INITS)."""

    chrono_init: float
    forget_bias: float


def build_layer(
    name: str, hidden: int, init: str, length: int, input_size: int = 2
) -> RecurrentLayer:
    """One of :data:`MODELS` with the initialisation ``init`` (one of :data:`INITS`).

    ``chrono`` (Tallec & Ollivier 2018) uses T_max = ``length``; ``forget-bias`` sets
    b_f = 1 (Jozefowicz et al. 2015). Both only concern gated cells; the Elman RNNs keep
    torch's initialisation. ``orthogonal`` makes each gate's block of W_hh orthogonal
    (Saxe et al. 2014), so the linear part of every step preserves norms.
    """
    if init not in INITS:
        raise ValueError(f"gradient-flow: init must be one of {INITS}; got {init!r}")
    gated = name in ("GRU", "LSTM")
    options: _GateInit = {}
    if gated and init == "chrono":
        options["chrono_init"] = float(max(length, 2))
    if gated and init == "forget-bias":
        options["forget_bias"] = 1.0
    if name == "RNN tanh":
        layer: RecurrentLayer = RNN(input_size, hidden, nonlinearity="tanh")
    elif name == "RNN relu":
        layer = RNN(input_size, hidden, nonlinearity="relu")
    elif name == "GRU":
        layer = GRU(input_size, hidden, **options)
    elif name == "LSTM":
        layer = LSTM(input_size, hidden, **options)
    else:
        raise ValueError(f"gradient-flow: model must be one of {MODELS}; got {name!r}")
    if init == "orthogonal":
        with torch.no_grad():
            w = layer.weight_hh_l0
            for block in w.split(hidden, dim=0):  # one (H, H) block per gate
                nn.init.orthogonal_(block)
    return layer


class LastStep(nn.Module):
    """A layer read out at its last step by a linear head: the adding-problem model.

    A layer wider than the task's two input features gets a linear embedding in front.
    """

    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        # rnnkit's and torch.nn's recurrent layers both hold their sizes as ints.
        input_size, hidden_size = cast(int, rnn.input_size), cast(int, rnn.hidden_size)
        self.embed = nn.Linear(2, input_size) if input_size != 2 else nn.Identity()
        self.rnn = rnn
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(self.embed(x))  # (T, B, H)
        return self.head(out[-1]).squeeze(-1)  # (B,)


def train_adding(
    model: LastStep, *, steps: int, length: int, batch: int = 32, seed: int = 0
) -> float:
    """Adam on fresh adding-problem batches; returns the validation MSE afterwards."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        x, y = adding_problem(batch, length, generator=gen)
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # keeps the relu RNN from exploding
        opt.step()
    x_val, y_val = adding_problem(256, length, generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        return nn.functional.mse_loss(model(x_val), y_val).item()


# ---- measurements -------------------------------------------------------------------


def state_gradients(
    layer: RecurrentLayer, head: Callable[[Tensor], Tensor], x: Tensor, y: Tensor
) -> dict[str, Tensor]:
    """‖∂L/∂s^t‖ per step and sample, (T, B), for each state s (h, and c for the LSTM).

    The layer's first cell is run step by step (the reference loop of 10.5) so that every
    s^t is a node of the graph; L = Σ_b (head(h^{T-1}_b) - y_b)², the loss at the last
    step, so each sample's gradient is its own.
    """
    cell = layer.first_cell
    p = layer.cell_parameters(0, 0)
    T, B, _ = x.shape
    gx = cell.project(p, x)  # (T, B, G*H)
    state = tuple(x.new_zeros(B, cell.hidden_size) for _ in cell.state_names)
    kept: list[tuple[Tensor, ...]] = []
    for t in range(T):
        state = cell.step(p, gx[t], state, None)
        for s in state:
            s.retain_grad()
        kept.append(state)
    loss = ((head(state[0]).squeeze(-1) - y) ** 2).sum()
    loss.backward()
    # Every state kept is on the path to the loss (h^{T-1} reads them all), so backward
    # filled each one's .grad.
    return {
        name: torch.stack([cast(Tensor, kept[t][j].grad).norm(dim=-1) for t in range(T)])
        for j, name in enumerate(cell.state_names)
    }


def step_jacobians(layer: RecurrentLayer, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """One-step Jacobians J^t = ∂s^t/∂s^{t-1} of a single sequence x (T, I), s the flat state.

    Returns the Jacobians (S, S) for t = 0..T-1 (S = H, or 2H for the LSTM's (h, c)) and
    the states s^t (S,) they were taken at.
    """
    cell = layer.first_cell
    p = layer.cell_parameters(0, 0)
    n = len(cell.state_names)
    H = cell.hidden_size
    gx = cell.project(p, x.unsqueeze(1)).detach()  # (T, 1, G*H)

    def step(flat: Tensor, gx_t: Tensor) -> Tensor:
        state = tuple(flat.reshape(n, 1, H).unbind(0))
        return torch.cat(cell.step(p, gx_t, state, None), dim=-1).reshape(-1)

    s = x.new_zeros(n * H)
    jacobians, states = [], []
    for t in range(x.size(0)):
        jacobians.append(jacrev(step)(s, gx[t]).detach())
        s = step(s, gx[t]).detach()
        states.append(s)
    return jacobians, states


def jacobian_products(layer: RecurrentLayer, x: Tensor) -> dict[str, Tensor]:
    """Spectral norms (T,) of ∂s^{T-1}/∂s^{T-1-k} for k = 0..T-1, from one sequence x (T, I).

    For the LSTM (state (h, c)) three curves: ``state`` the full (h, c) Jacobian product;
    ``dc/dc`` the total derivative of c^{T-1} by c^{T-1-k}, where perturbing c^{T-1-k} also
    moves h^{T-1-k} = o ∘ tanh(c); ``direct`` the chapter's product of forget gates ∏ f.
    """
    jacobians, states = step_jacobians(layer, x)
    T = len(jacobians)
    S = jacobians[0].size(0)
    P = torch.eye(S, dtype=x.dtype)
    lstm = isinstance(layer, LSTM)
    norms: dict[str, list[float]] = {"state": [], "dc/dc": [], "direct": []}
    if isinstance(layer, LSTM):  # the same test as ``lstm``, which the loop reads
        H = layer.hidden_size
        f, o, c = _lstm_values(layer, x, states)
        f_prod = torch.ones(H, dtype=x.dtype)
    for k in range(T):
        if k > 0:
            P = P @ jacobians[T - k]  # ∂s^{T-1}/∂s^{T-1-k}
        norms["state"].append(float(torch.linalg.matrix_norm(P, ord=2)))
        if lstm:
            j = T - 1 - k
            # d h^j / d c^j = diag(o^j ∘ (1 - tanh²(c^j))): the path through the output.
            dh_dc = o[j] * (1 - torch.tanh(c[j]) ** 2)
            total = P[H:, :H] * dh_dc[None, :] + P[H:, H:]
            norms["dc/dc"].append(float(torch.linalg.matrix_norm(total, ord=2)))
            if k > 0:
                f_prod = f_prod * f[T - k]
            norms["direct"].append(float(f_prod.abs().max()))  # ‖diag(∏ f)‖₂
    return {name: torch.tensor(v, dtype=torch.float64) for name, v in norms.items() if v}


def _lstm_values(layer: LSTM, x: Tensor, states: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """f^t, o^t and c^t, each (T, H), of one sequence x (T, I) with states s^t = (h^t, c^t)."""
    cell = cast(LSTMCell, layer.first_cell)  # an rnnkit.LSTM's cells are LSTMCells
    H = cell.hidden_size
    p = layer.cell_parameters(0, 0)
    with torch.no_grad():
        gx = cell.project(p, x.unsqueeze(1))  # (T, 1, 4H)
        h_prev = torch.stack([x.new_zeros(H)] + [s[:H] for s in states[:-1]])  # h^{t-1}
        _, f, _, o = lstm_gates(cell, p, gx[:, 0], h_prev)
    return f, o, torch.stack([s[H:] for s in states])


def direct_term_gap(layer: LSTM, x: Tensor) -> float:
    """Mean over steps of ‖∂c^t/∂c^{t-1} - diag(f^t)‖₂ / ‖diag(f^t)‖₂ on one sequence x (T, I).

    ∂c^t/∂c^{t-1} is the total one-step derivative, with h^{t-1} = o^{t-1} ∘ tanh(c^{t-1}):
    how far the chapter's ∂c^t/∂c^{t-1} = f^t is from the real one.
    """
    H = layer.hidden_size
    jacobians, states = step_jacobians(layer, x)
    f, o, c = _lstm_values(layer, x, states)
    gaps = []
    for t in range(1, len(jacobians)):
        J = jacobians[t]
        dh_dc = o[t - 1] * (1 - torch.tanh(c[t - 1]) ** 2)  # ∂h^{t-1}/∂c^{t-1}, diagonal
        total = J[H:, :H] * dh_dc[None, :] + J[H:, H:]
        direct = torch.diag(f[t])
        num = torch.linalg.matrix_norm(total - direct, ord=2)
        gaps.append(float(num / torch.linalg.matrix_norm(direct, ord=2)))
    return sum(gaps) / len(gaps)


def linear_rnn(
    a: float, hidden: int, input_size: int = 2, dtype: torch.dtype = torch.float64
) -> RNN:
    """An rnnkit.RNN that is exactly linear, h^t = a h^{t-1} + W_xh x^t + b, for a > 0.

    ReLU is the identity on positive numbers: with W_hh = a·I, non-negative W_xh and
    biases and non-negative inputs, every pre-activation is positive, so ∂h^t/∂h^{t-1} = a·I
    and ‖∂L/∂h^{T-1-k}‖ = a^k ‖∂L/∂h^{T-1}‖ exactly — the known case of the measurement.
    """
    if not a > 0:
        raise ValueError(f"linear_rnn: a must be > 0; got {a}")
    layer = RNN(input_size, hidden, nonlinearity="relu", dtype=dtype)
    with torch.no_grad():
        layer.weight_hh_l0.copy_(a * torch.eye(hidden, dtype=dtype))
        layer.weight_ih_l0.uniform_(0.1, 1.0)
        layer.bias_ih_l0.fill_(0.1)
        layer.bias_hh_l0.fill_(0.0)
    return layer


# ---- the experiment -----------------------------------------------------------------


@dataclass
class Stage:
    """Curves at one point of training, indexed by distance k from the loss."""

    grad: dict[str, list[float]]  # ‖∂L/∂s^{T-1-k}‖ / ‖∂L/∂h^{T-1}‖, mean over sequences
    jac: dict[str, list[float]]  # spectral norm of the Jacobian product over k steps
    mse: dict[str, float] = field(default_factory=dict)  # validation MSE per model
    gap: float = float("nan")  # LSTM: relative gap of ∂c^t/∂c^{t-1} to diag(f^t)


@dataclass
class GradientFlowResult:
    length: int
    hidden: int
    init: str
    steps: int
    stages: dict[str, Stage]  # "initialisation", and "after N steps" when steps > 0
    linear_check: tuple[float, int, float, float]  # a, k, measured ratio, a^k
    seconds: float

    def report(self, distances: tuple[int, ...] = (1, 5, 10, 25, 50, 100, 200)) -> str:
        ks = sorted({k for k in distances if k < self.length} | {self.length - 1})
        a, k, got, want = self.linear_check
        lines = [
            f"gradient flow: T = {self.length}, H = {self.hidden}, init = {self.init}, "
            f"loss at the last step ({self.seconds:.1f} s)",
            f"known case: linear RNN with W_hh = {a}·I, ‖∂L/∂h^(T-1-{k})‖ / ‖∂L/∂h^(T-1)‖ = "
            f"{got:.6g}, a^k = {want:.6g}",
        ]
        header = f"{'':<22}" + "".join(f"{'k=' + str(k):>11}" for k in ks)
        for stage_name, stage in self.stages.items():
            lines.append(f"-- {stage_name}")
            lines.append("‖∂L/∂s^(T-1-k)‖ / ‖∂L/∂h^(T-1)‖ (mean over sequences)")
            lines.append(header)
            for name, curve in stage.grad.items():
                lines.append(f"{name:<22}" + "".join(f"{curve[k]:>11.3g}" for k in ks))
            lines.append("spectral norm of the Jacobian product over k steps")
            lines.append(header)
            for name, curve in stage.jac.items():
                lines.append(f"{name:<22}" + "".join(f"{curve[k]:>11.3g}" for k in ks))
            if stage.mse:
                mses = ", ".join(f"{n} {v:.4f}" for n, v in stage.mse.items())
                lines.append(f"validation MSE (predicting 1 gives {BASELINE_MSE:.4f}): {mses}")
            if "LSTM dc/dc total" in stage.jac:  # measured only when the LSTM is one of the models
                lines.append(
                    f"LSTM: ‖∂c^t/∂c^(t-1) - diag(f^t)‖ / ‖diag(f^t)‖ = {stage.gap:.3f} "
                    "(mean over steps; 0 would make the chapter's ∂c^t/∂c^(t-1) = f^t exact)"
                )
        return "\n".join(lines)

    def plot(self, path: str | Path) -> Path:
        from rnnkit.explain import plotting

        stages = list(self.stages.items())
        with plotting.style():  # the caller's rcParams are restored after
            fig, axes = plotting.figure(2, len(stages), width=6.0 * len(stages), height=8.0)
            ks = list(range(self.length))
            for col, (stage_name, stage) in enumerate(stages):
                ax = axes[0, col]
                for name, curve in stage.grad.items():
                    base = name.removesuffix(" c")
                    style = "--" if name.endswith(" c") else "-"
                    label = f"{base}: ‖∂L/∂c‖" if name.endswith(" c") else f"{name}: ‖∂L/∂h‖"
                    if stage.mse:
                        label += f" (MSE {stage.mse[base]:.3f})"
                    ax.semilogy(ks, _floor(curve), style, color=plotting.COLOURS[base], label=label)
                ax.set_title(f"{stage_name}: gradient norm vs distance from the loss", loc="left")
                ax.set_xlabel("distance k from the loss (steps back in time)")
                ax.set_ylabel("‖∂L/∂s^(T-1-k)‖ / ‖∂L/∂h^(T-1)‖")
                ax.legend(fontsize=8)
                ax.grid(True, which="major", alpha=0.3)
                ax = axes[1, col]
                for name, curve in stage.jac.items():
                    base = name.split(" (")[0].split(" dc")[0].split(" ∏")[0]
                    styles = {"(h, c)": "-", "dc/dc": "--", "∏ f": ":"}
                    ls = next((v for key, v in styles.items() if key in name), "-")
                    ax.semilogy(ks, _floor(curve), ls, color=plotting.COLOURS[base], label=name)
                ax.set_title(f"{stage_name}: ‖∏ ∂s^t/∂s^(t-1)‖₂ over k steps", loc="left")
                ax.set_xlabel("number of steps k in the product")
                ax.set_ylabel("spectral norm")
                ax.legend(fontsize=8)
                ax.grid(True, which="major", alpha=0.3)
            title = (
                "Claim (10.14): the RNN's gradient shrinks as it flows back through time; "
                "the LSTM's cell state keeps it (∂c^t/∂c^(t-1) = f^t)\n"
                f"adding problem, T = {self.length}, H = {self.hidden}, init = {self.init}, "
                "loss at the last step"
            )
            return plotting.save(fig, path, title)


def _floor(curve: list[float]) -> list[float]:
    # Norms that underflow to 0 would vanish from a log plot; show them at the float64 floor.
    return [max(v, 1e-300) for v in curve]


def run_gradient_flow(
    *,
    length: int = 100,
    hidden: int = 32,
    init: str = "default",
    steps: int = 100,
    batch: int = 16,
    seed: int = 0,
    models: tuple[str, ...] = MODELS,
) -> GradientFlowResult:
    """Measure gradient flow at initialisation and after ``steps`` steps on the adding problem."""
    # A float ended in Python's own TypeError, a batch of 0 in an IndexError.
    integers = {"length": length, "hidden": hidden, "steps": steps, "batch": batch, "seed": seed}
    for name, value in integers.items():
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"gradient-flow: {name} must be an integer; got {value!r}")
    if length < 2:
        raise ValueError(f"gradient-flow: length must be >= 2; got {length}")
    if batch < 1:
        raise ValueError(f"gradient-flow: batch must be >= 1; got {batch}")
    if hidden < 1:
        raise ValueError(f"gradient-flow: hidden must be >= 1; got {hidden}")
    if steps < 0:
        raise ValueError(f"gradient-flow: steps must be >= 0; got {steps}")
    # Found before any work: past it the process was killed for memory, with no message.
    check_memory({"hidden": hidden, "length": length})
    _check_models(models)
    start = time.perf_counter()
    x, y = adding_problem(batch, length, generator=torch.Generator().manual_seed(seed + 2))
    x, y = x.double(), y.double()
    nets = {}
    for j, name in enumerate(models):
        torch.manual_seed(seed + j)
        nets[name] = LastStep(build_layer(name, hidden, init, length))
    stages = {"initialisation": _measure(nets, x, y)}
    if steps > 0:
        mse = {
            name: train_adding(net, steps=steps, length=length, seed=seed)
            for name, net in nets.items()
        }
        stage = _measure(nets, x, y)
        stage.mse = mse
        stages[f"after {steps} training steps"] = stage
    a, k = 0.9, min(10, length - 1)
    lin = linear_rnn(a, hidden)
    norms = state_gradients(lin, lambda h: h.sum(-1, keepdim=True), x, y)["h"]
    measured = float((norms[length - 1 - k] / norms[length - 1]).mean())
    return GradientFlowResult(
        length, hidden, init, steps, stages, (a, k, measured, a**k), time.perf_counter() - start
    )


def _check_models(models: object) -> None:
    """Refuse a ``models`` that is not a tuple or list of distinct names of :data:`MODELS`:
    a string was read letter by letter ("got 'G'"), an empty one gave a report of no
    model and a plot of empty axes, a repeated name measured one model once."""
    if not isinstance(models, (tuple, list)) or not models:
        raise TypeError(
            f"gradient-flow: models must be a non-empty tuple of names from {MODELS}; "
            f"got {models!r}"
        )
    for name in models:
        if name not in MODELS:
            raise ValueError(f"gradient-flow: model must be one of {MODELS}; got {name!r}")
    if len(set(models)) < len(models):
        raise ValueError(f"gradient-flow: models must not repeat a name; got {models!r}")


def _measure(nets: dict[str, LastStep], x: Tensor, y: Tensor) -> Stage:
    """Both measurements on float64 copies, so tiny norms do not underflow."""
    grad: dict[str, list[float]] = {}
    jac: dict[str, list[float]] = {}
    gap = float("nan")
    for name, net in nets.items():
        net64 = copy.deepcopy(net).double()
        rnn = cast(RecurrentLayer, net64.rnn)  # built by build_layer
        norms = state_gradients(rnn, net64.head, x, y)
        ref = norms["h"][-1]  # (B,) ‖∂L/∂h^{T-1}‖ per sequence
        for state_name, n in norms.items():
            label = name if state_name == "h" else f"{name} {state_name}"
            grad[label] = (n / ref).mean(dim=1).flip(0).tolist()  # index k = T-1-t
        with torch.no_grad():
            curves = jacobian_products(rnn, x[:, 0])
        if isinstance(rnn, LSTM):
            jac[f"{name} (h, c) state"] = curves["state"].tolist()
            jac[f"{name} dc/dc total"] = curves["dc/dc"].tolist()
            jac[f"{name} ∏ f (direct term)"] = curves["direct"].tolist()
            gap = direct_term_gap(rnn, x[:, 0])
        else:
            jac[name] = curves["state"].tolist()
    return Stage(grad, jac, gap=gap)
