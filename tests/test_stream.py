"""Continuous streams: any split into chunks equals one whole call; resets; errors."""

from __future__ import annotations

import re

import pytest
import torch

import rnnkit
from _refusals import raises as _raises
from _refusals import raises_exactly as _raises_whole
from rnnkit.data.vocab import Vocabulary
from rnnkit.models.lm import CharLM, CharLMConfig
from rnnkit.stream import Stream

LAYERS = {
    "rnn": rnnkit.RNN,
    "lstm": rnnkit.LSTM,
    "gru": rnnkit.GRU,
    "mingru": rnnkit.MinGRU,
    "minlstm": rnnkit.MinLSTM,
}
OPTIONS = {
    "plain": {},
    "layer_norm": {"layer_norm": True},
    "zoneout": {"zoneout": 0.25},
    "recurrent_dropout": {"recurrent_dropout": 0.25},
    "chrono": {"chrono_init": 30},
}


def _layer(kind, option, **kwargs):
    opts = OPTIONS[option]
    if "layer_norm" in opts and kind != "lstm":
        pytest.skip("layer_norm is an LSTM option")
    if "chrono_init" in opts and kind == "rnn":
        pytest.skip("chrono_init needs a gated cell")
    if "recurrent_dropout" in opts and kind.startswith("min"):
        pytest.skip("minimal cells have no recurrent product")
    layer = LAYERS[kind](
        3, 5, 2, dtype=torch.float64, backend="reference" if opts else "auto", **opts, **kwargs
    )
    return layer.eval()


def _parts(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("kind", list(LAYERS))
def test_any_split_into_chunks_equals_the_whole(kind, option):
    layer = _layer(kind, option)
    x = torch.randn(23, 2, 3, dtype=torch.float64)
    whole, final = layer(x)
    stream = Stream(layer)
    outs, t = [], 0
    for size in (1, 1, 5, 1, 7, 2, 1, 5):  # steps and chunks, mixed
        if size == 1:
            outs.append(stream.step(x[t])[None])
        else:
            outs.append(stream(x[t : t + size]))
        t += size
    assert t == 23 and stream.steps == 23
    torch.testing.assert_close(torch.cat(outs), whole, atol=1e-10, rtol=0)
    for a, b in zip(_parts(stream.state), _parts(final), strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_single_steps_use_the_one_step_kernels():
    stream = Stream(rnnkit.GRU(3, 4))
    stream.step(torch.randn(2, 3))
    assert stream.last_backend == "native"
    ln = Stream(rnnkit.LSTM(3, 4, layer_norm=True, backend="reference"))
    ln.step(torch.randn(2, 3))
    assert ln.last_backend == "reference"


def test_batch_first_layers_stream_along_their_time_axis():
    layer = rnnkit.GRU(3, 4, batch_first=True, dtype=torch.float64)
    x = torch.randn(2, 9, 3, dtype=torch.float64)
    whole, _ = layer(x)
    stream = Stream(layer)
    got = torch.cat([stream(x[:, :4]), stream.step(x[:, 4])[:, None], stream(x[:, 5:])], dim=1)
    torch.testing.assert_close(got, whole, atol=1e-12, rtol=0)


def test_a_language_model_streams_too():
    vocab = Vocabulary.from_text("hello world, streams of text")
    model = CharLM(CharLMConfig(vocab_size=len(vocab), hidden_size=8, embed_size=4), vocab)
    model = model.double().eval()
    ids = vocab.encode("hello world, hello stream")[:, None]  # (T, 1)
    whole, _ = model(ids)
    stream = Stream(model)
    got = torch.cat([stream(ids[:3]), stream.step(ids[3])[None], stream(ids[4:])])
    torch.testing.assert_close(got, whole, atol=1e-10, rtol=0)


def test_reset_of_chosen_samples_equals_a_fresh_start_for_them():
    layer = rnnkit.LSTM(3, 4, dtype=torch.float64)
    x = torch.randn(10, 3, 3, dtype=torch.float64)
    stream = Stream(layer)
    stream(x[:6])
    stream.reset([1])
    after = stream(x[6:])
    fresh, _ = layer(x[6:, 1:2])
    torch.testing.assert_close(after[:, 1:2], fresh, atol=1e-12, rtol=0)
    untouched, _ = layer(x[:, ::2])
    torch.testing.assert_close(after[:, ::2], untouched[6:], atol=1e-12, rtol=0)
    # A bool mask does the same, and reset() of the whole state starts over.
    stream.reset(torch.tensor([True, False, True]))
    stream.reset()
    assert stream.state is None and stream.steps == 0
    torch.testing.assert_close(stream(x), layer(x)[0], atol=1e-12, rtol=0)


def test_the_state_holds_no_graph_between_chunks():
    layer = rnnkit.GRU(3, 4)
    stream = Stream(layer)
    for _ in range(3):
        out = stream(torch.randn(5, 2, 3))
        out.sum().backward()  # each chunk's graph is its own
        stream.step(torch.randn(2, 3)).sum().backward()
    assert not stream.state.requires_grad


def test_errors():
    _raises(
        ValueError,
        "Stream: a stream runs forward in time, but LSTM is bidirectional and "
        "its reverse direction needs the future",
        Stream,
        rnnkit.LSTM(3, 4, bidirectional=True),
    )
    _raises(TypeError, "Stream: module must be a torch.nn.Module; got str", Stream, "lstm")
    stream = Stream(rnnkit.GRU(3, 4))
    stream(torch.randn(5, 2, 3))
    _raises(
        ValueError,
        "Stream: chunk batch size must equal the running stream's; expected 2, "
        "got 3 (reset() starts a new stream)",
        stream,
        torch.randn(5, 3, 3),
    )
    _raises(
        ValueError,
        "Stream: step batch size must equal the running stream's; expected 2, got 1",
        stream.step,
        torch.randn(1, 3),
    )
    _raises(
        ValueError,
        "Stream: x.size(-1) must equal the layer's input_size; expected 3, got 4",
        stream.step,
        torch.randn(2, 4),
    )
    _raises(
        ValueError,
        "GRU: input.size(-1) must equal input_size; expected 3, got 4",
        stream,
        torch.randn(5, 2, 4),
    )
    _raises(
        ValueError,
        "Stream: reset mask must have shape (B,) = (2,); got (3,)",
        stream.reset,
        torch.tensor([True, False, True]),
    )
    for bad in ([2], [-3]):
        _raises(
            ValueError,
            "Stream: reset samples must be batch indices in [0, 2) (or from the end, -2 to -1); "
            f"got {bad}",
            stream.reset,
            bad,
        )
    _raises(
        ValueError,
        "Stream: chunk must have a time and a batch axis (T, B, ...); got shape (3,)",
        stream,
        torch.randn(3),
    )
    _raises(
        ValueError,
        "GRU: input.dtype must equal the parameters.dtype",
        stream.step,
        torch.randn(2, 3, dtype=torch.float64),
    )


def test_a_model_without_the_stream_contract_and_misshapen_steps_are_refused():
    """A Tagger's forward(x, lengths) returned logits that unpacked as (out, state) when
    B = 2; a layer's 1-D step or 2-D chunk ran unbatched and set the batch size to I; a
    reset at 0.5 zeroed sample 0; a list of bools was read as indices."""
    from rnnkit.tasks.tag import Tagger, TaggerConfig

    tagger = Tagger(TaggerConfig(num_tags=2, vocab_size=5, hidden_size=4, bidirectional=False))
    stream = Stream(tagger)
    _raises(TypeError, "Stream: module must return (out, state) from forward(x, state); "
            "Tagger returned Tensor", stream, torch.randint(5, (2, 3)))  # fmt: skip
    assert stream.state is None and stream.steps == 0
    stream = Stream(rnnkit.GRU(3, 4))
    _raises(
        ValueError,
        "Stream: a layer's step must be 2-D (B, I); got shape (3,)",
        stream.step,
        torch.randn(3),
    )
    _raises(
        ValueError,
        "Stream: a layer's chunk must be 3-D (T, B, I); got shape (5, 3)",
        stream,
        torch.randn(5, 3),
    )
    assert stream.batch_size is None
    stream(torch.randn(5, 2, 3))
    _raises(
        TypeError,
        "Stream: reset samples must be integer batch indices or a (B,) bool "
        "mask; got torch.float32 [0.5]",
        stream.reset,
        [0.5],
    )
    before = stream.state.clone()
    stream.reset([True, False])  # a mask: sample 0 only
    assert stream.state[:, 0].abs().sum() == 0
    torch.testing.assert_close(stream.state[:, 1], before[:, 1])


def test_reset_counts_a_negative_index_from_the_end():
    # As in Python and torch indexing: -1 is the last sample, as its message says.
    torch.manual_seed(0)
    layer = rnnkit.GRU(3, 4)
    x = torch.randn(2, 3)
    streams = [Stream(layer), Stream(layer)]
    for stream, chosen in zip(streams, ([1], [-1]), strict=True):
        stream.step(x)
        stream.reset(chosen)
    assert torch.equal(streams[0].state, streams[1].state)
    assert torch.equal(streams[1].state[:, 1], torch.zeros(1, 4))
    assert not torch.equal(streams[1].state[:, 0], torch.zeros(1, 4))


def _run(stream, x, path):
    """``stream`` fed ``x`` (T, B, I) as one chunk or step by step."""
    if path == "chunk":
        return stream(x)
    return torch.stack([stream.step(x_t) for x_t in x])


@pytest.mark.parametrize("path", ["chunk", "step"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_reset_starts_chosen_samples_from_zeros_whatever_they_held(bad, path):
    # It multiplied the state by a mask: NaN * 0 and inf * 0 are NaN, so a sample whose
    # state had overflowed stayed NaN for ever.
    torch.manual_seed(0)
    layer = rnnkit.LSTM(3, 4, dtype=torch.float64)
    x = torch.randn(6, 3, 3, dtype=torch.float64)
    held = (torch.full((1, 3, 4), bad, dtype=torch.float64),) * 2
    reset, never, fresh = Stream(layer), Stream(layer), Stream(layer)
    for stream in (reset, never):
        _run(stream, x[:2], path)
        stream.state = held
    reset.reset([0, 2])
    for got, kept in zip(reset.state, held, strict=True):
        want = kept.clone()
        want[:, [0, 2]] = 0.0
        torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)
    out, theirs, new = (_run(s, x[2:], path) for s in (reset, never, fresh))
    torch.testing.assert_close(out[:, [0, 2]], new[:, [0, 2]], rtol=0, atol=0)
    torch.testing.assert_close(out[:, 1], theirs[:, 1], rtol=0, atol=0, equal_nan=True)
    assert out[:, 1].isnan().all()
    for got, want in zip(reset.state, fresh.state, strict=True):
        torch.testing.assert_close(got[:, [0, 2]], want[:, [0, 2]], rtol=0, atol=0)


def test_reset_of_an_assigned_state_and_of_no_sample():
    # A state assigned before any chunk failed a bare assert (no batch size yet); an empty
    # list was refused as "got torch.float32 []".
    torch.manual_seed(0)
    layer = rnnkit.GRU(4, 8)
    held = torch.randn(1, 3, 8)
    stream = Stream(layer)
    stream.state = held.clone()
    stream.reset([])
    assert torch.equal(stream.state, held)
    stream.reset([-1])
    want = held.clone()
    want[:, 2] = 0.0
    assert torch.equal(stream.state, want)
    x = torch.randn(3, 4)
    expected, _ = layer(x[None], want)
    torch.testing.assert_close(stream.step(x), expected[0], rtol=0, atol=1e-6)
    Stream(layer).reset([])  # nothing has run: nothing to reset, nothing refused


def test_reset_refuses_samples_that_are_not_indices_or_a_mask():
    stream = Stream(rnnkit.GRU(4, 8))
    expected = "Stream: reset samples must be integer batch indices or a (B,) bool mask; got "
    _raises_whole(TypeError, expected + "str 'a'", stream.reset, "a")  # before any chunk too
    stream(torch.randn(2, 3, 4))
    before = stream.state.clone()
    for samples, given in (("a", "str 'a'"), (b"\x00", "bytes b'\\x00'"), (["a"], "list ['a']"),
                           ({0: 1}, "dict {0: 1}")):  # fmt: skip
        _raises_whole(TypeError, expected + given, stream.reset, samples)
    assert torch.equal(stream.state, before)
    stream.state = torch.zeros(3)
    _raises_whole(ValueError, "Stream: reset of chosen samples needs a state of (L, B, ...) "
                  "tensors; got shape (3,)", stream.reset, [0])  # fmt: skip


@pytest.mark.parametrize(
    ("layer", "state", "message"),
    [
        (rnnkit.GRU(4, 8), torch.zeros(1, 3, 7), "GRU: state h must have shape (1, 3, 8); got "
         "(1, 3, 7)"),
        (rnnkit.GRU(4, 8), torch.zeros(2, 3, 8), "GRU: state h must have shape (1, 3, 8); got "
         "(2, 3, 8)"),
        (rnnkit.GRU(4, 8), torch.zeros(1, 2, 8), "GRU: state h must have shape (1, 3, 8); got "
         "(1, 2, 8)"),
        (rnnkit.LSTM(4, 8), torch.zeros(1, 3, 8), "LSTM: state must be a tuple (h, c); got "
         "Tensor"),
        (rnnkit.GRU(4, 8), "h", "GRU: state must be a tensor h; got str"),
        (rnnkit.GRU(4, 8), torch.zeros(1, 3, 8, dtype=torch.float64), "GRU: state h.dtype must "
         "equal input.dtype; expected torch.float32, got torch.float64"),
    ],
)  # fmt: skip
def test_a_step_checks_an_assigned_state_as_a_chunk_does(layer, state, message):
    # The step split a state of the wrong shape per layer unchecked: an IndexError, or
    # torch's "hidden0 has inconsistent hidden_size".
    for call, x in (("step", torch.randn(3, 4)), ("chunk", torch.randn(1, 3, 4))):
        stream = Stream(layer)
        stream.state = state
        run = stream.step if call == "step" else stream
        with pytest.raises(Exception, match="^" + re.escape(message) + "$") as refused:
            run(x)
        assert isinstance(refused.value, (TypeError, ValueError))
        assert stream.state is state and stream.steps == 0
    stream.state = (torch.zeros(1, 3, 8),) * 2 if isinstance(layer, rnnkit.LSTM) else None
    assert stream.step(torch.randn(3, 4)).shape == (3, 8)  # a right state runs


@pytest.mark.parametrize("path", ["chunk", "step"])
def test_an_assigned_state_of_another_batch_size_runs(path):
    # The batch size of the chunks run before stayed recorded: the next call was refused
    # ("expected 2, got 3") until reset(), though the docs promise an assigned state is
    # checked as the layer checks it.
    torch.manual_seed(0)
    layer = rnnkit.LSTM(4, 8, dtype=torch.float64)
    stream = Stream(layer)
    _run(stream, torch.randn(2, 2, 4, dtype=torch.float64), path)
    held = (torch.randn(1, 3, 8, dtype=torch.float64), torch.randn(1, 3, 8, dtype=torch.float64))
    stream.state = held
    assert stream.batch_size == 3
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    expected, (h, c) = layer(x, held)
    torch.testing.assert_close(_run(stream, x, path), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(stream.state, (h, c), rtol=0, atol=1e-12)
    assert stream.batch_size == 3 and stream.steps == 7
    # Having run, the stream holds its batch size again; an assigned None frees it.
    _raises_whole(ValueError, f"Stream: {path} batch size must equal the running stream's; "
                  "expected 3, got 2 (reset() starts a new stream)", stream if path == "chunk"
                  else stream.step, x[:, :2] if path == "chunk" else x[0, :2])  # fmt: skip
    stream.state = None
    assert stream.batch_size is None
    assert _run(stream, x[:, :2], path).shape == (5, 2, 8)


def test_an_assigned_state_is_checked_by_the_layer_on_a_running_stream():
    # Its batch size is the layer's to check against the chunk, as on a fresh stream.
    stream = Stream(rnnkit.GRU(4, 8))
    stream(torch.randn(1, 2, 4))
    stream.state = torch.zeros(1, 5, 8)
    for run, x in ((stream, torch.randn(1, 3, 4)), (stream.step, torch.randn(3, 4))):
        _raises_whole(ValueError, "GRU: state h must have shape (1, 3, 8); got (1, 5, 8)",
                      run, x)  # fmt: skip
    assert stream.batch_size == 5 and stream.steps == 1
