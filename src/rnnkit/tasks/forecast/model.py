"""The network: :class:`ForecastModel` (a recurrent layer and a direct multi-step head,
quantile or Gaussian), the averaged head of an ensemble, the training loss, and a batched
pass over prepared series that turns raw outputs into values.

Apart because it is the one module that holds weights: what reads the model's outputs -
the intervals, :func:`~rnnkit.tasks.forecast.api.forecast`, the online forecaster, the
task - imports it, never the other way.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.deploy import Z80
from rnnkit.layers.base import RecurrentLayer
from rnnkit.layers.members import MemberLinear, Members
from rnnkit.models.lm import CELLS
from rnnkit.tasks.forecast.config import ForecastConfig
from rnnkit.tasks.forecast.features import N_FEATURES, Prepared

QUANTILES = (0.1, 0.5, 0.9)  # the 80 % interval and the median
EVAL_BATCH = 256  # series per forward pass at evaluation


class ForecastModel(nn.Module):
    """A recurrent layer over the inputs and a head that forecasts ``horizon`` steps.

    ``forward(x, state=None, lengths=None) -> (raw, state)``: x (T, B, N_FEATURES)
    time-major, raw (T, B, horizon, 3 or 2) - the contract :class:`rnnkit.Stream` runs.
    :func:`forecast` and :class:`OnlineForecaster` turn raw outputs into values.
    """

    # Buffers (register_buffer in __init__): declared so that they read as tensors.
    interval_scale: Tensor
    correction: Tensor

    def __init__(self, config: ForecastConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        inner = c.dropout if c.num_layers > 1 else 0.0
        self.features = N_FEATURES
        self.drop = nn.Dropout(c.dropout)
        self.outputs = 3 if c.head == "quantile" else 2
        outputs = c.horizon * self.outputs
        self.rnn: RecurrentLayer | Members
        self.head: nn.Linear | AverageBands
        if c.members == 1:
            self.rnn = CELLS[c.cell](self.features, c.hidden_size, c.num_layers, dropout=inner)
            self.head = nn.Linear(c.hidden_size + self.features, outputs)
            linears = [self.head]
        else:  # a deep ensemble: independent members side by side, their bands averaged
            self.rnn = Members([
                CELLS[c.cell](self.features, c.hidden_size, c.num_layers, dropout=inner)
                for _ in range(c.members)
            ])  # fmt: skip
            self.head = AverageBands(self.rnn, c.horizon, self.outputs, self.features)
            # MemberLinear's ModuleList holds one nn.Linear per member.
            linears = cast("list[nn.Linear]", list(self.head.linear.linears))
        for linear in linears:  # small heads: the untrained model forecasts about its anchor
            nn.init.normal_(linear.weight, std=0.01)
            nn.init.zeros_(linear.bias)
        # How far the 80 % interval reaches, relative to the head's own quantiles: set by
        # validation when the run calibrates (saved with the weights), else 1.
        self.register_buffer("interval_scale", torch.ones(()))
        # 1: the network's point forecasts; 0: its anchor's, where the network did not
        # beat them on validation (--margin, :func:`anchor_check`). Saved with the weights.
        self.register_buffer("correction", torch.ones(()))
        self.register_load_state_dict_pre_hook(_older_weights)

    def forward(
        self, x: Tensor, state: Any = None, lengths: Tensor | None = None, members: bool = False
    ) -> tuple[Tensor, Any]:
        """(raw (T, B, horizon, outputs), state); an ensemble's raw outputs are those of its
        averaged bands.

        ``members=True`` trains an ensemble: the batch holds one batch per member, one after
        the other (K*b windows; ``state`` (L, b, K*H), each member's over its own windows),
        and the result is each member's raw outputs, (K, T, b, horizon, outputs).
        """
        shape = (self.config.horizon, self.outputs)
        if not members:
            out, state = self.rnn(x, state, lengths=lengths)
            z = torch.cat([self.drop(out), x.to(out.dtype)], dim=-1)
            return self.head(z).unflatten(-1, shape), state
        if isinstance(self.rnn, Members):
            assert isinstance(self.head, AverageBands)
            pairs = list(zip(self.rnn.layers, self.head.linear.linears, strict=True))
            states = self.rnn.split_state(state)
        else:
            pairs, states = [(self.rnn, self.head)], [state]
        K = len(pairs)
        chunks = lengths.chunk(K) if lengths is not None else [None] * K
        raws, finals = [], []
        for (layer, head), xk, sk, nk in zip(pairs, x.chunk(K, 1), states, chunks, strict=True):
            out, final = layer(xk, sk, lengths=nk)
            raws.append(head(torch.cat([self.drop(out), xk.to(out.dtype)], dim=-1)))
            finals.append(final)
        # K > 1 only for an ensemble (a single network is one pair).
        if isinstance(self.rnn, Members) and K > 1:
            final = self.rnn.join_state(finals)
        else:
            final = finals[0]
        return torch.stack(raws).unflatten(-1, shape), final

    def bands(self, raw: Tensor, calibrated: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """(point, 80 % lower, 80 % upper) in output units, from raw outputs; the point
        times ``correction`` and the interval scaled by ``interval_scale`` unless
        ``calibrated`` is False (the head's own outputs, which training fits)."""
        raw = raw.float()
        mid = raw[..., 0] * self.correction.float() if calibrated else raw[..., 0]
        if self.config.head == "quantile":
            below, above = F.softplus(raw[..., 1]), F.softplus(raw[..., 2])
        else:
            below = above = Z80 * (F.softplus(raw[..., 1]) + 1e-3)
        c = self.interval_scale.float() if calibrated else 1.0
        return mid, mid - c * below, mid + c * above


def _older_weights(module: nn.Module, state: dict[str, Any], prefix: str, *_: Any) -> None:
    """Weights saved before ``correction`` existed forecast with the network (1)."""
    state.setdefault(prefix + "correction", torch.ones(()))


class AverageBands(nn.Module):
    """A forecaster ensemble's head: each member's head over its own units and the step's
    inputs, then the members' point forecasts and interval half-widths averaged - the
    average of their quantiles (Vincentization, Ratcliff 1979), which keeps a quantile
    forecast's shape where mixing the distributions would widen it. Returned as raw outputs
    (the half-widths through the inverse of the softplus), so that everything downstream
    reads an ensemble as it reads one network."""

    def __init__(self, members: Members, horizon: int, outputs: int, inputs: int) -> None:
        super().__init__()
        self.linear = MemberLinear(members, horizon * outputs, extra=inputs)
        self.horizon, self.outputs = horizon, outputs
        self.out_features = horizon * outputs

    def members(self, z: Tensor) -> Tensor:
        """(..., K, horizon * outputs): each member's raw outputs."""
        return self.linear(z)

    def forward(self, z: Tensor) -> Tensor:
        raw = self.linear(z).unflatten(-1, (self.horizon, self.outputs))  # (..., K, h, o)
        mid = raw[..., 0].mean(-2)
        width = F.softplus(raw[..., 1:]).mean(-3)  # > 0: softplus is invertible there
        inverse = width + torch.log(-torch.expm1(-width))  # softplus^-1, stable for small w
        return torch.cat([mid.unsqueeze(-1), inverse], dim=-1).flatten(-2)


def output_loss(model: ForecastModel, raw: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """The mean loss over the ``mask``ed targets (output units): pinball over the three
    quantiles, or the Gaussian negative log-likelihood (constant dropped)."""
    raw = raw.float()
    target = torch.where(mask, target, torch.zeros_like(target))
    if model.config.head == "quantile":
        mid, lower, upper = model.bands(raw, calibrated=False)
        loss = torch.zeros_like(mid)
        for q, pred in zip(QUANTILES, (lower, mid, upper), strict=True):
            e = target - pred
            loss = loss + torch.maximum(q * e, (q - 1) * e)
    else:
        sigma = F.softplus(raw[..., 1]) + 1e-3
        loss = torch.log(sigma) + 0.5 * ((target - raw[..., 0]) / sigma) ** 2
    return (loss * mask).sum() / mask.sum().clamp(min=1)


def _values(raw: Tensor, model: ForecastModel, anchor: np.ndarray, unit: np.ndarray) -> Any:
    """Values from raw outputs at some steps: anchor + unit * band, for each band."""
    bands = [b.double().cpu().numpy() for b in model.bands(raw)]
    return [anchor + unit[..., None] * b for b in bands]


@torch.no_grad()
def _run(model: ForecastModel, prepared: list[Prepared], steps: list[list[int]]) -> list[Any]:
    """For each series, the forecasts from the given steps (origin = step + 1): one pass
    over each series, batched. Returns per series (mean, lower, upper), each (k, h)."""
    was = model.training
    model.eval()
    device = model.interval_scale.device  # a buffer: int8 models keep no parameters
    results: list[Any] = [None] * len(prepared)
    try:
        for start in range(0, len(prepared), EVAL_BATCH):
            chunk = list(range(start, min(start + EVAL_BATCH, len(prepared))))
            T = max(len(prepared[i].y) for i in chunk)
            x = torch.zeros(T, len(chunk), model.features)
            for b, i in enumerate(chunk):
                x[: len(prepared[i].y), b] = torch.from_numpy(prepared[i].x)
            lengths = torch.tensor([len(prepared[i].y) for i in chunk])
            raw, _ = model(x.to(device), lengths=lengths)
            for b, i in enumerate(chunk):
                at = steps[i]
                p = prepared[i]
                results[i] = _values(raw[at, b], model, p.anchor[at], p.unit[at])
    finally:
        model.train(was)
    return results
