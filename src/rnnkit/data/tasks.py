"""Synthetic sequence tasks, generated on the fly from a seed."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def adding_problem(
    batch: int, length: int, *, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """The adding problem of Hochreiter & Schmidhuber 1997 (experiment 4).

    Each step carries a value u ~ U(0, 1) and a marker; exactly two steps are marked, one in
    each half of the sequence, and the target is the sum of their values. Predicting the
    mean, 1, gives MSE = Var(u1 + u2) = 1/6 ≈ 0.167; beating that needs memory across the
    whole sequence.

    Returns:
        x (T, B, 2): value and marker per step; y (B,) the target sum.
    """
    _sizes("adding_problem", batch=(batch, 0), length=(length, 2))
    values = torch.rand(length, batch, generator=generator)
    half = length // 2
    first = torch.randint(0, half, (batch,), generator=generator)
    second = torch.randint(half, length, (batch,), generator=generator)
    markers = torch.zeros(length, batch)
    cols = torch.arange(batch)
    markers[first, cols] = 1.0
    markers[second, cols] = 1.0
    y = values[first, cols] + values[second, cols]
    return torch.stack([values, markers], dim=-1), y


def copy_memory(
    batch: int,
    length: int,
    *,
    n_symbols: int = 8,
    n_copy: int = 10,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """The copy-memory task of Arjovsky et al. 2016 (sec. 4.1), after Hochreiter 1997.

    The input is ``n_copy`` symbols drawn from 1..n_symbols, then ``length - 1`` blanks (0),
    a delimiter (n_symbols + 1) and ``n_copy`` more blanks; the target is blanks until the
    delimiter has passed and then the ``n_copy`` symbols. A model without memory can at
    best output blanks and then guess, a cross-entropy of n_copy·ln(n_symbols)/(T + 2·n_copy)
    per step (:func:`copy_memory_baseline`).

    Returns:
        x, y (T + 2·n_copy, B) token ids; vocabulary size n_symbols + 2.
    """
    _sizes(
        "copy_memory", batch=(batch, 0), length=(length, 1), n_symbols=(n_symbols, 1),
        n_copy=(n_copy, 1),
    )  # fmt: skip
    symbols = torch.randint(1, n_symbols + 1, (n_copy, batch), generator=generator)
    total = length + 2 * n_copy
    x = torch.zeros(total, batch, dtype=torch.long)
    x[:n_copy] = symbols
    x[length + n_copy - 1] = n_symbols + 1  # the delimiter: "now repeat"
    y = torch.zeros(total, batch, dtype=torch.long)
    y[-n_copy:] = symbols
    return x, y


def copy_memory_baseline(length: int, *, n_symbols: int = 8, n_copy: int = 10) -> float:
    """Cross-entropy per step of the best memoryless strategy.

    n_copy·ln(n_symbols) / (T + 2·n_copy): blanks are certain, the symbols a uniform guess.
    """
    return n_copy * math.log(n_symbols) / (length + 2 * n_copy)


def selective_copy(
    batch: int,
    length: int,
    *,
    n_tokens: int = 16,
    vocab: int = 16,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Selective copying (Gu & Dao 2023, "Mamba", sec. 4.1.1).

    ``n_tokens`` data tokens (ids 1..vocab-2) sit at random positions among ``length``
    noise steps (id 0); then ``n_tokens`` marker steps (id vocab - 1) ask for them back in
    order. Unlike plain copying, the positions vary, so a model must select by content.

    Returns:
        x (length + n_tokens, B) ids; y (n_tokens, B) the data tokens, answered over the
        last n_tokens steps.
    """
    # vocab - 1 is the marker and 0 the noise: ids 1..vocab-2 hold at least one data token.
    _sizes("selective_copy", batch=(batch, 0), n_tokens=(n_tokens, 1), vocab=(vocab, 3))
    if isinstance(length, bool) or not isinstance(length, int) or length < n_tokens:
        raise ValueError(
            f"selective_copy: length must be an integer >= n_tokens = {n_tokens}; got {length!r}"
        )
    data = torch.randint(1, vocab - 1, (n_tokens, batch), generator=generator)
    # Random distinct positions per sample, kept in order.
    scores = torch.rand(length, batch, generator=generator)
    positions = scores.topk(n_tokens, dim=0).indices.sort(dim=0).values  # (n_tokens, B)
    x = torch.zeros(length + n_tokens, batch, dtype=torch.long)
    x.scatter_(0, positions, data)
    x[length:] = vocab - 1
    return x, data


def _sizes(owner: str, **sizes: tuple[object, int]) -> None:
    """Refuse a size that is not an integer at least its bound: torch would fail later
    with a message naming none of the arguments (or, for a batch of -1, a negative
    dimension)."""
    for name, (value, low) in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{owner}: {name} must be an integer >= {low}; got {value!r}")
