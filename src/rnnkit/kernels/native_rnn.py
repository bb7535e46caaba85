"""torch's fused sequence kernels as one opaque operator, for ``torch.compile``.

A leaf: it imports torch and the operators' names (``rnnkit.kernels.ops``) only.
:func:`sequence` calls the kernels - ``torch.lstm`` and co., through the packed form for
ragged batches - and is what eager code runs; the operator ``rnnkit::native_rnn`` (named
with its revision) wraps it for the compiler.

Why: inductor decomposes ``aten.lstm``/``gru``/``rnn_tanh``/``rnn_relu`` into one cell per
time step (``torch._decomp``), so the graph - and the compile time - grows with T (measured
on this CPU, LSTM forward and backward at T = 50: 161 s). A ``torch.library.custom_op`` is
opaque to the compiler: Dynamo and AOTAutograd record a single call, traced with the
shape function of ``register_fake``, and inductor emits it as one extern kernel call
(torch.library docs, "Custom Python operators"), whatever T is.

Its gradient is given by ``register_autograd``. torch's kernels keep their workspace in
the autograd graph of the eager call, which a custom operator cannot hand over, so the
backward is itself an opaque operator that runs the forward again under
``torch.enable_grad()`` and asks autograd for the gradients: one more forward pass per
training step, in exchange for a graph that does not grow with T. Dropout between layers
is random and would differ in the recomputation, so the operator runs without it: with
dropout active, the caller runs one operator per layer and the dropout between them in
the graph (see :func:`rnnkit.backends.native.run`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from rnnkit.kernels.ops import op_name

# Each is an overloaded torch function; the call sites pick the overload by their arguments.
KERNELS: dict[str, Callable[..., Any]] = {
    "LSTM": torch.lstm,
    "GRU": torch.gru,
    "RNN_TANH": torch.rnn_tanh,
    "RNN_RELU": torch.rnn_relu,
}


def sequence(
    mode: str,
    x: Tensor,
    hx: Sequence[Tensor],
    weights: Sequence[Tensor],
    bias: bool,
    num_layers: int,
    dropout: float,
    train: bool,
    bidirectional: bool,
    lengths: Tensor | None,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """torch's sequence kernel on x (T, B, I): the output and the final (h_n[, c_n]).

    ``lengths`` (B,) makes the batch ragged: it runs through torch's packed-sequence path,
    the output is zero past each end and the state is the one at each sequence's last
    step. Sequences of length 0, which packing refuses, are taken out of the batch and
    keep their state.
    """
    T = x.size(0)
    # cuDNN refuses a strided state ("rnn: hx is not contiguous"); the other backends and
    # torch's CPU kernels take one, so it is made contiguous here (a no-op when it is).
    hx = [h.contiguous() for h in hx]
    if lengths is not None:
        lengths = lengths.cpu()
        if bool((lengths == T).all()):
            lengths = None  # nothing is padded: the plain kernel is faster than packing
    args = (list(weights), bias, num_layers, dropout, train, bidirectional)
    state: Any = tuple(hx) if mode == "LSTM" else hx[0]
    if lengths is None:
        result = KERNELS[mode](x, state, *args, False)
        return result[0], tuple(result[1:])
    nonempty = lengths > 0
    if bool(nonempty.all()):
        return _packed(mode, x, hx, args, lengths)
    # Length 0: run the others; these keep their state and output zeros.
    keep = nonempty.nonzero().squeeze(1).to(x.device)
    D = 2 if bidirectional else 1
    out = x.new_zeros(T, x.size(1), D * hx[0].size(-1))
    finals = tuple(h.clone() for h in hx)
    if keep.numel():
        sub_hx = [h.index_select(1, keep) for h in hx]
        sub_out, sub_final = _packed(mode, x.index_select(1, keep), sub_hx, args, lengths[nonempty])
        out = out.index_copy(1, keep, sub_out)
        finals = tuple(f.index_copy(1, keep, s) for f, s in zip(finals, sub_final, strict=True))
    return out, finals


def _packed(
    mode: str, x: Tensor, hx: Sequence[Tensor], args: tuple[Any, ...], lengths: Tensor
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """The kernel's packed form, on lengths all > 0; output padded back to T steps.

    Packed and unpacked by indexing, as torch's ``pack_padded_sequence`` and
    ``pad_packed_sequence`` would (same batch order, same packed layout, so the kernel
    computes the same numbers bit for bit), because those two fail where indexing runs:
    ``pack_padded_sequence`` has no gradient for complex tensors, and
    ``pad_packed_sequence`` reads its indices back to the CPU, which a tensor on the meta
    device cannot do. ``index_select`` and ``index_copy_`` differentiate in every dtype and
    run on every device.
    """
    T, B = x.shape[:2]
    # The bookkeeping runs on the CPU, where lengths are (no device sync), and the kernels
    # take batch_sizes there, as a CPU int64 tensor.
    # Longest first, by the call pack_padded_sequence makes: ties keep its order, so the
    # kernel sees the batch's rows in the same order (a weight's gradient sums over them).
    sorted_lengths, order = torch.sort(lengths, descending=True)
    steps = torch.arange(int(sorted_lengths[0]))  # the longest sequence's steps
    # running[t, j]: whether the j-th longest sequence has a step t; each step's sequences
    # are a prefix of the sorted batch, so the kernel's batch_sizes[t] counts them.
    running = steps.unsqueeze(1) < sorted_lengths  # (steps, B)
    batch_sizes = running.sum(1)
    # The row of x viewed as (T * B, I) that each row of the packed data holds: step by
    # step, within a step the running sequences longest first (the packed layout).
    rows = (steps.unsqueeze(1) * B + order)[running]
    unorder = torch.empty_like(order).scatter_(0, order, torch.arange(B))  # order's inverse
    # The three index tensors go to x's device in one copy, not three (none on the CPU).
    rows, order, unorder = (
        torch.cat([rows, order, unorder]).to(x.device).split([rows.numel(), B, B])
    )
    data = x.reshape(T * B, x.size(2)).index_select(0, rows)
    sorted_hx = tuple(h.index_select(1, order) for h in hx)
    state: Any = sorted_hx if mode == "LSTM" else sorted_hx[0]
    result = KERNELS[mode](data, batch_sizes, state, *args)
    # Each packed output row back to its (step, sample) place; zeros past each end.
    packed_out, width = result[0], result[0].size(1)
    out = packed_out.new_zeros(T * B, width).index_copy_(0, rows, packed_out)
    return out.view(T, B, width), tuple(s.index_select(1, unorder) for s in result[1:])


def _run(
    mode: str,
    x: Tensor,
    hx: Sequence[Tensor],
    weights: Sequence[Tensor],
    bias: bool,
    num_layers: int,
    bidirectional: bool,
    lengths: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """The sequence kernel on x (T, B, I): (out, h_n, c_n); c_n is empty but for LSTM."""
    # No dropout (callers ensure it), so train=True changes nothing in the result; it keeps
    # cuDNN's backward usable, which refuses a forward run with train=False.
    out, final = sequence(mode, x, hx, weights, bias, num_layers, 0.0, True, bidirectional, lengths)
    # Outputs of a custom operator must not alias its inputs: with every length 0 the
    # state passes through, already cloned above.
    c_n = final[1] if mode == "LSTM" else x.new_empty(0)
    return out, final[0], c_n


def autograd_below() -> Any:
    """A guard that lets autograd record inside a custom operator's body.

    torch runs a custom operator's body under ``_AutoDispatchBelowAutograd``
    (torch/_library/autograd.py): the autograd dispatch keys are excluded, so
    ``enable_grad`` alone records nothing. This takes them out of the excluded set again,
    for the recomputation only.
    """
    key = torch._C.DispatchKey
    excluded = torch._C._dispatch_tls_local_exclude_set()
    for k in (key.AutogradFunctionality, key.AutogradOther, key.AutogradNestedTensor):
        excluded = excluded.remove(k)
    return torch._C._ForceDispatchKeyGuard(torch._C._dispatch_tls_local_include_set(), excluded)


def recomputed_gradients(
    forward: Callable[[list[Tensor]], list[Tensor]],
    inputs: Sequence[Tensor],
    grads: Sequence[Tensor],
) -> list[Tensor]:
    """The gradients of ``inputs`` for output gradients ``grads``, by running ``forward``
    again under autograd - the backward of an opaque operator whose forward kept no graph.

    Inputs the outputs do not depend on get zeros, as a custom operator must return a
    tensor for each.
    """
    with torch.enable_grad(), autograd_below():
        leaves = [t.detach().requires_grad_(True) for t in inputs]
        found = torch.autograd.grad(forward(leaves), leaves, list(grads), allow_unused=True)
    # Contiguous whatever the inputs' strides, as the shape functions promise (``like``).
    return [
        torch.zeros_like(t, memory_format=torch.contiguous_format) if g is None else g.contiguous()
        for t, g in zip(leaves, found, strict=True)
    ]


def like(t: Tensor) -> Tensor:
    """The shape functions' tensor of t's shape, dtype and device, in the contiguous layout.

    The opaque operators return contiguous tensors whatever the strides of their inputs
    (a transpose: the time-major view of a ``batch_first`` input; a state sliced from a
    bigger tensor). ``empty_like`` would copy a dense input's strides, and inductor checks
    that a kernel's outputs have the strides its shape function gave
    (``assert_size_stride``): a strided input failed a compiled training step.
    """
    return torch.empty_like(t, memory_format=torch.contiguous_format)


@torch.library.custom_op(op_name("native_rnn"), mutates_args=())
def native_rnn(
    mode: str,
    x: Tensor,
    hx: list[Tensor],
    weights: list[Tensor],
    bias: bool,
    num_layers: int,
    bidirectional: bool,
    lengths: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor]:
    """(out (T, B, D*H), h_n (L*D, B, H), c_n (L*D, B, H), empty unless mode is LSTM)."""
    with torch.no_grad():  # the gradient is register_autograd's, below
        out, h_n, c_n = _run(mode, x, hx, weights, bias, num_layers, bidirectional, lengths)
    # Contiguous, as the shape function below promises (a no-op for the kernels' results).
    return out.contiguous(), h_n.contiguous(), c_n.contiguous()


@native_rnn.register_fake
def _(
    mode: str,
    x: Tensor,
    hx: list[Tensor],
    weights: list[Tensor],
    bias: bool,
    num_layers: int,
    bidirectional: bool,
    lengths: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor]:
    T, B, _ = x.shape
    D = 2 if bidirectional else 1
    # h_n's width is the output's per direction: H, or P with projections.
    out = x.new_empty(T, B, D * hx[0].size(-1))
    c_n = like(hx[1]) if mode == "LSTM" else x.new_empty(0)
    return out, like(hx[0]), c_n


@torch.library.custom_op(op_name("native_rnn_backward"), mutates_args=())
def native_rnn_backward(
    mode: str,
    x: Tensor,
    hx: list[Tensor],
    weights: list[Tensor],
    bias: bool,
    num_layers: int,
    bidirectional: bool,
    lengths: Tensor | None,
    grad_out: Tensor,
    grad_h: Tensor,
    grad_c: Tensor,
) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """Gradients for x, hx and weights, by running the forward again (module docstring)."""
    n = len(hx)

    def forward(leaves: list[Tensor]) -> list[Tensor]:
        out, h_n, c_n = _run(
            mode, leaves[0], leaves[1 : 1 + n], leaves[1 + n :], bias, num_layers,
            bidirectional, lengths,
        )  # fmt: skip
        return [out, h_n, c_n] if mode == "LSTM" else [out, h_n]

    grads = [grad_out, grad_h, grad_c] if mode == "LSTM" else [grad_out, grad_h]
    full = recomputed_gradients(forward, [x, *hx, *weights], grads)
    return full[0], full[1 : 1 + n], full[1 + n :]


@native_rnn_backward.register_fake
def _(
    mode: str,
    x: Tensor,
    hx: list[Tensor],
    weights: list[Tensor],
    bias: bool,
    num_layers: int,
    bidirectional: bool,
    lengths: Tensor | None,
    grad_out: Tensor,
    grad_h: Tensor,
    grad_c: Tensor,
) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    return like(x), [like(h) for h in hx], [like(w) for w in weights]


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
    mode, x, hx, weights, bias, num_layers, bidirectional, lengths = inputs
    ctx.args = (mode, bias, num_layers, bidirectional)
    ctx.n = len(hx)
    ctx.save_for_backward(lengths, x, *hx, *weights)


def _backward(ctx: Any, grad_out: Tensor, grad_h: Tensor, grad_c: Tensor) -> tuple[Any, ...]:
    mode, bias, num_layers, bidirectional = ctx.args
    lengths, *saved = ctx.saved_tensors
    x, hx, weights = saved[0], list(saved[1 : 1 + ctx.n]), list(saved[1 + ctx.n :])
    # Gradients of unused outputs arrive as zeros (custom_op materializes them); c_n of a
    # non-LSTM is empty and its gradient is ignored.
    gx, ghx, gw = native_rnn_backward(
        mode, x, hx, weights, bias, num_layers, bidirectional, lengths, grad_out, grad_h, grad_c
    )
    return None, gx, ghx, gw, None, None, None, None


native_rnn.register_autograd(_backward, setup_context=_setup_context)
