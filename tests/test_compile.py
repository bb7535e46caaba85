"""torch.compile of rnnkit layers: no graph break inside rnnkit, results equal eager, and a
compile time that does not grow with T, on every backend.

Under the compiler the fused kernels (rnnkit.kernels.native_rnn), the reference backend's
time loop (rnnkit.backends.opaque) and the linear scan (rnnkit.kernels.scan) run as opaque
torch.library custom operators, so the graph holds one node per layer call (per layer with
active dropout) however long the sequence is.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import torch
import torch._dynamo
import torch._inductor.config

import rnnkit
from rnnkit.backends import opaque
from rnnkit.backends.loop import loop
from rnnkit.kernels.native_rnn import native_rnn

T, B, I, H = 40, 3, 8, 16  # T above the scan's 32-step chunk


def _ragged() -> dict[str, torch.Tensor]:
    return {"lengths": torch.tensor([T, T // 2, 0])}


def _reset() -> dict[str, torch.Tensor]:
    reset = torch.zeros(T, B, dtype=torch.bool)
    reset[T // 3, 0] = reset[T // 2, 2] = True
    return {"reset": reset}


def _none() -> dict[str, torch.Tensor]:
    return {}


# name -> (layer factory, extra call arguments). Deterministic in eval mode: compiled and
# eager are compared number for number.
CASES: dict[str, tuple[Callable[[], torch.nn.Module], Callable[[], dict]]] = {
    "LSTM": (lambda: rnnkit.LSTM(I, H), _none),
    "GRU": (lambda: rnnkit.GRU(I, H), _none),
    "RNN": (lambda: rnnkit.RNN(I, H), _none),
    "MinGRU": (lambda: rnnkit.MinGRU(I, H), _none),
    "MinLSTM": (lambda: rnnkit.MinLSTM(I, H, bidirectional=True), _none),
    "LSTM-reference": (lambda: rnnkit.LSTM(I, H, backend="reference"), _none),
    "GRU-reference-stacked-bi": (
        lambda: rnnkit.GRU(I, H, num_layers=2, bidirectional=True, backend="reference"),
        _none,
    ),
    "RNN-relu-reference": (
        lambda: rnnkit.RNN(I, H, nonlinearity="relu", backend="reference"),
        _none,
    ),
    "MinGRU-reference": (lambda: rnnkit.MinGRU(I, H, backend="reference"), _none),
    "LSTM-options": (
        lambda: rnnkit.LSTM(I, H, layer_norm=True, zoneout=0.2, proj_size=5, num_layers=2),
        _none,
    ),
    "LSTM-ragged": (lambda: rnnkit.LSTM(I, H, num_layers=2, bidirectional=True), _ragged),
    "LSTM-proj-ragged": (lambda: rnnkit.LSTM(I, H, proj_size=5), _ragged),
    "GRU-options-ragged": (lambda: rnnkit.GRU(I, H, zoneout=0.1), _ragged),
    "LSTM-reset": (lambda: rnnkit.LSTM(I, H, bidirectional=True), _reset),
    "GRU-short": (lambda: rnnkit.GRU(I, H, num_layers=2), _none),  # see _steps below
}

# Random while training: compiled and eager draw differently, so these are checked for
# graph breaks, for determinism under a seed and for gradients, not number for number.
RANDOM = {
    "GRU-dropout": lambda: rnnkit.GRU(I, H, num_layers=3, dropout=0.3),
    "LSTM-dropout-ragged": lambda: rnnkit.LSTM(I, H, num_layers=2, dropout=0.5),
    "LSTM-zoneout-recurrent-dropout": lambda: rnnkit.LSTM(
        I, H, zoneout=0.3, recurrent_dropout=0.25, num_layers=2, bidirectional=True
    ),
    "MinGRU-zoneout": lambda: rnnkit.MinGRU(I, H, zoneout=0.3),
}


def _steps(name: str) -> int:
    return 3 if name.endswith("short") else T


def _run(
    model: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor, **kwargs: object
) -> list[torch.Tensor]:
    """Outputs, final state and the gradients of x and every parameter of one step."""
    out, state = model(x, **kwargs)
    states = state if isinstance(state, tuple) else (state,)
    loss = out.square().sum() + sum(s.square().sum() for s in states)
    grads = torch.autograd.grad(loss, [x, *layer.parameters()])
    return [out, *states, *grads]


@pytest.mark.parametrize("name", list(CASES) + list(RANDOM))
def test_no_graph_break(name: str) -> None:
    torch._dynamo.reset()
    if name in CASES:
        make, extra = CASES[name]
        layer, kwargs = make(), extra()
    else:
        layer, kwargs = RANDOM[name](), {}
    explained = torch._dynamo.explain(layer)(torch.randn(_steps(name), B, I), **kwargs)
    assert explained.graph_break_count == 0, explained.break_reasons


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
@pytest.mark.parametrize("name", list(CASES))
def test_compiled_equals_eager(name: str, backend: str) -> None:
    torch._dynamo.reset()
    torch.manual_seed(0)
    make, extra = CASES[name]
    # float64: layer norm makes the gradients ill-conditioned enough that float32 rounding
    # alone, fused differently by inductor, moves them by 1e-3 relative.
    layer = make().double().eval()
    x = torch.randn(_steps(name), B, I, dtype=torch.float64, requires_grad=True)
    kwargs = extra()
    expected = _run(layer, layer, x, **kwargs)
    got = _run(torch.compile(layer, backend=backend), layer, x, **kwargs)
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", list(RANDOM))
def test_random_options_compile_train_and_repeat_under_a_seed(name: str) -> None:
    torch._dynamo.reset()
    torch.manual_seed(0)
    layer = RANDOM[name]()
    x = torch.randn(T, B, I, requires_grad=True)
    kwargs = {"lengths": torch.tensor([T, 5, 0])} if name.endswith("ragged") else {}
    compiled = torch.compile(layer, backend="aot_eager")
    torch.manual_seed(1)
    first = _run(compiled, layer, x, **kwargs)
    torch.manual_seed(1)
    again = _run(compiled, layer, x, **kwargs)
    for a, b in zip(first, again, strict=True):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert any(g.abs().sum() > 0 for g in first[-len(list(layer.parameters())) :])
    # eval mode draws nothing: compiled equals eager again
    layer.eval()
    expected = _run(layer, layer, x, **kwargs)
    torch._dynamo.reset()
    got = _run(torch.compile(layer, backend="aot_eager"), layer, x, **kwargs)
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)


def test_the_opaque_loop_equals_the_eager_loop_with_the_same_zoneout_draws() -> None:
    torch.manual_seed(0)
    cell = rnnkit.LSTMCell(I, H, zoneout=0.4, layer_norm=True, proj_size=5).double()
    p = cell.own_parameters()
    gx = cell.project(p, torch.randn(T, B, I, dtype=torch.float64))
    state = (torch.randn(B, 5, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64))
    keep = cell.sample_zoneout(T, state)
    assert keep is not None and [k.shape for k in keep] == [(T, B, 5), (T, B, H)]
    valid = (torch.arange(T)[:, None] < torch.tensor([T, 7, 0])).unsqueeze(-1)
    kwargs = {"valid": valid, "zero": None, "reverse": True, "mask": None}
    expected = loop(cell, p, gx, state, keep=keep, **kwargs)
    key = opaque.key(cell)
    assert key is not None
    names = cell._parameter_names
    got = opaque.cell_loop(
        key, True, gx, list(state), [p[n] for n in names], valid, None, None, list(keep), True
    )
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=0)
    for g, e in zip(got[1], expected[1], strict=True):
        torch.testing.assert_close(g, e, rtol=0, atol=0)


def test_the_opaque_loop_passes_torchs_operator_checks() -> None:
    """torch.library.opcheck: schema, fake tensor shapes, autograd registration, AOT."""
    torch.manual_seed(0)
    cell = rnnkit.GRUCell(4, 6, zoneout=0.3).double()
    p = cell.own_parameters()
    x = torch.randn(5, 2, 4, dtype=torch.float64)
    gx = cell.project(p, x).detach().requires_grad_()
    state = [torch.randn(2, 6, dtype=torch.float64, requires_grad=True)]
    keep = list(cell.sample_zoneout(5, tuple(state)) or ())
    zero = torch.zeros(5, 2, 1, dtype=torch.bool)
    zero[2, 1] = True
    weights = [w.detach().requires_grad_() for w in p.values()]
    key = opaque.key(cell)
    args = (key, True, gx, state, weights, None, zero, None, keep, False)
    torch.library.opcheck(opaque.cell_loop, args)

    # and the recomputed backward is the eager loop's gradient, to float64 precision
    def out(g: torch.Tensor, s: torch.Tensor, *w: torch.Tensor) -> torch.Tensor:
        return opaque.cell_loop(key, True, g, [s], list(w), None, zero, None, keep, False)[0]

    torch.autograd.gradcheck(out, (gx, state[0], *weights))


def test_the_native_operator_with_ragged_lengths_passes_torchs_operator_checks() -> None:
    torch.manual_seed(0)
    ref = torch.nn.LSTM(4, 6, num_layers=2, bidirectional=True, dtype=torch.float64)
    weights = [w.detach().requires_grad_() for w in ref._flat_weights]
    x = torch.randn(5, 3, 4, dtype=torch.float64, requires_grad=True)
    hx = [torch.randn(4, 3, 6, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    lengths = torch.tensor([5, 2, 0])
    args = ("LSTM", x, hx, weights, True, 2, True, lengths)
    torch.library.opcheck(native_rnn, args)
    out, h_n, c_n = native_rnn(*args)
    layer = rnnkit.LSTM.from_torch(ref)
    expected, (h, c) = layer(x, (hx[0], hx[1]), lengths=lengths)
    for g, e in zip((out, h_n, c_n), (expected, h, c), strict=True):
        torch.testing.assert_close(g, e, rtol=0, atol=0)


def test_bad_lengths_still_raise_under_the_compiler() -> None:
    torch._dynamo.reset()
    compiled = torch.compile(rnnkit.LSTM(I, H), backend="aot_eager")
    with pytest.raises(RuntimeError, match=r"lengths must lie in \[0, T\]"):
        compiled(torch.randn(5, 2, I), lengths=torch.tensor([5, 9]))


def test_a_cell_class_from_outside_rnnkit_runs_the_unrolled_loop() -> None:
    class Outside(rnnkit.GRUCell):
        pass

    Outside.__module__ = "user_code"
    assert opaque.key(Outside(4, 4)) is None
    assert opaque.key(rnnkit.GRUCell(4, 4)) is not None


CELLS = {
    "RNNCell": lambda: rnnkit.RNNCell(I, H, nonlinearity="relu"),
    "LSTMCell": lambda: rnnkit.LSTMCell(I, H),
    "LSTMCell-options": lambda: rnnkit.LSTMCell(I, H, layer_norm=True, zoneout=0.2, proj_size=5),
    "GRUCell": lambda: rnnkit.GRUCell(I, H, zoneout=0.1),
    "MinGRUCell": lambda: rnnkit.MinGRUCell(I, H),
    "MinLSTMCell": lambda: rnnkit.MinLSTMCell(I, H),
}


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
@pytest.mark.parametrize("name", list(CELLS))
def test_cells_compile_without_graph_breaks_and_equal_eager(name: str, backend: str) -> None:
    torch._dynamo.reset()
    torch.manual_seed(0)
    cell = CELLS[name]().double().eval()
    x = torch.randn(B, I, dtype=torch.float64, requires_grad=True)
    assert torch._dynamo.explain(cell)(x).graph_break_count == 0

    def one_step(model: torch.nn.Module) -> list[torch.Tensor]:
        new = model(x)
        states = new if isinstance(new, tuple) else (new,)
        loss = sum(s.square().sum() for s in states)
        return [*states, *torch.autograd.grad(loss, [x, *cell.parameters()])]

    expected = one_step(cell)
    for e, g in zip(expected, one_step(torch.compile(cell, backend=backend)), strict=True):
        torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-9)


# name -> (layer factory, extra call arguments) for the compile-time check
TIMED = {
    "LSTM": (lambda: rnnkit.LSTM(I, H), _none),
    "MinGRU": (lambda: rnnkit.MinGRU(I, H), _none),
    "LSTM-layer_norm": (lambda: rnnkit.LSTM(I, H, layer_norm=True), _none),
    "GRU-ragged": (lambda: rnnkit.GRU(I, H), None),
    "GRU-dropout": (lambda: rnnkit.GRU(I, H, num_layers=2, dropout=0.3), _none),
}


def _compile_seconds(name: str, steps: int) -> float:
    torch._dynamo.reset()
    make, extra = TIMED[name]
    layer = make()
    x = torch.randn(steps, 2, I, requires_grad=True)
    kwargs = extra() if extra else {"lengths": torch.tensor([steps, steps // 2])}
    start = time.perf_counter()
    # From scratch: inductor's on-disk caches would serve graphs compiled by earlier runs.
    with torch._inductor.config.patch(force_disable_caches=True):
        _run(torch.compile(layer), layer, x, **kwargs)  # the first call compiles both passes
    return time.perf_counter() - start


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TIMED))
def test_compile_time_does_not_grow_with_t(name: str) -> None:
    short, long = _compile_seconds(name, 50), _compile_seconds(name, 500)
    # Unrolled, T = 50 alone took minutes; as one node, T = 500 takes about what T = 50
    # takes (the slack absorbs a shared machine's noise).
    assert long < 2.0 * short + 2.0, (short, long)
