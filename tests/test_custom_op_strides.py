"""rnnkit's opaque operators promise, in their shape functions, the layout their kernels
return: contiguous outputs whatever the strides of the inputs.

The shape functions of ``rnnkit::native_rnn``, ``rnnkit::cell_loop`` and their backward
operators copied the inputs' strides (``empty_like``) while the kernels return contiguous
tensors. Inductor checks the two agree, so a compiled training step on a strided input -
the time-major view of a ``batch_first`` input, a state sliced from a bigger tensor -
failed: "expected size 7==7, stride 24==8 ... Error in op:
torch.ops.rnnkit.native_rnn_backward.default". Here the operators are called directly,
without the layers' own handling of strided inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch
import torch._dynamo
import torch._functorch.config
import torch._inductor.config
from torch._subclasses.fake_tensor import FakeTensorMode

import rnnkit  # noqa: F401 - registers the operators
from rnnkit.backends import opaque
from rnnkit.cells.lstm import LSTMCell
from rnnkit.kernels.native_rnn import native_rnn, native_rnn_backward
from rnnkit.kernels.scan import _scan_backward_op, _scan_op

T, B, I, H = 7, 3, 8, 12
F64 = torch.float64


def _strided(*shape: int, transposed: bool = True) -> torch.Tensor:
    """A (shape) tensor that is not contiguous: the transpose of dims 0 and 1 of a
    contiguous one (a dense layout ``empty_like`` would copy), or a slice of a wider one."""
    if transposed:
        return torch.randn(shape[1], shape[0], *shape[2:], dtype=F64).transpose(0, 1)
    return torch.randn(*shape[:-1], 2 * shape[-1], dtype=F64)[..., : shape[-1]]


L = 2  # layers of the LSTM: its states (L, B, H) can be transposed views


def _lstm_weights() -> list[torch.Tensor]:
    return [p.detach().to(F64) for p in torch.nn.LSTM(I, H, num_layers=L)._flat_weights]


def _flat(result: Any) -> list[torch.Tensor]:
    if isinstance(result, torch.Tensor):
        return [result]
    return [t for part in result for t in _flat(part)]


# name -> a call of one operator on strided inputs: (function, its arguments).
def _native_rnn() -> tuple[Callable[..., Any], tuple[Any, ...]]:
    hx = [_strided(L, B, H), _strided(L, B, H, transposed=False)]
    return native_rnn, ("LSTM", _strided(T, B, I), hx, _lstm_weights(), True, L, False, None)


def _native_rnn_backward() -> tuple[Callable[..., Any], tuple[Any, ...]]:
    _, (mode, x, hx, w, *rest) = _native_rnn()
    grads = (_strided(T, B, H), _strided(L, B, H), _strided(L, B, H, transposed=False))
    return native_rnn_backward, (mode, x, hx, w, *rest, *grads)


def _cell_loop() -> tuple[Callable[..., Any], tuple[Any, ...]]:
    cell = LSTMCell(I, H).double()
    key = opaque.key(cell)
    weights = [getattr(cell, n).detach() for n in cell._parameter_names]
    state = [_strided(B, H), _strided(B, H, transposed=False)]
    gx = _strided(T, B, 4 * H)
    return opaque.cell_loop, (key, False, gx, state, weights, None, None, None, [], False)


def _cell_loop_backward() -> tuple[Callable[..., Any], tuple[Any, ...]]:
    _, args = _cell_loop()
    grads = (_strided(T, B, H), [_strided(B, H), _strided(B, H, transposed=False)])
    return opaque.cell_loop_backward, (*args, *grads)


def _linear_scan() -> tuple[Callable[..., Any], tuple[Any, ...]]:
    a = torch.rand(B * H, T, dtype=F64).t()
    return _scan_op, (a, _strided(T, B * H), torch.randn(2 * B * H, dtype=F64)[::2])


def _linear_scan_backward() -> tuple[Callable[..., Any], tuple[Any, ...]]:
    _, (a, _, h0) = _linear_scan()
    return _scan_backward_op, (a, h0, _strided(T, B * H), _strided(T, B * H))


CALLS = {
    "native_rnn": _native_rnn,
    "native_rnn_backward": _native_rnn_backward,
    "cell_loop": _cell_loop,
    "cell_loop_backward": _cell_loop_backward,
    "linear_scan": _linear_scan,
    "linear_scan_backward": _linear_scan_backward,
}


@pytest.mark.parametrize("name", list(CALLS))
def test_each_shape_function_gives_the_strides_of_the_real_outputs(name: str) -> None:
    op, args = CALLS[name]()
    real = _flat(op(*args))
    with FakeTensorMode(allow_non_fake_inputs=False) as mode:
        fake_args = torch.utils._pytree.tree_map_only(torch.Tensor, mode.from_tensor, args)
        fake = _flat(op(*fake_args))
    assert [f.shape for f in fake] == [r.shape for r in real]
    assert [f.stride() for f in fake] == [r.stride() for r in real]
    assert all(r.is_contiguous() for r in real)


def _grads(call: Callable[..., torch.Tensor], leaves: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The output of ``call`` on the leaves and the gradients of every leaf for a sum."""
    out = call(*leaves)
    return [out, *torch.autograd.grad(out.sum(), list(leaves))]


def _compare_compiled(call: Callable[..., torch.Tensor], leaves: list[torch.Tensor]) -> None:
    """``call`` compiled by inductor (its caches off, so that the shape functions run)
    equals ``call`` in eager mode, output and gradients."""
    torch._dynamo.reset()
    expected = _grads(call, leaves)
    with (
        torch._inductor.config.patch(fx_graph_cache=False),
        torch._functorch.config.patch(enable_autograd_cache=False),
    ):
        got = _grads(torch.compile(call, backend="inductor", fullgraph=True), leaves)
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-10)


def _leaves(*shapes: tuple[int, ...]) -> list[torch.Tensor]:
    return [torch.randn(*s, dtype=F64, requires_grad=True) for s in shapes]


@pytest.mark.slow
def test_native_rnn_trains_under_inductor_on_a_transposed_input_and_sliced_state() -> None:
    weights = [w.requires_grad_() for w in _lstm_weights()]
    leaves = [*_leaves((B, T, I), (B, L, H), (L, B, 2 * H)), *weights]

    def call(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, *w: torch.Tensor) -> torch.Tensor:
        hx = [h.transpose(0, 1), c[..., :H]]  # (L, B, H): a transpose and a slice
        out, h_n, c_n = native_rnn("LSTM", x.transpose(0, 1), hx, list(w), True, L, False, None)
        return torch.cat([out, h_n, c_n]) * 1.5

    _compare_compiled(call, leaves)


@pytest.mark.slow
def test_cell_loop_trains_under_inductor_on_a_transposed_input_and_state() -> None:
    cell = LSTMCell(I, H).double()
    key = opaque.key(cell)
    weights = [getattr(cell, n).detach().clone().requires_grad_() for n in cell._parameter_names]
    leaves = [*_leaves((B, T, 4 * H), (H, B), (B, 2 * H)), *weights]

    def call(gx: torch.Tensor, h: torch.Tensor, c: torch.Tensor, *w: torch.Tensor) -> torch.Tensor:
        state = [h.t(), c[:, H:]]
        out, final = opaque.cell_loop(
            key, False, gx.transpose(0, 1), state, list(w), None, None, None, [], False
        )
        return torch.cat([out, *(f[None] for f in final)]) * 1.5

    _compare_compiled(call, leaves)


@pytest.mark.slow
def test_linear_scan_trains_under_inductor_on_transposed_coefficients() -> None:
    leaves = _leaves((B * H, T), (B * H, T), (2 * B * H,))

    def call(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        return _scan_op(torch.sigmoid(a).t(), b.t(), h0[::2]) * 1.5

    _compare_compiled(call, leaves)
