"""The reference backend: the unrolled loop of the chapter (10.5), for every cell and option.

Each direction of each layer hoists the input projection out of the time loop (one GEMM
over all T steps) and runs :func:`rnnkit.backends.loop.loop` over it. Under
``torch.compile`` the loop runs as one opaque operator instead
(:mod:`rnnkit.backends.opaque`), so the graph does not grow with T.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.backends import opaque
from rnnkit.backends.loop import loop
from rnnkit.backends.plan import Plan, Stepper, Weights
from rnnkit.backends.stack import masks, run_stack, without_padding
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
    gx = cell.project(p, x)  # (T, B, G*H): the input half of every gate, one GEMM
    cell_key = opaque.key(cell) if torch.compiler.is_compiling() else None
    if cell_key is None:
        return loop(cell, p, gx, state, valid=valid, zero=zero, reverse=reverse, mask=mask)
    keep = cell.sample_zoneout(gx.size(0), state)  # drawn here, in the graph
    out, final = opaque.cell_loop(
        cell_key,
        cell.training,
        gx,
        list(state),
        [p[name] for name in cell._parameter_names],
        valid,
        zero,
        mask,
        list(keep or ()),
        reverse,
    )
    return out, tuple(final)


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
    x = without_padding(x, m.valid)

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
