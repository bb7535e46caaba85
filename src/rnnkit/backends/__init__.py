"""How a sequence is run. Every backend computes the same function as ``reference``.

- ``reference``: the unrolled loop of the chapter; runs every cell and option.
- ``native``: torch's fused kernels, for the configurations they compute exactly.
- ``scan``: all time steps at once, for cells whose recurrence is linear in the state
  (minGRU, minLSTM).
- ``fused``: the step loop in C++ with its backward written out
  (:mod:`rnnkit.kernels.fused`), on the CPU for the GRU, which torch has no fused kernel
  for, and for the options and resets torch's kernels lack; on CUDA, for those options,
  a Triton kernel per step (:mod:`rnnkit.kernels.fused_cuda`).

A layer hands a backend a :class:`~rnnkit.backends.plan.Plan` and the weights it read for
the call (see :mod:`rnnkit.backends.plan`); a backend never sees the layer. Which backend
runs is a pure function of the plan and the call, :func:`choose`: ``layer.backend_for(x)``
asks it ahead of a call, and :func:`trace` records what each layer ran inside a block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import NamedTuple

import torch
from torch import Tensor

from rnnkit.backends import fused, native, reference, scan
from rnnkit.backends.plan import Plan, Stepper, Weights
from rnnkit.cells.base import State
from rnnkit.cells.linear import LinearRecurrentCell

# run(plan, weights, x (T, B, I), state, lengths (B,) or None, reset (T, B) or None)
Runner = Callable[
    [Plan, Weights, Tensor, State, "Tensor | None", "Tensor | None"], tuple[Tensor, State]
]

BACKENDS: dict[str, Runner] = {
    "reference": reference.run,
    "native": native.run,
    "scan": scan.run,
    "fused": fused.run,
}
CHOICES = ("auto", *BACKENDS)


class Choice(NamedTuple):
    name: str  # the backend that runs the call
    reason: str  # why, in words
    fallback: bool = False  # an automatic choice of a slower path than the layer's usual one


class PerformanceWarning(UserWarning):
    """An automatic choice fell back to a slower backend (shown once per call site).

    Example (torch's kernels have no zoneout, and rnnkit's fused ones no bfloat16)::

        >>> import warnings, torch, rnnkit
        >>> layer = rnnkit.LSTM(3, 4, zoneout=0.1).bfloat16()
        >>> x = torch.zeros(5, 2, 3, dtype=torch.bfloat16)
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     _ = layer(x)
        >>> [w.category.__name__ for w in caught], layer.backend_for(x).name
        (['PerformanceWarning'], 'reference')
    """


def choose(plan: Plan, steps: int, resets: bool, x: Tensor | None = None) -> Choice:
    """The backend a call over ``steps`` time steps (with per-sample resets or not) runs on.

    Pure: it reads the plan, the input's device, dtype and batch size (``x``, time-major)
    and whether autograd records (``torch.no_grad()`` and ``torch.inference_mode()`` calls
    may run the GRU elsewhere than training calls), so asking ahead under the same grad
    mode gives what a call will do. A forced backend that cannot run the call exactly
    raises ``ValueError`` here.
    """
    owner = plan.owner
    linear = isinstance(plan.cells[0], LinearRecurrentCell)
    if plan.backend == "reference":
        return Choice("reference", "forced by backend='reference'")
    if plan.backend == "fused":
        why = fused.supports(plan, x)
        if why:
            raise ValueError(
                f"{owner}: backend='fused' cannot run this call ({why}); use backend='auto' "
                "or 'reference'"
            )
        return Choice("fused", "forced by backend='fused'")
    if plan.backend == "scan":
        if not linear:
            raise ValueError(
                f"{owner}: backend='scan' needs a cell whose recurrence is linear in the state "
                f"(MinGRU, MinLSTM); got {plan.kind}"
            )
        return Choice("scan", "forced by backend='scan'")
    if linear:
        if plan.backend == "native":
            raise ValueError(
                f"{owner}: backend='native' has no kernel for {plan.kind}; "
                "use backend='auto', 'scan' or 'reference'"
            )
        if steps == 1:
            return Choice("reference", "a single step: the O(1) recurrence, no scan")
        return Choice("scan", "linear recurrence: all steps at once")
    unsupported = native.supports(plan, resets)
    if plan.backend == "auto" and plan.kind in fused.KINDS:
        # Where torch's kernel cannot run the call (resets, options), or - for the GRU,
        # which torch runs through autograd on the CPU - where ours is the faster. Asked
        # only then, so that a call torch's kernel takes never builds the extension.
        on_cpu = x is None or x.device.type == "cpu"  # on CUDA, cuDNN's GRU is fused
        batch = 0 if x is None else x.size(1)
        hidden, grad = plan.cells[0].hidden_size, torch.is_grad_enabled()
        faster = fused.faster_than_torchs_gru(batch, hidden, grad)
        small = faster if plan.kind == "GRU" and on_cpu else None
        if (unsupported or small) and not fused.supports(plan, x):
            why = unsupported or small
            return Choice("fused", f"rnnkit's fused kernel ({why})")
    if plan.backend == "native":
        if unsupported:
            raise ValueError(
                f"{owner}: backend='native' cannot run this call exactly "
                f"({unsupported}); use backend='auto' or 'reference'"
            )
        return Choice("native", "forced by backend='native'")
    if unsupported:
        # A slower path only for a kind some kernel knows: the reference loop is the one
        # path for the equations of a cell of one's own, and nothing to warn about.
        known = plan.kind in native.KERNELS or plan.kind in fused.KINDS
        return Choice("reference", unsupported, fallback=known)
    return Choice("native", "standard configuration: torch's fused kernel")


def stepper(plan: Plan) -> tuple[str, Stepper]:
    """The fastest exact one-step function for a unidirectional stack, and its backend."""
    choose(plan, 1, False)  # a forced backend that cannot run the layer raises here
    if plan.backend in ("auto", "native"):
        fast = native.stepper(plan)
        if fast is not None:
            return "native", fast
    return "reference", reference.stepper(plan)


# The open trace() blocks' records, innermost last; a context variable, so threads and
# async tasks each see their own.
_TRACES: ContextVar[tuple[dict[object, Choice], ...]] = ContextVar("rnnkit_traces", default=())


@contextmanager
def trace() -> Iterator[dict[object, Choice]]:
    """Record which backend each layer ran on inside the block, and why.

    Yields a dict from layer to its latest :class:`Choice`; the layers themselves are left
    untouched (their ``forward`` changes nothing on the module)::

        with rnnkit.backends.trace() as ran:
            model(x)
        ran[model.rnn].name  # "native"
    """
    record: dict[object, Choice] = {}
    token = _TRACES.set((*_TRACES.get(), record))
    try:
        yield record
    finally:
        _TRACES.reset(token)


def note(layer: object, choice: Choice) -> None:
    """Tell the open :func:`trace` blocks that ``layer`` ran on ``choice`` (a layer calls it).

    Not under ``torch.compile``: Dynamo cannot trace ``ContextVar.get`` and would break the
    graph at every layer; ask ``layer.backend_for(x)`` instead, which is the same choice.
    """
    if torch.compiler.is_compiling():
        return
    for record in _TRACES.get():
        record[layer] = choice


__all__ = [
    "BACKENDS",
    "CHOICES",
    "Choice",
    "PerformanceWarning",
    "Plan",
    "Weights",
    "choose",
    "note",
    "stepper",
    "trace",
]
