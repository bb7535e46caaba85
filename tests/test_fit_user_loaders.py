"""What rnnkit.fit and rnnkit.train say about the loaders and streams a user gives: a
val_loader whose items cannot be stacked, metrics without a val_loader to score, and a
progress that is not a stream, each in one line naming the argument."""

from __future__ import annotations

import io

import torch
from torch import nn
from torch.utils.data import DataLoader

import rnnkit
from _refusals import raises_exactly
from rnnkit.data import pad_collate

torch.manual_seed(0)
SEQS = [(torch.randn(t, 3), t % 2) for t in (2, 1, 3, 2, 1, 3, 2, 1)]
QUIET = {"log": lambda line: None, "progress": io.StringIO(), "steps": 2}


class Last(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(x.sum(1))


def test_a_val_loader_that_cannot_stack_sequences_names_pad_collate(tmp_path):
    # The train_loader's was named; the val_loader's ended in torch's RuntimeError.
    train = DataLoader(SEQS, batch_size=4, collate_fn=pad_collate)
    val = DataLoader(SEQS, batch_size=4)
    raises_exactly(ValueError, "rnnkit.fit: val_loader could not make a batch (stack expects "
                   "each tensor to be equal size, but got [2, 3] at entry 0 and [1, 3] at "
                   "entry 1); expected items of one size, or a DataLoader with "
                   "collate_fn=rnnkit.data.pad_collate for sequences of different lengths",
                   rnnkit.fit, Last(), train, val, out=tmp_path / "run", **QUIET)  # fmt: skip


def test_metrics_without_a_val_loader_are_refused_before_any_file(tmp_path):
    # They were never computed, and nothing said so.
    train = DataLoader(SEQS, batch_size=4, collate_fn=pad_collate)
    raises_exactly(ValueError, "rnnkit.fit: metrics (accuracy, f1) score the val_loader's "
                   "batches; expected a val_loader with them; got val_loader=None (give one, "
                   "or leave metrics out)", rnnkit.fit, Last(), train,
                   metrics={"accuracy": rnnkit.train.accuracy, "f1": rnnkit.train.accuracy},
                   out=tmp_path / "run", **QUIET)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_a_progress_that_is_not_a_stream_is_refused_before_any_file(tmp_path):
    # A file name failed at the first progress line ("'str' object has no attribute
    # 'write'"), after the run folder was made.
    train = DataLoader(SEQS, batch_size=4, collate_fn=pad_collate)
    raises_exactly(TypeError, "rnnkit.fit: progress must be a text stream with write() (e.g. "
                   "sys.stdout or an open file) or None; got str", rnnkit.fit, Last(), train,
                   out=tmp_path / "run", **{**QUIET, "progress": "progress.txt"})  # fmt: skip
    config = rnnkit.train.TrainConfig(steps=1)
    raises_exactly(TypeError, "rnnkit.train: progress must be a text stream with write() "
                   "(e.g. sys.stdout or an open file) or None; got str", rnnkit.train.train,
                   "adding", {"length": 10}, config, out=tmp_path / "adding",
                   progress="progress.txt")  # fmt: skip
    assert list(tmp_path.iterdir()) == []
