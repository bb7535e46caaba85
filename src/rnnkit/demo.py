"""A one-minute demonstration: an LSTM learns the adding problem and its loss falls.

It is ``rnnkit train adding`` with a small LSTM and a high learning rate: the same loop,
the same run folder. Without ``out`` the run goes to a temporary folder, removed after.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO, cast

from rnnkit.models.memory import MemoryTaskConfig, baseline
from rnnkit.tasks.memory import AddingTask, MemoryOptions
from rnnkit.train import train
from rnnkit.train.config import autocast, resolve_device
from rnnkit.train.run import check_new_run
from rnnkit.train.runfolder import RunFolder

BASELINE_MSE = baseline(MemoryTaskConfig("adding"))  # 1/6: always predicting 1
EVAL_EVERY = 50


class _Lines(io.TextIOBase):
    """A text stream that hands each complete line to ``log``."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log, self.pending = log, ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.log(line)
        return len(text)


def run_demo(
    *,
    steps: int = 600,
    length: int = 50,
    batch: int = 64,
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    threads: int = 1,
    log: Callable[[str], None] = print,
) -> list[float]:
    """Train an LSTM on the adding problem; returns the validation MSE of each evaluation.

    The run is saved in ``out`` (``rnnkit.load(out)`` returns the model); without it,
    in a temporary folder that is removed afterwards.
    """
    # Checked before anything is printed: out=5 failed inside pathlib after the header
    # line, log=None at the first line logged.
    if out is not None and not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"run_demo: out must be a folder path or None; got {type(out).__name__}")
    if out is not None and not os.fspath(out):  # Path("") is ".": the run went into cwd
        raise ValueError("run_demo: out must name a folder; got an empty string")
    if not callable(log):
        raise TypeError(f"run_demo: log must be a function of one line; got {log!r}")
    options = MemoryOptions(length=length, cell="lstm", hidden_size=64, batch_size=batch)
    task = AddingTask(options)  # checks the options before anything is printed
    train_config = AddingTask.default_train(
        steps=steps,
        lr=1e-2,
        eval_every=EVAL_EVERY,
        log_every=EVAL_EVERY,
        seed=seed,
        device=device,
        precision=precision,
        threads=threads,
    )
    autocast(resolve_device(device), precision)  # a device or precision error comes first
    if out is not None:  # an existing run, a file, a link: refused before the header line
        check_new_run(RunFolder(out, AddingTask.extra_files))
    log(
        f"adding problem, T = {length}: an LSTM must remember two marked values across the "
        f"sequence; predicting 1 always gives MSE {task.baseline:.3f}"
    )
    # train's progress is typed typing.TextIO, which io.TextIOBase (_Lines) does not
    # subclass; _Lines has what train uses of a text stream.
    progress = cast(TextIO, _Lines(log))
    with tempfile.TemporaryDirectory(prefix="rnnkit-demo-") as scratch:
        folder = Path(out) if out is not None else Path(scratch) / "adding"
        summary = train(
            "adding", options, train_config, out=folder, log=lambda _: None, progress=progress
        )
        for line in summary.lines:
            log(line)
    if out is not None:
        log(f"run saved to {folder}; rnnkit.load({str(folder)!r}) returns the model")
    return [metrics["mse"] for _, _, metrics in summary.history]
