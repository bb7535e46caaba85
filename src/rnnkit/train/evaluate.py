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

    The text is read as ``batch_size`` contiguous streams with the state carried across
    windows of ``seq_len``, as in training; every character but each stream's first is
    scored, and the streams cover the whole text up to a remainder shorter than B.

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
    B = min(batch_size, N - 1)
    n = (N - 1) // B  # scored characters per stream
    device = model.embedding.weight.device  # a quantized head has no weight tensor
    streams = ids.to(torch.long).contiguous().as_strided((B, n + 1), (n, 1)).t()  # (n+1, B)
    inputs, targets = streams[:-1], streams[1:]  # (n, B) each
    batches = (
        (inputs[t : t + seq_len].to(device), targets[t : t + seq_len].to(device))
        for t in range(0, n, seq_len)
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
                logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum"
            ).item()
    finally:
        model.train(was_training)
    return total / (B * n) / math.log(2.0), B * n


def bits_per_char_of_text(model: CharLM, text: str, **kwargs: int) -> tuple[float, int]:
    """As :func:`bits_per_char`, for a string; unseen characters count as the unknown class."""
    return bits_per_char(model, model.vocab.encode(text), **kwargs)
