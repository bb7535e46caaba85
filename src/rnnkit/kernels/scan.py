"""Linear recurrences h_t = a_t ∘ h_{t-1} + b_t computed for all t at once.

A leaf: it imports torch and its operators' names (``rnnkit.kernels.ops``) only, so cells
(minGRU's fused gates) and the scan backend both build on it.

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

Segments: an optional boolean ``reset`` (T, ...) says that the state entering step t is
zero, h_t = b_t - a sample's episode or document boundary. Setting a_t = 0 instead would
compute 0 ∘ h_{t-1}, and 0 · inf is NaN: an inf or NaN earlier in the sample would leak
into every later segment. The segmented scan therefore never forms that product: wherever
the carry is multiplied it selects b_t alone at a reset (``torch.where``) - in the
sequential loop, in both passes of the blocked scan, and between chunks, where a chunk
holding a reset hands on its local result instead of decay ∘ carry + local. Backwards, the
gradient does not flow across a reset either: g_t = G_t where step t + 1 is a reset, and
∂L/∂a_t = 0 at a reset step (a_t is the constant 0 there). Without ``reset`` the scan runs
the unsegmented code above, unchanged.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import torch
from torch import Tensor

from rnnkit.kernels.ops import op_name

CHUNK = 32  # steps per block; the Python-level loop runs ~2·C·log_C(T) small steps


def _scan(
    a: Tensor, b: Tensor, h0: Tensor, reverse: bool, out: Tensor, reset: Tensor | None = None
) -> Tensor:
    """h_t = a_t ∘ h_{t∓1} + b_t into ``out``; a, b, out (T, N), h0 (N,) the outer state.

    Forward: h_t = a_t h_{t-1} + b_t with h_{-1} = h0. Reverse: h_t = a_t h_{t+1} + b_t
    with h_T = h0 (the backward pass's recurrence, run without flipping any array).
    ``reset`` (T, N) bool, if given: h_t = b_t where it is set (a segment starts there).
    """
    T = a.size(0)
    K, r = divmod(T, CHUNK)
    if K <= 1:
        _sequential(a, b, h0, reverse, out, reset)
        return out
    # The blocked part covers K·C steps; the r left over run sequentially after it, at the
    # end of time (forward) or at its start (reverse).
    main = slice(T - K * CHUNK, T) if reverse else slice(0, K * CHUNK)
    rest = slice(0, r) if reverse else slice(K * CHUNK, T)
    cut = None if reset is None else reset[main]
    _blocked(a[main], b[main], h0, reverse, out[main], K, cut)
    if r:
        carry = out[main][0 if reverse else -1]
        cut = None if reset is None else reset[rest]
        _sequential(a[rest], b[rest], carry, reverse, out[rest], cut)
    return out


def _sequential(
    a: Tensor, b: Tensor, h0: Tensor, reverse: bool, out: Tensor, reset: Tensor | None = None
) -> None:
    if reset is not None:
        _sequential_segmented(a, b, h0, reverse, out, reset)
        return
    prev = h0
    for t in range(a.size(0) - 1, -1, -1) if reverse else range(a.size(0)):
        prev = torch.addcmul(b[t], a[t], prev, out=out[t])


def _sequential_segmented(
    a: Tensor, b: Tensor, h0: Tensor, reverse: bool, out: Tensor, reset: Tensor
) -> None:
    prev = h0
    for t in range(a.size(0) - 1, -1, -1) if reverse else range(a.size(0)):
        prev = _step(b[t], a[t], prev, reset[t], out=out[t])


def _step(b: Tensor, a: Tensor, prev: Tensor, reset: Tensor, out: Tensor | None = None) -> Tensor:
    """b + a ∘ prev, or b alone where ``reset``: selected, since 0 · inf would be NaN."""
    return torch.where(reset, b, torch.addcmul(b, a, prev), out=out)


def _blocked(
    a: Tensor, b: Tensor, h0: Tensor, reverse: bool, out: Tensor, K: int, reset: Tensor | None
) -> None:
    if reset is not None:
        _blocked_segmented(a, b, h0, reverse, out, K, reset)
        return
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


def _blocked_segmented(
    a: Tensor, b: Tensor, h0: Tensor, reverse: bool, out: Tensor, K: int, reset: Tensor
) -> None:
    """``_blocked`` with segments: the same two passes, each step through ``_step``."""
    a_c, b_c = a.reshape(K, CHUNK, -1), b.reshape(K, CHUNK, -1)  # (K, C, N)
    r_c = reset.reshape(K, CHUNK, -1)
    order = range(CHUNK - 1, -1, -1) if reverse else range(CHUNK)
    first, later = order[0], order[1:]
    # Pass 1: the local recurrence starts from zero, so a reset at ``first`` changes nothing.
    local, decay = b_c[:, first], a_c[:, first]
    for j in later:
        local = _step(b_c[:, j], a_c[:, j], local, r_c[:, j])
        decay = decay * a_c[:, j]
    # A chunk that holds a reset forgets the state entering it: its end state is its local
    # result alone. That is the chunk-level reset; its decay, a product through the
    # reset, is never multiplied by a carry.
    ends = _scan(decay, local, h0, reverse, torch.empty_like(local), r_c.any(dim=1))
    entering = torch.cat([ends[1:], h0[None]] if reverse else [h0[None], ends[:-1]])
    h_c = out.view(K, CHUNK, -1)
    prev = entering
    for j in order:
        prev = _step(b_c[:, j], a_c[:, j], prev, r_c[:, j], out=h_c[:, j])


def gpu_kernels(t: Tensor) -> Any:
    """The Triton scan (:mod:`rnnkit.kernels.fused_cuda`) for a CUDA tensor where it can
    run, else None: one kernel over tiles of time steps instead of the blocked scan's
    ~2·C·log_C(T) small launches."""
    if t.device.type != "cuda":
        return None
    from rnnkit.kernels import fused_cuda

    return fused_cuda if fused_cuda.available() else None


def scan_forward(
    a: Tensor, b: Tensor, h0: Tensor, out: Tensor, reset: Tensor | None = None
) -> Tensor:
    """h_t = a_t ∘ h_{t-1} + b_t into ``out`` (T, N), which may be ``b`` itself.

    ``reset`` (T, N) bool: h_t = b_t where set. The Triton kernel has no segments, so a
    segmented scan runs the blocked scan on every device, CUDA included. Recorded by
    ``torch.jit.trace``, the scan is a loop over T in TorchScript (``_recorded``).
    """
    if torch.jit.is_tracing():
        if torch.onnx.is_in_onnx_export():
            # TorchScript's exporter turns the scripted loop into an ONNX Loop whose tensors
            # have no type: the file is written, and onnxruntime refuses to load it.
            raise ValueError(
                "torch.onnx.export: the scan of MinGRU and MinLSTM has no translation by "
                "torch's TorchScript exporter (dynamo=False); export the layer with "
                "rnnkit.export.export_onnx(layer, path, mode='sequence') instead, whose "
                "graphs keep T and B dynamic"
            )
        return out.copy_(_recorded()(a, b, h0, reset))
    if reset is not None:
        return _scan(a, b, h0, False, out, reset)
    gpu = gpu_kernels(b)
    if gpu is not None and out.is_contiguous():
        return gpu.scan_forward(a, b, h0, out)
    return _scan(a, b, h0, False, out)


def _recorded_scan(a: Tensor, b: Tensor, h0: Tensor, reset: Tensor | None) -> Tensor:
    """The step-by-step recurrence of ``_sequential`` as TorchScript compiles it."""
    outs: list[Tensor] = []
    prev = h0
    for t in range(a.size(0)):
        step = torch.addcmul(b[t], a[t], prev)
        if reset is not None:
            step = torch.where(reset[t], b[t], step)  # selected: 0 · inf would be NaN
        prev = step
        outs.append(prev)
    return torch.stack(outs)


@functools.cache
def _recorded() -> Any:
    """``_recorded_scan`` compiled by ``torch.jit.script``, for ``torch.jit.trace``.

    A trace records what Python runs for the example: the blocked scan's loops, whose
    lengths depend on T, would be kept for the example's T, and its ``divmod`` of a traced
    size is a TypeError. A scripted function called while tracing is recorded as a call
    (torch.jit docs, "Mixing Tracing and Scripting"): its loop runs for the T of each
    input, and autograd differentiates it. Compiled on the first trace only; TorchScript's
    deprecation notice is left to the trace itself, which gives its own.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(_recorded_scan)


def scan_gradient(a: Tensor, grad_h: Tensor, reset: Tensor | None = None) -> Tensor:
    """g_t = ∂L/∂h_t over the future, from G_t = ``grad_h`` (T, N): ∂L/∂b_t = g_t.

    With ``reset`` (T, N): g_t = G_t where step t + 1 starts a segment (blocked scan only,
    as in ``scan_forward``).
    """
    if reset is not None:
        return _segmented_gradient(a, grad_h, reset)
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


def _segmented_gradient(a: Tensor, grad_h: Tensor, reset: Tensor) -> Tensor:
    # As in scan_gradient; the reset that cuts a_{t+1} g_{t+1} is the one of step t + 1.
    g = torch.empty(grad_h.shape, dtype=grad_h.dtype, device=grad_h.device)
    g[-1] = grad_h[-1]
    if a.size(0) > 1:
        _scan(a[1:], grad_h[:-1], grad_h[-1], True, g[:-1], reset[1:])
    return g


def _cut_at_resets(grad_a: Tensor, grad_h0: Tensor, reset: Tensor) -> None:
    """At a reset step a_t is the constant 0 and h_{t-1} is not read: no gradient to
    either. A fill, not a product: g_t ∘ h_{t-1} there may be g_t · inf."""
    grad_a.masked_fill_(reset, 0.0)
    grad_h0.masked_fill_(reset[0], 0.0)


class _LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, h0: Tensor, reset: Tensor | None) -> Tensor:
        h = scan_forward(a, b, h0, torch.empty_like(b), reset)
        ctx.save_for_backward(a, h0, h, reset)
        return h

    @staticmethod
    def backward(ctx: Any, grad_h: Tensor) -> tuple[Tensor, Tensor, Tensor, None]:
        a, h0, h, reset = ctx.saved_tensors
        g = scan_gradient(a, grad_h, reset)
        grad_a = torch.empty_like(a)
        torch.mul(g[1:], h[:-1], out=grad_a[1:])  # ∂L/∂a_t = g_t ∘ h_{t-1}
        grad_a[0] = g[0] * h0
        grad_h0 = a[0] * g[0]
        if reset is not None:
            _cut_at_resets(grad_a, grad_h0, reset)
        return grad_a, g, grad_h0, None


# Under torch.compile the scan runs as an opaque operator: Dynamo cannot trace the ``out=``
# writes into strided views above (a graph break each), and an unrolled scan would grow
# the graph with T. A ``torch.library.custom_op`` is one node whatever T is, traced with
# its ``register_fake`` shape function; its gradient (``register_autograd``) is a second
# opaque operator running the same backward as ``_LinearScan`` (torch.library docs,
# "Custom Python operators").
@torch.library.custom_op(op_name("linear_scan"), mutates_args=())
def _scan_op(a: Tensor, b: Tensor, h0: Tensor, reset: Tensor | None = None) -> Tensor:
    out = torch.empty_like(b, memory_format=torch.contiguous_format)
    return scan_forward(a, b, h0, out, reset)


@_scan_op.register_fake
def _(a: Tensor, b: Tensor, h0: Tensor, reset: Tensor | None = None) -> Tensor:
    return torch.empty_like(b, memory_format=torch.contiguous_format)


@torch.library.custom_op(op_name("linear_scan_backward"), mutates_args=())
def _scan_backward_op(
    a: Tensor, h0: Tensor, h: Tensor, grad_h: Tensor, reset: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    g = scan_gradient(a, grad_h, reset)
    grad_a = torch.empty_like(a, memory_format=torch.contiguous_format)
    torch.mul(g[1:], h[:-1], out=grad_a[1:])  # ∂L/∂a_t = g_t ∘ h_{t-1}
    grad_a[0] = g[0] * h0
    grad_h0 = a[0] * g[0]
    if reset is not None:
        _cut_at_resets(grad_a, grad_h0, reset)
    return grad_a, g, grad_h0


@_scan_backward_op.register_fake
def _(
    a: Tensor, h0: Tensor, h: Tensor, grad_h: Tensor, reset: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    like = torch.contiguous_format
    return (
        torch.empty_like(a, memory_format=like),
        torch.empty_like(h, memory_format=like),
        (torch.empty_like(h0, memory_format=like)),
    )


def _scan_setup(
    ctx: Any, inputs: tuple[Tensor, Tensor, Tensor, Tensor | None], output: Tensor
) -> None:
    a, _, h0, reset = inputs
    ctx.save_for_backward(a, h0, output, reset)


def _scan_backward(ctx: Any, grad_h: Tensor) -> tuple[Tensor, Tensor, Tensor, None]:
    a, h0, h, reset = ctx.saved_tensors
    return (*_scan_backward_op(a, h0, h, grad_h, reset), None)


_scan_op.register_autograd(_scan_backward, setup_context=_scan_setup)


def linear_scan(a: Tensor, b: Tensor, h0: Tensor, reset: Tensor | None = None) -> Tensor:
    """h_t = a_t ∘ h_{t-1} + b_t for all t at once. Shapes: a, b (T, ...); h0 (...).

    ``reset``: a bool tensor that broadcasts to b's shape, e.g. (T, B, 1); where it is set
    the state entering step t is zero, h_t = b_t, whatever h_{t-1} holds (inf and NaN
    included), and no gradient crosses it (the segmented scan, module docstring).
    """
    shape = b.shape
    flat_a, flat_b, flat_h0 = a.reshape(shape[0], -1), b.reshape(shape[0], -1), h0.reshape(-1)
    flat_reset = None if reset is None else reset.expand(shape).reshape(shape[0], -1)
    if torch.compiler.is_compiling():
        return _scan_op(flat_a, flat_b, flat_h0, flat_reset).view(shape)
    flat = _LinearScan.apply(flat_a, flat_b, flat_h0, flat_reset)
    return flat.view(shape)
