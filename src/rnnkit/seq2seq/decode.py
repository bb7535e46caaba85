"""Decoding: greedy, batched beam search, and sampling with a temperature.

Every decoder carries the decoder state from step to step (:meth:`Seq2Seq.step`): a new
token costs one step, never a re-run of the prefix. Beam search keeps its K hypotheses per
input as rows of one batch of B*K and reorders the state rows after each step. The
decoders put the model in eval mode (no dropout) and compute no gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Real

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit import _checks
from rnnkit.seq2seq.data import BOS, EOS, PAD
from rnnkit.seq2seq.model import Seq2Seq


@dataclass
class Decoded:
    """One decoded output per input.

    tokens: the ids up to and without EOS; finished: whether EOS was produced within
    ``max_len`` steps; score: the sum of the model's log-probabilities (EOS included; at
    temperature 1 for a sample; for beam search divided by the length penalty);
    attention: (steps, S) weights, one row per produced token including EOS, or None
    without attention.
    """

    tokens: list[int]
    finished: bool
    score: float
    attention: Tensor | None


def _log_probs(logits: Tensor) -> Tensor:
    """log p(y_t | y_<t, x) with padding and begin-of-sequence ruled out: they are never
    outputs. They are set to -inf after the softmax, so the other log-probabilities stay
    those of the model (and of its teacher-forced pass)."""
    logp = F.log_softmax(logits, dim=-1)
    logp[:, [PAD, BOS]] = float("-inf")
    return logp


def _unpack(
    tokens: Tensor, logp: Tensor, weights: list[Tensor] | None, src_lengths: Tensor
) -> list[Decoded]:
    """Cut (B, T) token rows at their first EOS."""
    out = []
    for b in range(tokens.size(0)):
        row = tokens[b].tolist()
        finished = EOS in row
        n = row.index(EOS) + 1 if finished else len(row)
        attn = None
        if weights is not None:
            attn = torch.stack([w[b] for w in weights[:n]])[:, : int(src_lengths[b])]
        out.append(Decoded(row[: n - finished], finished, float(logp[b, :n].sum()), attn))
    return out


def _decode_one_by_one(
    model: Seq2Seq,
    src: Tensor,
    src_lengths: Tensor,
    max_len: int,
    pick: Callable[[Tensor], Tensor],
) -> list[Decoded]:
    """One token per step for every input, chosen by ``pick`` from the (B, V) logits. The
    score is the model's log-probability of the tokens, whatever rule picked them."""
    model.eval()
    memory = model.encode(src, src_lengths)
    state = model.init_state(memory)
    B = src.size(1)
    y = torch.full((B,), BOS, dtype=torch.long, device=src.device)
    done = torch.zeros(B, dtype=torch.bool, device=src.device)
    tokens, logps, weights = [], [], []
    for _ in range(max_len):
        logits, state, w = model.step(y, state, memory)
        logp = _log_probs(logits)
        y = pick(logits).masked_fill(done, PAD)  # finished rows emit padding
        tokens.append(y)
        logps.append(logp.gather(1, y[:, None]).squeeze(1).masked_fill(done, 0.0))
        if w is not None:
            weights.append(w)
        done = done | (y == EOS)
        if bool(done.all()):
            break
    return _unpack(torch.stack(tokens, 1), torch.stack(logps, 1), weights or None, src_lengths)


@torch.no_grad()
def greedy(model: Seq2Seq, src: Tensor, src_lengths: Tensor, max_len: int) -> list[Decoded]:
    """The most likely token at each step (src (S, B), src_lengths (B,))."""
    _check_max_len("greedy", max_len)
    return _decode_one_by_one(
        model, src, src_lengths, max_len, lambda logits: _log_probs(logits).argmax(-1)
    )


def _check_max_len(owner: str, max_len: object) -> None:
    # max_len 0 ended in torch.stack's "expects a non-empty TensorList" (greedy, sample)
    # or an empty "unfinished" output (beam search), naming no argument.
    _checks.positive_int(owner, "max_len", max_len)


@torch.no_grad()
def sample(
    model: Seq2Seq,
    src: Tensor,
    src_lengths: Tensor,
    max_len: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> list[Decoded]:
    """Draw each token from softmax(logits / temperature) over the tokens that can be
    output; lower is closer to greedy. The score is the model's log-probability of the
    draw (at temperature 1, as greedy's): the temperature changes what is drawn, not how
    likely the model finds it."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"sample: temperature must be a number > 0; got {temperature!r}")
    if not temperature > 0:
        raise ValueError(f"sample: temperature must be > 0; got {temperature}")
    if math.isinf(temperature):  # every weight was exp(nan): torch.multinomial's error
        raise ValueError(f"sample: temperature must be finite; got {temperature}")
    _check_max_len("sample", max_len)

    def draw(logits: Tensor) -> Tensor:
        return torch.multinomial(_weights(logits, temperature), 1, generator=generator).squeeze(1)

    return _decode_one_by_one(model, src, src_lengths, max_len, draw)


def _weights(logits: Tensor, temperature: float) -> Tensor:
    """Unnormalised softmax(logits / temperature) over the tokens that can be output, in
    float64: padding and begin-of-sequence are ruled out before the largest logit is
    subtracted, so the most likely output token weighs 1 at any temperature. (The
    probabilities of ``_log_probs`` all underflowed to 0 at a small temperature where
    padding was the likeliest token, and to nan at a tiny one.)"""
    z = logits.double()
    z[:, [PAD, BOS]] = float("-inf")
    return ((z - z.amax(-1, keepdim=True)) / temperature).exp()


def length_penalty(length: Tensor, alpha: float) -> Tensor:
    """GNMT's lp(Y) = ((5 + |Y|) / 6)^α (Wu et al. 2016, eq. 14); α = 0 turns it off.
    |Y| counts the tokens produced, EOS included."""
    return ((5.0 + length) / 6.0) ** alpha


@torch.no_grad()
def beam_search(
    model: Seq2Seq,
    src: Tensor,
    src_lengths: Tensor,
    max_len: int,
    beam: int = 4,
    alpha: float = 0.0,
) -> list[Decoded]:
    """Batched beam search of width ``beam``; returns the best hypothesis per input.

    Hypotheses are ranked by their summed log-probability while searching; a hypothesis
    that has produced EOS stays in the beam with its score frozen (its only continuation
    is padding at no cost) until the search ends, when all beams of all inputs have
    finished or ``max_len`` steps have run; one still unfinished then is cut there and
    competes as it is. The final choice divides by the length penalty with exponent
    ``alpha`` (:func:`length_penalty`). Equal scores go to the earlier beam row, then to
    the smaller token id, as greedy's argmax does: with ``beam=1`` this is exactly greedy
    decoding. A beam at least as wide as the number of hypotheses there are (finished
    and unfinished) never drops one, and returns the best of all outputs.
    """
    if isinstance(beam, bool) or not isinstance(beam, int):
        raise TypeError(f"beam_search: beam must be an integer >= 1; got {beam!r}")
    if beam < 1:
        raise ValueError(f"beam_search: beam must be >= 1; got {beam}")
    # A negative exponent favoured the longest outputs; nan or inf made every score nan.
    penalty = f"beam_search: alpha must be a finite number >= 0 (a length penalty); got {alpha!r}"
    if isinstance(alpha, bool) or not isinstance(alpha, Real):
        raise TypeError(penalty)
    if not (math.isfinite(alpha) and alpha >= 0):
        raise ValueError(penalty)
    _check_max_len("beam_search", max_len)
    model.eval()
    B, K = src.size(1), beam
    device = src.device
    rows = torch.arange(B, device=device).repeat_interleave(K)  # (B*K,) input of each row
    memory = model.encode(src, src_lengths).index_select(rows)
    state = model.init_state(memory)
    # Scores, lengths and the penalty in the model's precision (at least float32): in
    # float32 a float64 model's final scores were off by 1e-7 from its log-probabilities.
    dtype = torch.promote_types(memory.summary.dtype, torch.float32)
    scores = torch.full((B, K), float("-inf"), dtype=dtype, device=device)
    scores[:, 0] = 0.0  # one live hypothesis per input at the start
    y = torch.full((B * K,), BOS, dtype=torch.long, device=device)
    done = torch.zeros(B * K, dtype=torch.bool, device=device)
    length = torch.zeros(B * K, dtype=dtype, device=device)
    history = torch.empty(B * K, 0, dtype=torch.long, device=device)  # (B*K, t)
    step_logp = torch.empty(B * K, 0, dtype=dtype, device=device)
    attn: Tensor | None = None  # (B*K, t, S)
    for _ in range(max_len):
        logits, state, w = model.step(y, state, memory)
        logp = _log_probs(logits).to(dtype)  # (B*K, V)
        V = logp.size(-1)
        # A finished hypothesis continues with padding only, at no cost.
        logp = torch.where(done[:, None], torch.full_like(logp, float("-inf")), logp)
        logp[:, PAD] = torch.where(done, 0.0, float("-inf"))
        cand = (scores.view(B * K, 1) + logp).view(B, K * V)
        scores, top = _best(cand, K)  # (B, K)
        parent = (torch.arange(B, device=device)[:, None] * K + top // V).view(-1)  # (B*K,)
        y = (top % V).view(-1)
        state = state.index_select(parent)
        history = torch.cat([history.index_select(0, parent), y[:, None]], dim=1)
        tok_logp = logp.index_select(0, parent).gather(1, y[:, None])
        step_logp = torch.cat([step_logp.index_select(0, parent), tok_logp], dim=1)
        if w is not None:
            w = w.index_select(0, parent)[:, None]  # (B*K, 1, S) weights that chose y
            attn = w if attn is None else torch.cat([attn.index_select(0, parent), w], dim=1)
        was_done = done.index_select(0, parent)
        length = length.index_select(0, parent) + (~was_done).to(dtype)
        done = was_done | (y == EOS)
        if bool(done.all()):
            break
    final = scores.view(-1) / length_penalty(length.clamp(min=1), alpha)
    best = torch.arange(B, device=device) * K + final.view(B, K).argmax(1)  # (B,)
    decoded = _unpack(
        history[best],
        step_logp[best],
        None if attn is None else list(attn[best].unbind(1)),
        src_lengths,
    )
    for d, b in zip(decoded, best.tolist(), strict=True):
        d.score = float(final[b])
    return decoded


def _best(cand: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k largest of each row of ``cand`` and their columns, equal values in column
    order. (topk broke ties in no stated order: with equal logits, beam 1 took another
    token than greedy's argmax.)"""
    values, columns = cand.sort(dim=1, descending=True, stable=True)
    return values[:, :k].contiguous(), columns[:, :k].contiguous()
