"""Decoders and samplers against exact references computed by enumeration.

Seq2seq: every output of a tiny float64 model up to ``max_len`` is scored by the
teacher-forced pass (an output ends at EOS, counted in |Y|, or is cut at ``max_len``), so
a beam wide enough to keep every hypothesis must return the best of them, under the
documented GNMT penalty ((5 + |Y|) / 6)^α, and a narrower one some output with the score
the enumeration gives it. Sampling: the exact probability of every short output under a
temperature (and top_k for the language model) is computed from the model's logits, and
seeded draws are compared with it by a chi-square test; both sampling loops of
``CharLM.sample`` (C++ and Python) must draw the very same text from one seed.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.data.vocab import UNK_ID, Vocabulary
from rnnkit.kernels import fused
from rnnkit.models._sampling import FusedLoop, pick_index
from rnnkit.models.lm import CharLM, CharLMConfig
from rnnkit.seq2seq import Seq2Seq, Seq2SeqConfig, beam_search, greedy, sample
from rnnkit.seq2seq.data import BOS, EOS, PAD
from rnnkit.seq2seq.decode import length_penalty

needs_kernel = pytest.mark.skipif(not fused.available(), reason="no fused CPU kernels here")

V_TGT = 8  # PAD, BOS, EOS, UNK and 4 characters: 6 outputs, 5 of them go on
OUTPUTS = [t for t in range(V_TGT) if t not in (PAD, BOS)]
MAX_LEN = 3
Output = tuple[tuple[int, ...], bool]  # the tokens without EOS, and whether EOS ended them


# ---- references -----------------------------------------------------------------------


def chi_square_p(counts: Counter, probs: dict, n: int) -> float:
    """The p-value of a chi-square test of ``counts`` (n draws) against ``probs``. An
    outcome of probability 0 must never be drawn; outcomes expected fewer than 5 times
    are pooled into one cell, so that the chi-square law holds."""
    assert set(counts) <= {k for k, p in probs.items() if p > 0}, set(counts) - set(probs)
    assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-12)
    cells, rest_obs, rest_exp = [], 0.0, 0.0
    for k, p in probs.items():
        if n * p >= 5:
            cells.append((counts[k], n * p))
        else:
            rest_obs, rest_exp = rest_obs + counts[k], rest_exp + n * p
    if rest_exp > 0:
        cells.append((rest_obs, rest_exp))
    stat = sum((o - e) ** 2 / e for o, e in cells)
    df = len(cells) - 1
    half = torch.tensor([df / 2.0, stat / 2.0], dtype=torch.float64)
    return float(torch.special.gammaincc(half[0], half[1]))  # the chi-square upper tail


def tempered(logits: Tensor, ruled_out: list[int], temperature: float, top_k: int | None = None):
    """The exact sampling distribution: softmax(logits / T) over the allowed tokens, with
    top_k keeping those at least as large as the k-th largest allowed logit."""
    z = logits.double().clone()
    z[ruled_out] = float("-inf")
    if top_k is not None:
        kth = z.sort(descending=True).values[top_k - 1]
        z[z < kth] = float("-inf")
    return torch.softmax(z / temperature, dim=-1)


# ---- a tiny seq2seq model and all its outputs ---------------------------------------------


# Two models whose best outputs differ in kind: under the alphas tested, the first's end
# after 0, 1 or 2 tokens, the second's are empty or cut at max_len.
MODELS = [(11, 3.0, 0.0), (3, 3.0, 0.5)]


def seq2seq_model(seed: int = 11, scale: float = 3.0, eos: float = 0.0) -> Seq2Seq:
    torch.manual_seed(seed)
    config = Seq2SeqConfig(
        src_vocab_size=8,
        tgt_vocab_size=V_TGT,
        embed_size=4,
        encoder="gru",
        encoder_hidden=3,
        decoder="lstm",
        decoder_hidden=6,
        attention="general",
    )
    model = Seq2Seq(config).double().eval()
    with torch.no_grad():  # larger weights: peaked, prefix-dependent distributions
        for p in model.parameters():
            p.mul_(scale)
        model.head.bias[EOS] += eos  # outputs that end compete with those cut
    return model


def sources() -> tuple[Tensor, Tensor]:
    src = torch.tensor([[4, 7], [5, 6], [6, PAD], [7, PAD]])  # (S, B), lengths 4 and 2
    return src, torch.tensor([4, 2])


def all_outputs(max_len: int) -> list[Output]:
    """Every output the decoders can return: ended by EOS within max_len, or cut there."""
    words = [t for t in OUTPUTS if t != EOS]
    return [
        (w, n < max_len)  # max_len tokens without EOS: cut, unfinished
        for n in range(max_len + 1)
        for w in itertools.product(words, repeat=n)
    ]


def teacher_forced_logits(model: Seq2Seq, src: Tensor, lengths: Tensor, outs: list[Output], b: int):
    """(T, N, V) logits of the teacher-forced pass over every output of input b."""
    seqs = [[*w, EOS] if done else list(w) for w, done in outs]
    T = max(1, max(len(s) for s in seqs))
    tgt_in = torch.full((T, len(seqs)), PAD)
    tgt_in[0] = BOS
    for j, s in enumerate(seqs):
        tgt_in[1 : len(s), j] = torch.tensor(s[:-1], dtype=torch.long)
    n = len(seqs)
    one = src[: int(lengths[b]), b : b + 1].expand(-1, n)
    with torch.no_grad():
        return model(one, lengths[b : b + 1].expand(n), tgt_in), seqs


def log_probs(model: Seq2Seq, b: int, max_len: int = MAX_LEN) -> dict[Output, float]:
    """log p(output | input b) of every output, summed over its tokens (EOS included)."""
    src, lengths = sources()
    outs = all_outputs(max_len)
    logits, seqs = teacher_forced_logits(model, src, lengths, outs, b)
    logp = F.log_softmax(logits, dim=-1)
    return {
        o: float(sum(logp[t, j, tok] for t, tok in enumerate(s)))
        for j, (o, s) in enumerate(zip(outs, seqs, strict=True))
    }


def penalised(outputs: dict[Output, float], alpha: float) -> dict[Output, float]:
    """The documented final score: log p / ((5 + |Y|) / 6)^α, |Y| counting EOS."""
    return {(w, done): lp / ((5 + len(w) + done) / 6) ** alpha for (w, done), lp in outputs.items()}


def test_the_enumeration_holds_every_output():
    # Outputs that end and those cut at max_len hold all the probability there is once
    # padding and begin-of-sequence (never output) are taken out at each step.
    for args in MODELS:
        model = seq2seq_model(*args)
        for b in range(2):
            assert len(log_probs(model, b)) == sum(5**n for n in range(MAX_LEN + 1))
            total = sum(sampling_probs(model, b, 1.0, MAX_LEN).values())
            assert total == pytest.approx(1.0, abs=1e-12)


# ---- beam search ------------------------------------------------------------------------


ALPHAS = [0.0, 0.6, 1.0, 3.0]


def test_length_penalty_is_gnmts():
    length = torch.tensor([1.0, 3.0, 10.0], dtype=torch.float64)
    for alpha in ALPHAS:
        want = torch.tensor([((5 + n) / 6) ** alpha for n in (1, 3, 10)], dtype=torch.float64)
        torch.testing.assert_close(length_penalty(length, alpha), want, rtol=0, atol=1e-15)


@pytest.mark.parametrize("args", MODELS)
@pytest.mark.parametrize("alpha", ALPHAS)
def test_a_wide_beam_returns_the_exhaustive_argmax(args, alpha):
    model = seq2seq_model(*args)
    src, lengths = sources()
    # A beam as wide as the number of hypotheses there are never drops one.
    width = len(all_outputs(MAX_LEN))
    found = beam_search(model, src, lengths, MAX_LEN, beam=width, alpha=alpha)
    for b, d in enumerate(found):
        scores = penalised(log_probs(model, b), alpha)
        ranked = sorted(scores.items(), key=lambda kv: kv[1], reverse=True)
        (best, top), (_, second) = ranked[0], ranked[1]
        assert top - second > 1e-6  # one clear best output: the test is well posed
        assert (tuple(d.tokens), d.finished) == best
        assert d.score == pytest.approx(top, abs=1e-9)


def test_the_exhaustive_argmax_moves_with_alpha():
    # The cases above are not all one output: the penalty decides between outputs that
    # end after 0, 1 or 2 tokens or are cut, so its form and |Y| (EOS counted) matter.
    kinds = set()
    for args in MODELS:
        model = seq2seq_model(*args)
        for alpha, b in itertools.product(ALPHAS, range(2)):
            scores = penalised(log_probs(model, b), alpha)
            w, done = max(scores, key=scores.__getitem__)
            kinds.add((len(w), done))
    assert kinds == {(0, True), (1, True), (2, True), (MAX_LEN, False)}


@pytest.mark.parametrize("beam", [1, 2, 3, 5])
@pytest.mark.parametrize("alpha", [0.0, 0.6, 3.0])
def test_a_narrow_beam_returns_an_output_scored_as_the_enumeration_scores_it(beam, alpha):
    model = seq2seq_model()
    src, lengths = sources()
    for b, d in enumerate(beam_search(model, src, lengths, MAX_LEN, beam=beam, alpha=alpha)):
        scores = penalised(log_probs(model, b), alpha)
        key = (tuple(d.tokens), d.finished)
        assert key in scores
        assert d.score == pytest.approx(scores[key], abs=1e-9)


def stepwise_argmax(model: Seq2Seq, b: int, max_len: int) -> tuple[Output, float]:
    """Greedy by definition: the likeliest output token after each prefix, read off the
    teacher-forced pass over that prefix."""
    src, lengths = sources()
    prefix: list[int] = []
    total = 0.0
    while len(prefix) < max_len:
        tgt_in = torch.tensor([BOS, *prefix])[:, None]
        with torch.no_grad():
            logits = model(src[: int(lengths[b]), b : b + 1], lengths[b : b + 1], tgt_in)
        logp = F.log_softmax(logits[-1, 0], dim=-1)
        allowed = logp.clone()
        allowed[[PAD, BOS]] = float("-inf")
        tok = int(allowed.argmax())
        total += float(logp[tok])
        if tok == EOS:
            return (tuple(prefix), True), total
        prefix.append(tok)
    return (tuple(prefix), False), total


@pytest.mark.parametrize("max_len", [1, 3, 5])
def test_greedy_is_the_stepwise_argmax_and_beam_one(max_len):
    model = seq2seq_model()
    src, lengths = sources()
    got = greedy(model, src, lengths, max_len)
    one = beam_search(model, src, lengths, max_len, beam=1, alpha=0.0)
    for b in range(2):
        want, score = stepwise_argmax(model, b, max_len)
        assert (tuple(got[b].tokens), got[b].finished) == want
        assert got[b].score == pytest.approx(score, abs=1e-9)
        assert (one[b].tokens, one[b].finished) == (got[b].tokens, got[b].finished)
        assert one[b].score == pytest.approx(score, abs=1e-9)


def tied_model() -> Seq2Seq:
    """Logits that are the head's bias whatever the input: UNK and two characters tie."""
    model = seq2seq_model()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([0.0, 0.0, -1.0, 1.0, 1.0, 1.0, 0.5, -2.0]))
    return model


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_one_is_greedy_on_ties(alpha):
    # Greedy takes the first of equal largest (argmax); beam search took any of them
    # (topk's order), so beam 1 was not greedy where logits tie.
    model = tied_model()
    src, lengths = sources()
    want = [[3, 3, 3, 3], [3, 3, 3, 3]]  # UNK, the smallest of the tied ids, every step
    assert [d.tokens for d in greedy(model, src, lengths, 4)] == want
    for beam in (1, 2, 3):
        got = beam_search(model, src, lengths, 4, beam=beam, alpha=alpha)
        assert [d.tokens for d in got] == want, beam


# ---- seq2seq sampling ---------------------------------------------------------------------


def sampling_probs(model: Seq2Seq, b: int, temperature: float, max_len: int) -> dict:
    """The exact probability that ``sample`` returns each output of input b."""
    src, lengths = sources()
    outs = all_outputs(max_len)
    logits, seqs = teacher_forced_logits(model, src, lengths, outs, b)
    probs = {}
    for j, (o, s) in enumerate(zip(outs, seqs, strict=True)):
        p = 1.0
        for t, tok in enumerate(s):
            p *= float(tempered(logits[t, j], [PAD, BOS], temperature)[tok])
        probs[o] = p
    return probs


def many(src: Tensor, lengths: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """n copies of each input, as one batch: n independent draws per call."""
    return src.repeat_interleave(n, dim=1), lengths.repeat_interleave(n)


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_seq2seq_sampling_follows_the_tempered_distribution(temperature):
    model = seq2seq_model()
    n, max_len = 20_000, 2
    src, lengths = many(*sources(), n)
    g = torch.Generator().manual_seed(7)
    drawn = sample(model, src, lengths, max_len, temperature, g)
    for b in range(2):
        counts = Counter((tuple(d.tokens), d.finished) for d in drawn[b * n : (b + 1) * n])
        probs = sampling_probs(model, b, temperature, max_len)
        assert chi_square_p(counts, probs, n) > 1e-3, (b, counts, probs)


def test_a_sampled_output_is_scored_by_the_model_whatever_the_temperature():
    # The score is the model's log-probability, as greedy's and beam search's (α = 0):
    # it was that of the tempered softmax, -inf for a cold draw of greedy's own output.
    model = seq2seq_model()
    src, lengths = many(*sources(), 50)
    for temperature in (0.3, 1.0, 2.5, 1e-300):
        drawn = sample(model, src, lengths, MAX_LEN, temperature, torch.Generator().manual_seed(0))
        for b in range(2):
            scores = log_probs(model, b)
            for d in drawn[b * 50 : (b + 1) * 50]:
                assert d.score == pytest.approx(scores[(tuple(d.tokens), d.finished)], abs=1e-9)


def test_cold_sampling_is_greedy_and_ties_are_drawn_evenly():
    model = seq2seq_model()
    src, lengths = sources()
    want = greedy(model, src, lengths, 5)
    cold = sample(model, src, lengths, 5, 1e-300, torch.Generator().manual_seed(0))
    assert [(d.tokens, d.finished, d.score) for d in cold] == [
        (d.tokens, d.finished, d.score) for d in want
    ]
    # Three outputs tie at the top: a cold draw takes each a third of the time.
    n = 6000
    src, lengths = many(src, lengths, n // 2)
    drawn = sample(tied_model(), src, lengths, 1, 1e-300, torch.Generator().manual_seed(1))
    counts = Counter(d.tokens[0] for d in drawn)
    assert chi_square_p(counts, {3: 1 / 3, 4: 1 / 3, 5: 1 / 3}, n) > 1e-3, counts


def test_sample_refuses_an_infinite_temperature():
    model = seq2seq_model()
    src, lengths = sources()
    message = "sample: temperature must be finite; got inf"
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        sample(model, src, lengths, 3, float("inf"))


# ---- the character language model -------------------------------------------------------


LM_PROMPT = "ab"


def lm(scale: float = 2.0) -> CharLM:
    torch.manual_seed(5)
    vocab = Vocabulary.from_text("abcd")  # 4 characters and the unknown class
    config = CharLMConfig(
        vocab_size=len(vocab), cell="gru", num_layers=1, hidden_size=6, embed_size=4
    )
    model = CharLM(config, vocab).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model


@contextmanager
def python_loop() -> Iterator[None]:
    """Within it, CharLM.sample takes its Python loop (one Stream step per character)."""
    saved = FusedLoop.for_model
    FusedLoop.for_model = staticmethod(lambda model: None)  # type: ignore[method-assign]
    try:
        yield
    finally:
        FusedLoop.for_model = saved  # type: ignore[method-assign]


def draws(model: CharLM, n: int, length: int, *, python: bool, seed: int = 0, **kw) -> list[str]:
    """n texts of ``length`` characters after the prompt, from one seeded generator."""
    g = torch.Generator().manual_seed(seed)
    with python_loop() if python else nullcontext():
        return ["".join(model.sample(LM_PROMPT, length, generator=g, **kw)) for _ in range(n)]


def lm_probs(model: CharLM, temperature: float, top_k: int | None) -> dict[str, float]:
    """The exact probability of each two characters after the prompt."""
    chars = model.vocab.chars
    probs = {}
    with torch.no_grad():
        first = model(model.vocab.encode(LM_PROMPT)[:, None])[0][-1, 0]
        p1 = tempered(first, [UNK_ID], temperature, top_k)
        for a in chars:
            second = model(model.vocab.encode(LM_PROMPT + a)[:, None])[0][-1, 0]
            p2 = tempered(second, [UNK_ID], temperature, top_k)
            for c in chars:
                probs[a + c] = float(p1[model.vocab.encode(a)[0]] * p2[model.vocab.encode(c)[0]])
    return probs


@needs_kernel
@pytest.mark.parametrize("temperature,top_k", [(1.0, None), (0.6, None), (1.0, 2), (1.5, 3)])
def test_both_lm_loops_draw_one_text_that_follows_the_exact_distribution(temperature, top_k):
    model = lm()
    assert FusedLoop.for_model(model) is not None
    n = 2500
    probs = lm_probs(model, temperature, top_k)
    texts = {}
    for python in (False, True):
        texts[python] = draws(model, n, 2, python=python, temperature=temperature, top_k=top_k)
        counts = Counter(texts[python])
        assert chi_square_p(counts, probs, n) > 1e-3, (python, counts, probs)
        if top_k is not None:  # what top_k leaves out was likely enough to show
            assert set(counts) == {k for k, p in probs.items() if p > 0}
            assert len({t[0] for t in counts}) == top_k
    assert texts[False] == texts[True]  # the docs promise one text per seed, either loop


def lm_with_constant_logits(bias: list[float]) -> CharLM:
    """Logits that are the head's bias whatever was read: every character an iid draw."""
    model = lm()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor(bias, dtype=torch.float64))
    return model


@needs_kernel
@pytest.mark.parametrize("python", [False, True])
@pytest.mark.parametrize("temperature,top_k", [(0.7, None), (1.0, 1), (1.0, 2), (2.0, 3)])
def test_lm_ties_at_the_k_th_logit_are_all_kept(python, temperature, top_k):
    # top_k keeps every character whose logit is at least the k-th largest, as documented:
    # with 'b' and 'c' tied first, top_k=1 draws both, and top_k=3 keeps 'a' and 'd' (tied
    # third). The unknown class is never drawn, however large its logit.
    bias = [9.0, 0.3, 1.0, 1.0, 0.3]  # unknown, a, b, c, d
    model = lm_with_constant_logits(bias)
    n = 8000
    text = draws(model, 1, n, python=python, seed=3, temperature=temperature, top_k=top_k)[0]
    kept = {1: {"b", "c"}, 2: {"b", "c"}, 3: {"a", "b", "c", "d"}, None: {"a", "b", "c", "d"}}
    logits = torch.tensor(bias, dtype=torch.float64)
    p = tempered(logits, [UNK_ID], temperature, top_k)
    probs = {ch: float(p[i + 1]) for i, ch in enumerate("abcd")}
    assert {ch for ch, q in probs.items() if q > 0} == kept[top_k]
    assert chi_square_p(Counter(text), probs, n) > 1e-3, (Counter(text), probs)


@needs_kernel
@pytest.mark.parametrize("python", [False, True])
def test_lm_cold_sampling_and_top_k_one_are_greedy(python):
    model = lm()
    n = 150  # more than two blocks of uniforms
    greedy_text = draws(model, 1, n, python=python, temperature=0.0)[0]
    with torch.no_grad():  # greedy by definition: the argmax after each prefix
        want = ""
        for _ in range(n):
            logits = model(model.vocab.encode(LM_PROMPT + want)[:, None])[0][-1, 0].clone()
            logits[UNK_ID] = float("-inf")
            want += model.vocab.decode([int(logits.argmax())])
    assert greedy_text == want
    assert draws(model, 1, n, python=python, temperature=1e-300)[0] == want
    assert draws(model, 1, n, python=python, temperature=1.3, top_k=1, seed=4)[0] == want
    # On a tie at the top, temperature 0 takes the first tied character.
    tied = lm_with_constant_logits([9.0, 0.3, 1.0, 1.0, 0.3])
    assert draws(tied, 1, 20, python=python, temperature=0.0)[0] == "b" * 20


def test_pick_index_follows_the_exact_distribution():
    # The rule both loops follow, with the uniforms they read: many draws in little time.
    logits = torch.tensor([2.0, 0.4, -0.3, 1.1, 0.9, -1.0], dtype=torch.float64)
    u = torch.rand(20_000, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    for temperature, top_k in [(1.0, None), (0.5, None), (2.0, 3), (0.8, 2)]:
        counts = Counter(pick_index(logits, x, temperature, top_k) for x in u.tolist())
        p = tempered(logits, [UNK_ID], temperature, top_k)
        probs = {i: float(p[i]) for i in range(len(logits))}
        assert chi_square_p(counts, probs, len(u)) > 1e-3, (temperature, top_k, counts, probs)
