"""minGRU (Feng et al. 2024, "Were RNNs All We Needed?", sec. 3.1).

The GRU with its gates cut loose from h^{t-1} (and the reset gate dropped):

    z^t = σ(W_z x^t + b_z)                      update gate
    h̃^t = W_h x^t + b_h                         candidate
    h^t = (1 − z^t) ∘ h^{t-1} + z^t ∘ h̃^t

Since z^t and h̃^t read x^t only, h^t = a^t ∘ h^{t-1} + b^t with a^t = 1 − z^t and
b^t = z^t ∘ h̃^t: a linear recurrence that the scan backend computes for all t at once.
This is the paper's minGRU in linear space (its Algorithm "minGRU, sequential and
parallel mode"); rnnkit's scan needs no log-space form, so h̃ is not passed through the
positive function g(·) of the paper's log-space variant.

Weights: ``weight_ih`` (2H, I) stacks W_z and W_h in that order (``bias_ih`` likewise).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from rnnkit.cells.base import Params
from rnnkit.cells.linear import LinearRecurrentCell


class MinGRUCell(LinearRecurrentCell):
    """minGRU cell. Shape: input (B, I) or (I,); hx (B, H) or (H,); returns h^t.

    ``forget_bias``/``chrono_init`` set the bias of the keep gate 1 − z^t (so b_z = −value).
    """

    kind: ClassVar[str] = "MINGRU"
    num_gates: ClassVar[int] = 2
    keep_sign = -1.0  # the kept share is 1 - z = σ(-(W_z x + b_z))

    def keep_gate_slice(self) -> slice:
        return slice(0, self.hidden_size)  # z

    def coefficients(self, p: Params, gx: Tensor) -> tuple[Tensor, Tensor]:
        a_z, h_tilde = gx.chunk(2, dim=-1)  # order z, h̃
        z = torch.sigmoid(a_z)  # update gate
        return 1 - z, z * h_tilde  # h^t = (1 − z^t) ∘ h^{t-1} + z^t ∘ h̃^t
