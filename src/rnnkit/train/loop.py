"""The one training loop, for every task and for ``rnnkit.fit``.

One ``while`` that a reader follows top to bottom (nanoGPT's ``train.py``): take the next
batch, set the learning rate, compute the task's loss under autocast, backpropagate, clip,
skip the step if anything is not finite, step the optimiser; every ``eval_every`` steps
evaluate, keep the best weights and commit a checkpoint. SIGINT/SIGTERM end the loop after
the current step, with everything saved; a second Ctrl-C stops at once.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TextIO

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from rnnkit.tasks.base import Task
from rnnkit.train import card, distributed
from rnnkit.train.config import TrainConfig, autocast
from rnnkit.train.files import atomic_write, optimizer_from_tensors, optimizer_to_tensors
from rnnkit.train.metrics import Progress, Row, clock, fmt, plot, read_csv, to_csv
from rnnkit.train.runfolder import (
    LOSS_PLOT,
    MANIFEST,
    METRICS,
    Checkpoint,
    RunFolder,
    RunFolderError,
    check_fits,
)

PLOT_EVERY_S = 30.0  # loss.png is redrawn at a checkpoint at most this often, and at the end


class TrainingDivergedError(RuntimeError):
    """The loss, gradients or weights stayed non-finite; the last checkpoint is kept."""


@dataclass
class Summary:
    """How a training run ended (on the main process; ``is_main`` False elsewhere)."""

    run_dir: str
    task: str
    step: int
    stopped_by: str | None  # "SIGINT", "SIGTERM", "goal", or None at the end of the budget
    metrics: dict[str, float]  # the last evaluation
    best: dict[str, Any]  # {"metric", "value", "step"} of model.safetensors
    items_per_s: float  # training throughput of this call, evaluations excluded
    skipped_steps: int  # non-finite steps skipped over the whole run
    history: list[tuple[int, float, dict[str, float]]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # what the task showed at the end
    is_main: bool = True
    scored_on: str = "validation"  # what the evaluations scored (Task.scored_on)
    selects: bool = True  # whether the model kept is the best evaluated, or the last
    item_name: str = "sequences"  # what items_per_s counts (Task.item_name of this run)


class Trainer:
    """Trains ``task`` into ``folder``; :meth:`fit` runs to the budget."""

    def __init__(
        self,
        task: Task,
        train: TrainConfig,
        folder: RunFolder,
        ctx: distributed.Context,
        *,
        start: Checkpoint | None = None,
        out: TextIO | None = None,
        on_step: Callable[[Trainer], None] | None = None,
    ) -> None:
        self.task, self.train, self.folder, self.ctx = task, train, folder, ctx
        self.on_step = on_step
        torch.set_num_threads(train.threads)
        torch.manual_seed(train.seed)  # the same initial weights in every process
        self.model = task.build_model().to(ctx.device)
        self.net: nn.Module = DistributedDataParallel(self.model) if ctx.distributed else self.model
        # Decoupled weight decay on matrices only: decaying biases and gains only hurts.
        matrices = [p for p in self.model.parameters() if p.dim() >= 2]
        vectors = [p for p in self.model.parameters() if p.dim() < 2]
        groups: list[dict[str, Any]] = [
            {"params": matrices},
            {"params": vectors, "weight_decay": 0.0},
        ]
        self.optimizer = torch.optim.AdamW(
            groups,
            lr=train.lr,
            weight_decay=train.weight_decay,
        )
        autocast(ctx.device, train.precision)  # refuses fp16 on the CPU before anything runs
        self.scaler = torch.amp.GradScaler(ctx.device.type) if train.precision == "fp16" else None
        self.batches = task.batches(train, ctx)
        torch.manual_seed(train.seed + 1 + ctx.rank)  # each process its own dropout masks
        self.progress = Progress(out) if ctx.is_main else None

        self.step = 0
        self.items = 0
        self.elapsed = 0.0  # wall-clock seconds of training, agreed by all processes
        self.lr = train.lr
        self.best: dict[str, Any] = {"metric": task.metric, "value": None, "step": None}
        self.bad_in_a_row = 0
        self._last_items = 0
        self.skipped = 0
        self.rows: list[Row] = []
        self.history: list[tuple[int, float, dict[str, float]]] = []
        self.last_metrics: dict[str, float] = {}
        self.stop_reason: str | None = None
        # A stop every process has agreed on: a signal that reaches one process between two
        # agreements must not end its loop alone (the others would wait for it forever).
        self._stop_agreed = False
        self._saved_step = -1
        self._plotted_at, self._plotted_step = -math.inf, -1
        if start is not None:
            self._restore(start)

    # ---- the loop -----------------------------------------------------------------------

    def budget_fraction(self) -> float:
        """The fraction of the budget used: steps or wall-clock time, whichever is further."""
        parts = [0.0]
        if self.train.steps is not None:
            parts.append(self.step / self.train.steps)
        if self.train.minutes is not None:
            parts.append(self.elapsed / (self.train.minutes * 60))
        return max(parts)

    def budget_left(self) -> bool:
        return budget_reached(self.train, self.step, self.elapsed) is None

    def request_stop(self, reason: str) -> None:
        """End :meth:`fit` after the current step, saving everything (what signals do)."""
        self.stop_reason = reason

    def fit(self) -> Summary:
        """Train until the budget is used or a stop is requested; saves before returning."""
        start = time.perf_counter() - self.elapsed
        # Evaluations, checkpoints and progress lines are not training: a --minutes budget
        # buys the same number of steps however often the run validates.
        paused = 0.0
        train_time, call_items = 0.0, 0
        window: list[float] = []
        with self._signals():
            try:
                while self.budget_left() and not self._stopping():
                    t0 = time.perf_counter()
                    loss = self._one_step()
                    train_time += time.perf_counter() - t0
                    call_items += self._last_items
                    if loss is not None:
                        window.append(loss)
                    if self.on_step is not None:
                        self.on_step(self)
                    stop, self.elapsed = distributed.agree_max(
                        self.ctx,
                        [
                            float(self.stop_reason is not None),
                            time.perf_counter() - start - paused,
                        ],
                    )
                    if stop:
                        self._stop_agreed = True
                        if self.stop_reason is None:
                            self.stop_reason = "a stop in another process"
                    evaluate = self.step % self.train.eval_every == 0
                    last = not self.budget_left() or self._stopping()
                    # The rows of a step are logged before its checkpoint commits them.
                    t1 = time.perf_counter()
                    if window and (self.step % self.train.log_every == 0 or evaluate or last):
                        self._log(sum(window) / len(window), call_items / max(train_time, 1e-9))
                        window.clear()
                    if evaluate:
                        self.checkpoint()
                    paused += time.perf_counter() - t1
                if window:
                    self._log(sum(window) / len(window), call_items / max(train_time, 1e-9))
                if self._saved_step != self.step:
                    self.checkpoint()
                if self.ctx.is_main and self._plotted_step != self.step:
                    self._plot()
            finally:
                if self.progress is not None:
                    self.progress.close()
        lines = []
        best = None
        if self.ctx.is_main and self.best["step"] is not None:
            best = self.task.build_model()
            best.load_state_dict(self.folder.best_weights())
        # rnnkit.fit's build_model is the model it was given, the best weights just loaded
        # into it: every process ends with them, not only the main one.
        distributed.broadcast_module(self.ctx, self.model)
        if best is not None:
            lines = self.task.finish(best.to(self.ctx.device).eval(), self.folder.path)
        return Summary(
            run_dir=str(self.folder.path),
            task=self.task.name,
            step=self.step,
            stopped_by=self.stop_reason,
            metrics=self.last_metrics,
            best=dict(self.best),
            items_per_s=call_items / train_time if train_time > 0 else 0.0,
            skipped_steps=self.skipped,
            history=self.history,
            lines=lines,
            is_main=self.ctx.is_main,
            scored_on=self.task.scored_on,
            selects=self.task.selects,
            item_name=self.task.item_name,
        )

    def _one_step(self) -> float | None:
        """One optimiser step on the next batch; the loss, or None when it was skipped."""
        batch = next(self.batches)
        self._last_items = self.task.items(batch)
        self.lr = self.train.lr_at(self.step, self.budget_fraction())
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        with autocast(self.ctx.device, self.train.precision):
            loss = self.task.loss(self.net, batch, self.ctx.device)
        self.optimizer.zero_grad(set_to_none=True)
        scaled = self.scaler.scale(loss) if self.scaler is not None else loss
        scaled.backward()  # DDP averages the gradients over processes here
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.train.clip_norm)
        value = float(loss.detach())
        # A non-finite gradient under fp16 is the loss scaler's business (it lowers the
        # scale and skips); anywhere else it is a bad step.
        finite = math.isfinite(value) and (self.scaler is not None or bool(torch.isfinite(norm)))
        (bad,) = distributed.agree_max(self.ctx, [0.0 if finite else 1.0])
        self.step += 1
        self.items += self._last_items * self.ctx.world_size
        if bad:
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped += 1
            self.bad_in_a_row += 1
            self._message(
                f"step {self.step}: non-finite loss or gradient ({value:.4g}); step skipped "
                f"({self.bad_in_a_row} in a row)"
            )
            if self.bad_in_a_row >= self.train.max_bad_steps:
                raise TrainingDivergedError(
                    f"the loss or gradient was non-finite for {self.bad_in_a_row} steps in a "
                    f"row (up to step {self.step}); lower the learning rate or check the data; "
                    f"{self._last_checkpoint()} in {self.folder}"
                )
            return None
        self.bad_in_a_row = 0
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return value

    # ---- evaluation and checkpoints -----------------------------------------------------

    def _last_checkpoint(self) -> str:
        """What a run stopped now leaves to resume from: its last checkpoint, or none (a
        run stopped before its first one restarts from step 0)."""
        if self._saved_step < 0:
            return "no checkpoint was written yet"
        return f"the last checkpoint (step {self._saved_step}) is kept"

    def checkpoint(self) -> None:
        """Evaluate, keep the best weights, commit the training state, write the curves.

        Every process calls it at the same step (the carried state is gathered).
        """
        for p in self.model.parameters():
            if not torch.isfinite(p).all():
                raise TrainingDivergedError(
                    f"the weights became non-finite at step {self.step}; they are not saved; "
                    f"{self._last_checkpoint()}"
                )
        # An evaluation off the eval_every grid (a stop, the end of the budget) leaves the
        # random generators as it found them: one that drew from them (each pass of a
        # DataLoader draws a seed) made a run stopped there and resumed differ from the
        # run never stopped, which evaluates only on the grid.
        cuda = [self.ctx.device] if self.ctx.device.type == "cuda" else []
        off_grid = self.step % self.train.eval_every != 0
        with torch.random.fork_rng(devices=cuda, enabled=off_grid):
            improved = self._evaluate() if self.ctx.is_main else False
        self._commit(improved)
        (goal,) = distributed.agree_max(self.ctx, [float(self.stop_reason == "goal")])
        if goal:
            self._stop_agreed = True
            if self.stop_reason is None:
                self.stop_reason = "goal"
        self._saved_step = self.step

    def _stopping(self) -> bool:
        """Whether the loop ends after this step: at once in one process; in several, at
        a stop they all agreed on."""
        return self._stop_agreed if self.ctx.distributed else self.stop_reason is not None

    def _evaluate(self) -> bool:
        """Evaluate (main process), show the metrics; whether the weights are to be kept."""
        metrics = self.task.evaluate(self.model)
        value = metrics[self.task.metric]
        self.last_metrics = metrics
        self.history.append((self.step, self.elapsed, dict(metrics)))
        for name, v in metrics.items():
            self.rows.append(Row(self.step, self.elapsed, "validation", name, v))
        improved = math.isfinite(value) and (
            not self.task.selects
            or self.best["value"] is None
            or (
                value > self.best["value"]
                if self.task.higher_is_better
                else value < self.best["value"]
            )
        )
        if improved:
            self.best = {"metric": self.task.metric, "value": value, "step": self.step}
        shown = "  ".join(f"{k} {fmt(v)}" for k, v in metrics.items())
        mark = (
            " (best so far, saved)"
            if improved and self.task.selects
            else (" (the last, saved)" if improved else "")
        )
        self._message(f"step {self.step}: {self.task.scored_on} {shown}{mark}")
        for line in self.task.show(self.model, metrics):
            self._message("    " + line)
        if self.task.reached_goal(metrics) and self.stop_reason is None:
            self.stop_reason = "goal"
        return improved

    def _commit(self, improved: bool) -> None:
        tensors: dict[str, Tensor] = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        opt_tensors, opt_info = optimizer_to_tensors(self.optimizer)
        tensors.update(opt_tensors)
        tensors.update({f"task.{k}": v for k, v in self.task.carried(self.ctx).items()})
        rng = torch.get_rng_state().to(self.ctx.device).unsqueeze(0)  # (1, n) uint8
        tensors["rng.cpu"] = distributed.gather_batch(self.ctx, rng, dim=0).cpu()
        if self.ctx.device.type == "cuda":
            cuda_rng = torch.cuda.get_rng_state(self.ctx.device).to(self.ctx.device).unsqueeze(0)
            tensors["rng.cuda"] = distributed.gather_batch(self.ctx, cuda_rng, dim=0).cpu()
        data_json: dict[str, Any] = {}
        for key, value in self.batches.state_dict().items():
            if isinstance(value, Tensor):
                tensors[f"data.{key}"] = value
            else:
                data_json[key] = value
        if self.scaler is not None:
            data_json["_scaler"] = {k: v for k, v in self.scaler.state_dict().items()}
        if not self.ctx.is_main:
            return
        info = {
            "elapsed_s": self.elapsed,
            "items": self.items,
            "best": self.best,
            "skipped_steps": self.skipped,
            "world_size": self.ctx.world_size,
            "optimizer": opt_info,
            "data": data_json,
            "task": {},
        }
        self.folder.commit(self.step, tensors, info, to_csv(self.rows), improved)
        if time.perf_counter() - self._plotted_at > PLOT_EVERY_S:
            self._plot()
        card.write(self.folder.path)  # README.md, from the files just committed

    def _restore(self, ckpt: Checkpoint) -> None:
        """Continue from a checkpoint exactly (every tensor and RNG), or say what is wrong."""
        where = str(self.folder.path / ckpt.info["tensors"])
        weights = ckpt.prefixed("model")
        check_fits(self.model.state_dict(), weights, where)
        self.model.load_state_dict(weights)
        opt = {k: v.to(self.ctx.device) for k, v in ckpt.tensors.items() if k.startswith("optim.")}
        try:
            optimizer_from_tensors(self.optimizer, opt, ckpt.info["optimizer"])
            data = {**ckpt.info["data"], **ckpt.prefixed("data")}
            scaler = data.pop("_scaler", None)
            self.batches.load_state_dict(data)
            if self.scaler is not None and scaler:
                self.scaler.load_state_dict(scaler)
            self.task.load_carried(ckpt.prefixed("task"), self.ctx)
            rng = ckpt.tensors["rng.cpu"]
            best = ckpt.info["best"]
            self.best = {"metric": best["metric"], "value": best["value"], "step": best["step"]}
            self.elapsed = float(ckpt.info["elapsed_s"])
            self.items = int(ckpt.info["items"])
            self.skipped = int(ckpt.info.get("skipped_steps", 0))
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            # A KeyError's text is the bare key ('value'): say that it is a missing entry.
            why = f"it has no entry {err.args[0]!r}" if isinstance(err, KeyError) else str(err)
            # The entries come from both files of the checkpoint: name the pair.
            pair = f"{self.folder.path / MANIFEST} and {ckpt.info['tensors']}"
            raise RunFolderError(
                f"the checkpoint {pair} is corrupt or does not fit ({why})"
            ) from None
        if rng.dim() == 2 and rng.size(0) == self.ctx.world_size:
            # A clone: a row of the saved (world_size, n) tensor is a view, which
            # set_rng_state misreads ("Invalid mt19937 state", or a crash) on rank > 0.
            torch.set_rng_state(rng[self.ctx.rank].clone())
            if "rng.cuda" in ckpt.tensors and self.ctx.device.type == "cuda":
                torch.cuda.set_rng_state(ckpt.tensors["rng.cuda"][self.ctx.rank].clone())
        else:
            # Another number of processes: dropout masks cannot continue exactly; reseed.
            torch.manual_seed(self.train.seed + 1 + self.ctx.rank + ckpt.step)
        self.step = ckpt.step
        self._saved_step = ckpt.step
        self.rows = read_csv(self.folder.path / METRICS, ckpt.step)
        self.history = _history(self.rows)

    # ---- what it shows ------------------------------------------------------------------

    def _log(self, loss: float, items_per_s: float) -> None:
        self.rows.append(Row(self.step, self.elapsed, "train", "loss", loss))
        self.rows.append(Row(self.step, self.elapsed, "train", "lr", self.lr))
        if self.progress is not None:
            of = f"/{self.train.steps}" if self.train.steps is not None else ""
            self.progress.update(
                self.budget_fraction(),
                f"step {self.step}{of}  loss {fmt(loss)}  "
                f"{items_per_s:,.0f} {self.task.item_name}/s  {clock(self.elapsed)}",
            )

    def _message(self, text: str) -> None:
        if self.progress is not None:
            self.progress.message(text)

    def _plot(self) -> None:
        atomic_write(self.folder.path / LOSS_PLOT, plot(self.rows, self.task.title(self.model)))
        self._plotted_at, self._plotted_step = time.perf_counter(), self.step

    # ---- signals ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM ask the loop to stop after this step; a second SIGINT aborts."""
        if threading.current_thread() is not threading.main_thread():
            yield  # Python delivers signals to the main thread only
            return

        def handler(signum: int, frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            if self.stop_reason is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt  # asked twice: stop now; the files stay consistent
            self.stop_reason = name
            self._message(f"{name}: stopping after this step and saving ...")

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def budget_reached(train: TrainConfig, step: int, elapsed_s: float) -> str | None:
    """Which limit was reached ("step 300 of 300"), or None while budget remains."""
    if train.steps is not None and step >= train.steps:
        return f"step {step} of {train.steps}"
    if train.minutes is not None and elapsed_s >= train.minutes * 60:
        # Three significant digits: a short budget read "0.0 of 0.01 minutes" at .1f.
        return f"{elapsed_s / 60:.3g} of {train.minutes:g} minutes"
    return None


def _history(rows: list[Row]) -> list[tuple[int, float, dict[str, float]]]:
    by_step: dict[int, tuple[float, dict[str, float]]] = {}
    for r in rows:
        if r.split == "validation":
            by_step.setdefault(r.step, (r.time, {}))[1][r.metric] = r.value
    return [(s, t, m) for s, (t, m) in sorted(by_step.items())]
