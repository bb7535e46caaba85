"""What a layer hands a backend: a plain value, never the layer itself.

A :class:`Plan` says what to run - the cells (the math of one step, per stacked layer) and
the layer's flags - and ``Weights`` what to run it with, read by the layer at call time
through :func:`~rnnkit.cells.base.current_weight`, so a parametrized or swapped weight is
the one every backend sees. The call's own data (the input, the state, lengths and resets)
is passed next to them, already in time-major form: batch_first, unbatched and packed
inputs are the layer's business.

A backend reads these values and nothing else: it never sees, imports or calls back into a
layer, so backends and layers depend one way (layers -> backends -> cells).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from torch import Tensor

from rnnkit.cells.base import Params, RecurrentCell, State

# weights[k][d]: layer k, direction d, under the cell's names (weight_ih, weight_hh, ...),
# in torch's registration order.
Weights = tuple[tuple[Params, ...], ...]

# A stream's step: (weights, x (B, I), [state of layer k]) -> (h (B, H) of the last layer,
# the new states). The weights come with every step, read then by the stream that drives it.
Stepper = Callable[[Weights, Tensor, list[State]], tuple[Tensor, list[State]]]


class Plan(NamedTuple):
    """How to run one call of a stacked, possibly bidirectional layer.

    A NamedTuple rather than a frozen dataclass: a layer builds one per call, and on the
    one-step path the dataclass's field-by-field frozen ``__init__`` costs three times as
    much.
    """

    owner: str  # the layer's class name, for error messages
    backend: str  # the backend asked for: "auto", "native", "reference" or "scan"
    cells: tuple[RecurrentCell, ...]  # one per stacked layer: the equations of one step
    bias: bool  # whether the weights include b_ih and b_hh
    dropout: float  # dropout between stacked layers, applied only while training
    training: bool
    bidirectional: bool
    proj_size: int  # the LSTM's projection width P (0: none)

    @property
    def kind(self) -> str:
        """torch's mode name of the cell: "LSTM", "GRU", "RNN_TANH", "MINGRU", ..."""
        return self.cells[0].kind

    @property
    def num_layers(self) -> int:
        return len(self.cells)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """Width of the output: both directions of the last layer side by side."""
        return self.cells[-1].output_size * self.num_directions


def flat_weights(weights: Weights) -> list[Tensor]:
    """torch's ``_flat_weights`` order, as its fused kernels take them."""
    return [w for per_layer in weights for p in per_layer for w in p.values()]
