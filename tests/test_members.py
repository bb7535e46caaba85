"""Deep ensembles: rnnkit.layers.members and the tasks' --members.

The reference is a member on its own: every member of an ensemble must compute exactly what
a single network with its weights computes, and the block-diagonal layer the export builds
must compute what the members compute.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.layers.members import AverageProbabilities, MemberLinear, Members

LAYERS = [rnnkit.RNN, rnnkit.LSTM, rnnkit.GRU, rnnkit.MinGRU, rnnkit.MinLSTM]


def _members(cls, K: int = 3, layers: int = 2, bidirectional: bool = True, **kw) -> Members:
    torch.manual_seed(0)
    return Members(
        [cls(3, 4, layers, bidirectional=bidirectional, dtype=torch.float64, **kw)
         for _ in range(K)]
    )  # fmt: skip


def _tuple(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("cls", LAYERS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_each_member_computes_what_its_layer_computes_alone(cls, bidirectional) -> None:
    m = _members(cls, bidirectional=bidirectional)
    x = torch.randn(7, 5, 3, dtype=torch.float64)
    lengths = torch.tensor([7, 3, 5, 1, 6])
    out, state = m(x, lengths=lengths)
    D, H = m.num_directions, m.member_size
    assert out.shape == (7, 5, D * 3 * H) and m.output_size == D * 3 * H
    assert all(s.shape == (2 * D, 5, 3 * H) for s in _tuple(state))
    for k, layer in enumerate(m.layers):
        own, own_state = layer(x, lengths=lengths)
        assert torch.equal(m.member(out, k), own)
        for s, o in zip(_tuple(m.split_state(state)[k]), _tuple(own_state), strict=True):
            assert torch.equal(s, o)


@pytest.mark.parametrize("cls", LAYERS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_the_block_diagonal_layer_equals_the_members(cls, bidirectional) -> None:
    m = _members(cls, bidirectional=bidirectional)
    x = torch.randn(9, 4, 3, dtype=torch.float64)
    lengths = torch.tensor([9, 2, 5, 1])
    h0 = m(x[:3])[1]  # a non-zero initial state, as a stream carries it
    out, state = m(x, h0, lengths=lengths)
    wide = m.block_diagonal()
    assert type(wide) is cls and wide.hidden_size == 3 * m.member_size
    out2, state2 = wide(x, h0, lengths=lengths)
    torch.testing.assert_close(out2, out, rtol=0, atol=1e-12)
    for a, b in zip(_tuple(state2), _tuple(state), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_a_stream_carries_an_ensemble_chunk_by_chunk_as_one_pass() -> None:
    m = _members(rnnkit.LSTM, bidirectional=False)
    x = torch.randn(12, 2, 3, dtype=torch.float64)
    whole, _ = m(x)
    stream = rnnkit.Stream(m)
    chunks = torch.cat([stream(x[:5]), stream(x[5:6]), stream(x[6:])])
    torch.testing.assert_close(chunks, whole, rtol=0, atol=1e-12)


def test_members_that_differ_or_are_too_few_are_refused() -> None:
    with pytest.raises(ValueError, match=r"Members: expected at least 2 layers; got 1"):
        Members([rnnkit.GRU(3, 4)])
    with pytest.raises(ValueError, match=r"every layer must be configured alike; layer 1"):
        Members([rnnkit.GRU(3, 4), rnnkit.GRU(3, 5)])
    with pytest.raises(TypeError, match=r"layer 1 must be an rnnkit recurrent layer; got GRU"):
        Members([rnnkit.GRU(3, 4), torch.nn.GRU(3, 4)])
    with pytest.raises(ValueError, match=r"layer 0 has proj_size=2"):
        Members([rnnkit.LSTM(3, 4, proj_size=2), rnnkit.LSTM(3, 4, proj_size=2)])
    norm = Members([rnnkit.LSTM(3, 4, layer_norm=True) for _ in range(2)])
    with pytest.raises(ValueError, match=r"a layer-norm cell normalises over all of its units"):
        norm.block_diagonal()


def test_averaged_probabilities_are_the_mean_of_the_members() -> None:
    m = _members(rnnkit.GRU)
    head = AverageProbabilities(m, 5).double()
    z = torch.randn(6, m.output_size, dtype=torch.float64)
    each = head.members(z)
    assert each.shape == (6, 3, 5)
    for k, linear in enumerate(head.linear.linears):
        torch.testing.assert_close(each[:, k], linear(m.member(z, k)), rtol=0, atol=0)
    want = torch.softmax(each, -1).mean(1).log()
    torch.testing.assert_close(head(z), want, rtol=0, atol=1e-12)
    assert math.isclose(float(head(z).detach().exp().sum(-1)[0]), 1.0, abs_tol=1e-12)


def test_member_heads_read_their_own_units_and_the_shared_inputs() -> None:
    m = _members(rnnkit.LSTM, bidirectional=False)
    head = MemberLinear(m, 4, extra=2).double()
    z = torch.randn(5, m.output_size + 2, dtype=torch.float64)
    out = head(z)
    for k, linear in enumerate(head.linears):
        own = torch.cat([m.member(z[:, : m.output_size], k), z[:, m.output_size :]], -1)
        torch.testing.assert_close(out[:, k], linear(own), rtol=0, atol=0)


# ---- the classifier ---------------------------------------------------------------------


def _classifier_members(model, k: int):
    from rnnkit.tasks.classify import SequenceClassifier

    single = SequenceClassifier(3, 4, "lstm", 8, 2, True, model.pool).eval()
    single.rnn.load_state_dict(model.rnn.layers[k].state_dict())
    single.head.load_state_dict(model.head.linear.linears[k].state_dict())
    return single


@pytest.mark.parametrize("pool", ["last", "mean", "max"])
def test_a_classifier_ensemble_is_its_members_averaged(pool: str) -> None:
    from rnnkit.tasks.classify import SequenceClassifier

    torch.manual_seed(1)
    model = SequenceClassifier(3, 4, "lstm", 8, 2, True, pool, members=3).eval()
    x, lengths = torch.randn(5, 9, 3), torch.tensor([9, 4, 2, 9, 7])
    singles = [_classifier_members(model, k) for k in range(3)]
    each = torch.stack([s(x, lengths) for s in singles], 1)  # (B, K, C)
    want = torch.softmax(each, -1).mean(1).log()
    torch.testing.assert_close(model(x, lengths), want, rtol=0, atol=1e-6)
    # training: member k reads the k-th of K batches laid one after the other
    xs = torch.randn(3 * 5, 9, 3)
    ls = torch.tensor([9, 4, 2, 9, 7, 1, 3, 9, 9, 2, 5, 5, 8, 6, 9])
    got = model(xs, ls, members=True)
    assert got.shape == (3, 5, 4)
    for k, single in enumerate(singles):
        sl = slice(5 * k, 5 * k + 5)
        n = int(ls[sl].max())
        torch.testing.assert_close(got[k], single(xs[sl, :n], ls[sl]), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match=r"members must be a positive integer; got 0"):
        SequenceClassifier(3, 4, members=0)


def test_each_member_of_a_training_classifier_draws_its_own_noise() -> None:
    from rnnkit.tasks.classify import SequenceClassifier

    torch.manual_seed(2)
    model = SequenceClassifier(3, 4, "gru", 8, 1, False, "mean", noise=1.0, members=2)
    for layer in model.rnn.layers[1:]:  # identical members: only the noise tells them apart
        layer.load_state_dict(model.rnn.layers[0].state_dict())
    model.head.linear.linears[1].load_state_dict(model.head.linear.linears[0].state_dict())
    x = torch.randn(4, 6, 3)
    each = model(torch.cat([x, x]), members=True)
    assert not torch.allclose(each[0], each[1])
    model.eval()
    each = model(torch.cat([x, x]), members=True)
    torch.testing.assert_close(each[0], each[1], rtol=0, atol=0)


def test_each_member_draws_its_own_batches_and_a_checkpoint_restores_them() -> None:
    from rnnkit.tasks.classify import SeriesBatches

    x, y = torch.randn(10, 4, 2), torch.arange(10)
    lengths = torch.full((10,), 4)
    single = SeriesBatches(x, lengths, y, 3, seed=0, rows=slice(None))
    many = SeriesBatches(x, lengths, y, 3, seed=0, rows=slice(None), members=3)
    _, _, labels = next(many)
    assert labels.shape == (9,)
    # member 0 draws what a single network's source draws first
    assert torch.equal(labels[:3], next(single)[2])
    assert len({tuple(labels[3 * k : 3 * k + 3].tolist()) for k in range(3)}) == 3
    state = many.state_dict()
    after = [next(many)[2] for _ in range(5)]
    again = SeriesBatches(x, lengths, y, 3, seed=7, rows=slice(None), members=3)
    again.load_state_dict(state)
    assert all(torch.equal(a, next(again)[2]) for a in after)


# ---- the forecaster ---------------------------------------------------------------------


@pytest.mark.parametrize("head", ["quantile", "gaussian"])
def test_a_forecaster_ensemble_averages_its_members_bands(head: str) -> None:
    from rnnkit.tasks.forecast import ForecastConfig, ForecastModel

    torch.manual_seed(0)
    config = ForecastConfig(horizon=4, seasonality=3, scale_window=4, head=head,
                            hidden_size=8, members=3)  # fmt: skip
    model = ForecastModel(config).eval()
    for linear in model.head.linear.linears:
        torch.nn.init.normal_(linear.weight, std=0.5)
    x = torch.randn(10, 2, model.features)
    raw, state = model(x)
    each, _ = model(torch.cat([x] * 3, 1), members=True)  # each member reads x
    assert raw.shape == (10, 2, 4, model.outputs) and each.shape == (3, *raw.shape)
    assert state[0].shape == (1, 2, 24)
    bands = model.bands(raw)
    member_bands = [model.bands(r) for r in each]
    for j in range(3):
        want = torch.stack([b[j] for b in member_bands]).mean(0)
        torch.testing.assert_close(bands[j], want, rtol=0, atol=1e-5)


def test_an_online_ensemble_forecast_equals_a_fresh_pass() -> None:
    from rnnkit.tasks.forecast import ForecastConfig, ForecastModel, OnlineForecaster, forecast

    torch.manual_seed(0)
    model = ForecastModel(ForecastConfig(horizon=3, hidden_size=8, members=2)).eval()
    for linear in model.head.linear.linears:
        torch.nn.init.normal_(linear.weight, std=0.5)
    y = np.cumsum(np.random.default_rng(0).normal(size=40)) + 50
    online = OnlineForecaster(model, history=y[:25])
    for v in y[25:]:
        got = online.update(float(v))
    want = forecast(model, [y])[0]
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-5)
    np.testing.assert_allclose(got.upper, want.upper, rtol=1e-5)


def test_an_ensemble_forecaster_trains_each_member_on_its_own_windows() -> None:
    from rnnkit.tasks.forecast import ForecastConfig, ForecastModel

    torch.manual_seed(0)
    model = ForecastModel(ForecastConfig(horizon=3, hidden_size=8, members=2)).eval()
    x = torch.randn(6, 2 * 4, model.features)  # two members' batches of 4 windows
    lengths = torch.tensor([6, 5, 2, 6, 1, 6, 6, 3])
    h0 = tuple(torch.randn(1, 4, 16) for _ in range(2))  # (L, b, K*H)
    raws, final = model(x, h0, lengths=lengths, members=True)
    assert raws.shape == (2, 6, 4, 3, 3)
    pairs = zip(model.rnn.layers, model.head.linear.linears, strict=True)
    for k, (layer, head) in enumerate(pairs):
        xk, nk = x[:, 4 * k : 4 * k + 4], lengths[4 * k : 4 * k + 4]
        sk = tuple(s[..., 8 * k : 8 * k + 8] for s in h0)
        out, fk = layer(xk, sk, lengths=nk)
        want = head(torch.cat([out, xk], -1)).unflatten(-1, (3, 3))
        torch.testing.assert_close(raws[k], want, rtol=0, atol=1e-6)
        torch.testing.assert_close(final[0][..., 8 * k : 8 * k + 8], fk[0], rtol=0, atol=0)
