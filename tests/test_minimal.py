"""minGRU / minLSTM: the scan against the step-by-step recurrence, gradients, long sequences."""

from __future__ import annotations

import pytest
import torch

import rnnkit
from rnnkit.kernels.scan import CHUNK, linear_scan

LAYERS = {"mingru": rnnkit.MinGRU, "minlstm": rnnkit.MinLSTM}
CELLS = {"mingru": rnnkit.MinGRUCell, "minlstm": rnnkit.MinLSTMCell}
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def _sequential(a, b, h0):
    out, h = [], h0
    for t in range(a.size(0)):
        h = a[t] * h + b[t]
        out.append(h)
    return torch.stack(out)


@pytest.mark.parametrize("T", [1, 7, CHUNK, CHUNK + 1, CHUNK * CHUNK + 5])
def test_scan_equals_the_sequential_recurrence(T):
    a = torch.rand(T, 3, 2, dtype=torch.float64)
    b = torch.randn(T, 3, 2, dtype=torch.float64)
    h0 = torch.randn(3, 2, dtype=torch.float64)
    torch.testing.assert_close(linear_scan(a, b, h0), _sequential(a, b, h0), atol=1e-12, rtol=0)


def test_scan_gradients_equal_the_sequential_loops_at_three_levels():
    T = CHUNK * CHUNK * 2 + 7  # three levels of blocks and a remainder
    a = torch.rand(T, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(T, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(T, 3, dtype=torch.float64)
    got = torch.autograd.grad((linear_scan(a, b, h0) * w).sum(), (a, b, h0))
    want = torch.autograd.grad((_sequential(a, b, h0) * w).sum(), (a, b, h0))
    for u, v in zip(got, want, strict=True):
        torch.testing.assert_close(u, v, atol=1e-10, rtol=0)


def test_scan_gradcheck_across_chunk_levels():
    T = CHUNK * 2 + 3
    a = torch.rand(T, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(T, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(linear_scan, (a, b, h0))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_scan_is_stable_at_65536_steps(dtype):
    T, N = 65536, 4
    g = torch.Generator().manual_seed(0)
    # Gates near 0 and near 1 both occur: long memories and fast overwrites.
    a = torch.sigmoid(4 * torch.randn(T, N, generator=g, dtype=torch.float64))
    b = torch.randn(T, N, generator=g, dtype=torch.float64) * (1 - a)
    ref = _sequential(a, b, torch.zeros(N, dtype=torch.float64))
    got = linear_scan(a.to(dtype), b.to(dtype), torch.zeros(N, dtype=dtype))
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), ref, atol=TOL[dtype], rtol=0)


@pytest.mark.parametrize("masked", [True, False], ids=["lengths+reset", "unmasked"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("kind", list(LAYERS))
def test_scan_backend_equals_step_by_step(kind, bidirectional, dtype, masked):
    # Unmasked calls take the cell's own (for MinGRU fused) scan; masked ones the generic
    # one. T spans three blocks and a remainder.
    layer = LAYERS[kind](3, 4, 2, bidirectional=bidirectional, dtype=dtype)
    T, B = 3 * CHUNK + 5, 4
    x = torch.randn(T, B, 3, dtype=dtype)
    D = 2 if bidirectional else 1
    h0 = torch.randn(2 * D, B, 4, dtype=dtype)
    options: dict = {}
    if masked:
        reset = torch.zeros(T, B, dtype=torch.bool)
        reset[10, 0] = reset[25, 2] = True
        options = dict(lengths=[T, 17, 0, 33], reset=reset)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    h1, h2 = h0.clone().requires_grad_(), h0.clone().requires_grad_()
    assert layer.backend_for(x1, h1, **options).name == "scan"
    out_s, h_s = layer(x1, h1, **options)
    layer.backend = "reference"
    out_r, h_r = layer(x2, h2, **options)
    tol = TOL[dtype]
    torch.testing.assert_close(out_s, out_r, atol=tol, rtol=0)
    torch.testing.assert_close(h_s, h_r, atol=tol, rtol=0)
    w = torch.randn_like(out_s)
    params = list(layer.parameters())
    grads_s = torch.autograd.grad((out_s * w).sum() + h_s.sum(), [x1, h1, *params])
    grads_r = torch.autograd.grad((out_r * w).sum() + h_r.sum(), [x2, h2, *params])
    rtol = 1e-5 if dtype == torch.float32 else 0.0
    for g1, g2 in zip(grads_s, grads_r, strict=True):
        torch.testing.assert_close(g1, g2, atol=tol * 10, rtol=rtol)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_streaming_single_steps_equals_one_scan(kind):
    layer = LAYERS[kind](3, 4, 3, dtype=torch.float64)
    x = torch.randn(50, 2, 3, dtype=torch.float64)
    whole, final = layer(x)
    state, outs = None, []
    for t in range(50):
        with rnnkit.backends.trace() as ran:
            out, state = layer(x[t : t + 1], state)
        assert ran[layer].name == "reference"  # one step: no scan
        outs.append(out)
    torch.testing.assert_close(torch.cat(outs), whole, atol=1e-10, rtol=0)
    torch.testing.assert_close(state, final, atol=1e-10, rtol=0)


@pytest.mark.parametrize("lengths", [[2 * CHUNK + 4, 9], None], ids=["lengths", "unmasked"])
@pytest.mark.parametrize("kind", list(LAYERS))
def test_gradcheck_layer_scan(kind, lengths):
    layer = LAYERS[kind](2, 3, 2, bidirectional=True, dtype=torch.float64)
    x = torch.randn(2 * CHUNK + 4, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)

    def f(x, h0, *params):
        out, h = layer(x, h0, lengths=lengths)
        return out, h

    assert torch.autograd.gradcheck(f, (x, h0, *layer.parameters()), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", list(CELLS))
def test_cell_gradcheck_and_equations(kind):
    cell = CELLS[kind](3, 4, dtype=torch.float64)
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    h = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(cell, (x, h))
    gx = x @ cell.weight_ih.T + cell.bias_ih
    if kind == "mingru":
        z, h_tilde = gx[:, :4].sigmoid(), gx[:, 4:]
        expected = (1 - z) * h + z * h_tilde
    else:
        f, i, h_tilde = gx[:, :4].sigmoid(), gx[:, 4:8].sigmoid(), gx[:, 8:]
        expected = f / (f + i) * h + i / (f + i) * h_tilde
    torch.testing.assert_close(cell(x, h), expected, atol=1e-12, rtol=0)


def test_zoneout_in_the_scan_matches_the_step_in_eval():
    layer = rnnkit.MinGRU(3, 4, zoneout=0.3, dtype=torch.float64).eval()
    x = torch.randn(20, 2, 3, dtype=torch.float64)
    out_s, h_s = layer(x)
    layer.backend = "reference"
    out_r, h_r = layer(x)
    torch.testing.assert_close(out_s, out_r, atol=1e-12, rtol=0)
    torch.testing.assert_close(h_s, h_r, atol=1e-12, rtol=0)


def test_bias_schemes_set_the_keep_gate():
    gru = rnnkit.MinGRUCell(3, 8, forget_bias=2.0)
    assert torch.all(gru.bias_ih[:8] == -2.0)  # keep = 1 - z = σ(-b_z)
    lstm = rnnkit.MinLSTMCell(3, 8, chrono_init=50)
    torch.testing.assert_close(lstm.bias_ih[8:16], -lstm.bias_ih[:8])
    assert torch.all(lstm.bias_ih[:8] >= 0)


def test_errors():
    with pytest.raises(ValueError, match="MinGRUCell: recurrent_dropout needs a recurrent product"):
        rnnkit.MinGRU(3, 4, recurrent_dropout=0.2)
    with pytest.raises(TypeError, match=r"MinGRU\.from_torch: torch\.nn has no MinGRU to convert"):
        rnnkit.MinGRU.from_torch(torch.nn.GRU(3, 4))
    with pytest.raises(TypeError, match=r"MinLSTM\.to_torch: torch\.nn has no MinLSTM"):
        rnnkit.MinLSTM(3, 4).to_torch()
    with pytest.raises(ValueError, match="MinGRU: backend='native' has no kernel for MINGRU"):
        rnnkit.MinGRU(3, 4, backend="native")(torch.randn(5, 1, 3))
    with pytest.raises(ValueError, match="LSTM: backend='scan' needs a cell whose recurrence"):
        rnnkit.LSTM(3, 4, backend="scan")(torch.randn(5, 1, 3))
    with pytest.raises(ValueError, match=r"MinLSTM: input.size\(-1\) must equal input_size"):
        rnnkit.MinLSTM(3, 4)(torch.randn(5, 1, 2))


@pytest.mark.parametrize("backend", ["reference", "scan"])
@pytest.mark.parametrize("kind", list(LAYERS))
def test_a_reset_isolates_a_sample_from_an_earlier_non_finite_input(kind, backend):
    layer = LAYERS[kind](4, 8, backend=backend, dtype=torch.float64)
    x = torch.randn(4, 2, 4, dtype=torch.float64)
    x[0, 0] = float("inf")
    reset = torch.zeros(4, 2, dtype=torch.bool)
    reset[2, 0] = True
    out, _ = layer(x, reset=reset)
    alone, _ = layer(x[2:, :1])  # the segment after the reset, run on its own
    torch.testing.assert_close(out[2:, :1], alone, atol=1e-12, rtol=0)
