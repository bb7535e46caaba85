"""Training batches: random windows of ``--context`` steps, each after a no-gradient burn-in
over the values before it, with their targets in output units; each process's share of a
batch's loss; and the refusal of targets too large for float32 (:func:`check_targets`).

Apart because only training reads them; a forecast never does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit.tasks.base import SeededBatches
from rnnkit.tasks.forecast.config import ForecastConfig
from rnnkit.tasks.forecast.features import Prepared, prepare_series


class Batch(NamedTuple):
    """Training windows: inputs after a no-gradient burn-in over the values before them."""

    burn: Tensor  # (Tb, B, F) the values before each window, right-padded
    burn_lengths: Tensor  # (B,)
    x: Tensor  # (T, B, F)
    lengths: Tensor  # (B,)
    target: Tensor  # (T, B, h) in output units
    mask: Tensor  # (T, B, h) bool: a target inside the training values
    # Among several processes, per member: the global batch's number of targets over the
    # number of processes (Windows); None in one process.
    share: Tensor | None = None


class Windows(SeededBatches):
    """Random training windows from one seeded generator; every process draws the global
    batch and keeps its rows, so the batches do not depend on the number of processes.

    Among ``processes`` > 1 a batch also carries, per member, the global batch's number of
    targets over the number of processes (``share``), by which :meth:`ForecastTask.loss`
    divides this process's summed loss: DDP's average of the processes' losses is then the
    mean over every target of the global batch - one process's loss - although windows
    of different spans give the processes different numbers of targets."""

    def __init__(
        self,
        prepared: list[Prepared],
        ends: list[int],
        context: int,
        batch_size: int,
        seed: int,
        rows: slice,
        members: int = 1,
        processes: int = 1,
    ) -> None:
        self.prepared, self.ends, self.context = prepared, ends, context
        self.batch_size, self.rows, self.members = batch_size, rows, members
        self.processes = processes
        self.eligible = [i for i, e in enumerate(ends) if e >= 3]
        super().__init__(seed)
        self.targets = [_targets(p, e) for p, e in zip(prepared, ends, strict=True)]

    def __next__(self) -> Batch:
        if self.members == 1:
            return self._draw()
        # An ensemble's members each train on their own windows, as separate runs would;
        # their batches come one after the other on the batch axis.
        return _concat([self._draw() for _ in range(self.members)])

    def _draw(self) -> Batch:
        g = self.generator
        picks = torch.randint(len(self.eligible), (self.batch_size,), generator=g).tolist()
        u = torch.rand(self.batch_size, generator=g, dtype=torch.float64).tolist()
        every = [self.eligible[k] for k in picks]
        spots = [self._window(i, r) for i, r in zip(every, u, strict=True)]
        series, starts = every[self.rows], [a for a, _ in spots][self.rows]
        spans = [n for _, n in spots][self.rows]
        B, h = len(series), self.prepared[0].anchor.shape[1]
        Tb, T = max(starts), max(spans)
        F_ = self.prepared[0].x.shape[1]
        burn = torch.zeros(Tb, B, F_)
        x = torch.zeros(T, B, F_)
        target = torch.zeros(T, B, h)
        mask = torch.zeros(T, B, h, dtype=torch.bool)
        for b, (i, a, n) in enumerate(zip(series, starts, spans, strict=True)):
            p = self.prepared[i]
            burn[:a, b] = torch.from_numpy(p.x[:a])
            x[:n, b] = torch.from_numpy(p.x[a : a + n])
            tgt, ok = self.targets[i]
            target[:n, b] = tgt[a : a + n]
            mask[:n, b] = ok[a : a + n]
        share = None
        if self.processes > 1:  # the targets of every process's windows
            count = sum(
                int(self.targets[i][1][a : a + n].sum())
                for i, (a, n) in zip(every, spots, strict=True)
            )
            share = torch.tensor([count / self.processes])
        return Batch(burn, torch.tensor(starts), x, torch.tensor(spans), target, mask, share)

    def _window(self, i: int, r: float) -> tuple[int, int]:
        """The start and span of the window of series ``i`` at the uniform draw ``r``."""
        last = self.ends[i] - 1  # positions 0 .. last - 1 have a target
        a = int(r * (max(0, last - self.context) + 1))
        return a, min(self.context, last - a)


def _concat(batches: list[Batch]) -> Batch:
    """Batches side by side on the batch axis, each time axis padded to the longest."""

    def cat(tensors: list[Tensor]) -> Tensor:
        T = max(t.size(0) for t in tensors)
        return torch.cat(
            [F.pad(t, (0, 0) * (t.dim() - 1) + (0, T - t.size(0))) for t in tensors], 1
        )

    return Batch(
        cat([b.burn for b in batches]), torch.cat([b.burn_lengths for b in batches]),
        cat([b.x for b in batches]), torch.cat([b.lengths for b in batches]),
        cat([b.target for b in batches]), cat([b.mask for b in batches]),
        _cat_shares([b.share for b in batches]),
    )  # fmt: skip


def _cat_shares(shares: list[Tensor | None]) -> Tensor | None:
    """The members' shares side by side (None in one process)."""
    given = [s for s in shares if s is not None]
    return torch.cat(given) if given else None


def _targets(p: Prepared, end: int) -> tuple[Tensor, Tensor]:
    """Per step t and step ahead k: the value t + 1 + k in output units, and whether it
    is a training value (before ``end``) of a step with some history (t >= 1)."""
    target, ok = _targets64(p, end)
    return torch.from_numpy(target.astype(np.float32)), torch.from_numpy(ok)


def _targets64(p: Prepared, end: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_targets` in float64, before the network's float32 (0 where not a target)."""
    n, h = p.anchor.shape
    t = np.arange(n)[:, None] + 1 + np.arange(h)[None, :]
    ok = (t < end) & (np.arange(n)[:, None] >= 1)
    future = p.y[np.minimum(t, n - 1)]
    with np.errstate(over="ignore"):  # past float64: refused by check_targets
        target = np.where(ok, (future - p.anchor) / p.unit[:, None], 0.0)
    return target, ok


def _shared(loss: Tensor, mask: Tensor, share: float | None) -> Tensor:
    """Under torchrun, :func:`output_loss`'s mean over this process's targets turned into
    their sum over the process's share of the global batch's targets (``Windows``), so
    that the processes' average is the mean over the whole batch, as one process takes it;
    in one process (``share`` None), the mean itself."""
    if share is None:
        return loss
    return loss * (float(mask.sum().clamp(min=1)) / max(share, 1e-12))


# The largest training target accepted, in output units (a value's distance from its
# anchor forecast over d_t), per head. The network trains in float32 (largest 3.4e38).
# The pinball loss grows linearly with a target and its gradient not at all: at 1e15 the
# loss summed over a batch's targets stays finite up to 1e23 targets (trained with one at
# 1e36, but the cast to float32 overflows past 3.4e38). The Gaussian loss is the squared
# error over sigma^2, and its gradient e^2 / sigma^3 is squared again by Adam and by norm
# clipping: at 1e8 and the head's initial sigma (softplus(0) = 0.69) that is 3e16, squared
# 1e33 (trained with one target at 1e9 in one-window batches; at 1e10 steps were skipped
# as non-finite). The shipped sets reach at most 787 (docs/forecast.md, "Your own data").
TARGET_LIMITS = {"quantile": 1e15, "gaussian": 1e8}


def check_targets(
    data: Any, values: Sequence[np.ndarray], ends: Sequence[int], config: ForecastConfig
) -> None:
    """Refuse training values too far from their anchor forecasts, in units of d_t, to
    be float32 targets whose losses stay finite (:data:`TARGET_LIMITS`): one such value
    made every step's loss infinite, and training stopped with no model."""
    limit = TARGET_LIMITS[config.head]
    for i, (y, end) in enumerate(zip(values, ends, strict=True)):
        p = prepare_series(y[: max(end, 1)], config)  # as Windows' targets are made
        target, ok = _targets64(p, end)
        size = np.where(ok, np.abs(target), 0.0)
        if not np.any(size > limit):  # (an inf target too)
            continue
        rows, cols = np.nonzero(size > limit)  # origin t - 1 and step ahead k - 1
        targets = rows + 1 + cols  # the value each one is
        at = int(targets.min())  # the earliest value too far out, at its farthest
        ratio = float(size[rows, cols][targets == at].max())
        raise ValueError(
            f"{data.source}: value {at + 1} of series {data.names[i]!r} is {y[at]:g}, "
            f"{ratio:.2g} units from its anchor forecast, a unit being the mean absolute "
            "(seasonal) change of the values before it; the network's targets are float32"
            + (" and --head gaussian squares them" if config.head == "gaussian" else "")
            + f", so at most {limit:g} units are accepted"
        )
