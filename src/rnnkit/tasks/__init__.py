"""The tasks `rnnkit train TASK` can name: one registry, one module per task.

Modules are imported on first use, so ``import rnnkit`` reads no task's data package.
A new task is a :class:`~rnnkit.tasks.base.Task` subclass in its own module and one line
here.
"""

from __future__ import annotations

import importlib

from rnnkit.tasks.base import BatchSource, Task

# name -> "module:Class"
REGISTRY: dict[str, str] = {
    "lm": "rnnkit.tasks.lm:LanguageModelTask",
    "numbers": "rnnkit.tasks.numbers:NumbersTask",
    "adding": "rnnkit.tasks.memory:AddingTask",
    "copy": "rnnkit.tasks.memory:CopyTask",
    "selective-copy": "rnnkit.tasks.memory:SelectiveCopyTask",
    "tag": "rnnkit.tasks.tag:TagTask",
    "forecast": "rnnkit.tasks.forecast:ForecastTask",
    "classify": "rnnkit.tasks.classify:ClassifyTask",
}
NAMES = tuple(REGISTRY)


class UnknownTaskError(ValueError):
    pass


def get_task(name: str) -> type[Task]:
    """The task class registered as ``name``; a one-line error naming the choices."""
    if name not in REGISTRY:
        raise UnknownTaskError(f"task must be one of {', '.join(NAMES)}; got {name!r}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["NAMES", "REGISTRY", "BatchSource", "Task", "UnknownTaskError", "get_task"]
