"""The model and the measures of the long-memory tasks (the chapter's "long memory", 10.21).

The tasks come from :mod:`rnnkit.data.tasks`: the adding problem (Hochreiter &
Schmidhuber 1997), copy memory (Arjovsky et al. 2016) and selective copying (Gu & Dao 2023).
Each is generated on the fly from a seed; each has a memoryless baseline, and a result is
reported against it. They are trained as ``rnnkit train adding|copy|selective-copy``
(:mod:`rnnkit.tasks.memory`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.tasks import adding_problem, copy_memory, copy_memory_baseline, selective_copy
from rnnkit.layers import GRU, LSTM, RNN, MinGRU, MinLSTM
from rnnkit.layers.base import RecurrentLayer

TASKS = ("adding", "copy", "selective-copy")
LAYERS: dict[str, type[RecurrentLayer]] = {
    "rnn": RNN,
    "lstm": LSTM,
    "gru": GRU,
    "mingru": MinGRU,
    "minlstm": MinLSTM,
}
# Shortest meaningful sequences: below these the task needs no memory to speak of.
MIN_LENGTH = {"adding": 10, "copy": 10, "selective-copy": 32}
COPY_SYMBOLS, SELECT_TOKENS, SELECT_VOCAB = 8, 16, 16


@dataclass
class MemoryTaskConfig:
    """A long-memory task and the model that learns it (training options live elsewhere)."""

    task: str = "adding"  # adding | copy | selective-copy
    length: int = 100  # T: the span the model must remember across
    cell: str = "lstm"  # a key of LAYERS
    hidden_size: int = 128  # H per layer
    num_layers: int = 1  # stacked layers (the minGRU paper uses 3 for selective copying)
    chrono: bool = True  # chrono initialisation with T_max = length (gated cells)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}; got {self.task!r}")
        if self.cell not in LAYERS:
            raise ValueError(f"cell must be one of {', '.join(LAYERS)}; got {self.cell!r}")
        for name in ("length", "hidden_size", "num_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if not isinstance(self.chrono, bool):  # "no" would be taken as true
            raise ValueError(f"chrono must be a bool; got {self.chrono!r}")
        if self.length < MIN_LENGTH[self.task]:
            raise ValueError(
                f"length must be at least {MIN_LENGTH[self.task]} for the {self.task} task "
                f"(shorter needs no long memory); got {self.length}"
            )


def baseline(config: MemoryTaskConfig) -> float:
    """The memoryless baseline of the task's metric (MSE, cross-entropy, or accuracy)."""
    if config.task == "adding":
        return 1.0 / 6.0  # always predicting 1: Var(u1 + u2) = 2/12
    if config.task == "copy":
        return copy_memory_baseline(config.length, n_symbols=COPY_SYMBOLS)
    return 1.0 / (SELECT_VOCAB - 2)  # guessing a data token


def goal(config: MemoryTaskConfig) -> float:
    """The level at which a task counts as solved (the goals of the long-memory table).

    Adding: MSE below 0.01, 1/17 of the baseline (Hochreiter & Schmidhuber 1997 count
    absolute errors below 0.04). Copy memory: cross-entropy 100 times below the
    memoryless baseline. Selective copying: 99 % of the answers right (the minGRU paper
    reports 99.5 %).
    """
    if config.task == "adding":
        return 0.01
    if config.task == "copy":
        return baseline(config) / 100
    return 0.99


def reaches_goal(config: MemoryTaskConfig, metric: float) -> bool:
    if config.task == "selective-copy":
        return metric >= goal(config)
    return metric < goal(config)


class MemoryModel(nn.Module):
    """Input encoding -> a stack of rnnkit layers -> a linear read-out."""

    def __init__(self, config: MemoryTaskConfig) -> None:
        super().__init__()
        if not isinstance(config, MemoryTaskConfig):
            raise TypeError(
                f"MemoryModel: config must be a MemoryTaskConfig; got {type(config).__name__}"
            )
        self.config = config
        H = config.hidden_size
        options: dict[str, Any] = {}
        if config.chrono and config.cell != "rnn":
            options["chrono_init"] = max(float(config.length), 2.0)
        if config.task == "adding":
            self.embed: nn.Module = nn.Identity()
            inputs, outputs = 2, 1
        else:
            vocab = COPY_SYMBOLS + 2 if config.task == "copy" else SELECT_VOCAB
            self.embed = nn.Embedding(vocab, H)
            inputs, outputs = H, vocab
        self.rnn = LAYERS[config.cell](inputs, H, config.num_layers, **options)
        self.head = nn.Linear(H, outputs)

    def forward(self, x: Tensor, last: int | None = None) -> Tensor:
        """Read-outs (T, B, outputs), or of the last ``last`` steps only."""
        out, _ = self.rnn(self.embed(x))  # (T, B, H)
        # The losses read few steps (the adding problem one, selective copying 16): the
        # read-out and its gradient are computed for those steps only.
        return self.head(out if last is None else out[-last:])


def make_batch(
    config: MemoryTaskConfig, batch: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """``batch`` fresh sequences of the task: inputs (T', B, ...) and targets (..., B)."""
    if config.task == "adding":
        return adding_problem(batch, config.length, generator=generator)
    if config.task == "copy":
        return copy_memory(batch, config.length, n_symbols=COPY_SYMBOLS, generator=generator)
    return selective_copy(
        batch, config.length, n_tokens=SELECT_TOKENS, vocab=SELECT_VOCAB, generator=generator
    )


def loss_and_metric(
    config: MemoryTaskConfig, model: nn.Module, x: Tensor, y: Tensor
) -> tuple[Tensor, Tensor]:
    """The training loss and the task's metric (MSE, cross-entropy per step, or accuracy)."""
    if config.task == "adding":
        loss = F.mse_loss(model(x, last=1)[0, :, 0].float(), y)  # read out at the last step
        return loss, loss.detach()
    if config.task == "copy":
        out = model(x).float()
        loss = F.cross_entropy(out.flatten(0, 1), y.flatten())  # every step, as in the paper
        return loss, loss.detach()
    logits = model(x, last=SELECT_TOKENS).float()  # answers over the marker steps
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
    return loss, (logits.argmax(-1) == y).float().mean()
