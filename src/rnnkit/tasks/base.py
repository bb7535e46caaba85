"""What a task is: the part of training that is specific to one job.

A task says how to read its data and build its model from its options, what a batch is,
its loss, its metrics, and what to show at an evaluation. Everything else - optimiser and
schedule, budgets, evaluation and best-model keeping, progress, signals, checkpoints,
resume, DDP, device and precision - is :class:`rnnkit.train.Trainer`'s, once for all
tasks. A new task is one module with a :class:`Task` subclass and one registry entry in
:mod:`rnnkit.tasks`.
"""

from __future__ import annotations

import dataclasses
import os
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from rnnkit import _options
from rnnkit.train.config import TrainConfig
from rnnkit.train.distributed import Context


def model_device(model: nn.Module) -> torch.device:
    """Where a model's tensors live: its first parameter's device, or its first buffer's for
    a model with none (``rnnkit.quantize_dynamic`` packs every weight into buffers)."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal: 2 for a wide or full-width character (CJK,
    ``unicodedata.east_asian_width`` W or F), 0 for a combining mark, 1 for the rest; so
    that per-class lines align whatever script the names are in."""
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


def report_folder(out_dir: Any, figure: str) -> Path:
    """``out_dir`` made ready to hold a report's ``figure``: a folder, created if new.

    `rnnkit eval --out FILE` is refused before a report runs; a Python caller of a task's
    :meth:`Task.report` hears it here, before anything is written.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {out} is a file; expected a folder for {figure}")
    out.mkdir(parents=True, exist_ok=True)
    return out


class BatchSource(ABC):
    """An endless iterator of training batches whose position a checkpoint can restore.

    ``state_dict`` returns tensors (generator states) and JSON scalars (positions); the
    trainer stores them with the checkpoint and hands them back to ``load_state_dict``.
    """

    @abstractmethod
    def __next__(self) -> Any: ...

    def __iter__(self) -> Iterator[Any]:
        return self

    @abstractmethod
    def state_dict(self) -> dict[str, Any]: ...

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class SeededBatches(BatchSource):
    """A batch source whose draws come from one seeded ``torch.Generator``: its state is
    the position a checkpoint restores (subclasses add what else they keep)."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # A clone, never a view into other storage: set_state misreads a view's offset.
        self.generator.set_state(state["generator"].to("cpu", torch.uint8).clone())


# The options that name a task's data, by the names the tasks give them: files
# (stored as absolute paths) and the choices a file replaces. A new run from a config
# file that is given another source on the command line drops the file's whole source.
PATH_OPTIONS = ("text", "data", "test_data")
SOURCES = ("text", "corpus", "data", "dataset")  # each names the data by itself
SOURCE_OPTIONS = (*SOURCES, "test_data", "test_fraction", "format", "time_column")  # and its split


class DerivedError(ValueError):
    """What a run recorded about its data (``derived`` in its config.json) cannot be right:
    a hand-edited or damaged file.

    A task checks the values without knowing which folder they came from, so the message
    names the key ("derived: classes must be ..."); whoever read the folder names the file
    once, in front (:func:`rnnkit.train.run.recorded_in`).
    """


class Task(ABC):
    """One job rnnkit trains. Subclasses set the class attributes and the methods."""

    name: ClassVar[str]  # what `rnnkit train NAME` takes
    summary: ClassVar[str]  # one line for `rnnkit train --help`
    Options: ClassVar[type]  # a dataclass of the task's own options, built with option()
    train_defaults: ClassVar[dict[str, Any]] = {}  # TrainConfig fields this task changes
    # The validation metric that picks the best model, and its direction: set by each
    # task's class, or per instance where the caller names them (rnnkit.fit).
    metric: str
    higher_is_better: bool = False
    extra_files: ClassVar[tuple[str, ...]] = ()  # files of its own in the run folder
    # Options added after runs were saved, with the value that reproduces what such a
    # run did: an older config.json lacks them and reads as that value (a complete
    # options dict, partial=False; a new run's missing options take their defaults).
    added_options: ClassVar[dict[str, Any]] = {}

    @property
    def selects(self) -> bool:
        """Whether the evaluations choose the model kept (the best one). False where
        nothing is held out to choose on - a refit on every training example: each
        evaluation is only reported, and the model kept is the last."""
        return True

    @property
    def scored_on(self) -> str:
        """What the evaluations score, as the log names it: "validation", or where no
        data is held out, e.g. "training (no validation data)"."""
        return "validation"

    def __init__(self, options: Any, derived: dict[str, Any] | None = None) -> None:
        """``derived`` is what an earlier :meth:`prepare` found (read from config.json);
        None for a new run."""
        self.options = options
        self.derived: dict[str, Any] = dict(derived or {})

    def options_dict(self) -> dict[str, Any]:
        """The options as ``config.json`` stores them: a file the data came from as an
        absolute path, so that ``rnnkit train --config RUN/config.json`` finds it from any
        folder."""
        stored = dataclasses.asdict(self.options)
        for key in PATH_OPTIONS:
            if isinstance(stored.get(key), str) and stored[key]:
                stored[key] = os.path.abspath(stored[key])
        return stored

    @classmethod
    def parse_options(cls, data: object, where: str, partial: bool = False) -> Any:
        if isinstance(data, dict) and not partial:
            data = {**cls.added_options, **data}
        return _options.from_dict(cls.Options, data, where=where, partial=partial)

    @classmethod
    def default_train(cls, **given: Any) -> TrainConfig:
        """This task's TrainConfig: its defaults, then ``given``. A budget given (steps or
        minutes) replaces the default budget as a whole."""
        values = dict(cls.train_defaults)
        if any(given.get(k) is not None for k in ("steps", "minutes")):
            values.pop("steps", None)
            values.pop("minutes", None)
        values.update({k: v for k, v in given.items() if v is not None})
        return TrainConfig(**values)

    # ---- data (checked before any file is written) ------------------------------------

    @abstractmethod
    def prepare(self, train: TrainConfig, ctx: Context) -> None:
        """Read the data; fill ``self.derived`` on a new run; raise on any problem."""

    def describe(self) -> str:
        """One line on the data, printed when training starts."""
        return self.name

    # ---- model ------------------------------------------------------------------------

    @abstractmethod
    def build_model(self) -> nn.Module:
        """The model, from ``options`` and ``derived`` alone (loading needs no data)."""

    # ---- training ---------------------------------------------------------------------

    @abstractmethod
    def batches(self, train: TrainConfig, ctx: Context) -> BatchSource:
        """This process's training batches (its share of each global batch)."""

    @abstractmethod
    def loss(self, net: nn.Module, batch: Any, device: Any) -> Tensor:
        """The scalar training loss of ``batch`` (``net`` may be wrapped in DDP)."""

    def items(self, batch: Any) -> int:
        """How many examples (characters, sequences) ``batch`` holds, for throughput."""
        return 1

    item_name: str = "sequences"  # what the throughput counts; a task may set it per run

    def carried(self, ctx: Context) -> dict[str, Tensor]:
        """State a task carries from step to step (truncated BPTT's hidden state), whole
        over all processes; every process calls it at a checkpoint."""
        return {}

    def load_carried(self, tensors: dict[str, Tensor], ctx: Context) -> None:
        """Restore what :meth:`carried` returned (this process's share)."""
        return None

    # ---- evaluation -------------------------------------------------------------------

    @abstractmethod
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Validation metrics, including ``self.metric``; run on the main process."""

    def show(self, model: nn.Module, metrics: dict[str, float]) -> list[str]:
        """Lines to print after an evaluation (a sample, a baseline)."""
        return []

    def reached_goal(self, metrics: dict[str, float]) -> bool:
        """True to end training early (e.g. a task's goal, asked for by an option)."""
        return False

    def title(self, model: nn.Module) -> str:
        """The title of ``loss.png``: the model in a few words (the run's log adds its
        parameter count after it)."""
        return self.name

    def finish(self, model: nn.Module, run_dir: Any) -> list[str]:
        """Lines to print when training ends, given the best model (main process)."""
        return []

    def report(self, model: nn.Module, run_dir: Any, out_dir: Any) -> list[str]:
        """What `rnnkit eval RUN` prints for this task (after :meth:`prepare`): by default
        the validation metrics. A task with a test split scores it here, and may write
        figures (a confusion matrix) into ``out_dir``."""
        return [f"{name}: {value:.6g}" for name, value in self.evaluate(model).items()]
