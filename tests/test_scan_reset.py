"""The segmented scan: ``linear_scan(..., reset=)`` against a plain loop, its gradients, its
isolation of a segment from an earlier inf or NaN, whole layers against the reference
backend, and the custom operator that torch.compile runs."""

from __future__ import annotations

import pytest
import torch
import torch._dynamo

import rnnkit
from rnnkit.kernels.scan import CHUNK, _scan_op, linear_scan

F64 = torch.float64
LAYERS = {"mingru": rnnkit.MinGRU, "minlstm": rnnkit.MinLSTM}


def _loop(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, reset: torch.Tensor):
    """The specification, one step at a time: the state is set to zero before step t."""
    out, h = [], h0
    for t in range(a.size(0)):
        h = a[t] * torch.where(reset[t], torch.zeros_like(h), h) + b[t]
        out.append(h)
    return torch.stack(out)


def _inputs(T: int, N: int, seed: int, p: float = 0.1):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(T, N, generator=g, dtype=F64)
    b = torch.randn(T, N, generator=g, dtype=F64)
    h0 = torch.randn(N, generator=g, dtype=F64)
    reset = torch.rand(T, N, generator=g) < p
    reset[:, 0] = False  # one column without segments: the plain recurrence
    if T > CHUNK:
        reset[CHUNK - 1 :: CHUNK, 1] = True  # resets at the last and first step of chunks
        reset[CHUNK::CHUNK, 1] = True
    reset[0, -1] = True  # h0 is dropped
    return a, b, h0, reset


# 1: sequential only; 31..33: one chunk and a remainder; 64, 100: the blocked scan with a
# remainder; 1025: two levels of blocks (the chunk-level scan is blocked too).
@pytest.mark.parametrize("T", [1, 5, 31, 32, 33, 64, 100, 1025])
@pytest.mark.parametrize("p", [0.02, 0.3])
def test_segmented_scan_equals_the_loop(T: int, p: float) -> None:
    a, b, h0, reset = _inputs(T, 5, seed=T, p=p)
    got = linear_scan(a, b, h0, reset)
    torch.testing.assert_close(got, _loop(a, b, h0, reset), atol=1e-12, rtol=0)


def test_without_resets_the_segmented_scan_is_the_plain_scan() -> None:
    a, b, h0, _ = _inputs(100, 3, seed=1)
    none = torch.zeros(100, 3, dtype=torch.bool)
    torch.testing.assert_close(linear_scan(a, b, h0, none), linear_scan(a, b, h0))


def test_a_reset_broadcasts_over_the_hidden_size() -> None:
    g = torch.Generator().manual_seed(2)
    a, b = torch.rand(70, 2, 4, generator=g, dtype=F64), torch.randn(70, 2, 4, dtype=F64)
    h0 = torch.randn(2, 4, dtype=F64)
    reset = torch.rand(70, 2, 1, generator=g) < 0.1
    want = _loop(a, b, h0, reset.expand(70, 2, 4))
    torch.testing.assert_close(linear_scan(a, b, h0, reset), want, atol=1e-12, rtol=0)


@pytest.mark.parametrize("T", [33, 100, 1025])
def test_segmented_gradients_equal_the_loops(T: int) -> None:
    a, b, h0, reset = _inputs(T, 4, seed=T + 1)
    w = torch.randn(T, 4, dtype=F64)
    leaves = [t.clone().requires_grad_() for t in (a, b, h0)]
    got = torch.autograd.grad((linear_scan(*leaves, reset) * w).sum(), leaves)
    leaves = [t.clone().requires_grad_() for t in (a, b, h0)]
    want = torch.autograd.grad((_loop(*leaves, reset) * w).sum(), leaves)
    for u, v in zip(got, want, strict=True):
        torch.testing.assert_close(u, v, atol=1e-10, rtol=0)


@pytest.mark.parametrize("T", [5, 2 * CHUNK + 6])
def test_segmented_scan_gradcheck(T: int) -> None:
    a, b, h0, reset = _inputs(T, 3, seed=7, p=0.15)
    if T > CHUNK:
        reset[CHUNK, 2] = True  # a chunk that starts with a reset
    a, b, h0 = (t.requires_grad_() for t in (a, b, h0))
    assert torch.autograd.gradcheck(lambda a, b, h0: linear_scan(a, b, h0, reset), (a, b, h0))


# r: the first step of the segment - inside the first chunk, on and just past a chunk
# boundary, deep in a two-level blocked scan; in each, inf and NaN come before it.
@pytest.mark.parametrize("r", [2, CHUNK, CHUNK + 1, 2 * CHUNK + 6, 700])
def test_a_reset_isolates_the_segment_from_an_earlier_inf_or_nan(r: int) -> None:
    T, N = 1025, 4
    a, b, h0, _ = _inputs(T, N, seed=r)
    b[r - 2, 0], b[r - 1, 1], a[r - 2, 2] = float("inf"), float("nan"), float("inf")
    h0[3] = float("-inf")
    reset = torch.zeros(T, N, dtype=torch.bool)
    reset[r] = True
    w = torch.randn(T, N, dtype=F64)
    a, b = a.requires_grad_(), b.requires_grad_()
    out = linear_scan(a, b, h0, reset)
    grad_a, grad_b = torch.autograd.grad((out * w).sum(), (a, b))
    # The segment alone: the same steps from a zero state, with the same outer gradient.
    a_s, b_s = a[r:].detach().requires_grad_(), b[r:].detach().requires_grad_()
    alone = linear_scan(a_s, b_s, torch.zeros(N, dtype=F64))
    alone_a, alone_b = torch.autograd.grad((alone * w[r:]).sum(), (a_s, b_s))
    assert torch.isfinite(out[r:]).all() and torch.isfinite(grad_b[r:]).all()
    torch.testing.assert_close(out[r:], alone, atol=1e-12, rtol=0)
    torch.testing.assert_close(grad_b[r:], alone_b, atol=1e-12, rtol=0)
    torch.testing.assert_close(grad_a[r:], alone_a, atol=1e-12, rtol=0)
    assert torch.all(grad_a[r] == 0)  # a is the constant 0 at a reset step


def test_a_reset_at_the_first_step_drops_an_inf_initial_state() -> None:
    a, b, _, _ = _inputs(40, 2, seed=3)
    h0 = torch.tensor([float("inf"), float("nan")], dtype=F64, requires_grad=True)
    reset = torch.zeros(40, 2, dtype=torch.bool)
    reset[0] = True
    out = linear_scan(a, b, h0, reset)
    (grad_h0,) = torch.autograd.grad(out.sum(), h0)
    torch.testing.assert_close(out, linear_scan(a, b, torch.zeros(2, dtype=F64)))
    assert torch.all(grad_h0 == 0)


def _layer_inputs(T: int, B: int, D: int, L: int):
    x = torch.randn(T, B, 3, dtype=F64)
    h0 = torch.randn(L * D, B, 4, dtype=F64)
    reset = torch.rand(T, B) < 0.05
    reset[CHUNK, 1] = reset[CHUNK + 1, 1] = reset[T - 1, 2] = True
    return x, h0, reset, [T, T - 9, 2 * CHUNK + 1, 40]


@pytest.mark.parametrize("kind", list(LAYERS))
def test_layers_with_resets_and_lengths_equal_the_reference(kind: str) -> None:
    layer = LAYERS[kind](3, 4, 2, bidirectional=True, dtype=F64)
    x, h0, reset, lengths = _layer_inputs(3 * CHUNK + 5, 4, D=2, L=2)
    w = torch.randn(x.size(0), 4, 8, dtype=F64)
    results = []
    for backend in ("scan", "reference"):
        layer.backend = backend
        xs, hs = x.clone().requires_grad_(), h0.clone().requires_grad_()
        assert layer.backend_for(xs, hs, lengths=lengths, reset=reset).name == backend
        out, h = layer(xs, hs, lengths=lengths, reset=reset)
        grads = torch.autograd.grad(
            (out * w).sum() + h.square().sum(), [xs, hs, *layer.parameters()]
        )
        results.append([out, h, *grads])
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got, want, atol=1e-10, rtol=0)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_layers_isolate_a_segment_from_an_earlier_inf(kind: str) -> None:
    # Two layers, both directions: the reverse direction restarts at the segment's end,
    # so everything from the reset on is finite on both backends and equal.
    T, r = 3 * CHUNK + 5, 2 * CHUNK + 3
    layer = LAYERS[kind](3, 4, 2, bidirectional=True, dtype=F64)
    x, h0 = torch.randn(T, 2, 3, dtype=F64), torch.randn(4, 2, 4, dtype=F64)
    x[5, 0] = float("inf")
    x[r - 1, 0, 1] = float("nan")
    reset = torch.zeros(T, 2, dtype=torch.bool)
    reset[r, 0] = True
    results = []
    for backend in ("scan", "reference"):
        layer.backend = backend
        xs = x.clone().requires_grad_()
        out, _ = layer(xs, h0, reset=reset)
        (grad_x,) = torch.autograd.grad(out[r:].sum(), xs)
        results.append((out[r:, 0], grad_x[r:, 0]))
    (out_s, grad_s), (out_r, grad_r) = results
    assert torch.isfinite(out_s).all() and torch.isfinite(grad_s).all()
    torch.testing.assert_close(out_s, out_r, atol=1e-10, rtol=0)
    torch.testing.assert_close(grad_s, grad_r, atol=1e-10, rtol=0)


def test_the_custom_operator_takes_a_reset() -> None:
    # The operator torch.compile runs: its schema, fake tensors and autograd registration
    # (torch.library.opcheck), and its values against the eager scan.
    a, b, h0, reset = _inputs(70, 3, seed=11)
    a, b, h0 = (t.requires_grad_() for t in (a, b, h0))
    torch.library.opcheck(_scan_op, (a, b, h0, reset))
    torch.library.opcheck(_scan_op, (a, b, h0))
    w = torch.randn(70, 3, dtype=F64)
    got = _scan_op(a, b, h0, reset)
    want = _loop(a, b, h0, reset)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    grads = torch.autograd.grad((got * w).sum(), (a, b, h0))
    wants = torch.autograd.grad((want * w).sum(), (a, b, h0))
    for u, v in zip(grads, wants, strict=True):
        torch.testing.assert_close(u, v, atol=1e-10, rtol=0)


def test_compiled_segmented_scan_equals_eager() -> None:
    # fullgraph: the segmented scan is one opaque operator, no graph break.
    torch._dynamo.reset()
    a, b, h0, reset = _inputs(70, 3, seed=12)
    b[3, 1] = float("inf")
    reset[10, 1] = True
    w = torch.randn(70, 3, dtype=F64)

    def scan(a, b, h0):
        return linear_scan(a, b, h0, reset)

    runs = []
    for fn in (scan, torch.compile(scan, backend="aot_eager", fullgraph=True)):
        leaves = [t.clone().requires_grad_() for t in (a, b, h0)]
        out = fn(*leaves)
        runs.append((out, torch.autograd.grad((out[10:] * w[10:]).sum(), leaves)))
    (out_e, grads_e), (out_c, grads_c) = runs
    assert torch.isfinite(out_c[10:]).all()
    torch.testing.assert_close(out_c[10:], out_e[10:], atol=1e-12, rtol=0)
    for u, v in zip(grads_c, grads_e, strict=True):
        torch.testing.assert_close(u, v, atol=1e-12, rtol=0, equal_nan=True)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_compiled_layer_with_resets_equals_eager(kind: str) -> None:
    torch._dynamo.reset()
    layer = LAYERS[kind](3, 4, bidirectional=True, dtype=F64)
    x, h0, reset, _ = _layer_inputs(CHUNK + 8, 3, D=2, L=1)
    x[2, 0] = float("inf")
    reset[4, 0] = True
    runs = []
    for fn in (layer, torch.compile(layer, backend="aot_eager", fullgraph=True)):
        xs = x.clone().requires_grad_()
        out, h = fn(xs, h0, reset=reset)
        grads = torch.autograd.grad(out[4:].sum(), [xs, *layer.parameters()])
        runs.append([out[4:], h[0], grads[0][4:]])
    for got, want in zip(*runs, strict=True):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
