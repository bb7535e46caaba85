"""How a sequence is run. Every backend computes the same function as ``reference``.

- ``reference``: the unrolled loop of the chapter; runs every cell and option.
- ``native``: torch's fused kernels, for the configurations they compute exactly.
- ``scan``: all time steps at once, for cells whose recurrence is linear in the state
  (minGRU, minLSTM).

A layer with ``backend="auto"`` takes the fastest backend that computes its call exactly;
``layer.last_backend`` and ``layer.last_backend_reason`` say which ran and why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from torch import Tensor

from rnnkit.backends import native, reference, scan
from rnnkit.cells.base import State
from rnnkit.cells.linear import LinearRecurrentCell

if TYPE_CHECKING:
    from rnnkit.layers.base import RecurrentLayer

Runner = Callable[
    ["RecurrentLayer", Tensor, State, "Tensor | None", "Tensor | None"], tuple[Tensor, State]
]

BACKENDS: dict[str, Runner] = {"reference": reference.run, "native": native.run, "scan": scan.run}
CHOICES = ("auto", *BACKENDS)


class Choice(NamedTuple):
    name: str  # the backend that runs the call
    reason: str  # why, in words
    fallback: bool = False  # an automatic choice of a slower path than the layer's usual one


class PerformanceWarning(UserWarning):
    """An automatic choice fell back to a slower backend (shown once per layer)."""


def select(layer: RecurrentLayer, steps: int, reset: Tensor | None) -> Choice:
    """The backend a call over ``steps`` time steps will use, and why."""
    owner = type(layer).__name__
    linear = isinstance(layer.first_cell, LinearRecurrentCell)
    if layer.backend == "reference":
        return Choice("reference", "forced by backend='reference'")
    if layer.backend == "scan":
        if not linear:
            raise ValueError(
                f"{owner}: backend='scan' needs a cell whose recurrence is linear in the state "
                f"(MinGRU, MinLSTM); got {layer.first_cell.kind}"
            )
        return Choice("scan", "forced by backend='scan'")
    if linear:
        if layer.backend == "native":
            raise ValueError(
                f"{owner}: backend='native' has no kernel for {layer.first_cell.kind}; "
                "use backend='auto', 'scan' or 'reference'"
            )
        if steps == 1:
            return Choice("reference", "a single step: the O(1) recurrence, no scan")
        return Choice("scan", "linear recurrence: all steps at once")
    unsupported = native.supports(layer, reset)
    if layer.backend == "native":
        if unsupported:
            raise ValueError(
                f"{owner}: backend='native' cannot run this call exactly "
                f"({unsupported}); use backend='auto' or 'reference'"
            )
        return Choice("native", "forced by backend='native'")
    if unsupported:
        return Choice("reference", unsupported, fallback=True)
    return Choice("native", "standard configuration: torch's fused kernel")


def stepper(layer: RecurrentLayer) -> tuple[str, native.Stepper]:
    """The fastest exact one-step function for a unidirectional layer, and its backend."""
    select(layer, 1, None)  # a forced backend that cannot run the layer raises here
    if layer.backend in ("auto", "native"):
        fast = native.stepper(layer)
        if fast is not None:
            return "native", fast
    return "reference", reference.stepper(layer)


__all__ = ["BACKENDS", "CHOICES", "Choice", "PerformanceWarning", "select", "stepper"]
