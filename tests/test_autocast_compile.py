"""torch.compile together with torch.autocast: no graph break, results close to eager.

Under autocast the layers cast what they return to torch.nn's dtypes (rnnkit._autocast);
the compiled call must keep those dtypes and the values of the eager autocast call, with
the whole layer in one graph.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch._dynamo

import rnnkit

AUTOCAST = {"device_type": "cpu", "dtype": torch.bfloat16}

# name -> (layer factory, T): the reference LSTM keeps T short, as its loop is unrolled.
LAYERS: dict[str, tuple[Callable[[], torch.nn.Module], int]] = {
    "LSTM": (lambda: rnnkit.LSTM(8, 16), 12),
    "GRU": (lambda: rnnkit.GRU(8, 16), 12),
    "RNN": (lambda: rnnkit.RNN(8, 16), 12),
    "MinGRU": (lambda: rnnkit.MinGRU(8, 16), 40),  # above the scan's 32-step chunk
    "LSTM-layer_norm-reference": (
        lambda: rnnkit.LSTM(8, 16, layer_norm=True, backend="reference"),
        6,
    ),
}


def _under_autocast(layer: torch.nn.Module) -> Callable[[torch.Tensor], Any]:
    def run(x: torch.Tensor) -> Any:
        with torch.autocast(**AUTOCAST):
            return layer(x)

    return run


def _results(fn: Callable[[torch.Tensor], Any], layer: torch.nn.Module, x: torch.Tensor):
    """Output, state and the gradients of x and every parameter."""
    out, state = fn(x)
    states = state if isinstance(state, tuple) else (state,)
    loss = out.float().square().sum() + sum(s.float().square().sum() for s in states)
    grads = torch.autograd.grad(loss, [x, *layer.parameters()])
    return [out, *states, *grads]


@pytest.mark.parametrize("name", list(LAYERS))
def test_no_graph_break_under_autocast(name: str) -> None:
    torch._dynamo.reset()
    factory, T = LAYERS[name]
    layer = factory()
    x = torch.randn(T, 2, 8)
    explained = torch._dynamo.explain(_under_autocast(layer))(x)
    assert explained.graph_break_count == 0, explained.break_reasons
    # An autocast region opened outside the compiled call: the same.
    torch._dynamo.reset()
    with torch.autocast(**AUTOCAST):
        explained = torch._dynamo.explain(layer)(x)
    assert explained.graph_break_count == 0, explained.break_reasons


def _check_compiled_equals_eager(name: str, backend: str) -> None:
    torch._dynamo.reset()
    torch.manual_seed(0)
    factory, T = LAYERS[name]
    layer = factory()
    x = torch.randn(T, 2, 8, requires_grad=True)
    expected = _results(_under_autocast(layer), layer, x)
    compiled = torch.compile(_under_autocast(layer), backend=backend, fullgraph=True)
    got = _results(compiled, layer, x)
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g.dtype == e.dtype, i
        # The compiler may fuse or reorder low-precision ops: bf16 rounding, relative to
        # the size of the tensor (gradients sum over T steps).
        scale = float(e.detach().abs().max()) + 1.0
        torch.testing.assert_close(g.float(), e.float(), rtol=0, atol=2e-2 * scale)


@pytest.mark.parametrize("name", list(LAYERS))
def test_aot_eager_under_autocast_equals_eager(name: str) -> None:
    _check_compiled_equals_eager(name, "aot_eager")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(LAYERS))
def test_inductor_under_autocast_equals_eager(name: str) -> None:
    _check_compiled_equals_eager(name, "inductor")
