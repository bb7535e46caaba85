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

from typing import Any, ClassVar

import torch
from torch import Tensor

from rnnkit.cells.base import Params
from rnnkit.cells.linear import LinearRecurrentCell
from rnnkit.kernels.scan import scan_forward, scan_gradient


class MinGRUCell(LinearRecurrentCell):
    """minGRU cell. Shape: input (B, I) or (I,); hx (B, H) or (H,); returns h^t.

    ``forget_bias``/``chrono_init`` set the bias of the keep gate 1 − z^t (so b_z = −value).

    Example (one step, checked against the equations above)::

        >>> import torch, rnnkit
        >>> _ = torch.manual_seed(0)
        >>> cell = rnnkit.MinGRUCell(3, 4)
        >>> x, h = torch.randn(2, 3), torch.randn(2, 4)  # (B, I), (B, H)
        >>> a_z, h_tilde = torch.nn.functional.linear(x, cell.weight_ih, cell.bias_ih).chunk(2, -1)
        >>> z = torch.sigmoid(a_z)
        >>> torch.allclose(cell(x, h), (1 - z) * h + z * h_tilde, atol=1e-6)
        True
    """

    kind: ClassVar[str] = "MINGRU"
    num_gates: ClassVar[int] = 2
    keep_sign = -1.0  # the kept share is 1 - z = σ(-(W_z x + b_z))

    def keep_gate_slice(self) -> slice:
        return slice(0, self.hidden_size)  # z

    def coefficients(self, p: Params, gx: Tensor) -> tuple[Tensor, Tensor]:
        if torch.compiler.is_compiling():
            # The hand-written backward writes into strided views with ``out=``, which
            # Dynamo cannot trace; the compiler fuses these few ops by itself.
            a_z, h_tilde = gx.chunk(2, dim=-1)  # order z, h̃
            z = torch.sigmoid(a_z)  # update gate
            return 1 - z, z * h_tilde
        return _Coefficients.apply(gx)

    def scan(self, p: Params, gx: Tensor, h0: Tensor) -> Tensor:
        own_gates = type(self).coefficients is MinGRUCell.coefficients
        if self.zoneout or torch.compiler.is_compiling() or not own_gates:
            # Compiled: the gates above, then the scan as one opaque operator
            # (rnnkit.kernels.scan.linear_scan); _GatedScan's out= writes break the graph.
            # A subclass's own coefficients are not the gates _GatedScan has fused in.
            return super().scan(p, gx, h0)
        return _GatedScan.apply(gx, h0)


class _Coefficients(torch.autograd.Function):
    """a = 1 − z, b = z ∘ h̃ with z = σ(a_z), and their gradient derived by hand.

    The same function autograd would differentiate, in fewer passes over the (T, B, 2H)
    projections: the gradient is written straight into one buffer in the z, h̃ layout
    instead of being built from the pieces and concatenated. On the CPU a MinGRU training
    step is bound by such passes once the matrix products are done.
    """

    @staticmethod
    def forward(ctx: Any, gx: Tensor) -> tuple[Tensor, Tensor]:
        a_z, h_tilde = gx.chunk(2, dim=-1)  # order z, h̃
        z = torch.sigmoid(a_z)  # update gate
        a = 1 - z
        ctx.save_for_backward(z, h_tilde, a)
        return a, z * h_tilde  # h^t = (1 − z^t) ∘ h^{t-1} + z^t ∘ h̃^t

    @staticmethod
    def backward(ctx: Any, grad_a: Tensor, grad_b: Tensor) -> Tensor:
        z, h_tilde, a = ctx.saved_tensors
        grad = torch.empty(*z.shape[:-1], 2 * z.size(-1), dtype=z.dtype, device=z.device)
        g_z, g_h = grad.chunk(2, dim=-1)
        # ∂L/∂z = g_b ∘ h̃ − g_a, then through σ' = z (1 − z); ∂L/∂h̃ = g_b ∘ z.
        torch.mul(grad_b, h_tilde, out=g_z)
        g_z.sub_(grad_a).mul_(z).mul_(a)
        torch.mul(grad_b, z, out=g_h)
        return grad


class _GatedScan(torch.autograd.Function):
    """The gates and the scan in one function: h^t for all t from the projections.

    Autograd over ``_Coefficients`` and the linear scan would build ∂L/∂a^t = g^t ∘ h^{t-1}
    in a buffer of its own and read it back; here it is folded into the update gate's
    gradient, with g^t = ∂L/∂h^t summed over the future (the reverse scan):

        ∂L/∂z^t = g^t ∘ (h̃^t − h^{t-1}),   ∂L/∂a_z^t = ∂L/∂z^t ∘ z^t (1 − z^t),
        ∂L/∂h̃^t = g^t ∘ z^t,               ∂L/∂h^0 = (1 − z^1) ∘ g^1.

    The states are written over b^t = z^t ∘ h̃^t, which the scan reads only before it
    writes the same step. Two passes over (T, B, H) and one buffer fewer than the
    unfused pair; the function is the same.
    """

    @staticmethod
    def forward(ctx: Any, gx: Tensor, h0: Tensor) -> Tensor:
        a_z, h_tilde = gx.chunk(2, dim=-1)
        z = torch.sigmoid(a_z)
        a = 1 - z
        h = torch.mul(z, h_tilde)  # b^t, overwritten by h^t
        T = h.size(0)
        scan_forward(a.view(T, -1), h.view(T, -1), h0.reshape(-1), out=h.view(T, -1))
        ctx.save_for_backward(z, a, h_tilde, h, h0)
        return h

    @staticmethod
    def backward(ctx: Any, grad_h: Tensor) -> tuple[Tensor, Tensor]:
        z, a, h_tilde, h, h0 = ctx.saved_tensors
        T = h.size(0)
        g = scan_gradient(a.view(T, -1), grad_h.reshape(T, -1)).view_as(h)
        grad = torch.empty(*z.shape[:-1], 2 * z.size(-1), dtype=z.dtype, device=z.device)
        g_z, g_h = grad.chunk(2, dim=-1)
        torch.mul(g, z, out=g_h)  # ∂L/∂h̃ = g ∘ z
        torch.sub(h_tilde[1:], h[:-1], out=g_z[1:])  # h̃^t − h^{t-1}
        torch.sub(h_tilde[0], h0, out=g_z[0])
        g_z.mul_(g_h).mul_(a)  # ∘ g z (1 − z)
        return grad, a[0] * g[0]
