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

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from rnnkit.seq2seq.data import CharVocab, NumbersTask
from rnnkit.seq2seq.model import Seq2Seq, Seq2SeqConfig

TASK = "numbers"
FORMAT = "rnnkit.numbers"  # what "format" says in config.json; the language model writes its own
FORMAT_VERSION = 1  # bump when a run folder written by this version can no longer be read
C = TypeVar("C")


def dataclass_from_dict(cls: type[C], data: object, where: str) -> C:
    """``cls(**data)`` after checking keys and types; unknown keys are rejected."""
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a JSON object; got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        if not _matches(value, hints[name]):
            raise ValueError(f"{where}: {name} has the wrong type; got {value!r}")
    return cls(**data)


def _matches(value: object, hint: Any) -> bool:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint) if isinstance(hint, type) else True


# ---- atomic writes --------------------------------------------------------------------


def write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_tensors(path: Path, tensors: dict[str, Tensor]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


# ---- optimiser state as tensors + JSON --------------------------------------------------


def optimizer_to_files(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split ``opt.state_dict()`` into named tensors and a JSON-able rest."""
    sd = opt.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in sd["state"].items():
        for key, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"state.{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_files(
    opt: torch.optim.Optimizer, tensors: dict[str, Tensor], meta: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("state."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for pid, entry in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(entry)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


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
