"""A model moved between devices and precisions: rnnkit's layers against torch.nn's.

Two places where rnnkit parted from torch.nn. On the meta device (shape inference, building
a large model before ``to_empty``) torch.nn's layers and cells run and return the shapes
of the call; rnnkit's raised "unknown device type for autocast" from asking torch whether
autocast was on for that device. A layer built with a complex dtype
(``dtype=torch.complex64``, which torch.nn's layers, torch.nn's cells and rnnkit's cells
run) refused every complex input. Compared here with torch.nn, weights copied by
state_dict: outputs, states and gradients; torch's complex packed output and autocast
(which leaves complex tensors alone) included. What torch cannot run on complex numbers -
layer norm, and the random masks of zoneout, recurrent dropout and dropout in training -
is refused in one line instead of failing inside torch.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import rnnkit
from _tensors import tensors
from rnnkit._checks import DeviceError, DtypeError

CLASSIC = ["RNN", "LSTM", "GRU"]
T, B, I, H = 5, 3, 4, 6


def _pair(name: str, dtype: torch.dtype, **kwargs: Any) -> tuple[nn.Module, nn.Module]:
    """rnnkit's layer and torch.nn's, with torch.nn's weights."""
    backend = kwargs.pop("backend", "auto")
    reference = getattr(nn, name)(I, H, dtype=dtype, **kwargs)
    layer = getattr(rnnkit, name)(I, H, dtype=dtype, backend=backend, **kwargs)
    layer.load_state_dict(reference.state_dict())
    return layer, reference


def _assert_same(got: Any, expected: Any, atol: float = 1e-5) -> None:
    got, expected = tensors(got), tensors(expected)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == e.dtype and g.shape == e.shape, (g.dtype, e.dtype, g.shape, e.shape)
        torch.testing.assert_close(g, e, atol=atol, rtol=0)


def _raises_exactly(exc: type[BaseException], message: str, fn: Any, *args: Any) -> None:
    with pytest.raises(exc, match="^" + re.escape(message) + "$"):
        fn(*args)


# ---- the meta device ----------------------------------------------------------------


@pytest.mark.parametrize("backend", ["auto", "native", "reference"])
@pytest.mark.parametrize(
    "kwargs",
    [{}, {"num_layers": 2, "bidirectional": True}, {"proj_size": 2}],
    ids=["plain", "stacked-bidirectional", "proj_size"],
)
@pytest.mark.parametrize("name", CLASSIC)
def test_a_layer_on_the_meta_device_returns_torch_nn_shapes(name, kwargs, backend):
    if "proj_size" in kwargs and name != "LSTM":
        pytest.skip("proj_size is the LSTM's")
    x = torch.empty(T, B, I, device="meta")
    got = getattr(rnnkit, name)(I, H, device="meta", backend=backend, **kwargs)(x)
    expected = getattr(nn, name)(I, H, device="meta", **kwargs)(x)
    for g, e in zip(tensors(got), tensors(expected), strict=True):
        assert g.device.type == "meta" and g.shape == e.shape and g.dtype == e.dtype


@pytest.mark.parametrize("backend", ["auto", "scan", "reference"])
@pytest.mark.parametrize("name", ["MinGRU", "MinLSTM"])
def test_a_minimal_layer_on_the_meta_device_returns_its_shapes(name, backend):
    layer = getattr(rnnkit, name)(I, H, 2, device="meta", backend=backend)
    out, h = layer(torch.empty(T, B, I, device="meta"), lengths=[T, 2, 1])
    assert (out.device.type, tuple(out.shape), tuple(h.shape)) == ("meta", (T, B, H), (2, B, H))


@pytest.mark.parametrize("name", CLASSIC)
def test_a_cell_on_the_meta_device_returns_torch_nn_shapes(name):
    x = torch.empty(B, I, device="meta")
    got = getattr(rnnkit, f"{name}Cell")(I, H, device="meta")(x)
    expected = getattr(nn, f"{name}Cell")(I, H, device="meta")(x)
    for g, e in zip(tensors(got), tensors(expected), strict=True):
        assert g.device.type == "meta" and g.shape == e.shape


@pytest.mark.parametrize("name", CLASSIC)
def test_a_layer_built_on_meta_then_to_empty_loads_torch_weights_and_matches(name):
    # The pattern for large models: build without memory, allocate, load the weights.
    reference = getattr(nn, name)(I, H, 2)
    layer = getattr(rnnkit, name)(I, H, 2, device="meta").to_empty(device="cpu")
    layer.load_state_dict(reference.state_dict())
    x = torch.randn(T, B, I)
    _assert_same(layer(x), reference(x))


def test_a_meta_input_to_a_cpu_layer_is_named():
    # Asked before the device check, autocast's "unknown device type" came first.
    _raises_exactly(
        DeviceError,
        "GRU: input.device must equal the parameters.device; expected cpu, got meta",
        rnnkit.GRU(I, H),
        torch.empty(T, B, I, device="meta"),
    )


# ---- complex layers ------------------------------------------------------------------


def _complex_cases() -> list[Any]:
    cases = []
    for name in CLASSIC:
        configs: dict[str, dict[str, Any]] = {
            "plain": {},
            "stacked-bidirectional": {"num_layers": 2, "bidirectional": True},
            "batch_first": {"batch_first": True},
        }
        if name == "LSTM":
            configs["proj_size"] = {"proj_size": 2, "num_layers": 2}
        for config, kwargs in configs.items():
            for backend in ("auto", "native", "reference"):
                cases.append(pytest.param(name, kwargs, backend, id=f"{name}-{config}-{backend}"))
    return cases


@pytest.mark.parametrize("steps", [2, 7], ids=["T2", "T7"])
@pytest.mark.parametrize(("name", "kwargs", "backend"), _complex_cases())
def test_a_complex_layer_matches_torch_nn_with_gradients(name, kwargs, backend, steps):
    layer, reference = _pair(name, torch.complex128, backend=backend, **kwargs)
    x = torch.randn(steps, B, I, dtype=torch.complex128)
    if kwargs.get("batch_first"):
        x = x.transpose(0, 1).contiguous()
    got_x, ref_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    got, expected = layer(got_x), reference(ref_x)
    _assert_same(got, expected, atol=1e-12)
    sum(t.abs().sum() for t in tensors(got)).backward()
    sum(t.abs().sum() for t in tensors(expected)).backward()
    torch.testing.assert_close(got_x.grad, ref_x.grad, atol=1e-12, rtol=0)
    for (n, p), q in zip(layer.named_parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-12, rtol=0, msg=n)


@pytest.mark.parametrize("backend", ["auto", "native", "reference"])
@pytest.mark.parametrize("name", CLASSIC)
def test_a_complex_layer_takes_every_input_form_as_torch_nn(name, backend):
    layer, reference = _pair(name, torch.complex128, backend=backend, num_layers=2)
    x = torch.randn(T, B, I, dtype=torch.complex128)
    _assert_same(layer(x[:, 0]), reference(x[:, 0]), atol=1e-12)  # unbatched
    packed = pack_padded_sequence(x, [T, 3, 1], enforce_sorted=False)
    got, expected = layer(packed), reference(packed)
    _assert_same(got, expected, atol=1e-12)
    assert torch.equal(got[0].sorted_indices, expected[0].sorted_indices)
    # torch.nn's packed output has a gradient; torch's pack_padded_sequence gives a complex
    # tensor none, so rnnkit packs its output by indexing.
    got[0].data.abs().sum().backward()
    expected[0].data.abs().sum().backward()
    torch.testing.assert_close(layer.weight_ih_l0.grad, reference.weight_ih_l0.grad)
    # lengths: the state at each sequence's last step, as a packed call's
    _assert_same(layer(x, lengths=[T, 3, 1])[1], reference(packed)[1], atol=1e-12)
    h = torch.randn(2, B, H, dtype=torch.complex128)
    state = (h, h.clone()) if name == "LSTM" else h
    _assert_same(layer(x, state), reference(x, state), atol=1e-12)


@pytest.mark.parametrize("backend", ["auto", "native", "reference"])
@pytest.mark.parametrize("name", CLASSIC)
def test_autocast_leaves_a_complex_layer_complex_as_torch_nn(name, backend):
    layer, reference = _pair(name, torch.complex64, backend=backend)
    x = torch.randn(T, B, I, dtype=torch.complex64)
    with warnings.catch_warnings():
        # "Casting complex values to real discards the imaginary part" would be the bug.
        warnings.simplefilter("error")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got, expected = layer(x), reference(x)
    _assert_same(got, expected)


@pytest.mark.parametrize("name", ["MinGRU", "MinLSTM"])
def test_a_complex_minimal_layer_scans_as_its_loop(name):
    scan = getattr(rnnkit, name)(I, H, 2, dtype=torch.complex128, backend="scan")
    loop = getattr(rnnkit, name)(I, H, 2, dtype=torch.complex128, backend="reference")
    loop.load_state_dict(scan.state_dict())
    x = torch.randn(20, B, I, dtype=torch.complex128)
    _assert_same(scan(x, lengths=[20, 3, 11]), loop(x, lengths=[20, 3, 11]), atol=1e-12)


def test_a_complex_stream_gives_the_whole_call():
    layer = rnnkit.LSTM(I, H, 2, dtype=torch.complex128)
    x = torch.randn(T, B, I, dtype=torch.complex128)
    stream = rnnkit.Stream(layer)
    outs = [stream(x[:2]), stream.step(x[2]).unsqueeze(0), stream(x[3:])]
    torch.testing.assert_close(torch.cat(outs), layer(x)[0], atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", CLASSIC)
def test_autocast_leaves_a_complex_cell_and_stream_complex_as_torch_nn(name):
    # Both cast the input to bf16 before: a real result with the imaginary part dropped,
    # and the stream's next step refused its own bf16 state.
    reference = getattr(nn, name + "Cell")(I, H, dtype=torch.complex64)
    cell = getattr(rnnkit, name + "Cell")(I, H, dtype=torch.complex64)
    cell.load_state_dict(reference.state_dict())
    layer = getattr(rnnkit, name)(I, H, dtype=torch.complex64)
    x = torch.randn(T, B, I, dtype=torch.complex64)
    stream = rnnkit.Stream(layer)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got, expected = cell(x[0]), reference(x[0])
            steps = torch.stack([stream.step(x[t]) for t in range(T)])
            whole = layer(x)[0]
    _assert_same(got, expected)
    assert steps.dtype == whole.dtype == torch.complex64
    torch.testing.assert_close(steps, whole, atol=1e-4, rtol=0)


def test_what_does_not_fit_a_complex_layer_is_named():
    layer = rnnkit.LSTM(I, H, dtype=torch.complex64)
    x = torch.randn(T, B, I, dtype=torch.complex64)
    _raises_exactly(
        DtypeError,
        "LSTM: input.dtype must equal the parameters.dtype; expected torch.complex64, "
        "got torch.float32",
        layer,
        x.real,
    )
    _raises_exactly(
        DtypeError, "LSTM: input must be a floating-point tensor; got torch.int64", layer,
        x.real.long(),
    )  # fmt: skip
    h = torch.zeros(1, B, H)
    _raises_exactly(
        DtypeError,
        "LSTM: state h.dtype must equal input.dtype; expected torch.complex64, got torch.float32",
        layer,
        x,
        (h, h),
    )
    _raises_exactly(
        ValueError,
        "LSTM: backend='fused' cannot run this call (rnnkit's fused kernels run float32 and "
        "float64 on the CPU and on CUDA; got torch.complex64 on cpu); use backend='auto' or "
        "'reference'",
        rnnkit.LSTM(I, H, dtype=torch.complex64, backend="fused"),
        x,
    )


def test_a_complex_input_to_a_real_layer_is_refused_under_autocast_too():
    # Cast to the parameters' dtype under autocast, it lost its imaginary part.
    layer = rnnkit.GRU(I, H)
    x = torch.randn(T, B, I, dtype=torch.complex64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _raises_exactly(
            DtypeError, "GRU: input must be a floating-point tensor; got torch.complex64", layer, x
        )
        _raises_exactly(
            DtypeError,
            "GRU: state h.dtype must equal input.dtype; expected torch.float32, got "
            "torch.complex64",
            layer,
            x.real,
            torch.zeros(1, B, H, dtype=torch.complex64),
        )


def test_what_torch_cannot_run_on_complex_numbers_is_refused_in_one_line():
    x = torch.randn(T, B, I, dtype=torch.complex64)
    # torch: '"LayerNormKernelImpl" not implemented for 'ComplexFloat''
    _raises_exactly(
        DtypeError,
        "LSTM: a complex input needs a layer without layer_norm (torch has no complex kernels "
        "for them); got torch.complex64 with layer_norm=True",
        rnnkit.LSTM(I, H, layer_norm=True, dtype=torch.complex64).eval(),
        x,
    )
    # torch: '"lt_cpu" not implemented for 'ComplexFloat'', '"bernoulli_..." not implemented'
    _raises_exactly(
        DtypeError,
        "GRU: a complex input needs a layer without zoneout in training, recurrent_dropout in "
        "training, dropout in training (torch has no complex kernels for them); got "
        "torch.complex64 with zoneout=0.1, recurrent_dropout=0.2, dropout=0.5",
        rnnkit.GRU(I, H, 2, dropout=0.5, zoneout=0.1, recurrent_dropout=0.2,
                   dtype=torch.complex64),
        x,
    )  # fmt: skip
    # In evaluation the masks are not drawn: zoneout is its expectation, and it runs.
    layer = rnnkit.MinGRU(I, H, 2, dropout=0.5, zoneout=0.1, dtype=torch.complex64).eval()
    assert layer(x)[0].dtype == torch.complex64


@pytest.mark.parametrize("dtype", [torch.complex64, torch.int64], ids=["complex", "int"])
def test_under_autocast_a_state_autocast_leaves_alone_is_refused_as_torch_nn(dtype):
    # Cast to float32 as an autocast state, a complex one lost its imaginary part and an
    # integer one ran; torch.nn refuses both ("mat1 and mat2 must have the same dtype").
    x = torch.randn(T, B, I)
    got = str(dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _raises_exactly(
            DtypeError,
            f"GRU: state h.dtype must equal input.dtype; expected torch.float32, got {got}",
            rnnkit.GRU(I, H),
            x,
            torch.zeros(1, B, H, dtype=dtype),
        )
        _raises_exactly(
            DtypeError,
            f"GRUCell: hx h.dtype must equal input.dtype; expected torch.float32, got {got}",
            rnnkit.GRUCell(I, H),
            x[0],
            torch.zeros(B, H, dtype=dtype),
        )
        h = torch.zeros(B, H)
        _raises_exactly(
            DtypeError,
            f"LSTMCell: hx c.dtype must equal input.dtype; expected torch.float32, got {got}",
            rnnkit.LSTMCell(I, H),
            x[0],
            (h, torch.zeros(B, H, dtype=dtype)),
        )
