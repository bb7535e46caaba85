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
    """

    cell_class: ClassVar[type[RecurrentCell]] = GRUCell
    torch_class: ClassVar[type[nn.Module]] = nn.GRU


__all__ = ["GRU", "LSTM", "RNN"]
