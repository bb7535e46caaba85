"""Synthetic sequence tasks, generated on the fly from a seed."""

from __future__ import annotations

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
    if length < 2:
        raise ValueError(f"adding_problem: length must be >= 2; got {length}")
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
