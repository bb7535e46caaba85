"""The LSTM cell (chapter sections 10.8-10.13; Hochreiter & Schmidhuber 1997).

The chapter's equations, with the output gate that 10.7 leaves cut off written out, and
the candidate called c̃^t (the chapter reuses c^t for it in 10.5 and 10.6):

    f^t = σ(w_xf x^t + w_hf h^{t-1} + b_f)          (10.4)  forget gate
    i^t = σ(w_xi x^t + w_hi h^{t-1} + b_i)          (10.5)  input gate
    c̃^t = tanh(w_xc x^t + w_hc h^{t-1} + b_c)       (10.5)  candidate values
    c^t = f^t ∘ c^{t-1} + i^t ∘ c̃^t                  (10.6)  cell state
    o^t = σ(w_xo x^t + w_ho h^{t-1} + b_o)          (10.7)  output gate
    h^t = o^t ∘ tanh(c^t)                           (10.7)

The four gates' weights are stacked in torch's order i, f, g (= c̃), o, so that
``torch.nn.LSTMCell`` state_dicts load unchanged.

With ``layer_norm=True`` this is the layer-normalised LSTM of Ba et al. 2016 (sec. 3.1,
"Layer normalized recurrent neural networks"): the two products are normalised separately
before the bias, LN(W_x x) + LN(W_h h) + b, and the output reads h^t = o^t ∘ tanh(LN(c^t)).

With ``proj_size=P`` > 0 this is the LSTM with a recurrent projection layer of Sak et al.
2014 ("Long Short-Term Memory Recurrent Neural Network Architectures for Large Scale
Acoustic Modeling", sec. 2, LSTMP), as ``torch.nn.LSTM(..., proj_size=P)`` computes it:

    h^t = W_hr (o^t ∘ tanh(c^t))                    W_hr: (P, H), no bias

h^t, the output and the recurrent input are P wide, c^t stays H wide; W_h· reads h^{t-1}
and so is (4H, P). With P ≪ H this cuts the recurrent weights from 4H² to 4HP + HP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.cells.base import Params, RecurrentCell, State


class LSTMCell(RecurrentCell):
    """LSTM cell, a drop-in for ``torch.nn.LSTMCell``.

    Shape:
        input (B, I) or (I,); hx a tuple (h, c) of (B, H) or (H,); returns (h^t, c^t).

    Args:
        layer_norm: normalise the gate pre-activations and the cell state (Ba et al. 2016);
            adds the parameters ``ln_ih_*``, ``ln_hh_*`` and ``ln_c_*`` (gain, shift).
        proj_size: P > 0 projects h^t to P units with ``weight_hr`` (P, H), as
            ``torch.nn.LSTM``'s ``proj_size`` (Sak et al. 2014); 0 (default) for none.
        Other options as in :class:`~rnnkit.cells.base.RecurrentCell`.

    Example (one step, as ``torch.nn.LSTMCell`` with the same weights)::

        >>> import torch, rnnkit
        >>> _ = torch.manual_seed(0)
        >>> reference, cell = torch.nn.LSTMCell(3, 4), rnnkit.LSTMCell(3, 4)
        >>> _ = cell.load_state_dict(reference.state_dict())
        >>> x, state = torch.randn(2, 3), (torch.randn(2, 4), torch.randn(2, 4))  # (h, c)
        >>> h, c = cell(x, state)
        >>> h.shape, c.shape
        (torch.Size([2, 4]), torch.Size([2, 4]))
        >>> all(torch.allclose(a, b, atol=1e-6) for a, b in zip((h, c), reference(x, state)))
        True
    """

    kind: ClassVar[str] = "LSTM"
    num_gates: ClassVar[int] = 4
    state_names: ClassVar[tuple[str, ...]] = ("h", "c")
    has_projection: ClassVar[bool] = True

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        layer_norm: bool = False,
        proj_size: int = 0,
        **options: object,
    ) -> None:
        if not isinstance(layer_norm, bool):
            raise TypeError(f"LSTMCell: layer_norm must be a bool; got {layer_norm!r}")
        self.layer_norm = layer_norm
        self.proj_size = check_proj_size("LSTMCell", proj_size, hidden_size)
        super().__init__(input_size, hidden_size, bias, **options)  # type: ignore[arg-type]

    @property
    def output_size(self) -> int:
        return self.proj_size or self.hidden_size

    def config(self) -> dict[str, object]:
        return {**super().config(), "layer_norm": self.layer_norm, "proj_size": self.proj_size}

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = super().parameter_shapes()
        if self.proj_size:
            # torch's order: w_ih, w_hh, b_ih, b_hh, then w_hr (its _flat_weights and
            # the fused kernel expect this order).
            G, H, P = self.num_gates, self.hidden_size, self.proj_size
            shapes["weight_hh"] = (G * H, P)  # W_h· reads the projected h^{t-1}
            shapes["weight_hr"] = (P, H)
        if self.layer_norm:
            G, H = self.num_gates, self.hidden_size
            for name, size in (("ln_ih", G * H), ("ln_hh", G * H), ("ln_c", H)):
                shapes[f"{name}_weight"] = (size,)
                shapes[f"{name}_bias"] = (size,)
        return shapes

    def keep_gate_slice(self) -> slice:
        H = self.hidden_size
        return slice(H, 2 * H)  # f, the second block in torch's order i, f, g, o

    def tied_input_slice(self) -> slice:
        return slice(0, self.hidden_size)  # i

    def _ln(self, p: Params, name: str, v: Tensor) -> Tensor:
        return F.layer_norm(v, v.shape[-1:], p[f"{name}_weight"], p[f"{name}_bias"])

    def project(self, p: Params, x: Tensor, linear: Callable[..., Tensor] = F.linear) -> Tensor:
        if not self.layer_norm:
            return super().project(p, x, linear)
        gx = self._ln(p, "ln_ih", linear(x, p["weight_ih"]))
        return gx if "bias_ih" not in p else gx + p["bias_ih"]

    def recur(self, p: Params, gx: Tensor, state: State, mask: Tensor | None) -> State:
        h_prev, c_prev = state
        h_in = self.masked(h_prev, mask)
        if self.layer_norm:
            gh = self._ln(p, "ln_hh", F.linear(h_in, p["weight_hh"]))
            gh = gh if "bias_hh" not in p else gh + p["bias_hh"]
        else:
            gh = F.linear(h_in, p["weight_hh"], p.get("bias_hh"))
        # One fused product for all four gates, split in torch's order i, f, g (= c̃), o.
        a_i, a_f, a_c, a_o = (gx + gh).chunk(4, dim=-1)
        f = torch.sigmoid(a_f)  # forget gate (10.4)
        i = torch.sigmoid(a_i)  # input gate (10.5)
        c_tilde = torch.tanh(a_c)  # candidate values (10.5)
        c = f * c_prev + i * c_tilde  # cell state (10.6)
        o = torch.sigmoid(a_o)  # output gate (10.7)
        h = o * torch.tanh(self._ln(p, "ln_c", c) if self.layer_norm else c)  # (10.7)
        if self.proj_size:
            h = F.linear(h, p["weight_hr"])  # recurrent projection (Sak et al. 2014)
        return (h, c)

    def extra_repr(self) -> str:
        extra = super().extra_repr()
        if self.proj_size:
            extra = f"{extra}, proj_size={self.proj_size}"
        return f"{extra}, layer_norm=True" if self.layer_norm else extra


def check_proj_size(owner: str, proj_size: object, hidden_size: object) -> int:
    """torch's rule: 0 for none, else 0 < P < H (a projection is there to make h narrower)."""
    if isinstance(proj_size, bool) or not isinstance(proj_size, int):
        raise TypeError(f"{owner}: proj_size must be an integer >= 0; got {proj_size!r}")
    if proj_size < 0:
        raise ValueError(f"{owner}: proj_size must be an integer >= 0; got {proj_size}")
    if proj_size and isinstance(hidden_size, int) and proj_size >= hidden_size:
        raise ValueError(
            f"{owner}: proj_size must be smaller than hidden_size; "
            f"expected < {hidden_size}, got {proj_size}"
        )
    return proj_size
