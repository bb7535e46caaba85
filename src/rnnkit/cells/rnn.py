"""The Elman recurrent neuron (chapter sections 10.2-10.5).

The chapter's recurrence (10.1) is y^t = f(x^t, h^{t-1}); unrolled (10.2) it reads

    h^t = g(w_xh x^t + w_hh h^{t-1} + b)
    y^t = g(w_hy h^t)

with g = tanh (or ReLU). As in torch and cuDNN the bias b is stored as two vectors,
b = b_ih + b_hh, so torch's state_dicts load unchanged. The read-out y^t = w_hy h^t is not
part of the cell: the layer returns h^t and a model puts its own head on top.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.cells.base import Params, RecurrentCell, State

_NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}


class RNNCell(RecurrentCell):
    """Elman cell, a drop-in for ``torch.nn.RNNCell``.

    Equations (chapter 10.2)::

        h^t = g(W_xh x^t + b_ih + W_hh h^{t-1} + b_hh),   g ∈ {tanh, relu}

    Shape:
        input (B, I) or (I,); hx (B, H) or (H,); returns h^t with hx's shape.

    Example (one step, as ``torch.nn.RNNCell`` with the same weights)::

        >>> import torch, rnnkit
        >>> _ = torch.manual_seed(0)
        >>> reference = torch.nn.RNNCell(3, 4, nonlinearity="relu")
        >>> cell = rnnkit.RNNCell(3, 4, nonlinearity="relu")
        >>> _ = cell.load_state_dict(reference.state_dict())
        >>> x, h = torch.randn(2, 3), torch.randn(2, 4)  # (B, I), (B, H)
        >>> cell(x, h).shape
        torch.Size([2, 4])
        >>> torch.allclose(cell(x, h), reference(x, h), atol=1e-6)
        True
    """

    num_gates: ClassVar[int] = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        **options: object,
    ) -> None:
        if nonlinearity not in _NONLINEARITIES:
            raise ValueError(
                f"{type(self).__name__}: nonlinearity must be 'tanh' or 'relu'; "
                f"got {nonlinearity!r}"
            )
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, **options)  # type: ignore[arg-type]

    @property
    def kind(self) -> str:  # type: ignore[override]
        return "RNN_TANH" if self.nonlinearity == "tanh" else "RNN_RELU"

    def config(self) -> dict[str, object]:
        return {**super().config(), "nonlinearity": self.nonlinearity}

    def recur(self, p: Params, gx: Tensor, state: State, mask: Tensor | None) -> State:
        (h_prev,) = state
        g = _NONLINEARITIES[self.nonlinearity]
        h = g(gx + F.linear(self.masked(h_prev, mask), p["weight_hh"], p.get("bias_hh")))  # 10.2
        return (h,)

    def extra_repr(self) -> str:
        extra = super().extra_repr()
        return extra if self.nonlinearity == "tanh" else f"{extra}, nonlinearity='relu'"
