"""Layers against torch.nn after loading the same weights: outputs, states and all gradients.

The grid is cell type × 1-3 layers × uni/bidirectional × batch_first × with/without an
initial state × with/without ragged lengths, for both backends, in float64 and float32.
Ragged runs are compared with torch's pack_padded_sequence path.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit

KINDS = {
    "rnn_tanh": (rnnkit.RNN, lambda *a, **k: nn.RNN(*a, nonlinearity="tanh", **k)),
    "rnn_relu": (rnnkit.RNN, lambda *a, **k: nn.RNN(*a, nonlinearity="relu", **k)),
    "lstm": (rnnkit.LSTM, nn.LSTM),
    "gru": (rnnkit.GRU, nn.GRU),
}
TOL = {torch.float64: 1e-10, torch.float32: 5e-5}
I, H, T, B = 3, 4, 6, 3
LENGTHS = [6, 2, 4]


def _as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def _torch_run(ref, x, state, lengths, batch_first):
    if lengths is None:
        return ref(x, state)
    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    out, s = ref(packed, state)
    out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    return out, s


GRID = list(
    itertools.product(KINDS, [1, 2, 3], [False, True], [False, True], [False, True], [False, True])
)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize(("kind", "layers", "bidir", "batch_first", "with_state", "ragged"), GRID)
def test_matches_torch(kind, layers, bidir, batch_first, with_state, ragged, backend, dtype):
    ours_cls, ref_cls = KINDS[kind]
    ref = ref_cls(I, H, layers, bidirectional=bidir, batch_first=batch_first).to(dtype)
    ours = ours_cls.from_torch(ref)
    ours.backend = backend
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=dtype)
    D = 2 if bidir else 1
    state = None
    if with_state:
        shape = (layers * D, B, H)
        state = torch.randn(shape, dtype=dtype)
        if kind == "lstm":
            state = (state, torch.randn(shape, dtype=dtype))
    lengths = LENGTHS if ragged else None

    def leaves(s):
        return [t.clone().requires_grad_() for t in _as_tuple(s)] if s is not None else []

    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    s1, s2 = leaves(state), leaves(state)
    pack = (lambda s: tuple(s) if kind == "lstm" else s[0]) if with_state else (lambda s: None)
    with rnnkit.backends.trace() as ran:
        out1, st1 = ours(x1, pack(s1), lengths=lengths)
    out2, st2 = _torch_run(ref, x2, pack(s2), lengths, batch_first)
    assert ran[ours].name == backend
    tol = TOL[dtype]
    torch.testing.assert_close(out1, out2, atol=tol, rtol=0)
    for a, b in zip(_as_tuple(st1), _as_tuple(st2), strict=True):
        torch.testing.assert_close(a, b, atol=tol, rtol=0)

    # One scalar that touches every output and state, with fixed random weights.
    def loss(out, st):
        g = torch.Generator().manual_seed(1)
        total = (out * torch.randn(out.shape, generator=g, dtype=dtype)).sum()
        for s in _as_tuple(st):
            total = total + (s * torch.randn(s.shape, generator=g, dtype=dtype)).sum()
        return total

    loss(out1, st1).backward()
    loss(out2, st2).backward()
    torch.testing.assert_close(x1.grad, x2.grad, atol=tol, rtol=0)
    for a, b in zip(s1, s2, strict=True):
        torch.testing.assert_close(a.grad, b.grad, atol=tol, rtol=0)
    ref_params = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, ref_params[name].grad, atol=tol, rtol=0, msg=name)


@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", list(KINDS))
def test_short_chunks_on_the_one_step_kernels_match_torch(kind, bias, steps):
    ours_cls, ref_cls = KINDS[kind]
    ref = ref_cls(I, H, 2, bias=bias, bidirectional=True).double()
    ours = ours_cls.from_torch(ref)
    ours.backend = "native"  # the GRU's auto choice at this batch is the fused kernel
    x1 = torch.randn(steps, B, I, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    with rnnkit.backends.trace() as ran:
        out1, st1 = ours(x1)
    out2, st2 = ref(x2)
    assert ran[ours].name == "native"
    torch.testing.assert_close(out1, out2, atol=1e-12, rtol=0)
    for a, b in zip(_as_tuple(st1), _as_tuple(st2), strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    (out1.sum() + sum(s.sum() for s in _as_tuple(st1))).backward()
    (out2.sum() + sum(s.sum() for s in _as_tuple(st2))).backward()
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-12, rtol=0)
    ref_params = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, ref_params[name].grad, atol=1e-12, rtol=0, msg=name)


@pytest.mark.parametrize("kind", list(KINDS))
def test_unbatched_input_matches_torch(kind):
    ours_cls, ref_cls = KINDS[kind]
    ref = ref_cls(I, H, 2, bidirectional=True).double()
    ours = ours_cls.from_torch(ref)
    x = torch.randn(T, I, dtype=torch.float64)
    for backend in ("native", "reference"):
        ours.backend = backend
        out, st = ours(x)
        out_ref, st_ref = ref(x)
        torch.testing.assert_close(out, out_ref, atol=1e-12, rtol=0)
        for a, b in zip(_as_tuple(st), _as_tuple(st_ref), strict=True):
            assert a.shape == b.shape == (4, H)
            torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", list(KINDS))
def test_packed_sequence_input_matches_torch(kind):
    ours_cls, ref_cls = KINDS[kind]
    ref = ref_cls(I, H, 2, bidirectional=True).double()
    ours = ours_cls.from_torch(ref)
    x = torch.randn(T, B, I, dtype=torch.float64)
    for enforce_sorted, lengths in ((False, LENGTHS), (True, sorted(LENGTHS, reverse=True))):
        packed = pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted)
        for backend in ("native", "reference"):
            ours.backend = backend
            out, st = ours(packed)
            out_ref, st_ref = ref(packed)
            assert isinstance(out, type(out_ref))
            torch.testing.assert_close(out.data, out_ref.data, atol=1e-12, rtol=0)
            for a, b in zip(_as_tuple(st), _as_tuple(st_ref), strict=True):
                torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    ("ours_cls", "ref_cls"),
    [(rnnkit.RNNCell, nn.RNNCell), (rnnkit.LSTMCell, nn.LSTMCell), (rnnkit.GRUCell, nn.GRUCell)],
)
@pytest.mark.parametrize("batched", [True, False])
def test_cells_match_torch(ours_cls, ref_cls, batched):
    ref = ref_cls(I, H).double()
    ours = ours_cls(I, H, dtype=torch.float64)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn((B, I) if batched else (I,), dtype=torch.float64)
    hshape = (B, H) if batched else (H,)
    hx = torch.randn(hshape, dtype=torch.float64)
    if ours_cls is rnnkit.LSTMCell:
        hx = (hx, torch.randn(hshape, dtype=torch.float64))
    for state in (None, hx):
        a, b = ours(x, state), ref(x, state)
        for u, v in zip(_as_tuple(a), _as_tuple(b), strict=True):
            torch.testing.assert_close(u, v, atol=1e-12, rtol=0)


def test_relu_cell_matches_torch():
    ref = nn.RNNCell(I, H, nonlinearity="relu").double()
    ours = rnnkit.RNNCell(I, H, nonlinearity="relu", dtype=torch.float64)
    ours.load_state_dict(ref.state_dict())
    x, h = torch.randn(B, I, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    torch.testing.assert_close(ours(x, h), ref(x, h), atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", list(KINDS))
def test_conversion_round_trip(kind):
    ours_cls, ref_cls = KINDS[kind]
    ref = ref_cls(I, H, 2, bias=False, batch_first=True, dropout=0.25, bidirectional=True)
    ours = ours_cls.from_torch(ref)
    back = ours.to_torch()
    assert type(back) is type(ref)
    assert repr(back) == repr(ref)
    for (n1, p1), (n2, p2) in zip(ref.named_parameters(), back.named_parameters(), strict=True):
        assert n1 == n2
        assert torch.equal(p1, p2)
    # And the torch state_dict loads directly into a fresh layer.
    fresh = ours_cls(
        I,
        H,
        2,
        bias=False,
        batch_first=True,
        bidirectional=True,
        **({"nonlinearity": ref.nonlinearity} if kind.startswith("rnn") else {}),
    )
    fresh.load_state_dict(ref.state_dict())
    assert [n for n, _ in fresh.named_parameters()] == [n for n, _ in ref.named_parameters()]


def test_dropout_between_layers_is_active_only_in_training():
    layer = rnnkit.LSTM(I, H, 3, dropout=0.5)
    x = torch.randn(T, B, I)
    layer.eval()
    a, _ = layer(x)
    b, _ = layer(x)
    assert torch.equal(a, b)
    layer.train()
    for backend in ("native", "reference"):
        layer.backend = backend
        c, _ = layer(x)
        d, _ = layer(x)
        assert not torch.allclose(c, d)
