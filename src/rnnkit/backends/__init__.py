"""How a sequence is run. Every backend computes the same function as ``reference``.

- ``reference``: the unrolled loop of the chapter; runs every cell and option.
- ``native``: torch's fused kernels, for the configurations they compute exactly.

A layer with ``backend="auto"`` takes the fastest backend that computes its call exactly;
``layer.last_backend`` and ``layer.last_backend_reason`` say which ran and why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from torch import Tensor

from rnnkit.backends import native, reference
from rnnkit.cells.base import State

if TYPE_CHECKING:
    from rnnkit.layers.base import RecurrentLayer

Runner = Callable[
    ["RecurrentLayer", Tensor, State, "Tensor | None", "Tensor | None"], tuple[Tensor, State]
]

BACKENDS: dict[str, Runner] = {"reference": reference.run, "native": native.run}
CHOICES = ("auto", *BACKENDS)


class PerformanceWarning(UserWarning):
    """An automatic choice fell back to a slower backend (shown once per layer)."""


def select(layer: RecurrentLayer, reset: Tensor | None) -> tuple[str, str]:
    """The backend a call will use and why: ``(name, reason)``."""
    unsupported = native.supports(layer, reset)
    if layer.backend == "reference":
        return "reference", "forced by backend='reference'"
    if layer.backend == "native":
        if unsupported:
            raise ValueError(
                f"{type(layer).__name__}: backend='native' cannot run this call exactly "
                f"({unsupported}); use backend='auto' or 'reference'"
            )
        return "native", "forced by backend='native'"
    if unsupported:
        return "reference", unsupported
    return "native", "standard configuration: torch's fused kernel"


__all__ = ["BACKENDS", "CHOICES", "PerformanceWarning", "select"]
