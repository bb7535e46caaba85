"""The scan backend: linear recurrences h_t = a_t ∘ h_{t-1} + b_t computed for all t at once.

minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?") compute their gates from
x_t alone, so their recurrence is linear in h and the whole sequence can be computed without
a step-by-step loop in time.

How: a blocked scan (the radix-C form of Blelloch's scan). Time is cut into chunks of C
steps; within every chunk, all chunks at once, the local recurrence from a zero state and
the running product of the a's are computed (C vectorised steps over T/C chunks); the
states carried from chunk to chunk are the same problem, T/C long, solved recursively;
each chunk's local result is then corrected by its carry: h = h_loc + A ∘ carry.

Why this form and not log space: it multiplies and adds exactly what the sequential
recurrence does - no exp, log or division - so it is as stable as the step-by-step loop
at any length (a product of a's in (0, 1) that underflows is a memory that has faded), and
it costs a handful of passes over the data, where a log-space scan with ``logcumsumexp``
(Heinsen 2023) spends most of its time in transcendental functions.

The backward pass is the same scan run backwards in time: with g_t = ∂L/∂h_t accumulated
over the future, g_t = G_t + a_{t+1} ∘ g_{t+1}, and then ∂L/∂b_t = g_t,
∂L/∂a_t = g_t ∘ h_{t-1}, ∂L/∂h_0 = a_1 ∘ g_1. Only a and h are kept for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from rnnkit.cells.base import State

if TYPE_CHECKING:
    from rnnkit.layers.base import RecurrentLayer

CHUNK = 32  # steps per block; the Python-level loop runs ~C·log_C(T) small steps


def _scan(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """h_t = a_t ∘ h_{t-1} + b_t for t = 1..T; a, b (T, N), h0 (N,); returns h (T, N)."""
    T = a.size(0)
    if T <= CHUNK:
        h = torch.empty_like(b)
        prev = h0
        for t in range(T):
            prev = torch.addcmul(b[t], a[t], prev)
            h[t] = prev
        return h
    K = -(-T // CHUNK)  # number of chunks
    pad = K * CHUNK - T
    if pad:
        # Padding steps with a = 1, b = 0 leave the state unchanged.
        a = torch.cat([a, a.new_ones(pad, a.size(1))])
        b = torch.cat([b, b.new_zeros(pad, b.size(1))])
    a_c = a.view(K, CHUNK, -1)  # (K, C, N)
    b_c = b.view(K, CHUNK, -1)
    decay = torch.cumprod(a_c, dim=1)  # ∏ of a within the chunk up to each step
    local = torch.empty_like(b_c)  # the recurrence inside each chunk from a zero state
    prev = b_c[:, 0]
    local[:, 0] = prev
    for j in range(1, CHUNK):
        prev = torch.addcmul(b_c[:, j], a_c[:, j], prev)
        local[:, j] = prev
    # The state at each chunk's end obeys the same linear recurrence, K steps long.
    ends = _scan(decay[:, -1], local[:, -1], h0)  # (K, N)
    entering = torch.cat([h0[None], ends[:-1]])  # state entering each chunk
    h = torch.addcmul(local, decay, entering[:, None])  # (K, C, N)
    return h.view(K * CHUNK, -1)[:T]


class _LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        h = _scan(a, b, h0)
        ctx.save_for_backward(a, h0, h)
        return h

    @staticmethod
    def backward(ctx: Any, grad_h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        a, h0, h = ctx.saved_tensors
        # g_t = G_t + a_{t+1} g_{t+1}: a scan backwards in time with the a's shifted by one.
        a_next = torch.cat([a[1:], a.new_zeros(1, a.size(1))])
        g = _scan(a_next.flip(0), grad_h.flip(0), torch.zeros_like(h0)).flip(0)
        h_prev = torch.cat([h0[None], h[:-1]])
        return g * h_prev, g, a[0] * g[0]


def linear_scan(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """h_t = a_t ∘ h_{t-1} + b_t for all t at once. Shapes: a, b (T, ...); h0 (...)."""
    shape = b.shape
    flat = _LinearScan.apply(a.reshape(shape[0], -1), b.reshape(shape[0], -1), h0.reshape(-1))
    return flat.view(shape)


def run(
    layer: RecurrentLayer,
    x: Tensor,
    state: State,
    lengths: Tensor | None,
    reset: Tensor | None,
) -> tuple[Tensor, State]:
    """Run the whole stack on x (T, B, I) with one scan per layer and direction."""
    T, B, _ = x.shape
    if T == 0:  # only reachable with lengths all 0: the state passes through
        return x.new_zeros(0, B, layer.output_size), tuple(s.clone() for s in state)
    D = layer.num_directions
    valid = None
    if lengths is not None:
        steps = torch.arange(T, device=x.device)
        valid = (steps[:, None] < lengths.to(x.device)[None, :]).unsqueeze(-1)  # (T, B, 1)
    zero_fwd = zero_rev = None
    if reset is not None:
        r = reset.unsqueeze(-1)  # (T, B, 1)
        if valid is not None:
            r = r & valid
        zero_fwd = r
        zero_rev = torch.cat([r[1:], torch.zeros_like(r[:1])])  # as in the reference backend

    finals = []
    inp = x
    for k, cell in enumerate(layer.cells):
        outs = []
        for d in range(D):
            p = layer.cell_parameters(k, d)
            h0 = state[0][k * D + d]  # (B, H)
            a, b = cell.scan_coefficients(p, cell.project(p, inp))  # (T, B, H) each
            zero = zero_rev if d else zero_fwd
            if zero is not None:
                a = a.masked_fill(zero, 0.0)  # h_{t-1} := 0 before step t
            if valid is not None:
                # Past a sequence's end the state must not move: a = 1, b = 0.
                a = torch.where(valid, a, torch.ones_like(a))
                b = torch.where(valid, b, torch.zeros_like(b))
            if d:
                h = linear_scan(a.flip(0), b.flip(0), h0).flip(0)
                final = h[0]
            else:
                h = linear_scan(a, b, h0)
                final = h[-1]
            if valid is not None:
                h = torch.where(valid, h, torch.zeros_like(h))
            outs.append(h)
            finals.append(final)
        inp = outs[0] if D == 1 else torch.cat(outs, dim=-1)  # (T, B, D*H)
        if layer.dropout > 0 and layer.training and k < layer.num_layers - 1:
            inp = torch.nn.functional.dropout(inp, layer.dropout, training=True)
    return inp, (torch.stack(finals),)
