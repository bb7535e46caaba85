"""The gated recurrent unit (chapter section 10.17; Cho et al. 2014).

The variant torch and cuDNN compute, where the reset gate multiplies the recurrent
product *after* it is taken (so b_hn stays inside r ∘ (·)):

    r^t = σ(W_ir x^t + b_ir + W_hr h^{t-1} + b_hr)          reset gate
    z^t = σ(W_iz x^t + b_iz + W_hz h^{t-1} + b_hz)          update gate
    n^t = tanh(W_in x^t + b_in + r^t ∘ (W_hn h^{t-1} + b_hn))  candidate
    h^t = (1 − z^t) ∘ n^t + z^t ∘ h^{t-1}

Three gate blocks against the LSTM's four and no separate cell state: this is the
chapter's "fewer parameters, as they lack an output gate". z^t plays the forget gate's
part (it is the share of h^{t-1} kept), so ``forget_bias`` and ``chrono_init`` set b_z.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.cells.base import Params, RecurrentCell, State


class GRUCell(RecurrentCell):
    """GRU cell, a drop-in for ``torch.nn.GRUCell``.

    Shape:
        input (B, I) or (I,); hx (B, H) or (H,); returns h^t with hx's shape.

    Example (one step, as ``torch.nn.GRUCell`` with the same weights)::

        >>> import torch, rnnkit
        >>> _ = torch.manual_seed(0)
        >>> reference, cell = torch.nn.GRUCell(3, 4), rnnkit.GRUCell(3, 4)
        >>> _ = cell.load_state_dict(reference.state_dict())
        >>> x, h = torch.randn(2, 3), torch.randn(2, 4)  # (B, I), (B, H)
        >>> cell(x, h).shape
        torch.Size([2, 4])
        >>> torch.allclose(cell(x, h), reference(x, h), atol=1e-6)
        True
    """

    kind: ClassVar[str] = "GRU"
    num_gates: ClassVar[int] = 3

    def keep_gate_slice(self) -> slice:
        H = self.hidden_size
        return slice(H, 2 * H)  # z, the second block in torch's order r, z, n

    def recur(self, p: Params, gx: Tensor, state: State, mask: Tensor | None) -> State:
        (h_prev,) = state
        gh = F.linear(self.masked(h_prev, mask), p["weight_hh"], p.get("bias_hh"))
        x_r, x_z, x_n = gx.chunk(3, dim=-1)  # torch's order r, z, n
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r = torch.sigmoid(x_r + h_r)  # reset gate
        z = torch.sigmoid(x_z + h_z)  # update gate
        n = torch.tanh(x_n + r * h_n)  # candidate
        h = (1 - z) * n + z * h_prev
        return (h,)
