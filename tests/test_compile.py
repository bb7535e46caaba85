"""torch.compile of rnnkit layers: no graph break inside rnnkit, results equal eager, and a
compile time that does not grow with T on the native and scan paths.

The fused kernels (rnnkit.kernels.native_rnn) and the linear scan (rnnkit.kernels.scan)
run as opaque torch.library custom operators under the compiler, so the graph holds one
node per layer call however long the sequence is.
"""

from __future__ import annotations

import time

import pytest
import torch
import torch._dynamo
import torch._inductor.config

import rnnkit

LAYERS = {
    "LSTM": lambda: rnnkit.LSTM(8, 16),
    "GRU": lambda: rnnkit.GRU(8, 16),
    "RNN": lambda: rnnkit.RNN(8, 16),
    "MinGRU": lambda: rnnkit.MinGRU(8, 16),
}


def _run(model: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Outputs, final state and the gradients of x and every parameter of one step."""
    out, state = model(x)
    states = state if isinstance(state, tuple) else (state,)
    loss = out.square().sum() + sum(s.square().sum() for s in states)
    grads = torch.autograd.grad(loss, [x, *layer.parameters()])
    return [out, *states, *grads]


@pytest.mark.parametrize("name", list(LAYERS))
def test_no_graph_break(name: str) -> None:
    torch._dynamo.reset()
    layer = LAYERS[name]()
    explained = torch._dynamo.explain(layer)(torch.randn(40, 2, 8))
    assert explained.graph_break_count == 0, explained.break_reasons


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
@pytest.mark.parametrize("name", list(LAYERS))
def test_compiled_equals_eager(name: str, backend: str) -> None:
    torch._dynamo.reset()
    torch.manual_seed(0)
    layer = LAYERS[name]()
    x = torch.randn(40, 2, 8, requires_grad=True)  # above the scan's 32-step chunk
    expected = _run(layer, layer, x)
    got = _run(torch.compile(layer, backend=backend), layer, x)
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)


def _compile_seconds(name: str, T: int) -> float:
    torch._dynamo.reset()
    layer = LAYERS[name]()
    x = torch.randn(T, 2, 8, requires_grad=True)
    start = time.perf_counter()
    # From scratch: inductor's on-disk caches would serve graphs compiled by earlier runs.
    with torch._inductor.config.patch(force_disable_caches=True):
        _run(torch.compile(layer), layer, x)  # the first call compiles forward and backward
    return time.perf_counter() - start


@pytest.mark.slow
@pytest.mark.parametrize("name", ["LSTM", "MinGRU"])
def test_compile_time_does_not_grow_with_t(name: str) -> None:
    short, long = _compile_seconds(name, 50), _compile_seconds(name, 500)
    # Unrolled, T = 50 alone took minutes; as one node, T = 500 takes about what T = 50
    # takes (the slack absorbs a shared machine's noise).
    assert long < 2.0 * short + 2.0, (short, long)
