"""The run folder of a numbers run: JSON and safetensors only, every write atomic.

    RUN_DIR/config.json           {"format": "rnnkit.numbers", "format_version": 1,
                                   "task": "numbers", "config": {...}, "model": {...},
                                   "source_chars", "target_chars", "max_source_length",
                                   "max_target_length"}
    RUN_DIR/model.safetensors     the model's weights
    RUN_DIR/optimizer.safetensors the optimiser's tensors and the random-number states
    RUN_DIR/optimizer.json        step, parameter groups and the metadata to rebuild them
    RUN_DIR/metrics.csv           one row per evaluation

Each file is written to a temporary name and then moved over the old one with
``os.replace``, so an interrupted run never leaves a half-written checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from safetensors.torch import load_file

from rnnkit.models._config import config_from_dict
from rnnkit.seq2seq.data import CharVocab, NumbersTask
from rnnkit.seq2seq.model import Seq2Seq, Seq2SeqConfig
from rnnkit.train.checkpoint import (
    atomic_write,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_tensors,
)

TASK = "numbers"
FORMAT = "rnnkit.numbers"  # what "format" says in config.json; the language model writes its own
FORMAT_VERSION = 1  # bump when a run folder written by this version can no longer be read
C = TypeVar("C")


def dataclass_from_dict(cls: type[C], data: object, where: str) -> C:
    """``cls(**data)`` after checking keys and types; unknown keys are rejected."""
    return config_from_dict(cls, data, where=where)


# ---- atomic writes --------------------------------------------------------------------


def write_text(path: Path, text: str) -> None:
    atomic_write(path, text.encode("utf-8"))


# The tensors, and the optimiser's state as tensors + JSON, are written as the language
# model writes them.
write_tensors = save_tensors
optimizer_to_files = optimizer_to_tensors
optimizer_from_files = optimizer_from_tensors


# ---- a loaded run ---------------------------------------------------------------------


@dataclass
class NumbersRun:
    """A numbers run rebuilt from its folder: the model, the task and the vocabularies."""

    model: Seq2Seq
    task: NumbersTask
    src_vocab: CharVocab
    tgt_vocab: CharVocab
    max_source_length: int  # the longest input seen in training, in characters
    max_target_length: int  # the longest output seen in training, in characters
    meta: dict[str, Any]  # the whole config.json


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """``config.json`` of a numbers run; a clear error for anything else."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ValueError(f"{run_dir} is not a run folder: it has no config.json")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path} must hold a JSON object")
    fmt = meta.get("format")
    if fmt != FORMAT or meta.get("task") != TASK:
        what = meta.get("task") or ("language-model" if fmt == "rnnkit.charlm" else fmt)
        raise ValueError(f"{run_dir} is a run of task {what!r}, not a numbers (seq2seq) run")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path} has format_version {meta.get('format_version')!r}; this rnnkit reads "
            f"version {FORMAT_VERSION}"
        )
    return meta


def is_numbers_run(run_dir: str | Path) -> bool:
    """Whether ``run_dir``'s config.json says it is a numbers run (no error otherwise)."""
    try:
        meta = json.loads((Path(run_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("task") == TASK


def load_run(run_dir: str | Path) -> NumbersRun:
    """Rebuild a numbers run from ``config.json`` and ``model.safetensors``."""
    from rnnkit.seq2seq.train import NumbersConfig  # the training config lives with training

    meta = read_config(run_dir)
    required = ("config", "model", "source_chars", "target_chars", "max_source_length")
    missing = [k for k in (*required, "max_target_length") if k not in meta]
    if missing:
        raise ValueError(f"{run_dir}/config.json lacks the key(s) {', '.join(missing)}")
    config = dataclass_from_dict(NumbersConfig, meta["config"], "config.json: config")
    model_config = dataclass_from_dict(Seq2SeqConfig, meta["model"], "config.json: model")
    weights = Path(run_dir) / "model.safetensors"
    if not weights.is_file():
        raise ValueError(f"{run_dir} has no model.safetensors yet")
    model = Seq2Seq(model_config)
    model.load_state_dict(load_file(str(weights)))
    model.eval()
    return NumbersRun(
        model=model,
        task=config.task(),
        src_vocab=CharVocab(meta["source_chars"]),
        tgt_vocab=CharVocab(meta["target_chars"]),
        max_source_length=int(meta["max_source_length"]),
        max_target_length=int(meta["max_target_length"]),
        meta=meta,
    )
