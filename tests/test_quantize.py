"""rnnkit.quantize: dynamic int8 quantization of models built from rnnkit layers.

The reference is the float model itself: int8 weights (one scale per tensor) and int8
activations quantized per call give outputs within a small, bounded distance of it.
"""

from __future__ import annotations

import doctest
import re
import warnings

import pytest
import torch
from torch import nn
from torch.ao.nn.quantized import dynamic as nnqd
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit
import rnnkit.quantize
from rnnkit.data.vocab import Vocabulary
from rnnkit.models.lm import CharLM, CharLMConfig
from rnnkit.quantize import QuantizationWarning, QuantizedRecurrent, quantize_dynamic
from rnnkit.train.evaluate import bits_per_char

# Observed max |int8 - float| on these tiny layers is ~0.007 (outputs are tanh-bounded);
# 0.03 leaves room for other seeds and CPUs while still catching a wrong gate or weight.
TOLERANCE = 0.03


class Tagger(nn.Module):
    """Embedding -> rnnkit layer -> linear head, calling the layer with lengths."""

    def __init__(self, rnn: nn.Module, out: int = 3) -> None:
        super().__init__()
        self.embedding = nn.Embedding(10, rnn.input_size)
        self.rnn = rnn
        self.head = nn.Linear(rnn.output_size, out)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embedding(ids), lengths=lengths)
        return self.head(out)


def _quiet(model: nn.Module, **kwargs: object) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("error", QuantizationWarning)  # these models fully quantize
        return quantize_dynamic(model, **kwargs)  # type: ignore[arg-type]


def _tensors(value: object) -> list[torch.Tensor]:
    """The tensors of an output, a state, or an (output, state) pair, in order."""
    if isinstance(value, torch.Tensor):
        return [value.detach()]
    return [t for part in value for t in _tensors(part)]  # type: ignore[attr-defined]


def _max_diff(a: object, b: object) -> float:
    pairs = zip(_tensors(a), _tensors(b), strict=True)
    return max(float((x - y).abs().max()) for x, y in pairs)


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.GRU])
@pytest.mark.parametrize("batch_first", [False, True])
def test_output_and_state_close_to_float_with_lengths(cls: type, batch_first: bool) -> None:
    layer = cls(5, 16, num_layers=2, bidirectional=True, batch_first=batch_first)
    q = _quiet(layer)
    x = torch.randn(3, 7, 5) if batch_first else torch.randn(7, 3, 5)
    lengths = torch.tensor([7, 0, 4])  # a length of 0 keeps the state, as rnnkit's layers
    out_f, state_f = layer(x, lengths=lengths)
    out_q, state_q = q(x, lengths=lengths)
    assert out_q.shape == out_f.shape
    assert _max_diff(out_q, out_f) < TOLERANCE
    assert _max_diff(state_q, state_f) < TOLERANCE
    out_tm = out_q.transpose(0, 1) if batch_first else out_q  # (T, B, D*H)
    assert out_tm[4:, 2].abs().max() == 0  # past the end of sample 2
    assert out_tm[:, 1].abs().max() == 0  # sample 1 has no steps...
    h = state_q[0] if isinstance(state_q, tuple) else state_q
    assert h[:, 1].abs().max() == 0  # ...and keeps its (zero) initial state


@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.GRU])
def test_state_in_unbatched_and_packed_inputs(cls: type) -> None:
    layer = cls(4, 8, num_layers=2)
    q = _quiet(layer)
    x = torch.randn(6, 2, 4)
    _, state = layer(x[:3])
    # The state of the float layer continues the quantized one's sequence, and back.
    assert _max_diff(q(x[3:], state)[0], layer(x[3:], state)[0]) < TOLERANCE
    assert _max_diff(q(x[3:], hx=state)[1], layer(x[3:], hx=state)[1]) < TOLERANCE
    assert _max_diff(q(x[:, 0])[0], layer(x[:, 0])[0]) < TOLERANCE  # unbatched (T, I)
    assert q(x[:, 0])[0].shape == (6, 8)
    packed = pack_padded_sequence(x, torch.tensor([6, 2]), enforce_sorted=False)
    out_q, _ = pad_packed_sequence(q(packed)[0])
    out_f, _ = pad_packed_sequence(layer(packed)[0])
    assert _max_diff(out_q, out_f) < TOLERANCE


def test_streams_in_chunks_to_quantization_error() -> None:
    # Activations are quantized per call, with the range of what that call sees: chunks
    # agree with the whole sequence to quantization error, not bit for bit.
    q = _quiet(rnnkit.LSTM(4, 8, num_layers=2))
    x = torch.randn(9, 2, 4)
    stream = rnnkit.Stream(q)
    chunks = torch.cat([stream(x[:4]), *(stream.step(x[t]).unsqueeze(0) for t in range(4, 9))])
    assert _max_diff(chunks, q(x)[0]) < TOLERANCE
    assert stream.last_backend == "quantized"


def test_float16_weights_are_closer_still() -> None:
    layer = rnnkit.LSTM(5, 16)
    q = _quiet(layer, dtype=torch.float16)
    x = torch.randn(7, 3, 5)
    assert _max_diff(q(x), layer(x)) < 1e-3


def test_layers_and_linear_are_replaced_by_packed_int8_modules() -> None:
    model = Tagger(rnnkit.LSTM(6, 16)).eval()
    q = _quiet(model)
    assert isinstance(q.rnn, QuantizedRecurrent)
    assert isinstance(q.rnn.quantized, nnqd.LSTM)
    assert isinstance(q.head, nnqd.Linear)
    assert type(q.embedding) is nn.Embedding  # torch has no dynamic embedding: float
    weights = q.rnn.quantized._weight_bias()["weight"]
    assert {w.dtype for w in weights.values()} == {torch.qint8}
    assert q.head.weight().dtype == torch.qint8
    keys = set(q.state_dict())
    assert "rnn.quantized._all_weight_values.0.param" in keys
    assert "head._packed_params._packed_params" in keys
    assert not any(k.startswith("rnn.weight") for k in keys)  # no float copy left behind
    ids, lengths = torch.randint(0, 10, (5, 2)), torch.tensor([5, 3])
    assert _max_diff(q(ids, lengths), model(ids, lengths)) < TOLERANCE


def test_flags_choose_what_is_quantized() -> None:
    model = Tagger(rnnkit.GRU(6, 16))
    only_layers = _quiet(model, linear=False)
    assert isinstance(only_layers.rnn, QuantizedRecurrent)
    assert type(only_layers.head) is nn.Linear
    only_linear = _quiet(model, layers=False)
    assert type(only_linear.rnn) is rnnkit.GRU
    assert isinstance(only_linear.head, nnqd.Linear)


def test_a_layer_alone_is_returned_wrapped() -> None:
    q = _quiet(rnnkit.GRU(4, 8))
    assert isinstance(q, QuantizedRecurrent)
    assert isinstance(q.quantized, nnqd.GRU)
    assert q.last_backend == "quantized"


def test_layer_norm_lstm_stays_float_and_is_named_once() -> None:
    model = Tagger(rnnkit.LSTM(6, 16, layer_norm=True, backend="reference"))
    with pytest.warns(QuantizationWarning) as record:
        q = quantize_dynamic(model)
    messages = [str(w.message) for w in record if w.category is QuantizationWarning]
    assert messages == [
        "quantize_dynamic: kept 1 layer(s) float: rnn (LSTM: torch.nn.LSTM has no layer_norm)"
    ]
    assert type(q.rnn) is rnnkit.LSTM and q.rnn.first_cell.layer_norm
    assert isinstance(q.head, nnqd.Linear)  # the rest is still quantized
    ids, lengths = torch.randint(0, 10, (5, 2)), torch.tensor([5, 3])
    assert _max_diff(q(ids, lengths), model(ids, lengths)) < TOLERANCE


@pytest.mark.parametrize(
    ("layer", "reason"),
    [
        (rnnkit.RNN(4, 8), "RNN: torch has no dynamically quantized RNN layer"),
        (rnnkit.LSTM(4, 8, proj_size=4), "LSTM: torch's quantized LSTM has no proj_size"),
        (rnnkit.GRU(4, 8, bias=False), "GRU: torch's quantized kernels need bias=True"),
        (rnnkit.GRU(4, 8, zoneout=0.1), "GRU: torch.nn.GRU has no zoneout"),
        (rnnkit.MinGRU(4, 8), "MinGRU: torch has no dynamically quantized MinGRU layer"),
    ],
)
def test_layers_torch_cannot_express_stay_float(layer: nn.Module, reason: str) -> None:
    with pytest.warns(QuantizationWarning, match=re.escape(f"model ({reason})")):
        q = quantize_dynamic(layer)
    assert type(q) is type(layer)


def test_the_original_model_is_not_modified() -> None:
    model = Tagger(rnnkit.LSTM(6, 16, num_layers=2)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    types = {name: type(m) for name, m in model.named_modules()}
    q = _quiet(model)
    assert q is not model and not q.training
    assert model.training
    assert {name: type(m) for name, m in model.named_modules()} == types
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert not hasattr(model.head, "qconfig")


def test_quantized_char_lm_scores_and_samples() -> None:
    text = "def add(a, b):\n    return a + b\n" * 20
    vocab = Vocabulary.from_text(text)
    model = CharLM(CharLMConfig(vocab_size=len(vocab), num_layers=1, hidden_size=16), vocab)
    q = _quiet(model)
    assert isinstance(q, CharLM)
    ids = vocab.encode(text)
    bpc_float, _ = bits_per_char(model, ids, 4, 32)
    bpc_int8, scored = bits_per_char(q, ids, 4, 32)
    assert scored == len(text) - 1  # every character but the first
    assert abs(bpc_int8 - bpc_float) < 0.01 * bpc_float
    gen = torch.Generator().manual_seed(0)
    assert len("".join(q.sample("def ", 20, generator=gen))) == 20


def test_docstring_example_runs() -> None:
    assert doctest.testmod(rnnkit.quantize).failed == 0


# ---- refusals: one line naming the argument, what was expected and what was given ----


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"model": [nn.Linear(2, 2)]},
            TypeError,
            "quantize_dynamic: model must be a torch.nn.Module; got list",
        ),
        (
            {"dtype": torch.quint8},
            ValueError,
            "quantize_dynamic: dtype must be torch.qint8 or torch.float16; got torch.quint8",
        ),
        ({"layers": 1}, TypeError, "quantize_dynamic: layers must be a bool; got 1"),
        (
            {"layers": False, "linear": False},
            ValueError,
            "quantize_dynamic: expected layers=True or linear=True; got both False",
        ),
        (
            {"model": nn.Linear(2, 2, device="meta")},
            ValueError,
            "quantize_dynamic: model must be on the CPU (torch's dynamic quantized kernels "
            "are CPU only); got parameters on meta",
        ),
    ],
)
def test_quantize_dynamic_refusals(kwargs: dict, error: type, message: str) -> None:
    kwargs = {"model": rnnkit.LSTM(2, 4), **kwargs}
    with pytest.raises(error) as info:
        quantize_dynamic(**kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda q, x: q(x, reset=torch.zeros(5, 2, dtype=torch.bool)),
            ValueError,
            "QuantizedLSTM: reset must be None (torch's quantized kernel cannot reset a state "
            "mid-sequence); got a Tensor",
        ),
        (
            lambda q, x: q(x[..., :3]),
            ValueError,
            "QuantizedLSTM: input.size(-1) must equal input_size; expected 4, got 3",
        ),
        (
            lambda q, x: q(x.double()),
            TypeError,
            "QuantizedLSTM: input must be a float32 CPU tensor (the quantized kernels' input); "
            "got torch.float64 on cpu",
        ),
        (
            lambda q, x: q(x, lengths=[5]),
            ValueError,
            "QuantizedLSTM: lengths must have shape (B,) = (2,); got (1,)",
        ),
        (
            lambda q, x: q(x, lengths=[5, 6]),
            ValueError,
            "QuantizedLSTM: lengths must lie in [0, T] = [0, 5]; got min 5, max 6",
        ),
        (
            lambda q, x: q(x[:, 0], lengths=[5]),
            ValueError,
            "QuantizedLSTM: lengths needs a batched input (3-D); got 2-D",
        ),
        (
            lambda q, x: q(x, torch.zeros(1, 2, 8)),
            TypeError,
            "QuantizedLSTM: state must be a tuple (h, c); got Tensor",
        ),
        (
            lambda q, x: q(x, state=(torch.zeros(1, 2, 8),) * 2, hx=(torch.zeros(1, 2, 8),) * 2),
            TypeError,
            "QuantizedLSTM: the initial state is state= or hx= (torch.nn's name); "
            "expected one of them, got both",
        ),
    ],
)
def test_quantized_layer_refusals(call: object, error: type, message: str) -> None:
    q = _quiet(rnnkit.LSTM(4, 8))
    x = torch.randn(5, 2, 4)
    with pytest.raises(error) as info:
        call(q, x)  # type: ignore[operator]
    assert str(info.value) == message
    assert "\n" not in message
