"""A ``batch_first`` layer exported as a sequence graph: the graph is time-major, its
metadata says so (``layout``, and the layer's own ``batch_first``), and
``deploy.run_sequence(batch_first=True)`` takes x as the layer's forward does.

Before, the metadata did not record the axis order, and run_sequence read the (2, 6, 3)
array a ``batch_first`` layer takes as T = 2, B = 6 without a word: nothing said the graph
was time-major, and there was no way to hand it the layer's own layout.
"""

from __future__ import annotations

import json
import re
import warnings
from typing import Any

import numpy as np
import pytest
import torch

import rnnkit

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from rnnkit import deploy  # noqa: E402
from rnnkit.export import export_onnx, read_metadata  # noqa: E402

F32 = 1e-5


def _graph(model: torch.nn.Module, **options: Any) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_onnx(model, mode="sequence", check=False, **options).SerializeToString()


def _with_metadata(graph: bytes, change: Any) -> bytes:
    """The graph with its rnnkit metadata passed through ``change`` (a dict -> None)."""
    proto = onnx.load_from_string(graph)
    (entry,) = [p for p in proto.metadata_props if p.key == "rnnkit"]
    meta = json.loads(entry.value)
    change(meta)
    entry.value = json.dumps(meta)
    return proto.SerializeToString()


def _close(got: np.ndarray, want: torch.Tensor) -> None:
    assert got.shape == tuple(want.shape)
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=F32, atol=F32)


def _raises(kind: type[Exception], message: str, call: Any, *args: Any, **kwargs: Any) -> None:
    with pytest.raises(kind, match=f"^{re.escape(message)}$"):
        call(*args, **kwargs)


@pytest.mark.parametrize("batch_first", [True, False])
def test_the_metadata_records_the_graphs_axis_order_and_the_layers(batch_first: bool) -> None:
    layer = rnnkit.GRU(3, 4, batch_first=batch_first).eval()
    meta = read_metadata(onnx.load_from_string(_graph(layer)))
    assert meta["layout"] == "time_major"
    assert meta["batch_first"] is batch_first


@pytest.mark.parametrize("kind", ["GRU", "LSTM", "MinGRU"])
def test_run_sequence_takes_a_batch_first_layers_own_layout(kind: str) -> None:
    torch.manual_seed(0)
    layer = getattr(rnnkit, kind)(3, 4, num_layers=2, batch_first=True).eval()
    graph = _graph(layer, lengths=True)
    x = torch.randn(2, 6, 3)  # (B, T, I), as the layer takes it
    lengths = torch.tensor([6, 4])
    with torch.no_grad():
        out, final = layer(x, lengths=lengths)
    y, state = deploy.run_sequence(graph, x.numpy(), lengths.numpy(), batch_first=True)
    _close(y, out)
    finals = final if isinstance(final, tuple) else (final,)
    for got, want in zip(state if isinstance(state, tuple) else (state,), finals, strict=True):
        _close(got, want)


def test_without_batch_first_run_sequence_reads_x_time_major_as_before() -> None:
    torch.manual_seed(0)
    layer = rnnkit.GRU(3, 4, batch_first=True).eval()
    graph = _graph(layer)
    x = torch.randn(2, 6, 3)
    with torch.no_grad():
        out, _ = layer(x.transpose(0, 1))  # x read as (T, B, I) = (2, 6, 3)
    y, _ = deploy.run_sequence(graph, x.numpy())
    _close(y, out.transpose(0, 1))
    y, _ = deploy.run_sequence(graph, x.numpy(), batch_first=False)
    _close(y, out.transpose(0, 1))


def test_a_time_major_layers_graph_takes_batch_first_input_on_request() -> None:
    torch.manual_seed(0)
    layer = rnnkit.LSTM(3, 4).eval()
    x = torch.randn(6, 2, 3)
    with torch.no_grad():
        out, _ = layer(x)
    y, _ = deploy.run_sequence(_graph(layer), x.transpose(0, 1).numpy(), batch_first=True)
    _close(y, out.transpose(0, 1))


def test_task_models_take_their_own_batch_first_input() -> None:
    from rnnkit.tasks.classify import SequenceClassifier
    from rnnkit.tasks.tag import Tagger, TaggerConfig

    torch.manual_seed(0)
    tagger = Tagger(TaggerConfig(num_tags=3, num_features=2, cell="lstm", num_layers=1,
                                 hidden_size=3, bidirectional=False)).eval()  # fmt: skip
    classifier = SequenceClassifier(3, 2, "gru", 4, 1, True, "max").eval()
    lengths = torch.tensor([5, 3, 4])
    for model, features in [(tagger, 2), (classifier, 3)]:
        x = torch.randn(3, 5, features)  # (B, T, F): the models' forward
        with torch.no_grad():
            want = model(x, lengths)
        y, _ = deploy.run_sequence(
            _graph(model, lengths=True), x.numpy(), lengths.numpy(), batch_first=True
        )
        _close(y, want)  # the tagger's (B, T, K), the classifier's (B, C)


def test_a_graph_exported_before_the_layout_key_runs_time_major() -> None:
    torch.manual_seed(0)
    layer = rnnkit.GRU(3, 4, batch_first=True).eval()

    def old(meta: dict) -> None:
        del meta["layout"], meta["batch_first"]

    graph = _with_metadata(_graph(layer), old)
    x = torch.randn(6, 2, 3)
    with torch.no_grad():
        out, _ = layer(x.transpose(0, 1))
    y, _ = deploy.run_sequence(graph, x.numpy())
    _close(y, out.transpose(0, 1))
    y, _ = deploy.run_sequence(graph, x.transpose(0, 1).numpy(), batch_first=True)
    _close(y, out)


def test_another_layout_is_refused_in_one_line() -> None:
    layer = rnnkit.GRU(3, 4).eval()
    graph = _with_metadata(_graph(layer), lambda meta: meta.update(layout="batch_major"))
    _raises(
        ValueError,
        "run_sequence: expected a sequence graph of layout 'time_major' (x (T, B, ...)); got "
        "layout 'batch_major' (take deploy.py from the rnnkit that exported the graph)",
        deploy.run_sequence,
        graph,
        np.zeros((2, 1, 3), np.float32),
    )


def test_batch_first_input_is_checked_in_its_own_layout() -> None:
    layer = rnnkit.GRU(3, 4, batch_first=True).eval()
    graph = _graph(layer, lengths=True)
    _raises(
        ValueError,
        "run_sequence: x must be a float32 array (B, T, 3); got float32 array of shape (2, 6)",
        deploy.run_sequence, graph, np.zeros((2, 6), np.float32), batch_first=True,
    )  # fmt: skip
    _raises(
        ValueError,
        "run_sequence: x has T = 0 time steps; expected T >= 1; got shape (2, 0, 3)",
        deploy.run_sequence, graph, np.zeros((2, 0, 3), np.float32), batch_first=True,
    )  # fmt: skip
    _raises(
        ValueError,
        "run_sequence: lengths must be an int64 array of shape (2,); got int64 array of shape (6,)",
        deploy.run_sequence, graph, np.zeros((2, 6, 3), np.float32), np.full(6, 2),
        batch_first=True,
    )  # fmt: skip
    x = np.zeros((2, 6, 3), np.float32)
    x[1, 4, 2] = np.nan  # within sample 1's length: refused at its index as given
    _raises(
        ValueError,
        "run_sequence: x must be finite and within float32's range (|value| <= 3.403e+38); "
        "got nan at index [1, 4, 2]",
        deploy.run_sequence, graph, x, [6, 5], batch_first=True,
    )  # fmt: skip
    y, _ = deploy.run_sequence(graph, x, [6, 4], batch_first=True)  # past its length: unread
    assert y.shape == (2, 6, 4) and np.isfinite(y).all()


def test_batch_first_must_be_a_bool() -> None:
    _raises(
        TypeError,
        "run_sequence: batch_first must be a bool; got 'yes'",
        deploy.run_sequence, _graph(rnnkit.GRU(3, 4)), np.zeros((2, 1, 3)), batch_first="yes",
    )  # fmt: skip


def test_an_encoder_graph_takes_no_batch_first() -> None:
    from rnnkit.seq2seq.model import Seq2Seq, Seq2SeqConfig

    torch.manual_seed(0)
    config = Seq2SeqConfig(src_vocab_size=8, tgt_vocab_size=8, embed_size=3, encoder="gru",
                           encoder_hidden=3, decoder="gru", decoder_hidden=3)  # fmt: skip
    encoder = _graph(Seq2Seq(config).eval())
    _raises(
        ValueError,
        "run_sequence: batch_first must be False for an encoder-decoder's encoder graph (it "
        "takes x (S, B) and returns its memory time-major); got True",
        deploy.run_sequence, encoder, np.ones((1, 2), np.int64), [2], batch_first=True,
    )  # fmt: skip
