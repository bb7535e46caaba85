"""`rnnkit train adding|copy|selective-copy`: the long-memory tasks (the chapter's 10.21).

The adding problem (Hochreiter & Schmidhuber 1997), copy memory (Arjovsky et al. 2016)
and selective copying (Gu & Dao 2023). Every step trains on a fresh batch drawn from a
generator seeded by ``--seed`` (its state is checkpointed, so a resumed run draws the
same batches); every evaluation scores the same held-out batch, and a result is reported
against the task's memoryless baseline. ``--until-goal`` ends training at the first
evaluation that reaches the task's goal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from rnnkit import _options
from rnnkit._options import option
from rnnkit.models.memory import (
    LAYERS,
    MIN_LENGTH,
    MemoryModel,
    MemoryTaskConfig,
    baseline,
    goal,
    loss_and_metric,
    make_batch,
    reaches_goal,
)
from rnnkit.tasks.base import SeededBatches, Task, model_device
from rnnkit.train import distributed
from rnnkit.train.config import TrainConfig
from rnnkit.train.metrics import clock, read_csv
from rnnkit.train.runfolder import METRICS

VALIDATION_SEED_OFFSET = 10_000  # the held-out batch: seeded from --seed + this

History = list[tuple[int, float, dict[str, float]]]  # (step, seconds, metrics)


@dataclass
class MemoryOptions:
    """A long-memory task's options: the span to remember, the model, the batches."""

    length: int = option(
        100,
        "T, the span to remember: the adding problem's sequence length, copy memory's "
        "delay, selective copying's noise length (at least 10; 32 for selective-copy)",
        low=1,
        high=100_000,
    )
    cell: str = option("lstm", "recurrent cell", choices=tuple(LAYERS))
    hidden_size: int = option(128, "hidden units per layer H", flag="--hidden", low=1, high=65536)
    num_layers: int = option(1, "stacked recurrent layers", flag="--layers", low=1, high=64)
    batch_size: int = option(
        64,
        "sequences per step, drawn fresh every step, summed over all processes",
        low=1,
        high=100_000,
    )
    chrono: bool = option(
        True,
        "chrono initialisation of gated cells with T_max = --length (--no-chrono: "
        "PyTorch's initialisation)",
    )
    until_goal: bool = option(
        False,
        "stop at the first evaluation that reaches the task's goal (adding: MSE < 0.01; "
        "copy: cross-entropy 100x below the baseline; selective-copy: accuracy >= 0.99)",
    )
    n_val: int = option(
        256,
        "sequences in the fixed held-out batch scored at each evaluation",
        low=1,
        high=100_000,
    )

    def __post_init__(self) -> None:
        _options.check(self)

    def model_config(self, task: str) -> MemoryTaskConfig:
        return MemoryTaskConfig(
            task=task,
            length=self.length,
            cell=self.cell,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            chrono=self.chrono,
        )


class FreshBatches(SeededBatches):
    """A new batch every step from one seeded generator; this process keeps its rows."""

    def __init__(self, config: MemoryTaskConfig, batch_size: int, seed: int, rows: slice) -> None:
        self.config, self.batch_size, self.rows = config, batch_size, rows
        super().__init__(seed)

    def __next__(self) -> tuple[Tensor, Tensor]:
        # Every process draws the whole global batch (the same generator, the same state)
        # and keeps its share: the batch does not depend on the number of processes.
        x, y = make_batch(self.config, self.batch_size, self.generator)
        return x[:, self.rows], y[..., self.rows]


class MemoryTask(Task):
    """What the three long-memory tasks share; a subclass names its task and metric."""

    Options = MemoryOptions
    train_defaults: ClassVar[dict[str, Any]] = {
        "steps": 2000,
        "lr": 1e-3,
        "weight_decay": 0.0,
        "warmup_steps": 0,
        "schedule": "constant",
        "eval_every": 100,
        "clip_norm": 1.0,
    }

    def __init__(self, options: MemoryOptions, derived: dict[str, Any] | None = None) -> None:
        super().__init__(options, derived)
        least = MIN_LENGTH[self.name]
        if options.length < least:
            raise ValueError(
                f"--length must be at least {least} for the {self.name} task (shorter needs "
                f"no long memory); got {options.length}"
            )
        self.config = options.model_config(self.name)
        self.baseline = baseline(self.config)
        self.goal = goal(self.config)

    # ---- data -------------------------------------------------------------------------

    def prepare(self, train: TrainConfig, ctx: distributed.Context) -> None:
        distributed.rows(ctx, self.options.batch_size)  # divisible by the number of processes
        held_out = torch.Generator().manual_seed(train.seed + VALIDATION_SEED_OFFSET)
        self.x_val, self.y_val = make_batch(self.config, self.options.n_val, held_out)

    def describe(self) -> str:
        o = self.options
        return (
            f"T = {o.length}, {o.batch_size} fresh sequences a step, {o.n_val} held out; "
            f"memoryless baseline {self.metric} {self.baseline:.4g}"
        )

    # ---- model ------------------------------------------------------------------------

    def build_model(self) -> MemoryModel:
        return MemoryModel(self.config)

    def title(self, model: nn.Module) -> str:
        o = self.options
        return f"{self.name}, T = {o.length}: {o.cell.upper()} {o.num_layers}x{o.hidden_size}"

    # ---- training ---------------------------------------------------------------------

    def batches(self, train: TrainConfig, ctx: distributed.Context) -> FreshBatches:
        rows = distributed.rows(ctx, self.options.batch_size)
        return FreshBatches(self.config, self.options.batch_size, train.seed, rows)

    def loss(self, net: nn.Module, batch: Any, device: Any) -> Tensor:
        x, y = batch
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        return loss_and_metric(self.config, net, x, y)[0]

    def items(self, batch: Any) -> int:
        return int(batch[0].size(1))

    # ---- evaluation -------------------------------------------------------------------

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        device = model_device(model)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                loss, metric = loss_and_metric(
                    self.config, model, self.x_val.to(device), self.y_val.to(device)
                )
        finally:
            model.train(was_training)
        return {self.metric: metric.item(), "loss": loss.item()}

    def show(self, model: nn.Module, metrics: dict[str, float]) -> list[str]:
        return [versus_baseline(metrics[self.metric], self.baseline, self.higher_is_better)]

    def reached_goal(self, metrics: dict[str, float]) -> bool:
        return self.options.until_goal and reaches_goal(self.config, metrics[self.metric])

    def goal_text(self) -> str:
        """The goal in words: "mse < 0.01", "accuracy >= 0.99"."""
        return f"{self.metric} {'>=' if self.higher_is_better else '<'} {self.goal:.4g}"

    def finish(self, model: nn.Module, run_dir: Any) -> list[str]:
        history = run_history(run_dir)
        scores = [(step, m[self.metric]) for step, _, m in history if self.metric in m]
        if not scores:
            return []
        o = self.options
        last_step, last = scores[-1]
        pick = max if self.higher_is_better else min
        best_step, best = pick(scores, key=lambda s: s[1])
        better = "higher" if self.higher_is_better else "lower"
        lines = [
            f"{self.name}, T = {o.length}, {o.cell} {o.num_layers} x {o.hidden_size}: "
            f"{self.metric} {last:.4g} at step {last_step} (best {best:.4g} at step "
            f"{best_step}); memoryless baseline {self.baseline:.4g} ({better} is better)"
        ]
        reached = first_goal(self.config, self.metric, history)
        if reached is None:
            lines.append(f"goal {self.goal_text()} not reached")
        else:
            step, seconds = reached
            lines.append(f"goal {self.goal_text()} first reached at step {step} ({clock(seconds)})")
        return lines


class AddingTask(MemoryTask):
    name = "adding"
    summary = "the adding problem: sum two marked values across T steps (MSE)"
    metric = "mse"


class CopyTask(MemoryTask):
    name = "copy"
    summary = "copy memory: repeat 10 symbols after a delay of T steps (cross-entropy)"
    metric = "cross_entropy"


class SelectiveCopyTask(MemoryTask):
    name = "selective-copy"
    summary = "selective copying: recall 16 tokens scattered among T noise steps (accuracy)"
    metric = "accuracy"
    higher_is_better = True


def versus_baseline(value: float, base: float, higher_is_better: bool) -> str:
    """A metric against the memoryless baseline: "baseline 0.1667, 17x below"."""
    if value <= 0 or base <= 0:
        return f"baseline {base:.4g}"
    ratio = value / base
    where = "above" if ratio >= 1 else "below"
    ratio = max(ratio, 1 / ratio)
    times = f"{ratio:.1f}" if ratio < 10 else f"{ratio:.0f}"
    kind = "chance" if higher_is_better else "baseline"
    return f"{kind} {base:.4g}, {times}x {where}"


def first_goal(config: MemoryTaskConfig, metric: str, history: History) -> tuple[int, float] | None:
    """(step, seconds) of the first evaluation in ``history`` that reaches the goal."""
    for step, seconds, metrics in history:
        if metric in metrics and reaches_goal(config, metrics[metric]):
            return step, seconds
    return None


def run_history(run_dir: str | Path) -> History:
    """Every evaluation of a run, from its ``metrics.csv``: (step, seconds, metrics)."""
    by_step: dict[int, tuple[float, dict[str, float]]] = {}
    for row in read_csv(Path(run_dir) / METRICS, up_to_step=2**63):
        if row.split == "validation":
            by_step.setdefault(row.step, (row.time, {}))[1][row.metric] = row.value
    return [(step, seconds, metrics) for step, (seconds, metrics) in sorted(by_step.items())]
