"""Mixed precision: under torch.autocast every rnnkit layer and cell behaves as torch.nn's.

torch.nn's recurrent modules do not all return the autocast dtype (on the CPU a GRU keeps
its state's dtype, an LSTM's dtypes depend on the kernel that runs), so the checks compare
against torch.nn run on the same inputs rather than against a fixed dtype: same output and
state dtypes, no error, values within low-precision rounding, on every backend that runs
the case. minGRU and minLSTM, which torch.nn lacks, are held to torch.nn.GRU's dtypes (the
same promotion of h' = a h + b with the state) and to their own float32 results.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import rnnkit
from _tensors import tensors

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

AUTOCASTS = [
    pytest.param("cpu", torch.bfloat16, id="cpu-bf16"),
    pytest.param("cuda", torch.float16, id="cuda-fp16", marks=needs_cuda),
    pytest.param("cuda", torch.bfloat16, id="cuda-bf16", marks=needs_cuda),
]

# Low-precision rounding over a few steps of values in [-1, 1] (bf16 keeps 8 bits).
ATOL = 4e-2

# Layer configurations, each also run unbatched, batch_first and packed below.
CONFIGS: dict[str, dict[str, Any]] = {
    "plain": {},
    "stacked-bidirectional": {"num_layers": 2, "bidirectional": True},
    "batch_first": {"batch_first": True},
    "no-bias": {"bias": False},
}
CLASSIC_BACKENDS = ["native", "reference"]
MINIMAL_BACKENDS = ["scan", "reference"]

T, B, I, H = 6, 3, 8, 16

# torch.nn.LSTM with proj_size tells it falls back from oneDNN; nothing to act on here.
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")


def _layer_cases() -> list[Any]:
    cases = []
    for name in ("RNN", "LSTM", "GRU"):
        configs = dict(CONFIGS)
        if name == "LSTM":
            configs["proj_size"] = {"proj_size": 4}
        for config, kwargs in configs.items():
            for backend in CLASSIC_BACKENDS:
                cases.append(pytest.param(name, kwargs, backend, id=f"{name}-{config}-{backend}"))
    return cases


def _dtypes(result: Any) -> Any:
    """The dtypes of a (possibly nested) result, packed sequences by their data."""
    if isinstance(result, PackedSequence):
        return ("packed", result.data.dtype)
    if isinstance(result, (tuple, list)):
        return tuple(_dtypes(r) for r in result)
    return result.dtype


def _assert_close(got: Any, expected: Any, atol: float = ATOL) -> None:
    for g, e in zip(tensors(got), tensors(expected), strict=True):
        torch.testing.assert_close(g.float(), e.float(), rtol=0, atol=atol)


def _state(name: str, shape: tuple[int, ...], sizes: tuple[int, ...], dtype: torch.dtype, dev):
    parts = tuple(torch.randn(*shape, s, device=dev).to(dtype) for s in sizes)
    return parts if name.startswith("LSTM") else parts[0]


def _inputs(layout: str, batch_first: bool, dev: str) -> torch.Tensor:
    """A float32 input of the given layout (the low-precision one comes from a Linear)."""
    if layout == "unbatched":
        return torch.randn(T, I, device=dev)
    if layout == "batched" and batch_first:
        return torch.randn(B, T, I, device=dev)
    return torch.randn(T, B, I, device=dev)


def _matrix(run: Callable[..., None], batch_first: bool, dev: str, low: torch.dtype) -> None:
    """``run(input, state_dtype)`` over every input layout, input dtype and initial state."""
    lin = torch.nn.Linear(I, I, device=dev)
    for layout in ("batched", "unbatched", "packed"):
        for input_low in (False, True):
            x = _inputs(layout, batch_first, dev)
            for state_dtype in (None, torch.float32, low):
                if layout == "packed" and state_dtype is not None:
                    continue  # the state is covered by the padded layouts
                with torch.autocast(dev, dtype=low):
                    inp = lin(x) if input_low else x  # a lower-precision layer upstream
                if layout == "packed":
                    inp = pack_padded_sequence(inp, [T, 4, 1], enforce_sorted=False)
                run(inp, layout, state_dtype)


@pytest.mark.parametrize(("device", "low"), AUTOCASTS)
@pytest.mark.parametrize(("name", "kwargs", "backend"), _layer_cases())
def test_layer_returns_torch_nn_dtypes_and_values(name, kwargs, backend, device, low):
    torch.manual_seed(0)
    ref = getattr(torch.nn, name)(I, H, device=device, **kwargs)
    ours = getattr(rnnkit, name).from_torch(ref)
    ours.backend = backend
    L = ref.num_layers * (2 if ref.bidirectional else 1)
    sizes = (ref.proj_size or H, H) if name == "LSTM" else (H,)

    def run(inp, layout, state_dtype):
        state = None
        if state_dtype is not None:
            shape = (L,) if layout == "unbatched" else (L, B)
            state = _state(name, shape, sizes, state_dtype, device)
        with torch.autocast(device, dtype=low):
            expected = ref(inp, state)
            got = ours(inp, state)
        where = f"{layout}, input {_dtypes(inp)}, state {state_dtype}"
        assert _dtypes(got) == _dtypes(expected), where
        _assert_close(got, expected)

    _matrix(run, ours.batch_first, device, low)


CELLS = [
    pytest.param("RNNCell", {}, id="RNNCell-tanh"),
    pytest.param("RNNCell", {"nonlinearity": "relu"}, id="RNNCell-relu"),
    pytest.param("LSTMCell", {}, id="LSTMCell"),
    pytest.param("GRUCell", {}, id="GRUCell"),
    pytest.param("LSTMCell", {"bias": False}, id="LSTMCell-no-bias"),
]


@pytest.mark.parametrize(("device", "low"), AUTOCASTS)
@pytest.mark.parametrize(("name", "kwargs"), CELLS)
def test_cell_returns_torch_nn_dtypes_and_values(name, kwargs, device, low):
    torch.manual_seed(0)
    ref = getattr(torch.nn, name)(I, H, device=device, **kwargs)
    ours = getattr(rnnkit, name)(I, H, device=device, **kwargs)
    ours.load_state_dict(ref.state_dict())
    n = 2 if name == "LSTMCell" else 1
    lin = torch.nn.Linear(I, I, device=device)
    for batched in (True, False):
        x = torch.randn(B, I, device=device) if batched else torch.randn(I, device=device)
        shape = (B,) if batched else ()
        for input_low in (False, True):
            for state_dtype in (None, torch.float32, low):
                state = None
                if state_dtype is not None:
                    state = _state(name, shape, (H,) * n, state_dtype, device)
                with torch.autocast(device, dtype=low):
                    inp = lin(x) if input_low else x
                    expected = ref(inp, state)
                    got = ours(inp, state)
                where = f"batched={batched}, input {inp.dtype}, state {state_dtype}"
                assert _dtypes(got) == _dtypes(expected), where
                _assert_close(got, expected)


@pytest.mark.parametrize(("device", "low"), AUTOCASTS)
@pytest.mark.parametrize("backend", MINIMAL_BACKENDS)
@pytest.mark.parametrize("name", ["MinGRU", "MinLSTM"])
@pytest.mark.parametrize("kwargs", [{}, {"num_layers": 2, "bidirectional": True}], ids=str)
def test_minimal_layer_follows_gru_dtypes_and_float32_values(name, backend, kwargs, device, low):
    torch.manual_seed(0)
    ours = getattr(rnnkit, name)(I, H, backend=backend, device=device, **kwargs)
    # torch.nn.GRU's dtypes for the same input and state: h' = a h + b promotes as the GRU's
    # h' = (1 - z) n + z h does.
    gru = torch.nn.GRU(I, H, device=device, **kwargs)
    L = ours.num_layers * ours.num_directions

    def run(inp, layout, state_dtype):
        state = None
        if state_dtype is not None:
            state = _state(
                name, (L,) if layout == "unbatched" else (L, B), (H,), state_dtype, device
            )
        full = ours(_to_float(inp), None if state is None else state.float())
        with torch.autocast(device, dtype=low):
            got = ours(inp, state)
            expected_dtypes = _dtypes(gru(inp, state))
        assert _dtypes(got) == expected_dtypes, f"{layout}, input {_dtypes(inp)}, {state_dtype}"
        _assert_close(got, full)

    _matrix(run, False, device, low)


@pytest.mark.parametrize(("device", "low"), AUTOCASTS)
@pytest.mark.parametrize("name", ["MinGRUCell", "MinLSTMCell"])
def test_minimal_cell_follows_gru_cell_dtypes_and_float32_values(name, device, low):
    torch.manual_seed(0)
    ours = getattr(rnnkit, name)(I, H, device=device)
    gru = torch.nn.GRUCell(I, H, device=device)
    lin = torch.nn.Linear(I, I, device=device)
    x = torch.randn(B, I, device=device)
    for input_low in (False, True):
        for state_dtype in (None, torch.float32, low):
            h = None if state_dtype is None else torch.randn(B, H, device=device).to(state_dtype)
            with torch.autocast(device, dtype=low):
                inp = lin(x) if input_low else x
                got = ours(inp, h)
                expected_dtype = gru(inp, h).dtype
            assert got.dtype == expected_dtype
            _assert_close(got, ours(inp.float(), None if h is None else h.float()))


def _to_float(inp: torch.Tensor | PackedSequence) -> torch.Tensor | PackedSequence:
    if isinstance(inp, PackedSequence):
        return inp._replace(data=inp.data.float())
    return inp.float()


# Options torch.nn lacks run on the reference backend only; their dtypes are those of the
# plain layer (and so torch.nn's), their values those of the float32 run.
OPTIONS = [
    pytest.param("LSTM", {"layer_norm": True}, id="LSTM-layer_norm"),
    pytest.param("LSTM", {"layer_norm": True, "proj_size": 4}, id="LSTM-layer_norm-proj"),
    pytest.param("LSTM", {"zoneout": 0.3}, id="LSTM-zoneout"),
    pytest.param("GRU", {"zoneout": 0.3}, id="GRU-zoneout"),
    pytest.param("RNN", {"zoneout": 0.3}, id="RNN-zoneout"),
    pytest.param("LSTM", {"recurrent_dropout": 0.25}, id="LSTM-recurrent_dropout"),
    pytest.param("GRU", {"recurrent_dropout": 0.25}, id="GRU-recurrent_dropout"),
    pytest.param("MinGRU", {"zoneout": 0.3}, id="MinGRU-zoneout"),
]


@pytest.mark.parametrize(("device", "low"), AUTOCASTS)
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize(("name", "options"), OPTIONS)
def test_cell_options_on_reference(name, options, training, device, low):
    torch.manual_seed(0)
    ours = getattr(rnnkit, name)(I, H, backend="reference", device=device, **options)
    plain_kwargs = {"proj_size": options["proj_size"]} if "proj_size" in options else {}
    plain = getattr(rnnkit, name)(I, H, backend="reference", device=device, **plain_kwargs)
    ours.train(training)
    lin = torch.nn.Linear(I, I, device=device)
    x = torch.randn(T, B, I, device=device)
    for input_low in (False, True):
        with torch.autocast(device, dtype=low):
            inp = lin(x) if input_low else x
        torch.manual_seed(1)  # the same dropout and zoneout draws in both runs
        full = ours(inp.float())
        torch.manual_seed(1)
        with torch.autocast(device, dtype=low):
            got = ours(inp)
            expected_dtypes = _dtypes(plain(inp))
        assert _dtypes(got) == expected_dtypes
        if training and "zoneout" in options:
            # Zoneout draws its mask like the new state, whose dtype autocast may lower: the
            # draws differ from the float32 run's, so only finiteness is checked.
            assert all(torch.isfinite(t).all() for t in tensors(got))
        else:
            # Same seed, same dropout mask (drawn in the parameters' dtype): only the
            # rounding differs.
            _assert_close(got, full, atol=2 * ATOL)


@pytest.mark.parametrize(("device", "low"), AUTOCASTS)
@pytest.mark.parametrize("name", ["LSTMCell", "GRUCell", "RNNCell"])
def test_cell_with_zoneout_and_layer_norm_under_autocast(name, device, low):
    torch.manual_seed(0)
    options: dict[str, Any] = {"zoneout": 0.2}
    if name == "LSTMCell":
        options["layer_norm"] = True
    ours = getattr(rnnkit, name)(I, H, device=device, **options).eval()
    ref = getattr(torch.nn, name)(I, H, device=device)
    x = torch.randn(B, I, device=device)
    with torch.autocast(device, dtype=low):
        got = ours(x)
        expected_dtypes = _dtypes(ref(x))
    assert _dtypes(got) == expected_dtypes
    _assert_close(got, ours(x))


# ---- backward ---------------------------------------------------------------------------


def _backward_cases() -> list[Any]:
    cases = [
        pytest.param(name, {}, backend, id=f"{name}-{backend}")
        for name in ("RNN", "LSTM", "GRU")
        for backend in CLASSIC_BACKENDS
    ]
    cases.append(pytest.param("LSTM", {"proj_size": 4}, "native", id="LSTM-proj-native"))
    cases.append(pytest.param("LSTM", {"num_layers": 2, "bidirectional": True}, "reference"))
    cases += [
        pytest.param(name, {}, backend, id=f"{name}-{backend}")
        for name in ("MinGRU", "MinLSTM")
        for backend in MINIMAL_BACKENDS
    ]
    cases.append(pytest.param("LSTM", {"layer_norm": True}, "reference", id="LSTM-ln-reference"))
    return cases


def _loss(result: Any) -> torch.Tensor:
    return sum(t.float().square().sum() for t in tensors(result))  # type: ignore[return-value]


@pytest.mark.parametrize(("device", "low"), AUTOCASTS)
@pytest.mark.parametrize(("name", "kwargs", "backend"), _backward_cases())
def test_backward_under_autocast(name, kwargs, backend, device, low):
    torch.manual_seed(0)
    ours = getattr(rnnkit, name)(I, H, backend=backend, device=device, **kwargs)
    x = torch.randn(T, B, I, device=device, requires_grad=True)
    with torch.autocast(device, dtype=low):
        got = ours(x)
    _loss(got).backward()
    assert x.grad is not None and x.grad.dtype == x.dtype
    assert torch.isfinite(x.grad).all()
    for pname, param in ours.named_parameters():
        assert param.grad is not None, pname
        assert param.grad.dtype == param.dtype == torch.float32, pname
        assert torch.isfinite(param.grad).all(), pname
    if ours.torch_class is None or "layer_norm" in kwargs:
        return
    # torch.nn's gradients under the same autocast: the same dtypes, close values.
    ref = ours.to_torch()
    x_ref = x.detach().clone().requires_grad_()
    with torch.autocast(device, dtype=low):
        expected = ref(x_ref)
    _loss(expected).backward()
    for (pname, param), ref_param in zip(ours.named_parameters(), ref.parameters(), strict=True):
        assert param.grad.dtype == ref_param.grad.dtype, pname
        scale = float(ref_param.grad.abs().max()) + 1.0
        torch.testing.assert_close(param.grad, ref_param.grad, rtol=0, atol=0.05 * scale)


@pytest.mark.parametrize(("device", "low"), AUTOCASTS)
@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell", "MinGRUCell"])
def test_cell_backward_under_autocast(name, device, low):
    torch.manual_seed(0)
    ours = getattr(rnnkit, name)(I, H, device=device)
    x = torch.randn(B, I, device=device, requires_grad=True)
    with torch.autocast(device, dtype=low):
        got = ours(x)
        got = ours(x, got)  # a second step from the state the first returned
    _loss(got).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for pname, param in ours.named_parameters():
        assert param.grad is not None and param.grad.dtype == torch.float32, pname
        assert torch.isfinite(param.grad).all(), pname


# ---- streams and carried state ----------------------------------------------------------


STREAMED = [
    ("LSTM", "auto"),
    ("LSTM", "reference"),
    ("GRU", "auto"),
    ("GRU", "reference"),
    ("RNN", "auto"),
    ("MinGRU", "auto"),
    ("MinLSTM", "reference"),
]


@pytest.mark.parametrize(("device", "low"), AUTOCASTS)
@pytest.mark.parametrize(("name", "backend"), STREAMED)
def test_stream_under_autocast_follows_the_whole_sequence(name, backend, device, low):
    torch.manual_seed(0)
    layer = getattr(rnnkit, name)(I, H, num_layers=2, backend=backend, device=device)
    xs = torch.randn(9, B, I, device=device)
    whole, _ = layer(xs)  # float32, no autocast
    stream = rnnkit.Stream(layer)
    outs = []
    with torch.autocast(device, dtype=low), warnings.catch_warnings():
        warnings.simplefilter("ignore", rnnkit.backends.PerformanceWarning)
        outs.append(stream.step(xs[0]))
        outs.extend(stream(xs[1:4]))  # a chunk in between, then steps again
        outs.extend(stream.step(xs[t]) for t in range(4, 7))
        carried = stream.state
        chunk = stream(xs[7:])
        # A chunk is the layer's own call: torch.nn's dtypes for it and the carried state.
        expected, _ = layer(xs[7:], carried)
    outs.extend(chunk)
    assert chunk.dtype == expected.dtype
    _assert_close(torch.stack([o.float() for o in outs]), whole, atol=2 * ATOL)


@pytest.mark.parametrize(("device", "low"), AUTOCASTS)
@pytest.mark.parametrize(("name", "backend"), STREAMED, ids=[f"{n}-{b}" for n, b in STREAMED])
def test_stream_step_returns_the_dtypes_of_a_one_step_call(name, backend, device, low):
    torch.manual_seed(0)
    layer = getattr(rnnkit, name)(I, H, num_layers=2, backend=backend, device=device)
    x = torch.randn(B, I, device=device)
    stream = rnnkit.Stream(layer)
    with torch.autocast(device, dtype=low), warnings.catch_warnings():
        warnings.simplefilter("ignore", rnnkit.backends.PerformanceWarning)
        expected, expected_state = layer(x.unsqueeze(0))
        got = stream.step(x)
    assert got.dtype == expected.dtype
    assert _dtypes(stream.state) == _dtypes(expected_state)


@pytest.mark.parametrize(("device", "low"), AUTOCASTS)
@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_a_bf16_linear_feeds_the_layer_as_it_feeds_torch_nn(name, device, low):
    torch.manual_seed(0)
    ref = getattr(torch.nn, name)(I, H, num_layers=2, device=device)
    ours = getattr(rnnkit, name).from_torch(ref)
    lin = torch.nn.Linear(4, I, device=device)
    x = torch.randn(7, B, 4, device=device)
    with torch.autocast(device, dtype=low):
        expected, expected_state = ref(lin(x))
        got, state = ours(lin(x))
        # The state returned inside autocast goes back in, and the stream continues as
        # torch.nn's does.
        expected_next = ref(lin(x), expected_state)
        got_next = ours(lin(x), state)
    _assert_close(got, expected)
    assert _dtypes(got_next) == _dtypes(expected_next)
    _assert_close(got_next, expected_next, atol=2 * ATOL)


def test_outside_autocast_a_dtype_mismatch_is_still_an_error():
    with pytest.raises(ValueError, match=r"input\.dtype must equal the parameters\.dtype"):
        rnnkit.LSTM(4, 8)(torch.randn(3, 2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"input\.dtype must equal the parameters\.dtype"):
        rnnkit.GRUCell(4, 8)(torch.randn(2, 4, dtype=torch.bfloat16))


def test_autocast_of_another_device_type_changes_nothing():
    # CUDA autocast open around a CPU layer: the CPU call is a plain float32 call.
    layer = rnnkit.GRU(4, 8)
    with torch.autocast("cuda", dtype=torch.float16, enabled=torch.cuda.is_available()):
        out, h = layer(torch.randn(3, 2, 4))
    assert out.dtype == h.dtype == torch.float32


@pytest.mark.parametrize("name", ["MinGRU", "MinLSTM"])
def test_the_scan_keeps_the_state_in_float32_over_long_sequences(name):
    """Only the projection is lowered: over 2,000 steps the scan is at least as close to
    float32 as the step-by-step recurrence, whose state promotes to float32 at each step."""
    torch.manual_seed(0)
    layers = {b: getattr(rnnkit, name)(I, H, backend=b) for b in ("scan", "reference")}
    layers["reference"].load_state_dict(layers["scan"].state_dict())
    x = 3 * torch.randn(2000, 2, I)
    full, _ = layers["reference"](x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        error = {b: (layer(x)[0] - full).abs().mean() for b, layer in layers.items()}
    assert error["scan"] <= error["reference"], error


def test_a_cuda_layer_returns_cudnns_float16_whatever_the_autocast_dtype(monkeypatch) -> None:
    """torch's autocast wrapper of _cudnn_rnn casts to float16, so torch.nn.LSTM on CUDA
    under a bfloat16 autocast returns float16 (torch 2.11, H200); a cell, or a layer with
    cuDNN off, returns the autocast dtype. Checked against torch.nn on a GPU by the CUDA
    cases above; here the rule itself, on any machine."""
    from rnnkit import _autocast

    cuda = torch.device("cuda")
    monkeypatch.setattr(_autocast, "_cudnn_runs", lambda: True)
    for kind, n in (("LSTM", 2), ("GRU", 1), ("RNN_TANH", 1), ("MINGRU", 1)):
        got = _autocast.result_dtypes(
            kind, cuda, torch.float32, None, n, projection=False, sequence_kernel=True
        )
        assert got == (torch.float16,) * (1 + n)
    monkeypatch.setattr(_autocast, "lower_dtype", lambda device: torch.bfloat16)
    cell = _autocast.result_dtypes(
        "GRU", cuda, torch.float32, None, 1, projection=False, sequence_kernel=False, layer=False
    )
    assert cell == (torch.bfloat16, torch.bfloat16)
    monkeypatch.setattr(_autocast, "_cudnn_runs", lambda: False)
    layer = _autocast.result_dtypes(
        "LSTM", cuda, torch.float32, None, 2, projection=False, sequence_kernel=True
    )
    assert layer == (torch.bfloat16,) * 3
