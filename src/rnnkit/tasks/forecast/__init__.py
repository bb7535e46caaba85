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

The modules, each importing only those listed before it:

- :mod:`~rnnkit.tasks.forecast.config`: :class:`ForecastConfig`, what builds a model;
- :mod:`~rnnkit.tasks.forecast.features`: the inputs, anchors and units of every step
  (:func:`prepare_series`);
- :mod:`~rnnkit.tasks.forecast.metrics`: MASE, sMAPE, coverage, seasonal naive and the
  windows a split scores;
- :mod:`~rnnkit.tasks.forecast.anchors`: the anchors' own forecasts, ``--anchor auto`` and
  the anchor check;
- :mod:`~rnnkit.tasks.forecast.model`: :class:`ForecastModel`, its quantile or Gaussian
  head and loss;
- :mod:`~rnnkit.tasks.forecast.intervals`: the forecasts of scored windows, calibrated
  and :func:`recalibrated`;
- :mod:`~rnnkit.tasks.forecast.api`: :func:`forecast`, :func:`write_csv`,
  :func:`plot_forecasts`;
- :mod:`~rnnkit.tasks.forecast.online`: :class:`OnlineForecaster`;
- :mod:`~rnnkit.tasks.forecast.batches`: the training windows and their targets;
- :mod:`~rnnkit.tasks.forecast.options`: :class:`ForecastOptions`;
- :mod:`~rnnkit.tasks.forecast.rundata`: a run's data, what it derives from it, and its
  checks;
- :mod:`~rnnkit.tasks.forecast.task`: :class:`ForecastTask`, ``rnnkit train forecast``.

The package re-exports what the modules define, and :mod:`rnnkit.deploy`'s ``Forecast`` and
``Z80``; ``__all__`` lists the public API.
"""

# Re-exported for the code that imports these names from the package (the command line,
# the benchmarks, the tests), hence F401's exemption; __all__ is the public API.
from rnnkit.deploy import Z80, Forecast  # noqa: F401
from rnnkit.tasks.forecast.anchors import (  # noqa: F401
    AnchorCheck,
    anchor_check,
    anchor_forecasts,
    anchor_line,
    anchor_mase,
    choose_anchor,
    sample_deviation,
)
from rnnkit.tasks.forecast.api import finite, forecast, plot_forecasts, write_csv  # noqa: F401
from rnnkit.tasks.forecast.batches import TARGET_LIMITS, Batch, Windows, check_targets  # noqa: F401
from rnnkit.tasks.forecast.config import HEADS, ForecastConfig  # noqa: F401
from rnnkit.tasks.forecast.features import N_FEATURES, Prepared, prepare_series  # noqa: F401
from rnnkit.tasks.forecast.intervals import calibration, model_forecasts, recalibrated, recalibrates  # noqa: F401
from rnnkit.tasks.forecast.metrics import (  # noqa: F401
    Scores,
    Window,
    distinct_horizons,
    history_scales,
    mase,
    mase_scale,
    naive_forecasts,
    root_mean_square,
    score,
    seasonal_naive,
    shown,
    smape,
    training_end,
    window_mases,
    windows,
)
from rnnkit.tasks.forecast.model import (  # noqa: F401
    EVAL_BATCH,
    QUANTILES,
    AverageBands,
    ForecastModel,
    output_loss,
)
from rnnkit.tasks.forecast.online import OnlineForecaster
from rnnkit.tasks.forecast.options import DATASET_NAMES, TRAIN_UNTIL, ForecastOptions  # noqa: F401
from rnnkit.tasks.forecast.rundata import (  # noqa: F401
    DERIVED_KEYS,
    changed,
    check_derived,
    checksum,
    derive,
    held_values,
    model_config,
    read_given,
    read_new,
    read_recorded,
    read_source,
    source_of,
)
from rnnkit.tasks.forecast.task import PLOTTED, ForecastTask  # noqa: F401

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
