"""Bits per character: how well a language model predicts held-out text.

bpc = -(1/N) Σ_t log2 p(x^{t+1} | x^{≤t}): the average code length, in bits, of each
next character under the model (Graves 2013, sec. 3). A model that knows nothing pays
log2(V); the text's own entropy is the floor.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit import _checks
from rnnkit.models.lm import CharLM
from rnnkit.train.tbptt import truncated_bptt


@torch.no_grad()
def bits_per_char(
    model: CharLM,
    ids: Tensor,
    batch_size: int = 32,
    seq_len: int = 256,
    reset_every: int | None = None,
) -> tuple[float, int]:
    """``(bpc, characters scored)`` of ``model`` on ``ids`` (N,).

    Every character but the first is scored, once: N - 1 of them (the first has nothing
    before it to be predicted from). The text is read as ``batch_size`` contiguous
    streams (see :func:`stream_lengths`) with the state carried across windows of
    ``seq_len``, as in training; each stream starts from a zero state, so a character's
    context is the earlier characters of its own stream.

    ``reset_every=K`` sets the state back to zeros every K characters instead: the
    model then never sees more than K characters of context, and the rise in bpc
    measures how much it gains from the older context (its memory).
    """
    # Checked here: a batch_size or seq_len of 0 ended in a ZeroDivisionError or range()'s
    # error, naming neither argument.
    batch_size = _checks.positive_int("bits_per_char", "batch_size", batch_size)
    seq_len = _checks.positive_int("bits_per_char", "seq_len", seq_len)
    ids = _checks.tensor_arg("bits_per_char", "ids", ids)
    if ids.dim() != 1:
        raise ValueError(f"bits_per_char: ids must be 1-D (N,); got shape {tuple(ids.shape)}")
    if reset_every is not None:
        seq_len = _checks.positive_int("bits_per_char", "reset_every", reset_every)
    N = ids.numel()
    if N < 2:
        raise ValueError(f"the text has {N} character(s); at least 2 are needed to score one")
    inputs, targets = _streams(ids.to(torch.long), batch_size)  # (n, B) each
    device = model.embedding.weight.device  # a quantized head has no weight tensor
    batches = (
        (inputs[t : t + seq_len].to(device), targets[t : t + seq_len].to(device))
        for t in range(0, inputs.size(0), seq_len)
    )
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        if reset_every is None:
            outputs = ((out, y) for out, y, _ in truncated_bptt(model, batches))
        else:
            outputs = ((model(x)[0], y) for x, y in batches)  # each window from zeros
        for logits, y in outputs:
            total += F.cross_entropy(
                logits.reshape(-1, logits.size(-1)),
                y.reshape(-1),
                reduction="sum",
                ignore_index=_PAD,  # the ends of the shorter streams
            ).item()
    finally:
        model.train(was_training)
    return total / (N - 1) / math.log(2.0), N - 1


def stream_lengths(n_chars: int, batch_size: int) -> list[int]:
    """How many characters each stream of :func:`bits_per_char` scores: the N - 1
    predictable characters of an ``n_chars`` text cut into ``min(batch_size, N - 1)``
    consecutive pieces whose lengths differ by at most one (the longer ones first)."""
    B = min(batch_size, n_chars - 1)
    n, longer = divmod(n_chars - 1, B)
    return [n + 1] * longer + [n] * (B - longer)


_PAD = -100  # a target past the end of a shorter stream: not scored


def _streams(ids: Tensor, batch_size: int) -> tuple[Tensor, Tensor]:
    """Inputs and targets, (n, B) each, of the streams of :func:`stream_lengths`.

    Stream b predicts its characters from the one before each, so consecutive streams
    share one character (the last target of one is the first input of the next) and
    together they predict every character but the first. A shorter stream's last row is
    padding: an input past its end (read after its last real one, so it changes no
    score) and a target of ``_PAD``.
    """
    lengths = torch.tensor(stream_lengths(ids.numel(), batch_size))
    starts = torch.cumsum(lengths, 0) - lengths  # stream b's first input
    steps = torch.arange(int(lengths.max()) + 1).unsqueeze(1)  # (n + 1, 1)
    index = starts + steps  # (n + 1, B)
    inside = steps <= lengths  # the stream's own characters: its first input to its last target
    streams = ids[index.clamp(max=ids.numel() - 1)]
    targets = torch.where(inside[1:], streams[1:], torch.full_like(streams[1:], _PAD))
    return streams[:-1], targets


def bits_per_char_of_text(model: CharLM, text: str, **kwargs: int) -> tuple[float, int]:
    """As :func:`bits_per_char`, for a string; unseen characters count as the unknown class."""
    return bits_per_char(model, model.vocab.encode(text), **kwargs)
