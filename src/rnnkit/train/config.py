"""The training configuration, stored in a run's ``config.json`` next to the model's."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from rnnkit.models._config import config_from_dict

DEVICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    """How a language model is trained: truncated BPTT with AdamW (Loshchilov & Hutter 2019).

    The budget is ``steps``, ``minutes`` or both (training stops at the first reached);
    the learning-rate schedule decays over the same budget. A run is deterministic given
    ``seed`` when its budget is ``steps`` alone: a wall-clock budget depends on the machine.
    """

    seq_len: int = 128  # T: characters per truncated-BPTT window (the gradient's horizon)
    batch_size: int = 32  # B: parallel streams over the corpus, summed over all processes
    lr: float = 3e-3  # peak AdamW learning rate; char-rnn-sized models train well at 2e-3-5e-3
    weight_decay: float = 0.01  # AdamW's decoupled decay, on matrices only
    warmup_steps: int = 50  # linear warm-up: Adam's early moment estimates are noisy
    min_lr_ratio: float = 0.1  # the cosine schedule ends at this fraction of lr
    clip_norm: float = 1.0  # gradient-norm clipping (Pascanu et al. 2013): no exploding steps
    steps: int | None = None  # budget in optimiser steps (None: no step limit)
    minutes: float | None = 3.0  # budget in wall-clock minutes (None: no time limit)
    eval_every: int = 200  # steps between validations (and checkpoints and samples)
    eval_chars: int = 100_000  # validation characters scored per evaluation (a few seconds)
    sample_chars: int = 200  # characters of the sample printed at each evaluation
    log_every: int = 10  # steps between progress updates and metrics.csv rows
    seed: int = 0  # seeds initialisation, dropout and samples
    device: str = "auto"  # auto (cuda if available), cpu or cuda

    def __post_init__(self) -> None:
        for name in ("seq_len", "batch_size", "eval_every", "eval_chars", "log_every"):
            _positive_int(name, getattr(self, name))
        for name in ("warmup_steps", "sample_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0; got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0; got {self.seed!r}")
        self.lr = _positive_float("lr", self.lr)
        self.clip_norm = _positive_float("clip_norm", self.clip_norm)
        self.weight_decay = _nonnegative_float("weight_decay", self.weight_decay)
        self.min_lr_ratio = _nonnegative_float("min_lr_ratio", self.min_lr_ratio)
        if self.min_lr_ratio > 1:
            raise ValueError(f"min_lr_ratio must lie in [0, 1]; got {self.min_lr_ratio}")
        if self.steps is None and self.minutes is None:
            raise ValueError("a budget is needed: steps, minutes or both")
        if self.steps is not None:
            _positive_int("steps", self.steps)
        if self.minutes is not None:
            self.minutes = _positive_float("minutes", self.minutes)
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)}; got {self.device!r}")

    def lr_at(self, step: int, progress: float) -> float:
        """Learning rate for ``step`` (0-based): linear warm-up, then cosine decay.

        ``progress`` in [0, 1] is the fraction of the budget used (steps or time).
        """
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        p = min(max(progress, 0.0), 1.0)
        floor = self.min_lr_ratio
        return self.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: object, where: str = "train config") -> TrainConfig:
        return config_from_dict(cls, data, where=where)


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return value


def _positive_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number; got {value!r}")
    if math.isinf(value):
        raise ValueError(f"{name} must be finite; got {value!r}")
    return float(value)


def _nonnegative_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0; got {value!r}")
    return float(value)
