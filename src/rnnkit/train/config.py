"""How any task is trained: budget, optimiser, schedule, evaluation, device and precision.

One config for every task; a task changes only the defaults (``Task.train_defaults``).
It is stored under ``"train"`` in a run's ``config.json``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rnnkit import _options
from rnnkit._options import option

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "fp16")
SCHEDULES = ("cosine", "constant")
MAX_STEPS = 10**9
BUDGET_KEYS = ("steps", "minutes")


@dataclass
class TrainConfig:
    """The training loop's options (AdamW, Loshchilov & Hutter 2019; clipping, Pascanu et al.
    2013). The budget is ``steps``, ``minutes`` or both: training stops at the first reached,
    and the schedule decays over the same budget. A run is repeatable to the bit given
    ``seed`` when its budget is ``steps`` alone: a wall-clock budget depends on the machine.
    """

    steps: int | None = option(None, "budget in optimiser steps", low=1, high=MAX_STEPS)
    minutes: float | None = option(
        None,
        "budget in wall-clock minutes of training (evaluations and checkpoints not counted)",
        low=1e-3,
        high=10**6,
    )
    lr: float = option(3e-3, "peak learning rate", low=1e-9, high=10.0)
    weight_decay: float = option(0.01, "AdamW's decoupled decay, on matrices only", low=0, high=1)
    schedule: str = option("cosine", "learning-rate decay over the budget", choices=SCHEDULES)
    warmup_steps: int = option(
        50,
        "linear warm-up steps (at most a tenth of a --steps budget): Adam's first moment "
        "estimates are noisy",
        low=0,
        high=MAX_STEPS,
    )
    min_lr_ratio: float = option(
        0.1, "the cosine schedule ends at this fraction of --lr", low=0, high=1
    )
    clip_norm: float = option(1.0, "gradient-norm clipping: no exploding step", low=1e-9, high=1e9)
    eval_every: int = option(
        200, "steps between evaluations (each one checkpoints)", low=1, high=MAX_STEPS
    )
    log_every: int = option(10, "steps between progress lines", low=1, high=MAX_STEPS)
    max_bad_steps: int = option(
        10,
        "non-finite losses or gradients in a row that stop the run (each one is skipped)",
        low=1,
        high=10**6,
    )
    seed: int = option(0, "seeds initialisation, data order and dropout", low=0, high=2**63 - 1)
    device: str = option("auto", "auto picks cuda when available", choices=DEVICES)
    precision: str = option(
        "fp32",
        "autocast precision of the forward pass (fp16 adds loss scaling)",
        choices=PRECISIONS,
    )
    threads: int = option(
        1,
        "CPU threads torch may use (small recurrent models gain little from more)",
        low=1,
        high=4096,
    )

    def __post_init__(self) -> None:
        _options.check(self)
        if self.steps is None and self.minutes is None:
            raise ValueError("a budget is needed: --steps, --minutes or both")

    def warmup(self) -> int:
        """Warm-up steps, scaled to a step budget: never more than a tenth of it."""
        if self.steps is None:
            return self.warmup_steps
        return min(self.warmup_steps, self.steps // 10)

    def lr_at(self, step: int, progress: float) -> float:
        """Learning rate for ``step`` (0-based): linear warm-up, then the schedule.

        ``progress`` in [0, 1] is the fraction of the budget used (steps or time).
        """
        warmup = self.warmup()
        if step < warmup:
            return self.lr * (step + 1) / warmup
        if self.schedule == "constant":
            return self.lr
        p = min(max(progress, 0.0), 1.0)
        floor = self.min_lr_ratio
        return self.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))

    def to_dict(self) -> dict[str, Any]:
        return _options.to_dict(self)

    @classmethod
    def from_dict(cls, data: object, where: str = "train", partial: bool = False) -> TrainConfig:
        return _options.from_dict(cls, data, where=where, partial=partial)


def resolve_device(name: str) -> Any:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without a GPU is an error."""
    import torch

    if name not in DEVICES:
        raise ValueError(f"--device must be one of {', '.join(DEVICES)}; got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but this PyTorch sees no CUDA device")
    cuda = name == "cuda" or (name == "auto" and torch.cuda.is_available())
    return torch.device("cuda" if cuda else "cpu")


def autocast(device: Any, precision: str) -> Any:
    """The autocast context of ``precision`` on ``device`` (a no-op for fp32)."""
    import contextlib

    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "fp16" and device.type == "cpu":
        # torch's CPU kernels (oneDNN's LSTM among them) do not all run in float16.
        raise ValueError("--precision fp16 needs a CUDA device; on the CPU use --precision bf16")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)
