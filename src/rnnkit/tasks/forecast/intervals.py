"""The model's forecasts for scored windows and their 80 % intervals: the split-conformal
factor fitted on validation (:func:`calibration`), and the intervals recalibrated on every
outcome known at each origin, their level adapting or not (:func:`recalibrated`).

Apart from the model because it decides how wide the intervals are, not how the network
makes them; the task's evaluation and ``rnnkit forecast`` both call it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rnnkit.deploy import Forecast, Recalibration, conformal_factor, is_count, outside, scaled
from rnnkit.tasks.forecast.features import prepare_series
from rnnkit.tasks.forecast.metrics import Window
from rnnkit.tasks.forecast.model import ForecastModel, _run


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
