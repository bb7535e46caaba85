"""The unrolled loop of the chapter (10.5) for one direction of one layer.

Autograd differentiates through the loop, which is backpropagation through time (10.7):
the loss L = Σ_t L^t (10.3) reaches h^{t-k} only through the chain of steps in between.

Lengths and resets are applied with masks over the whole batch at each step, so a ragged
or segmented batch costs the same O(T) steps as a full one: a finished sequence keeps its
state (``torch.where(valid, new, old)``) and a reset sets it to zero before the step.

The reference backend runs it directly; under ``torch.compile`` it runs inside one opaque
operator (:mod:`rnnkit.backends.opaque`), so the compiler does not unroll it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit.cells.base import Params, RecurrentCell, State


def loop(
    cell: RecurrentCell,
    p: Params,
    gx: Tensor,
    state: State,
    *,
    valid: Tensor | None,
    zero: Tensor | None,
    reverse: bool,
    mask: Tensor | None,
    keep: State | None = None,
) -> tuple[Tensor, State]:
    """Run ``cell.step`` over the projected input gx (T, B, G*H) from ``state``.

    Returns the outputs (T, B, H) and the final state. ``valid`` (T, B, 1) marks steps
    inside each sequence; ``zero`` (T, B, 1) the steps before which the state is set to
    zero (already shifted for the reverse direction); ``mask`` is the variational-dropout
    mask of the sequence; ``keep`` the zoneout masks of every step, (T, B, size) per state
    (drawn step by step if None).
    """
    T = gx.size(0)
    outs: list[Tensor] = [gx.new_empty(0)] * T
    steps = range(T - 1, -1, -1) if reverse else range(T)
    for t in steps:
        if zero is not None:
            state = tuple(torch.where(zero[t], torch.zeros_like(s), s) for s in state)
        keep_t = None if keep is None else tuple(k[t] for k in keep)
        new = cell.step(p, gx[t], state, mask, keep_t)
        if valid is not None:
            new = tuple(torch.where(valid[t], n, s) for n, s in zip(new, state, strict=True))
        state = new
        outs[t] = new[0]
    out = torch.stack(outs) if T else gx.new_zeros(0, gx.size(1), cell.output_size)
    if valid is not None:
        out = torch.where(valid, out, torch.zeros_like(out))  # packed semantics: zeros past the end
    return out, state
