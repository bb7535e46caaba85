"""Seeded cases of a differential fuzz of the deployment path against eager PyTorch.

Each case builds a layer (or a task model), exports its graphs and runs them on inputs of
batch sizes and lengths other than the export's (1 included), with and without an initial
state and ragged lengths (0 included), and compares:

- the sequence graph in onnxruntime (``deploy.run_sequence``) with the layer's own call;
- ``rnnkit.Stream`` over a chunking (single steps included) with resets of some samples
  with each sample run alone from zeros after its resets, in float32 and float64;
- ``deploy.OnnxStream`` over the step graph, with the same resets, with ``rnnkit.Stream``.

float32 is held to 1e-5 (relative and absolute), float64 to 1e-10. The layer-norm LSTM
is left out of the float32 cases with scaled weights: it is chaotic, and two float32
computations that round differently part ways (docs/deploy.md, "Parity with PyTorch").
"""

from __future__ import annotations

import random
import warnings
from typing import Any

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import deploy
from rnnkit.export import export_onnx
from rnnkit.export.parts import parts_of

ort = pytest.importorskip("onnxruntime")
# torch notes that its oneDNN kernels lack projections: not this test's concern.
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections")

F32, F64 = 1e-5, 1e-10

# kind, input size, hidden size, layers, bidirectional, batch_first, bias, options, lengths
LAYERS: list[tuple[str, int, int, int, bool, bool, bool, dict[str, Any], bool]] = [
    ("rnn_tanh", 1, 1, 1, False, False, True, {}, True),
    ("rnn_tanh", 5, 3, 2, False, True, False, {}, False),
    ("rnn_tanh", 2, 7, 1, True, False, True, {}, True),
    ("rnn_relu", 3, 4, 3, False, False, True, {}, True),
    ("rnn_relu", 7, 2, 1, True, True, True, {"zoneout": 0.1}, True),
    ("lstm", 4, 5, 1, False, True, True, {}, True),
    ("lstm", 1, 2, 2, True, False, False, {}, True),
    ("lstm", 6, 3, 1, False, False, True, {"layer_norm": True}, False),
    ("lstm_proj", 2, 6, 2, False, True, True, {}, True),
    ("lstm_proj", 3, 4, 1, False, False, False, {"layer_norm": True}, True),
    ("gru", 6, 6, 1, False, False, True, {}, True),
    ("gru", 2, 1, 3, False, True, True, {}, False),
    ("gru", 4, 3, 2, True, True, False, {}, True),
    ("gru", 1, 5, 1, False, False, True, {"zoneout": 0.1}, True),
    ("mingru", 3, 2, 1, False, False, False, {}, True),
    ("mingru", 7, 4, 1, True, True, True, {}, True),
    ("minlstm", 4, 1, 1, False, False, True, {}, True),
    ("minlstm", 1, 6, 1, False, True, True, {"zoneout": 0.1}, False),
    ("minlstm", 5, 3, 1, True, False, False, {}, True),
]


def _layer(spec: tuple, seed: int, dtype: torch.dtype = torch.float32) -> rnnkit.RecurrentLayer:
    kind, I, H, L, bi, bf, bias, opts, _ = spec
    kw = dict(num_layers=L, bidirectional=bi, batch_first=bf, bias=bias, **opts)
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # options the fused kernels lack
        if kind.startswith("rnn"):
            layer = rnnkit.RNN(I, H, nonlinearity=kind[4:], **kw)
        elif kind == "lstm_proj":
            layer = rnnkit.LSTM(I, H, proj_size=H // 2, **kw)
        else:
            make = {"lstm": rnnkit.LSTM, "gru": rnnkit.GRU}
            make |= {"mingru": rnnkit.MinGRU, "minlstm": rnnkit.MinLSTM}
            layer = make[kind](I, H, **kw)
    # Weights twice their initial size, so the states move well away from zero.
    with torch.no_grad():
        for p in layer.parameters():
            p.mul_(1.0 if opts.get("layer_norm") else 2.0)
    return layer.eval().to(dtype)


def _session(proto: Any) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(
        proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _tuple(state: Any) -> list[Any]:
    return list(state) if isinstance(state, tuple) else [state]


def _packed(parts: list[Any] | None) -> Any:
    if parts is None:
        return None
    return tuple(parts) if len(parts) > 1 else parts[0]


def _close(got: list[Any], want: list[Any], tol: float) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        w = w.detach().double().numpy() if isinstance(w, torch.Tensor) else np.asarray(w)
        g = g.detach().double().numpy() if isinstance(g, torch.Tensor) else np.asarray(g)
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


def _eager(layer: Any, x: torch.Tensor, state: list[torch.Tensor] | None, lengths: Any) -> list:
    """The layer's own call on time-major x: [y (T, B, ...), *final states]."""
    with torch.no_grad():
        y, final = layer(x.transpose(0, 1) if layer.batch_first else x, _packed(state),
                         lengths=lengths)  # fmt: skip
    return [y.transpose(0, 1) if layer.batch_first else y, *_tuple(final)]


def _random_state(layer: Any, B: int, g: torch.Generator, dtype: torch.dtype) -> list:
    rows = layer.num_layers * layer.num_directions
    return [torch.randn(rows, B, s, generator=g, dtype=dtype) for s in layer.first_cell.state_sizes]


def _alone(layer: Any, x: torch.Tensor, state: list | None, resets: set) -> list:
    """Each sample run alone, from zeros again after each of its resets (t, b): the
    reference for a stream with resets of chosen samples."""
    T, B = x.shape[:2]
    ys, finals = [], []
    for b in range(B):
        cuts = [0, *sorted(t for t, s in resets if s == b), T]
        carried = None if state is None else [s[:, b : b + 1] for s in state]
        pieces = []
        for k in range(len(cuts) - 1):
            carried = None if k else carried  # a reset starts again from zeros
            y, *carried = _eager(layer, x[cuts[k] : cuts[k + 1], b : b + 1], carried, None)
            pieces.append(y)
        ys.append(torch.cat(pieces))
        finals.append(carried)
    return [
        torch.cat(ys, 1),
        *(torch.cat([f[j] for f in finals], 1) for j in range(len(finals[0]))),
    ]


def _chunks(rng: random.Random, T: int) -> list[int]:
    sizes = []
    while sum(sizes) < T:
        sizes.append(min(rng.choice([1, 1, 2, 3, T]), T - sum(sizes)))
    return sizes


def _stream(
    layer: Any, x: torch.Tensor, state: list | None, chunks: list[int], resets: set
) -> list:
    """rnnkit.Stream over the chunks (single steps by step()), resetting at chunk starts."""
    stream = rnnkit.Stream(layer)
    if state is not None:
        stream.state = _packed([s.clone() for s in state])
    outs, t = [], 0
    with torch.no_grad():
        for n in chunks:
            chosen = sorted(b for s, b in resets if s == t)
            if chosen:
                stream.reset(chosen)
            if n == 1:
                outs.append(stream.step(x[t]).unsqueeze(0))
            else:
                chunk = x[t : t + n]
                y = stream(chunk.transpose(0, 1) if layer.batch_first else chunk)
                outs.append(y.transpose(0, 1) if layer.batch_first else y)
            t += n
    return [torch.cat(outs), *_tuple(stream.state)]


def _onnx_stream(
    graph: bytes, x: torch.Tensor, state: list | None, resets: set, mask: bool
) -> list:
    stream = deploy.OnnxStream(graph, threads=1)
    if state is not None:
        stream.state = _packed([s.numpy() for s in state])
    ys = []
    for t in range(x.shape[0]):
        chosen = sorted(b for s, b in resets if s == t)
        if chosen:
            stream.reset(np.isin(np.arange(x.shape[1]), chosen) if mask else chosen)
        ys.append(stream.step(x[t].numpy()))
    return [np.stack(ys), *_tuple(stream.state)]


@pytest.mark.parametrize("case", range(len(LAYERS)))
def test_graphs_and_streams_equal_the_layer(case: int) -> None:
    spec = LAYERS[case]
    rng, g = random.Random(case), torch.Generator().manual_seed(case)
    layer = _layer(spec, seed=case)
    with_lengths = spec[-1]
    sequence = _session(export_onnx(layer, mode="sequence", lengths=with_lengths, check=False))
    # Export batch 3 and length 5 (step batch 2): here 1, other sizes, and T = 1.
    for B, T in [(1, 1), (rng.choice([2, 4]), rng.choice([2, 6])), (5, 3)]:
        x = torch.randn(T, B, layer.input_size, generator=g)
        state = _random_state(layer, B, g, torch.float32) if rng.random() < 0.6 else None
        lengths = None
        if with_lengths and B > 1:
            lengths = torch.tensor([T, 0, *(rng.randint(0, T) for _ in range(B - 2))])
        got_y, got_state = deploy.run_sequence(
            sequence, x.numpy(), None if lengths is None else lengths.numpy(),
            _packed(None if state is None else [s.numpy() for s in state]),
        )  # fmt: skip
        _close([got_y, *_tuple(got_state)], _eager(layer, x, state, lengths), F32)
    if layer.bidirectional:
        with pytest.raises(ValueError, match="a step cannot see the future"):
            export_onnx(layer, mode="step", check=False)
        return
    step = export_onnx(layer, mode="step", check=False).SerializeToString()
    wide = _layer(spec, seed=case, dtype=torch.float64)
    for B, T in [(1, 4), (3, 7)]:
        x = torch.randn(T, B, layer.input_size, generator=g, dtype=torch.float64)
        state = _random_state(layer, B, g, torch.float64) if rng.random() < 0.6 else None
        chunks = _chunks(rng, T)
        starts = [sum(chunks[:k]) for k in range(1, len(chunks))]
        resets = {(t, b) for t in starts for b in range(B) if rng.random() < 0.4}
        narrow = None if state is None else [s.float() for s in state]
        want = _alone(layer, x.float(), narrow, resets)
        _close(_stream(layer, x.float(), narrow, chunks, resets), want, F32)
        _close(_stream(wide, x, state, chunks, resets), _alone(wide, x, state, resets), F64)
        got = _onnx_stream(step, x.float(), narrow, resets, mask=rng.random() < 0.5)
        _close(got, want, F32)


def _models() -> dict[str, tuple[torch.nn.Module, str]]:
    """name -> (a task model with weights of some size, how its forward is called)."""
    from rnnkit.data.vocab import Vocabulary
    from rnnkit.models.lm import CharLM, CharLMConfig
    from rnnkit.models.memory import MemoryModel, MemoryTaskConfig
    from rnnkit.tasks.classify import SequenceClassifier
    from rnnkit.tasks.forecast import ForecastConfig, ForecastModel
    from rnnkit.tasks.tag import Tagger, TaggerConfig

    torch.manual_seed(7)
    lm_config = CharLMConfig(6, "minlstm", num_layers=1, hidden_size=5, embed_size=3)
    forecast = ForecastConfig(horizon=3, seasonality=4, head="gaussian", cell="gru",
                              hidden_size=4, num_layers=1, members=2, anchor="drift")  # fmt: skip
    models = {
        "lm": (CharLM(lm_config, Vocabulary(list("ab c\n"))), "state"),
        "forecast": (ForecastModel(forecast), "state"),
        "tagger": (Tagger(TaggerConfig(num_tags=3, num_features=2, cell="lstm", num_layers=1,
                                       hidden_size=3, bidirectional=False)), "batch_first"),
        "classifier": (SequenceClassifier(3, 2, "mingru", 4, 1, True, "max",
                                          mean=[0.5, -1.0, 0.0], std=[2.0, 1.0, 0.5]),
                       "batch_first"),
        "memory": (MemoryModel(MemoryTaskConfig("copy", 20, "gru", 5, 1)), "plain"),
    }  # fmt: skip
    for model, _ in models.values():
        for linear in model.modules():  # not the near-zero initial read-outs
            if isinstance(linear, torch.nn.Linear):
                torch.nn.init.normal_(linear.weight, std=0.5)
        model.eval()
    return models


def _model_forward(model: Any, call: str, x: torch.Tensor, lengths: Any, state: Any) -> list:
    with torch.no_grad():
        if call == "state":
            y, final = model(x, _packed(state))
            return [y, *_tuple(final)]
        if call == "plain":
            return [model(x)]
        y = model(x.transpose(0, 1), lengths)
        return [y if y.dim() == 2 else y.transpose(0, 1)]


@pytest.mark.parametrize("name", ["lm", "forecast", "tagger", "classifier", "memory"])
def test_task_model_graphs_equal_the_model(name: str) -> None:
    model, call = _models()[name]
    parts = parts_of(model)
    layer = parts.layer
    g = torch.Generator().manual_seed(11)
    lengths = call == "batch_first"  # the models whose forward takes lengths
    sequence = _session(export_onnx(model, mode="sequence", lengths=lengths, check=False))
    step = None
    if parts.stepwise:
        step = export_onnx(model, mode="step", check=False).SerializeToString()
    for B, T in [(1, 1), (4, 6)]:
        if parts.ids:
            x = torch.randint(0, parts.pre.embedding.num_embeddings, (T, B), generator=g)
        else:
            x = torch.randn(T, B, parts.features, generator=g)
        state = _random_state(layer, B, g, torch.float32) if call == "state" else None
        lens = torch.tensor([T, *([max(T // 2, 1)] * (B - 1))]) if lengths else None
        want = _model_forward(model, call, x, lens, state)
        got_y, got_state = deploy.run_sequence(
            sequence, x.numpy(), None if lens is None else lens.numpy(),
            _packed(None if state is None else [s.numpy() for s in state]),
        )  # fmt: skip
        got = [got_y, *_tuple(got_state)][: len(want)]
        _close(got, want, F32)
        if step is None:
            continue
        stream = deploy.OnnxStream(step, threads=1)
        if state is not None:
            stream.state = _packed([s.numpy() for s in state])
        ys = [stream.step(x[t].numpy()) for t in range(T)]
        want = _model_forward(model, call, x, None, state)
        _close([np.stack(ys), *_tuple(stream.state)][: len(want)], want, F32)
