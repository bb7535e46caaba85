"""A torch.nn model ported onto rnnkit's layers trains under ``torch.compile`` (inductor)
whatever the layout of what it feeds them: ``batch_first`` inputs (a transposed view in
time-major form), an input or a state transposed by the caller.

The opaque operators return contiguous tensors whatever their inputs' strides, and their
shape functions promise that layout (``rnnkit.kernels.native_rnn.like``): inductor checks
the two agree, and when the shape functions copied a strided input's strides the first
compiled training step failed with an AssertionError about strides
(tests/test_custom_op_strides.py calls the operators themselves).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch._dynamo

import rnnkit

T, B, I, H = 7, 3, 8, 12


def _step(
    call: Callable[..., torch.Tensor], layer: torch.nn.Module, *inputs: torch.Tensor
) -> list[torch.Tensor]:
    """The output and the gradients of every input and parameter for sum(output)."""
    out = call(*inputs)
    leaves = [*inputs, *layer.parameters()]
    return [out, *torch.autograd.grad(out.sum(), leaves)]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_a_batch_first_layer_trains_under_inductor_as_in_eager(kind: str) -> None:
    torch._dynamo.reset()
    torch.manual_seed(0)
    layer = getattr(rnnkit, kind)(I, H, num_layers=2, batch_first=True).double()
    x = torch.randn(B, T, I, dtype=torch.float64, requires_grad=True)

    def call(x: torch.Tensor) -> torch.Tensor:
        return layer(x, lengths=torch.tensor([T, 3, 5]))[0]

    expected = _step(call, layer, x)
    got = _step(torch.compile(call, backend="inductor", fullgraph=True), layer, x)
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-9)


@pytest.mark.slow
def test_a_transposed_input_and_state_train_under_inductor_as_in_eager() -> None:
    torch._dynamo.reset()
    torch.manual_seed(0)
    layer = rnnkit.LSTM(I, H).double()
    x = torch.randn(B, T, I, dtype=torch.float64, requires_grad=True)
    h = torch.randn(B, 1, H, dtype=torch.float64, requires_grad=True)
    c = torch.randn(B, 1, H, dtype=torch.float64, requires_grad=True)

    def call(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return layer(x.transpose(0, 1), (h.transpose(0, 1), c.transpose(0, 1)))[0]

    expected = _step(call, layer, x, h, c)
    got = _step(torch.compile(call, backend="inductor", fullgraph=True), layer, x, h, c)
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-9)
