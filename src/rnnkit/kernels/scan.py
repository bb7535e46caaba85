"""Linear recurrences h_t = a_t ∘ h_{t-1} + b_t computed for all t at once.

A leaf: it imports torch only, so cells (minGRU's fused gates) and the scan backend both
build on it.

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

from typing import Any

import torch
from torch import Tensor

CHUNK = 32  # steps per block; the Python-level loop runs ~2·C·log_C(T) small steps


def _scan(a: Tensor, b: Tensor, h0: Tensor, reverse: bool, out: Tensor) -> Tensor:
    """h_t = a_t ∘ h_{t∓1} + b_t into ``out``; a, b, out (T, N), h0 (N,) the outer state.

    Forward: h_t = a_t h_{t-1} + b_t with h_{-1} = h0. Reverse: h_t = a_t h_{t+1} + b_t
    with h_T = h0 (the backward pass's recurrence, run without flipping any array).
    """
    T = a.size(0)
    K, r = divmod(T, CHUNK)
    if K <= 1:
        _sequential(a, b, h0, reverse, out)
        return out
    # The blocked part covers K·C steps; the r left over run sequentially after it, at the
    # end of time (forward) or at its start (reverse).
    main = slice(T - K * CHUNK, T) if reverse else slice(0, K * CHUNK)
    rest = slice(0, r) if reverse else slice(K * CHUNK, T)
    _blocked(a[main], b[main], h0, reverse, out[main], K)
    if r:
        _sequential(a[rest], b[rest], out[main][0 if reverse else -1], reverse, out[rest])
    return out


def _sequential(a: Tensor, b: Tensor, h0: Tensor, reverse: bool, out: Tensor) -> None:
    prev = h0
    for t in range(a.size(0) - 1, -1, -1) if reverse else range(a.size(0)):
        prev = torch.addcmul(b[t], a[t], prev, out=out[t])


def _blocked(a: Tensor, b: Tensor, h0: Tensor, reverse: bool, out: Tensor, K: int) -> None:
    # reshape, not view: an incoming gradient may be expanded or strided (a copy is made
    # only then); ``out`` is always ours and contiguous, and may be ``b`` itself.
    a_c, b_c = a.reshape(K, CHUNK, -1), b.reshape(K, CHUNK, -1)  # (K, C, N)
    order = range(CHUNK - 1, -1, -1) if reverse else range(CHUNK)
    first, later = order[0], order[1:]
    # Pass 1, all chunks at once: each chunk's recurrence from a zero state, and the
    # product of its a's - what the chunk does to the state that enters it.
    local, decay = b_c[:, first], a_c[:, first]
    for j in later:
        local = torch.addcmul(b_c[:, j], a_c[:, j], local)
        decay = decay * a_c[:, j]
    # The states between chunks obey the same recurrence, K steps long.
    ends = _scan(decay, local, h0, reverse, torch.empty_like(local))  # (K, N)
    # The state entering each chunk, in the order the chunks are run.
    entering = torch.cat([ends[1:], h0[None]] if reverse else [h0[None], ends[:-1]])
    # Pass 2: every chunk again, now from the state that truly enters it.
    h_c = out.view(K, CHUNK, -1)
    prev = entering
    for j in order:
        prev = torch.addcmul(b_c[:, j], a_c[:, j], prev, out=h_c[:, j])


def gpu_kernels(t: Tensor) -> Any:
    """The Triton scan (:mod:`rnnkit.kernels.fused_cuda`) for a CUDA tensor where it can
    run, else None: one kernel over tiles of time steps instead of the blocked scan's
    ~2·C·log_C(T) small launches."""
    if t.device.type != "cuda":
        return None
    from rnnkit.kernels import fused_cuda

    return fused_cuda if fused_cuda.available() else None


def scan_forward(a: Tensor, b: Tensor, h0: Tensor, out: Tensor) -> Tensor:
    """h_t = a_t ∘ h_{t-1} + b_t into ``out`` (T, N), which may be ``b`` itself."""
    gpu = gpu_kernels(b)
    if gpu is not None and out.is_contiguous():
        return gpu.scan_forward(a, b, h0, out)
    return _scan(a, b, h0, False, out)


def scan_gradient(a: Tensor, grad_h: Tensor) -> Tensor:
    """g_t = ∂L/∂h_t over the future, from G_t = ``grad_h`` (T, N): ∂L/∂b_t = g_t."""
    gpu = gpu_kernels(grad_h)
    if gpu is not None:
        return gpu.scan_gradient(a, grad_h)
    # g_t = G_t + a_{t+1} g_{t+1}: the same scan backwards in time, with the a's one step
    # ahead; g_{T-1} = G_{T-1} enters it as the outer state.
    g = torch.empty(grad_h.shape, dtype=grad_h.dtype, device=grad_h.device)
    g[-1] = grad_h[-1]
    if a.size(0) > 1:
        _scan(a[1:], grad_h[:-1], grad_h[-1], True, g[:-1])
    return g


class _LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
        h = scan_forward(a, b, h0, torch.empty_like(b))
        ctx.save_for_backward(a, h0, h)
        return h

    @staticmethod
    def backward(ctx: Any, grad_h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        a, h0, h = ctx.saved_tensors
        g = scan_gradient(a, grad_h)
        grad_a = torch.empty_like(a)
        torch.mul(g[1:], h[:-1], out=grad_a[1:])  # ∂L/∂a_t = g_t ∘ h_{t-1}
        grad_a[0] = g[0] * h0
        return grad_a, g, a[0] * g[0]


# Under torch.compile the scan runs as an opaque operator: Dynamo cannot trace the ``out=``
# writes into strided views above (a graph break each), and an unrolled scan would grow
# the graph with T. A ``torch.library.custom_op`` is one node whatever T is, traced with
# its ``register_fake`` shape function; its gradient (``register_autograd``) is a second
# opaque operator running the same backward as ``_LinearScan`` (torch.library docs,
# "Custom Python operators").
@torch.library.custom_op("rnnkit::linear_scan", mutates_args=())
def _scan_op(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    return scan_forward(a, b, h0, torch.empty_like(b, memory_format=torch.contiguous_format))


@_scan_op.register_fake
def _(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    return torch.empty_like(b, memory_format=torch.contiguous_format)


@torch.library.custom_op("rnnkit::linear_scan_backward", mutates_args=())
def _scan_backward_op(
    a: Tensor, h0: Tensor, h: Tensor, grad_h: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    g = scan_gradient(a, grad_h)
    grad_a = torch.empty_like(a, memory_format=torch.contiguous_format)
    torch.mul(g[1:], h[:-1], out=grad_a[1:])  # ∂L/∂a_t = g_t ∘ h_{t-1}
    grad_a[0] = g[0] * h0
    return grad_a, g, a[0] * g[0]


@_scan_backward_op.register_fake
def _(a: Tensor, h0: Tensor, h: Tensor, grad_h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    like = torch.contiguous_format
    return (
        torch.empty_like(a, memory_format=like),
        torch.empty_like(h, memory_format=like),
        (torch.empty_like(h0, memory_format=like)),
    )


def _scan_setup(ctx: Any, inputs: tuple[Tensor, Tensor, Tensor], output: Tensor) -> None:
    a, _, h0 = inputs
    ctx.save_for_backward(a, h0, output)


def _scan_backward(ctx: Any, grad_h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    a, h0, h = ctx.saved_tensors
    return _scan_backward_op(a, h0, h, grad_h)


_scan_op.register_autograd(_scan_backward, setup_context=_scan_setup)


def linear_scan(a: Tensor, b: Tensor, h0: Tensor) -> Tensor:
    """h_t = a_t ∘ h_{t-1} + b_t for all t at once. Shapes: a, b (T, ...); h0 (...)."""
    shape = b.shape
    flat_a, flat_b, flat_h0 = a.reshape(shape[0], -1), b.reshape(shape[0], -1), h0.reshape(-1)
    if torch.compiler.is_compiling():
        return _scan_op(flat_a, flat_b, flat_h0).view(shape)
    flat = _LinearScan.apply(flat_a, flat_b, flat_h0)
    return flat.view(shape)
