"""The reference backend: the unrolled loop of the chapter (10.5), for every cell and option.

Autograd differentiates through the loop, which is backpropagation through time (10.7):
the loss L = Σ_t L^t (10.3) reaches h^{t-k} only through the chain of steps in between.

Lengths and resets are applied with masks over the whole batch at each step, so a ragged
or segmented batch costs the same O(T) steps as a full one: a finished sequence keeps its
state (``torch.where(valid, new, old)``) and a reset sets it to zero before the step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.backends.plan import Plan, Stepper, Weights
from rnnkit.backends.stack import masks, run_stack
from rnnkit.cells.base import Params, RecurrentCell, State


def run_direction(
    cell: RecurrentCell,
    p: Params,
    x: Tensor,
    state: State,
    *,
    valid: Tensor | None,
    zero: Tensor | None,
    reverse: bool,
    mask: Tensor | None,
) -> tuple[Tensor, State]:
    """Run one cell over x (T, B, I) from ``state``; returns outputs (T, B, H) and state.

    ``valid`` (T, B, 1) marks steps inside each sequence; ``zero`` (T, B, 1) the steps
    before which the state is set to zero (already shifted for the reverse direction).
    """
    T = x.size(0)
    gx = cell.project(p, x)  # (T, B, G*H): the input half of every gate, one GEMM
    outs: list[Tensor] = [x.new_empty(0)] * T
    steps = range(T - 1, -1, -1) if reverse else range(T)
    for t in steps:
        if zero is not None:
            state = tuple(torch.where(zero[t], torch.zeros_like(s), s) for s in state)
        new = cell.step(p, gx[t], state, mask)
        if valid is not None:
            new = tuple(torch.where(valid[t], n, s) for n, s in zip(new, state, strict=True))
        state = new
        outs[t] = new[0]
    out = torch.stack(outs) if T else x.new_zeros(0, x.size(1), cell.output_size)
    if valid is not None:
        out = torch.where(valid, out, torch.zeros_like(out))  # packed semantics: zeros past the end
    return out, state


def run(
    plan: Plan,
    weights: Weights,
    x: Tensor,
    state: State,
    lengths: Tensor | None,
    reset: Tensor | None,
) -> tuple[Tensor, State]:
    """Run the whole stack on x (T, B, I); state is a tuple of (L*D, B, H) tensors."""
    m = masks(x, lengths, reset)

    def direction(k: int, d: int, inp: Tensor, s0: State) -> tuple[Tensor, State]:
        cell = plan.cells[k]
        return run_direction(
            cell,
            weights[k][d],
            inp,
            s0,
            valid=m.valid,
            zero=m.zero_rev if d else m.zero_fwd,
            reverse=bool(d),
            mask=cell.sample_recurrent_mask(x.size(1), inp),
        )

    return run_stack(plan, x, state, direction)


def stepper(plan: Plan) -> Stepper:
    """One step of a unidirectional stack through ``cell.step``, for any cell and option.

    Variational-dropout masks are drawn per call here: a stream has no sequence to share
    them across. The weights come with each step (a parametrized layer computes them).
    """
    cells = plan.cells
    dropout = plan.dropout if plan.training else 0.0
    last = plan.num_layers - 1

    def step(weights: Weights, x: Tensor, states: list[State]) -> tuple[Tensor, list[State]]:
        new: list[State] = []
        for k, cell in enumerate(cells):
            p = weights[k][0]
            mask = cell.sample_recurrent_mask(x.size(0), x)
            s = cell.step(p, cell.project(p, x), states[k], mask)
            new.append(s)
            x = s[0]
            if dropout and k < last:
                x = F.dropout(x, dropout, training=True)
        return x, new

    return step
