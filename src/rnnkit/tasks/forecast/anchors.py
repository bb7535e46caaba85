"""The anchors on their own: the forecast each one makes with no network, its MASE over
scored windows, the choice ``--anchor auto`` makes, and the anchor check, which keeps the
network's point forecasts only where they beat their anchor's by ``--margin`` standard
errors (:func:`anchor_check`).

Apart from the model: an anchor's forecast comes from the features alone, and the check
compares two arrays of MASE, so nothing here runs a network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from rnnkit.deploy import ANCHORS, Forecast
from rnnkit.tasks.forecast.config import ForecastConfig
from rnnkit.tasks.forecast.features import prepare_series
from rnnkit.tasks.forecast.metrics import Window, score, shown


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


def anchor_line(d: dict[str, Any]) -> str:
    """How a run's anchor was chosen, for its first line."""
    anchor = d.get("anchor", ANCHORS[0])
    validated = d.get("anchor_validation_mase", {})
    how = ", ".join(
        f"{a} {shown(v)}" for a, v in validated.items() if v is not None and math.isfinite(v)
    )
    return f"anchor: {anchor}" + (f" (MASE of each alone on validation: {how})" if how else "")


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
