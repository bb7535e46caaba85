"""rnnkit train forecast: readers, metrics, the online forecast, the commands.

Every file is tiny and written by the tests; the one training run is a few steps of a
small model. The generic promises (resume, kills, corrupt files) run over the task in
tests/test_promises.py.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnkit
from _refusals import raises_exactly as _raises_exactly
from rnnkit.cli import main
from rnnkit.data.series import fill_missing, load_dataset, read_series
from rnnkit.deploy import ANCHORS, Recalibration
from rnnkit.tasks.forecast import (
    Forecast,
    ForecastConfig,
    ForecastModel,
    ForecastTask,
    OnlineForecaster,
    Window,
    forecast,
    mase,
    mase_scale,
    model_forecasts,
    naive_forecasts,
    prepare_series,
    recalibrated,
    score,
    seasonal_naive,
    smape,
    training_end,
    windows,
)
from rnnkit.train import TrainConfig, train
from rnnkit.train.distributed import Context

# ---- readers --------------------------------------------------------------------------

TSF = """# a comment
@relation tiny
@attribute series_name string
@attribute start_timestamp date
@frequency monthly
@horizon 3
@missing true
@equallength false
@data
a:2000-01-01 00-00-00:1,2,?,4,5
b:2000-01-01 00-00-00:?,10,20,30
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_tsf_reader(tmp_path: Path) -> None:
    data = read_series(write(tmp_path, "s.tsf", TSF))
    assert data.names == ["a", "b"]
    assert data.values == [[1, 2, 3, 4, 5], [10, 20, 30]]  # ? inside: interpolated
    assert (data.filled, data.dropped) == (1, 1)  # ? at the start: dropped
    assert (data.frequency, data.seasonality, data.horizon) == ("monthly", 12, 3)


def test_tsf_without_attributes_names_series_by_position(tmp_path: Path) -> None:
    data = read_series(write(tmp_path, "s.tsf", "@frequency yearly\n@data\n1,2,3\n4,5\n"))
    assert data.names == ["T1", "T2"] and data.values == [[1, 2, 3], [4, 5]]
    assert data.seasonality == 1 and data.horizon is None


def test_wide_csv_reader(tmp_path: Path) -> None:
    text = "month,north,south\n2020-01,1,10\n2020-02,2,\n2020-03,NA,30\n2020-04,4,40\n2020-05,,\n"
    data = read_series(write(tmp_path, "w.csv", text))
    assert data.names == ["north", "south"]
    assert data.values == [[1, 2, 3, 4], [10, 20, 30, 40]]
    assert (data.filled, data.dropped) == (2, 2)
    assert data.info["format"] == "wide"


def test_wide_csv_text_time_column_and_named_time_column(tmp_path: Path) -> None:
    data = read_series(write(tmp_path, "w.csv", "when,x\n1991 Jul,1\n1991 Aug,2\n"))
    assert data.names == ["x"] and data.values == [[1, 2]]
    # a numeric time column is skipped when named like a time, or with time_column
    data = read_series(write(tmp_path, "y.csv", "year,x\n1990,5\n1991,6\n"))
    assert data.names == ["x"] and data.values == [[5, 6]]
    data = read_series(write(tmp_path, "z.csv", "stamp,x\n1,5\n2,6\n"), time_column="stamp")
    assert data.names == ["x"]


def test_one_series_csv_with_and_without_header(tmp_path: Path) -> None:
    data = read_series(write(tmp_path, "one.csv", "sales\n3\n4.5\n6\n"))
    assert data.names == ["sales"] and data.values == [[3, 4.5, 6]]
    data = read_series(write(tmp_path, "bare.csv", "3\n4.5\n6\n"))
    assert data.names == ["series1"] and data.values == [[3, 4.5, 6]]


def test_long_csv_reader(tmp_path: Path) -> None:
    text = "id,time,value\na,1,1.5\nb,1,7\na,2,2.5\nb,2,?\na,3,3.5\nb,3,9\n"
    data = read_series(write(tmp_path, "l.csv", text))
    assert data.names == ["a", "b"]
    assert data.values == [[1.5, 2.5, 3.5], [7, 8, 9]]
    assert data.info["format"] == "long" and data.filled == 1


def test_fill_missing() -> None:
    nan = float("nan")
    assert fill_missing([None, 1.0, nan, nan, 4.0, None]) == ([1, 2, 3, 4], 2, 2)
    assert fill_missing([None, None]) == ([], 0, 2)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.tsf", "@frequency yearly\n@data\n1,2,x,4\n", "a.tsf, line 3: value 3 of series 'T1'"),
        ("b.tsf", "@attribute n string\n@data\nno-colon\n", "b.tsf, line 3: expected 1"),
        ("c.tsf", "@frequency yearly\n@colour blue\n@data\n1\n", "c.tsf, line 2: unknown header"),
        ("d.tsf", "@horizon six\n@data\n1,2\n", "d.tsf, line 1: @horizon must be"),
        ("e.tsf", "@frequency yearly\n1,2,3\n", "e.tsf, line 2: expected a header line"),
        ("f.tsf", "@frequency yearly\n", "f.tsf: no @data line"),
        ("g.csv", "x,y\n1,2\n3,oops\n", "g.csv, line 3: column 'y' has 'oops'"),
        ("g2.csv", "month,a\n1,n/a?\n2,3\n", "g2.csv, line 2: column 'a' has 'n/a?'"),
        ("h.csv", "x,y\n1,\n2,\n", "h.csv: series 'y' has no values"),
        ("i.csv", "", "i.csv: the file is empty"),
        ("j.csv", "id,time,value\na,2,1\na,1,2\n", "j.csv, line 3: time '1' of series 'a'"),
        ("k.csv", "id,time,value\na,1,abc\n", "k.csv, line 2: value 'abc' of series 'a'"),
        ("l.csv", "id,time,value\na,1\n", "l.csv, line 2: expected 3 cells"),
        ("m.csv", "x,x\n1,2\n", "m.csv, line 1: column name 'x' appears twice"),
    ],
)
def test_malformed_files_are_refused_in_one_line(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(ValueError) as err:
        read_series(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_file_and_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="series file not found"):
        read_series(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match="--dataset must be one of"):
        load_dataset("nope")


def test_dataset_choices_are_the_shipped_datasets() -> None:
    from rnnkit.data.series import DATASETS
    from rnnkit.tasks.forecast.options import DATASET_NAMES

    assert tuple(DATASETS) == DATASET_NAMES


def test_shipped_datasets_read_offline() -> None:
    m1 = load_dataset("m1-yearly")
    assert len(m1) == 181 and m1.horizon == 6 and m1.seasonality == 1
    co2 = load_dataset("co2")
    assert len(co2) == 1 and co2.filled == 59 and co2.seasonality == 52
    assert len(load_dataset("elnino").values[0]) == 61 * 12


# ---- metrics ----------------------------------------------------------------------------


def test_mase_and_smape_by_hand() -> None:
    history = [1, 2, 4, 7]  # naive in-sample errors 1, 2, 3: scale 2
    assert mase_scale(history, 1) == 2
    assert mase([8, 10], [7, 7], history, 1) == pytest.approx((1 + 3) / 2 / 2)
    seasonal = [1, 3, 2, 4, 3, 6]  # lag-2 errors 1, 1, 1, 2: scale 1.25
    assert mase_scale(seasonal, 2) == pytest.approx(1.25)
    assert mase_scale([1, 3], 2) == 2  # a season or less: lag 1
    assert math.isnan(mase_scale([5], 1))
    # sMAPE: 200 |y - f| / (|y| + |f|), a term 0 where both are 0
    assert smape([100, 0], [110, 0]) == pytest.approx((200 * 10 / 210 + 0) / 2)
    assert smape([1, 2], [1, 2]) == 0
    assert smape([-1], [1]) == pytest.approx(200)


def test_seasonal_naive_and_its_interval() -> None:
    f = seasonal_naive([1, 2, 3, 4, 5, 6], 4, 3)
    assert list(f.mean) == [4, 5, 6, 4]
    # residuals y_t - y_(t-3) are all 3: sigma 3; step 4 is in the second season
    z = 1.2815515655446004
    assert f.upper - f.mean == pytest.approx(z * 3 * np.sqrt([1, 1, 1, 2]))
    assert list(seasonal_naive([1, 2], 2, 12).mean) == [2, 2]  # shorter than m: naive


def test_seasonal_naive_is_finite_at_any_accepted_scale() -> None:
    """The squares of its residuals overflowed past 1.3e154 (a RuntimeWarning and an
    infinite interval: coverage 100 %) and underflowed below 1.5e-154. At 1e250 and
    1e-250 it is the unscaled series' forecast times the scale; unscaled, the textbook
    formula bit for bit."""
    from rnnkit.deploy import Z80

    y = series(40)
    scored = windows([40], 6, 4, "test")
    for m in (1, 4):
        plain = seasonal_naive(y, 6, m)
        resid = y[m:] - y[:-m]
        k = np.arange(6)
        spread = Z80 * float(np.sqrt(np.mean(resid**2))) * np.sqrt(1 + k // m)
        assert np.array_equal(plain.upper, plain.mean + spread)
        assert np.array_equal(plain.lower, plain.mean - spread)
        coverage = score([y], scored, naive_forecasts([y], scored, 6, m), 6, m).coverage
        assert 0 < coverage < 1
        for c in (1e250, 1e-250):
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                f = seasonal_naive(y * c, 6, m)
                fcs = naive_forecasts([y * c], scored, 6, m)
                scaled = score([y * c], scored, fcs, 6, m)
            assert np.allclose(f.mean, plain.mean * c, rtol=1e-12, atol=0)
            assert np.allclose(f.upper - f.mean, spread * c, rtol=1e-12, atol=0)
            assert np.allclose(f.mean - f.lower, spread * c, rtol=1e-12, atol=0)
            assert scaled.coverage == coverage


def test_a_sample_deviation_is_finite_at_any_scale() -> None:
    """The anchor check's standard error squared the differences of MASE: past 1.3e154
    it was inf (a RuntimeWarning), and no network could be kept."""
    from rnnkit.tasks.forecast.anchors import anchor_check, sample_deviation

    x = np.array([0.5, 0.6, 0.4, 0.5, -0.2])
    assert sample_deviation(x) == float(np.std(x, ddof=1))  # the plain formula, bit for bit
    anchor = np.array([1.0, 1.2, 0.8, 1.0])
    network = anchor - np.array([0.5, 0.6, 0.4, 0.5])
    plain = anchor_check(network, anchor, 2.0, 1.0)
    for c in (1e200, 1e300):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert sample_deviation(x * c) == pytest.approx(np.std(x, ddof=1) * c, rel=1e-12)
            k = anchor_check(network * c, anchor * c, 2.0, 1.0)
        assert k.kept and k.error == pytest.approx(plain.error * c, rel=1e-12)


def test_training_targets_are_bounded_by_hand() -> None:
    """A value whose distance from its anchor forecast, in units of d_t, passes the head's
    bound is refused; at the bound it is taken, and only training values are checked."""
    from types import SimpleNamespace

    from rnnkit.tasks.forecast.batches import TARGET_LIMITS, check_targets

    data = SimpleNamespace(source="s.csv", names=["s"])
    for head, how in (("quantile", ""), ("gaussian", " and --head gaussian squares them")):
        # seasonal naive, m = 1, horizon 1: value 6's target is its change over d, the
        # mean absolute change of the five values before it (1)
        config = ForecastConfig(horizon=1, head=head)
        limit = TARGET_LIMITS[head]
        y = np.array([0.0, 1, 2, 3, 4, 4 + limit, 5, 6, 7])
        check_targets(data, [y], [len(y)], config)  # at the bound
        y[5] = 4 + 2 * limit
        check_targets(data, [y], [5], config)  # not a training value
        _raises_exactly(
            ValueError,
            f"s.csv: value 6 of series 's' is {y[5]:g}, {2 * limit:g} units from its anchor "
            "forecast, a unit being the mean absolute (seasonal) change of the values "
            f"before it; the network's targets are float32{how}, so at most {limit:g} "
            "units are accepted",
            check_targets, data, [y], [len(y)], config,
        )  # fmt: skip


@pytest.mark.parametrize("head", ["quantile", "gaussian"])
def test_a_training_value_just_inside_the_bound_trains(tmp_path: Path, head: str) -> None:
    """The bound is low enough: a value within 10 % of it trains with every step's loss
    finite (at 1e39 every step was skipped as non-finite, and no model was saved)."""
    from rnnkit.tasks.forecast.batches import TARGET_LIMITS

    def spiked(name: str, spike: float) -> Path:
        a, b = series(24, seed=1), series(24, seed=2)
        a[4] = a[3] + spike  # its unit is 3.25 here: 3.15 bounds away is 0.97 of the bound
        rows = [f"{s},{t},{float(v)!r}" for s, y in (("a", a), ("b", b)) for t, v in enumerate(y)]
        return write(tmp_path, name, "id,time,value\n" + "\n".join(rows) + "\n")

    spike = 3.15 * TARGET_LIMITS[head]
    options = {"horizon": 2, "hidden_size": 4, "head": head, "batch_size": 4}
    config = TrainConfig(steps=30, eval_every=10, threads=1)
    quiet = {"log": lambda _: None, "progress": io.StringIO()}
    with pytest.raises(ValueError, match="units from its anchor forecast"):  # 1.07 of it
        train("forecast", {**options, "data": str(spiked("over.csv", 1.1 * spike))}, config,
              out=tmp_path / "over", **quiet)  # fmt: skip
    progress = io.StringIO()
    train("forecast", {**options, "data": str(spiked("spike.csv", spike))}, config,
          out=tmp_path / "run", log=lambda _: None, progress=progress)  # fmt: skip
    assert "skipped" not in progress.getvalue()
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_score_pools_windows_and_coverage() -> None:
    values = [np.array([1.0, 2, 4, 7, 8, 10])]
    scored = windows([6], 2, 1, "test")
    assert scored == [(0, 4)]
    f = seasonal_naive(values[0][:4], 2, 1)  # 7, 7
    s = score(values, scored, [f], 2, 1)
    assert s.mase == pytest.approx(1.0)
    assert s.smape == pytest.approx(np.mean([200 / 15, 200 * 3 / 17]))
    assert 0 <= s.coverage <= 1 and s.windows == 1


def test_splits_do_not_overlap() -> None:
    n, h, r = 40, 5, 3
    test, valid = windows([n], h, r, "test"), windows([n], h, r, "validation")
    assert sorted(w.origin for w in test) == [33, 34, 35]  # last target: n - 1
    assert max(w.origin for w in valid) + h <= min(w.origin for w in test)
    assert training_end(n, h, r) == min(w.origin for w in valid)


# ---- the model: scale-free, causal, streamable -----------------------------------------


def small_model(
    seasonality: int = 1, horizon: int = 4, cell: str = "lstm", anchor: str = "seasonal-naive"
) -> ForecastModel:
    torch.manual_seed(0)
    config = ForecastConfig(
        horizon=horizon, seasonality=seasonality, scale_window=max(horizon, seasonality),
        cell=cell, hidden_size=12, anchor=anchor,
    )  # fmt: skip
    return ForecastModel(config).eval()


def series(n: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 20 + np.cumsum(rng.normal(0.3, 1.0, n)) + 3 * np.sin(np.arange(n) * 2 * np.pi / 4)


@pytest.mark.parametrize(
    ("seasonality", "cell", "anchor"),
    [(1, "lstm", "seasonal-naive"), (4, "gru", "seasonal-naive"), (4, "mingru", "seasonal-naive"),
     (4, "lstm", "climatology"), (4, "lstm", "drift"), (1, "gru", "drift")],
)  # fmt: skip
def test_online_forecast_equals_a_full_rerun(seasonality: int, cell: str, anchor: str) -> None:
    model = small_model(seasonality, cell=cell, anchor=anchor)
    y = series()
    online = OnlineForecaster(model, history=y[:10])
    assert online.seen == 10
    for k in range(10, len(y)):
        got = online.update(float(y[k]))
        want = forecast(model, [y[: k + 1]])[0]
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(y).max())
    # the stream carries the state: one step per update, whatever the history
    assert online.stream.steps == len(y)


@pytest.mark.parametrize(
    ("seasonality", "horizon", "anchor"),
    [(4, 4, "seasonal-naive"), (4, 9, "climatology"), (1, 4, "climatology"),
     (12, 5, "climatology"), (4, 9, "drift"), (1, 4, "drift"), (12, 5, "drift")],
)  # fmt: skip
def test_online_step_features_equal_one_pass(seasonality: int, horizon: int, anchor: str) -> None:
    from rnnkit.deploy import ForecastFeatures

    model = small_model(seasonality, horizon, anchor=anchor)
    y = series(30)
    prepared = prepare_series(y, model.config)
    c = model.config
    steps = ForecastFeatures(c.seasonality, c.scale_window, c.horizon, c.anchor)
    for t, value in enumerate(y):
        x, anchor, unit = steps.push(value)
        np.testing.assert_array_equal(x, prepared.x[t])
        np.testing.assert_array_equal(anchor, prepared.anchor[t])
        assert unit == prepared.unit[t]


def test_a_series_whose_magnitudes_overflow_is_refused() -> None:
    # The running sums that scale a series would be inf and every forecast NaN. The CLI's
    # readers bound each value by 1e300 first; a Python caller reaches this check.
    overflow = (
        "the magnitudes of a series' values must sum to a finite number (below 1.8e308) to "
        "scale it; got a sum past it at value 3"
    )
    with pytest.raises(ValueError, match="^" + re.escape(overflow) + "$"):
        prepare_series([1.0, 1e308, 1e308, 5.0], ForecastConfig(horizon=2))


def test_climatology_anchor_by_hand() -> None:
    y = np.arange(1.0, 13.0)  # phases of m = 4: means 5, 6, 7, 8; y_t = 12 is 4 above its own
    config = ForecastConfig(horizon=6, seasonality=4, scale_window=4, anchor="climatology")
    anchor = prepare_series(y, config).anchor
    damped = 4 * 0.8 ** np.arange(1, 7)
    np.testing.assert_allclose(anchor[-1], np.array([5, 6, 7, 8, 5, 6]) + damped)
    # less than a season seen (two values of m = 4): the last value, as seasonal naive
    np.testing.assert_array_equal(prepare_series(y[:6], config).anchor[1], [2, 2, 2, 2, 2, 2])
    yearly = ForecastConfig(horizon=3, seasonality=1, scale_window=3, anchor="climatology")
    got = prepare_series([2.0, 4.0, 9.0], yearly).anchor[-1]  # mean 5, y_t 4 above it
    np.testing.assert_allclose(got, 5 + 4 * 0.8 ** np.arange(1, 4))
    with pytest.raises(
        ValueError, match="anchor must be one of seasonal-naive, climatology, drift; got"
    ):
        ForecastConfig(horizon=3, anchor="x")


def test_drift_anchor_by_hand() -> None:
    y = np.array([1.0, 2.0, 4.0, 3.0, 5.0, 7.0, 8.0, 9.0, 10.0])  # m = 4
    config = ForecastConfig(horizon=6, seasonality=4, scale_window=4, anchor="drift")
    anchor = prepare_series(y, config).anchor
    # at t = 8: the changes over a season so far, 5-1, 7-2, 8-4, 9-3, 10-5: mean 4.8
    want = np.array([7.0, 8.0, 9.0, 10.0, 7.0, 8.0]) + 4.8 * np.array([1, 1, 1, 1, 2, 2])
    np.testing.assert_allclose(anchor[8], want)
    np.testing.assert_allclose(anchor[3], [1.0, 2.0, 4.0, 3.0, 1.0, 2.0])  # a season: no change yet
    np.testing.assert_allclose(anchor[1], np.full(6, 2.0))  # less than a season: the last value
    # m = 1: the drift method, y_t + k (y_t - y_0) / t
    yearly = ForecastConfig(horizon=3, seasonality=1, scale_window=3, anchor="drift")
    np.testing.assert_allclose(prepare_series(y, yearly).anchor[8], 10.0 + np.arange(1, 4) * 9 / 8)
    np.testing.assert_allclose(prepare_series(y, yearly).anchor[0], np.full(3, 1.0))


@pytest.mark.parametrize("anchor", ["seasonal-naive", "climatology", "drift"])
def test_an_untrained_head_forecasts_its_anchor(anchor: str) -> None:
    model = small_model(4, horizon=6, anchor=anchor)
    assert isinstance(model.head, torch.nn.Linear)
    with torch.no_grad():
        model.head.weight.zero_()
    y = series()
    f = forecast(model, [y])[0]
    np.testing.assert_allclose(f.mean, prepare_series(y, model.config).anchor[-1], rtol=1e-6)
    if anchor == "seasonal-naive":
        np.testing.assert_allclose(f.mean, seasonal_naive(y, 6, 4).mean, rtol=1e-6)


def test_window_mases_and_distinct_horizons_by_hand() -> None:
    from rnnkit.tasks.forecast.metrics import distinct_horizons, window_mases

    y = np.array([1.0, 3.0, 2.0, 5.0, 4.0, 6.0, 8.0, 7.0])
    flat = np.full(8, 2.0)  # scale 0: no MASE
    scored = [Window(0, 4), Window(0, 5), Window(1, 5)]
    fcs = [Forecast(np.array([4.0, 4.0]), np.zeros(2), np.zeros(2))] * 3
    got = window_mases([y, flat], scored, fcs, 2, 1)
    # |4 - 4| + |6 - 4| over 2, over mean |diff| of 1,3,2,5 (2, 1, 3: 2); then 6, 8 from 5 values
    assert got[0] == pytest.approx(1.0 / 2.0)
    assert got[1] == pytest.approx(3.0 / np.mean([2.0, 1.0, 3.0, 1.0]))
    assert math.isnan(got[2])
    assert score([y, flat], scored, fcs, 2, 1).mase == pytest.approx(np.nanmean(got))
    # origins one step apart: R origins of one series score R + H - 1 distinct values
    assert distinct_horizons(windows([30], 4, 4, "validation"), 4) == pytest.approx(7 / 4)
    assert distinct_horizons(windows([30] * 5, 6, 1, "validation"), 6) == pytest.approx(5.0)


def test_anchor_check_by_hand() -> None:
    from rnnkit.tasks.forecast.anchors import anchor_check

    anchor = np.array([1.0, 1.2, 0.8, 1.0])
    clear = anchor - np.array([0.5, 0.6, 0.4, 0.5])  # better everywhere, by about the same
    noisy = anchor - np.array([0.9, -0.6, 0.5, -0.4])  # better on average, by less than it varies
    k = anchor_check(clear, anchor, 2.0, 1.0)
    assert k.kept and k.network == pytest.approx(0.5) and k.anchor == pytest.approx(1.0)
    assert k.error == pytest.approx(np.std([0.5, 0.6, 0.4, 0.5], ddof=1) / math.sqrt(2.0))
    k = anchor_check(noisy, anchor, 2.0, 1.0)
    assert not k.kept and 0 < 0.1 < k.error  # mean gain 0.1
    assert anchor_check(noisy, anchor, 2.0, 0.0).kept  # margin 0: lower at all
    assert not anchor_check(anchor, anchor, 2.0, 0.0).kept  # a tie keeps the anchor
    # the windows that count are those both can be scored on; one window: error 0
    one = anchor_check(np.array([0.5, np.nan]), np.array([1.0, 1.0]), 1.0, 5.0)
    assert one.kept and one.error == 0.0
    none = anchor_check(np.array([np.nan]), np.array([1.0]), 1.0, 1.0)
    assert not none.kept and math.isnan(none.network)


def test_a_model_that_keeps_its_anchor_forecasts_it_with_its_intervals() -> None:
    from rnnkit.tasks.forecast.anchors import anchor_forecasts

    model = small_model(4, horizon=6, anchor="climatology")
    torch.nn.init.normal_(model.head.weight, std=0.3)
    y = series(60)
    scored = windows([60], 6, 6, "test")
    network = model_forecasts(model, [y], scored)
    model.correction.fill_(0.0)
    kept = model_forecasts(model, [y], scored)
    alone = anchor_forecasts([y], scored, 6, 4, "climatology")
    for n, k, a in zip(network, kept, alone, strict=True):
        np.testing.assert_array_equal(k.mean, a.mean)
        assert not np.allclose(n.mean, a.mean)
        # the network's interval half-widths, about the anchor's forecast
        np.testing.assert_allclose(k.upper - k.mean, n.upper - n.mean, rtol=1e-5)
        np.testing.assert_allclose(k.mean - k.lower, n.mean - n.lower, rtol=1e-5)
    # weights saved before the buffer existed load as the network's forecasts
    state = {k: v for k, v in model.state_dict().items() if k != "correction"}
    again = small_model(4, horizon=6, anchor="climatology")
    again.correction.fill_(0.0)
    again.load_state_dict(state)
    assert float(again.correction) == 1.0


def test_auto_anchor_is_the_one_that_validates_better() -> None:
    from rnnkit.tasks.forecast.anchors import anchor_mase, choose_anchor

    rng = np.random.default_rng(0)
    season = np.tile([0.0, 5.0, -3.0, 1.0], 30)
    noisy = 50 + season + rng.normal(0, 2.0, 120)  # a fixed season, white noise: climatology
    trend = np.arange(120.0) * 3 + season  # a straight trend: seasonal naive with drift
    for y, want in ((noisy, "climatology"), (trend, "drift")):
        valid = windows([len(y)], 4, 4, "validation")
        scores = {a: anchor_mase([y], valid, 4, 4, a) for a in ANCHORS}
        assert choose_anchor("auto", scores) == want, scores
        if want == "drift":  # a straight trend plus a fixed season: drift forecasts it exactly
            assert scores["drift"] == pytest.approx(0.0, abs=1e-12)
        # by hand: each validation window's anchor forecast against its values, over the scale
        config = ForecastConfig(horizon=4, seasonality=4, anchor=want)
        by_hand = np.mean([
            mase(y[w.origin : w.origin + 4], prepare_series(y[: w.origin], config).anchor[-1],
                 y[: w.origin], 4)
            for w in valid
        ])  # fmt: skip
        assert scores[want] == pytest.approx(by_hand)
    assert choose_anchor("seasonal-naive", {"seasonal-naive": 2.0, "climatology": 1.0}) == (
        "seasonal-naive"
    )
    assert choose_anchor("auto", {"seasonal-naive": 1.0, "climatology": 1.0}) == "seasonal-naive"
    assert choose_anchor("auto", {"seasonal-naive": None, "climatology": None}) == "seasonal-naive"
    flat = [np.ones(20)]  # constant histories: no scale, nothing to compare
    assert anchor_mase(flat, windows([20], 2, 2, "validation"), 2, 1, "climatology") is None


def test_forecast_is_scale_free_and_causal() -> None:
    model = small_model(4)
    y = series()
    a = forecast(model, [y])[0]
    b = forecast(model, [1000 * y])[0]
    np.testing.assert_allclose(1000 * a.mean, b.mean, rtol=1e-4)
    assert np.all(a.lower <= a.mean) and np.all(a.mean <= a.upper)
    with pytest.raises(ValueError, match=r"forecast: horizon must be an integer in \[1, 4\]"):
        forecast(model, [y], horizon=5)


def test_online_forecaster_refuses_other_models_and_bad_values() -> None:
    with pytest.raises(TypeError, match="ForecastModel"):
        OnlineForecaster(rnnkit.LSTM(3, 4))
    online = OnlineForecaster(small_model())
    with pytest.raises(ValueError, match="no value seen yet"):
        online.forecast  # noqa: B018
    with pytest.raises(ValueError, match="finite number"):
        online.update(float("nan"))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_forecast_refuses_values_that_are_not_finite(bad: float) -> None:
    model = small_model()
    with pytest.raises(ValueError) as err:
        forecast(model, [[1.0, 2.0, 3.0, 4.0], [1.0, bad, 3.0]])
    assert str(err.value) == (
        f"forecast: series 2, value 2: a forecast value must be a finite number; got {bad!r}"
    )


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        # One series given bare: float has no len().
        (lambda m, y: forecast(m, list(y)), TypeError,
         r"a list of series.*got a sequence of numbers \(one series goes in as \[values\]\)"),
        (lambda m, y: forecast(m, y), TypeError, "got a sequence of numbers"),
        # A string was read character by character, a number in a string as that number.
        (lambda m, y: forecast(m, ["123"]), TypeError, "series 1 must be a sequence of numbers"),
        (lambda m, y: forecast(m, [["1", "2"]]), TypeError,
         "series 1, value 1: a forecast value must be a number; got the string '1'"),
        (lambda m, y: forecast(m, [[1.0, None]]), TypeError,
         "series 1, value 2: a forecast value must be a number; got NoneType"),
        (lambda m, y: forecast(m, [y], horizon=2.0), ValueError,
         r"forecast: horizon must be an integer in \[1, 4\] \(the trained horizon\); got 2.0"),
        (lambda m, y: forecast(m, [y], horizon=True), ValueError, "horizon must be an integer"),
        (lambda m, y: forecast(rnnkit.LSTM(6, 4), [y]), TypeError,
         "forecast: model must be a ForecastModel .*; got LSTM"),
        (lambda m, y: OnlineForecaster(m, history="123"), TypeError,
         "OnlineForecaster: history must be a sequence of numbers .*; got str"),
        (lambda m, y: OnlineForecaster(m, history=5.0), TypeError,
         "OnlineForecaster: history must be a sequence of numbers .*; got float"),
        (lambda m, y: OnlineForecaster(m, history=y, recalibrate="no"), TypeError,
         "OnlineForecaster: recalibrate must be True or False; got 'no'"),
        (lambda m, y: OnlineForecaster(m, history=y, adapt=0.1), ValueError,
         r"OnlineForecaster: adapt and hold set the recalibration of recalibrate=True; got "
         r"adapt=0.1 with recalibrate=False"),
        (lambda m, y: OnlineForecaster(m, history=y, hold=3), ValueError,
         "got hold=3 with recalibrate=False"),
        (lambda m, y: OnlineForecaster(m, history=y).update("5"), TypeError,
         "OnlineForecaster: a forecast value must be a number; got the string '5'"),
        (lambda m, y: OnlineForecaster(m, history=y).update([1.0, 2.0]), TypeError,
         "OnlineForecaster: a forecast value must be a number; got list"),
        (lambda m, y: OnlineForecaster(m, history=y).extend(5.0), TypeError,
         "OnlineForecaster: values must be a sequence of numbers"),
        (lambda m, y: ForecastConfig(horizon=2, dropout=2.0), ValueError,
         r"dropout must be a number in \[0, 1\); got 2.0"),
    ],
)  # fmt: skip
def test_wrong_arguments_are_one_line_naming_the_argument(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call(small_model(), series(12))


def test_a_refused_extend_changes_nothing() -> None:
    model = small_model()
    y = [float(v) for v in series(12)]
    online = OnlineForecaster(model, history=y[:3])
    refused = "OnlineForecaster: values, value 2: a forecast value must"
    with pytest.raises(ValueError, match=refused):
        online.extend([y[3], float("nan")])
    assert online.seen == 3
    got = online.extend(y[3:])
    want = forecast(model, [y])[0]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * max(map(abs, y)))
    assert online.stream.steps == len(y)


# ---- training, loading and the commands ------------------------------------------------


def wide_csv(tmp_path: Path, n_series: int = 5, n: int = 40) -> Path:
    path = tmp_path / "shops.csv"
    rows = [["week", *(f"shop{i}" for i in range(n_series))]]
    columns = [series(n, seed=i) * (i + 1) for i in range(n_series)]
    for t in range(n):
        rows.append([str(t), *(f"{c[t]:.3f}" for c in columns)])
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


OPTIONS = {"horizon": 4, "seasonality": 4, "hidden_size": 8, "batch_size": 4, "context": 8}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("forecast")
    data = wide_csv(tmp)
    out = tmp / "run"
    config = TrainConfig(steps=4, eval_every=2, seed=0, threads=1)
    train("forecast", {**OPTIONS, "data": str(data)}, config, out=out, log=lambda _: None,
          progress=io.StringIO())  # fmt: skip
    return out


def test_a_set_with_a_series_of_tiny_values_trains_and_forecasts_it(tmp_path: Path) -> None:
    """A constant series of denormals (1e-322) made NaN inputs in training and a NaN
    forecast of it; its windows are now scaled as an all-zero series' are."""
    path = tmp_path / "shops.csv"
    columns = [series(40, seed=i) * (i + 1) for i in range(3)]
    rows = [["week", "a", "b", "c", "tiny"]]
    rows += [[str(t), *(f"{c[t]:.3f}" for c in columns), "1e-322"] for t in range(40)]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    config = TrainConfig(steps=4, eval_every=2, seed=0, threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # 0/0 in the inputs warned
        options = {**OPTIONS, "data": str(path)}
        summary = train("forecast", options, config, out=tmp_path / "run",
                        log=lambda _: None, progress=io.StringIO())  # fmt: skip
        model = rnnkit.load(tmp_path / "run")
        got, zeros = forecast(model, [[1e-322] * 40, [0.0] * 40])
    assert all(math.isfinite(v) for v in summary.metrics.values())
    for g, z in zip(got, zeros, strict=True):
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, z, rtol=1e-6, atol=1e-300)


def test_training_load_and_forecast_command(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (run_dir / "forecast.png").read_bytes()[:4] == b"\x89PNG"
    model = rnnkit.load(run_dir)
    assert isinstance(model, ForecastModel) and model.config.horizon == 4
    derived = json.loads((run_dir / "config.json").read_text())["derived"]
    assert derived["seasonality"] == 4 and derived["origins"] == 1
    out, plot = tmp_path / "f.csv", tmp_path / "f.png"
    data = wide_csv(tmp_path, n_series=3, n=30)
    code = main(["forecast", str(run_dir), "--data", str(data), "--out", str(out),
                 "--plot", str(plot), "--series", "shop2", "--horizon", "3"])  # fmt: skip
    assert code == 0
    rows = list(csv.DictReader(out.open()))
    assert [r["series"] for r in rows] == [f"shop{i}" for i in range(3) for _ in range(3)]
    assert [int(r["step"]) for r in rows[:3]] == [1, 2, 3]
    for r in rows:
        assert float(r["lo80"]) <= float(r["forecast"]) <= float(r["hi80"])
    assert plot.read_bytes()[:4] == b"\x89PNG"
    # the same numbers as the library's forecast
    values = read_series(data).values
    f = forecast(model, values, 3)[0]
    assert float(rows[0]["forecast"]) == pytest.approx(f.mean[0], rel=1e-8)
    # default: the run's own series, to stdout
    capsys.readouterr()
    assert main(["forecast", str(run_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "series,step,forecast,lo80,hi80" and len(lines) == 1 + 5 * 4
    # with intervals calibrated on every value after the run's training data
    own = [np.asarray(v) for v in read_series(run_dir.parent / "shops.csv").values]
    ends = [Window(i, len(y)) for i, y in enumerate(own)]
    adapt = json.loads((run_dir / "config.json").read_text())["options"]["adapt"]
    assert adapt == 0.05  # the default, recorded
    want = recalibrated(model, own, ends, derived["origins"], adapt=adapt)
    first = [float(x) for x in lines[1].split(",")[2:]]
    assert first == pytest.approx([want[0].mean[0], want[0].lower[0], want[0].upper[0]], rel=1e-8)
    fixed = forecast(model, own)[0]  # the validated factor alone: other intervals
    assert first[1:] != pytest.approx([fixed.lower[0], fixed.upper[0]])


def test_a_run_whose_network_does_not_beat_its_anchor_forecasts_the_anchor(
    tmp_path: Path,
) -> None:
    from rnnkit.tasks.forecast.anchors import anchor_forecasts

    data = wide_csv(tmp_path)
    lines: list[str] = []
    config = TrainConfig(steps=4, eval_every=2, seed=0, threads=1)
    # No network beats its anchor by 100 standard errors of the difference.
    options = {**OPTIONS, "data": str(data), "anchor": "climatology", "margin": 100.0}
    progress = io.StringIO()
    summary = train("forecast", options, config, out=tmp_path / "run", log=lines.append,
                    progress=progress)  # fmt: skip
    text = "\n".join([*lines, progress.getvalue(), *summary.lines])
    assert "not lower by 100 standard error(s): the model forecasts its anchor" in text
    assert "the model's point forecasts are its anchor's, climatology" in text
    assert summary.metrics["correction"] == 0.0
    assert summary.metrics["network_mase"] != summary.metrics["mase"]
    model = rnnkit.load(tmp_path / "run")
    assert isinstance(model, ForecastModel) and float(model.correction) == 0.0
    values = [np.asarray(v) for v in read_series(data).values]
    scored = windows([len(v) for v in values], 4, 1, "test")
    alone = anchor_forecasts(values, scored, 4, 4, "climatology")
    for got, want in zip(model_forecasts(model, values, scored), alone, strict=True):
        np.testing.assert_array_equal(got.mean, want.mean)
        assert np.all(got.upper > got.lower)
    # the validation MASE it is ranked by is the anchor's alone
    from rnnkit.tasks.forecast.anchors import anchor_mase

    valid = windows([len(v) for v in values], 4, 1, "validation")
    assert summary.best["value"] == pytest.approx(anchor_mase(values, valid, 4, 4, "climatology"))


def test_a_run_records_its_anchor_and_older_runs_read_as_seasonal_naive(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    season = np.tile([0.0, 5.0, -3.0, 1.0], 15)  # a fixed season in noise: climatology wins
    path = tmp_path / "noisy.csv"
    path.write_text("y\n" + "\n".join(f"{v:.4f}" for v in 50 + season + rng.normal(0, 2, 60)))
    config = TrainConfig(steps=2, eval_every=2, seed=0, threads=1)
    out = tmp_path / "run"
    options = {**OPTIONS, "data": str(path), "anchor": "auto", "origins": 8}
    printed: list[str] = []
    summary = train(
        "forecast", options, config, out=out, log=printed.append, progress=io.StringIO()
    )
    printed += summary.lines
    derived = json.loads((out / "config.json").read_text())["derived"]
    assert derived["anchor"] == "climatology"
    scores = derived["anchor_validation_mase"]
    assert scores["climatology"] < scores["seasonal-naive"]
    text = "\n".join(printed)
    assert "anchor: climatology (MASE of each alone on validation: seasonal-naive " in text
    assert "its anchor alone (climatology): MASE " in text  # beside the test scores
    model = rnnkit.load(out)
    assert model.config.anchor == "climatology"
    online = OnlineForecaster(model, history=season[:20] + 50)
    assert online.steps.anchor == "climatology"
    # a run from before anchors (no "anchor" in its derived values) forecasts as it did
    stored = json.loads((out / "config.json").read_text())
    del stored["derived"]["anchor"], stored["derived"]["anchor_validation_mase"]
    (out / "config.json").write_text(json.dumps(stored))
    assert rnnkit.load(out).config.anchor == "seasonal-naive"
    # a run from before --adapt reads as split conformal; other missing options are refused
    del stored["options"]["adapt"]
    (out / "config.json").write_text(json.dumps(stored))
    stored_options = rnnkit.load(out).rnnkit_config.options
    assert ForecastTask.parse_options(stored_options, "options").adapt == 0.0
    del stored["options"]["margin"]
    (out / "config.json").write_text(json.dumps(stored))
    with pytest.raises(ValueError, match=r"config.json: options: missing key\(s\) margin$"):
        rnnkit.load(out)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--horizon", "5"], "--horizon must be at most 4, the horizon {run} was trained for; "
         "got 5"),
        (["--data", "{missing}"], "--data: series file not found: {missing}; expected a .tsf or "
         ".csv file"),
        (["--data", "{bad}"], "{bad}, line 3: column 'x' has 'oops'; expected a number, or an "
         "empty cell, ?, NA or NaN for a missing value"),
        (["--series", "shop0"], "--series picks the series drawn by --plot; give --plot FILE.png"),
        (["--plot", "{png}", "--series", "nope"], "--series 'nope' is not a series of {data}; it "
         "has 'shop0', 'shop1', 'shop2', 'shop3', 'shop4'"),
        (["--format", "long"], "--format and --time-column describe --data; give --data FILE"),
    ],
)  # fmt: skip
def test_forecast_command_errors_are_one_line(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list, message: str
) -> None:
    bad = write(tmp_path, "bad.csv", "x\n1\noops\n")
    paths = {"missing": str(tmp_path / "nope.csv"), "bad": str(bad), "png": str(tmp_path / "p.png"),
             "run": str(run_dir), "data": str(run_dir.parent / "shops.csv")}  # fmt: skip
    argv = [a.format(**paths) for a in argv]
    capsys.readouterr()
    assert main(["forecast", str(run_dir), *argv]) == 2
    err = capsys.readouterr().err
    assert err == f"rnnkit forecast: error: {message.format(**paths)}\n"
    assert not (tmp_path / "p.png").exists()


def test_cli_train_forecast_and_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = wide_csv(tmp_path)
    out = tmp_path / "run"
    argv = ["train", "forecast", "--data", str(data), "--steps", "4", "--eval-every", "2",
            "--horizon", "4", "--hidden", "8", "--batch-size", "4", "--context", "8",
            "--out", str(out), "--threads", "1"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "seasonal naive:" in printed and "80% coverage" in printed
    assert "their level adapting from the first test origin on: --adapt 0.05)" in printed
    assert main(["eval", str(out), "--out", str(tmp_path / "figs")]) == 0
    assert "test (the last 4 values of each of 5 series" in capsys.readouterr().out
    assert (tmp_path / "figs" / "forecast.png").exists()
    split = [str(tmp_path / "split") if a == str(out) else a for a in argv]
    assert main([*split, "--adapt", "0"]) == 0
    assert "--adapt" not in capsys.readouterr().out
    assert json.loads((tmp_path / "split" / "config.json").read_text())["options"]["adapt"] == 0


def test_a_data_season_longer_than_every_history_falls_back_to_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A .tsf's @frequency (or a CSV's dates) naming a season no test forecast has a whole
    # one of history for: the run goes on without one and says why.
    rows = (",".join(str(v % (3 + i)) for v in range(11)) for i in range(3))
    series = "".join(f"s{i}:{row}\n" for i, row in enumerate(rows))
    header = "@attribute series_name string\n@frequency monthly\n@horizon 2\n@data\n"
    monthly = write(tmp_path, "monthly.tsf", header + series)
    out = tmp_path / "run"
    assert main(["train", "forecast", "--data", str(monthly), "--steps", "2", "--out",
                 str(out)]) == 0  # fmt: skip
    first = capsys.readouterr().out.splitlines()[0]
    assert "; horizon 2, seasonality 1 (the data's 12 is as long as the history before any " \
        "test forecast), 1 origin(s) per series" in first  # fmt: skip
    assert json.loads((out / "config.json").read_text())["derived"]["seasonality"] == 1


def test_cli_train_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = write(tmp_path, "one.csv", "y\n1\n2\n3\n4\n5\n6\n")
    # A season given with --seasonality as long as the histories would be used by no
    # forecast: refused (the data's own falls back to none: test_a_data_season_longer_...).
    thirteen = write(tmp_path, "thirteen.csv", "y\n" + "".join(f"{v % 5}\n" for v in range(13)))
    monthly = write(tmp_path, "monthly.csv", "month,y\n" + "".join(
        f"2020-{m:02d},{m}\n" for m in range(1, 13)))  # fmt: skip
    hourly = write(tmp_path, "hourly.csv", "ds,y\n" + "".join(
        f"2020-01-01T{h:02d}:00Z,{h}\n" for h in range(24)))  # fmt: skip
    cases = [
        (["--data", str(one)], f"{one} does not say how far to forecast: give --horizon (e.g. "
         "6 for yearly, 8 for quarterly, 18 for monthly series, as in M4)"),
        (["--data", str(monthly)], f"{monthly} does not say how far to forecast: give "
         "--horizon (e.g. 18, as M4 forecast its monthly series)"),
        (["--data", str(hourly)], f"{hourly} does not say how far to forecast: give "
         "--horizon (e.g. 48, as M4 forecast its hourly series)"),
        (["--data", str(one), "--horizon", "3"], f"{one}: the series are too short for "
         "--horizon 3 with --origins 3: a series needs at least 13 values (training, "
         "validation and test each need their share); the longest has 6"),
        (["--data", str(thirteen), "--horizon", "2", "--seasonality", "12"],
         f"{thirteen}: --seasonality 12 is as long as every series' history at its last "
         "test origin or longer (the longest holds 11 values), so no forecast could use "
         "the season; give --seasonality below 11, or 1 for none"),
        (["--time-column", "t"], "--format and --time-column describe --data; give --data FILE"),
        (["--data", str(one), "--dataset", "nile"],
         f"give --data or --dataset, not both; got --data {one} and --dataset nile"),
        (["--interval-scale", "2"],
         "forecast options: --interval-scale is for --train-until test (a refit); with "
         "--train-until validation the intervals are scaled on validation (--calibrate); got "
         "--interval-scale 2"),
        (["--adapt", "0.05", "--no-calibrate"],
         "forecast options: --adapt is for test intervals recalibrated at each origin "
         "(--calibrate with --train-until validation); got --adapt 0.05 with --no-calibrate"),
        (["--adapt", "0.05", "--train-until", "test"],
         "forecast options: --adapt is for test intervals recalibrated at each origin "
         "(--calibrate with --train-until validation); got --adapt 0.05 with --train-until "
         "test"),
    ]  # fmt: skip
    for extra, message in cases:
        capsys.readouterr()
        out = tmp_path / "never"
        assert main(["train", "forecast", *extra, "--steps", "2", "--out", str(out)]) == 2
        assert capsys.readouterr().err == f"rnnkit train: error: {message}\n"
        assert not out.exists()
    with pytest.raises(SystemExit) as exc:  # argparse's own check of the value
        main(["train", "forecast", "--margin", "-1", "--out", str(tmp_path / "never")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("argument --margin: expected a finite number in [0, 100]; got '-1'")
    assert "\n" not in err and not (tmp_path / "never").exists()
    with pytest.raises(SystemExit) as exc:
        main(["train", "forecast", "--adapt", "1.5", "--out", str(tmp_path / "never")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("argument --adapt: expected a finite number in [0, 1]; got '1.5'")
    assert "\n" not in err and not (tmp_path / "never").exists()


def constant_tsf(tmp_path: Path, *levels: float, varying: int = 0) -> Path:
    """One line of 40 equal values per level, then ``varying`` series that change."""
    lines = ["@relation t", "@horizon 4", "@data"]
    lines += [",".join(f"{v:g}" for v in [level] * 40) for level in levels]
    lines += [",".join(f"{v:.3f}" for v in series(40, seed=k)) for k in range(varying)]
    return write(tmp_path, "c.tsf", "\n".join(lines) + "\n")


def test_series_that_are_all_constant_are_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never"
    data = constant_tsf(tmp_path, 5, 7)
    assert main(["train", "forecast", "--data", str(data), "--steps", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and not out.exists()
    assert err.endswith(
        "c.tsf: MASE, the validation metric, is undefined: no series changes at the seasonal "
        "lag (m = 1) in the values before its validation forecasts, and MASE divides by the "
        "mean absolute change at that lag"
    )


def test_a_constant_series_among_others_is_left_out_of_mase(tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = TrainConfig(steps=2, eval_every=2, seed=0, threads=1)
    options = {"hidden_size": 8, "batch_size": 4, "context": 8}
    data = constant_tsf(tmp_path, 5, varying=1)
    train("forecast", {**options, "data": str(data)}, config, out=out, log=lambda _: None,
          progress=io.StringIO())  # fmt: skip
    assert (out / "model.safetensors").exists()
    rows = csv.DictReader((out / "metrics.csv").open())
    mases = [float(r["value"]) for r in rows if r["metric"] == "mase"]
    assert mases and all(math.isfinite(v) for v in mases)  # the varying series' MASE


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"source": None}, "derived: missing key(s) source of a forecast run"),
        ({"origins": None}, "derived: missing key(s) origins of a forecast run"),
        ({"horizon": None}, "derived: missing key(s) horizon of a forecast run"),
        ({"horizon": "four"}, "derived: horizon must be a positive integer; got 'four'"),
        ({"scale_window": 0}, "derived: scale_window must be a positive integer; got 0"),
        ({"source": "shops.csv"}, "derived: source must be an object with a path or a dataset; "
         "got 'shops.csv'"),
        ({"anchor": "mean"}, "derived: anchor must be one of seasonal-naive, climatology, drift; "
         "got 'mean'"),
    ],
)  # fmt: skip
def test_a_hand_edited_config_is_refused_in_one_line(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: dict, message: str
) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    config = json.loads((run / "config.json").read_text())
    for key, value in edit.items():
        if value is None:
            del config["derived"][key]
        else:
            config["derived"][key] = value
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError) as err:
        rnnkit.load(run)
    assert str(err.value) == f"{run / 'config.json'}: {message}"
    capsys.readouterr()
    for argv in (["eval", str(run), "--out", str(tmp_path / "figs")],
                 ["forecast", str(run), "--horizon", "2"]):  # fmt: skip
        assert main(argv) == 2
        err_line = capsys.readouterr().err
        assert err_line == f"rnnkit {argv[0]}: error: {run / 'config.json'}: {message}\n"
    assert not (tmp_path / "figs").exists()


def test_resume_refuses_changed_data(tmp_path: Path) -> None:
    data = wide_csv(tmp_path)
    out = tmp_path / "run"
    quiet = {"log": lambda _: None, "progress": io.StringIO()}
    config = TrainConfig(steps=2, eval_every=2, threads=1)
    train("forecast", {**OPTIONS, "data": str(data)}, config, out=out, **quiet)
    data.write_text(data.read_text().replace("week,shop0", "week,shop0").replace(",1", ",2"))
    with pytest.raises(ValueError, match="has changed since this run started"):
        train("forecast", resume=out, steps=4, **quiet)


def test_an_int8_forecaster_without_parameters_still_forecasts() -> None:
    """rnnkit.quantize_dynamic leaves a forecaster no parameters (packed int8 weights):
    the forecast functions find its device from a buffer, not from a parameter."""
    import warnings

    import rnnkit

    model = small_model(4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        int8 = rnnkit.quantize_dynamic(model)
    assert next(int8.parameters(), None) is None
    y = series(30)
    got = forecast(int8, [y])[0]
    want = forecast(model, [y])[0]
    np.testing.assert_allclose(got.mean, want.mean, rtol=0.05)
    assert OnlineForecaster(int8, y).forecast.mean.shape == want.mean.shape


def test_a_refit_trains_on_every_value_before_the_test_with_the_given_scale(
    tmp_path: Path,
) -> None:
    from rnnkit.tasks.forecast import training_end

    data = wide_csv(tmp_path, n_series=2, n=40)
    config = TrainConfig(steps=4, eval_every=4, seed=0, threads=1)
    quiet = {"log": lambda _: None, "progress": io.StringIO()}
    options = {**OPTIONS, "data": str(data), "origins": 2}
    first = ForecastTask(ForecastTask.parse_options(options, "options", partial=True))
    first.prepare(config, Context(0, 1, torch.device("cpu")))
    refit_options = {**options, "train_until": "test", "interval_scale": 2.5}
    task = ForecastTask(ForecastTask.parse_options(refit_options, "options", partial=True))
    task.prepare(config, Context(0, 1, torch.device("cpu")))
    # training sees the validation windows' values too: up to the first test origin
    assert first.ends == [training_end(40, 4, 2)] * 2 == [30, 30]
    assert task.ends == [min(w.origin for w in task.test)] * 2 == [35, 35]
    assert "a refit" in task.describe()
    out = tmp_path / "refit"
    every = TrainConfig(steps=4, eval_every=1, seed=0, threads=1)
    summary = train("forecast", refit_options, every, out=out, **quiet)
    assert not task.selects and summary.best["step"] == 4  # the windows trained on choose nothing
    model = rnnkit.load(out)
    assert float(model.interval_scale) == 2.5  # the given scale, not one fitted on validation


def test_an_ensemble_run_trains_loads_and_forecasts(tmp_path: Path) -> None:
    # (kill -9 and a bitwise resume of an ensemble run: tests/test_promises.py)
    data = wide_csv(tmp_path, n_series=3, n=40)
    quiet = {"log": lambda _: None, "progress": io.StringIO()}
    out = tmp_path / "run"
    train("forecast", {**OPTIONS, "data": str(data), "members": 3},
          TrainConfig(steps=4, eval_every=2, seed=0, threads=1), out=out, **quiet)  # fmt: skip
    model = rnnkit.load(out)
    assert len(model.rnn.layers) == 3 and model.config.members == 3
    f = forecast(model, read_series(data).values)
    assert len(f) == 3 and all(np.all(x.lower <= x.upper) for x in f)


# ---- intervals calibrated on every outcome known at the origin -------------------------


def _ratio(a: float, f: Forecast, k: int) -> float:
    """How far a value lies out along its side of the interval (1: on the bound)."""
    m = f.mean[k]
    return (a - m) / (f.upper[k] - m) if a >= m else (m - a) / (m - f.lower[k])


def test_recalibrated_intervals_by_hand() -> None:
    h, r = 4, 3
    values = [series(40, seed=0), series(36, seed=1) * 3]
    model = small_model(horizon=h)
    model.interval_scale.fill_(1.0)
    test = windows([len(y) for y in values], h, r, "test")
    got = recalibrated(model, values, test, r, adapt=0)  # plain split conformal
    for w, g in zip(test, got, strict=True):
        e = len(values[w.series]) - w.origin
        # every forecast from a first validation origin on, every value of it that lies
        # more than e values before the end of its series: known at this origin
        ratios = []
        for y in values:
            for o in range(len(y) - 2 * h - 2 * r + 2, len(y)):
                f = forecast(model, [y[:o]])[0]
                ratios += [_ratio(y[o + k], f, k) for k in range(h) if len(y) - (o + k) > e]
        c = sorted(ratios)[math.ceil((len(ratios) + 1) * 0.8) - 1]  # split conformal's rank
        f = forecast(model, [values[w.series][: w.origin]])[0]
        np.testing.assert_allclose(g.mean, f.mean)
        np.testing.assert_allclose(g.upper - g.mean, c * (f.upper - f.mean), rtol=1e-6)
        np.testing.assert_allclose(g.mean - g.lower, c * (f.mean - f.lower), rtol=1e-6)


def _conformal_by_hand(ratios: list[float], coverage: float) -> float:
    """The ceil((n + 1) coverage)-th smallest, the smallest or largest beyond the ends."""
    k = min(len(ratios), max(1, math.ceil((len(ratios) + 1) * coverage)))
    return min(max(sorted(ratios)[k - 1], 0.05), 100.0)


def test_conformal_factor_is_the_textbook_rank_and_covers() -> None:
    from rnnkit.deploy import conformal_factor, conformal_rank

    # the ceil((n + 1) 0.8)-th smallest: 9 of 1..10, 81 of 1..100, 4 of 1..4 (k = 4)
    assert conformal_factor(np.arange(1.0, 11.0)) == 9.0
    assert conformal_factor(np.arange(1.0, 101.0)) == 81.0
    assert conformal_factor(np.arange(1.0, 5.0)) == 4.0
    assert conformal_factor(np.arange(1.0, 5.0) / 10, coverage=0.0) == 0.1  # clamped to 1
    assert conformal_factor([]) == 1.0 and conformal_factor([1e6]) == 100.0
    # the guarantee: for exchangeable scores a new one is at most it with probability
    # k / (n + 1), which is at least the coverage (Vovk et al. 2005)
    rng = np.random.default_rng(0)
    for n in (4, 10, 19, 40):
        k = conformal_rank(n, 0.8)
        scores = rng.exponential(size=(20000, n + 1))
        q = np.array([conformal_factor(row[:n]) for row in scores[:, :n]])
        covered = np.mean(scores[:, n] <= q)
        sd = math.sqrt(k / (n + 1) * (1 - k / (n + 1)) / len(scores))
        assert k / (n + 1) >= 0.8
        assert abs(covered - k / (n + 1)) < 4 * sd, (n, covered, k / (n + 1))


def _outside_plain(actual, f, k):  # the formula before the overflow fix
    m = f.mean[k]
    up = (actual - m) / np.maximum(f.upper[k] - m, 1e-12)
    down = (m - actual) / np.maximum(m - f.lower[k], 1e-12)
    return np.where(actual >= m, up, down)


def test_outside_is_the_plain_ratio_on_ordinary_values() -> None:
    from rnnkit.deploy import Forecast, outside

    rng = np.random.default_rng(3)
    for scale in (1e-9, 1.0, 1e6, 1e150):
        mean = rng.normal(size=200) * scale
        lower = mean - rng.exponential(size=200) * scale * rng.choice([1.0, 1e-15], 200)
        upper = mean + rng.exponential(size=200) * scale * rng.choice([1.0, -0.1, 1e-15], 200)
        actual = mean + rng.normal(size=200) * scale * 3
        f = Forecast(mean, lower, upper)
        k = rng.permutation(200)
        want = _outside_plain(actual[k], f, k)
        assert np.array_equal(outside(actual[k], f, k), want)  # bit for bit
    f = Forecast(np.array([1.0, 2.0]), np.array([0.0, 1.5]), np.array([3.0, 2.5]))
    assert float(outside(4.0, f, 0)) == 1.5 and float(outside(1.0, f, 1)) == 2.0


def test_outside_near_the_float_range_stays_finite_or_inf_without_warnings() -> None:
    # It overflowed with a RuntimeWarning: a difference of two huge values (a ratio of
    # 0.96 became inf / inf = NaN) or a huge miss divided by a narrow interval.
    from rnnkit.deploy import Forecast, outside

    f = Forecast(
        np.array([-1e300, -1e308, 1e308, -1.5e308]),
        np.array([-1e300, -1.7e308, 1.7e307, -1.6e308]),
        np.array([-1e300, 1.7e308, 1.1e308, 1.5e308]),
    )
    actual = np.array([1e300, 1.6e308, -1.7e308, 1.5e308])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = outside(actual, f, np.arange(4))
        with np.errstate(over="ignore", invalid="ignore"):
            plain = _outside_plain(actual, f, np.arange(4))
    # By hand: 2e300 over the width's floor 1e-12 is past the range; (1.6 + 1) / (1.7 + 1);
    # (1 + 1.7) / (1 - 0.17); 3 / 3 on the bound.
    np.testing.assert_allclose(got, [math.inf, 2.6 / 2.7, 2.7 / 0.83, 1.0], rtol=1e-15)
    np.testing.assert_array_equal(plain, [math.inf, math.nan, math.inf, math.nan])


def test_sorted_scores_keep_order_across_blocks() -> None:
    from rnnkit.deploy import SortedScores

    rng = np.random.default_rng(1)
    values = list(rng.normal(size=500)) + [0.5] * 40 + [float("nan")]  # ties and a NaN
    rng.shuffle(values)
    kept, seen = SortedScores(block=8), []
    for x in values:
        kept.add(x)
        seen.append(math.inf if math.isnan(x) else x)
        want = sorted(seen)
        for k in {1, len(want), (len(want) + 1) // 2, max(1, int(0.8 * len(want)))}:
            assert kept.kth(k) == want[k - 1]
    assert list(kept) == sorted(seen) and len(kept) == len(values)
    assert max(len(b) for b in kept.blocks) <= 16 and len(kept.blocks) > 30
    with pytest.raises(IndexError, match=r"k must be in \[1, 541\]; got 0"):
        kept.kth(0)


@pytest.mark.parametrize("adapt", [0.05, 0.5])
@pytest.mark.parametrize("adapt_from", [None, 12])
def test_recalibrated_intervals_adapt_to_their_misses_by_hand(
    adapt: float, adapt_from: int | None
) -> None:
    # Adaptive conformal inference (Gibbs & Candes 2021), one value at a time: the level
    # of the quantile at each origin is 1 - alpha, and alpha moves by adapt (0.2 - the
    # share of the arriving value's scores outside the intervals their forecasts had) -
    # on the values from the first test origin on (the default), or from adapt_from
    # values before the end (12: every value since the first validation origin).
    h, r = 4, 3
    y = np.concatenate([series(30), series(12, seed=3) * 4 - 60])  # the errors grow
    model = small_model(horizon=h)
    model.interval_scale.fill_(1.0)
    test = windows([len(y)], h, r, "test")
    start = len(y) - 2 * h - 2 * r + 2
    moving = test[-1].origin if adapt_from is None else len(y) - adapt_from
    assert moving == (len(y) - h - r + 1 if adapt_from is None else start)
    own = {o: forecast(model, [y[:o]])[0] for o in range(start, len(y))}
    alpha, ratios, given = 0.2, [], {}
    for o in range(start, len(y)):
        given[o] = _conformal_by_hand(ratios, 1 - alpha) if ratios else 1.0
        pending = range(max(start, o - h + 1), o + 1)  # the forecasts of y[o] made so far
        scores = [_ratio(y[o], own[q], o - q) for q in pending]
        missed = np.mean([s > given[q] for s, q in zip(scores, pending, strict=True)])
        ratios += scores
        if o >= moving:
            alpha = min(1.0, max(0.0, alpha + adapt * (0.2 - missed)))
    got = recalibrated(model, [y], test, r, adapt=adapt, adapt_from=adapt_from)
    plain = recalibrated(model, [y], test, r, adapt=0)
    for w, g in zip(test, got, strict=True):
        f = own[w.origin]
        np.testing.assert_allclose(
            g.upper - g.mean, given[w.origin] * (f.upper - f.mean), rtol=1e-6
        )
        np.testing.assert_allclose(
            g.mean - g.lower, given[w.origin] * (f.mean - f.lower), rtol=1e-6
        )
    # test[-1], the first test origin (the windows run back from the end)
    if adapt_from is None:  # no value has moved the level yet: split conformal's interval
        np.testing.assert_array_equal(got[-1].upper, plain[-1].upper)
    else:  # more misses than 20 % by the test: the adaptive intervals are the wider
        assert (got[-1].upper - got[-1].lower).sum() > (plain[-1].upper - plain[-1].lower).sum()


def test_recalibration_level_moves_with_the_misses() -> None:
    state = Recalibration(horizon=2, validated=1.3, adapt=0.1)
    assert state.factor == 1.3  # nothing arrived yet: the validated factor
    state.score([2.0, 0.5], [1.0, 1.0])  # one of two outside
    assert state.alpha == pytest.approx(0.2 + 0.1 * (0.2 - 0.5))
    state.score([0.4], [1.0])
    assert state.alpha == pytest.approx(0.17 + 0.1 * 0.2)
    assert state.factor == _conformal_by_hand([2.0, 0.5, 0.4], 1 - state.alpha)
    for _ in range(20):
        state.score([5.0], [1.0])
    assert state.alpha == 0.0 and state.factor == 5.0  # every value missed: the largest ratio
    plain = Recalibration(horizon=2, validated=1.3, adapt=0)
    plain.score([2.0, 0.5, 0.4, 3.0], [1.0] * 4)
    assert plain.alpha == 0.2 and plain.factor == _conformal_by_hand([2.0, 0.5, 0.4, 3.0], 0.8)
    with pytest.raises(ValueError, match=r"adapt must be a number >= 0; got -0.1"):
        Recalibration(horizon=2, validated=1.0, adapt=-0.1)


def test_recalibration_level_holds_still_over_its_first_steps() -> None:
    held = Recalibration(horizon=2, validated=1.3, adapt=0.1, hold=2)
    held.score([], [])  # a step with no value arriving does not count
    held.score([2.0, 0.5], [1.0, 1.0])
    held.score([3.0], [1.0])
    assert held.alpha == 0.2 and held.steps == 2  # two steps held: their scores count,
    assert held.factor == _conformal_by_hand([2.0, 0.5, 3.0], 0.8)  # the level does not
    held.score([4.0], [1.0])  # the third moves it
    assert held.alpha == pytest.approx(0.2 + 0.1 * (0.2 - 1.0))
    assert Recalibration(horizon=2, validated=1.0).hold == 0  # the mechanism's default
    for bad in (-1, 1.5, True, None):
        with pytest.raises(
            ValueError, match=rf"hold must be a count of time steps >= 0; got {bad!r}"
        ):
            Recalibration(horizon=2, validated=1.0, hold=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("adapt", [0.0, 0.3])
def test_recalibrated_intervals_see_nothing_from_the_origin_on(adapt: float) -> None:
    h, r = 4, 3
    y = series(40)
    model = small_model(horizon=h)
    model.interval_scale.fill_(1.7)
    test = windows([len(y)], h, r, "test")
    before = recalibrated(model, [y], test, r, adapt=adapt)
    # Plain split conformal undoes the stored factor, then refits it. (The adaptive level
    # also counts the misses of the first forecasts, which had the stored factor.)
    plain = recalibrated(model, [y], test, r, adapt=0)
    again = recalibrated(small_model(horizon=h), [y], test, r, adapt=0)  # stored factor 1
    for w, a, p, b in zip(test, before, plain, again, strict=True):
        np.testing.assert_allclose(p.upper, b.upper)
        changed = y.copy()
        changed[w.origin :] *= 5  # the values from this origin on: not known at it
        late = recalibrated(model, [changed], [w], r, adapt=adapt)[0]
        np.testing.assert_array_equal(late.lower, a.lower)
        np.testing.assert_array_equal(late.upper, a.upper)
    # no outcome known yet (the first origin a series allows): the stored factor
    first = Window(0, max(2, len(y) - 2 * h - 2 * r + 2))
    alone = recalibrated(model, [y], [first], r, adapt=adapt)[0]
    stored = model_forecasts(model, [y], [first])[0]
    np.testing.assert_allclose(alone.upper, stored.upper, rtol=1e-12)
    # a value before the last origin is known there, and moves its interval
    changed = y.copy()
    changed[test[0].origin - 1] += 50
    moved = recalibrated(model, [changed], test[:1], r, adapt=adapt)[0]
    assert not np.array_equal(moved.upper, before[0].upper)


def test_test_scores_recalibrate_unless_a_refit_or_uncalibrated(tmp_path: Path) -> None:
    data = wide_csv(tmp_path, n_series=2, n=40)
    model = small_model(seasonality=4)
    model.interval_scale.fill_(1.3)
    for extra, recal in (({}, True), ({"calibrate": False}, False),
                         ({"train_until": "test", "interval_scale": 1.3}, False)):  # fmt: skip
        options = {**OPTIONS, "data": str(data), "origins": 2, **extra}
        task = ForecastTask(ForecastTask.parse_options(options, "options", partial=True))
        task.prepare(TrainConfig(steps=1, threads=1), Context(0, 1, torch.device("cpu")))
        assert task.recalibrates is recal
        assert task.options.adapt == (0.05 if recal else 0.0)  # the default step, resolved
        ours, _ = task.scores(model, "test")
        fcs = (recalibrated(model, task.values, task.test, 2, adapt=0.05) if recal
               else model_forecasts(model, task.values, task.test))  # fmt: skip
        assert ours == score(task.values, task.test, fcs, 4, 4)


def test_adapt_option_sets_the_level_of_the_test_intervals(tmp_path: Path) -> None:
    data = wide_csv(tmp_path, n_series=2, n=40)
    model = small_model(seasonality=4)
    model.interval_scale.fill_(1.3)
    options = {**OPTIONS, "data": str(data), "origins": 3, "adapt": 0.5}
    task = ForecastTask(ForecastTask.parse_options(options, "options", partial=True))
    task.prepare(TrainConfig(steps=1, threads=1), Context(0, 1, torch.device("cpu")))
    ours, _ = task.scores(model, "test")
    adaptive = recalibrated(model, task.values, task.test, 3, adapt=0.5)
    assert ours == score(task.values, task.test, adaptive, 4, 4)
    plain = recalibrated(model, task.values, task.test, 3, adapt=0)
    given = task.test_forecasts(model, task.test, adapt=0)  # an argument overrides --adapt
    assert all(np.array_equal(a.upper, b.upper) for a, b in zip(given, plain, strict=True))
    # A step this large moves the level after the first misses: the intervals differ.
    assert any(not np.array_equal(a.upper, b.upper) for a, b in zip(adaptive, plain, strict=True))


@pytest.mark.parametrize(
    ("chunks", "adapt", "hold"),
    [(1, 0.0, 0), (3, 0.0, 0), (1, 0.3, 0), (3, 0.3, 0), (1, 0.3, 5), (3, 0.3, None)],
)
def test_online_recalibration_equals_recalibrated_on_the_longer_series(
    chunks: int, adapt: float, hold: int | None
) -> None:
    h = 4
    y = series(40)
    model = small_model(horizon=h)
    model.interval_scale.fill_(1.4)
    n0 = 20
    online = OnlineForecaster(model, history=y[:n0], recalibrate=True, adapt=adapt, hold=hold)
    held = 2 * h - 1 if hold is None else hold  # the default: 2 * horizon - 1 steps
    assert online.recalibration is not None and online.recalibration.hold == held
    assert online.interval_scale == pytest.approx(1.4)  # no outcome yet: the validated one
    fixed = OnlineForecaster(model, history=y[:n0])
    k = n0
    while k < len(y):
        got = online.extend(y[k : k + chunks])
        fixed.extend(y[k : k + chunks])
        k = min(k + chunks, len(y))
        # the forecasts since the history, scored on the values up to k: as one pass
        # (online, the level adapts from the value `held` steps after the history on)
        moving = max(0, k - n0 - held)
        want = recalibrated(
            model, [y[:k]], [Window(0, k)], 1, starts=[n0], adapt=adapt, adapt_from=moving
        )[0]
        np.testing.assert_allclose(got.mean, want.mean, rtol=1e-5)
        np.testing.assert_allclose(got.upper - got.mean, want.upper - want.mean, rtol=1e-4)
        np.testing.assert_allclose(got.mean - got.lower, want.mean - want.lower, rtol=1e-4)
        np.testing.assert_allclose(fixed.forecast.mean, got.mean)  # the point forecast is one
    assert online.interval_scale != pytest.approx(1.4)


def test_scores_are_printed_in_exponent_notation_from_1e6_on() -> None:
    # A diverged model's MASE of 1e200 was printed with {:.3f}: a 200-digit number.
    from rnnkit.tasks.forecast.anchors import anchor_line
    from rnnkit.tasks.forecast.metrics import Scores, shown

    ordinary = Scores(mase=0.8765, smape=12.345, coverage=0.8125, windows=4)
    assert ordinary.line() == "MASE 0.876, sMAPE 12.35%, 80% coverage 81.2%"  # as before
    huge = Scores(mase=1e200, smape=199.5, coverage=0.0, windows=4)
    assert huge.line() == "MASE 1.000e+200, sMAPE 199.50%, 80% coverage 0.0%"
    for value, text in ((999999.9994, "999999.999"), (999999.9996, "1000000.000"),
                        (1e6, "1.000e+06"), (-2.5e7, "-2.500e+07"), (-12.3456, "-12.346"),
                        (math.inf, "inf"), (math.nan, "nan"), (0.0, "0.000")):  # fmt: skip
        assert shown(value) == text == (f"{value:.3f}" if abs(value) < 1e6 else f"{value:.3e}")
    assert shown(123.456, 2) == "123.46" and shown(3e9, 2) == "3.00e+09"
    derived = {"anchor": "naive", "anchor_validation_mase": {"drift": 2e7, "climatology": 1.23456}}
    assert anchor_line(derived) == (
        "anchor: naive (MASE of each alone on validation: drift 2.000e+07, climatology 1.235)"
    )


@pytest.mark.parametrize("bad", [np.float64("nan"), np.float32("inf"), torch.tensor(-math.inf)])
def test_a_value_that_is_not_finite_shows_as_a_float_whatever_its_type(bad) -> None:
    # A 2-D array's NaN showed as np.float64(nan), a list's as nan.
    with pytest.raises(ValueError) as err:
        forecast(small_model(), [[1.0, 2.0, 3.0, 4.0], [1.0, bad, 3.0]])
    assert str(err.value) == (
        f"forecast: series 2, value 2: a forecast value must be a finite number; got {float(bad)!r}"
    )
