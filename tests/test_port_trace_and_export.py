"""``torch.jit.trace``, ``torch.export`` and ``torch.onnx.export`` of a model ported from
torch.nn: the plain layers are recorded as torch.nn's are, as torch's sequence kernel
(``aten::lstm`` and co.), so a trace runs inputs of any length and batch size and both ONNX
exporters translate it.

Before, the layers were recorded on the backend chosen for speed: a few steps (T <= 4) on
torch's one-step kernels, which a trace kept step by step (it returned the example's T
steps whatever the input's length); the GRU's fused kernel, which the TorchScript-based
ONNX exporter failed on (IndexError); a guard B <= 64 from that choice, which a dynamic
batch in ``torch.export`` violated.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import rnnkit


def _trace(layer: torch.nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.trace(layer, (example,), check_trace=False)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("example_shape", [(1, 2), (3, 100), (6, 2)])
def test_a_trace_runs_any_length_and_batch_as_the_layer(
    kind: str, example_shape: tuple[int, int]
) -> None:
    torch.manual_seed(0)
    layer = getattr(rnnkit, kind)(4, 6, num_layers=2).double().eval()
    traced = _trace(layer, torch.randn(*example_shape, 4, dtype=torch.float64))
    for T, B in [(1, 2), (3, 100), (10, 2), (7, 5)]:
        x = torch.randn(T, B, 4, dtype=torch.float64)
        out, state = layer(x)
        got_out, got_state = traced(x)
        assert got_out.shape == (T, B, 6)
        torch.testing.assert_close(got_out, out, rtol=1e-12, atol=1e-12)
        expected = state if isinstance(state, tuple) else (state,)
        got = got_state if isinstance(got_state, tuple) else (got_state,)
        for e, g in zip(expected, got, strict=True):
            torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-12)


def test_a_traced_tagger_ported_from_torch_nn_equals_the_torch_nn_trace() -> None:
    torch.manual_seed(0)
    reference = torch.nn.LSTM(4, 6, batch_first=True)
    layer = rnnkit.LSTM.from_torch(reference).eval()
    reference.eval()
    example = torch.randn(2, 3, 4)  # (B, T, I): three steps
    traced, traced_reference = _trace(layer, example), _trace(reference, example)
    x = torch.randn(5, 9, 4)
    out = traced(x)[0]
    assert out.shape == (5, 9, 6)
    assert torch.equal(out, traced_reference(x)[0])


def test_torch_export_records_torchs_kernel_for_any_batch_size() -> None:
    torch.manual_seed(0)
    layer = rnnkit.GRU(4, 6, num_layers=2).eval()
    example = torch.randn(5, 2, 4)  # B = 2: the GRU would run rnnkit's fused kernel
    batch = torch.export.Dim("B")
    program = torch.export.export(layer, (example,), dynamic_shapes=({1: batch},))
    assert "aten.gru.input" in program.graph_module.code
    x = torch.randn(5, 100, 4)
    out, h = program.module()(x)
    expected_out, expected_h = layer(x)
    torch.testing.assert_close(out, expected_out, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(h, expected_h, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_the_torchscript_onnx_exporter_translates_a_ported_model(kind: str, tmp_path) -> None:
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")

    class Tagger(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(10, 4)
            self.rnn = getattr(rnnkit, kind)(4, 8, num_layers=2, batch_first=True)
            self.head = torch.nn.Linear(8, 3)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.head(self.rnn(self.emb(tokens))[0])

    torch.manual_seed(0)
    model = Tagger().eval()
    path = tmp_path / "tagger.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.randint(0, 10, (2, 3)),),
            str(path),
            dynamo=False,
            input_names=["tokens"],
            dynamic_axes={"tokens": {0: "B", 1: "T"}},
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    tokens = torch.randint(0, 10, (3, 9))
    (got,) = session.run(None, {"tokens": tokens.numpy()})
    with torch.no_grad():
        expected = model(tokens)
    assert got.shape == (3, 9, 3)
    torch.testing.assert_close(torch.from_numpy(got), expected, rtol=1e-5, atol=1e-5)
