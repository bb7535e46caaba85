"""The scan backend: a stack of linear recurrences h_t = a_t ∘ h_{t-1} + b_t, all t at once.

minGRU and minLSTM (Feng et al. 2024) compute their gates from x_t alone, so each layer and
direction is one scan (:mod:`rnnkit.kernels.scan`) over coefficients computed for every
step beforehand. Past a sequence's end a_t = 1, b_t = 0 hold the state still. A reset
cuts the scan into segments (``linear_scan``'s ``reset``): h_t = b_t there, chosen rather
than computed as 0 · h_{t-1}, which is NaN when an earlier step left inf or NaN in h.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor

from rnnkit.backends.plan import Plan, Weights
from rnnkit.backends.stack import masks, run_stack, without_padding
from rnnkit.cells.base import State
from rnnkit.cells.linear import LinearRecurrentCell
from rnnkit.kernels import gemm
from rnnkit.kernels.scan import linear_scan


def run(
    plan: Plan,
    weights: Weights,
    x: Tensor,
    state: State,
    lengths: Tensor | None,
    reset: Tensor | None,
) -> tuple[Tensor, State]:
    """Run the whole stack on x (T, B, I) with one scan per layer and direction."""
    T, B, _ = x.shape
    if T == 0:  # only reachable with lengths all 0: the state passes through
        return x.new_zeros(0, B, plan.output_size), tuple(s.clone() for s in state)
    m = masks(x, lengths, reset)
    x = without_padding(x, m.valid)

    def direction(k: int, d: int, inp: Tensor, s0: State) -> tuple[Tensor, State]:
        # backends.choose runs this backend only on cells linear in the state.
        cell, p = cast(LinearRecurrentCell, plan.cells[k]), weights[k][d]
        # Under autocast the projection comes in the lower precision; the scan runs in the
        # state's, as the step-by-step recurrence promotes to (a no-op otherwise).
        gx = cell.project(p, inp, gemm.linear).to(s0[0].dtype)
        zero = m.zero_rev if d else m.zero_fwd
        if zero is None and m.valid is None:
            # The common training call: the cell may fuse its gates into the scan.
            h = cell.scan(p, gx.flip(0) if d else gx, s0[0])
        else:
            a, b = cell.scan_coefficients(p, gx)  # (T, B, H) each
            if m.valid is not None:
                # Past a sequence's end the state must not move: a = 1, b = 0.
                a = torch.where(m.valid, a, torch.ones_like(a))
                b = torch.where(m.valid, b, torch.zeros_like(b))
            # h_{t-1} := 0 before step t where ``zero`` (T, B, 1): a segmented scan, so an
            # inf or NaN in an earlier segment stays there (the masks keep it inside lengths).
            if d:
                rev = None if zero is None else zero.flip(0)
                h = linear_scan(a.flip(0), b.flip(0), s0[0], rev)
            else:
                h = linear_scan(a, b, s0[0], zero)
        if d:
            h = h.flip(0)
        final = h[0] if d else h[-1]
        if m.valid is not None:
            h = torch.where(m.valid, h, torch.zeros_like(h))
        return h, (final,)

    return run_stack(plan, x, state, direction)
