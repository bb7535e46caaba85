"""Cells whose recurrence is linear in the state: h^t = a^t ∘ h^{t-1} + b^t.

When the gates read x^t alone (Feng et al. 2024), a^t and b^t are known for every step
before the recurrence runs, so a layer can compute all T states with a scan
(:mod:`rnnkit.kernels.scan`) while a single step stays an O(1) update. Both forms share
``coefficients``, so they compute the same function.
"""

from __future__ import annotations

import abc

import torch
from torch import Tensor

from rnnkit.cells.base import Params, RecurrentCell, State
from rnnkit.kernels.scan import linear_scan


class LinearRecurrentCell(RecurrentCell):
    """Base of :class:`MinGRUCell` and :class:`MinLSTMCell`: no recurrent weights."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, **options: object):
        if options.get("recurrent_dropout"):
            raise ValueError(
                f"{type(self).__name__}: recurrent_dropout needs a recurrent product "
                f"W_hh h^(t-1), which this cell does not have; got "
                f"recurrent_dropout={options['recurrent_dropout']!r}"
            )
        super().__init__(input_size, hidden_size, bias, **options)  # type: ignore[arg-type]

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        G, H = self.num_gates, self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {"weight_ih": (G * H, self.input_size)}
        if self.bias:
            shapes["bias_ih"] = (G * H,)
        return shapes

    @torch.no_grad()
    def init_parameters(self, p: Params) -> None:
        # torch's U(-1/√I, 1/√I) for a Linear layer: the gates read x only.
        bound = 1.0 / self.input_size**0.5 if self.input_size else 0.0  # I = 0: nothing read
        for value in p.values():
            value.uniform_(-bound, bound)
        if self.forget_bias is not None:
            self.check_forget_bias_fits(p["bias_ih"])
            p["bias_ih"][self.keep_gate_slice()] = self.keep_sign * self.forget_bias
        if self.chrono_init is not None:
            H = self.hidden_size
            u = torch.empty(H, dtype=torch.float64).uniform_(1.0, self.chrono_init - 1.0)
            b_keep = torch.log(u).to(p["bias_ih"])
            p["bias_ih"][self.keep_gate_slice()] = self.keep_sign * b_keep
            tied = self.tied_input_slice()
            if tied is not None:
                p["bias_ih"][tied] = -b_keep

    keep_sign = 1.0  # +1 when the keep gate's pre-activation is the stored one, -1 if 1 - σ

    @abc.abstractmethod
    def coefficients(self, p: Params, gx: Tensor) -> tuple[Tensor, Tensor]:
        """a^t, b^t of h^t = a^t ∘ h^{t-1} + b^t from the projected input, for any shape."""

    def scan_coefficients(self, p: Params, gx: Tensor) -> tuple[Tensor, Tensor]:
        """``coefficients`` with zoneout folded in, as the scan backend needs them.

        Zoneout keeps h^{t-1} with probability p: h^t = m ∘ h^{t-1} + (1 - m) ∘ (a h^{t-1} + b),
        still linear, with a' = m + (1 - m) a and b' = (1 - m) b (m = p in evaluation).
        """
        a, b = self.coefficients(p, gx)
        if self.zoneout == 0:
            return a, b
        if self.training:
            keep = torch.rand_like(a) < self.zoneout
            return torch.where(keep, torch.ones_like(a), a), torch.where(keep, 0.0, b)
        return self.zoneout + (1.0 - self.zoneout) * a, (1.0 - self.zoneout) * b

    def scan(self, p: Params, gx: Tensor, h0: Tensor) -> Tensor:
        """h^t for every t of an unmasked sequence from its projections gx (T, ..., G·H).

        The scan backend's entry point; a subclass may fuse its gates into the scan.
        """
        return linear_scan(*self.scan_coefficients(p, gx), h0)

    def recur(self, p: Params, gx: Tensor, state: State, mask: Tensor | None) -> State:
        (h_prev,) = state
        a, b = self.coefficients(p, gx)
        return (a * h_prev + b,)
