"""The run folder: one layout for every task, and the promises it keeps.

    config.json                      task, format version, every option, what the task
                                     derived from its data (vocabularies, sizes); usable
                                     as ``--config`` to start a new run
    model.safetensors                the weights with the best validation score so far
    train_state.json                 the manifest: step, best score, optimiser settings,
                                     data position; names the tensor file it belongs to
    train_state-<step>.safetensors   weights, optimiser moments, every RNG, carried state
    metrics.csv                      step, time, split, metric, value: every evaluation
    loss.png                         the curves
    README.md                        the model card (see :mod:`rnnkit.train.card`)
    .lock                            held (flock) by the one process writing the run

A checkpoint is committed as one unit: the tensors are written under a new name, then
``metrics.csv``, then the small manifest is renamed into place (the commit), then the new
best weights are copied to ``model.safetensors``, and only then are older tensor files
removed. A kill at any moment leaves either the old checkpoint or the new one. If it lands
between the commit and the copy, the manifest says so and the copy is redone (or, when
loading, read from the checkpoint).

rnnkit writes only the names above (plus a task's own, such as ``confusion.png``) and its
temporary files; a folder holding anything else is not an rnnkit run and is refused, and
symbolic links are never followed. ``README.md`` is rnnkit's only when it carries the
card's marker (:data:`CARD_MARK`): a user's own README.md is never rewritten or removed.

A folder with ``model.safetensors`` and no manifest is a pretrained folder
(:func:`rnnkit.save_pretrained`): it loads like a run, but holds no training state to
continue and is never trained into (its weights would be replaced).
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from rnnkit._version import __version__
from rnnkit.train.config import TrainConfig
from rnnkit.train.files import (
    TEMP_SUFFIX,
    atomic_write,
    load_tensors,
    marked,
    read_json,
    save_tensors,
    tensors_meta,
    write_json,
)

FORMAT = "rnnkit.run"
FORMAT_VERSION = 2  # 1 was the per-task folders of rnnkit 0.1 ("rnnkit.charlm", ...)
CONFIG = "config.json"
MODEL = "model.safetensors"
MANIFEST = "train_state.json"
METRICS = "metrics.csv"
LOSS_PLOT = "loss.png"
LOCK = ".lock"
CARD = "README.md"  # owned only when it carries CARD_MARK (see is_card)
CARD_MARK = "<!-- rnnkit model card: generated from config.json and metrics.csv -->"
OWNED = (CONFIG, MODEL, MANIFEST, METRICS, LOSS_PLOT, LOCK)
_STATE = re.compile(r"train_state-(\d{8})\.safetensors")
_TEMP = re.compile(r"\..+\.[A-Za-z0-9_]+" + re.escape(TEMP_SUFFIX))
# What creating or writing in a folder this process may not write fails with.
_NOT_PERMITTED = (errno.EACCES, errno.EPERM, errno.EROFS)
# What `rnnkit export RUN` writes into the run by default (rnnkit.cli.export).
_EXPORTED = re.compile(r"model-(step|sequence)(\.int8)?\.onnx")
CONFIG_KEYS = ("format", "format_version", "rnnkit_version", "task", "options", "train", "derived")


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked; the message is one line."""


def not_found(path: Path) -> str:
    """Why ``path`` is no run folder, when it is no folder at all."""
    if path.is_symlink():
        return f"{path} is a symbolic link; expected a run folder (rnnkit does not follow links)"
    if path.exists():
        return f"{path} is a file; expected a run folder"
    return f"run folder not found: {path}"


@dataclass
class RunConfig:
    """What ``config.json`` holds. ``options`` are the task's own (see its ``Options``)."""

    task: str
    options: dict[str, Any]
    train: TrainConfig
    derived: dict[str, Any] = field(default_factory=dict)  # vocabularies, sizes, splits

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "rnnkit_version": __version__,
            "task": self.task,
            "options": self.options,
            "train": self.train.to_dict(),
            "derived": self.derived,
        }


def parse_config(data: object, where: str, *, partial: bool = False) -> RunConfig:
    """A :class:`RunConfig` from JSON; ``partial`` (a ``--config`` file) allows omissions.

    The task's own options are checked by the task (see :mod:`rnnkit.tasks`).
    """
    if not isinstance(data, dict):
        raise RunFolderError(f"{where} must hold a JSON object; got {type(data).__name__}")
    fmt = data.get("format", FORMAT if partial else None)
    if fmt != FORMAT:
        what = f"format {fmt!r}" if fmt is not None else "no format"
        raise RunFolderError(
            f"{where} has {what}; this rnnkit reads {FORMAT!r} run folders (version "
            f"{FORMAT_VERSION}) - runs of rnnkit 0.1 must be trained again"
        )
    version = data.get("format_version", FORMAT_VERSION if partial else None)
    if version != FORMAT_VERSION:
        raise RunFolderError(
            f"{where} has format_version {version!r} (rnnkit "
            f"{data.get('rnnkit_version', '?')}); this rnnkit {__version__} reads "
            f"version {FORMAT_VERSION}"
        )
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise RunFolderError(f"{where}: unknown key(s) {', '.join(unknown)}")
    required = ("task",) if partial else CONFIG_KEYS
    missing = [k for k in required if k not in data]
    if missing:
        raise RunFolderError(f"{where}: missing key(s) {', '.join(missing)}")
    task = data["task"]
    if not isinstance(task, str):
        raise RunFolderError(f"{where}: task must be a string; got {task!r}")
    options, derived = data.get("options", {}), data.get("derived", {})
    for key, value in (("options", options), ("derived", derived)):
        if not isinstance(value, dict):
            raise RunFolderError(f"{where}: {key} must be a JSON object")
    given = data.get("train", {})
    if partial and isinstance(given, dict) and not any(k in given for k in ("steps", "minutes")):
        # A config file may leave the budget to the task's defaults or the command line:
        # its other fields are checked here against a stand-in budget.
        given = {**given, "steps": 1}
    try:
        train = TrainConfig.from_dict(given, where=f"{where}: train", partial=True)
    except ValueError as err:
        raise RunFolderError(str(err)) from None
    return RunConfig(task, options, train, derived)


@dataclass
class Checkpoint:
    """A committed training state: the manifest's JSON and the tensors it names."""

    step: int
    info: dict[str, Any]
    tensors: dict[str, Tensor]

    def prefixed(self, prefix: str) -> dict[str, Tensor]:
        """The tensors under ``prefix.`` with the prefix removed ("model." -> weights)."""
        n = len(prefix) + 1
        return {k[n:]: v for k, v in self.tensors.items() if k.startswith(prefix + ".")}


class RunFolder:
    """A run folder on disk. Reading never writes; writing needs :meth:`locked`."""

    def __init__(self, path: str | os.PathLike[str], extra_files: tuple[str, ...] = ()) -> None:
        if not isinstance(path, (str, os.PathLike)):
            # Path(3) said "expected str, bytes or os.PathLike object", naming no argument.
            raise TypeError(f"run folder must be a path; got {type(path).__name__}")
        self.path = Path(path)
        self.extra_files = extra_files  # a task's own files (e.g. confusion.png)

    def __str__(self) -> str:
        return str(self.path)

    # ---- reading ----------------------------------------------------------------------

    def entries(self) -> list[Path]:
        if self.path.is_symlink():
            raise RunFolderError(not_found(self.path))
        if not self.path.exists():
            return []
        if not self.path.is_dir():
            raise RunFolderError(f"{self.path} exists and is not a folder")
        return sorted(self.path.iterdir())

    def check_owned(self) -> None:
        """Refuse a folder holding a symlink or anything rnnkit does not write."""
        foreign, links = [], []
        for entry in self.entries():
            if entry.is_symlink():
                links.append(entry.name)
            elif entry.is_dir() or not self._owns(entry):
                foreign.append(entry.name)
        if links:
            raise RunFolderError(
                f"{self.path} holds symbolic link(s) {', '.join(links[:3])}; rnnkit does not "
                "follow links in a run folder"
            )
        if foreign:
            more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            raise RunFolderError(
                f"{self.path} holds files rnnkit did not write ({', '.join(foreign[:3])}{more}); "
                "it is not an rnnkit run folder: choose a new or empty folder"
            )

    def _owns(self, entry: Path) -> bool:
        """Whether rnnkit wrote ``entry``: by its name, and for README.md by its marker."""
        return is_card(entry) if entry.name == CARD else self._owned(entry.name)

    def _owned(self, name: str) -> bool:
        return (
            name in OWNED
            or name in self.extra_files
            or bool(_STATE.fullmatch(name))
            or bool(_TEMP.fullmatch(name))
            or bool(_EXPORTED.fullmatch(name))
        )

    def has_config(self) -> bool:
        return (self.path / CONFIG).is_file()

    def read_config(self) -> RunConfig:
        """The run's ``config.json``, checked. Every reader of a run (:func:`rnnkit.load`,
        ``eval``, ``generate``, ``export``, ...) starts here, so a symbolic link given as
        the folder is refused here, for all of them, as the folder's own links are."""
        if self.path.is_symlink() or not self.path.is_dir():
            raise RunFolderError(not_found(self.path))
        try:
            data = read_json(self.path / CONFIG)
        except FileNotFoundError:
            raise RunFolderError(f"{self.path} is not a run folder: it has no {CONFIG}") from None
        config = parse_config(data, str(self.path / CONFIG))
        from rnnkit.tasks import NAMES  # here: the tasks import the training package

        if config.task != "fit" and config.task not in NAMES:
            # Said here, naming the file: found later, by the task registry, it named none.
            raise RunFolderError(
                f"{self.path / CONFIG}: task must be one of {', '.join(NAMES)} or fit; got "
                f"{config.task!r}"
            )
        return config

    def read_manifest(self) -> dict[str, Any] | None:
        """The manifest, or None before the first checkpoint; checked for its keys."""
        path = self.path / MANIFEST
        if not path.exists() and not path.is_symlink():
            return None
        info = read_json(path)
        if not isinstance(info, dict):
            raise RunFolderError(f"{path} is corrupt: it is not a JSON object")
        step, name = info.get("step"), info.get("tensors")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise RunFolderError(f"{path} is corrupt: step is {step!r}")
        if not isinstance(name, str) or _STATE.fullmatch(name) is None:
            raise RunFolderError(f"{path} is corrupt: it names no tensor file")
        for key in ("elapsed_s", "optimizer", "best", "data", "task", "world_size"):
            if key not in info:
                raise RunFolderError(f"{path} is corrupt: it has no {key!r}")
        # Checked now, before a resume writes anything: a best value of another type
        # failed only at the first evaluation's comparison, after config.json was rewritten.
        why = _best_problem(info["best"], step)
        if why is not None:
            raise RunFolderError(f"{path} is corrupt: {why}")
        return info

    def read_checkpoint(self, for_fit: bool = False) -> Checkpoint | None:
        """The committed training state, or None before the first checkpoint; a
        pretrained folder (weights, no manifest) is refused: it has nothing to continue.
        ``for_fit``: refused in the words of :func:`rnnkit.fit`."""
        info = self.read_manifest()
        if info is None:
            self.check_not_pretrained(for_fit)
            return None
        tensors = load_tensors(self.path / info["tensors"])
        if not any(k.startswith("model.") for k in tensors):
            raise RunFolderError(f"{self.path / info['tensors']} holds no model weights")
        return Checkpoint(int(info["step"]), info, tensors)

    def is_pretrained(self) -> bool:
        """Weights without a manifest: what :func:`rnnkit.save_pretrained` writes. A run
        copies its best weights only after its manifest, so no kill leaves this."""
        model = self.path / MODEL
        return (model.exists() or model.is_symlink()) and not (self.path / MANIFEST).exists()

    def check_not_pretrained(self, for_fit: bool = False) -> None:
        """Refuse to train into a pretrained folder: it would replace its weights.
        ``for_fit``: named as rnnkit.fit's ``out``, which the command line's ``--config``
        does not start (a run of rnnkit.fit trains in Python only)."""
        if self.is_pretrained() and for_fit:
            raise RunFolderError(
                f"rnnkit.fit: out={str(self.path)!r} is a pretrained folder ({MODEL}, no "
                f"{MANIFEST}); expected a new or empty folder, or a run to resume: a "
                "pretrained folder is not trained into (choose another out)"
            )
        if self.is_pretrained():
            raise RunFolderError(
                f"{self.path} holds {MODEL} but no {MANIFEST}: a pretrained folder has no "
                f"training state to continue and is not trained into; start a new run from "
                f"its options with --config {self.path / CONFIG} --out NEW"
            )

    def best_weights(self) -> dict[str, Tensor]:
        """The best weights: ``model.safetensors``, or the checkpoint's when that copy is
        older than the manifest says (a kill between the commit and the copy)."""
        info = self.read_manifest()
        model = self.path / MODEL
        if info is not None:
            best = info.get("best") or {}
            if best.get("step") == info["step"] and _step_of(model) != info["step"]:
                ckpt = self.read_checkpoint()
                assert ckpt is not None
                return ckpt.prefixed("model")
        ranked = (info or {}).get("best") or {}
        if not model.exists() and info is not None and ranked.get("step") is None:
            # Evaluated, but no score was finite (a metric of nan at every evaluation): it
            # did not stop before its first evaluation.
            raise RunFolderError(
                f"{self.path} has no {MODEL}: no evaluation up to step {info['step']} scored "
                f"a finite {ranked.get('metric')}, so no weights were kept; expected at "
                "least one finite score of the metric that ranks the checkpoints"
            )
        if not model.exists():
            raise RunFolderError(
                f"{self.path} has no {MODEL} yet: the run stopped before its first "
                "evaluation (continue it with --resume)"
            )
        return load_tensors(model)

    # ---- writing (under the lock) -----------------------------------------------------

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold ``.lock`` for the duration; a second writer is refused with the holder's pid."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:  # e.g. a file where a folder of the path should be
            if err.errno in _NOT_PERMITTED:
                raise RunFolderError(
                    f"cannot make the run folder {self.path}: {err.strerror}; expected a "
                    "path where this process may create a folder"
                ) from None
            raise RunFolderError(
                f"cannot make the run folder {self.path}: {err.strerror}; expected a path "
                "whose existing parts are folders"
            ) from None
        lock = self.path / LOCK
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise RunFolderError(
                    f"{lock} is a symbolic link; rnnkit does not follow it"
                ) from None
            if err.errno in _NOT_PERMITTED:
                raise RunFolderError(
                    f"cannot write in the run folder {self.path}: {err.strerror}; expected a "
                    "folder this process may write in"
                ) from None
            raise
        try:
            _flock(fd, lock)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def clean(self) -> None:
        """Remove temporary files and tensor files the manifest does not name (a kill's
        leftovers); called under the lock."""
        info = self.read_manifest()
        keep = info["tensors"] if info else None
        for entry in self.entries():
            if _TEMP.fullmatch(entry.name) or (_STATE.fullmatch(entry.name) and entry.name != keep):
                entry.unlink(missing_ok=True)

    def reset(self) -> None:
        """Remove every file of a run that never checkpointed, before a new run starts in it."""
        for entry in self.entries():
            if entry.name != LOCK and not entry.is_dir() and self._owns(entry):
                entry.unlink(missing_ok=True)

    def write_config(self, config: RunConfig) -> None:
        write_json(self.path / CONFIG, config.to_dict())

    def commit(
        self,
        step: int,
        tensors: dict[str, Tensor],
        info: dict[str, Any],
        metrics_csv: bytes,
        best_improved: bool,
    ) -> None:
        """Commit a checkpoint as one unit (see the module's docstring)."""
        name = f"train_state-{step:08d}.safetensors"
        save_tensors(self.path / name, tensors)
        atomic_write(self.path / METRICS, metrics_csv)
        write_json(self.path / MANIFEST, {**info, "step": step, "tensors": name})  # the commit
        if best_improved:
            weights = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
            save_tensors(self.path / MODEL, weights, meta={"step": str(step)})
        for entry in self.entries():
            if _STATE.fullmatch(entry.name) and entry.name != name:
                entry.unlink(missing_ok=True)

    def repair(self) -> None:
        """Redo the copy of the best weights a kill interrupted (under the lock)."""
        info = self.read_manifest()
        if info is None:
            return
        best = info.get("best") or {}
        if best.get("step") == info["step"] and _step_of(self.path / MODEL) != info["step"]:
            ckpt = self.read_checkpoint()
            assert ckpt is not None
            save_tensors(self.path / MODEL, ckpt.prefixed("model"), meta={"step": str(ckpt.step)})


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` is a run folder: it holds a manifest, or a ``config.json`` of this
    format (a run stopped before its first checkpoint has only that)."""
    if (path / MANIFEST).is_file():
        return True
    config = path / CONFIG
    if config.is_symlink() or not config.is_file():
        return False
    try:
        data = read_json(config)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("format") == FORMAT


def enclosing_run(path: str | os.PathLike[str], *, itself: bool = False) -> Path | None:
    """The run folder that holds ``path`` at any depth (or is ``path``, with ``itself``),
    or None. Anything written there that rnnkit does not own (a file, a folder) makes the
    run refuse ``--resume``."""
    full = Path(os.path.abspath(path))
    for folder in ([full] if itself else []) + list(full.parents):
        if is_run_folder(folder):
            return folder
    return None


def is_card(path: Path) -> bool:
    """Whether ``path`` is a model card rnnkit wrote (a plain file with the marker near
    its top); a symbolic link never is."""
    return marked(path, CARD_MARK)


def check_fits(
    own: dict[str, Tensor],
    weights: dict[str, Tensor],
    where: object,
    owner: str = "the config",
) -> None:
    """Refuse ``weights`` whose names or shapes differ from a model's ``own`` state_dict;
    ``owner`` is what built that model (the run's config, or a model the user gave)."""
    missing, unknown = sorted(set(own) - set(weights)), sorted(set(weights) - set(own))
    if missing or unknown:
        raise RunFolderError(
            f"{where} does not fit {owner}: missing {missing[:3]}, unknown {unknown[:3]}"
        )
    for name in sorted(weights):  # in name order: the same first mismatch on every load
        value = weights[name]
        if value.shape != own[name].shape:
            raise RunFolderError(
                f"{where}: {name} has shape {tuple(value.shape)}; {owner} expects "
                f"{tuple(own[name].shape)}"
            )


def _best_problem(best: object, step: int) -> str | None:
    """What is wrong with a manifest's ``best`` (``{"metric", "value", "step"}``, value
    and step null before a finite evaluation), or None. A missing entry is left to the
    resume, which names it."""
    if not isinstance(best, dict):
        return f"best must be a JSON object; got {json.dumps(best)}"
    value, at = best.get("value"), best.get("step")
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
    ):
        return f"best value must be a finite number or null; got {json.dumps(value)}"
    if at is not None and (isinstance(at, bool) or not isinstance(at, int) or not 0 <= at <= step):
        return f"best step must be an integer from 0 to {step} or null; got {json.dumps(at)}"
    return None


def _step_of(model: Path) -> int | None:
    if not model.is_file():
        return None
    step = tensors_meta(model).get("step")
    return int(step) if step is not None and step.isdigit() else None


def _flock(fd: int, lock: Path) -> None:
    try:
        import fcntl
    except ImportError:  # no flock (Windows): one writer is the user's to ensure
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
        raise RunFolderError(
            f"{lock.parent} is being written by another rnnkit process (pid {holder}); "
            "wait for it to finish or choose another folder"
        ) from None
