"""The model's inputs, anchors and units at every step of a series, in one numpy pass
(:func:`prepare_series`).

Every input at step t is scale-free and reads the values up to t only, so one pass over a
history is what a forecast needs, and :class:`rnnkit.deploy.ForecastFeatures` computes the
same numbers one value at a time. Apart from the model: it computes in numpy, and the
network's passes, the training batches and the anchors' own forecasts all read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from rnnkit.deploy import CLIP, D_FLOOR, S_MIN, damping, sum_overflow
from rnnkit.tasks.forecast.config import ForecastConfig

N_FEATURES = 6
# CLIP: inputs are clipped to [-CLIP, CLIP]; D_FLOOR: d_t is at least this fraction of s_t
# (a constant history has d = 0). They live with the step-by-step features in rnnkit.deploy,
# which runs exported forecasters without torch: one definition for training and serving.


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
