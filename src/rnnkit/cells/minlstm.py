"""minLSTM (Feng et al. 2024, "Were RNNs All We Needed?", sec. 3.2).

The LSTM with its gates cut loose from h^{t-1}, the output gate and cell state dropped, and
the forget and input gates normalised so that the state's scale does not depend on time:

    f^t = σ(W_f x^t + b_f)                      forget gate
    i^t = σ(W_i x^t + b_i)                      input gate
    h̃^t = W_h x^t + b_h                         candidate
    f'^t, i'^t = f^t / (f^t + i^t), i^t / (f^t + i^t)
    h^t = f'^t ∘ h^{t-1} + i'^t ∘ h̃^t

A linear recurrence with a^t = f'^t and b^t = i'^t ∘ h̃^t, computed by the scan backend.
Weights: ``weight_ih`` (3H, I) stacks W_f, W_i, W_h in that order (``bias_ih`` likewise).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from rnnkit.cells.base import Params
from rnnkit.cells.linear import LinearRecurrentCell


class MinLSTMCell(LinearRecurrentCell):
    """minLSTM cell. Shape: input (B, I) or (I,); hx (B, H) or (H,); returns h^t.

    Example (one step, checked against the equations above)::

        >>> import torch, rnnkit
        >>> _ = torch.manual_seed(0)
        >>> cell = rnnkit.MinLSTMCell(3, 4)
        >>> x, h = torch.randn(2, 3), torch.randn(2, 4)  # (B, I), (B, H)
        >>> gx = torch.nn.functional.linear(x, cell.weight_ih, cell.bias_ih)
        >>> f, i, h_tilde = torch.sigmoid(gx[:, :4]), torch.sigmoid(gx[:, 4:8]), gx[:, 8:]
        >>> torch.allclose(cell(x, h), (f * h + i * h_tilde) / (f + i), atol=1e-6)
        True
    """

    kind: ClassVar[str] = "MINLSTM"
    num_gates: ClassVar[int] = 3

    def keep_gate_slice(self) -> slice:
        return slice(0, self.hidden_size)  # f

    def tied_input_slice(self) -> slice:
        return slice(self.hidden_size, 2 * self.hidden_size)  # i

    def coefficients(self, p: Params, gx: Tensor) -> tuple[Tensor, Tensor]:
        a_f, a_i, h_tilde = gx.chunk(3, dim=-1)  # order f, i, h̃
        f = torch.sigmoid(a_f)  # forget gate
        i = torch.sigmoid(a_i)  # input gate
        total = f + i  # normalisation: f' + i' = 1
        return f / total, (i / total) * h_tilde
