"""The chapter's layers: Elman RNN, LSTM and GRU, drop-ins for their torch.nn namesakes."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn

from rnnkit.cells import GRUCell, LSTMCell, RNNCell
from rnnkit.cells.base import RecurrentCell
from rnnkit.cells.lstm import check_proj_size
from rnnkit.layers.base import RecurrentLayer


class RNN(RecurrentLayer):
    """Elman RNN (chapter 10.2-10.5), a drop-in for ``torch.nn.RNN``.

    Same constructor, parameters, shapes and outputs as ``torch.nn.RNN``, with the extra
    ``lengths``/``reset`` arguments of :meth:`RecurrentLayer.forward` and the cell options
    ``zoneout`` and ``recurrent_dropout``.

    Example (``reset``: a new sequence starts at t = 3 of a stream, from a zero state)::

        >>> import torch, rnnkit
        >>> _ = torch.manual_seed(0)
        >>> rnn = rnnkit.RNN(3, 4)
        >>> x = torch.randn(6, 1, 3)  # (T, B, I)
        >>> reset = torch.zeros(6, 1, dtype=torch.bool)
        >>> reset[3] = True
        >>> out, h = rnn(x, reset=reset)
        >>> out.shape, h.shape
        (torch.Size([6, 1, 4]), torch.Size([1, 1, 4]))
        >>> torch.allclose(out[3:], rnn(x[3:])[0], atol=1e-6)
        True
    """

    cell_class: ClassVar[type[RecurrentCell]] = RNNCell
    torch_class: ClassVar[type[nn.Module]] = nn.RNN

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        **kwargs: Any,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu'; got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            nonlinearity=nonlinearity,
            **kwargs,
        )

    def _torch_kwargs(self) -> dict[str, Any]:
        return {**super()._torch_kwargs(), "nonlinearity": self.nonlinearity}

    @classmethod
    def _kwargs_from_torch(cls, module: Any) -> dict[str, Any]:
        return {**super()._kwargs_from_torch(module), "nonlinearity": module.nonlinearity}

    def extra_repr(self) -> str:
        extra = super().extra_repr()
        return extra if self.nonlinearity == "tanh" else f"{extra}, nonlinearity='relu'"


class LSTM(RecurrentLayer):
    """LSTM (chapter 10.8-10.16), a drop-in for ``torch.nn.LSTM``.

    The state is the tuple ``(h, c)``. ``proj_size`` P > 0 gives the LSTM with projections
    of Sak et al. 2014, as torch's: h^t = W_hr (o^t ∘ tanh c^t) with ``weight_hr_l{k}``
    (P, H); h, the output and the next layer's input are P (per direction) wide, c stays H.
    Extra options: ``layer_norm``, ``zoneout``, ``recurrent_dropout``, ``forget_bias``,
    ``chrono_init`` (see :class:`LSTMCell`).

    Example (a ``torch.nn.LSTM`` converted, and the same outputs)::

        >>> import torch, rnnkit
        >>> _ = torch.manual_seed(0)
        >>> reference = torch.nn.LSTM(3, 4, num_layers=2)
        >>> lstm = rnnkit.LSTM.from_torch(reference)
        >>> x = torch.randn(5, 2, 3)  # (T, B, I)
        >>> out, (h, c) = lstm(x)
        >>> out.shape, h.shape, c.shape
        (torch.Size([5, 2, 4]), torch.Size([2, 2, 4]), torch.Size([2, 2, 4]))
        >>> torch.allclose(out, reference(x)[0], atol=1e-6)
        True
    """

    cell_class: ClassVar[type[RecurrentCell]] = LSTMCell
    torch_class: ClassVar[type[nn.Module]] = nn.LSTM

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        **kwargs: Any,
    ) -> None:
        check_proj_size("LSTM", proj_size, hidden_size)
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size=proj_size,
            **kwargs,
        )

    def _torch_kwargs(self) -> dict[str, Any]:
        return {**super()._torch_kwargs(), "proj_size": self.proj_size}

    @classmethod
    def _kwargs_from_torch(cls, module: Any) -> dict[str, Any]:
        return {**super()._kwargs_from_torch(module), "proj_size": module.proj_size}


class GRU(RecurrentLayer):
    """GRU (chapter 10.17), a drop-in for ``torch.nn.GRU``.

    Extra options: ``zoneout``, ``recurrent_dropout``, ``forget_bias``, ``chrono_init``
    (the latter two set the update gate's bias, see :class:`GRUCell`).

    Example (``lengths``: the second sequence of the padded batch ends after 3 steps)::

        >>> import torch, rnnkit
        >>> _ = torch.manual_seed(0)
        >>> gru = rnnkit.GRU(3, 4, batch_first=True)
        >>> x = torch.randn(2, 5, 3)  # (B, T, I)
        >>> out, h = gru(x, lengths=[5, 3])
        >>> out.shape, h.shape
        (torch.Size([2, 5, 4]), torch.Size([1, 2, 4]))
        >>> bool((out[1, 3:] == 0).all())  # no output past its end
        True
        >>> torch.allclose(h[0, 1], gru(x[1:, :3])[1][0, 0], atol=1e-6)  # its state at t = 3
        True
    """

    cell_class: ClassVar[type[RecurrentCell]] = GRUCell
    torch_class: ClassVar[type[nn.Module]] = nn.GRU


__all__ = ["GRU", "LSTM", "RNN"]
