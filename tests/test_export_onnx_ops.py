"""The sequence mode written with ONNX's own LSTM / GRU / RNN operators.

- For every plain configuration (RNN tanh and relu, LSTM, GRU; one or two layers; one or
  two directions; with or without biases; with or without lengths) one graph passes
  ``onnx.checker`` and, run in onnxruntime at several sequence lengths, returns the layer's
  output and final states within 1e-5 in float32, from random initial states and ragged
  lengths that include 0 and T.
- Options that only act while training (recurrent_dropout, dropout between layers) change
  nothing; options these operators cannot compute (layer_norm, zoneout, proj_size, the
  minimal cells) give None.
- The metadata follows the export format, and the weights are read as a forward reads
  them (a parametrized weight is the computed one).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import rnnkit
from rnnkit.layers.base import RecurrentLayer

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from rnnkit.export.onnx_ops import native_sequence_graph, unsupported_reason  # noqa: E402

I, H, B = 4, 6, 5
ATOL = 1e-5

KINDS: dict[str, tuple[type[RecurrentLayer], dict[str, Any]]] = {
    "rnn_tanh": (rnnkit.RNN, {}),
    "rnn_relu": (rnnkit.RNN, {"nonlinearity": "relu"}),
    "lstm": (rnnkit.LSTM, {}),
    "gru": (rnnkit.GRU, {}),
}


def _layer(kind: str, **options: Any) -> RecurrentLayer:
    cls, base = KINDS[kind]
    return cls(I, H, **{**base, **options}).eval()


def _session(model: Any) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # the test machine's cores are shared
    options.log_severity_level = 3
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _ragged(T: int) -> Tensor:
    """B lengths in [0, T] with 0 and T among them (T = 1: only those two)."""
    rest = torch.randint(0, T + 1, (B - 2,))
    return torch.cat([torch.tensor([T, 0]), rest])[torch.randperm(B)]


def _compare(layer: RecurrentLayer, session: Any, T: int, with_lengths: bool) -> None:
    names = layer.first_cell.state_names
    LD = layer.num_layers * layer.num_directions
    x = torch.randn(T, B, I)
    states = tuple(torch.randn(LD, B, H) for _ in names)
    lengths = _ragged(T) if with_lengths else None
    feed = {"x": x.numpy()}
    if lengths is not None:
        feed["lengths"] = lengths.numpy()
    feed |= {name: s.numpy() for name, s in zip(names, states, strict=True)}
    got = session.run(None, feed)
    with torch.no_grad():
        y, state = layer(x, states if len(states) > 1 else states[0], lengths=lengths)
    expected = [y, *(state if isinstance(state, tuple) else (state,))]
    assert len(got) == len(expected)
    for name, g, e in zip(["y", *names], got, expected, strict=True):
        torch.testing.assert_close(
            torch.from_numpy(g), e, atol=ATOL, rtol=0, msg=lambda m, n=name: f"{n} at T={T}: {m}"
        )
    if lengths is not None:
        # The operators must write zeros past each end themselves (not merely agree with a
        # layer that would be wrong the same way).
        steps = torch.arange(T).unsqueeze(1)
        assert not torch.from_numpy(got[0])[steps >= lengths].any()


CONFIGS = [
    pytest.param(kind, L, bi, bias, lengths, id=f"{kind}-L{L}-{'bi' if bi else 'uni'}"
                 f"-{'bias' if bias else 'nobias'}-{'lengths' if lengths else 'full'}")
    for kind in KINDS
    for L in (1, 2)
    for bi in (False, True)
    for bias in (True, False)
    for lengths in (False, True)
]  # fmt: skip


@pytest.mark.parametrize(("kind", "L", "bi", "bias", "lengths"), CONFIGS)
def test_graph_computes_the_layer(kind: str, L: int, bi: bool, bias: bool, lengths: bool) -> None:
    layer = _layer(kind, num_layers=L, bidirectional=bi, bias=bias)
    model = native_sequence_graph(layer, lengths=lengths)
    assert model is not None
    onnx.checker.check_model(model, full_check=True)
    session = _session(model)
    for T in (1, 7):  # one graph, any T
        _compare(layer, session, T, lengths)


@pytest.mark.parametrize(
    ("kind", "bi", "lengths"),
    [("lstm", True, True), ("gru", False, False), ("rnn_tanh", True, True)],
)
def test_long_sequences(kind: str, bi: bool, lengths: bool) -> None:
    layer = _layer(kind, num_layers=2, bidirectional=bi)
    model = native_sequence_graph(layer, lengths=lengths)
    assert model is not None
    _compare(layer, _session(model), 1000, lengths)


def test_training_only_options_change_nothing() -> None:
    # recurrent_dropout and the dropout between layers act only while training: the graph
    # is the layer in evaluation mode, whichever mode the layer is in when exported.
    layer = _layer("lstm", num_layers=2, dropout=0.5, recurrent_dropout=0.3)
    layer.train()
    model = native_sequence_graph(layer, lengths=True)
    assert model is not None
    layer.eval()
    _compare(layer, _session(model), 7, True)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: rnnkit.LSTM(I, H, layer_norm=True), "layer_norm"),
        (lambda: rnnkit.LSTM(I, H, zoneout=0.1), "zoneout"),
        (lambda: rnnkit.GRU(I, H, num_layers=2, zoneout=0.2), "zoneout"),
        (lambda: rnnkit.RNN(I, H, nonlinearity="relu", zoneout=0.5), "zoneout"),
        (lambda: rnnkit.LSTM(I, H, proj_size=3), "projection"),
        (lambda: rnnkit.MinGRU(I, H), "MINGRU"),
        (lambda: rnnkit.MinLSTM(I, H, bidirectional=True), "MINLSTM"),
    ],
    ids=["layer_norm", "lstm_zoneout", "gru_zoneout", "rnn_zoneout", "proj", "mingru", "minlstm"],
)
def test_what_the_operators_cannot_compute_gives_none(make: Any, reason: str) -> None:
    layer = make().eval()
    assert reason in (unsupported_reason(layer) or "")
    for lengths in (False, True):
        assert native_sequence_graph(layer, lengths=lengths) is None


@pytest.mark.parametrize("lengths", [False, True])
def test_metadata(lengths: bool) -> None:
    layer = _layer("lstm", num_layers=2, bidirectional=True)
    model = native_sequence_graph(layer, lengths=lengths)
    assert model is not None
    props = {p.key: p.value for p in model.metadata_props}
    meta = json.loads(props["rnnkit"])
    inputs = ["x", "lengths", "h", "c"] if lengths else ["x", "h", "c"]
    assert meta == {
        "format": "rnnkit.onnx",
        "version": 1,
        "mode": "sequence",
        "model": "layer",
        "kind": "LSTM",
        "lengths": lengths,
        "inputs": inputs,
        "outputs": ["y", "h_out", "c_out"],
        "states": [{"name": "h", "shape": [4, "B", H]}, {"name": "c", "shape": [4, "B", H]}],
        "input_size": I,
        "output_size": 2 * H,
    }
    assert [i.name for i in model.graph.input] == inputs
    assert [o.name for o in model.graph.output] == ["y", "h_out", "c_out"]
    # T and B are named dimensions, the sizes fixed ones.
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["T", "B", I]
    dims = [d.dim_param or d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
    assert dims == ["T", "B", 2 * H]


def test_metadata_kind_of_a_relu_rnn() -> None:
    model = native_sequence_graph(_layer("rnn_relu"), lengths=False)
    assert model is not None
    meta = json.loads({p.key: p.value for p in model.metadata_props}["rnnkit"])
    assert meta["kind"] == "RNN_RELU"
    assert meta["states"] == [{"name": "h", "shape": [1, "B", H]}]


class _Doubled(nn.Module):
    def forward(self, w: Tensor) -> Tensor:
        return 2 * w


def test_weights_are_read_as_forward_reads_them() -> None:
    layer = _layer("gru", num_layers=2)
    nn.utils.parametrize.register_parametrization(layer, "weight_hh_l1", _Doubled())
    model = native_sequence_graph(layer, lengths=False)
    assert model is not None
    _compare(layer, _session(model), 7, False)


def test_a_float64_layer_gives_a_float32_graph() -> None:
    layer = _layer("lstm").double()
    model = native_sequence_graph(layer, lengths=True)
    assert model is not None
    assert all(t.data_type == onnx.TensorProto.FLOAT for t in model.graph.initializer
               if t.name.startswith(("W_", "R_", "B_")))  # fmt: skip
    session = _session(model)
    x = np.random.default_rng(0).standard_normal((7, B, I)).astype(np.float32)
    lengths = np.array([7, 0, 3, 1, 5])
    h = np.zeros((1, B, H), np.float32)
    got = session.run(None, {"x": x, "lengths": lengths, "h": h, "c": h})
    with torch.no_grad():
        y, _ = layer(torch.from_numpy(x).double(), lengths=torch.from_numpy(lengths))
    np.testing.assert_allclose(got[0], y.numpy(), atol=ATOL, rtol=0)


@pytest.mark.parametrize("opset", [13, 20.0, True])
def test_opset_is_checked(opset: Any) -> None:
    with pytest.raises(ValueError, match="opset"):
        native_sequence_graph(_layer("rnn_tanh"), lengths=False, opset=opset)


@pytest.mark.parametrize("opset", [14, 17, 21])
def test_other_opsets(opset: int) -> None:
    layer = _layer("gru", bidirectional=True, num_layers=2)
    model = native_sequence_graph(layer, lengths=True, opset=opset)
    assert model is not None
    onnx.checker.check_model(model, full_check=True)
    _compare(layer, _session(model), 7, True)
