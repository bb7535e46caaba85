"""Attention over the encoder's outputs: how the decoder lifts the encoding bottleneck.

The chapter's seq2seq squeezes the whole input into one vector (10.19); its list of
limitations (10.20) calls that the encoding bottleneck. Attention lets every decoder step
read all encoder outputs h̄_s, weighted by a score against the decoder's state h_t
(Luong et al. 2015, "Effective Approaches to Attention-based NMT", sec. 3.1, eq. 7-8):

    a_t(s) = softmax_s( score(h_t, h̄_s) )   over the valid positions s only
    c_t    = Σ_s a_t(s) h̄_s

Scores:

- ``dot``      h_tᵀ h̄_s                           (Luong eq. 8, "dot")
- ``general``  h_tᵀ W_a h̄_s                       (Luong eq. 8, "general")
- ``additive`` v_aᵀ tanh(W_1 h̄_s + W_2 h_t)      (Bahdanau et al. 2015, eq. 6 / A.1.2;
  Luong's "concat")
- ``none``     no attention: c_t is the encoder's final summary vector at every step,
  the chapter's fixed vector kept for comparison.

Padding is masked: padded positions get a score of -inf, hence a weight of exactly zero,
so what is stored there cannot change the result.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KINDS = ("none", "additive", "dot", "general")


class Memory(NamedTuple):
    """What the decoder reads from the encoder; every field has the batch first.

    values (B, S, E) the encoder outputs h̄_s; keys (B, S, A) their projection for the
    score (precomputed once per input, not per step); mask (B, S) True at valid
    positions; summary (B, E) the final state, the chapter's fixed vector.
    """

    values: Tensor
    keys: Tensor
    mask: Tensor
    summary: Tensor

    def index_select(self, index: Tensor) -> Memory:
        """The memory of the rows ``index`` (beam search repeats and reorders rows)."""
        return Memory(*(t.index_select(0, index) for t in self))


class Attention(nn.Module):
    """Scores, masks and averages the encoder outputs for one decoder step.

    Shape:
        query h_t (B, Hq); memory values (B, S, E); returns the context c_t (B, E) and the
        weights a_t (B, S) (None for ``kind="none"``).
    """

    def __init__(self, kind: str, query_size: int, memory_size: int) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"Attention: kind must be one of {KINDS}; got {kind!r}")
        for name, size in (("query_size", query_size), ("memory_size", memory_size)):
            # torch.empty said "argument 'size' must be tuple of ints", naming neither.
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise ValueError(f"Attention: {name} must be a positive integer; got {size!r}")
        if kind == "dot" and query_size != memory_size:
            raise ValueError(
                "Attention: 'dot' needs the decoder hidden size to equal the encoder output "
                f"size; expected {memory_size}, got {query_size} (use 'general')"
            )
        self.kind = kind
        if kind == "general":
            self.W_a = nn.Linear(memory_size, query_size, bias=False)
        elif kind == "additive":
            self.W_1 = nn.Linear(memory_size, query_size, bias=False)
            self.W_2 = nn.Linear(query_size, query_size)
            self.v_a = nn.Linear(query_size, 1, bias=False)

    def keys(self, values: Tensor) -> Tensor:
        """The part of the score that depends on h̄_s only: computed once per input."""
        if self.kind == "general":
            return self.W_a(values)  # (B, S, Hq): W_a h̄_s
        if self.kind == "additive":
            return self.W_1(values)  # (B, S, Hq): W_1 h̄_s
        return values

    def forward(self, query: Tensor, memory: Memory) -> tuple[Tensor, Tensor | None]:
        if self.kind == "none":
            return memory.summary, None
        if self.kind == "additive":
            e = torch.tanh(memory.keys + self.W_2(query).unsqueeze(1))  # (B, S, Hq)
            scores = self.v_a(e).squeeze(-1)  # (B, S)
        else:
            scores = torch.bmm(memory.keys, query.unsqueeze(-1)).squeeze(-1)  # (B, S)
        scores = scores.masked_fill(~memory.mask, float("-inf"))
        weights = F.softmax(scores, dim=-1)  # (B, S), zero at padding
        context = torch.bmm(weights.unsqueeze(1), memory.values).squeeze(1)  # (B, E)
        return context, weights
