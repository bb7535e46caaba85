"""rnnkit's evaluation metrics and baselines against independent references: the M4 /
Monash definitions of MASE and sMAPE written out by hand, statsmodels' SARIMAX for seasonal
naive's interval (FPP3, 5.5), scikit-learn for accuracy, the confusion matrix, per-tag
accuracy and the majority class, scipy's rankdata for the mean ranks, and a numpy
log-softmax for bits per character. Every comparison is to 1e-12 in float64.

aeon (installed for the classification benchmark) has no forecasting metrics in the
version installed, so the M4 formulas are the reference for MASE and sMAPE.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import norm, rankdata
from sklearn.dummy import DummyClassifier
from sklearn.metrics import accuracy_score, confusion_matrix, recall_score

from rnnkit.data.vocab import Vocabulary
from rnnkit.deploy import Z80, Forecast
from rnnkit.models.lm import CharLM, CharLMConfig
from rnnkit.tasks import classify, tag
from rnnkit.tasks.forecast import (
    Window,
    mase,
    mase_scale,
    score,
    seasonal_naive,
    smape,
    windows,
)
from rnnkit.train import bits_per_char
from rnnkit.train.fit import accuracy as fit_accuracy

TOL = 1e-12
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _bench(name: str) -> Any:
    """A benchmark script as a module (its own imports, e.g. ``_args``, resolved)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- forecasting: the M4 / Monash definitions, by hand -----------------------------------


def m4_scale(history: np.ndarray, m: int) -> float:
    """M4's MASE denominator, 1/(n-m) sum_{t=m+1}^{n} |Y_t - Y_{t-m}|, with the Monash
    archive's fallback to lag 1 when the history has no seasonal difference (n <= m)."""
    n = len(history)
    lag = m if n > m else 1
    return sum(abs(history[t] - history[t - lag]) for t in range(lag, n)) / (n - lag)


def m4_mase(y: np.ndarray, f: np.ndarray, history: np.ndarray, m: int) -> float:
    return sum(abs(a - b) for a, b in zip(y, f, strict=True)) / len(y) / m4_scale(history, m)


def m4_smape(y: np.ndarray, f: np.ndarray) -> float:
    """M4's sMAPE, 200/h sum |Y - F| / (|Y| + |F|), in percent; a 0/0 term counts 0."""
    terms = [
        0.0 if a == b == 0 else 200 * abs(a - b) / (abs(a) + abs(b))
        for a, b in zip(y, f, strict=True)
    ]
    return sum(terms) / len(terms)


@pytest.mark.parametrize(("m", "n", "h"), [(1, 30, 1), (4, 23, 9), (12, 50, 12), (7, 9, 3)])
def test_mase_and_smape_are_m4s(m: int, n: int, h: int) -> None:
    rng = np.random.default_rng(n * 100 + m)
    history = rng.normal(10, 3, n)
    y, f = rng.normal(10, 3, h), rng.normal(10, 3, h)
    assert mase_scale(history, m) == pytest.approx(m4_scale(history, m), rel=TOL, abs=0)
    assert mase(y, f, history, m) == pytest.approx(m4_mase(y, f, history, m), rel=TOL, abs=0)
    assert smape(y, f) == pytest.approx(m4_smape(y, f), rel=TOL, abs=0)


def test_mase_takes_lag_1_when_the_history_is_a_season_or_shorter() -> None:
    history = np.array([3.0, 5.0, 4.0, 8.0])
    lag1 = (2 + 1 + 4) / 3
    assert mase_scale(history, 4) == mase_scale(history, 9) == pytest.approx(lag1, rel=TOL)
    assert mase_scale(history, 3) == pytest.approx(5 / 1, rel=TOL)  # one seasonal difference
    assert math.isnan(mase_scale([2.0], 1))  # nothing to difference


def test_smape_is_0_where_both_are_0_and_200_where_one_is() -> None:
    y, f = np.array([0.0, 0.0, 2.0, -1.0]), np.array([0.0, 3.0, 2.0, 1.0])
    assert smape(y, f) == pytest.approx(m4_smape(y, f), rel=TOL)
    assert smape(y, f) == pytest.approx((0 + 200 + 0 + 200) / 4, rel=TOL)
    assert smape(np.zeros(5), np.zeros(5)) == 0.0


def test_a_missing_value_makes_the_metric_nan_as_the_formulas_do() -> None:
    # The task refuses non-finite values before any is scored; the functions themselves
    # let nan through, as the written formulas and numpy do, never a made-up number.
    y, f, history = np.array([1.0, np.nan]), np.array([1.0, 2.0]), np.arange(10.0)
    assert math.isnan(smape(y, f)) and math.isnan(mase(y, f, history, 1))
    assert math.isnan(mase([1.0], [2.0], [1.0, np.nan, 3.0], 1))


def test_a_history_without_change_at_the_lag_has_scale_0() -> None:
    # Constant, or one season repeated exactly: MASE divides by 0 (the task's score
    # leaves such a forecast out and counts it).
    assert mase_scale(np.full(10, 4.0), 1) == 0.0
    assert mase_scale(np.tile([1.0, 5.0, 2.0], 4), 3) == 0.0
    with np.errstate(divide="ignore"):
        assert mase([1.0], [2.0], np.full(5, 4.0), 1) == math.inf


# ---- seasonal naive: FPP3 5.5 by hand, and statsmodels -----------------------------------


def fpp3_seasonal_naive(y: np.ndarray, h: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """FPP3 5.5: y_hat_{T+k} = y_{T+k-m(floor((k-1)/m)+1)}, sigma_k = sigma sqrt(floor((k-1)/m)
    + 1), sigma^2 = 1/(T-K-M) sum e_t^2 with K = 0 parameters and M = m missing residuals."""
    T = len(y)
    m = m if m <= T else 1
    e = [y[t] - y[t - m] for t in range(m, T)]
    sigma = math.sqrt(sum(v * v for v in e) / (T - m))
    z = norm.ppf(0.9)
    mean = np.array([y[T + k - m * ((k - 1) // m + 1) - 1] for k in range(1, h + 1)])
    half = np.array([z * sigma * math.sqrt((k - 1) // m + 1) for k in range(1, h + 1)])
    return mean, half


def statsmodels_seasonal_naive(y: np.ndarray, h: int, m: int) -> tuple[Any, Any, Any]:
    """SARIMAX(0,0,0)(0,1,0)_m (a random walk for m = 1), exact diffuse start, the scale
    concentrated out: its forecast and 80 % interval are seasonal naive's."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if m > 1:
            model = SARIMAX(y, order=(0, 0, 0), seasonal_order=(0, 1, 0, m), concentrate_scale=True)
        else:
            model = SARIMAX(y, order=(0, 1, 0), concentrate_scale=True)
        model.ssm.initialize_diffuse()
        fc = model.filter([]).get_forecast(h)
        lower, upper = fc.conf_int(alpha=0.2).T
    return fc.predicted_mean, lower, upper


def _close(a: Any, b: Any) -> None:
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=TOL, atol=TOL * 10)


def test_z80_is_the_normal_90_percent_quantile() -> None:
    assert pytest.approx(norm.ppf(0.9), rel=TOL) == Z80


@pytest.mark.parametrize(
    ("m", "n", "h"), [(1, 12, 1), (1, 30, 7), (4, 23, 9), (12, 40, 30), (12, 36, 12), (7, 5, 4)]
)
def test_seasonal_naive_is_fpp3s_and_statsmodels(m: int, n: int, h: int) -> None:
    y = np.random.default_rng(m * 1000 + n).normal(size=n).cumsum() * 5
    f = seasonal_naive(y, h, m)
    mean, half = fpp3_seasonal_naive(y, h, m)
    _close(f.mean, mean)
    _close(f.lower, mean - half)
    _close(f.upper, mean + half)
    sm_mean, sm_lower, sm_upper = statsmodels_seasonal_naive(y, h, m if n >= m else 1)
    _close(f.mean, sm_mean)
    _close(f.lower, sm_lower)
    _close(f.upper, sm_upper)


def test_seasonal_naive_of_one_season_or_one_value_has_no_interval() -> None:
    # No seasonal difference to measure the spread by: nan bounds (as statsmodels' nan
    # scale), where the interval had a width of 0.
    y = np.array([1.0, 4.0, 2.0, 3.0])
    f = seasonal_naive(y, 6, 4)
    assert f.mean.tolist() == [1.0, 4.0, 2.0, 3.0, 1.0, 4.0]
    assert np.isnan(f.lower).all() and np.isnan(f.upper).all()
    single = seasonal_naive(np.array([2.5]), 3, 1)
    assert single.mean.tolist() == [2.5] * 3 and np.isnan(single.lower).all()


def test_seasonal_naive_of_a_shorter_history_is_naive_with_lag_1_differences() -> None:
    y = np.array([1.0, 4.0, 2.0])
    f = seasonal_naive(y, 3, 12)
    sigma = math.sqrt((9 + 4) / 2)
    _close(f.mean, [2.0] * 3)
    _close(f.upper - f.mean, [norm.ppf(0.9) * sigma * math.sqrt(k) for k in (1, 2, 3)])


# ---- forecasting: score over windows --------------------------------------------------------


def _forecasts(rng: np.random.Generator, n: int, h: int) -> list[Forecast]:
    out = []
    for _ in range(n):
        mean = rng.normal(5, 2, h)
        half = rng.uniform(0, 3, h)
        out.append(Forecast(mean, mean - half, mean + half))
    return out


def test_score_is_the_mean_of_m4s_per_forecast_scores_and_counts_scale_0_out() -> None:
    rng = np.random.default_rng(7)
    h, m = 5, 4
    values = [
        rng.normal(5, 2, 40),
        np.full(25, 3.0),  # constant: scale 0
        np.concatenate([np.tile([1.0, 2.0, 0.5, 4.0], 5), rng.normal(5, 2, 6)]),  # periodic
        np.zeros(30),  # zeros everywhere: sMAPE 0 against a zero forecast
        rng.normal(0, 1, 17),
    ]
    scored = windows([len(v) for v in values], h, 3, "test")
    fcs = _forecasts(rng, len(scored), h)
    zero = next(i for i, w in enumerate(scored) if w.series == 3)
    fcs[zero] = Forecast(np.zeros(h), np.zeros(h), np.zeros(h))
    s = score(values, scored, fcs, h, m)

    mases, smapes, inside, count = [], [], 0, 0
    for w, f in zip(scored, fcs, strict=True):
        history, actual = values[w.series][: w.origin], values[w.series][w.origin : w.origin + h]
        if m4_scale(history, m) > 0:
            mases.append(m4_mase(actual, f.mean, history, m))
        smapes.append(m4_smape(actual, f.mean))
        inside += sum(lo <= a <= hi for a, lo, hi in zip(actual, f.lower, f.upper, strict=True))
        count += len(actual)
    assert s.windows == len(scored) == 15
    # constant and zero: 3 windows each; periodic: the 2 whose history ends in its period
    assert s.skipped == len(scored) - len(mases) == 8
    assert s.mase == pytest.approx(sum(mases) / len(mases), rel=TOL)
    assert s.smape == pytest.approx(sum(smapes) / len(smapes), rel=TOL)
    assert s.coverage == pytest.approx(inside / count, rel=TOL)


@pytest.mark.parametrize("h", [1, 3])
def test_score_of_one_series_one_window(h: int) -> None:
    rng = np.random.default_rng(h)
    y = rng.normal(10, 1, 20)
    (f,) = _forecasts(rng, 1, h)
    s = score([y], [Window(0, 20 - h)], [f], h, 1)
    actual, history = y[20 - h :], y[: 20 - h]
    assert s.mase == pytest.approx(m4_mase(actual, f.mean, history, 1), rel=TOL)
    assert s.smape == pytest.approx(m4_smape(actual, f.mean), rel=TOL)
    assert s.coverage == np.mean((actual >= f.lower) & (actual <= f.upper))
    assert (s.windows, s.skipped) == (1, 0)


def test_a_nan_forecast_makes_the_scores_nan_and_is_not_counted_as_scale_0() -> None:
    # It made a sMAPE term of 0 (a perfect forecast) and left MASE as a constant history.
    y = np.arange(20.0)
    good = Forecast(np.full(2, 18.0), np.full(2, 17.0), np.full(2, 19.0))
    bad = Forecast(np.array([18.0, np.nan]), np.full(2, 17.0), np.full(2, 19.0))
    s = score([y, y], [Window(0, 18), Window(1, 18)], [good, bad], 2, 1)
    assert math.isnan(s.mase) and math.isnan(s.smape) and s.skipped == 0
    assert math.isnan(m4_smape(y[18:], bad.mean)) and math.isnan(smape(y[18:], bad.mean))


def test_score_with_every_history_constant_has_no_mase() -> None:
    f = Forecast(np.ones(2), np.zeros(2), np.full(2, 2.0))
    s = score([np.full(10, 1.0)], [Window(0, 8)], [f], 2, 1)
    assert math.isnan(s.mase) and s.skipped == 1 and s.smape == 0.0 and s.coverage == 1.0


# ---- benchmarks/forecast.py and forecast_coverage.py: the tables' columns -----------------


def test_the_forecast_table_shows_score_mase_its_ratio_to_naive_smape_and_coverage() -> None:
    bench = _bench("forecast")
    rng = np.random.default_rng(3)
    h, m = 4, 2
    values = [rng.normal(5, 2, 30), rng.normal(5, 2, 26)]
    test = windows([30, 26], h, 2, "test")
    naive = [seasonal_naive(values[w.series][: w.origin], h, m) for w in test]
    ours = _forecasts(rng, len(test), h)
    s_naive, s_ours = score(values, test, naive, h, m), score(values, test, ours, h, m)
    anchor = score(values, test, ours, h, m)
    anchor.coverage = float("nan")  # a point forecast: the table shows "-"
    task = SimpleNamespace(
        derived={"horizon": h, "origins": 2, "seasonality": m, "anchor": "drift"},
        data=SimpleNamespace(describe=lambda: "two series"),
        test=test,
    )
    rows = {"rnnkit": (s_ours, 1.0, 0), "seasonal naive": (s_naive, 0.0, 0), "its": (anchor, 0, 0)}
    lines = bench.table({"name": "x", "task": task, "rows": rows, "network": True}).splitlines()
    assert lines[2].split(" | ")[1:5] == ["MASE", "MASE / naive", "sMAPE %", "80% coverage"]
    naive_mase = np.mean([
        m4_mase(values[w.series][w.origin : w.origin + h], f.mean, values[w.series][: w.origin], m)
        for w, f in zip(test, naive, strict=True)
    ])  # fmt: skip
    for line, (s, fcs) in zip(
        lines[4:], [(s_ours, ours), (s_naive, naive), (anchor, ours)], strict=True
    ):
        actual = [values[w.series][w.origin : w.origin + h] for w in test]
        ref_mase = np.mean([
            m4_mase(a, f.mean, values[w.series][: w.origin], m)
            for a, w, f in zip(actual, test, fcs, strict=True)
        ])  # fmt: skip
        ref_smape = np.mean([m4_smape(a, f.mean) for a, f in zip(actual, fcs, strict=True)])
        hits = [(a >= f.lower) & (a <= f.upper) for a, f in zip(actual, fcs, strict=True)]
        cells = line.split(" | ")
        assert cells[1:4] == [f"{ref_mase:.3f}", f"{ref_mase / naive_mase:.2f}", f"{ref_smape:.2f}"]
        assert cells[4] == ("-" if s is anchor else f"{np.mean(hits):.1%}")


def test_the_coverage_script_scores_each_way_on_every_test_value() -> None:
    coverage = _bench("forecast_coverage")
    rng = np.random.default_rng(11)
    h = 6
    values = [rng.normal(0, 1, 40), rng.normal(0, 1, 33)]
    test = windows([40, 33], h, 4, "test")
    task = SimpleNamespace(values=values, test=test, derived={"horizon": h, "seasonality": 1})
    fcs = {"a": _forecasts(rng, len(test), h), "b": _forecasts(rng, len(test), h)}
    out = coverage.scored(task, fcs)
    for way, forecasts in fcs.items():
        hits = [
            ((values[w.series][w.origin : w.origin + h] >= f.lower)
             & (values[w.series][w.origin : w.origin + h] <= f.upper))
            for w, f in zip(test, forecasts, strict=True)
        ]  # fmt: skip
        assert out[way] == pytest.approx(100 * np.mean(np.concatenate(hits)), rel=TOL)
    assert out["values"] == len(test) * h == 48
    assert out["distinct"] == 2 * (4 + h - 1)  # rolling origins one step apart


# ---- classification -----------------------------------------------------------------------


def test_accuracy_and_confusion_matrix_are_sklearns() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 5, 200)
    predicted = rng.choice([0, 2, 3], 200)  # classes 1 and 4 never predicted
    t, p = torch.from_numpy(truth), torch.from_numpy(predicted)
    assert classify.accuracy(p, t) == pytest.approx(accuracy_score(truth, predicted), rel=TOL)
    got = classify.confusion_matrix(t, p, 6)  # class 5 in neither
    ref = confusion_matrix(truth, predicted, labels=range(6))
    assert got.shape == (6, 6) and got.numpy().tolist() == ref.tolist()


def test_accuracy_of_363_of_370_is_exact() -> None:
    t = torch.zeros(370, dtype=torch.long)
    p = torch.cat([torch.zeros(363), torch.ones(7)]).long()
    assert classify.accuracy(p, t) == 363 / 370  # float32's mean was 0.9810810685...


def test_a_single_class_confusion_matrix_and_accuracy() -> None:
    t = torch.zeros(4, dtype=torch.long)
    assert classify.confusion_matrix(t, t, 1).tolist() == [[4]]
    assert classify.accuracy(t, t) == 1.0
    got = classify.confusion_matrix(t, torch.tensor([0, 1, 1, 0]), 2)
    assert got.tolist() == confusion_matrix([0] * 4, [0, 1, 1, 0], labels=[0, 1]).tolist()


@pytest.mark.parametrize("labels", [[2, 2, 0, 1, 1, 2], [1, 0, 1, 0, 3, 3], [4]])
def test_the_majority_class_is_sklearns_most_frequent_ties_to_the_lowest(labels) -> None:
    ref = DummyClassifier(strategy="most_frequent").fit(np.zeros((len(labels), 1)), labels)
    assert classify.majority_class(labels, 5) == int(ref.predict(np.zeros((1, 1)))[0])
    # its baseline: the share of test series of that class, as always predicting it
    truth = torch.tensor([0, 1, 2, 3, 3, 1, 1])
    k = classify.majority_class(labels, 5)
    base = int(classify.confusion_matrix(truth, truth, 5)[k].sum()) / len(truth)
    assert base == pytest.approx(accuracy_score(truth.numpy(), [k] * len(truth)), rel=TOL)


def test_the_benchmarks_ranks_are_scipys_average_ranks() -> None:
    bench = _bench("classify")
    rows_acc = [
        {"rnnkit": 0.9, "MiniRocket": 0.95, "1-NN DTW": 0.8},
        {"rnnkit": 0.9, "MiniRocket": 0.9, "1-NN DTW": 0.8},  # a tie for first
        {"rnnkit": 0.7, "MiniRocket": 0.7, "1-NN DTW": 0.7},  # all three tie
        {"rnnkit": 0.5, "MiniRocket": 0.6, "1-NN DTW": 0.6},  # a tie for first of two
    ]
    methods = list(bench.METHODS)
    for acc in rows_acc:
        ref = rankdata([-acc[m] for m in methods], method="average")
        assert [bench.ranks(acc)[m] for m in methods] == ref.tolist()

    def result(a: float) -> dict[str, Any]:
        return {"accuracy": a, "accuracies": [a], "seconds": 1.0, "cell": "gru:0.5"}

    rows = {f"set{i}": {m: result(a[m]) for m in methods} for i, a in enumerate(rows_acc)}
    # rnnkit's mean over seeds in float32 against another's in float64: the table rounds
    # to 6 decimals, so the two tie as the accuracies they are.
    rows["set1"]["rnnkit"]["accuracy"] = float(np.float32(0.9))
    lines = bench.table(rows, "test").splitlines()
    mean_line = next(line for line in lines if line.startswith("| **mean rank**"))
    cells = [c.strip() for c in mean_line.split("|")]
    ref = np.mean([rankdata([-a[m] for m in methods], method="average") for a in rows_acc], 0)
    assert [cells[2], cells[4], cells[5]] == [f"{r:.2f}" for r in ref]


# ---- tagging ------------------------------------------------------------------------------


def test_tag_accuracy_and_per_tag_accuracy_are_sklearns() -> None:
    rng = np.random.default_rng(1)
    truth = rng.integers(-1, 6, 500)  # -1: a tag unseen in training, never right
    pred = rng.integers(0, 5, 500)  # tag 5 never predicted; 6 (the 7th) never occurs
    t, p = torch.from_numpy(truth), torch.from_numpy(pred)
    assert tag.accuracy(p, t) == pytest.approx(accuracy_score(truth, pred), rel=TOL)
    counts = tag.tag_counts(p, t, 7)
    recall = recall_score(truth, pred, labels=range(7), average=None, zero_division=0)
    cm = confusion_matrix(truth, pred, labels=range(-1, 7))[1:, 1:]
    assert [r / n if n else 0.0 for r, n in counts] == pytest.approx(recall.tolist(), rel=TOL)
    assert counts == [(int(cm[k, k]), int(cm[k].sum())) for k in range(7)]
    assert counts[6] == (0, 0)


def test_fit_accuracy_leaves_the_minus_100_targets_out() -> None:
    rng = np.random.default_rng(2)
    target = rng.integers(0, 4, (3, 20))
    target[:, 15:] = -100
    output = rng.normal(size=(3, 20, 4))
    keep = target != -100
    ref = accuracy_score(target[keep], output.argmax(-1)[keep])
    got = fit_accuracy(torch.from_numpy(output), torch.from_numpy(target))
    assert got == pytest.approx(ref, rel=1e-12, abs=0)
    assert fit_accuracy(torch.tensor([[0.0, 1.0]]), torch.tensor([1])) == 1.0
    assert math.isnan(fit_accuracy(torch.zeros(2, 3), torch.tensor([-100, -100])))
    output = torch.zeros(370, 2)
    output[:363, 1] = 1.0  # 363 of 370 predicted class 1: right over scored in float64
    assert fit_accuracy(output, torch.ones(370, dtype=torch.long)) == 363 / 370


def _encoded(rng: np.random.Generator, lengths: list[int], vocab: int, tags: int) -> Any:
    n = sum(lengths)
    x = torch.from_numpy(rng.integers(1, vocab, n).astype(np.int32))
    y = torch.from_numpy(rng.integers(0, tags, n).astype(np.int32))
    bounds = torch.tensor([0, *np.cumsum(lengths).tolist()])
    return tag.Encoded(x, y, bounds)


def test_tagging_scores_every_character_once_and_no_padding() -> None:
    rng = np.random.default_rng(4)
    data = _encoded(rng, [7, 1, 12, 5], vocab=6, tags=3)
    torch.manual_seed(0)
    model = tag.Tagger(tag.TaggerConfig(num_tags=3, vocab_size=6, hidden_size=8, embed_size=4))
    pred, truth, _ = tag.predict(model, data, size=4, context=2)
    # windows of 4 in document order: every step of every document, none of the -100
    # padding of the shorter windows
    assert truth.tolist() == data.y.tolist() and len(pred) == len(truth)
    y, x = tag.scored(data, 4, None)
    assert y.tolist() == data.y.tolist() and x.tolist() == data.x.tolist()


def test_the_per_character_prior_is_each_characters_most_frequent_tag() -> None:
    x = torch.tensor([1, 1, 1, 2, 2, 3, 3, 3, 3, 1], dtype=torch.int32)
    y = torch.tensor([0, 2, 2, 1, 0, 1, 1, 1, 0, 0], dtype=torch.int32)
    data = tag.Encoded(x, y, torch.tensor([0, 10]))
    table = tag.prior_table(data, vocab_size=5, num_tags=3)
    # 1: tags 0, 2, 2, 0 tie -> the lowest (0); 2: 1, 0 tie -> 0; 3: mostly 1;
    # 0 and 4 never seen -> the most frequent tag overall (0: 4 of 10, 1: 4 of 10 -> 0)
    ref = []
    for c in range(5):
        counts = np.bincount(y[x == c].numpy(), minlength=3)
        ref.append(int(np.argmax(counts)) if counts.sum() else int(np.argmax(np.bincount(y))))
    assert table.tolist() == ref == [0, 0, 0, 1, 0]
    task = tag.TagTask(tag.TagTask.Options())
    task.prior = table
    base, what = task.baseline(data)
    assert what == "per-character prior"
    assert base == pytest.approx(accuracy_score(y.numpy(), table[x.long()].numpy()), rel=TOL)


# ---- the language model: bits per character ----------------------------------------------


def _lm() -> CharLM:
    torch.manual_seed(3)
    vocab = Vocabulary.from_text("abcde ")
    config = CharLMConfig(vocab_size=len(vocab), cell="gru", num_layers=1, hidden_size=8,
                          embed_size=4)  # fmt: skip
    return CharLM(config, vocab).double().eval()


def _stream_bits(model: CharLM, ids: np.ndarray, window: int | None) -> float:
    """-sum log2 p of each target of one stream, read from a zero state (again every
    ``window`` characters), with a numpy log-softmax."""
    inputs, targets = ids[:-1], ids[1:]
    window = window or len(inputs)
    total = 0.0
    for s in range(0, len(inputs), window):
        x = torch.from_numpy(inputs[s : s + window]).long().unsqueeze(1)
        with torch.no_grad():
            logits = model(x)[0][:, 0].numpy()
        logp = logits - logsumexp(logits, axis=1, keepdims=True)
        total -= logp[np.arange(len(logits)), targets[s : s + window]].sum()
    return total / math.log(2)


@pytest.mark.parametrize(
    ("batch_size", "seq_len", "reset"), [(1, 100, None), (3, 4, None), (4, 5, 3), (50, 7, None)]
)
def test_bits_per_char_is_the_mean_code_length_of_every_character_but_the_first(
    batch_size: int, seq_len: int, reset: int | None
) -> None:
    model = _lm()
    ids = model.vocab.encode("abcde abc dcba ee a bb cad " * 2).numpy()
    n = len(ids) - 1  # 53 targets
    b = min(batch_size, n)
    sizes = [n // b + 1] * (n % b) + [n // b] * (b - n % b)  # the longer streams first
    starts = np.cumsum([0, *sizes])
    ref = sum(
        _stream_bits(model, ids[s : s + k + 1], reset)
        for s, k in zip(starts[:-1], sizes, strict=True)
    )
    bpc, scored = bits_per_char(model, torch.from_numpy(ids), batch_size, seq_len, reset)
    assert scored == n
    assert bpc == pytest.approx(ref / n, rel=TOL)
