"""The reference backend's time loop as one opaque operator, for ``torch.compile``.

Eager code runs :func:`rnnkit.backends.loop.loop` directly; this module exists for the
compiler alone. Traced by Dynamo, that Python loop is unrolled: the graph holds T copies
of the step and the compile time grows with T (measured on this CPU, an LSTM with the
reference backend, forward and backward: 20 s at T = 5, 111 s at T = 50). Run as a
``torch.library.custom_op``, the loop is one node whatever T is, as the fused kernels are
in :mod:`rnnkit.kernels.native_rnn`.

A custom operator takes tensors and plain values, not modules, so the cell travels as its
*key*: its class and :meth:`~rnnkit.cells.base.RecurrentCell.config` as text, from which
the operator rebuilds an equal cell without parameters (the weights are arguments).
Only rnnkit's own cell classes are rebuilt this way; a cell class defined elsewhere may
hold state its ``config`` does not name, so it runs the unrolled loop (:func:`key` is
None).

Randomness is drawn outside, in the graph: the variational-dropout mask (one per
sequence, as always) and the zoneout masks for all steps (``sample_zoneout``). The
operator is then a deterministic function of its inputs, which its backward needs: it
runs the loop again under autograd, as ``rnnkit::native_rnn_backward`` does, one extra
forward pass per training step in exchange for a graph that does not grow with T.
"""

from __future__ import annotations

import ast
import functools
import importlib
from typing import Any

import torch
from torch import Tensor

from rnnkit.backends.loop import loop
from rnnkit.cells.base import RecurrentCell
from rnnkit.kernels.native_rnn import like, recomputed_gradients
from rnnkit.kernels.ops import op_name


def key(cell: RecurrentCell) -> str | None:
    """``module:class:{config}`` of the cell, or None for a cell class outside rnnkit.

    Dynamo evaluates this at trace time to a constant (and guards on what it read). A
    dict's repr rather than JSON: Dynamo traces the one and breaks the graph on the other.
    """
    cls = type(cell)
    if not cls.__module__.startswith("rnnkit."):
        return None
    return f"{cls.__module__}:{cls.__qualname__}:{cell.config()!r}"


@functools.lru_cache(maxsize=256)
def _cell(cell_key: str, training: bool) -> RecurrentCell:
    """A parameterless cell equal to the one ``cell_key`` was made from."""
    module, name, config = cell_key.split(":", 2)
    cls = getattr(importlib.import_module(module), name)
    cell: RecurrentCell = cls(**ast.literal_eval(config), _own_parameters=False)
    return cell.train(training)


def _params(cell: RecurrentCell, weights: list[Tensor]) -> dict[str, Tensor]:
    return dict(zip(cell._parameter_names, weights, strict=True))


def _run(
    cell_key: str,
    training: bool,
    gx: Tensor,
    state: list[Tensor],
    weights: list[Tensor],
    valid: Tensor | None,
    zero: Tensor | None,
    mask: Tensor | None,
    keep: list[Tensor],
    reverse: bool,
) -> tuple[Tensor, list[Tensor]]:
    cell = _cell(cell_key, training)
    out, final = loop(
        cell,
        _params(cell, weights),
        gx,
        tuple(state),
        valid=valid,
        zero=zero,
        reverse=reverse,
        mask=mask,
        keep=tuple(keep) or None,
    )
    # A custom operator's outputs must not alias its inputs (the state passes through
    # unchanged where a sequence has no steps), nor each other; contiguous, as the shape
    # function promises (``like``), whatever the strides of the state given.
    return out.contiguous(), [s.clone(memory_format=torch.contiguous_format) for s in final]


@torch.library.custom_op(op_name("cell_loop"), mutates_args=())
def cell_loop(
    cell_key: str,
    training: bool,
    gx: Tensor,
    state: list[Tensor],
    weights: list[Tensor],
    valid: Tensor | None,
    zero: Tensor | None,
    mask: Tensor | None,
    keep: list[Tensor],
    reverse: bool,
) -> tuple[Tensor, list[Tensor]]:
    """One direction of one layer: outputs (T, B, H) and the final state, as ``loop``."""
    with torch.no_grad():  # the gradient is register_autograd's, below
        return _run(cell_key, training, gx, state, weights, valid, zero, mask, keep, reverse)


@cell_loop.register_fake
def _(
    cell_key: str,
    training: bool,
    gx: Tensor,
    state: list[Tensor],
    weights: list[Tensor],
    valid: Tensor | None,
    zero: Tensor | None,
    mask: Tensor | None,
    keep: list[Tensor],
    reverse: bool,
) -> tuple[Tensor, list[Tensor]]:
    T, B, _ = gx.shape
    out = gx.new_empty(T, B, state[0].size(-1))  # h^t is the output: H, or P with projections
    return out, [like(s) for s in state]


@torch.library.custom_op(op_name("cell_loop_backward"), mutates_args=())
def cell_loop_backward(
    cell_key: str,
    training: bool,
    gx: Tensor,
    state: list[Tensor],
    weights: list[Tensor],
    valid: Tensor | None,
    zero: Tensor | None,
    mask: Tensor | None,
    keep: list[Tensor],
    reverse: bool,
    grad_out: Tensor,
    grad_final: list[Tensor],
) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """Gradients for gx, the state and the weights, by running the loop again."""
    n = len(state)

    def forward(leaves: list[Tensor]) -> list[Tensor]:
        out, final = _run(
            cell_key, training, leaves[0], leaves[1 : 1 + n], leaves[1 + n :], valid, zero,
            mask, keep, reverse,
        )  # fmt: skip
        return [out, *final]

    full = recomputed_gradients(forward, [gx, *state, *weights], [grad_out, *grad_final])
    return full[0], full[1 : 1 + n], full[1 + n :]


@cell_loop_backward.register_fake
def _(
    cell_key: str,
    training: bool,
    gx: Tensor,
    state: list[Tensor],
    weights: list[Tensor],
    valid: Tensor | None,
    zero: Tensor | None,
    mask: Tensor | None,
    keep: list[Tensor],
    reverse: bool,
    grad_out: Tensor,
    grad_final: list[Tensor],
) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    return like(gx), [like(s) for s in state], [like(w) for w in weights]


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
    cell_key, training, gx, state, weights, valid, zero, mask, keep, reverse = inputs
    ctx.args = (cell_key, training, reverse, len(state), len(weights))
    ctx.save_for_backward(gx, *state, *weights, valid, zero, mask, *keep)


def _backward(ctx: Any, grad_out: Tensor, grad_final: list[Tensor]) -> tuple[Any, ...]:
    cell_key, training, reverse, n, m = ctx.args
    saved = ctx.saved_tensors
    gx, state, weights = saved[0], list(saved[1 : 1 + n]), list(saved[1 + n : 1 + n + m])
    valid, zero, mask = saved[1 + n + m : 4 + n + m]
    keep = list(saved[4 + n + m :])
    g_gx, g_state, g_weights = cell_loop_backward(
        cell_key, training, gx, state, weights, valid, zero, mask, keep, reverse,
        grad_out, list(grad_final),
    )  # fmt: skip
    no_keep = [None] * len(keep)  # the masks are random draws: no gradient
    return None, None, g_gx, g_state, g_weights, None, None, None, no_keep, None


cell_loop.register_autograd(_backward, setup_context=_setup_context)
