"""Sequence semantics of the layers: chunks, lengths (including 0), resets, backends."""

from __future__ import annotations

import itertools
import re
import warnings

import numpy as np
import pytest
import torch

import rnnkit

LAYERS = {
    "rnn": lambda **k: rnnkit.RNN(3, 4, **k),
    "lstm": lambda **k: rnnkit.LSTM(3, 4, **k),
    "gru": lambda **k: rnnkit.GRU(3, 4, **k),
}
OPTIONS = {
    "plain": {},
    "layer_norm": {"layer_norm": True},
    "zoneout": {"zoneout": 0.3},
    "recurrent_dropout": {"recurrent_dropout": 0.3},
    "chrono": {"chrono_init": 20},
}


def _layer(kind, options=None, **kwargs):
    options = dict(options or {})
    if kind != "lstm" and "layer_norm" in options:
        pytest.skip("layer_norm is an LSTM option")
    if kind == "rnn" and "chrono_init" in options:
        pytest.skip("chrono_init needs a gated cell")
    return LAYERS[kind](num_layers=2, dtype=torch.float64, **options, **kwargs).eval()


def _states(s):
    return s if isinstance(s, tuple) else (s,)


def _close(a, b, atol=1e-10):
    for u, v in zip(_states(a), _states(b), strict=True):
        torch.testing.assert_close(u, v, atol=atol, rtol=0)


@pytest.mark.parametrize("backend", ["auto", "reference"])
@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("kind", list(LAYERS))
def test_chunked_run_equals_whole_run(kind, option, backend):
    layer = _layer(kind, OPTIONS[option], backend=backend)
    x = torch.randn(11, 2, 3, dtype=torch.float64)
    whole, final = layer(x)
    state, outs = None, []
    for chunk in (x[:1], x[1:5], x[5:6], x[6:]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rnnkit.PerformanceWarning)
            out, state = layer(chunk, state)
        outs.append(out)
    _close(torch.cat(outs), whole)
    _close(state, final)


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("kind", list(LAYERS))
def test_length_zero_passes_state_through(kind, bidirectional, backend):
    layer = _layer(kind, bidirectional=bidirectional, backend=backend)
    x = torch.randn(5, 3, 3, dtype=torch.float64)
    D = 2 if bidirectional else 1
    h0 = torch.randn(2 * D, 3, 4, dtype=torch.float64)
    state = (h0, torch.randn_like(h0)) if kind == "lstm" else h0
    out, final = layer(x, state, lengths=torch.tensor([5, 0, 2]))
    assert torch.all(out[:, 1] == 0)
    assert torch.all(out[2:, 2] == 0)
    for s_in, s_out in zip(_states(state), _states(final), strict=True):
        assert torch.equal(s_out[:, 1], s_in[:, 1])
    # The others are what they would be alone.
    alone, alone_final = layer(
        x[:, :1], tuple(s[:, :1] for s in _states(state)) if kind == "lstm" else h0[:, :1]
    )
    _close(out[:, :1], alone)
    _close(tuple(s[:, :1] for s in _states(final)), alone_final)


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_all_lengths_zero_and_empty_time(backend):
    layer = _layer("lstm", backend=backend)
    x = torch.randn(0, 2, 3, dtype=torch.float64)
    out, (h, c) = layer(x, lengths=[0, 0])
    assert out.shape == (0, 2, 4)
    assert torch.all(h == 0) and torch.all(c == 0)


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("kind", list(LAYERS))
def test_batch_of_zero_works(kind, backend):
    layer = _layer(kind, bidirectional=True, backend=backend)
    out, state = layer(
        torch.randn(4, 0, 3, dtype=torch.float64), lengths=torch.zeros(0, dtype=torch.long)
    )
    assert out.shape == (4, 0, 8)
    assert all(s.shape == (4, 0, 4) for s in _states(state))


@pytest.mark.parametrize(
    "lengths_on", ["list", "int32", "int64", "numpy-ints", "0-d tensors", "tuple of mixed"]
)
def test_lengths_accept_lists_and_integer_tensors(lengths_on):
    layer = _layer("gru")
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    lengths = {
        "list": [4, 1],
        "int32": torch.tensor([4, 1], dtype=torch.int32),
        "int64": torch.tensor([4, 1]),
        # Integers all, refused before as "must hold integers; got [np.int64(4), ...]".
        "numpy-ints": [np.int64(4), np.int32(1)],
        "0-d tensors": [torch.tensor(4), torch.tensor(1, dtype=torch.int32)],
        "tuple of mixed": (np.uint8(4), torch.tensor(1)),
    }[lengths_on]
    out, h = layer(x, lengths=lengths)
    ref_out, ref_h = layer(x, lengths=[4, 1])
    _close(out, ref_out)
    _close(h, ref_h)
    assert torch.all(out[1:, 1] == 0)


@pytest.mark.parametrize(
    ("lengths", "shown"),
    [
        ([np.True_, 1], "[np.True_, 1]"),
        ([torch.tensor(True), 1], "[tensor(True), 1]"),
        ([torch.tensor(4.0), 1], "[tensor(4.), 1]"),
        ([torch.tensor([4]), 1], "[tensor([4]), 1]"),
        ([np.float64(4.0), 1], "[np.float64(4.0), 1]"),
    ],
    ids=["numpy-bool", "bool-tensor", "float-tensor", "1-d tensor", "numpy-float"],
)
def test_lengths_that_are_not_integers_are_still_refused(lengths, shown):
    x = torch.randn(4, 2, 3, dtype=torch.float64)
    with pytest.raises(
        TypeError, match="^" + re.escape(f"GRU: lengths must hold integers; got {shown}") + "$"
    ):
        _layer("gru")(x, lengths=lengths)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("option", ["plain", "layer_norm", "zoneout"])
@pytest.mark.parametrize("kind", list(LAYERS))
def test_reset_equals_running_segments_separately(kind, option, batch_first, bidirectional):
    layer = _layer(kind, OPTIONS[option], bidirectional=bidirectional, batch_first=batch_first)
    T, cuts = 9, (0, 3, 4, 9)  # segments [0,3), [3,4), [4,9) for sample 0
    x = torch.randn(T, 2, 3, dtype=torch.float64)
    reset = torch.zeros(T, 2, dtype=torch.bool)
    reset[3, 0] = reset[4, 0] = True
    reset[0, 1] = True  # a reset at t = 0 is the same as a zero state
    tb = (lambda a: a.transpose(0, 1)) if batch_first else (lambda a: a)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rnnkit.PerformanceWarning)
        out, final = layer(tb(x), reset=tb(reset))
    out = tb(out)
    pieces = []
    for a, b in itertools.pairwise(cuts):
        seg_out, seg_final = layer(tb(x[a:b, :1]))
        pieces.append(tb(seg_out))
    _close(out[:, :1], torch.cat(pieces))
    whole, whole_final = layer(tb(x[:, 1:]))
    _close(out[:, 1:], tb(whole))
    _close(tuple(s[:, 1:] for s in _states(final)), whole_final)
    if not bidirectional:
        _close(tuple(s[:, :1] for s in _states(final)), seg_final)


def test_reset_with_lengths_ignores_steps_past_the_end():
    layer = _layer("lstm")
    x = torch.randn(6, 1, 3, dtype=torch.float64)
    reset = torch.zeros(6, 1, dtype=torch.bool)
    reset[4, 0] = True  # past the end of a length-3 sequence
    out, final = layer(x, lengths=[3], reset=reset)
    ref_out, ref_final = layer(x[:3])
    _close(out[:3], ref_out)
    _close(final, ref_final)


def test_ragged_batch_is_as_if_each_sequence_ran_alone():
    layer = _layer("lstm", OPTIONS["layer_norm"], bidirectional=True)
    x = torch.randn(7, 3, 3, dtype=torch.float64)
    lengths = [7, 2, 5]
    out, (h, c) = layer(x, lengths=lengths)
    for b, n in enumerate(lengths):
        o, (hb, cb) = layer(x[:n, b : b + 1])
        _close(out[:n, b : b + 1], o)
        assert torch.all(out[n:, b] == 0)
        _close((h[:, b : b + 1], c[:, b : b + 1]), (hb, cb))


def test_auto_backend_choice_is_inspectable_and_warned_once():
    plain = rnnkit.LSTM(3, 4)
    x = torch.randn(5, 2, 3)
    assert plain.backend_for(x).name == "native"
    with rnnkit.backends.trace() as ran:
        plain(x)
    assert ran[plain].name == "native"
    # No kernel but the reference loop has zoneout in bfloat16.
    zoned = rnnkit.LSTM(3, 4, zoneout=0.1).bfloat16()
    x16 = x.bfloat16()
    choice = zoned.backend_for(x16)  # asked ahead: nothing runs, nothing is warned
    assert choice.name == "reference" and choice.fallback
    assert "zoneout" in choice.reason
    warned = pytest.warns(rnnkit.PerformanceWarning, match="zoneout")
    with warned, rnnkit.backends.trace() as ran:
        zoned(x16)
    assert ran[zoned] == choice
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's own: once per call site and message
        for _ in range(3):
            zoned(x16)
    assert len(caught) == 1 and issubclass(caught[0].category, rnnkit.PerformanceWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explicit = rnnkit.LSTM(3, 4, zoneout=0.1, backend="reference").bfloat16()
        explicit(x16)  # an explicit choice is not warned about
    with pytest.warns(rnnkit.PerformanceWarning, match="reset"):
        rnnkit.LSTM(3, 4).bfloat16()(x16, reset=torch.zeros(5, 2, dtype=torch.bool))
    if rnnkit.kernels.fused.available():  # other resets run in rnnkit's fused kernel
        projected = rnnkit.LSTM(3, 4, proj_size=2)
        for layer in (rnnkit.GRU(3, 4), rnnkit.LSTM(3, 4), rnnkit.RNN(3, 4), projected):
            with warnings.catch_warnings(), rnnkit.backends.trace() as ran:
                warnings.simplefilter("error")
                layer(x, reset=torch.zeros(5, 2, dtype=torch.bool))
            assert ran[layer].name == "fused"


def test_the_warning_names_the_callers_line():
    layer = rnnkit.LSTM(3, 4, zoneout=0.1).bfloat16()  # the reference loop: warned
    with pytest.warns(rnnkit.PerformanceWarning) as caught:
        layer(torch.randn(5, 2, 3, dtype=torch.bfloat16))
    assert caught[0].filename == __file__  # not a line inside rnnkit or torch


def test_recurrent_dropout_runs_natively_in_eval_mode():
    layer = rnnkit.LSTM(3, 4, proj_size=2, recurrent_dropout=0.5)
    x = torch.randn(5, 2, 3)
    layer.eval()
    with rnnkit.backends.trace() as ran:
        layer(x)
    assert ran[layer].name == "native"
    layer.train()  # in training torch's kernel cannot: rnnkit's fused one, or the loop
    expected = "fused" if rnnkit.kernels.fused.available() else "reference"
    with rnnkit.backends.trace() as ran:
        layer(x)
    assert ran[layer].name == expected
    assert "recurrent_dropout" in ran[layer].reason


def test_forcing_native_on_an_unsupported_call_is_an_error():
    layer = rnnkit.LSTM(3, 4, zoneout=0.1, backend="native")
    with pytest.raises(
        ValueError,
        match=r"backend='native' cannot run this call exactly "
        r"\(torch's fused kernels have no zoneout\)",
    ):
        layer(torch.randn(2, 1, 3))


PADDED_KINDS = {
    "rnn": (rnnkit.RNN, ["reference", "fused", "native"]),
    "lstm": (rnnkit.LSTM, ["reference", "fused", "native"]),
    "gru": (rnnkit.GRU, ["reference", "fused", "native"]),
    "mingru": (rnnkit.MinGRU, ["reference", "scan"]),
    "minlstm": (rnnkit.MinLSTM, ["reference", "scan"]),
}


def _cases_of_padding():
    for kind, (_, names) in PADDED_KINDS.items():
        for backend in names:
            yield kind, backend


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize(("kind", "backend"), list(_cases_of_padding()))
def test_non_finite_padding_reaches_neither_outputs_nor_gradients(
    kind, backend, bidirectional, bad
):
    """Padding past ``lengths`` is ignored: NaN or inf there changes no output and no
    gradient. Reference: every sequence run alone over its valid steps, without lengths
    (the loss of the batch is the sum of theirs, as outputs past the end are zero)."""
    cls, _ = PADDED_KINDS[kind]
    torch.manual_seed(0)
    layer = cls(3, 4, 2, bidirectional=bidirectional, dtype=torch.float64, backend=backend)
    T, lengths = 6, [6, 4, 1]
    x = torch.randn(T, 3, 3, dtype=torch.float64)
    for b, n in enumerate(lengths):
        x[n:, b] = bad
    w = torch.randn(T, 3, layer.output_size, dtype=torch.float64)
    params = list(layer.parameters())

    dirty = x.clone().requires_grad_()
    out, state = layer(dirty, lengths=lengths)
    loss = (out * w).sum() + sum(s.sum() for s in _states(state))
    grads = torch.autograd.grad(loss, [dirty, *params])

    layer.backend = "reference"
    alone = [x[:n, b : b + 1].clone().requires_grad_() for b, n in enumerate(lengths)]
    ref_loss = 0.0
    for b, (xb, n) in enumerate(zip(alone, lengths, strict=True)):
        o, s = layer(xb)
        _close(out[:n, b : b + 1], o.detach())
        assert torch.all(out[n:, b] == 0)
        _close(
            tuple(u[:, b : b + 1] for u in _states(state)), tuple(v.detach() for v in _states(s))
        )
        ref_loss = ref_loss + (o * w[:n, b : b + 1]).sum() + sum(v.sum() for v in _states(s))
    ref_grads = torch.autograd.grad(ref_loss, [*alone, *params])

    for b, n in enumerate(lengths):
        _close(grads[0][:n, b : b + 1], ref_grads[b])
        assert torch.all(grads[0][n:, b] == 0)
    for g, r in zip(grads[1:], ref_grads[len(lengths) :], strict=True):
        assert torch.isfinite(g).all()
        _close(g, r)
