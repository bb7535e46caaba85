"""Forecasting as the values arrive: :class:`OnlineForecaster` carries the model's state
(:class:`rnnkit.Stream`) and the running sums of the features, so that each new value
costs one step of the network, and can recalibrate its intervals as outcomes arrive.

Apart from :mod:`~rnnkit.tasks.forecast.api` because it keeps state between calls; its
forecasts equal :func:`~rnnkit.tasks.forecast.api.forecast` on the whole history.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from rnnkit.deploy import (
    Forecast,
    ForecastFeatures,
    Recalibration,
    default_hold,
    forecast_value,
    recalibration_options,
)
from rnnkit.tasks.forecast.api import finite
from rnnkit.tasks.forecast.model import ForecastModel, _values


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
