"""minGRU and minLSTM layers (Feng et al. 2024): trained with a scan, run step by step.

The same contract as the other layers - stacking, dropout between layers, bidirectional,
lengths, reset, state in and out. A call over many steps runs on the scan backend; a call
with a single step (streaming) runs the O(1) recurrence; both compute the same function.
"""

from __future__ import annotations

from typing import ClassVar

from rnnkit.cells.base import RecurrentCell
from rnnkit.cells.mingru import MinGRUCell
from rnnkit.cells.minlstm import MinLSTMCell
from rnnkit.layers.base import RecurrentLayer


class MinGRU(RecurrentLayer):
    """minGRU layer: h^t = (1 − z^t) ∘ h^{t-1} + z^t ∘ h̃^t with gates from x^t alone.

    Constructor and forward as :class:`rnnkit.GRU` (state: one tensor (L*D, B, H)).

    Example (all steps at once equal the steps one at a time through the cell)::

        >>> import torch, rnnkit
        >>> _ = torch.manual_seed(0)
        >>> layer, cell = rnnkit.MinGRU(3, 4), rnnkit.MinGRUCell(3, 4)
        >>> weights = {k.removesuffix("_l0"): w for k, w in layer.state_dict().items()}
        >>> _ = cell.load_state_dict(weights)  # the layer's weight_ih_l0 is the cell's weight_ih
        >>> x = torch.randn(6, 2, 3)  # (T, B, I)
        >>> out, h = layer(x)  # on the scan backend
        >>> h_t, steps = torch.zeros(2, 4), []
        >>> for x_t in x:
        ...     h_t = cell(x_t, h_t)
        ...     steps.append(h_t)
        >>> torch.allclose(out, torch.stack(steps), atol=1e-6)
        True
    """

    cell_class: ClassVar[type[RecurrentCell]] = MinGRUCell


class MinLSTM(RecurrentLayer):
    """minLSTM layer: h^t = f'^t ∘ h^{t-1} + i'^t ∘ h̃^t with gates from x^t alone.

    Constructor and forward as :class:`rnnkit.GRU` (state: one tensor (L*D, B, H)).

    Example (all steps at once equal the steps one at a time through the cell)::

        >>> import torch, rnnkit
        >>> _ = torch.manual_seed(0)
        >>> layer, cell = rnnkit.MinLSTM(3, 4), rnnkit.MinLSTMCell(3, 4)
        >>> weights = {k.removesuffix("_l0"): w for k, w in layer.state_dict().items()}
        >>> _ = cell.load_state_dict(weights)  # the layer's weight_ih_l0 is the cell's weight_ih
        >>> x = torch.randn(6, 2, 3)  # (T, B, I)
        >>> out, h = layer(x)  # on the scan backend
        >>> h_t, steps = torch.zeros(2, 4), []
        >>> for x_t in x:
        ...     h_t = cell(x_t, h_t)
        ...     steps.append(h_t)
        >>> torch.allclose(out, torch.stack(steps), atol=1e-6)
        True
    """

    cell_class: ClassVar[type[RecurrentCell]] = MinLSTMCell
