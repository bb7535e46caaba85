"""K independent recurrent layers side by side: the body of a deep ensemble.

A deep ensemble (Lakshminarayanan et al. 2017) averages the predictions of K networks that
differ only in their random initialisation (and their dropout and noise draws). Each member
overfits a small training set in its own way; their average does so much less, which is
what a single series or a few hundred labelled sequences need.

:class:`Members` holds the K layers and runs them one after the other, but looks like
**one** layer of width K*H to its caller: the output at each step is laid out as a wide
layer's would be - per direction, the members' H units side by side, ``(D, K, H)``
flattened - and the state is every member's state concatenated on the hidden axis,
``(L*D, B, K*H)``. So :class:`rnnkit.Stream`, a burn-in over earlier values, and anything
else that carries a layer's state carry an ensemble's unchanged.

It *is* such a layer, with block-diagonal weights: :meth:`Members.block_diagonal` builds
that layer (member k's gate rows read member k's units only), which gives the same outputs
and states; the export uses it, since a graph wants one layer. Running the members one by
one costs K times a member, where the wide layer's recurrent product costs K^2.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.layers.base import RecurrentLayer


class Members(nn.Module):
    """K recurrent layers of one configuration, seen as one layer of width K*H.

    Args:
        layers: the members, all of the same class, sizes, direction and options (build
            them in a loop: each draws its own initial weights).

    ``forward(x, state=None, lengths=None) -> (out, state)`` as a layer's: ``out`` (..., D*K*H)
    with the members' units side by side within each direction, ``state`` (L*D, B, K*H)
    (a tuple of them for an LSTM). :meth:`member` picks member k's part of an output.
    """

    def __init__(self, layers: Sequence[RecurrentLayer]) -> None:
        super().__init__()
        if not isinstance(layers, Iterable):  # list(3) said "'int' object is not iterable"
            raise TypeError(
                f"Members: layers must be a list of rnnkit recurrent layers; got "
                f"{type(layers).__name__}"
            )
        layers = list(layers)
        if len(layers) < 2:
            raise ValueError(f"Members: expected at least 2 layers; got {len(layers)}")
        first = layers[0]
        for k, layer in enumerate(layers):
            if not isinstance(layer, RecurrentLayer):
                raise TypeError(
                    f"Members: layer {k} must be an rnnkit recurrent layer; got "
                    f"{type(layer).__name__}"
                )
            if layer.proj_size:
                raise ValueError(f"Members: layer {k} has proj_size={layer.proj_size}; "
                                 "expected none (the state would not be H wide)")  # fmt: skip
            if _signature(layer) != _signature(first):
                raise ValueError(
                    f"Members: every layer must be configured alike; layer {k} is "
                    f"{_signature(layer)}, layer 0 is {_signature(first)}"
                )
        self.layers = nn.ModuleList(layers)
        self.count = len(layers)
        self.input_size = first.input_size
        self.member_size = first.hidden_size
        self.hidden_size = self.count * first.hidden_size
        self.num_layers = first.num_layers
        self.bidirectional = first.bidirectional
        self.num_directions = first.num_directions
        self.batch_first = first.batch_first
        self.proj_size = 0
        self.output_size = self.num_directions * self.hidden_size

    def forward(
        self, x: Tensor, state: Any = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, Any]:
        states = self.split_state(state)
        outs, finals = [], []
        for layer, s in zip(self.layers, states, strict=True):
            out, final = layer(x, s, lengths=lengths)
            outs.append(out.unflatten(-1, (self.num_directions, self.member_size)))
            finals.append(final)
        out = torch.stack(outs, dim=-2).flatten(-3)  # (..., D, K, H) -> (..., D*K*H)
        return out, self.join_state(finals)

    def member(self, out: Tensor, k: int) -> Tensor:
        """Member k's part of an output or pooled output (..., D*K*H): (..., D*H), the
        layout of that member's own layer."""
        D, K, H = self.num_directions, self.count, self.member_size
        return out.unflatten(-1, (D, K, H))[..., k, :].flatten(-2)

    def split_state(self, state: Any) -> list[Any]:
        """The state (L*D, B, K*H) (or a tuple of them) as K member states."""
        if state is None:
            return [None] * self.count
        if isinstance(state, Tensor):
            return list(state.chunk(self.count, dim=-1))
        parts = [s.chunk(self.count, dim=-1) for s in state]
        return [tuple(p[k] for p in parts) for k in range(self.count)]

    @staticmethod
    def join_state(states: list[Any]) -> Any:
        if isinstance(states[0], Tensor):
            return torch.cat(states, dim=-1)
        return tuple(torch.cat([s[j] for s in states], dim=-1) for j in range(len(states[0])))

    def block_diagonal(self) -> RecurrentLayer:
        """The one layer of width K*H that computes what the members compute: member k's
        rows of every weight read the input and member k's own units, and nothing else.

        Refused (ValueError) for a layer-norm cell, whose normalisation would mix the
        members' units.
        """
        first: RecurrentLayer = self.layers[0]  # type: ignore[assignment]
        options: dict[str, Any] = dict(first.first_cell.config())  # the cell options
        if options.get("layer_norm"):
            raise ValueError(
                "Members.block_diagonal: a layer-norm cell normalises over all of its units, "
                "so K members are not one wider layer; expected layer_norm=False"
            )
        for key in ("input_size", "hidden_size", "bias", "proj_size", "layer_norm"):
            options.pop(key, None)
        K, H, D = self.count, self.member_size, self.num_directions
        wide = type(first)(
            self.input_size, K * H, self.num_layers, bias=first.bias,
            batch_first=self.batch_first, dropout=first.dropout,
            bidirectional=self.bidirectional, backend=first.backend, **options,
        )  # fmt: skip
        p0 = next(first.parameters())
        wide = wide.to(p0.device, p0.dtype)
        params = dict(wide.named_parameters())
        with torch.no_grad():
            for name, big in params.items():
                big.zero_()
                layer_index = int(name.split("_l")[-1].split("_")[0])
                for k, member in enumerate(self.layers):
                    small = dict(member.named_parameters())[name]
                    gates = small.shape[0] // H
                    rows = torch.cat([torch.arange(g * K * H + k * H, g * K * H + (k + 1) * H)
                                      for g in range(gates)])  # fmt: skip
                    if small.dim() == 1:
                        big[rows] = small
                        continue
                    if small.shape[1] == H and name.startswith("weight_hh"):
                        cols = torch.arange(k * H, (k + 1) * H)
                    elif layer_index > 0:  # reads the previous layer's (D, K, H) outputs
                        cols = torch.cat([torch.arange(d * K * H + k * H, d * K * H + (k + 1) * H)
                                          for d in range(D)])  # fmt: skip
                    else:
                        cols = torch.arange(self.input_size)
                    big[rows.unsqueeze(1), cols.unsqueeze(0)] = small
        return wide.train(self.training)


def _signature(layer: RecurrentLayer) -> tuple[Any, ...]:
    return (
        type(layer).__name__, layer.input_size, layer.hidden_size, layer.num_layers,
        layer.bidirectional, layer.batch_first, layer.bias, layer.dropout,
        tuple(sorted(layer.first_cell.config().items())),
    )  # fmt: skip


class MemberLinear(nn.Module):
    """One ``nn.Linear`` per member, each reading its member's part of the features.

    ``forward(z) -> (..., K, out_features)``, z (..., D*K*H) laid out as :class:`Members`
    lays out its output, optionally followed by ``extra`` features every member reads too
    (a forecaster's head also reads the step's inputs).
    """

    def __init__(
        self, members: Members, out_features: int, extra: int = 0, bias: bool = True
    ) -> None:
        super().__init__()
        self.count, self.extra = members.count, extra
        self.directions, self.member_size = members.num_directions, members.member_size
        width = self.directions * self.member_size + extra
        self.linears = nn.ModuleList(
            [nn.Linear(width, out_features, bias) for _ in range(self.count)]
        )
        self.out_features = out_features

    def forward(self, z: Tensor) -> Tensor:
        D, K, H = self.directions, self.count, self.member_size
        body, extra = z[..., : D * K * H], z[..., D * K * H :]
        parts = body.unflatten(-1, (D, K, H))
        outs = []
        for k, linear in enumerate(self.linears):
            own = parts[..., k, :].flatten(-2)
            outs.append(linear(torch.cat([own, extra], dim=-1) if self.extra else own))
        return torch.stack(outs, dim=-2)


class AverageProbabilities(nn.Module):
    """A classifier ensemble's read-out: the log of the members' mean class probability.

    ``forward(z) -> (..., C)`` log-probabilities (usable as logits: the arg-max is the
    ensemble's vote, and cross-entropy on them scores the averaged prediction);
    :meth:`members` gives each member's own logits (..., K, C), which training scores
    one by one so that the members stay independent.
    """

    def __init__(self, members: Members, num_classes: int) -> None:
        super().__init__()
        self.linear = MemberLinear(members, num_classes)
        self.out_features = num_classes

    def members(self, z: Tensor) -> Tensor:
        return self.linear(z)

    def forward(self, z: Tensor) -> Tensor:
        logp = torch.log_softmax(self.linear(z), dim=-1)
        return torch.logsumexp(logp, dim=-2) - math.log(self.linear.count)
