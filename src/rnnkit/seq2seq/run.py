"""A trained numbers run, rebuilt from its run folder for translation and scoring.

Numbers runs are trained by the one training loop (``rnnkit train numbers``, or
``rnnkit.train.train("numbers", ...)``; the task is :mod:`rnnkit.tasks.numbers`) into the
run folder every task shares (:mod:`rnnkit.train.runfolder`). :func:`load_run` reads its
``config.json`` and best weights and adds what translating needs: the pairs of the task,
the vocabularies and the longest input and output of the trained range.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from rnnkit.seq2seq.data import CharVocab, NumbersTask
from rnnkit.seq2seq.model import Seq2Seq
from rnnkit.train.runfolder import RunConfig, RunFolder

if TYPE_CHECKING:
    from rnnkit.tasks.numbers import NumbersOptions

TASK = "numbers"


@dataclass
class NumbersRun:
    """A numbers run rebuilt from its folder: the model, the task and the vocabularies."""

    model: Seq2Seq
    task: NumbersTask  # the pairs: language, direction, range and split
    src_vocab: CharVocab
    tgt_vocab: CharVocab
    max_source_length: int  # the longest input of the trained range's sample, in characters
    max_target_length: int  # the longest output of the trained range's sample, in characters
    options: NumbersOptions  # the task's options (rnnkit.tasks.numbers)
    config: RunConfig  # the whole config.json


def is_numbers_run(run_dir: str | os.PathLike[str]) -> bool:
    """Whether ``run_dir``'s config.json says it is a numbers run (no error otherwise)."""
    try:
        meta = json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("task") == TASK


def load_run(run_dir: str | os.PathLike[str], device: str | torch.device = "cpu") -> NumbersRun:
    """Rebuild the numbers run in ``run_dir`` (its best weights, in eval mode).

    A folder that is not a run, or a run of another task, is refused in one line.
    """
    from rnnkit.tasks.numbers import NumbersTask as Task  # imports rnnkit.seq2seq: not above
    from rnnkit.tasks.numbers import check_derived
    from rnnkit.train.run import load

    config = RunFolder(run_dir).read_config()
    if config.task != TASK:
        raise ValueError(f"{run_dir} is a run of task {config.task!r}, not a numbers (seq2seq) run")
    where = f"{Path(run_dir) / 'config.json'}"
    options = Task.parse_options(config.options, where=f"{where}: options")
    check_derived(config.derived, f"{where}: derived")
    model = load(run_dir, device)
    assert isinstance(model, Seq2Seq)
    d = config.derived
    return NumbersRun(
        model=model,
        task=options.pairs(),
        src_vocab=CharVocab(d["source_chars"]),
        tgt_vocab=CharVocab(d["target_chars"]),
        max_source_length=int(d["max_source_length"]),
        max_target_length=int(d["max_target_length"]),
        options=options,
        config=config,
    )
