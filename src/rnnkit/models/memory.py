"""Models and training for the long-memory tasks (the chapter's "long memory", 10.21).

The tasks come from :mod:`rnnkit.data.tasks`: the adding problem (Hochreiter &
Schmidhuber 1997), copy memory (Arjovsky et al. 2016) and selective copying (Gu & Dao 2023).
Each is generated on the fly from a seed; each has a memoryless baseline, and a result is
reported against it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.data.tasks import adding_problem, copy_memory, copy_memory_baseline, selective_copy
from rnnkit.layers import GRU, LSTM, RNN, MinGRU, MinLSTM
from rnnkit.layers.base import RecurrentLayer
from rnnkit.models._config import config_from_dict

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
    """One long-memory experiment."""

    task: str = "adding"  # adding | copy | selective-copy
    length: int = 100  # T: the span the model must remember across
    cell: str = "lstm"  # a key of LAYERS
    hidden_size: int = 128  # H per layer
    num_layers: int = 1  # stacked layers (the minGRU paper uses 3 for selective copying)
    batch_size: int = 64  # sequences per step, drawn fresh every step
    lr: float = 1e-3  # Adam learning rate
    cosine: bool = False  # decay the learning rate to 0 over `steps` (half a cosine)
    steps: int = 2000  # optimiser steps at most
    minutes: float = 0.0  # wall-clock budget; 0 = no limit
    chrono: bool = True  # chrono initialisation with T_max = length (gated cells)
    clip: float = 1.0  # gradient-norm clipping
    eval_every: int = 100  # steps between evaluations on the fixed validation batch
    seed: int = 0  # the data stream and the initial weights
    until_goal: bool = False  # stop at the first evaluation that reaches goal(config)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {', '.join(TASKS)}; got {self.task!r}")
        if self.cell not in LAYERS:
            raise ValueError(f"cell must be one of {', '.join(LAYERS)}; got {self.cell!r}")
        for name in ("length", "hidden_size", "num_layers", "batch_size", "steps", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if self.length < MIN_LENGTH[self.task]:
            raise ValueError(
                f"length must be at least {MIN_LENGTH[self.task]} for the {self.task} task "
                f"(shorter needs no long memory); got {self.length}"
            )
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0; got {self.lr}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> MemoryTaskConfig:
        return config_from_dict(cls, data, where="long-memory config")


def baseline(config: MemoryTaskConfig) -> float:
    """The memoryless baseline of the task's metric (MSE, cross-entropy, or accuracy)."""
    if config.task == "adding":
        return 1.0 / 6.0  # always predicting 1: Var(u1 + u2) = 2/12
    if config.task == "copy":
        return copy_memory_baseline(config.length, n_symbols=COPY_SYMBOLS)
    return 1.0 / (SELECT_VOCAB - 2)  # guessing a data token


def lr_factor(config: MemoryTaskConfig, step: int) -> float:
    """The learning rate at ``step`` (0-based) as a share of ``config.lr``."""
    if not config.cosine:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * min(step, config.steps) / config.steps))


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


def _batch(config: MemoryTaskConfig, batch: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    if config.task == "adding":
        return adding_problem(batch, config.length, generator=gen)
    if config.task == "copy":
        return copy_memory(batch, config.length, n_symbols=COPY_SYMBOLS, generator=gen)
    return selective_copy(
        batch, config.length, n_tokens=SELECT_TOKENS, vocab=SELECT_VOCAB, generator=gen
    )


def _loss_and_metric(config: MemoryTaskConfig, model: MemoryModel, x: Tensor, y: Tensor):
    """The training loss and the reported metric (MSE, CE per step, or accuracy)."""
    if config.task == "adding":
        loss = F.mse_loss(model(x, last=1)[0, :, 0], y)  # read out at the last step
        return loss, loss.item()
    if config.task == "copy":
        out = model(x)
        loss = F.cross_entropy(out.flatten(0, 1), y.flatten())  # every step, as in the paper
        return loss, loss.item()
    logits = model(x, last=SELECT_TOKENS)  # answers over the marker steps
    loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
    return loss, (logits.argmax(-1) == y).float().mean().item()


def train_memory_task(
    config: MemoryTaskConfig, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Train on fresh batches, evaluate on a fixed held-out batch; returns the results."""
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    x_val, y_val = _batch(config, 256, torch.Generator().manual_seed(config.seed + 10_000))
    model = MemoryModel(config)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(config, step))
    higher_is_better = config.task == "selective-copy"
    base = baseline(config)
    best = -math.inf if higher_is_better else math.inf
    history: list[tuple[int, float, float]] = []  # (step, metric, seconds)
    solved: tuple[int, float] | None = None  # (step, seconds) of the first goal reached
    start = time.perf_counter()
    step = 0
    for step in range(1, config.steps + 1):
        x, y = _batch(config, config.batch_size, gen)
        loss, _ = _loss_and_metric(config, model, x, y)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        opt.step()
        schedule.step()
        elapsed = time.perf_counter() - start
        out_of_time = config.minutes > 0 and elapsed > 60 * config.minutes
        if step % config.eval_every == 0 or step == config.steps or out_of_time:
            model.eval()
            with torch.no_grad():
                _, metric = _loss_and_metric(config, model, x_val, y_val)
            model.train()
            history.append((step, metric, elapsed))
            best = max(best, metric) if higher_is_better else min(best, metric)
            if solved is None and reaches_goal(config, metric):
                solved = (step, elapsed)
            log(
                f"step {step:5d}  {_metric_name(config)} {metric:.4g}  "
                f"(baseline {base:.4g})  {elapsed:.0f} s"
            )
            if solved is not None and config.until_goal:
                break
        if out_of_time:
            break
    return {
        "config": config.to_dict(),
        "metric": _metric_name(config),
        "final": history[-1][1],
        "best": best,
        "baseline": base,
        "goal": goal(config),
        "goal_step": None if solved is None else solved[0],
        "goal_seconds": None if solved is None else solved[1],
        "steps": step,
        "seconds": time.perf_counter() - start,
        "parameters": sum(p.numel() for p in model.parameters()),
        "history": history,
    }


def _metric_name(config: MemoryTaskConfig) -> str:
    return {"adding": "mse", "copy": "cross-entropy", "selective-copy": "accuracy"}[config.task]
