"""What every backend that runs layer by layer shares: masks and the stacking loop.

A stacked, possibly bidirectional layer runs each layer k over the whole sequence in both
directions, concatenates the two outputs (10.18: "two RNNs stacked on top of each other"),
applies dropout between layers, and collects each direction's final state. Backends
differ only in how one direction of one layer is run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.backends.plan import Plan
from rnnkit.cells.base import State


class Masks(NamedTuple):
    valid: Tensor | None  # (T, B, 1): step t lies inside sequence b
    zero_fwd: Tensor | None  # (T, B, 1): set the state to zero before step t, forward
    zero_rev: Tensor | None  # the same for the reverse direction


def masks(x: Tensor, lengths: Tensor | None, reset: Tensor | None) -> Masks:
    """Lengths and resets as batch-wide masks, so a ragged batch costs O(T) steps."""
    valid = None
    if lengths is not None:
        steps = torch.arange(x.size(0), device=x.device)
        valid = (steps[:, None] < lengths.to(x.device)[None, :]).unsqueeze(-1)  # (T, B, 1)
    if reset is None:
        return Masks(valid, None, None)
    r = reset.unsqueeze(-1)  # (T, B, 1)
    if valid is not None:
        r = r & valid  # a reset past a sequence's end must not touch its final state
    # Going backwards, a segment that starts at t ends the reverse run of step t - 1:
    # the state is zeroed before step t - 1, i.e. the mask shifted one step earlier.
    return Masks(valid, r, torch.cat([r[1:], torch.zeros_like(r[:1])]))


def without_padding(x: Tensor, valid: Tensor | None) -> Tensor:
    """x with every step past its sequence's end set to zero (x itself without lengths).

    The padding's results are masked out, but its values would still pass through the
    gates: a NaN or inf there makes their local derivatives NaN, and the zero gradient the
    mask sends back times NaN is NaN in every parameter's gradient. ``torch.where``, not a
    product: 0 * NaN is NaN too.
    """
    if valid is None:
        return x
    return torch.where(valid, x, x.new_zeros(()))


# direction(k, d, input (T, B, I_k), initial state) -> (output (T, B, H), final state)
Direction = Callable[[int, int, Tensor, State], tuple[Tensor, State]]


def run_stack(plan: Plan, x: Tensor, state: State, direction: Direction) -> tuple[Tensor, State]:
    """Run every layer and direction; state is a tuple of (L*D, B, H) tensors."""
    D, L = plan.num_directions, plan.num_layers
    finals: list[State] = []
    inp = x
    for k in range(L):
        outs = []
        for d in range(D):
            out, final = direction(k, d, inp, tuple(s[k * D + d] for s in state))
            outs.append(out)
            finals.append(final)
        inp = outs[0] if D == 1 else torch.cat(outs, dim=-1)  # (T, B, D*H)
        if plan.dropout > 0 and plan.training and k < L - 1:
            inp = F.dropout(inp, plan.dropout, training=True)
    return inp, tuple(torch.stack([f[j] for f in finals]) for j in range(len(state)))
