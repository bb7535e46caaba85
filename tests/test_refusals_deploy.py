"""What a careful user of the streaming and deployment API met: an empty chunk, a
quantized model of another dtype, a quantized layer's state of the wrong kind, forecast
values float() reads as numbers they are not, an ONNX stream's state and reset samples."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import rnnkit
from _refusals import raises_exactly
from rnnkit import deploy
from rnnkit.export import export_onnx
from rnnkit.quantize import QuantizationWarning, quantize_dynamic
from rnnkit.stream import Stream

# ---- Stream: an empty chunk ---------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnnkit.LSTM(3, 4, num_layers=2, dtype=torch.float64),
        lambda: rnnkit.MinGRU(3, 4, dtype=torch.float64),
        lambda: rnnkit.GRU(3, 4, batch_first=True, dtype=torch.float64),
    ],
)
def test_an_empty_chunk_gives_no_outputs_and_keeps_the_state(make):
    # It was refused with the layer's "expected T >= 1, or lengths (all 0) to run empty
    # sequences", lengths a stream does not take, though chunks of any size are promised.
    torch.manual_seed(0)
    layer = make()
    axis = 1 if layer.batch_first else 0
    x = torch.randn(2, 9, 3, dtype=torch.float64) if axis else torch.randn(9, 2, 3).double()
    whole, final = layer(x)
    stream = Stream(layer)
    first = stream(x.narrow(axis, 0, 0))  # before anything ran: the state stays None
    assert first.shape == whole.narrow(axis, 0, 0).shape and stream.state is None
    parts = [stream(x.narrow(axis, 0, 4)), stream(x.narrow(axis, 4, 0))]
    parts += [stream.step(x.select(axis, 4)).unsqueeze(axis), stream(x.narrow(axis, 5, 0))]
    parts.append(stream(x.narrow(axis, 5, 4)))
    torch.testing.assert_close(torch.cat(parts, axis), whole, rtol=0, atol=1e-12)
    torch.testing.assert_close(stream.state, final, rtol=0, atol=1e-12)
    assert stream.steps == 9
    # An empty chunk is checked as any chunk is.
    raises_exactly(
        TypeError,
        f"{type(layer).__name__}: input.dtype must equal the parameters.dtype; expected "
        "torch.float64, got torch.float32",
        stream,
        x.narrow(axis, 0, 0).float(),
    )


def test_an_empty_chunk_to_a_quantized_layer():
    torch.manual_seed(0)
    quantized = quantize_dynamic(rnnkit.LSTM(3, 4))
    stream = Stream(quantized)
    x = torch.randn(5, 2, 3)
    out = stream(x)
    held = stream.state
    assert stream(x[:0]).shape == (0, 2, 4)
    assert all(torch.equal(a, b) for a, b in zip(stream.state, held, strict=True))
    assert out.shape == (5, 2, 4) and stream.steps == 5


# ---- quantize_dynamic of a model of another dtype; a quantized layer's state ----------


class _Head(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = rnnkit.GRU(3, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x, state=None):
        out, state = self.rnn(x, state)
        return self.head(out), state


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_a_model_of_another_dtype_keeps_its_linear_float_too(dtype):
    # Its layers were kept float, its Linear quantized: the copy failed on its first call,
    # "expected scalar type Float but found Double".
    torch.manual_seed(0)
    model = _Head().to(dtype)
    with pytest.warns(QuantizationWarning) as caught:
        quantized = quantize_dynamic(model)
    assert len(caught) == 1
    assert str(caught[0].message) == (
        f"quantize_dynamic: kept 2 layer(s) float: rnn (GRU: its parameters are {dtype}; "
        f"the quantized kernels compute in float32); head (Linear: its parameters are {dtype}; "
        "the quantized kernels compute in float32)"
    )
    assert type(quantized.head) is nn.Linear
    if dtype == torch.float64:  # float16 GRUs do not run on every CPU build
        x = torch.randn(5, 2, 3, dtype=dtype)
        got, _ = quantized(x)
        want, _ = model.eval()(x)
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_a_float32_model_still_quantizes_its_linear():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing kept float, nothing to warn of
        quantized = quantize_dynamic(_Head())
    assert type(quantized.head).__name__ == "Linear" and type(quantized.head) is not nn.Linear


@pytest.mark.parametrize(
    ("kind", "x", "state", "error", "message"),
    [
        ("GRU", (5, 2, 3), (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4)), TypeError,
         "QuantizedGRU: state must be a tensor h; got tuple"),
        ("GRU", (5, 3), "h", TypeError, "QuantizedGRU: state must be a tensor h; got str"),
        ("GRU", (5, 2, 3), torch.zeros(1, 2, 4, dtype=torch.float64), TypeError,
         "QuantizedGRU: state h must be a float32 CPU tensor (the quantized kernels' state); "
         "got torch.float64 on cpu"),
        ("GRU", (5, 3), torch.zeros(1, 4, dtype=torch.int64), TypeError,
         "QuantizedGRU: state h must be a float32 CPU tensor (the quantized kernels' state); "
         "got torch.int64 on cpu"),
        ("GRU", (5, 3), torch.zeros(1, 1, 4), ValueError,
         "QuantizedGRU: state h must have shape (1, 4); got (1, 1, 4)"),
        ("LSTM", (5, 2, 3), (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4, dtype=torch.float64)),
         TypeError, "QuantizedLSTM: state c must be a float32 CPU tensor (the quantized "
         "kernels' state); got torch.float64 on cpu"),
    ],
)  # fmt: skip
def test_a_quantized_layer_refuses_a_state_of_the_wrong_kind(kind, x, state, error, message):
    # torch's kernel answered "zip() argument 2 is longer than argument 1", "'str' object
    # has no attribute 'unsqueeze'" or "expected scalar type Float but found Double".
    layer = quantize_dynamic(getattr(rnnkit, kind)(3, 4))
    raises_exactly(error, message, layer, torch.randn(*x), state)
    if isinstance(state, torch.Tensor) and state.dim() == 3 and len(x) == 3:
        raises_exactly(error, message, layer, torch.randn(*x), state, lengths=[5, 0])


# ---- forecast values that float() reads as numbers they are not -----------------------


def _forecaster(tmp_path: Path) -> tuple[Path, object]:
    from rnnkit.tasks.forecast import ForecastConfig, ForecastModel

    torch.manual_seed(0)
    model = ForecastModel(ForecastConfig(horizon=2, hidden_size=4)).eval()
    path = tmp_path / "forecast-step.onnx"
    export_onnx(model, path, mode="step")
    return path, model


@pytest.mark.parametrize(
    ("value", "given"),
    [
        (True, "bool True"),
        (np.bool_(False), "bool np.False_"),
        (1 + 2j, "complex (1+2j)"),
        (np.complex128(3), "complex np.complex128(3+0j)"),
        (np.array([5.0]), "ndarray of shape (1,)"),
        (torch.tensor([5.0]), "Tensor of shape (1,)"),
        (np.array(1j), "ndarray of dtype complex128"),
        (torch.tensor(True), "Tensor of dtype torch.bool"),
    ],
)
def test_a_forecast_value_must_be_a_real_number(value, given, tmp_path):
    # float() read True as 1.0, dropped the imaginary part of np.complex128 with only a
    # warning, and read a one-element array as its element: a silent wrong forecast.
    from rnnkit.tasks.forecast import OnlineForecaster, forecast

    path, model = _forecaster(tmp_path)
    refused = f"a forecast value must be a real number; got {given}"
    onnx, online = deploy.OnnxForecaster(path, [1.0, 2.0]), OnlineForecaster(model, [1.0, 2.0])
    before = (onnx.forecast, online.forecast)
    raises_exactly(TypeError, f"OnnxForecaster: {refused}", onnx.update, value)
    raises_exactly(TypeError, f"OnlineForecaster: {refused}", online.update, value)
    raises_exactly(
        TypeError, f"OnlineForecaster: values, value 2: {refused}", online.extend, [3.0, value]
    )
    raises_exactly(
        TypeError, f"OnnxForecaster: history, value 2: {refused}", deploy.OnnxForecaster, path,
        [1.0, value],
    )  # fmt: skip
    raises_exactly(
        TypeError, f"forecast: series 1, value 3: {refused}", forecast, model, [[1.0, 2.0, value]]
    )
    raises_exactly(TypeError, f"value: {refused}", deploy.ForecastFeatures(1, 1, 2).push, value)
    assert (onnx.seen, online.seen) == (2, 2) and (onnx.forecast, online.forecast) == before


def test_real_numbers_of_every_kind_are_still_read(tmp_path):
    path, _ = _forecaster(tmp_path)
    values = [1.0, 2, np.float32(3.0), np.int64(4), np.array(5.0), torch.tensor(6.0)]
    online = deploy.OnnxForecaster(path, values)
    plain = deploy.OnnxForecaster(path, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert online.seen == 6
    for got, want in zip(online.forecast, plain.forecast, strict=True):
        np.testing.assert_array_equal(got, want)


def test_online_updates_equal_a_fresh_run_on_the_extended_series(tmp_path):
    path, _ = _forecaster(tmp_path)
    y = 20 + np.cumsum(np.random.default_rng(0).normal(0.3, 1.0, 20))
    online = deploy.OnnxForecaster(path, y[:5])
    for k in range(5, 20):
        got = online.update(y[k])
        fresh = deploy.OnnxForecaster(path, y[: k + 1]).forecast
        for g, f in zip(got, fresh, strict=True):
            np.testing.assert_array_equal(g, f)


# ---- OnnxStream: an assigned state, reset samples --------------------------------------


@pytest.fixture(scope="module")
def step_graph(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    torch.manual_seed(0)
    layer = rnnkit.LSTM(3, 4, num_layers=2).eval()
    path = tmp_path_factory.mktemp("deploy") / "lstm-step.onnx"
    export_onnx(layer, path, mode="step")
    return path, layer


def test_an_assigned_state_of_another_batch_size_runs(step_graph):
    # The first step's batch size stayed: a state of another was refused as "must be a
    # float32 array (2, B, 4); got float64 array of shape (2, 3, 4)", naming neither the
    # batch size nor the reason.
    path, layer = step_graph
    stream = deploy.OnnxStream(path)
    stream.step(np.zeros((1, 3), np.float32))
    rng = np.random.default_rng(0)
    h0, c0 = (rng.standard_normal((2, 3, 4)) for _ in range(2))
    stream.state = (h0, c0)
    assert stream.batch_size == 3
    x = rng.standard_normal((3, 3)).astype(np.float32)
    with torch.no_grad():
        want, _ = layer(
            torch.from_numpy(x)[None], tuple(torch.from_numpy(s).float() for s in (h0, c0))
        )
    np.testing.assert_allclose(stream.step(x), want[0].numpy(), rtol=0, atol=1e-5)
    fixed = deploy.OnnxStream(path, batch_size=1)  # a batch size given stays
    raises_exactly(
        ValueError,
        "OnnxStream.state: state h must be a float32 array (2, 1, 4); got float64 array of "
        "shape (2, 3, 4)",
        setattr, fixed, "state", (h0, c0),
    )  # fmt: skip
    assert fixed.state is None and fixed.batch_size == 1


@pytest.mark.parametrize(
    ("samples", "given"),
    [("0", "str '0'"), (b"\x00", "bytes b'\\x00'"), ([0.5], "float64 array [0.5]"),
     ([None], "object array [None]"), ([[0], [1, 2]], "list [[0], [1, 2]]")],
)  # fmt: skip
def test_reset_refuses_samples_that_are_not_indices_or_a_mask(step_graph, samples, given):
    # "0" was refused as "batch indices in [0, 2); got 0", 0.5 as out of range, and before
    # the first step nothing was checked at all.
    path, _ = step_graph
    stream = deploy.OnnxStream(path)
    message = (
        "OnnxStream.reset: samples must be integer batch indices or a (B,) bool mask; got " + given
    )
    raises_exactly(TypeError, message, stream.reset, samples)  # before any step
    stream.step(np.ones((2, 3), np.float32))
    held = tuple(a.copy() for a in stream.state)
    raises_exactly(TypeError, message, stream.reset, samples)
    assert all(np.array_equal(a, b) for a, b in zip(stream.state, held, strict=True))
    stream.reset([])  # still nothing
    stream.reset([-1])
    assert not stream.state[0][:, 1].any() and np.array_equal(stream.state[0][:, 0], held[0][:, 0])
