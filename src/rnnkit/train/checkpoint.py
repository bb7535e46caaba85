"""The run folder: what a training run writes, and how a model is loaded back from it.

    config.json                       model config, vocabulary, training config, corpus
    model.safetensors                 the weights with the best validation bpc so far
    train_state.json                  step, stream position, best bpc, optimiser settings
    train_state-<step>.safetensors    latest weights, optimiser moments, carried hidden
                                      state and RNG states (what --resume needs)
    metrics.csv, loss.png             the learning curves

No pickle anywhere: tensors go to safetensors, everything else to JSON. Every file is
written to a temporary file in the same folder and renamed over the old one (rename is
atomic on POSIX), so a run killed at any moment leaves the previous checkpoint intact.
The training state is two files; ``train_state.json`` names the tensor file it belongs
to and is renamed last, so the pair it points to is always complete.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from rnnkit import __version__
from rnnkit.data.vocab import Vocabulary
from rnnkit.models.lm import CharLM, CharLMConfig
from rnnkit.train.config import TrainConfig

FORMAT = "rnnkit.charlm"
FORMAT_VERSION = 1  # bump when a run folder written by this version can no longer be read
CONFIG = "config.json"
MODEL = "model.safetensors"
TRAIN_STATE = "train_state.json"
METRICS = "metrics.csv"
LOSS_PLOT = "loss.png"
_STATE_TENSORS = re.compile(r"train_state-\d{8}\.safetensors")


@dataclass
class RunConfig:
    """Everything ``config.json`` holds: enough to rebuild the model without the CLI."""

    model: CharLMConfig
    vocab: Vocabulary
    train: TrainConfig
    data: dict[str, Any]  # the corpus source, as rnnkit.data.corpus.load_corpus takes it

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "rnnkit_version": __version__,
            "model": self.model.to_dict(),
            "vocab": self.vocab.to_dict(),
            "train": self.train.to_dict(),
            "data": self.data,
        }

    @classmethod
    def from_dict(cls, data: object, where: str = CONFIG) -> RunConfig:
        if not isinstance(data, dict):
            raise ValueError(f"{where} must hold a JSON object")
        if data.get("format") != FORMAT:
            raise ValueError(f"{where} is not an rnnkit language-model run folder config")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"{where} has format_version {version!r}, written by rnnkit "
                f"{data.get('rnnkit_version', '?')}; this rnnkit {__version__} reads "
                f"version {FORMAT_VERSION}"
            )
        expected = {"format", "format_version", "rnnkit_version", "model", "vocab", "train", "data"}
        unknown = sorted(set(data) - expected)
        missing = sorted(expected - set(data))
        if unknown or missing:
            raise ValueError(
                f"{where}: unknown key(s) {unknown}, missing key(s) {missing}"
                if unknown
                else f"{where}: missing key(s) {', '.join(missing)}"
            )
        try:
            vocab = Vocabulary.from_dict(data["vocab"])
        except ValueError as err:
            raise ValueError(f"{where}: vocab: {err}") from None
        model = CharLMConfig.from_dict(data["model"], where=f"{where}: model")
        if model.vocab_size != len(vocab):
            raise ValueError(
                f"{where}: model.vocab_size is {model.vocab_size} but the vocabulary has "
                f"{len(vocab)} entries"
            )
        train = TrainConfig.from_dict(data["train"], where=f"{where}: train")
        if not isinstance(data["data"], dict):
            raise ValueError(f"{where}: data must be an object")
        return cls(model, vocab, train, data["data"])


# ---- atomic files ---------------------------------------------------------------------


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name points to them
        os.chmod(tmp, 0o644)  # mkstemp makes files private; run folders are shared results
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"run folder {path.parent} has no {path.name}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from None


def save_tensors(path: Path, tensors: dict[str, Tensor]) -> None:
    # safetensors wants contiguous CPU tensors that share no memory.
    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    atomic_write(path, st_save(flat))


def load_tensors(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"run folder {path.parent} has no {path.name}")
    try:
        return st_load(path.read_bytes())
    except SafetensorError as err:
        raise ValueError(f"{path} is truncated or corrupt ({err})") from None


# ---- config and model -----------------------------------------------------------------


def save_run_config(run_dir: Path, config: RunConfig) -> None:
    write_json(run_dir / CONFIG, config.to_dict())


def read_run_config(run_dir: str | os.PathLike[str]) -> RunConfig:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder not found: {run_dir}")
    return RunConfig.from_dict(read_json(run_dir / CONFIG), where=str(run_dir / CONFIG))


def save_model(run_dir: Path, model: CharLM) -> None:
    save_tensors(run_dir / MODEL, model.state_dict())


def load_weights(model: CharLM, tensors: dict[str, Tensor], where: str) -> None:
    """Load ``tensors`` into ``model``; a ValueError names what does not fit."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unknown = sorted(set(tensors) - set(own))
    if missing or unknown:
        raise ValueError(f"{where} does not fit the config: missing {missing}, unknown {unknown}")
    for name, value in tensors.items():
        if value.shape != own[name].shape:
            raise ValueError(
                f"{where}: {name} has shape {tuple(value.shape)}; the config expects "
                f"{tuple(own[name].shape)}"
            )
    model.load_state_dict(tensors)


def load(run_dir: str | os.PathLike[str], device: str | torch.device = "cpu") -> CharLM:
    """The model of a run folder (its best weights), in eval mode, ready to generate.

    Example:
        >>> model = rnnkit.load("runs/lstm")  # doctest: +SKIP
        >>> print("".join(model.sample("def ", 100)))  # doctest: +SKIP
    """
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    model = CharLM(config.model, config.vocab)
    load_weights(model, load_tensors(run_dir / MODEL), str(run_dir / MODEL))
    return model.to(device).eval()


# ---- training state -------------------------------------------------------------------


def save_train_state(
    run_dir: Path, step: int, tensors: dict[str, Tensor], info: dict[str, Any]
) -> None:
    """Write the tensors, then the JSON that points to them; then drop older tensor files."""
    name = f"train_state-{step:08d}.safetensors"
    save_tensors(run_dir / name, tensors)
    write_json(run_dir / TRAIN_STATE, {**info, "step": step, "tensors": name})
    for old in run_dir.glob("train_state-*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)


def load_train_state(run_dir: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    info = read_json(run_dir / TRAIN_STATE)
    name = info.get("tensors") if isinstance(info, dict) else None
    if not isinstance(name, str) or not _STATE_TENSORS.fullmatch(name):
        raise ValueError(f"{run_dir / TRAIN_STATE} is corrupt: it names no tensor file")
    return load_tensors(run_dir / name), info


def optimizer_to_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """An optimiser's state_dict split into tensors (safetensors) and the rest (JSON)."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, entry in sd["state"].items():
        for key, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_tensors(
    optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor], info: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    for name, value in info["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    groups = info["param_groups"]
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])  # JSON has no tuples
    optimizer.load_state_dict({"state": state, "param_groups": groups})
