"""The series as tensors: :func:`pad` (series of their own lengths to one right-padded
batch), :class:`Split` (the series of one split, padded once) and :class:`SeriesBatches`
(the training batches: seeded shuffled passes, each process's rows of every global
batch, and the state a checkpoint restores).

Apart from the model because they hold the data, not weights; and from the task because
scoring and ``rnnkit predict`` pad series too.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.tasks.base import SeededBatches


def pad(series: list[Tensor]) -> tuple[Tensor, Tensor]:
    """(padded (N, T, D), lengths (N,)) of (T_i, D) series."""
    lengths = torch.tensor([int(s.size(0)) for s in series], dtype=torch.long)
    return nn.utils.rnn.pad_sequence(series, batch_first=True), lengths


class Split:
    """The series of one split, padded once: x (N, T, D) raw values, lengths, labels."""

    def __init__(self, series: list[Tensor], labels: list[int], what: str) -> None:
        self.what, self.n = what, len(series)
        self.x, self.lengths = pad(series) if series else (torch.zeros(0, 1, 1), torch.zeros(0))
        self.y = torch.tensor(labels, dtype=torch.long)


class SeriesBatches(SeededBatches):
    """Shuffled passes over the training series: every process draws the same global
    batch from one seeded generator and keeps its rows. The generator, the current pass's
    order and the position in it are the state a checkpoint restores."""

    def __init__(
        self,
        x: Tensor,
        lengths: Tensor,
        y: Tensor,
        batch_size: int,
        seed: int,
        rows: slice,
        members: int = 1,
    ) -> None:
        self.x, self.lengths, self.y = x, lengths, y
        self.batch_size, self.rows = batch_size, rows
        super().__init__(seed)
        # An ensemble's members each make their own passes in their own order, as
        # separate runs would; their batches come one after the other.
        self.orders = [torch.randperm(len(y), generator=self.generator) for _ in range(members)]
        self.positions = [0] * members

    def __next__(self) -> tuple[Tensor, Tensor, Tensor]:
        index = torch.cat([self._draw(k) for k in range(len(self.orders))])
        lengths = self.lengths[index]
        return self.x[index, : int(lengths.max())], lengths, self.y[index]

    def _draw(self, k: int) -> Tensor:
        picks = []
        need = self.batch_size
        while need:
            take = self.orders[k][self.positions[k] : self.positions[k] + need]
            picks.append(take)
            need -= len(take)
            self.positions[k] += len(take)
            if self.positions[k] >= len(self.orders[k]):  # a new pass
                self.orders[k] = torch.randperm(len(self.y), generator=self.generator)
                self.positions[k] = 0
        return torch.cat(picks)[self.rows]

    def state_dict(self) -> dict[str, Any]:
        if len(self.orders) == 1:  # the form of a single network's checkpoints
            return {
                **super().state_dict(),
                "order": self.orders[0].clone(),
                "position": self.positions[0],
            }
        return {
            **super().state_dict(),
            "orders": torch.stack(self.orders),
            "positions": list(self.positions),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "orders" in state:
            self.orders = [o.to("cpu", torch.long).clone() for o in state["orders"]]
            self.positions = [int(p) for p in state["positions"]]
            return
        self.orders = [state["order"].to("cpu", torch.long).clone()]
        self.positions = [int(state["position"])]
