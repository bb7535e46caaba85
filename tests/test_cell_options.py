"""Cell options that torch lacks: init schemes, layer norm, zoneout, recurrent dropout.

Each is checked against an independent formula, and every cell and option is gradchecked
in float64 (random masks are made repeatable by reseeding inside the checked function).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import rnnkit

I, H, B = 3, 4, 2
CELLS = {
    "rnn_tanh": lambda **k: rnnkit.RNNCell(I, H, **k),
    "rnn_relu": lambda **k: rnnkit.RNNCell(I, H, nonlinearity="relu", **k),
    "lstm": lambda **k: rnnkit.LSTMCell(I, H, **k),
    "gru": lambda **k: rnnkit.GRUCell(I, H, **k),
}
OPTIONS = {
    "plain": {},
    "layer_norm": {"layer_norm": True},
    "zoneout": {"zoneout": 0.4},
    "recurrent_dropout": {"recurrent_dropout": 0.4},
    "forget_bias": {"forget_bias": 1.0},
    "chrono_init": {"chrono_init": 50},
}


def _cell(kind, option, training):
    opts = OPTIONS[option]
    if "layer_norm" in opts and kind != "lstm":
        pytest.skip("layer_norm is an LSTM option")
    if ("forget_bias" in opts or "chrono_init" in opts) and kind.startswith("rnn"):
        pytest.skip("bias schemes need a gated cell")
    cell = CELLS[kind](dtype=torch.float64, **opts)
    return cell.train(training)


def _tuple(s):
    return s if isinstance(s, tuple) else (s,)


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("kind", list(CELLS))
def test_gradcheck_cell(kind, option, training):
    cell = _cell(kind, option, training)
    x = torch.randn(B, I, dtype=torch.float64, requires_grad=True)
    states = [torch.randn(B, H, dtype=torch.float64, requires_grad=True) for _ in cell.state_names]
    params = list(cell.parameters())

    def f(x, *rest):
        torch.manual_seed(7)  # the same zoneout / dropout masks at every evaluation
        hx = tuple(rest[: len(states)])
        return _tuple(cell(x, hx if len(hx) > 1 else hx[0]))

    assert torch.autograd.gradcheck(f, (x, *states, *params), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_gradcheck_layer_with_lengths_and_reset(kind):
    cls = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "rnn_tanh": rnnkit.RNN}[kind]
    layer = cls(I, H, 2, bidirectional=True, backend="reference", dtype=torch.float64)
    x = torch.randn(5, 3, I, dtype=torch.float64, requires_grad=True)
    reset = torch.zeros(5, 3, dtype=torch.bool)
    reset[2, 0] = True

    def f(x, *params):
        out, state = layer(x, lengths=[5, 3, 0], reset=reset)
        return (out, *_tuple(state))

    assert torch.autograd.gradcheck(
        f, (x, *layer.parameters()), eps=1e-6, atol=1e-6, fast_mode=True
    )


def test_forget_bias_sets_the_total_forget_gate_bias():
    cell = rnnkit.LSTMCell(I, H, forget_bias=1.0)
    total = cell.bias_ih + cell.bias_hh
    assert torch.all(total[H : 2 * H] == 1.0)  # gate order i, f, g, o
    gru = rnnkit.GRUCell(I, H, forget_bias=2.0)
    assert torch.all((gru.bias_ih + gru.bias_hh)[H : 2 * H] == 2.0)  # order r, z, n


def test_chrono_init_spreads_forget_times_up_to_t_max():
    T_max = 100
    cell = rnnkit.LSTMCell(I, 512, chrono_init=T_max)
    H_ = 512
    b = cell.bias_ih + cell.bias_hh
    b_i, b_f = b[:H_], b[H_ : 2 * H_]
    assert torch.all(b_f >= 0) and torch.all(b_f <= math.log(T_max - 1) + 1e-6)
    torch.testing.assert_close(b_i, -b_f)
    # log U(1, T_max - 1): the median of exp(b_f) is near the interval's middle.
    assert abs(float(b_f.exp().median()) - (T_max / 2)) < 10
    gru = rnnkit.GRUCell(I, 64, chrono_init=T_max)
    b_z = (gru.bias_ih + gru.bias_hh)[64:128]
    assert torch.all(b_z >= 0) and torch.all(b_z <= math.log(T_max - 1) + 1e-6)


def test_layers_pass_cell_options_to_every_cell():
    layer = rnnkit.LSTM(
        I, H, 3, layer_norm=True, zoneout=0.2, recurrent_dropout=0.1, forget_bias=1.0
    )
    for cell in layer.cells:
        assert (cell.layer_norm, cell.zoneout, cell.recurrent_dropout) == (True, 0.2, 0.1)
    assert torch.all((layer.bias_ih_l2 + layer.bias_hh_l2)[H : 2 * H] == 1.0)
    gru = rnnkit.GRU(I, H, bidirectional=True, chrono_init=10)
    assert torch.all((gru.bias_ih_l0_reverse + gru.bias_hh_l0_reverse)[H : 2 * H] >= 0)


def test_layer_norm_lstm_matches_the_paper_formula():
    cell = rnnkit.LSTMCell(I, H, layer_norm=True, dtype=torch.float64)
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_()
    x = torch.randn(B, I, dtype=torch.float64)
    h0, c0 = torch.randn(B, H, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    h, c = cell(x, (h0, c0))

    def ln(v, name):
        norm = nn.LayerNorm(v.shape[-1], dtype=torch.float64)
        norm.weight.data = getattr(cell, f"{name}_weight")
        norm.bias.data = getattr(cell, f"{name}_bias")
        return norm(v)

    gates = (
        ln(x @ cell.weight_ih.T, "ln_ih")
        + ln(h0 @ cell.weight_hh.T, "ln_hh")
        + cell.bias_ih
        + cell.bias_hh
    )
    i, f, g, o = (
        gates.sigmoid()[:, :H],
        gates.sigmoid()[:, H : 2 * H],
        gates[:, 2 * H : 3 * H].tanh(),
        gates[:, 3 * H :].sigmoid(),
    )
    c_ref = f * c0 + i * g
    h_ref = o * ln(c_ref, "ln_c").tanh()
    torch.testing.assert_close(c, c_ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(h, h_ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", list(CELLS))
def test_zoneout_is_an_expectation_in_eval_and_a_choice_in_training(kind):
    plain = CELLS[kind](dtype=torch.float64)
    zoned = CELLS[kind](dtype=torch.float64, zoneout=0.3)
    zoned.load_state_dict(plain.state_dict())
    x = torch.randn(64, I, dtype=torch.float64)
    prev = tuple(torch.randn(64, H, dtype=torch.float64) for _ in plain.state_names)
    arg = prev if len(prev) > 1 else prev[0]
    new = _tuple(plain(x, arg))
    for p_, n_, z_ in zip(prev, new, _tuple(zoned.eval()(x, arg)), strict=True):
        torch.testing.assert_close(z_, 0.3 * p_ + 0.7 * n_, atol=1e-12, rtol=0)
    kept = 0
    for p_, n_, z_ in zip(prev, new, _tuple(zoned.train()(x, arg)), strict=True):
        is_prev, is_new = z_ == p_, z_ == n_
        assert torch.all(is_prev | is_new)
        kept += int(is_prev.sum())
    total = 64 * H * len(prev)
    assert 0.2 < kept / total < 0.4


@pytest.mark.parametrize("kind", list(CELLS))
def test_recurrent_dropout_masks_only_the_recurrent_product(kind):
    cell = CELLS[kind](dtype=torch.float64, recurrent_dropout=0.5).train()
    x = torch.randn(B, I, dtype=torch.float64)
    prev = tuple(torch.randn(B, H, dtype=torch.float64) for _ in cell.state_names)
    mask = torch.tensor([[2.0, 0.0, 2.0, 0.0], [0.0, 2.0, 2.0, 2.0]], dtype=torch.float64)
    got = _tuple(cell(x, prev if len(prev) > 1 else prev[0], recurrent_mask=mask))
    p = cell.own_parameters()
    gx = cell.project(p, x)
    gh = (prev[0] * mask) @ cell.weight_hh.T + cell.bias_hh
    if kind == "gru":
        r = (gx[:, :H] + gh[:, :H]).sigmoid()
        z = (gx[:, H : 2 * H] + gh[:, H : 2 * H]).sigmoid()
        n = (gx[:, 2 * H :] + r * gh[:, 2 * H :]).tanh()
        expected = ((1 - z) * n + z * prev[0],)  # the carry z ∘ h^{t-1} is not dropped
    elif kind == "lstm":
        a = gx + gh
        c = a[:, H : 2 * H].sigmoid() * prev[1] + a[:, :H].sigmoid() * a[:, 2 * H : 3 * H].tanh()
        expected = (a[:, 3 * H :].sigmoid() * c.tanh(), c)
    else:
        act = torch.tanh if kind == "rnn_tanh" else torch.relu
        expected = (act(gx + gh),)
    for u, v in zip(got, expected, strict=True):
        torch.testing.assert_close(u, v, atol=1e-12, rtol=0)


def test_recurrent_dropout_mask_is_shared_by_all_steps_of_a_sequence(monkeypatch):
    layer = rnnkit.GRU(I, H, recurrent_dropout=0.5, backend="reference", dtype=torch.float64)
    mask = torch.bernoulli(torch.full((B, H), 0.5, dtype=torch.float64)) * 2
    cell = layer.cells[0]
    monkeypatch.setattr(cell, "sample_recurrent_mask", lambda batch, like: mask)
    x = torch.randn(6, B, I, dtype=torch.float64)
    out, _ = layer(x)
    alone = rnnkit.GRUCell(I, H, dtype=torch.float64)
    alone.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()})
    h = torch.zeros(B, H, dtype=torch.float64)
    for t in range(6):
        h = alone(x[t], h, recurrent_mask=mask)
        torch.testing.assert_close(out[t], h, atol=1e-12, rtol=0)


def test_sampled_recurrent_mask_is_inverted_dropout():
    cell = rnnkit.LSTMCell(I, 1000, recurrent_dropout=0.25).train()
    mask = cell.sample_recurrent_mask(8, torch.zeros(1, dtype=torch.float64))
    assert mask.shape == (8, 1000)
    assert set(mask.unique().tolist()) <= {0.0, 1 / 0.75}
    assert abs(float(mask.mean()) - 1.0) < 0.05
    assert cell.eval().sample_recurrent_mask(8, torch.zeros(1)) is None
