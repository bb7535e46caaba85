"""The native backend: torch's own fused kernels (oneDNN on CPU, cuDNN on GPU).

It runs the configurations those kernels compute exactly - the plain cells, no reset, no
cell options - through the same entry points ``torch.nn.LSTM`` uses, so a standard layer
costs what ``torch.nn`` costs. Short chunks (streaming) go through the fused one-step
kernels that ``torch.nn.LSTMCell`` uses instead: on the CPU the sequence kernel pays a
large fixed cost per call (oneDNN prepares its weights each time) - measured here at
B = 1, one step takes about 4x (H = 64) to 24x (H = 1024) as long as the one-step kernel.
Ragged batches go through torch's packed-sequence path;
sequences of length 0, which packing refuses, are taken out of the batch and keep their
state. An LSTM with projections (``proj_size``) runs on the sequence kernel only: the
one-step kernel ``torch.lstm_cell`` has no W_hr.

The weights come with every call (and every stream step), read then by the layer, never
cached here, so a parametrized or swapped weight is the one the kernel sees.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.backends.plan import Plan, Stepper, Weights, flat_weights
from rnnkit.backends.stack import run_stack
from rnnkit.cells.base import State
from rnnkit.kernels.native_rnn import KERNELS, native_rnn, sequence

# Up to this many steps, a loop over the one-step kernel beats the sequence kernel's fixed
# cost at every hidden size measured (see the module docstring).
SHORT_STEPS = 4

# torch's one-step kernels; LSTM's takes and returns (h, c), the others h alone.
_STEP_KERNELS: dict[str, Callable[..., Any]] = {
    "LSTM": torch.lstm_cell,
    "GRU": torch.gru_cell,
    "RNN_TANH": torch.rnn_tanh_cell,
    "RNN_RELU": torch.rnn_relu_cell,
}


def supports(plan: Plan, resets: bool) -> str | None:
    """None if the native kernels compute this call exactly, else the reason they don't."""
    if plan.kind not in KERNELS:
        return f"torch has no fused kernel for {plan.kind}"
    options = plan.cells[0].uses_cell_options
    if options:
        return f"torch's fused kernels have no {', '.join(options)}"
    if resets:
        return "torch's fused kernels have no per-sample reset"
    return None


def run(
    plan: Plan,
    weights: Weights,
    x: Tensor,
    state: State,
    lengths: Tensor | None,
    reset: Tensor | None,
) -> tuple[Tensor, State]:
    """Run the whole stack on x (T, B, I); state is a tuple of (L*D, B, H) tensors."""
    del reset  # supports() has ruled it out
    T, B, _ = x.shape
    if T == 0:  # only reachable with lengths all 0: nothing runs, the state passes through
        return x.new_zeros(T, B, plan.output_size), tuple(s.clone() for s in state)
    if torch.compiler.is_compiling():
        return _compiled(plan, weights, x, state, lengths)
    if lengths is not None and bool((lengths == T).all()):
        lengths = None  # nothing is padded
    if lengths is None and T <= SHORT_STEPS and not plan.proj_size:
        return _steps(plan, weights, x, state)
    return _sequence(plan, weights, x, state, lengths)


def recorded(
    plan: Plan,
    weights: Weights,
    x: Tensor,
    state: State,
    lengths: Tensor | None,
    reset: Tensor | None,
) -> tuple[Tensor, State]:
    """The backend as ``torch.jit.trace`` and ``torch.export`` record it: torch's sequence
    kernel for every T, as torch.nn's layers are recorded (``aten::lstm`` and co.), so that
    a trace runs inputs of any length. :func:`run`'s loop over the one-step kernels for a
    few steps would be recorded step by step, and a trace of it would return the example's
    number of steps whatever the input's."""
    if x.size(0) == 0:  # lengths all 0: nothing runs
        return run(plan, weights, x, state, lengths, reset)
    return _sequence(plan, weights, x, state, lengths)


def _sequence(
    plan: Plan, weights: Weights, x: Tensor, state: State, lengths: Tensor | None
) -> tuple[Tensor, State]:
    """torch's sequence kernel over the whole stack (``aten::lstm``, ``aten::gru``, ...)."""
    return sequence(
        plan.kind,
        x,
        state,
        flat_weights(weights),
        plan.bias,
        plan.num_layers,
        plan.dropout,
        plan.training,
        plan.bidirectional,
        lengths,
    )


def _compiled(
    plan: Plan, weights: Weights, x: Tensor, state: State, lengths: Tensor | None
) -> tuple[Tensor, State]:
    """Under ``torch.compile``: one opaque node per call (rnnkit.kernels.native_rnn).

    Any T, ragged or not, is one node instead of the per-step graph the compiler would
    unroll the kernel into. With dropout active, one node per layer and the dropout
    between them in the graph: the operator's backward recomputes its forward, which must
    draw nothing at random.
    """
    lstm = plan.kind == "LSTM"
    if not (plan.dropout > 0 and plan.training):
        out, h_n, c_n = native_rnn(
            plan.kind,
            x,
            list(state),
            flat_weights(weights),
            plan.bias,
            plan.num_layers,
            plan.bidirectional,
            lengths,
        )
        return out, ((h_n, c_n) if lstm else (h_n,))
    D = plan.num_directions
    finals: list[tuple[Tensor, Tensor]] = []
    for k in range(plan.num_layers):
        if k:
            x = F.dropout(x, plan.dropout, training=True)
        x, h_n, c_n = native_rnn(
            plan.kind,
            x,
            [s[k * D : (k + 1) * D] for s in state],
            flat_weights(weights[k : k + 1]),
            plan.bias,
            1,
            plan.bidirectional,
            lengths,
        )
        finals.append((h_n, c_n))
    h = torch.cat([f[0] for f in finals])
    return x, ((h, torch.cat([f[1] for f in finals])) if lstm else (h,))


def _steps(plan: Plan, weights: Weights, x: Tensor, state: State) -> tuple[Tensor, State]:
    """A few steps with torch's one-step kernels (those of ``torch.nn.LSTMCell`` and co.)."""
    kernel = _STEP_KERNELS[plan.kind]
    T = x.size(0)
    lstm = len(state) == 2
    no_bias = () if plan.bias else (None, None)  # b_ih, b_hh

    def direction(k: int, d: int, inp: Tensor, s0: State) -> tuple[Tensor, State]:
        w = (*weights[k][d].values(), *no_bias)
        s: Any = s0 if lstm else s0[0]
        hs: list[Tensor] = [inp] * T
        for t in range(T - 1, -1, -1) if d else range(T):
            s = kernel(inp[t], s, *w)
            hs[t] = s[0] if lstm else s
        return torch.stack(hs), (tuple(s) if lstm else (s,))

    return run_stack(plan, x, state, direction)


def stepper(plan: Plan) -> Stepper | None:
    """One step of a unidirectional stack on torch's one-step kernels, or None if unsupported.

    The returned function maps ``(weights, x (B, I), [state of layer k])`` to
    ``(h (B, H), states)`` with no per-call checks: streams call it once per step, where
    Python overhead is the cost (see :class:`rnnkit.Stream`).
    """
    if plan.bidirectional or plan.proj_size or supports(plan, False) is not None:
        return None
    kernel = _STEP_KERNELS[plan.kind]
    lstm = plan.kind == "LSTM"
    dropout = plan.dropout if plan.training else 0.0
    last = plan.num_layers - 1
    no_bias = () if plan.bias else (None, None)  # b_ih, b_hh

    def step(weights: Weights, x: Tensor, states: list[State]) -> tuple[Tensor, list[State]]:
        new: list[State] = []
        for k in range(last + 1):
            w = (*weights[k][0].values(), *no_bias)
            if lstm:
                s = kernel(x, states[k], *w)
                x = s[0]
            else:
                x = kernel(x, states[k][0], *w)
                s = (x,)
            new.append(s)
            if dropout and k < last:
                x = F.dropout(x, dropout, training=True)
        return x, new

    return step
