"""`rnnkit train forecast`: probabilistic forecasting with one global model (chapter 10.6).

One recurrent network learns from every series of a set at once (a *global* model, as
DeepAR, Salinas et al. 2020). It reads a series one value at a time from its first
observation and, at every step t, forecasts the next ``horizon`` values at once (a direct
multi-step head, trained at every position of a window: MQ-RNN's forking sequences,
Wen et al. 2017). Every input and output is scale-free, so series of any level share it:

* the inputs at step t are the value over its trailing mean absolute value
  ``s_t = mean |y_(t-w+1..t)|`` (``--scale-window`` w), the last change, the change over
  one season and the value minus its trailing mean, each in units of ``d_t``,
  log(d_t / s_t) and 1/(t+1); ``d_t`` is the MASE scale of the history so far - the mean
  absolute seasonal difference ``mean |y_j - y_(j-m)|`` (m the seasonality; lag 1 while
  the history is a season or less);
* the output at step t is, for each step ahead k, where the forecast lies relative to an
  *anchor* forecast, in units of ``d_t``: the median and the 10 % and 90 % quantiles
  (``--head quantile``, pinball loss: an 80 % interval), or a Gaussian mean and scale
  (``--head gaussian``, negative log-likelihood). The anchor (``--anchor``) is seasonal
  naive; the climatology: each phase of the season's mean so far, plus y_t's deviation
  from its own phase's mean damped by 0.8 per step ahead (anomaly persistence); or
  seasonal naive with drift: plus the mean change over a season so far, once per season
  ahead. A loss in units of d_t is the error MASE counts, and an untrained network
  forecasts its anchor. Where the trained network does not beat its anchor on the
  validation windows by ``--margin`` standard errors, the model forecasts the anchor
  (:func:`anchor_check`).

Because every input at step t depends on the values up to t only, a forecast from a
history is one pass over it - and :class:`OnlineForecaster` continues that pass with
:class:`rnnkit.Stream` as new values arrive, equal to a fresh pass over the longer
history. Training windows of ``--context`` steps start from the state the model reaches on
the values before them (run without gradients), so training sees what a forecast sees.

Evaluation (Hyndman & Koehler 2006; the M4 and Monash definitions): each series is
forecast from ``--origins`` consecutive origins at its end - the last ``horizon`` values
for a set of many series, a rolling origin for a single long series - and scored in MASE
(mean absolute error over the in-sample seasonal naive error of the history), sMAPE
(``200 |y - f| / (|y| + |f|)``, 0 where both are 0) and the coverage of the 80 %
intervals, next to seasonal naive. Validation uses the same number of origins just
before the test's, and training sees only the values before validation. With
``--test-data`` the test is a file of each series' next ``horizon`` values (M4's and the
Monash archive's train and test files): the series are the training file's followed by
them, with one origin, so the test forecasts each series from the end of ``--data`` and
validation and training see ``--data`` alone.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit import _options
from rnnkit._options import option
from rnnkit.deploy import (
    ADAPT,
    ANCHORS,
    CLIP,
    D_FLOOR,
    S_MIN,
    Z80,
    Forecast,
    ForecastFeatures,
    Recalibration,
    conformal_factor,
    damping,
    default_hold,
    forecast_value,
    forecast_values,
    is_count,
    outside,
    recalibration_options,
    scaled,
    sum_overflow,
)
from rnnkit.layers.base import RecurrentLayer
from rnnkit.layers.members import MemberLinear, Members
from rnnkit.models.lm import CELLS
from rnnkit.tasks.base import DerivedError, SeededBatches, Task, report_folder
from rnnkit.train import distributed
from rnnkit.train.config import TrainConfig

HEADS = ("quantile", "gaussian")
TRAIN_UNTIL = ("validation", "test")
QUANTILES = (0.1, 0.5, 0.9)  # the 80 % interval and the median
N_FEATURES = 6
# CLIP: inputs are clipped to [-CLIP, CLIP]; D_FLOOR: d_t is at least this fraction of s_t
# (a constant history has d = 0). They live with the step-by-step features in rnnkit.deploy,
# which runs exported forecasters without torch: one definition for training and serving.
DATASET_NAMES = (
    "m1-yearly",
    "airline",
    "lynx",
    "shampoo",
    "uschange",
    "sunspots",
    "co2",
    "elnino",
    "nile",
)  # fmt: skip  (rnnkit.data.series.DATASETS; listed here so that no data package loads)
PLOTTED = 4  # series drawn in forecast.png
EVAL_BATCH = 256  # series per forward pass at evaluation


# ---- options ---------------------------------------------------------------------------


@dataclass
class ForecastOptions:
    """The forecasting task's data, evaluation and model options."""

    data: str | None = option(
        None,
        "your series: a Monash .tsf file, a wide CSV (a column per series), a long CSV "
        "(id,time,value) or a rows CSV (a row per series, as M4's files); see "
        "docs/forecast.md (default: --dataset)",
        metavar="FILE",
    )
    test_data: str | None = option(
        None,
        "the test file: the next horizon values of every series of --data, named as there "
        "and in a format --data takes (M4's and the Monash archive's test files); the test "
        "forecasts each series once, from the end of --data (default: the last values of "
        "each series of --data are the test)",
        metavar="FILE",
    )
    dataset: str = option(
        "m1-yearly",
        "shipped series set, read from the files aeon and statsmodels install (used when "
        "--data is not given)",
        choices=DATASET_NAMES,
    )
    format: str = option(
        "auto",
        "format of --data and --test-data: auto reads .tsf by extension, a long or rows "
        "CSV by its header, else a wide CSV",
        choices=("auto", "tsf", "wide", "long", "rows"),  # rnnkit.data.series.FORMATS
    )
    time_column: str | None = option(
        None,
        "the time column of a wide CSV (--data and --test-data), the one column skipped "
        "(default: the first, when named like a time or holding no number)",
        metavar="NAME",
    )
    horizon: int | None = option(
        None,
        "steps ahead forecast at once (default: the data's: a .tsf @horizon or the "
        "dataset's, or the length of --test-data's series; required for a CSV)",
        low=1,
        high=10_000,
    )
    seasonality: int | None = option(
        None,
        "seasonal period m of seasonal naive and MASE (default: from the data's frequency, else 1)",
        low=1,
        high=100_000,
    )
    origins: int | None = option(
        None,
        "forecast origins per series for test and validation, one step apart (default: "
        "the dataset's; 1 for --data with several series, the horizon for a single one; "
        "with --test-data only 1)",
        low=1,
        high=10_000,
    )
    context: int = option(
        64,
        "steps of a training window (the values before it are run through the model "
        "without gradients first)",
        low=2,
        high=100_000,
    )
    scale_window: int | None = option(
        None,
        "trailing values whose mean absolute value scales the inputs (default: the larger "
        "of horizon and seasonality)",
        low=1,
        high=100_000,
    )
    anchor: str = option(
        "auto",
        "what the forecasts are learned relative to: seasonal-naive (the last season "
        "repeated), climatology (each phase's mean so far plus the last value's deviation "
        "from it, damped by 0.8 per step ahead), drift (seasonal naive plus the mean change "
        "over a season so far, per season ahead), or auto: the one of the three with the "
        "lowest MASE on the validation windows",
        choices=(*ANCHORS, "auto"),
    )
    margin: float = option(
        2.0,
        "the network's point forecasts replace its anchor's only where their validation "
        "MASE is lower by this many standard errors (of the paired difference, over the "
        "distinct values scored, counted in horizons); else the model forecasts its anchor "
        "with the network's intervals. 0: wherever lower at all",
        low=0,
        high=100,
    )
    head: str = option(
        "quantile",
        "output: quantile (median and 10/90 % quantiles, pinball loss) or gaussian (mean "
        "and scale, negative log-likelihood)",
        choices=HEADS,
    )
    cell: str = option("lstm", "recurrent cell", choices=tuple(CELLS))
    hidden_size: int = option(64, "hidden units per layer H", flag="--hidden", low=1, high=65536)
    num_layers: int = option(1, "stacked recurrent layers", flag="--layers", low=1, high=64)
    dropout: float = option(
        0.1, "dropout between layers and before the head", low=0, high=1, open_high=True
    )
    members: int = option(
        1,
        "train an ensemble of this many independent networks together and average their "
        "forecasts and intervals (a deep ensemble; each costs one network's time)",
        low=1,
        high=64,
    )
    batch_size: int = option(
        32, "training windows per step, summed over all processes", low=1, high=1_000_000
    )
    calibrate: bool = option(
        True,
        "scale the 80% intervals so that they cover 80% of the validation values, at "
        "each evaluation (split conformal; --no-calibrate: the head's own intervals)",
    )
    adapt: float | None = option(
        None,
        "the step of adaptive conformal inference for the test intervals, recalibrated at "
        "each origin: from the first test origin on, the level of their conformal quantile "
        "moves after each value by this times (0.2 - the share of its forecasts' intervals "
        "it fell outside); 0: split conformal at 80% (default: 0.05 where the intervals "
        "are recalibrated, else 0)",
        low=0,
        high=1,
    )
    train_until: str = option(
        "validation",
        "the values training sees: those before the validation windows (validation then "
        "picks the best model and scales the intervals), or all before the test windows "
        "(test: a refit, for the --steps an earlier run chose, with its --interval-scale; "
        "the validation windows are then training data and choose nothing)",
        choices=TRAIN_UNTIL,
    )
    interval_scale: float | None = option(
        None,
        "with --train-until test: the factor of the 80% intervals, the interval_scale "
        "an earlier run found on validation (default 1)",
        low=0.01,
        high=100,
    )

    def __post_init__(self) -> None:
        _options.check(self)
        if self.test_data is not None and self.origins not in (None, 1):
            # A test file holds one forecast's values per series: earlier origins would
            # score values of --data, which validation and training use.
            raise ValueError(
                "--test-data holds each series' next horizon values, forecast from one "
                f"origin, the end of --data; got --origins {self.origins} (leave it out)"
            )
        if self.interval_scale is not None and self.train_until != "test":
            raise ValueError(
                "--interval-scale is for --train-until test (a refit); with --train-until "
                "validation the intervals are scaled on validation (--calibrate); got "
                f"--interval-scale {self.interval_scale:g}"
            )
        recalibrated = recalibrates(self.calibrate, self.train_until)
        if self.adapt is None:  # (config.json records the step the run used)
            self.adapt = ADAPT if recalibrated else 0.0
        elif self.adapt > 0 and not recalibrated:
            raise ValueError(
                "--adapt is for test intervals recalibrated at each origin (--calibrate "
                f"with --train-until validation); got --adapt {self.adapt:g} with "
                + ("--no-calibrate" if not self.calibrate else "--train-until test")
            )


@dataclass
class ForecastConfig:
    """Everything that builds a :class:`ForecastModel` (stored in the run's config)."""

    horizon: int
    seasonality: int = 1
    scale_window: int = 1
    head: str = "quantile"
    cell: str = "lstm"
    hidden_size: int = 64
    num_layers: int = 1
    dropout: float = 0.0
    members: int = 1
    anchor: str = ANCHORS[0]  # what the outputs are relative to (rnnkit.deploy.ANCHORS)

    def __post_init__(self) -> None:
        if self.anchor not in ANCHORS:
            raise ValueError(f"anchor must be one of {', '.join(ANCHORS)}; got {self.anchor!r}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}; got {self.head!r}")
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}; got {self.cell!r}")
        names = ("horizon", "seasonality", "scale_window", "hidden_size", "num_layers", "members")
        for name in names:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        d = self.dropout
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 <= d < 1.0:
            raise ValueError(f"dropout must be a number in [0, 1); got {d!r}")


# ---- features: scale-free, causal, the same in one pass and step by step -----------------


class Prepared(NamedTuple):
    """A series ready for the model: per step t its inputs, anchors and unit."""

    y: np.ndarray  # (n,) float64
    x: np.ndarray  # (n, N_FEATURES) float32: the inputs
    anchor: np.ndarray  # (n, h) float64: the anchor forecast from origin t (config.anchor)
    unit: np.ndarray  # (n,) float64: d_t, the unit of the outputs


def prepare_series(y: Sequence[float] | np.ndarray, config: ForecastConfig) -> Prepared:
    """The inputs, anchors and units of every step of ``y`` in one pass (numpy)."""
    y = np.asarray(y, dtype=np.float64)
    n, m, w, h = len(y), config.seasonality, config.scale_window, config.horizon
    t = np.arange(n)
    with np.errstate(over="ignore"):  # an overflow is refused just below
        c = np.concatenate([[0.0], np.cumsum(np.abs(y))])
    if n and not np.isfinite(c[-1]):  # the scales below would be inf, the forecasts NaN
        raise ValueError(sum_overflow(int(np.argmin(np.isfinite(c)))))
    cs = np.concatenate([[0.0], np.cumsum(y)])
    lo = np.maximum(0, t - w + 1)
    s = (c[t + 1] - c[lo]) / (t + 1 - lo)
    level = (cs[t + 1] - cs[lo]) / (t + 1 - lo)
    s[s < S_MIN] = 1.0  # all zero, or too near it to divide by (deploy.S_MIN)
    diff1 = np.zeros(n)
    diff1[1:] = y[1:] - y[:-1]
    c1 = np.concatenate([[0.0], np.cumsum(np.abs(diff1[1:]))])
    d = np.empty(n)
    d[0] = s[0]
    d[1:] = c1[t[1:]] / t[1:]
    # The drift anchor's mean change over a season (a step for m = 1) so far: the same
    # running sums as deploy.ForecastFeatures, so the same numbers.
    drift = np.zeros(n)
    if m == 1:
        drift[1:] = np.cumsum(diff1[1:]) / t[1:]
    diffm = np.zeros(n)
    if m > 1 and n > m:
        diffm[m:] = y[m:] - y[:-m]
        cm = np.concatenate([[0.0], np.cumsum(np.abs(diffm[m:]))])
        d[m:] = cm[t[m:] - m + 1] / (t[m:] - m + 1)
        drift[m:] = np.cumsum(diffm[m:]) / (t[m:] - m + 1)
    d = np.maximum(d, D_FLOOR * s)
    k = np.arange(h)
    if m > 1:
        back = t[:, None] + 1 + k[None, :] - m * (k[None, :] // m + 1)
        back = np.where(t[:, None] + 1 >= m, back, t[:, None])
    else:
        back = np.broadcast_to(t[:, None], (n, h))
    anchor = y[back]
    if config.anchor == "climatology":
        # The mean so far of each step ahead's phase of the season, plus DAMPING^k times
        # y_t's deviation from its own phase's mean (deploy.ForecastFeatures, step by step).
        rows = -(-n // m)
        phase_sums = np.cumsum(np.pad(y, (0, rows * m - n)).reshape(rows, m), axis=0).ravel()
        mean = phase_sums[back] / (back // m + 1)
        own = phase_sums[t] / (t // m + 1)
        climatology = mean + damping(h)[None, :] * (y - own)[:, None]
        anchor = np.where(t[:, None] + 1 >= m, climatology, anchor)
    elif config.anchor == "drift":  # seasonal naive plus the drift once per season ahead
        anchor = anchor + (k // m + 1.0)[None, :] * drift[:, None]
    x = np.stack(
        [y / s, diff1 / d, diffm / d, np.log(d / s), 1.0 / (t + 1), (y - level) / d], axis=1
    ).clip(-CLIP, CLIP)
    return Prepared(y, x.astype(np.float32), anchor, d)


# ---- the model -------------------------------------------------------------------------


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


def _shared(loss: Tensor, mask: Tensor, share: float | None) -> Tensor:
    """Under torchrun, :func:`output_loss`'s mean over this process's targets turned into
    their sum over the process's share of the global batch's targets (``Windows``), so
    that the processes' average is the mean over the whole batch, as one process takes it;
    in one process (``share`` None), the mean itself."""
    if share is None:
        return loss
    return loss * (float(mask.sum().clamp(min=1)) / max(share, 1e-12))


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


def forecast(
    model: nn.Module,
    series: Sequence[Iterable[float] | Tensor] | np.ndarray | Tensor,
    horizon: int | None = None,
) -> list[Forecast]:
    """The forecast of the next ``horizon`` values (at most the model's) after each series.

    ``series`` is a list of series, each a sequence of numbers (a list, an array, a tensor,
    a pandas Series): one series is ``[values]``. ``model`` is a :class:`ForecastModel`,
    as :func:`rnnkit.load` of a forecast run gives it (typed there as ``nn.Module``).
    """
    if not isinstance(model, ForecastModel):
        raise TypeError(
            "forecast: model must be a ForecastModel (rnnkit.load of a forecast run); got "
            f"{type(model).__name__}"
        )
    trained = model.config.horizon
    h = trained if horizon is None else horizon
    # A numpy integer (a horizon read from an array) is an integer too: it was refused as
    # not one.
    if not is_count(h, 1) or h > trained:
        raise ValueError(
            f"forecast: horizon must be an integer in [1, {trained}] (the trained horizon); "
            f"got {h!r}"
        )
    if isinstance(series, (str, bytes)) or not isinstance(series, Iterable):
        raise TypeError(
            f"forecast: series must be a list of series, each a sequence of numbers; got "
            f"{type(series).__name__}"
        )
    if isinstance(series, Mapping) or hasattr(series, "columns"):
        # A dict or a DataFrame iterates over its names: each was refused as a series of
        # characters ("series 1 must be a sequence of numbers; got str"), hiding the mistake.
        raise TypeError(
            "forecast: series must be a list of series, each a sequence of numbers; got a "
            f"{type(series).__name__}, which iterates over its names (give list(d.values()) "
            "for a dict, [df[c] for c in df] for a DataFrame)"
        )
    prepared = []
    for k, s in enumerate(series):
        if isinstance(s, numbers.Real) or (isinstance(s, (np.ndarray, Tensor)) and s.ndim == 0):
            # forecast(model, values) instead of forecast(model, [values]): each value
            # would otherwise be refused as a series on its own, or not at all.
            raise TypeError(
                "forecast: series must be a list of series, each a sequence of numbers; got "
                "a sequence of numbers (one series goes in as [values])"
            )
        values = finite(s, f"forecast: series {k + 1}")
        if not values:
            raise ValueError(
                f"forecast: series {k + 1} is empty: a forecast needs at least one value"
            )
        prepared.append(prepare_series(values, model.config))
    out = _run(model, prepared, [[len(p.y) - 1] for p in prepared])
    return [Forecast(*(b[0, : int(h)] for b in bands)) for bands in out]


def finite(values: Iterable[float], what: str, name: str | None = None) -> list[float]:
    """``values`` as floats, refused unless all are finite numbers (a NaN or inf would
    spread through the running sums into every later forecast; a string would be read
    character by character)."""
    return forecast_values(values, what, name)


class OnlineForecaster:
    """Update a forecast as each new value arrives, without retraining or rereading.

    The model's state is carried by :class:`rnnkit.Stream` and the scales by running
    sums, so an update costs one step of the network, whatever the length of the history;
    the forecast equals :func:`forecast` on the whole history (to float rounding).

    With ``recalibrate=True`` the 80 % intervals are calibrated, at every update, on the
    forecasts this forecaster made since the end of ``history`` whose outcomes have
    arrived (conformal, as :func:`recalibrated` with the end of the history as the start;
    the validated ``interval_scale`` until the first outcome): what ``rnnkit eval`` does
    over the test windows, done as the data come. The level of the conformal quantile
    holds at 80 % over the first ``hold`` time steps whose values arrive (default
    :func:`rnnkit.deploy.default_hold`: 2 * horizon - 1) and then adapts by ``adapt``
    (default 0.05, as ``--adapt``; 0: split conformal throughout).

    Example:
        >>> model = rnnkit.load("runs/forecast")  # doctest: +SKIP
        >>> online = OnlineForecaster(model, history=[112, 118, 132])  # doctest: +SKIP
        >>> online.update(129).mean  # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module,
        history: Iterable[float] = (),
        recalibrate: bool = False,
        adapt: float | None = None,
        hold: int | None = None,
    ) -> None:
        from rnnkit.stream import Stream

        if not isinstance(model, ForecastModel):
            raise TypeError(
                f"OnlineForecaster: model must be a ForecastModel (rnnkit.load of a forecast "
                f"run); got {type(model).__name__}"
            )
        adapt = recalibration_options("OnlineForecaster", recalibrate, adapt, hold)
        values = finite(history, "OnlineForecaster", "history")
        self.model = model.eval()
        self.stream = Stream(model)
        c = model.config
        self.steps = ForecastFeatures(c.seasonality, c.scale_window, c.horizon, c.anchor)
        self._last: Forecast | None = None
        self.recalibration: Recalibration | None = None
        if values:
            self.extend(values)
        if recalibrate:
            hold = default_hold(c.horizon) if hold is None else hold
            scale = float(model.interval_scale)
            self.recalibration = Recalibration(c.horizon, scale, adapt, hold)
            if self._last is not None:
                self.recalibration.add(self.seen, self._last)

    @property
    def forecast(self) -> Forecast:
        """The forecast after the values seen so far."""
        if self._last is None:
            raise ValueError("OnlineForecaster: no value seen yet; call update(value) first")
        return self._last

    @property
    def seen(self) -> int:
        return self.steps.t + 1

    @property
    def interval_scale(self) -> float:
        """The factor of the current 80 % intervals: the validated one, or with
        ``recalibrate`` the conformal one of the outcomes seen since the history."""
        recal = self.recalibration
        return float(self.model.interval_scale) if recal is None else recal.factor

    def update(self, value: float) -> Forecast:
        """Take the next observed value; returns the new forecast of the steps after it."""
        return self.extend([forecast_value(value, "OnlineForecaster")])

    @torch.no_grad()
    def extend(self, values: Sequence[float]) -> Forecast:
        """Take several values at once (one call of the stream); returns the forecast.
        Values that are not all finite numbers are refused, and nothing changes."""
        start = self.seen
        values = finite(values, "OnlineForecaster", "values")  # checked before any update
        self.steps.check(values)
        rows = [self.steps.push(v) for v in values]
        if not rows:
            return self.forecast
        device = self.model.interval_scale.device
        x = torch.from_numpy(np.stack([r[0] for r in rows]))[:, None].to(device)  # (T, 1, F)
        raw = self.stream(x)[:, 0]  # every step's (h, outputs)
        recal = self.recalibration
        # Every step's forecast is needed while recalibrating (each is scored as its
        # values arrive); otherwise the last one's.
        for k in range(0 if recal else len(rows) - 1, len(rows)):
            _, anchor, unit = rows[k]
            self._last = Forecast(*_values(raw[k], self.model, anchor, np.float64(unit)))
            if recal is not None:
                recal.observe(start + k, float(values[k]))
                self._last = recal.add(start + k + 1, self._last)
        assert self._last is not None
        return self._last


# ---- metrics (M4 / Monash) ---------------------------------------------------------------


def mase_scale(history: Sequence[float] | np.ndarray, seasonality: int) -> float:
    """The in-sample mean absolute error of seasonal naive: ``mean |y_t - y_(t-m)|``
    (lag 1 when the history is a season or shorter); nan for fewer than 2 values."""
    y = np.asarray(history, dtype=np.float64)
    m = seasonality if len(y) > seasonality else 1
    if len(y) <= m:
        return float("nan")
    return float(np.mean(np.abs(y[m:] - y[:-m])))


def mase(actual: Any, predicted: Any, history: Any, seasonality: int) -> float:
    """MASE of one forecast: mean absolute error over :func:`mase_scale` of its history."""
    error = np.mean(np.abs(np.asarray(actual, float) - np.asarray(predicted, float)))
    return float(error / mase_scale(history, seasonality))


def smape(actual: Any, predicted: Any) -> float:
    """sMAPE in percent: ``mean 200 |y - f| / (|y| + |f|)``, a term 0 where both are 0
    (and nan where either is nan: a missing value is no perfect forecast)."""
    a, f = np.asarray(actual, float), np.asarray(predicted, float)
    den = np.abs(a) + np.abs(f)
    # Only 0/0 is set to 0: a test of den > 0 also made the nan terms 0.
    terms = np.where(den == 0, 0.0, 200 * np.abs(a - f) / np.where(den == 0, 1, den))
    return float(np.mean(terms))


def seasonal_naive(history: Any, horizon: int, seasonality: int) -> Forecast:
    """The last season repeated (the last value when m = 1 or the history is shorter),
    with the normal 80 % interval of Hyndman & Athanasopoulos (FPP3, 5.5): the
    residual deviation of the seasonal differences times sqrt(1 + (k - 1) // m). A
    history with no seasonal difference (exactly one season, or a single value) gives no
    deviation to measure: nan bounds, as statsmodels' and R's, not an interval of width 0."""
    y = np.asarray(history, dtype=np.float64)
    m = seasonality if len(y) >= seasonality else 1
    k = np.arange(horizon)
    mean = y[len(y) - m + (k % m)]
    resid = y[m:] - y[:-m]
    sigma = root_mean_square(resid) if len(resid) else math.nan
    spread = Z80 * sigma * np.sqrt(1 + k // m)
    return Forecast(mean, mean - spread, mean + spread)


def root_mean_square(x: np.ndarray) -> float:
    """``sqrt(mean(x**2))`` of a non-empty array, finite for any finite ``x``: the squares
    of values past 1.3e154 overflow float64 (and those below 1.5e-154 lose their digits
    to underflow), so there the values are first divided by their largest magnitude.
    Elsewhere it is the plain formula, bit for bit."""
    with np.errstate(over="ignore", under="ignore"):
        square = np.mean(x**2)
    if np.isfinite(square) and (square >= np.finfo(np.float64).tiny or not x.any()):
        return float(np.sqrt(square))
    big = float(np.max(np.abs(x)))
    with np.errstate(under="ignore"):  # squares of values far below the largest: 0
        return big * float(np.sqrt(np.mean((x / big) ** 2)))


class Window(NamedTuple):
    """One scored forecast: series ``series`` from ``origin`` (its first value forecast)."""

    series: int
    origin: int


def windows(lengths: Sequence[int], horizon: int, origins: int, split: str) -> list[Window]:
    """The scored forecasts of a split: the test's ``origins`` last origins of each series
    (the last ``horizon`` values, then one step earlier, ...), validation's the same number
    just before the test's values; an origin needs 2 values of history."""
    out = []
    for i, n in enumerate(lengths):
        first_test = n - horizon - origins + 1
        for j in range(origins):
            o = n - horizon - j if split == "test" else first_test - horizon - j
            if o >= 2:
                out.append(Window(i, o))
    return out


def training_end(n: int, horizon: int, origins: int) -> int:
    """Values of a series of length n that training may see (before validation's)."""
    return max(0, n - 2 * horizon - 2 * origins + 2)


def shown(value: float, digits: int = 3) -> str:
    """A score for a line of output: ``digits`` decimals, but in exponent notation from a
    magnitude of 1e6 on, where a diverged model's MASE of 1e200 took 200 digits."""
    return f"{value:.{digits}e}" if abs(value) >= 1e6 else f"{value:.{digits}f}"


@dataclass
class Scores:
    """Metrics of a set of forecasts."""

    mase: float
    smape: float
    coverage: float  # share of the actual values inside the 80 % intervals
    windows: int
    skipped: int = 0  # windows left out of MASE: a constant history (scale 0)

    def line(self) -> str:
        return f"MASE {shown(self.mase)}, sMAPE {self.smape:.2f}%, 80% coverage {self.coverage:.1%}"


def score(
    values: Sequence[np.ndarray],
    scored: Sequence[Window],
    forecasts: Sequence[Forecast],
    horizon: int,
    seasonality: int,
) -> Scores:
    """MASE (mean over windows), sMAPE and interval coverage (over all values)."""
    each = window_mases(values, scored, forecasts, horizon, seasonality)
    # Only the windows of scale 0 are left out: a non-finite forecast makes MASE nan or
    # inf, where it was dropped and counted as a constant history.
    kept = history_scales(values, scored, seasonality) > 0
    mases = each[kept]
    skipped = len(each) - len(mases)
    smapes, inside, count = [], 0, 0
    for w, f in zip(scored, forecasts, strict=True):
        actual = values[w.series][w.origin : w.origin + horizon]
        smapes.append(smape(actual, f.mean[:horizon]))
        inside += int(np.sum((actual >= f.lower[:horizon]) & (actual <= f.upper[:horizon])))
        count += len(actual)
    return Scores(
        float(np.mean(mases)) if len(mases) else float("nan"),
        float(np.mean(smapes)),
        inside / max(count, 1),
        len(scored),
        skipped,
    )


def window_mases(
    values: Sequence[np.ndarray],
    scored: Sequence[Window],
    forecasts: Sequence[Forecast],
    horizon: int,
    seasonality: int,
) -> np.ndarray:
    """Each forecast's MASE, in the order of ``scored``; nan where the history before
    its origin has no change at the seasonal lag (scale 0)."""
    out = np.full(len(scored), np.nan)
    scales = history_scales(values, scored, seasonality)
    for j, (w, f, scale) in enumerate(zip(scored, forecasts, scales, strict=True)):
        if scale > 0:
            actual = values[w.series][w.origin : w.origin + horizon]
            out[j] = np.mean(np.abs(actual - f.mean[:horizon])) / scale
    return out


def history_scales(
    values: Sequence[np.ndarray], scored: Sequence[Window], seasonality: int
) -> np.ndarray:
    """:func:`mase_scale` of the history before each window's origin."""
    return np.array([mase_scale(values[w.series][: w.origin], seasonality) for w in scored])


def distinct_horizons(scored: Sequence[Window], horizon: int) -> float:
    """How many independent forecasts the windows are worth: the distinct values they
    score, counted in horizons. Origins one step apart share all but one of their values
    (R origins of one series score R + H - 1 values: (R + H - 1) / H horizons); a set of
    many series with one origin each counts one per series."""
    per_series: dict[int, int] = {}
    for w in scored:
        per_series[w.series] = per_series.get(w.series, 0) + 1
    return sum((r + horizon - 1) / horizon for r in per_series.values())


class AnchorCheck(NamedTuple):
    """Whether the network's forecasts beat its anchor's on validation (:func:`anchor_check`)."""

    kept: bool  # the network's point forecasts are kept
    network: float  # its validation MASE
    anchor: float  # the anchor's alone
    error: float  # the standard error of the difference


def anchor_check(
    network: np.ndarray, anchor: np.ndarray, horizons: float, margin: float
) -> AnchorCheck:
    """Keep the network only where it beats the simpler forecast it corrects by ``margin``
    standard errors: the mean of the paired differences of MASE (anchor minus network,
    per validation window) against their standard deviation over sqrt(``horizons``), the
    independent forecasts the windows hold (:func:`distinct_horizons`). Preferring the
    simpler model unless the more complex one is better by a standard error is the
    one-standard-error rule of model selection (Breiman et al. 1984; Hastie, Tibshirani &
    Friedman 2009, 7.10.1); the task asks for two (``--margin``): on a single short
    series a few overlapping windows cannot tell a network that learnt the series from
    one that fitted its training values, and such a network forecasts worse than its
    anchor as often as better. With one window to compare the error is taken as 0; with
    none, the anchor is kept."""
    ok = np.isfinite(network) & np.isfinite(anchor)
    if not ok.any():  # nothing to compare: keep the simpler forecast
        return AnchorCheck(False, math.nan, math.nan, math.nan)
    gain = anchor[ok] - network[ok]
    error = sample_deviation(gain) / math.sqrt(horizons) if len(gain) > 1 else 0.0
    kept = float(np.mean(gain)) > margin * error
    return AnchorCheck(kept, float(np.mean(network[ok])), float(np.mean(anchor[ok])), error)


def sample_deviation(x: np.ndarray) -> float:
    """``np.std(x, ddof=1)`` of two or more values, finite for any finite ``x``: where the
    squares of the deviations overflow float64 (past 1.3e154) the values are first
    divided by their largest magnitude; elsewhere the plain formula, bit for bit."""
    with np.errstate(over="ignore", invalid="ignore"):
        plain = float(np.std(x, ddof=1))
    if math.isfinite(plain):
        return plain
    big = float(np.max(np.abs(x)))
    return big * float(np.std(x / big, ddof=1))


def model_forecasts(
    model: ForecastModel, values: Sequence[np.ndarray], scored: Sequence[Window]
) -> list[Forecast]:
    """The model's forecast for every window: one pass over each series."""
    by_series: dict[int, list[int]] = {}
    for w in scored:
        by_series.setdefault(w.series, []).append(w.origin)
    order = sorted(by_series)
    last = [max(by_series[i]) for i in order]
    prepared = [
        prepare_series(values[i][:o], model.config) for i, o in zip(order, last, strict=True)
    ]
    steps = [[o - 1 for o in by_series[i]] for i in order]
    out = _run(model, prepared, steps)
    table = {}
    for i, bands in zip(order, out, strict=True):
        for j, o in enumerate(by_series[i]):
            table[i, o] = Forecast(*(b[j] for b in bands))
    return [table[w.series, w.origin] for w in scored]


def calibration(
    values: Sequence[np.ndarray],
    scored: Sequence[Window],
    forecasts: Sequence[Forecast],
    horizon: int,
) -> float:
    """The factor c by which the intervals of ``forecasts`` must be stretched (c > 1) or
    shrunk about their point forecasts to cover 80 % of the actual values: the
    split-conformal quantile (Vovk et al. 2005; Stankeviciute et al. 2021) of how far
    each value lies out along its side of the interval. Clipped to [0.05, 100]."""
    ratios = [np.zeros(0)]
    for w, f in zip(scored, forecasts, strict=True):
        a = values[w.series][w.origin : w.origin + horizon]
        ratios.append(outside(a, f, np.arange(len(a))))
    return conformal_factor(np.concatenate(ratios))


def recalibrated(
    model: ForecastModel,
    values: Sequence[np.ndarray],
    scored: Sequence[Window],
    origins: int,
    starts: Sequence[int] | None = None,
    adapt: float = 0.0,
    adapt_from: int | None = None,
) -> list[Forecast]:
    """The model's forecast for every window, each 80 % interval calibrated on **every
    forecast whose outcome is known at its origin**: conformal (as :func:`calibration`)
    over the forecasts of every series from origin ``starts[i]`` on (default: its first
    validation origin, the first whose values training never saw), counting the values
    before the scored origin's distance from the end of its series (the series of a set
    end together, as in M4 and the Monash archive). A forecast with no outcome known yet
    keeps the model's validated ``interval_scale``. With ``adapt`` > 0 the quantile's
    level adapts to the misses as the values arrive (adaptive conformal inference; 0,
    the default: split conformal at 80 %): :class:`rnnkit.deploy.Recalibration`, over
    every series at once, one step of time after another. The level stays at 80 % over
    the values before the last ``adapt_from`` of each series (default ``horizon +
    origins - 1``: those before the first test origin, the validation period, which is
    split conformal's calibration set) and adapts from there on, as a forecaster
    deployed at the first test origin would: over a few dozen validation values a
    moving level only adds noise (docs/forecast.md, "An adaptive level, measured").

    The validation windows alone are 10-12 overlapping windows of a single series; by a
    test origin the model has also forecast from every origin between them and it, and
    more values are known: its most recent errors, which say how wide its intervals must
    be now. A rolling-origin evaluation that grows its calibration set as it goes, as the
    statistical peers are refitted at every origin; :class:`OnlineForecaster` does the
    same as values arrive (``recalibrate=True``)."""
    # Checked before any forecast is made: a string failed late in Python's words
    # ("'<' not supported ...") and True or 2.5 were taken as counts.
    if adapt_from is not None and not is_count(adapt_from):
        raise ValueError(
            f"recalibrated: adapt_from must be a count of values >= 0 or None; got {adapt_from!r}"
        )
    h = model.config.horizon
    c = float(model.interval_scale)
    if starts is None:
        starts = [max(2, len(y) - 2 * h - 2 * origins + 2) for y in values]
    known = [Window(i, o) for i, y in enumerate(values) for o in range(starts[i], len(y))]
    # The head's own intervals (the stored factor undone), for the known and the scored.
    todo = list(dict.fromkeys([*known, *scored]))
    fcs = model_forecasts(model, values, todo)
    raw = {w: scaled(f, 1 / c) for w, f in zip(todo, fcs, strict=True)}
    # Time runs as the distance e from the end of the series: at e, the values beyond e
    # are known. Each known forecast's values arrive at the distances of their targets.
    arriving: dict[int, list[tuple[int, float]]] = {}  # e -> [(its forecast's origin e, ratio)]
    for w in known:
        y, f = values[w.series], raw[w]
        t = np.arange(w.origin, min(w.origin + h, len(y)))
        for at, r in zip(len(y) - t, outside(y[t], f, t - w.origin), strict=True):
            arriving.setdefault(int(at), []).append((len(y) - w.origin, float(r)))
    if adapt_from is None:
        adapt_from = h + origins - 1
    # The level holds at 80 % over the time steps before adapt_from whose values arrive.
    state = Recalibration(h, c, adapt, hold=sum(e > adapt_from for e in arriving))
    factor: dict[int, float] = {}  # the factor a forecast from distance e is given
    for e in range(max(len(y) for y in values), -1, -1):
        factor[e] = state.factor
        here = arriving.get(e, [])
        state.score([r for _, r in here], [factor[o] for o, _ in here])
    return [scaled(raw[w], factor[len(values[w.series]) - w.origin]) for w in scored]


def recalibrates(calibrate: bool, train_until: str) -> bool:
    """Whether a run's later forecasts are :func:`recalibrated`: when it calibrates on
    validation (``--calibrate``, the default) and is not a refit, whose known values are
    its training data and which keeps the factor it was given."""
    return calibrate and train_until != "test"


def naive_forecasts(
    values: Sequence[np.ndarray], scored: Sequence[Window], horizon: int, seasonality: int
) -> list[Forecast]:
    return [seasonal_naive(values[w.series][: w.origin], horizon, seasonality) for w in scored]


# ---- training batches ---------------------------------------------------------------------


class Batch(NamedTuple):
    """Training windows: inputs after a no-gradient burn-in over the values before them."""

    burn: Tensor  # (Tb, B, F) the values before each window, right-padded
    burn_lengths: Tensor  # (B,)
    x: Tensor  # (T, B, F)
    lengths: Tensor  # (B,)
    target: Tensor  # (T, B, h) in output units
    mask: Tensor  # (T, B, h) bool: a target inside the training values
    # Among several processes, per member: the global batch's number of targets over the
    # number of processes (Windows); None in one process.
    share: Tensor | None = None


class Windows(SeededBatches):
    """Random training windows from one seeded generator; every process draws the global
    batch and keeps its rows, so the batches do not depend on the number of processes.

    Among ``processes`` > 1 a batch also carries, per member, the global batch's number of
    targets over the number of processes (``share``), by which :meth:`ForecastTask.loss`
    divides this process's summed loss: DDP's average of the processes' losses is then the
    mean over every target of the global batch - one process's loss - although windows
    of different spans give the processes different numbers of targets."""

    def __init__(
        self,
        prepared: list[Prepared],
        ends: list[int],
        context: int,
        batch_size: int,
        seed: int,
        rows: slice,
        members: int = 1,
        processes: int = 1,
    ) -> None:
        self.prepared, self.ends, self.context = prepared, ends, context
        self.batch_size, self.rows, self.members = batch_size, rows, members
        self.processes = processes
        self.eligible = [i for i, e in enumerate(ends) if e >= 3]
        super().__init__(seed)
        self.targets = [_targets(p, e) for p, e in zip(prepared, ends, strict=True)]

    def __next__(self) -> Batch:
        if self.members == 1:
            return self._draw()
        # An ensemble's members each train on their own windows, as separate runs would;
        # their batches come one after the other on the batch axis.
        return _concat([self._draw() for _ in range(self.members)])

    def _draw(self) -> Batch:
        g = self.generator
        picks = torch.randint(len(self.eligible), (self.batch_size,), generator=g).tolist()
        u = torch.rand(self.batch_size, generator=g, dtype=torch.float64).tolist()
        every = [self.eligible[k] for k in picks]
        spots = [self._window(i, r) for i, r in zip(every, u, strict=True)]
        series, starts = every[self.rows], [a for a, _ in spots][self.rows]
        spans = [n for _, n in spots][self.rows]
        B, h = len(series), self.prepared[0].anchor.shape[1]
        Tb, T = max(starts), max(spans)
        F_ = self.prepared[0].x.shape[1]
        burn = torch.zeros(Tb, B, F_)
        x = torch.zeros(T, B, F_)
        target = torch.zeros(T, B, h)
        mask = torch.zeros(T, B, h, dtype=torch.bool)
        for b, (i, a, n) in enumerate(zip(series, starts, spans, strict=True)):
            p = self.prepared[i]
            burn[:a, b] = torch.from_numpy(p.x[:a])
            x[:n, b] = torch.from_numpy(p.x[a : a + n])
            tgt, ok = self.targets[i]
            target[:n, b] = tgt[a : a + n]
            mask[:n, b] = ok[a : a + n]
        share = None
        if self.processes > 1:  # the targets of every process's windows
            count = sum(
                int(self.targets[i][1][a : a + n].sum())
                for i, (a, n) in zip(every, spots, strict=True)
            )
            share = torch.tensor([count / self.processes])
        return Batch(burn, torch.tensor(starts), x, torch.tensor(spans), target, mask, share)

    def _window(self, i: int, r: float) -> tuple[int, int]:
        """The start and span of the window of series ``i`` at the uniform draw ``r``."""
        last = self.ends[i] - 1  # positions 0 .. last - 1 have a target
        a = int(r * (max(0, last - self.context) + 1))
        return a, min(self.context, last - a)


def _concat(batches: list[Batch]) -> Batch:
    """Batches side by side on the batch axis, each time axis padded to the longest."""

    def cat(tensors: list[Tensor]) -> Tensor:
        T = max(t.size(0) for t in tensors)
        return torch.cat(
            [F.pad(t, (0, 0) * (t.dim() - 1) + (0, T - t.size(0))) for t in tensors], 1
        )

    return Batch(
        cat([b.burn for b in batches]), torch.cat([b.burn_lengths for b in batches]),
        cat([b.x for b in batches]), torch.cat([b.lengths for b in batches]),
        cat([b.target for b in batches]), cat([b.mask for b in batches]),
        _cat_shares([b.share for b in batches]),
    )  # fmt: skip


def _cat_shares(shares: list[Tensor | None]) -> Tensor | None:
    """The members' shares side by side (None in one process)."""
    given = [s for s in shares if s is not None]
    return torch.cat(given) if given else None


def _targets(p: Prepared, end: int) -> tuple[Tensor, Tensor]:
    """Per step t and step ahead k: the value t + 1 + k in output units, and whether it
    is a training value (before ``end``) of a step with some history (t >= 1)."""
    target, ok = _targets64(p, end)
    return torch.from_numpy(target.astype(np.float32)), torch.from_numpy(ok)


def _targets64(p: Prepared, end: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_targets` in float64, before the network's float32 (0 where not a target)."""
    n, h = p.anchor.shape
    t = np.arange(n)[:, None] + 1 + np.arange(h)[None, :]
    ok = (t < end) & (np.arange(n)[:, None] >= 1)
    future = p.y[np.minimum(t, n - 1)]
    with np.errstate(over="ignore"):  # past float64: refused by check_targets
        target = np.where(ok, (future - p.anchor) / p.unit[:, None], 0.0)
    return target, ok


# The largest training target accepted, in output units (a value's distance from its
# anchor forecast over d_t), per head. The network trains in float32 (largest 3.4e38).
# The pinball loss grows linearly with a target and its gradient not at all: at 1e15 the
# loss summed over a batch's targets stays finite up to 1e23 targets (trained with one at
# 1e36, but the cast to float32 overflows past 3.4e38). The Gaussian loss is the squared
# error over sigma^2, and its gradient e^2 / sigma^3 is squared again by Adam and by norm
# clipping: at 1e8 and the head's initial sigma (softplus(0) = 0.69) that is 3e16, squared
# 1e33 (trained with one target at 1e9 in one-window batches; at 1e10 steps were skipped
# as non-finite). The shipped sets reach at most 787 (docs/forecast.md, "Your own data").
TARGET_LIMITS = {"quantile": 1e15, "gaussian": 1e8}


def check_targets(
    data: Any, values: Sequence[np.ndarray], ends: Sequence[int], config: ForecastConfig
) -> None:
    """Refuse training values too far from their anchor forecasts, in units of d_t, to
    be float32 targets whose losses stay finite (:data:`TARGET_LIMITS`): one such value
    made every step's loss infinite, and training stopped with no model."""
    limit = TARGET_LIMITS[config.head]
    for i, (y, end) in enumerate(zip(values, ends, strict=True)):
        p = prepare_series(y[: max(end, 1)], config)  # as Windows' targets are made
        target, ok = _targets64(p, end)
        size = np.where(ok, np.abs(target), 0.0)
        if not np.any(size > limit):  # (an inf target too)
            continue
        rows, cols = np.nonzero(size > limit)  # origin t - 1 and step ahead k - 1
        targets = rows + 1 + cols  # the value each one is
        at = int(targets.min())  # the earliest value too far out, at its farthest
        ratio = float(size[rows, cols][targets == at].max())
        raise ValueError(
            f"{data.source}: value {at + 1} of series {data.names[i]!r} is {y[at]:g}, "
            f"{ratio:.2g} units from its anchor forecast, a unit being the mean absolute "
            "(seasonal) change of the values before it; the network's targets are float32"
            + (" and --head gaussian squares them" if config.head == "gaussian" else "")
            + f", so at most {limit:g} units are accepted"
        )


# ---- the task ---------------------------------------------------------------------------


class ForecastTask(Task):
    name = "forecast"
    summary = (
        "time-series forecasting: one global recurrent model over many series, 80% "
        "intervals, scored against seasonal naive (default: M1 yearly)"
    )
    Options = ForecastOptions
    train_defaults: ClassVar[dict[str, Any]] = {
        "steps": 1500,
        "lr": 3e-3,
        "weight_decay": 0.01,
        "warmup_steps": 50,
        "eval_every": 100,
        "clip_norm": 1.0,
    }
    metric = "mase"
    higher_is_better = False
    item_name = "windows"
    extra_files = ("forecast.png",)
    # runs before --adapt and --test-data
    added_options: ClassVar[dict[str, Any]] = {"adapt": 0.0, "test_data": None}

    options: ForecastOptions

    @property
    def selects(self) -> bool:
        """A refit (``--train-until test``) trains on the validation windows: they choose
        nothing, and the model kept is the last."""
        return self.options.train_until != "test"

    # ---- data -------------------------------------------------------------------------

    def prepare(self, train: TrainConfig, ctx: distributed.Context) -> None:
        o = self.options
        distributed.rows(ctx, o.batch_size)  # divisible by the number of processes
        if not self.derived:
            data = read_new(o)
            self.derived = derive(o, data)
        else:
            check_derived(self.derived, "derived")
            data = read_recorded(self.derived)
        self.data = data
        self.values = [np.asarray(v, dtype=np.float64) for v in data.values]
        d = self.derived
        self.config = model_config(o, d)
        h, m, r = d["horizon"], d["seasonality"], d["origins"]
        lengths = [len(v) for v in self.values]
        self.valid = windows(lengths, h, r, "validation")
        self.test = windows(lengths, h, r, "test")
        if o.train_until == "test":  # a refit: every value before the first test origin
            self.ends = [max(0, n - h - r + 1) for n in lengths]
        else:
            self.ends = [training_end(n, h, r) for n in lengths]
        if not self.valid or not any(e >= 3 for e in self.ends):
            need = 2 * h + 2 * r + 1
            raise ValueError(
                f"{data.source}: the series are too short for --horizon {h} with --origins "
                f"{r}: a series needs at least {need} values (training, validation and test "
                f"each need their share); the longest has {max(lengths)}"
            )
        longest = max(w.origin for w in self.test)
        if m > 1 and m >= longest:
            # Seasonal naive and MASE's scale would fall back to lag 1 at every origin
            # (mase_scale, seasonal_naive): the season named would be used nowhere.
            given = f"--seasonality {m}" if o.seasonality else f"its seasonality ({m})"
            raise ValueError(
                f"{data.source}: {given} is as long as every series' history at its last "
                f"test origin or longer (the longest holds {longest} values), so no "
                f"forecast could use the season; give --seasonality below {longest}, or 1 "
                "for none"
            )
        if not any(mase_scale(self.values[w.series][: w.origin], m) > 0 for w in self.valid):
            # Else every validation MASE is 0/0: no model would ever be kept (or saved).
            raise ValueError(
                f"{data.source}: MASE, the validation metric, is undefined: no series "
                f"changes at the seasonal lag (m = {m}) in the values before its validation "
                "forecasts, and MASE divides by the mean absolute change at that lag"
            )
        check_targets(data, self.values, self.ends, self.config)
        self.naive_valid = score(
            self.values, self.valid, naive_forecasts(self.values, self.valid, h, m), h, m
        )
        # What the network must beat, window by window (--margin).
        alone = anchor_forecasts(self.values, self.valid, h, m, self.config.anchor)
        self.anchor_valid = window_mases(self.values, self.valid, alone, h, m)
        self.check: AnchorCheck | None = None

    def describe(self) -> str:
        d = self.derived
        positions = sum(max(0, e - 1) for e in self.ends)
        refit = (
            " (a refit: training sees the validation values too, and they choose nothing)"
            if self.options.train_until == "test"
            else ""
        )
        return (
            f"{self.data.describe()}; horizon {d['horizon']}, seasonality "
            f"{d['seasonality']}{self.season_source()}, {d['origins']} origin(s) per series: "
            f"{len(self.test)} test "
            f"and {len(self.valid)} validation forecasts, {positions:,} training "
            f"positions{refit}{self.unscored()}; seasonal naive on validation: "
            f"{self.naive_valid.line()}; {anchor_line(d)}"
        )

    def season_source(self) -> str:
        """Where the seasonality came from, when not from the data as read now: the
        option, or the run's record (a run started before its file's dates gave one)."""
        m, own = self.derived["seasonality"], self.data.seasonality or 1
        if m == own:
            return ""
        if self.options.seasonality:
            return " (--seasonality)"
        return f" (as the run recorded it; its data now gives {own})"

    def unscored(self) -> str:
        """The series with no test forecast, too short for one, named (they are left out
        of the test's scores, which would else not say so)."""
        scored = {w.series for w in self.test}
        names = [n for k, n in enumerate(self.data.names) if k not in scored]
        if not names:
            return ""
        shown = ", ".join(repr(n) for n in names[:5]) + (", ..." if len(names) > 5 else "")
        return (
            f" ({len(names)} series too short for a test forecast, which needs "
            f"{self.derived['horizon'] + 2} values, left out of the test: {shown})"
        )

    # ---- model ------------------------------------------------------------------------

    def build_model(self) -> ForecastModel:
        check_derived(self.derived, "derived")
        return ForecastModel(model_config(self.options, self.derived))

    def title(self, model: nn.Module) -> str:
        o, d = self.options, self.derived
        where = Path(d["source"].get("path", "")).name or d["source"].get("dataset", "")
        many = f"{o.members} x " if o.members > 1 else ""
        return (
            f"forecast {where}, h = {d['horizon']}: {many}{o.cell.upper()} {o.num_layers}x"
            f"{o.hidden_size}, {o.head} head"
        )

    # ---- training ---------------------------------------------------------------------

    def batches(self, train: TrainConfig, ctx: distributed.Context) -> Windows:
        o = self.options
        prepared = [
            prepare_series(v[: max(e, 1)], self.config)
            for v, e in zip(self.values, self.ends, strict=True)
        ]
        return Windows(
            prepared, self.ends, o.context, o.batch_size, train.seed,
            distributed.rows(ctx, o.batch_size), o.members, ctx.world_size,
        )  # fmt: skip

    def loss(self, net: nn.Module, batch: Any, device: Any) -> Tensor:
        b: Batch = batch
        # The task's own model, or DistributedDataParallel's wrapper around it.
        model = cast(ForecastModel, getattr(net, "module", net))
        K = model.config.members
        state = None
        if b.burn.size(0) > 0:
            with torch.no_grad():
                if K == 1:
                    _, state = model.rnn(b.burn.to(device), lengths=b.burn_lengths)
                else:  # each member over the values before its own windows
                    assert isinstance(model.rnn, Members)
                    burns = zip(model.rnn.layers, b.burn.to(device).chunk(K, 1),
                                b.burn_lengths.chunk(K), strict=True)  # fmt: skip
                    state = model.rnn.join_state([layer(x, lengths=n)[1] for layer, x, n in burns])
        target, mask = b.target.to(device), b.mask.to(device)
        shares = [None] * K if b.share is None else [float(v) for v in b.share]
        if K == 1:
            raw, _ = net(b.x.to(device), state, lengths=b.lengths)
            return _shared(output_loss(model, raw, target, mask), mask, shares[0])
        # Each member scored on its own windows (the mean of their losses), so that the
        # members train as independent networks would - not as one mixture fitted together.
        raws, _ = net(b.x.to(device), state, lengths=b.lengths, members=True)
        losses = zip(raws, target.chunk(K, 1), mask.chunk(K, 1), shares, strict=True)
        return torch.stack(
            [_shared(output_loss(model, r, t, m), m, s) for r, t, m, s in losses]
        ).mean()

    def items(self, batch: Any) -> int:
        return int(batch.lengths.numel())

    # ---- evaluation -------------------------------------------------------------------

    def scores(self, model: nn.Module, split: str) -> tuple[Scores, Scores]:
        """(model, seasonal naive) on the validation or test windows."""
        assert isinstance(model, ForecastModel)
        h, m = self.derived["horizon"], self.derived["seasonality"]
        scored = self.valid if split == "validation" else self.test
        if split == "test":
            fcs = self.test_forecasts(model, scored)
        else:  # scored with the factor evaluate() fitted on these windows
            fcs = model_forecasts(model, self.values, scored)
        ours = score(self.values, scored, fcs, h, m)
        if split == "validation":
            return ours, self.naive_valid
        naive = naive_forecasts(self.values, scored, h, m)
        return ours, score(self.values, scored, naive, h, m)

    @property
    def recalibrates(self) -> bool:
        """Whether test intervals are calibrated on every outcome known at their origin."""
        return recalibrates(self.options.calibrate, self.options.train_until)

    def test_forecasts(
        self, model: ForecastModel, scored: Sequence[Window], adapt: float | None = None
    ) -> list[Forecast]:
        """The forecasts the test scores and the plot show (``adapt``: :func:`recalibrated`'s;
        default ``--adapt``)."""
        if self.recalibrates:
            # ForecastOptions.__post_init__ sets a step where --adapt was not given.
            assert self.options.adapt is not None
            a = float(self.options.adapt) if adapt is None else adapt
            return recalibrated(model, self.values, scored, self.derived["origins"], adapt=a)
        return model_forecasts(model, self.values, scored)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Validation MASE, sMAPE and interval coverage of the forecasts this step would
        keep: the network's, or its anchor's where the network does not beat them by
        ``--margin`` (:func:`anchor_check`; ``network_mase`` is the network's own and
        ``correction`` the verdict); with ``--calibrate`` the interval scale is set first
        (the head's own coverage is reported as ``raw_coverage``)."""
        assert isinstance(model, ForecastModel)
        h, m = self.derived["horizon"], self.derived["seasonality"]
        o = self.options
        model.interval_scale.fill_(1.0)
        model.correction.fill_(1.0)
        raw = model_forecasts(model, self.values, self.valid)
        network = window_mases(self.values, self.valid, raw, h, m)
        self.check = None
        if self.selects:  # (a refit's validation values are training data: no check)
            self.check = anchor_check(
                network, self.anchor_valid, distinct_horizons(self.valid, h), o.margin
            )
            if not self.check.kept:  # the anchor's point forecasts, the network's widths
                model.correction.fill_(0.0)
                raw = model_forecasts(model, self.values, self.valid)
        if o.train_until == "test":  # the validation values were trained on: the given scale
            c = 1.0 if o.interval_scale is None else o.interval_scale
        else:
            c = calibration(self.values, self.valid, raw, h) if o.calibrate else 1.0
        model.interval_scale.fill_(c)
        ours = score(self.values, self.valid, [scaled(f, c) for f in raw], h, m)
        return {
            "mase": ours.mase,
            "smape": ours.smape,
            "coverage": ours.coverage,
            "raw_coverage": score(self.values, self.valid, raw, h, m).coverage,
            "interval_scale": c,
            "network_mase": float(np.nanmean(network)) if np.isfinite(network).any() else math.nan,
            "correction": float(model.correction),
        }

    def show(self, model: nn.Module, metrics: dict[str, float]) -> list[str]:
        lines = [f"seasonal naive on validation: {self.naive_valid.line()}"]
        if self.options.train_until == "test":
            lines.append("(a refit: the validation values are training data)")
        elif self.options.calibrate:
            lines.append(
                f"80% intervals scaled by {metrics['interval_scale']:.3g}: the head's own "
                f"covered {metrics['raw_coverage']:.1%} of the validation values"
            )
        if self.check is not None:
            k = self.check
            verdict = (
                "kept"
                if k.kept
                else f"not lower by {self.options.margin:g} standard error(s): the "
                "model forecasts its anchor (with the network's intervals)"
            )
            lines.append(
                f"the network's MASE {shown(k.network)}, its anchor's alone "
                f"{shown(k.anchor)} (standard error of the difference {shown(k.error)}): "
                f"{verdict}"
            )
        return lines

    def finish(self, model: nn.Module, run_dir: Any) -> list[str]:
        lines = self.test_lines(model)
        path = self.plot(model, Path(run_dir) / "forecast.png")
        return [*lines, f"test forecasts of {min(PLOTTED, len(self.values))} series: {path}"]

    def report(self, model: nn.Module, run_dir: Any, out_dir: Any) -> list[str]:
        lines = self.test_lines(model)
        path = self.plot(model, report_folder(out_dir, "forecast.png") / "forecast.png")
        return [*lines, f"figure: {path}"]

    def test_lines(self, model: nn.Module) -> list[str]:
        ours, naive = self.scores(model, "test")
        d = self.derived
        test = d["source"].get("test")
        if test is not None:
            what = f"{Path(test['path']).name}: the next {d['horizon']} values of each of "
            what += f"{len(self.values)} series"
        elif d["origins"] == 1:
            what = f"the last {d['horizon']} values of each of {len(self.values)} series"
        else:
            what = f"{d['origins']} rolling origins x horizon {d['horizon']}"
        verdict = "better than" if ours.mase < naive.mase else "not better than"
        lines = [
            f"test ({what}, {ours.windows} forecasts):",
            f"  model:          {ours.line()}",
            f"  seasonal naive: {naive.line()} (m = {d['seasonality']})",
        ]
        anchor = model.config.anchor if isinstance(model, ForecastModel) else ANCHORS[0]
        if anchor != ANCHORS[0]:  # what the network adds to the forecast it corrects
            alone = anchor_mase(self.values, self.test, d["horizon"], d["seasonality"], anchor)
            if alone is not None:
                lines.append(f"  its anchor alone ({anchor}): MASE {shown(alone)}")
        if isinstance(model, ForecastModel) and float(model.correction) == 0.0:
            lines.append(
                f"  (the model's point forecasts are its anchor's, {anchor}: the network "
                "did not beat them on validation by --margin)"
            )
        step = float(self.options.adapt or 0.0)
        if self.recalibrates and step > 0:
            lines.append(
                "  (80% intervals recalibrated at each origin, their level adapting from "
                f"the first test origin on: --adapt {step:g})"
            )
        lines.append(
            f"  the model is {verdict} seasonal naive in MASE ({shown(ours.mase / naive.mase, 2)}x "
            "its error)"
        )
        return lines

    def plot(self, model: nn.Module, path: Path) -> Path:
        """The test forecasts of the first series with their intervals."""
        assert isinstance(model, ForecastModel)
        h = self.derived["horizon"]
        picks = [w for w in self.test if w.origin == len(self.values[w.series]) - h][:PLOTTED]
        fcs = self.test_forecasts(model, picks)
        return plot_forecasts(
            path,
            [self.data.names[w.series] for w in picks],
            [self.values[w.series] for w in picks],
            [w.origin for w in picks],
            fcs,
            f"{self.title(model)}: test forecasts, 80% intervals",
        )


# ---- data of a run ----------------------------------------------------------------------


def source_of(o: ForecastOptions) -> dict[str, Any]:
    """How to read the run's data again (an absolute path, or a dataset's name; and the
    test file's absolute path, read with the same format and time column)."""
    if o.test_data is not None and o.data is None:
        raise ValueError(
            "--test-data needs --data (the training file whose series it continues); got "
            f"--test-data {o.test_data} without --data"
        )
    if o.data is None:
        if o.format != "auto" or o.time_column is not None:
            raise ValueError("--format and --time-column describe --data; give --data FILE")
        return {"dataset": o.dataset}
    if o.dataset != DATASET_NAMES[0]:
        raise ValueError(f"give --data or --dataset, not both; got --data {o.data} and "
                         f"--dataset {o.dataset}")  # fmt: skip
    source: dict[str, Any] = {
        "path": os.path.abspath(o.data),
        "format": o.format,
        "time_column": o.time_column,
    }
    if o.test_data is not None:
        source["test"] = {"path": os.path.abspath(o.test_data)}
    return source


def read_new(o: ForecastOptions) -> Any:
    """A new run's data, read as given (messages name the files as the user did; the run
    records them absolute): ``--data``, or the shipped set, followed by ``--test-data``'s
    values where given (:func:`rnnkit.data.series.join_test`)."""
    from rnnkit.data.series import join_test
    from rnnkit.train.files import refuse_same_file

    source = source_of(o)
    if o.data is None:
        return read_given(source)
    data = read_given({**source, "path": o.data})
    if o.test_data is None:
        return data
    test = read_given({**source, "path": o.test_data}, "--test-data")
    refuse_same_file(
        "--test-data", o.test_data, "--data", o.data, "a test of the last values of --data"
    )
    return join_test(data, test, o.horizon)


def read_source(source: dict[str, Any]) -> Any:
    from rnnkit.data.series import load_dataset, read_series

    if "dataset" in source:
        return load_dataset(source["dataset"])
    return read_series(source["path"], source.get("format", "auto"), source.get("time_column"))


def read_recorded(derived: dict[str, Any]) -> Any:
    """The data a run recorded (``derived["source"]``), refused if its values differ from
    those it started with: resuming, evaluating or forecasting from other values would
    pass them off as the run's own."""
    from rnnkit.data.series import join_test

    source = derived["source"]
    data = read_source(source)
    if checksum(data.values) != derived.get("checksum"):
        raise changed(data.source)
    if source.get("test") is None:
        return data
    test = read_source({**source, "path": source["test"]["path"]})
    joined = join_test(data, test, derived["horizon"])
    if checksum(held_values(joined)) != derived.get("test_checksum"):
        raise changed(test.source)
    return joined


def changed(where: str) -> ValueError:
    return ValueError(
        f"{where} has changed since this run started (its values differ from the ones "
        "recorded in config.json); start a new run"
    )


def held_values(data: Any) -> list[list[float]]:
    """The values a test file added to each series (:func:`rnnkit.data.series.join_test`),
    in the training file's order of series; empty ones without a test file."""
    held = int(data.info.get("test_values", 0))
    return [v[len(v) - held :] for v in data.values] if held else [[] for _ in data.values]


def read_given(source: dict[str, Any], flag: str = "--data") -> Any:
    """:func:`read_source` of a file the user names with ``flag`` now: a missing one says
    so by the flag (a run's recorded file that is gone says which run needs it)."""
    try:
        return read_source(source)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{flag}: {err}; expected a .tsf or .csv file") from None


def checksum(values: Sequence[Sequence[float]]) -> str:
    h = hashlib.sha256()
    for v in values:
        h.update(np.asarray(v, dtype=np.float64).tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]


def derive(o: ForecastOptions, data: Any) -> dict[str, Any]:
    """What a run takes from its data: horizon, seasonality, origins, scale window."""
    horizon = o.horizon or data.horizon
    if horizon is None:
        raise ValueError(
            f"{data.source} does not say how far to forecast: give --horizon (e.g. 6 for "
            "yearly, 8 for quarterly, 18 for monthly series, as in M4)"
        )
    seasonality = o.seasonality or data.seasonality or 1
    origins = o.origins or data.info.get("origins") or (1 if len(data) > 1 else horizon)
    values = [np.asarray(v, dtype=np.float64) for v in data.values]
    scored = windows([len(v) for v in values], int(horizon), int(origins), "validation")
    validated = {a: anchor_mase(values, scored, int(horizon), int(seasonality), a) for a in ANCHORS}
    held = held_values(data)  # the training file's values are checked apart from them
    trained = [v[: len(v) - len(t)] for v, t in zip(data.values, held, strict=True)]
    return {
        "source": source_of(o),
        "described": data.describe(),
        "series": len(data),
        "checksum": checksum(trained),
        **({"test_checksum": checksum(held)} if "test_values" in data.info else {}),
        "horizon": int(horizon),
        "seasonality": int(seasonality),
        "origins": int(origins),
        "scale_window": int(o.scale_window or max(horizon, seasonality)),
        "anchor": choose_anchor(o.anchor, validated),
        "anchor_validation_mase": validated,
    }


DERIVED_KEYS = ("source", "horizon", "seasonality", "origins", "scale_window")


def check_derived(derived: dict[str, Any], where: str) -> None:
    """Refuse ``derived`` without what a forecast run needs (a hand-edited config.json)."""
    missing = [k for k in DERIVED_KEYS if k not in derived]
    if missing:
        raise DerivedError(f"{where}: missing key(s) {', '.join(missing)} of a forecast run")
    for key in DERIVED_KEYS[1:]:
        value = derived[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DerivedError(f"{where}: {key} must be a positive integer; got {value!r}")
    source = derived["source"]
    if not (
        isinstance(source, dict)
        and (isinstance(source.get("dataset"), str) or isinstance(source.get("path"), str))
    ):
        raise DerivedError(
            f"{where}: source must be an object with a path or a dataset; got {source!r}"
        )
    test = source.get("test")
    if test is not None and not (isinstance(test, dict) and isinstance(test.get("path"), str)):
        raise DerivedError(f"{where}: source's test must be an object with a path; got {test!r}")
    anchor = derived.get("anchor", ANCHORS[0])  # runs from before anchors have none
    if anchor not in ANCHORS:
        raise DerivedError(f"{where}: anchor must be one of {', '.join(ANCHORS)}; got {anchor!r}")


def anchor_line(d: dict[str, Any]) -> str:
    """How a run's anchor was chosen, for its first line."""
    anchor = d.get("anchor", ANCHORS[0])
    validated = d.get("anchor_validation_mase", {})
    how = ", ".join(
        f"{a} {shown(v)}" for a, v in validated.items() if v is not None and math.isfinite(v)
    )
    return f"anchor: {anchor}" + (f" (MASE of each alone on validation: {how})" if how else "")


def anchor_forecasts(
    values: Sequence[np.ndarray],
    scored: Sequence[Window],
    horizon: int,
    seasonality: int,
    anchor: str,
) -> list[Forecast]:
    """The ``anchor``'s own forecast for every window (no model; no interval: the bounds
    are the point forecast)."""
    config = ForecastConfig(horizon, seasonality, anchor=anchor)
    last: dict[int, int] = {}
    for w in scored:
        last[w.series] = max(last.get(w.series, 0), w.origin)
    # The anchors of step t read the values up to t only: one pass per series serves all.
    anchors = {i: prepare_series(values[i][:o], config).anchor for i, o in last.items()}
    points = [anchors[w.series][w.origin - 1] for w in scored]
    return [Forecast(f, f, f) for f in points]


def anchor_mase(
    values: Sequence[np.ndarray],
    scored: Sequence[Window],
    horizon: int,
    seasonality: int,
    anchor: str,
) -> float | None:
    """MASE of the ``anchor`` forecasts alone over the windows ``scored``; None when no
    window has a scale (none, or constant histories)."""
    if not scored:
        return None
    fcs = anchor_forecasts(values, scored, horizon, seasonality, anchor)
    mase = score(values, scored, fcs, horizon, seasonality).mase
    return mase if math.isfinite(mase) else None


def choose_anchor(option: str, validated: dict[str, float | None]) -> str:
    """The ``--anchor`` given, or for ``auto`` the one with the lowest validation MASE
    (seasonal naive on a tie, or when there is nothing to compare)."""
    if option != "auto":
        return option
    scores = {a: v for a, v in validated.items() if v is not None and math.isfinite(v)}
    return min(scores, key=lambda a: (scores[a], ANCHORS.index(a)), default=ANCHORS[0])


def model_config(o: ForecastOptions, d: dict[str, Any]) -> ForecastConfig:
    return ForecastConfig(
        horizon=d["horizon"],
        seasonality=d["seasonality"],
        scale_window=d["scale_window"],
        head=o.head,
        cell=o.cell,
        hidden_size=o.hidden_size,
        num_layers=o.num_layers,
        dropout=o.dropout,
        members=o.members,
        anchor=d.get("anchor", ANCHORS[0]),  # runs from before anchors: seasonal naive
    )


# ---- figures and files ---------------------------------------------------------------------


def plot_forecasts(
    path: str | Path,
    names: Sequence[str],
    histories: Sequence[np.ndarray],
    origins: Sequence[int],
    forecasts: Sequence[Forecast],
    title: str,
    tail: int | None = None,
) -> Path:
    """One panel per series: its values (those after ``origin`` dashed: what happened),
    the forecast from ``origin`` and its 80 % interval. matplotlib's object API only."""
    from rnnkit.explain import plotting

    n = len(names)
    cols = 1 if n == 1 else 2
    rows = math.ceil(n / cols)
    with plotting.style():
        width = 5.2 * cols if cols > 1 else 8.0
        fig, axes = plotting.figure(rows, cols, width=width, height=2.6 * rows + 0.4)
        for k, ax in enumerate(axes.flat):
            if k >= n:
                ax.set_visible(False)
                continue
            y, o, f = np.asarray(histories[k], float), origins[k], forecasts[k]
            h = len(f.mean)
            keep = tail or max(4 * h, 24)
            first = max(0, o - keep)
            ax.plot(range(first, o), y[first:o], color="black", lw=1.2, label="history")
            if len(y) > o:
                ax.plot(range(o - 1, len(y)), y[o - 1 :], color="black", lw=1, ls="--",
                        label="actual")  # fmt: skip
            steps = range(o, o + h)
            ax.fill_between(steps, f.lower, f.upper, color="tab:blue", alpha=0.25,
                            label="80% interval")  # fmt: skip
            ax.plot(steps, f.mean, color="tab:blue", lw=1.5, marker=".", label="forecast")
            ax.set_title(str(names[k]))
            ax.set_xlabel("step")
            if k == 0:
                ax.legend(loc="best", fontsize=8)
    return plotting.save(fig, path, title)


def write_csv(
    path: str | Path | None,
    names: Sequence[str],
    forecasts: Sequence[Forecast],
    *,
    overwrite: bool = False,
) -> str:
    """The forecasts as CSV: series, step, forecast, lo80, hi80, returned and written to
    ``path`` unless it is None: atomically, and over an existing file only with
    ``overwrite=True``."""
    import csv
    import io

    from rnnkit.train.files import atomic_write, writable_file

    target = None if path is None else writable_file("write_csv", "path", path, overwrite)
    if len(names) != len(forecasts):
        raise ValueError(f"write_csv: {len(names)} names but {len(forecasts)} forecasts")
    buffer = io.StringIO()
    out = csv.writer(buffer, lineterminator="\n")
    out.writerow(["series", "step", "forecast", "lo80", "hi80"])
    for name, f in zip(names, forecasts, strict=True):
        for k in range(len(f.mean)):
            out.writerow([name, k + 1, *(f"{b[k]:.10g}" for b in f)])
    text = buffer.getvalue()
    if target is not None:
        atomic_write(target, text.encode("utf-8"))
    return text


__all__ = [
    "Forecast",
    "ForecastConfig",
    "ForecastModel",
    "ForecastOptions",
    "ForecastTask",
    "OnlineForecaster",
    "Scores",
    "Window",
    "check_derived",
    "forecast",
    "mase",
    "mase_scale",
    "model_forecasts",
    "naive_forecasts",
    "plot_forecasts",
    "prepare_series",
    "recalibrated",
    "recalibrates",
    "score",
    "seasonal_naive",
    "smape",
    "training_end",
    "windows",
    "write_csv",
]
