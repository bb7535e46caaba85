"""Scoring forecasts as M4 and the Monash archive do (Hyndman & Koehler 2006): MASE and its
scale, sMAPE, the coverage of the 80 % intervals, seasonal naive, and the windows - the
series and origins - that a split scores.

Apart because it is numpy only and knows nothing of the model: the network's forecasts,
its anchor's and seasonal naive's are scored by the same functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from rnnkit.deploy import Z80, Forecast


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


def naive_forecasts(
    values: Sequence[np.ndarray], scored: Sequence[Window], horizon: int, seasonality: int
) -> list[Forecast]:
    return [seasonal_naive(values[w.series][: w.origin], horizon, seasonality) for w in scored]
