"""The native backend's ragged path packs and unpacks by indexing
(``rnnkit.kernels.native_rnn._packed``).

It ran through torch's ``pack_padded_sequence`` and ``pad_packed_sequence``, which failed
in two places where the reference backend ran: a complex layer called with ``lengths`` on
an input that needs its gradient ("_pack_padded_sequence does not support automatic
differentiation for outputs with complex dtype"), and ragged calls on the meta device
(``pad_packed_sequence`` reads indices back to the CPU: "Cannot copy out of meta tensor;
no data!"). Gathering each step's rows and scattering the kernel's output back runs in
every dtype and on every device; the batch order and packed layout are torch's, so in
float32 and float64 the outputs, states and every gradient are torch.nn's bit for bit.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit
from _tensors import tensors

T, B, I, H = 7, 5, 3, 4
UNSORTED = [7, 3, 7, 1, 5]  # ties included: the kernel sees the batch in torch's order
LAYERS = [
    ("LSTM", {}),
    ("GRU", {}),
    ("RNN", {"nonlinearity": "tanh"}),
    ("RNN", {"nonlinearity": "relu"}),
    ("LSTM", {"proj_size": 2}),
]
SHAPES = [(1, False), (1, True), (2, False), (2, True)]  # (num_layers, bidirectional)


def _bits(t: Tensor) -> Tensor:
    """t's bit patterns: equal only where t is equal bit for bit (signs of zero too)."""
    return t.view({torch.float32: torch.int32, torch.float64: torch.int64}[t.dtype])


def _pair(name: str, dtype: torch.dtype, **kwargs: Any) -> tuple[nn.Module, nn.Module]:
    """rnnkit's native layer and torch.nn's, with torch.nn's weights."""
    reference = getattr(nn, name)(I, H, dtype=dtype, **kwargs)
    layer = getattr(rnnkit, name)(I, H, dtype=dtype, backend="native", **kwargs)
    layer.load_state_dict(reference.state_dict())
    return layer, reference


def _inputs(layer: nn.Module, dtype: torch.dtype) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """x (T, B, I), the initial state, and weights for a loss of outputs and final state."""
    D = 2 if layer.bidirectional else 1
    width = layer.proj_size or H
    h0 = torch.randn(layer.num_layers * D, B, width, dtype=dtype)
    state = [h0, torch.randn(layer.num_layers * D, B, H, dtype=dtype)]
    state = state if layer.mode == "LSTM" else state[:1]
    x = torch.randn(T, B, I, dtype=dtype)
    w = [torch.randn(T, B, D * width, dtype=dtype), *(torch.randn_like(s) for s in state)]
    return x, state, w


def _run(module: nn.Module, x: Tensor, state: list[Tensor], w: list[Tensor], form: str) -> Any:
    """Outputs, final state and every gradient of ``module`` on a ragged batch.

    ``form``: "lengths" (rnnkit's argument; torch.nn packs and pads around the call),
    "batch_first", or "packed" (a PackedSequence input)."""
    x = x.clone().requires_grad_(True)
    state = [s.clone().requires_grad_(True) for s in state]
    lengths = torch.tensor(UNSORTED)
    bf = form == "batch_first"
    inp = x.transpose(0, 1) if bf else x
    module.batch_first = bf
    hx = tuple(state) if len(state) == 2 else state[0]
    if form == "packed" or not isinstance(module, rnnkit.RecurrentLayer):
        packed, s_n = module(pack_padded_sequence(inp, lengths, bf, enforce_sorted=False), hx)
        out = pad_packed_sequence(packed, total_length=T)[0]  # time-major
    else:
        out, s_n = module(inp, hx, lengths=lengths)
        out = out.transpose(0, 1) if bf else out
    finals = tensors(s_n)
    loss = sum((o * wt).sum() for o, wt in zip([out, *finals], w, strict=True))
    loss.backward()  # type: ignore[union-attr]
    grads = [x.grad, *(s.grad for s in state), *(p.grad for p in module.parameters())]
    return [out.detach(), *(f.detach() for f in finals), *grads]


@pytest.mark.parametrize("form", ["lengths", "batch_first", "packed"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("num_layers,bidirectional", SHAPES)
@pytest.mark.parametrize("name,kwargs", LAYERS, ids=lambda v: str(v) if isinstance(v, dict) else v)
def test_a_ragged_batch_gives_torch_nn_packed_results_bit_for_bit(
    name, kwargs, num_layers, bidirectional, dtype, form
):
    torch.manual_seed(0)
    layer, reference = _pair(
        name, dtype, num_layers=num_layers, bidirectional=bidirectional, **kwargs
    )
    x, state, w = _inputs(layer, dtype)
    x[:, 3] = float("nan")  # padding past sample 3's one step is never read
    x[0, 3] = 0.5
    got, expected = _run(layer, x, state, w, form), _run(reference, x, state, w, form)
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g.shape == e.shape and g.dtype == e.dtype, i
        assert torch.equal(_bits(g), _bits(e)), i


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("name,kwargs", LAYERS, ids=lambda v: str(v) if isinstance(v, dict) else v)
def test_sequences_of_length_zero_keep_their_state_and_the_rest_is_torch_nn_bit_for_bit(
    name, kwargs, dtype
):
    """torch refuses length 0; rnnkit runs the other sequences (as torch.nn on that
    sub-batch, bit for bit), outputs zeros for the empty ones and passes their state on."""
    torch.manual_seed(0)
    layer, reference = _pair(name, dtype, num_layers=2, bidirectional=True, **kwargs)
    x, state, w = _inputs(layer, dtype)
    lengths = [7, 0, 3, 0, 5]
    keep = torch.tensor([0, 2, 4])
    x = x.requires_grad_(True)
    state = [s.requires_grad_(True) for s in state]
    out, s_n = layer(x, tuple(state) if len(state) == 2 else state[0], lengths=lengths)
    finals = tensors(s_n)
    sum((o * wt).sum() for o, wt in zip([out, *finals], w, strict=True)).backward()

    sub_x = x.detach()[:, keep].requires_grad_(True)
    sub_state = [s.detach()[:, keep].requires_grad_(True) for s in state]
    packed = pack_padded_sequence(sub_x, torch.tensor([7, 3, 5]), enforce_sorted=False)
    hx = tuple(sub_state) if len(sub_state) == 2 else sub_state[0]
    sub_packed, sub_s_n = reference(packed, hx)
    sub_out = pad_packed_sequence(sub_packed, total_length=T)[0]
    sub_finals = tensors(sub_s_n)
    pairs = zip([sub_out, *sub_finals], w, strict=True)
    sum((o * wt[:, keep]).sum() for o, wt in pairs).backward()

    empty = torch.tensor([1, 3])
    assert torch.equal(_bits(out[:, keep]), _bits(sub_out))
    assert not out[:, empty].any()
    for f, s, sub_f in zip(finals, state, sub_finals, strict=True):
        assert torch.equal(_bits(f[:, keep]), _bits(sub_f))
        assert torch.equal(f[:, empty], s[:, empty])
    assert x.grad is not None and sub_x.grad is not None
    assert torch.equal(_bits(x.grad[:, keep]), _bits(sub_x.grad))
    assert not x.grad[:, empty].any()
    for s, sub_s, wt in zip(state, sub_state, w[1:], strict=True):
        assert s.grad is not None and sub_s.grad is not None
        assert torch.equal(_bits(s.grad[:, keep]), _bits(sub_s.grad))
        assert torch.equal(s.grad[:, empty], wt[:, empty])  # the state passes through
    for p, q in zip(layer.parameters(), reference.parameters(), strict=True):
        assert torch.equal(_bits(p.grad), _bits(q.grad))


# ---- complex layers -----------------------------------------------------------------

COMPLEX = ["LSTM", "GRU", "RNN"]  # torch has no complex relu: RNN is tanh


def _complex_layer(name: str, backend: str, num_layers: int = 2) -> nn.Module:
    torch.manual_seed(0)
    return getattr(rnnkit, name)(
        2, 3, num_layers, bidirectional=True, dtype=torch.complex128, backend=backend
    )


@pytest.mark.parametrize("name", COMPLEX)
def test_a_complex_layer_with_lengths_passes_gradcheck(name):
    """Input, initial state and every weight; lengths unsorted, one of them 0."""
    layer = _complex_layer(name, "native", num_layers=1)
    names = [n for n, _ in layer.named_parameters()]
    weights = [p.detach().clone().requires_grad_(True) for p in layer.parameters()]
    x = torch.randn(3, 4, 2, dtype=torch.complex128, requires_grad=True)
    state = [torch.randn(2, 4, 3, dtype=torch.complex128, requires_grad=True) for _ in "hc"]
    n = 2 if name == "LSTM" else 1

    def f(x: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
        hx = tuple(rest[:n]) if name == "LSTM" else rest[0]
        params = dict(zip(names, rest[n:], strict=True))
        out, s_n = functional_call(layer, params, (x, hx), {"lengths": [2, 0, 3, 1]})
        return (out, *tensors(s_n))

    assert torch.autograd.gradcheck(f, (x, *state[:n], *weights))


@pytest.mark.parametrize("form", ["lengths", "packed"])
@pytest.mark.parametrize("name", COMPLEX)
@pytest.mark.parametrize("backend", ["native", "auto"])
def test_a_complex_layer_with_lengths_is_the_reference_backend(name, form, backend):
    native, reference = _complex_layer(name, backend), _complex_layer(name, "reference")
    lengths = [2, 0, 3, 1] if form == "lengths" else [2, 1, 3, 1]
    x = torch.randn(3, 4, 2, dtype=torch.complex128)
    assert native.backend_for(x, lengths=lengths).name == "native"
    h = torch.randn(4, 4, 3, dtype=torch.complex128)
    results = []
    for layer in (native, reference):
        hx = h.clone().requires_grad_(True)
        state = (hx, hx * 2) if name == "LSTM" else hx
        if form == "packed":
            # torch packs a complex tensor without a gradient: the packed data is the leaf.
            packed = pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=False)
            inp = packed.data.requires_grad_(True)
            out, s_n = layer(packed._replace(data=inp), state)
        else:
            inp = x.clone().requires_grad_(True)
            out, s_n = layer(inp, state, lengths=lengths)
        got = [*tensors(out), *tensors(s_n)]
        sum(t.abs().square().sum() for t in got).backward()
        results.append([*got, inp.grad, hx.grad, *(p.grad for p in layer.parameters())])
    for g, e in zip(*results, strict=True):
        torch.testing.assert_close(g, e, atol=1e-12, rtol=1e-12)


# ---- the meta device ----------------------------------------------------------------


def _shapes(result: Any) -> list[tuple[str, tuple[int, ...]]]:
    return [(t.device.type, tuple(t.shape)) for t in tensors(result)]


@pytest.mark.parametrize("backend", ["native", "auto"])
@pytest.mark.parametrize("name,kwargs", LAYERS, ids=lambda v: str(v) if isinstance(v, dict) else v)
def test_ragged_calls_on_the_meta_device_return_torch_nn_shapes(name, kwargs, backend):
    layer = getattr(rnnkit, name)(
        I, H, 2, bidirectional=True, device="meta", backend=backend, **kwargs
    )
    reference = getattr(nn, name)(I, H, 2, bidirectional=True, device="meta", **kwargs)
    x = torch.empty(T, B, I, device="meta")
    # torch.nn pads a packed output on the meta device only when it was packed sorted
    # (pad_packed_sequence reads the unsorting indices back to the CPU).
    packed = pack_padded_sequence(x, torch.tensor([7, 6, 3, 3, 1]))
    expected_packed = reference(packed)
    expected = (pad_packed_sequence(expected_packed[0], total_length=T)[0], expected_packed[1])
    assert _shapes(layer(packed)) == _shapes(expected_packed)
    for lengths in ([7, 6, 3, 3, 1], UNSORTED, [7, 0, 3, 0, 5]):
        assert _shapes(layer(x, lengths=lengths)) == _shapes(expected)
    layer.batch_first = True
    out, _ = layer(x.transpose(0, 1), lengths=UNSORTED)
    assert (out.device.type, tuple(out.shape)) == ("meta", (B, T, expected[0].size(-1)))


@pytest.mark.parametrize("backend", ["native", "auto", "reference"])
@pytest.mark.parametrize("name,kwargs", LAYERS, ids=lambda v: str(v) if isinstance(v, dict) else v)
def test_an_unsorted_packed_sequence_on_the_meta_device_returns_torch_nn_shapes(
    name, kwargs, backend
):
    """pad_packed_sequence cannot unpack it there (it reads the meta unsorting indices back
    to the CPU); the layer unpacks it by indexing in the packed order (base._unpack_meta)."""
    layer = getattr(rnnkit, name)(
        I, H, 2, bidirectional=True, device="meta", backend=backend, **kwargs
    )
    reference = getattr(nn, name)(I, H, 2, bidirectional=True, device="meta", **kwargs)
    x = torch.empty(T, B, I, device="meta", requires_grad=True)
    packed = pack_padded_sequence(x, torch.tensor(UNSORTED), enforce_sorted=False)
    state = [t.to("meta") for t in tensors(reference(packed)[1])]
    hx = tuple(state) if name == "LSTM" else state[0]
    for args in ((packed,), (packed, hx)):
        got, expected = layer(*args), reference(*args)
        assert _shapes(got) == _shapes(expected)
        out = got[0]
        assert out.batch_sizes.tolist() == expected[0].batch_sizes.tolist()
        assert out.sorted_indices is packed.sorted_indices
        assert out.unsorted_indices is packed.unsorted_indices
        assert out.data.requires_grad  # the graph reaches the input, as torch.nn's does


# ---- CUDA ---------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name,kwargs", LAYERS, ids=lambda v: str(v) if isinstance(v, dict) else v)
def test_a_ragged_batch_on_cuda_gives_torch_nn_packed_results(name, kwargs):
    torch.manual_seed(0)
    layer, reference = _pair(name, torch.float64, num_layers=2, bidirectional=True, **kwargs)
    layer, reference = layer.cuda(), reference.cuda()
    x, state, w = _inputs(layer, torch.float64)
    x, state, w = x.cuda(), [s.cuda() for s in state], [t.cuda() for t in w]
    for form in ("lengths", "batch_first", "packed"):
        got, expected = _run(layer, x, state, w, form), _run(reference, x, state, w, form)
        for g, e in zip(got, expected, strict=True):
            torch.testing.assert_close(g, e)
        layer.zero_grad()
        reference.zero_grad()
