"""``torch.jit.trace`` of a model holding MinGRU or MinLSTM: the scan is recorded as a loop
over T (a TorchScript function), so the trace runs inputs of any length and batch size and
equals the eager layer, gradients included.

Before, tracing failed inside ``rnnkit.kernels.scan`` ("TypeError: unsupported operand
type(s) for divmod(): 'Tensor' and 'int'": the blocked scan's arithmetic on a traced
size), and with a large float32 example the input projection's oneDNN product was
recorded, which had no gradient and failed on other shapes.
"""

from __future__ import annotations

import io
import re
import warnings
from typing import Any

import pytest
import torch

import rnnkit


def _trace(model: torch.nn.Module, *example: torch.Tensor) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarning, TorchScript's deprecation
        return torch.jit.trace(model, example, check_trace=False)


class Tagger(torch.nn.Module):
    """A user's model: embedding, recurrent layer, read-out."""

    def __init__(self, layer: torch.nn.Module) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(10, layer.input_size)
        self.rnn = layer
        self.head = torch.nn.Linear(layer.output_size, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(self.emb(tokens))[0])


class Call(torch.nn.Module):
    """The layer called with lengths and reset, its output and final state."""

    def __init__(self, layer: torch.nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, reset: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out, h_n = self.layer(x, lengths=lengths, reset=reset)
        return out, h_n


@pytest.mark.parametrize("kind", ["MinGRU", "MinLSTM"])
@pytest.mark.parametrize(
    "options",
    [{}, {"batch_first": True}, {"num_layers": 2, "bidirectional": True}, {"zoneout": 0.2}],
)
def test_a_trace_runs_any_length_and_batch_as_the_layer(kind: str, options: dict) -> None:
    torch.manual_seed(0)
    layer = getattr(rnnkit, kind)(4, 6, **options).double().eval()
    traced = _trace(layer, torch.randn(3, 2, 4, dtype=torch.float64))
    for T, B in [(1, 1), (3, 2), (100, 5), (70, 3)]:  # T >= 64: the eager scan is blocked
        x = torch.randn(T, B, 4, dtype=torch.float64)
        (out, h_n), (got_out, got_h_n) = layer(x), traced(x)
        assert got_out.shape == out.shape
        torch.testing.assert_close(got_out, out, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got_h_n, h_n, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["MinGRU", "MinLSTM"])
def test_a_traced_model_trains_as_the_eager_one(kind: str) -> None:
    torch.manual_seed(0)
    model = Tagger(getattr(rnnkit, kind)(4, 6, batch_first=True)).double()
    traced = _trace(model, torch.randint(0, 10, (2, 3)))
    tokens = torch.randint(0, 10, (5, 9))
    params = list(model.parameters())
    expected = torch.autograd.grad(model(tokens).square().sum(), params)
    got = torch.autograd.grad(traced(tokens).square().sum(), params)
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["MinGRU", "MinLSTM"])
def test_a_trace_from_a_large_float32_example_runs_other_shapes(kind: str) -> None:
    # The example's products are past oneDNN's threshold: the trace records torch's own.
    torch.manual_seed(0)
    layer = getattr(rnnkit, kind)(64, 64).eval()
    traced = _trace(layer, torch.randn(100, 100, 64))
    for T, B in [(1, 1), (7, 3)]:
        x = torch.randn(T, B, 64)
        torch.testing.assert_close(traced(x)[0], layer(x)[0], rtol=1e-5, atol=1e-5)


def test_a_trace_with_lengths_and_reset_runs_other_shapes() -> None:
    torch.manual_seed(0)
    call = Call(rnnkit.MinLSTM(3, 4, num_layers=2).double().eval())
    example = (torch.randn(5, 3, 3, dtype=torch.float64), torch.tensor([5, 2, 4]))
    traced = _trace(call, *example, torch.rand(5, 3) < 0.3)
    for T, B in [(8, 4), (2, 2)]:
        x = torch.randn(T, B, 3, dtype=torch.float64)
        lengths = torch.tensor([T, *torch.randint(1, T + 1, (B - 1,)).tolist()])
        reset = torch.rand(T, B) < 0.3
        for e, g in zip(call(x, lengths, reset), traced(x, lengths, reset), strict=True):
            torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-12)


def test_torchs_torchscript_onnx_exporter_is_refused_in_one_line() -> None:
    layer = rnnkit.MinGRU(3, 4).eval()
    message = (
        "torch.onnx.export: the scan of MinGRU and MinLSTM has no translation by torch's "
        "TorchScript exporter (dynamo=False); export the layer with "
        "rnnkit.export.export_onnx(layer, path, mode='sequence') instead, whose graphs "
        "keep T and B dynamic"
    )
    with warnings.catch_warnings(), pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Tagger(layer), (torch.randint(0, 10, (2, 3)),), io.BytesIO(), dynamo=False
        )
