"""A trained model's forecasts, for a user: :func:`forecast` after the end of each series,
written as CSV (:func:`write_csv`) or drawn (:func:`plot_forecasts`).

Apart from the task because none of them needs a run's data or options: ``rnnkit
forecast`` and a user's code call them on any model :func:`rnnkit.load` gives.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from torch import Tensor, nn

from rnnkit.deploy import Forecast, forecast_values, is_count
from rnnkit.tasks.forecast.features import prepare_series
from rnnkit.tasks.forecast.model import ForecastModel, _run


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
