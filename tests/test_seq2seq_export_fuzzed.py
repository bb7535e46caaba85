"""Seeded cases of a differential fuzz of the encoder-decoder's deployment path.

Five random untrained ``Seq2Seq`` models - every encoder and decoder cell, every attention
kind, a bidirectional and a two-layer encoder, a two-layer decoder, with and without input
feeding - are exported as their two graphs (``rnnkit.export.seq2seq``), and each is run on
seeded batches of 1..4 sources of 1..12 ids whose lengths differ, with padding that holds
zeros or other ids. Each case compares, in float32 to 1e-5:

- the encoder graph's outputs (the memory and the decoder's initial state) with
  ``Seq2Seq.encode`` and ``Seq2Seq.init_state``;
- the decoder-step graph with ``Seq2Seq.step`` along a forced target, from the same state
  at every step, and carrying its own state;
- ``Seq2Seq.step`` step by step with the teacher-forced ``Seq2Seq.forward``;
- greedy decoding over the two graphs (batched, as ``deploy.translate`` does for one text)
  and ``deploy.translate`` for each source with ``rnnkit.seq2seq.decode.greedy``: the same
  tokens, except past a step whose two best log-probabilities lie within float32 noise of
  each other (a tie, which either side may break its own way).

Bad inputs are refused by both sides: eager PyTorch and the graphs' runner.
"""

from __future__ import annotations

import random
import warnings
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from _refusals import raises_exactly
from rnnkit.export import export_onnx
from rnnkit.seq2seq.data import BOS, EOS, PAD, UNK
from rnnkit.seq2seq.decode import _log_probs, greedy
from rnnkit.seq2seq.model import Seq2Seq, Seq2SeqConfig

ort = pytest.importorskip("onnxruntime")
deploy = pytest.importorskip("rnnkit.deploy")

F32 = 1e-5  # relative to 1 + |PyTorch's value|
TIE = 1e-4  # two log-probabilities this close are a tie in float32
SOURCE, TARGET = "abcdefgh", "01234567"

# encoder, layers, bidirectional, decoder, decoder layers, attention, input feeding
MODELS: list[tuple[str, int, bool, str, int, str, bool]] = [
    ("gru", 2, True, "lstm", 1, "general", True),
    ("lstm", 1, False, "gru", 2, "additive", True),
    ("mingru", 1, True, "rnn", 1, "dot", True),
    ("minlstm", 2, False, "minlstm", 1, "none", False),
    ("rnn", 1, True, "mingru", 2, "additive", False),
]
CASES = [(m, seed) for m in range(len(MODELS)) for seed in range(4)]


def build(index: int) -> Seq2Seq:
    encoder, layers, bidirectional, decoder, decoder_layers, attention, feeding = MODELS[index]
    rng = random.Random(index)
    torch.manual_seed(index)
    hidden = rng.randint(2, 4)
    directions = 2 if bidirectional else 1
    config = Seq2SeqConfig(
        src_vocab_size=rng.randint(5, 12), tgt_vocab_size=rng.randint(5, 12),
        embed_size=rng.randint(2, 4), encoder=encoder, encoder_hidden=hidden,
        encoder_layers=layers, bidirectional=bidirectional, decoder=decoder,
        decoder_hidden=directions * hidden if attention == "dot" else rng.randint(2, 6),
        decoder_layers=decoder_layers, attention=attention, input_feeding=feeding,
    )  # fmt: skip
    model = Seq2Seq(config).eval()
    with torch.no_grad():
        for p in model.parameters():  # sharper attention and more decisive logits
            p.mul_(2.0)
        model.head.bias[EOS] -= 2.0  # random weights end at once otherwise
    model.rnnkit_config = SimpleNamespace(  # what rnnkit.load attaches: the vocabularies
        derived={
            "source_chars": SOURCE[: config.src_vocab_size - 4],
            "target_chars": TARGET[: config.tgt_vocab_size - 4],
            "max_target_length": 4,
        }
    )
    return model


class Exported:
    """A model, its two graphs (bytes) and their sessions and metadata."""

    def __init__(self, model: Seq2Seq) -> None:
        self.model = model
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.encoder = export_onnx(model, mode="sequence").SerializeToString()
            self.decoder = export_onnx(model, mode="step").SerializeToString()
        self.enc, self.enc_meta = deploy._open(self.encoder, "sequence", "test")
        self.dec, self.dec_meta = deploy._open(self.decoder, "step", "test")
        self.states: list[str] = self.dec_meta["decoder_states"]

    def encode(self, src: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
        feed = {"x": src, "lengths": lengths}
        for s in self.enc_meta["states"]:
            feed[s["name"]] = np.zeros((s["shape"][0], src.shape[1], s["shape"][2]), np.float32)
        names = self.enc_meta["outputs"]
        return dict(zip(names, self.enc.run(names, feed), strict=True))

    def step(self, y: np.ndarray, state: dict[str, np.ndarray], memory: dict[str, np.ndarray]):
        inputs = {"y_prev": y, **state, **{k: memory[k] for k in ("values", "keys", "mask")}}
        inputs["summary"] = memory["summary"]
        names = self.dec_meta["outputs"]
        out = dict(zip(names, self.dec.run(names, inputs), strict=True))
        new = {"feed": out["feed_out"], **{n: out[f"{n}_out"] for n in self.states}}
        return out["logits"], new, out["weights"]


_CACHE: dict[int, Exported] = {}


def exported(index: int) -> Exported:
    if index not in _CACHE:
        _CACHE[index] = Exported(build(index))
    return _CACHE[index]


def source_batch(model: Seq2Seq, rng: random.Random) -> tuple[torch.Tensor, torch.Tensor]:
    """(S, B) ids of the source characters, lengths 1..S that differ, padding of zeros or of
    other ids (which nothing may read)."""
    B, S = rng.randint(1, 4), rng.randint(1, 12)
    lengths = [rng.randint(1, S) for _ in range(B)]
    lengths[rng.randrange(B)] = S
    V = model.config.src_vocab_size
    src = torch.tensor([[rng.randint(4, V - 1) for _ in range(B)] for _ in range(S)])
    garbage = rng.random() < 0.5
    for b, n in enumerate(lengths):
        for t in range(n, S):
            src[t, b] = rng.randint(0, V - 1) if garbage else PAD
    return src, torch.tensor(lengths)


def eager_state(state: Any, names: list[str]) -> dict[str, np.ndarray]:
    layers = {n: torch.stack([layer[j] for layer in state.layers]) for j, n in enumerate(names)}
    return {"feed": state.feed.numpy(), **{n: t.numpy() for n, t in layers.items()}}


def assert_close(got: np.ndarray, want: Any, what: str, tol: float = F32) -> None:
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    err = np.abs(got.astype(np.float64) - want) / (1.0 + np.abs(want))
    assert err.max(initial=0.0) <= tol, (what, float(err.max()))


def graph_greedy(
    e: Exported, src: np.ndarray, lengths: np.ndarray, max_len: int
) -> list[list[int]]:
    """Greedy decoding over the two graphs for a batch, as deploy.translate does for one."""
    memory = e.encode(src, lengths)
    state = {"feed": memory["feed"], **{n: memory[n] for n in e.states}}
    B = src.shape[1]
    y = np.full(B, BOS, np.int64)
    rows: list[list[int]] = [[] for _ in range(B)]
    done = np.zeros(B, bool)
    for _ in range(max_len):
        logits, state, _ = e.step(y, state, memory)
        logits[:, [PAD, BOS]] = -np.inf
        y = logits.argmax(-1)
        for b in np.flatnonzero(~done):
            if y[b] != EOS:
                rows[b].append(int(y[b]))
        done |= y == EOS
        if done.all():
            break
    return rows


def margins(model: Seq2Seq, src: torch.Tensor, lengths: torch.Tensor, max_len: int) -> np.ndarray:
    """(B, steps) gap between the two best log-probabilities along greedy's own path."""
    out = []
    with torch.no_grad():
        memory = model.encode(src, lengths)
        state = model.init_state(memory)
        y = torch.full((src.size(1),), BOS)
        for _ in range(max_len):
            logits, state, _ = model.step(y, state, memory)
            logp = _log_probs(logits)
            top = logp.topk(2, dim=-1).values
            out.append((top[:, 0] - top[:, 1]).numpy())
            y = logp.argmax(-1)
    return np.stack(out, 1)


def same_or_tie(got: list[int], want: list[int], gaps: np.ndarray) -> bool:
    """Equal tokens, or a tie (within float32 noise) at or before the first difference."""
    if got == want:
        return True
    first = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
    first = min(len(got), len(want)) if first is None else first
    return bool(gaps[: first + 1].min() < TIE)


@pytest.mark.parametrize(("index", "seed"), CASES)
def test_the_graphs_compute_what_the_model_does(index: int, seed: int) -> None:
    e = exported(index)
    model = e.model
    rng = random.Random(1000 * index + seed)
    src, lengths = source_batch(model, rng)
    B, S = src.size(1), src.size(0)
    with torch.no_grad():
        memory = model.encode(src, lengths)
        state = model.init_state(memory)

    # The encoder graph: the memory and the decoder's initial state.
    got = e.encode(src.numpy(), lengths.numpy())
    assert np.array_equal(got["mask"], memory.mask.numpy())
    for name, want in [("values", memory.values), ("keys", memory.keys),
                       ("summary", memory.summary)]:  # fmt: skip
        assert_close(got[name], want, name)
    for name, want in eager_state(state, e.states).items():
        assert_close(got[name], want, name)

    # The decoder step along a forced target: from the model's state at every step, and
    # with the graph carrying its own state.
    T = rng.randint(1, 8)
    V = model.config.tgt_vocab_size
    tgt = torch.tensor(
        [[BOS] * B] + [[rng.randint(0, V - 1) for _ in range(B)] for _ in range(T - 1)]
    )
    carried = {k: got[k] for k in ["feed", *e.states]}
    steps = []
    for t in range(T):
        before = eager_state(state, e.states)
        with torch.no_grad():
            logits, state, weights = model.step(tgt[t], state, memory)
        steps.append(logits)
        after = eager_state(state, e.states)
        w = torch.zeros(B, S) if weights is None else weights
        g_logits, g_state, g_weights = e.step(tgt[t].numpy(), before, got)
        assert_close(g_logits, logits, f"logits at step {t}")
        assert_close(g_weights, w, f"weights at step {t}")
        for name, want in after.items():
            assert_close(g_state[name], want, f"{name} at step {t}")
        c_logits, carried, _ = e.step(tgt[t].numpy(), carried, got)
        assert_close(c_logits, logits, f"carried logits at step {t}", tol=1e-4)

    # Step by step is the teacher-forced pass.
    with torch.no_grad():
        forced = model(src, lengths, tgt)
    torch.testing.assert_close(forced, torch.stack(steps), rtol=0, atol=0)

    # Greedy decoding: batched over the graphs, and deploy.translate one text at a time.
    max_len = rng.randint(1, 12)
    with torch.no_grad():
        want = [d.tokens for d in greedy(model, src, lengths, max_len)]
    gaps = margins(model, src, lengths, max_len)
    rows = graph_greedy(e, src.numpy(), lengths.numpy(), max_len)
    vocab = e.enc_meta["src_vocab"]
    target = e.enc_meta["tgt_vocab"]
    for b in range(B):
        assert same_or_tie(rows[b], want[b], gaps[b]), (b, rows[b], want[b])
        text = "".join(vocab[int(i)] for i in src[: int(lengths[b]), b])
        out = deploy.translate(e.encoder, e.decoder, text, max_length=max_len)
        expected = "".join(target[i] for i in want[b] if i > UNK)
        if out != expected:
            tokens = [target.index(c) for c in out]
            assert same_or_tie(tokens, want[b], gaps[b]), (b, out, expected)


def test_the_cases_decode_some_tokens() -> None:
    """The greedy comparisons above see outputs, not only an immediate end."""
    lengths = []
    for index in range(len(MODELS)):
        model = exported(index).model
        src, lens = source_batch(model, random.Random(1000 * index))
        with torch.no_grad():
            lengths += [len(d.tokens) for d in greedy(model, src, lens, 12)]
    assert sum(n > 0 for n in lengths) >= len(lengths) // 2, lengths


# ---- bad inputs: both sides refuse ------------------------------------------------------


def test_an_empty_source_is_refused_by_both() -> None:
    e = exported(0)
    src = torch.tensor([[4, 5], [5, 4]])
    raises_exactly(
        ValueError,
        "Seq2Seq: src_lengths must have B = 2 entries, each >= 1; got [2, 0]",
        e.model.encode,
        src,
        torch.tensor([2, 0]),
    )
    raises_exactly(
        ValueError,
        "run_sequence: an encoder-decoder's source lengths must lie in [1, T] = [1, 2] (an "
        "empty source has nothing to attend to); got [2, 0]",
        deploy.run_sequence,
        e.encoder,
        src.numpy(),
        np.array([2, 0]),
    )
    raises_exactly(
        ValueError,
        "Seq2Seq: src must have S >= 1 steps; got shape (0, 1)",
        e.model.encode,
        torch.zeros(0, 1, dtype=torch.long),
        torch.tensor([1]),
    )
    raises_exactly(
        ValueError,
        "run_sequence: x has T = 0 time steps; expected T >= 1; got shape (0, 1)",
        deploy.run_sequence,
        e.encoder,
        np.zeros((0, 1), np.int64),
    )
    raises_exactly(
        ValueError,
        "translate: text must be a non-empty string; got ''",
        deploy.translate,
        e.encoder,
        e.decoder,
        "",
    )


def test_a_source_run_alone_is_read_by_the_runner_as_by_the_model() -> None:
    e = exported(1)
    src, lengths = torch.tensor([[4, 5], [5, 4], [0, 5]]), torch.tensor([2, 3])
    values, state = deploy.run_sequence(e.encoder, src.numpy(), lengths.numpy())
    with torch.no_grad():
        memory = e.model.encode(src, lengths)
    assert_close(values, memory.values, "values")
    assert_close(state[2], memory.summary, "summary")  # keys, mask, summary, ...


@pytest.mark.parametrize("bad", [-1, "vocab"])
def test_ids_outside_the_vocabulary_are_refused_by_both(bad: Any) -> None:
    e = exported(2)
    V = e.model.config.src_vocab_size
    value = V if bad == "vocab" else bad
    src = torch.tensor([[4], [value]])
    raises_exactly(
        ValueError,
        f"Seq2Seq: src must hold ids in [0, {V}); got values in [{min(4, value)}, {max(4, value)}]",
        e.model.encode,
        src,
        torch.tensor([2]),
    )
    raises_exactly(
        ValueError,
        f"run_sequence: x must hold ids in [0, {V}); got values in [{min(4, value)}, "
        f"{max(4, value)}]",
        deploy.run_sequence,
        e.encoder,
        src.numpy(),
        np.array([2]),
    )
    T = e.model.config.tgt_vocab_size
    raises_exactly(
        ValueError,
        f"Seq2Seq: tgt_in must hold ids in [0, {T}); got values in [1, {T}]",
        e.model,
        torch.tensor([[4]]),
        torch.tensor([1]),
        torch.tensor([[BOS], [T]]),
    )


def test_ids_of_another_dtype_are_refused_by_both() -> None:
    e = exported(2)
    raises_exactly(
        TypeError,
        "Seq2Seq: src must be an integer tensor (S, B) of ids; got torch.float32 tensor of "
        "shape (2, 1)",
        e.model.encode,
        torch.tensor([[4.0], [5.0]]),
        torch.tensor([2]),
    )
    raises_exactly(
        TypeError,
        "Seq2Seq: tgt_in must be an integer tensor (T, B) of ids; got list",
        e.model,
        torch.tensor([[4]]),
        torch.tensor([1]),
        [[BOS]],
    )
    raises_exactly(
        ValueError,
        "run_sequence: x must be an int64 array (T, B) of ids; got float32 array of shape (2, 1)",
        deploy.run_sequence,
        e.encoder,
        np.array([[4.0], [5.0]], np.float32),
        np.array([2]),
    )


def test_lengths_beyond_the_source_are_refused_by_both() -> None:
    e = exported(3)
    src = np.array([[4], [5]])
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, T\] = \[0, 2\]; got"):
        e.model.encode(torch.from_numpy(src), torch.tensor([3]))
    raises_exactly(
        ValueError,
        "run_sequence: lengths must lie in [0, T] = [0, 2]; got [3]",
        deploy.run_sequence,
        e.encoder,
        src,
        np.array([3]),
    )


def test_a_decoder_step_is_no_stream_and_the_graphs_go_in_order() -> None:
    e = exported(4)
    raises_exactly(
        ValueError,
        "OnnxStream: expected the step graph of a layer or a task model; got an "
        "encoder-decoder's decoder step (decode with translate(encoder, decoder, text))",
        deploy.OnnxStream,
        e.decoder,
    )
    raises_exactly(
        ValueError,
        "generate: expected a character language model's graph (model 'char_lm'); got model "
        "'seq2seq'",
        deploy.generate,
        e.decoder,
    )
    # Given the other way round: named as the wrong part, not sent to OnnxStream.
    raises_exactly(
        ValueError,
        "translate: expected an encoder-decoder's encoder graph; got a seq2seq step graph",
        deploy.translate,
        e.decoder,
        e.encoder,
        "ab",
    )
    raises_exactly(
        ValueError,
        "translate: expected an encoder-decoder's decoder graph; got a seq2seq sequence graph",
        deploy.translate,
        e.encoder,
        e.encoder,
        "ab",
    )
