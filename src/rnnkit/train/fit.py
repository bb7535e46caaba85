"""``rnnkit.fit``: your model, your ``DataLoader``s, the same loop and run folder.

A batch is a tuple whose last element is the target and whose other elements are the
model's inputs: ``model(*batch[:-1])`` is scored by ``loss(output, batch[-1])``. With
:func:`rnnkit.data.pad_collate` a batch of variable-length sequences is
``(padded, lengths, labels)``, so the model is called as ``model(padded, lengths)``.
Checkpoints, resume (to the bit: the loader's shuffle order is replayed), progress,
signals, the non-finite guard and ``metrics.csv`` are those of every rnnkit task.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.tasks.base import BatchSource, Task
from rnnkit.train import distributed
from rnnkit.train.config import TrainConfig, autocast, resolve_device
from rnnkit.train.loop import Summary, Trainer
from rnnkit.train.runfolder import MANIFEST, RunFolder, RunFolderError

Metric = Callable[[Tensor, Tensor], float | Tensor]


def accuracy(output: Tensor, target: Tensor) -> float:
    """The share of ``output.argmax(-1)`` equal to ``target`` (targets of -100 ignored)."""
    keep = target != -100
    return float((output.argmax(-1)[keep] == target[keep]).float().mean())


class LoaderBatches(BatchSource):
    """Epoch after epoch of a ``DataLoader``, with a position a checkpoint restores.

    The RNG states at the start of each epoch are kept: replaying them rebuilds the
    epoch's shuffle order, and the batches already used are skipped.
    """

    def __init__(self, loader: Iterable[Any]) -> None:
        self.loader = loader
        self.epoch, self.index = 0, 0
        self._it: Iterator[Any] | None = None
        self._rng: Tensor | None = None
        self._gen: Tensor | None = None

    def _start_epoch(self) -> None:
        self._rng = torch.get_rng_state()
        gen = getattr(self.loader, "generator", None)
        self._gen = gen.get_state() if isinstance(gen, torch.Generator) else None
        self._it = iter(self.loader)

    def __next__(self) -> Any:
        if self._it is None:
            self._start_epoch()
        assert self._it is not None
        try:
            batch = next(self._it)
        except StopIteration:
            if self.index == 0:
                raise ValueError(
                    "rnnkit.fit: train_loader yields no batch; expected at least one"
                ) from None
            self.epoch, self.index = self.epoch + 1, 0
            self._start_epoch()
            batch = next(self._it)
        self.index += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"epoch": self.epoch, "index": self.index}
        if self._rng is not None:
            state["epoch_rng"] = self._rng
        if self._gen is not None:
            state["epoch_generator"] = self._gen
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, index = int(state["epoch"]), int(state["index"])
        if "epoch_rng" not in state:
            return
        now = torch.get_rng_state()
        torch.set_rng_state(state["epoch_rng"])
        gen = getattr(self.loader, "generator", None)
        if isinstance(gen, torch.Generator) and "epoch_generator" in state:
            gen.set_state(state["epoch_generator"])
        self._rng, self._gen = state["epoch_rng"], state.get("epoch_generator")
        self._it = iter(self.loader)
        for _ in range(index):  # the batches this epoch already gave
            next(self._it)
        self.index = index
        torch.set_rng_state(now)


def _to(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    return batch


def _split(batch: Any) -> tuple[tuple[Any, ...], Any]:
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise ValueError(
            "rnnkit.fit: a batch must be a tuple (inputs..., target); got "
            f"{type(batch).__name__}"
            + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
        )
    return tuple(batch[:-1]), batch[-1]


class FitTask(Task):
    """A user's model and loaders as a task of the one loop."""

    name = "fit"
    summary = "your model on your DataLoaders"
    Options = dict  # no options: everything is in the objects given to fit()
    metric = "loss"

    def __init__(
        self,
        model: nn.Module,
        train_loader: Iterable[Any],
        val_loader: Iterable[Any] | None,
        loss: Callable[[Any, Any], Tensor],
        metrics: dict[str, Metric],
        monitor: str,
        higher_is_better: bool,
    ) -> None:
        super().__init__({}, {"model": type(model).__name__})
        self.model, self.train_loader, self.val_loader = model, train_loader, val_loader
        self.loss_fn, self.metrics = loss, metrics
        self.metric, self.higher_is_better = monitor, higher_is_better
        self.device = torch.device("cpu")
        self._recent: list[float] = []

    def options_dict(self) -> dict[str, Any]:
        return {}

    def prepare(self, train: TrainConfig, ctx: distributed.Context) -> None:
        self.device = ctx.device
        known = {"loss", *self.metrics} if self.val_loader is not None else {"loss"}
        if self.metric not in known:
            raise ValueError(
                f"rnnkit.fit: monitor must be one of {', '.join(sorted(known))}; got "
                f"{self.metric!r}" + ("" if self.val_loader is not None else " (no val_loader)")
            )

    def describe(self) -> str:
        return f"your {type(self.model).__name__} on your DataLoaders"

    def build_model(self) -> nn.Module:
        return self.model  # fit trains the model it was given, in place

    def batches(self, train: TrainConfig, ctx: distributed.Context) -> LoaderBatches:
        return LoaderBatches(self.train_loader)

    def loss(self, net: nn.Module, batch: Any, device: Any) -> Tensor:
        inputs, target = _split(_to(batch, device))
        loss = self.loss_fn(net(*inputs), target)
        self._recent.append(float(loss.detach()))
        return loss

    def items(self, batch: Any) -> int:
        first = batch[0] if isinstance(batch, (tuple, list)) else batch
        return int(first.size(0)) if isinstance(first, Tensor) and first.dim() else 1

    @property
    def scored_on(self) -> str:
        if self.val_loader is None:
            return "training (no val_loader: the mean loss since the last evaluation)"
        return "validation"

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        if self.val_loader is None:
            # Without validation data the running training loss is all there is to rank by.
            recent, self._recent = self._recent, []
            return {"loss": sum(recent) / len(recent) if recent else float("nan")}
        was_training = model.training
        model.eval()
        totals: dict[str, float] = {"loss": 0.0, **dict.fromkeys(self.metrics, 0.0)}
        count = 0
        try:
            for batch in self.val_loader:
                inputs, target = _split(_to(batch, self.device))
                out = model(*inputs)
                n = self.items(batch)
                totals["loss"] += float(self.loss_fn(out, target)) * n
                for name, fn in self.metrics.items():
                    totals[name] += float(fn(out, target)) * n
                count += n
        finally:
            model.train(was_training)
        if count == 0:
            raise ValueError("rnnkit.fit: val_loader yields no batch; expected at least one")
        return {k: v / count for k, v in totals.items()}


def fit(
    model: nn.Module,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any] | None = None,
    *,
    loss: Callable[[Any, Any], Tensor] = F.cross_entropy,
    metrics: dict[str, Metric] | None = None,
    monitor: str = "loss",
    higher_is_better: bool | None = None,
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
    train_config: TrainConfig | None = None,
    progress: TextIO | None = None,
    log: Callable[[str], None] | None = None,
    on_step: Callable[[Trainer], None] | None = None,
    **train_options: Any,
) -> Summary:
    """Train ``model`` on ``train_loader`` with rnnkit's loop; the best weights by
    ``monitor`` (a validation metric) are kept in ``out``/model.safetensors and loaded
    into ``model`` at the end.

    ``train_options`` are :class:`~rnnkit.train.TrainConfig` fields (``steps``,
    ``minutes``, ``lr``, ``eval_every``, ``precision``, ...); the default budget is 1000
    steps at lr 1e-3. ``resume=True`` continues the run in ``out`` exactly where it
    stopped (a folder without a checkpoint yet starts over).

    Example:
        >>> model = torch.nn.Linear(4, 2)  # doctest: +SKIP
        >>> rnnkit.fit(model, loader, val, steps=200, out="runs/mine")  # doctest: +SKIP
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"rnnkit.fit: model must be a torch.nn.Module; got {type(model).__name__}")
    _check_loaders(train_loader, val_loader)
    if not callable(loss):
        raise TypeError(
            f"rnnkit.fit: loss must be a function (output, target) -> Tensor; got "
            f"{type(loss).__name__}"
        )
    _check_arguments(metrics, monitor, higher_is_better, out, resume, train_config, train_options,
                     {"log": log, "on_step": on_step})  # fmt: skip
    metrics = dict(metrics or {})
    for name, fn in metrics.items():
        if not callable(fn):
            raise TypeError(
                f"rnnkit.fit: metrics[{name!r}] must be a function (output, target) -> "
                f"number; got {type(fn).__name__}"
            )
    if higher_is_better is None:
        higher_is_better = monitor != "loss" and "loss" not in monitor
    task = FitTask(model, train_loader, val_loader, loss, metrics, monitor, higher_is_better)
    if train_config is None:
        defaults = {"steps": 1000, "lr": 1e-3, "eval_every": 100}
        if any(train_options.get(k) is not None for k in ("steps", "minutes")):
            defaults = {k: v for k, v in defaults.items() if k not in ("steps", "minutes")}
        try:
            train_config = TrainConfig(**{**defaults, **train_options})
        except ValueError as err:  # TrainConfig's checks speak the command line's flags
            raise ValueError(f"rnnkit.fit: {python_names(str(err))}") from None
    elif train_options:
        raise TypeError("rnnkit.fit: give train_config or TrainConfig fields, not both")
    _check_machine(train_config)
    from rnnkit.train.run import launch

    if resume:
        if out is None:
            raise ValueError("rnnkit.fit: resume=True needs out= (the run folder to continue)")
        folder = RunFolder(out)
        folder.check_owned()
        config = folder.read_config()
        if config.task != "fit":
            raise RunFolderError(f"{out} is a run of task {config.task!r}, not of rnnkit.fit")
        start = folder.read_checkpoint()
        return launch(
            task,
            train_config,
            folder=folder,
            start=start,
            log=log,
            progress=progress,
            on_step=on_step,
        )
    if out is not None and (Path(out) / MANIFEST).exists():
        # Said here in fit's own words: the shared check names the command line's flags.
        raise RunFolderError(
            f"rnnkit.fit: out={os.fspath(out)!r} already holds a run; continue it with "
            "resume=True or choose another out"
        )
    summary = launch(task, train_config, out=out, log=log, progress=progress, on_step=on_step)
    return summary


def _check_arguments(
    metrics: object,
    monitor: object,
    higher_is_better: object,
    out: object,
    resume: object,
    train_config: object,
    train_options: dict[str, Any],
    callbacks: dict[str, object],
) -> None:
    """fit's other arguments, named before the loop starts: a wrong one failed later in
    Python's own words ("argument of type 'int' is not iterable", "'str' object is not
    callable") or, for a string resume or higher_is_better, was silently taken as true."""
    if metrics is not None and not isinstance(metrics, dict):
        raise TypeError(
            "rnnkit.fit: metrics must be a dict of name -> function (output, target) -> "
            f"number; got {type(metrics).__name__}"
        )
    if not isinstance(monitor, str):
        raise TypeError(f"rnnkit.fit: monitor must be a str; got {type(monitor).__name__}")
    if higher_is_better is not None and not isinstance(higher_is_better, bool):
        raise TypeError(f"rnnkit.fit: higher_is_better must be a bool; got {higher_is_better!r}")
    if out is not None and not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"rnnkit.fit: out must be a path; got {type(out).__name__}")
    if not isinstance(resume, bool):
        raise TypeError(f"rnnkit.fit: resume must be a bool; got {resume!r}")
    if train_config is not None and not isinstance(train_config, TrainConfig):
        raise TypeError(
            f"rnnkit.fit: train_config must be a TrainConfig; got {type(train_config).__name__}"
        )
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(train_options) - known)
    if unknown:
        raise TypeError(
            f"rnnkit.fit: unknown argument(s) {', '.join(unknown)}; expected fit's own or "
            f"TrainConfig fields ({', '.join(sorted(known))})"
        )
    for name, fn in callbacks.items():
        if fn is not None and not callable(fn):
            raise TypeError(f"rnnkit.fit: {name} must be a function; got {type(fn).__name__}")


def _check_loaders(train_loader: object, val_loader: object) -> None:
    """Loaders are iterated steps later, deep in the loop: a wrong one is named now."""
    for name, loader in (("train_loader", train_loader), ("val_loader", val_loader)):
        if name == "val_loader" and loader is None:
            continue
        if not isinstance(loader, Iterable):
            raise TypeError(
                f"rnnkit.fit: {name} must be an iterable of batches (e.g. a "
                f"torch.utils.data.DataLoader); got {type(loader).__name__}"
            )


def _check_machine(train: TrainConfig) -> None:
    """The device and precision, checked against this machine before the loop starts and
    in fit's keyword names: the loop's own check speaks the command line's flags."""
    try:
        autocast(resolve_device(train.device), train.precision)
    except ValueError as err:
        raise ValueError(f"rnnkit.fit: {python_names(str(err))}") from None


def python_names(message: str) -> str:
    """``message`` with each command-line flag (``--eval-every``) as fit's keyword
    argument (``eval_every``)."""
    return re.sub(r"--([a-z][a-z0-9-]*)", lambda m: m.group(1).replace("-", "_"), message)
