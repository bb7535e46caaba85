"""Pretrained folders: a trained model as a folder of plain files, loaded locally only.

A run folder already is one: :func:`load_pretrained` reads it as it is. :func:`save_pretrained`
writes a new, slimmer one - ``config.json``, ``model.safetensors``, ``metrics.csv`` (from a
run), ``loss.png`` and the task's figures (from a run), and ``README.md``, the model card -
from a run folder or from a model object. The layout is a plain folder: a model hub client
(``huggingface_hub.upload_folder``) uploads it as it is, and rnnkit needs no such client to
write or read it. Nothing is ever downloaded: a name that is not a local folder is refused.

The new folder is assembled under a temporary name beside it and renamed into place, so a
kill leaves either no folder or a complete one; an existing folder that is not empty is
never written into. The temporary folder is named by the saving process, as
:func:`rnnkit.train.files.atomic_write`'s files are: the next save of the same folder
removes one whose process was killed.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rnnkit.tasks import get_task
from rnnkit.train import card
from rnnkit.train.files import (
    atomic_write,
    read_json,
    remove_stale_temps,
    save_tensors,
    temp_folder,
)
from rnnkit.train.metrics import read_csv, to_csv
from rnnkit.train.run import load
from rnnkit.train.runfolder import (
    CONFIG,
    FORMAT,
    LOSS_PLOT,
    METRICS,
    MODEL,
    RunConfig,
    RunFolder,
    RunFolderError,
    check_fits,
    enclosing_run,
    not_found,
    parse_config,
)


def load_pretrained(
    folder: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    model: nn.Module | None = None,
) -> nn.Module:
    """The model of a local run or pretrained folder (its best weights), in eval mode.

    :func:`rnnkit.load` with the folder checked first: a path that is not a local folder
    (a symbolic link is not followed), or a folder rnnkit did not write, is refused in one
    line. Nothing is downloaded.
    For a model of :func:`rnnkit.fit`, pass the ``model`` to load the weights into.

    Example (a run of :func:`rnnkit.fit`, two steps, in a temporary folder)::

        >>> import tempfile, torch, rnnkit
        >>> batches = [(torch.randn(8, 4), torch.randint(0, 2, (8,)))]
        >>> model = torch.nn.Linear(4, 2)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     run = f"{tmp}/run"
        ...     _ = rnnkit.fit(model, batches, batches, steps=2, out=run, log=lambda line: None)
        ...     loaded = rnnkit.load_pretrained(run, model=torch.nn.Linear(4, 2))
        >>> torch.equal(loaded.weight, model.weight), loaded.training
        (True, False)

    A run of ``rnnkit train lm`` brings its own model::

        >>> model = rnnkit.load_pretrained("runs/lm")  # doctest: +SKIP
    """
    if not isinstance(folder, (str, os.PathLike)):  # Path() failed in its own words
        raise TypeError(f"load_pretrained: folder must be a path; got {type(folder).__name__}")
    path = Path(folder)
    if path.is_symlink():  # named, not followed: as every reader of a run folder does
        raise RunFolderError(not_found(path))
    if not path.exists():
        raise RunFolderError(
            f"pretrained folder not found: {path} (load_pretrained reads a local folder and "
            "downloads nothing)"
        )
    if not path.is_dir():
        raise RunFolderError(f"{path} is not a folder; load_pretrained reads a folder")
    _check_rnnkit(path)
    return load(path, device=device, model=model)


def save_pretrained(
    source: nn.Module | str | os.PathLike[str],
    folder: str | os.PathLike[str],
    *,
    config: RunConfig | str | os.PathLike[str] | None = None,
) -> Path:
    """Write the pretrained folder ``folder`` from a run folder or a model; its path.

    ``source`` is a run (or pretrained) folder - its best weights, config, metrics and
    figures are copied - or a model object. A model needs its config: the one
    :func:`rnnkit.load`/:func:`load_pretrained` recorded on it, or ``config`` (a
    :class:`RunConfig`, or a folder whose ``config.json`` to use); its weights must fit it.
    ``folder`` must not exist or be empty: nothing is overwritten. It must not be inside a
    run folder (or be one): a run holds only what rnnkit writes there.

    Example (a run of :func:`rnnkit.fit`, two steps, published; all in a temporary folder)::

        >>> import tempfile, torch, rnnkit
        >>> batches = [(torch.randn(8, 4), torch.randint(0, 2, (8,)))]
        >>> model = torch.nn.Linear(4, 2)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     run = f"{tmp}/run"
        ...     _ = rnnkit.fit(model, batches, batches, steps=2, out=run, log=lambda line: None)
        ...     folder = rnnkit.save_pretrained(run, f"{tmp}/published")
        ...     print(*sorted(path.name for path in folder.iterdir()))
        ...     again = rnnkit.load_pretrained(folder, model=torch.nn.Linear(4, 2))
        README.md config.json loss.png metrics.csv model.safetensors
        >>> torch.equal(again.weight, model.weight)
        True

    A run folder, or a model that :func:`rnnkit.load` gave::

        >>> rnnkit.save_pretrained("runs/lm", "published/lm")  # doctest: +SKIP
        >>> rnnkit.save_pretrained(model, "published/lm-tuned")  # doctest: +SKIP
    """
    if not isinstance(folder, (str, os.PathLike)):  # Path() failed in its own words
        raise TypeError(f"save_pretrained: folder must be a path; got {type(folder).__name__}")
    dest = Path(folder)
    _check_destination(dest)
    if isinstance(source, nn.Module):
        files = _from_model(source, config)
    elif isinstance(source, (str, os.PathLike)):
        if config is not None:
            raise TypeError("save_pretrained: config= is for a model object; a folder has its own")
        files = _from_folder(Path(source))
    else:
        raise TypeError(
            "save_pretrained: source must be a run folder or a torch.nn.Module; got "
            f"{type(source).__name__}"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_folder(dest)  # named by this process: a later save removes it if killed
    try:
        for name, data in files.items():
            if name == MODEL:
                weights, meta = data
                save_tensors(tmp / MODEL, weights, meta=meta)
            else:
                atomic_write(tmp / name, data)
        card.write(tmp, name=dest.name)
        os.chmod(tmp, 0o755)  # mkdtemp makes folders private; a pretrained folder is shared
        try:
            os.rename(tmp, dest)  # replaces only a missing or empty folder
        except OSError:
            _check_destination(dest)  # filled meanwhile: say so in one line
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    remove_stale_temps(dest, folders=True)  # what a killed save of this folder left
    return dest


# ---- pieces -------------------------------------------------------------------------------


def _check_destination(dest: Path) -> None:
    # A run holds only what rnnkit writes there: a folder saved inside it (or its
    # temporary beside the destination) would make its --resume refuse it, as the CLI's
    # outputs are refused (rnnkit.cli._outputs.check_outside_runs). The name as given and
    # the real path are both checked: a link may lead into a run.
    for name in (dest, dest.resolve()):
        run = enclosing_run(name, itself=True)
        if run is not None and run == Path(os.path.abspath(name)):  # the rnnkit folder itself
            raise ValueError(
                f"{dest} already exists and is not empty (an rnnkit folder); save_pretrained "
                "writes a new folder and overwrites nothing"
            )
        if run is not None:
            raise ValueError(
                f"save_pretrained: folder {dest}: expected a path outside any run folder; got "
                f"one inside the run folder {run}"
            )
    if dest.is_symlink():
        raise ValueError(f"{dest} is a symbolic link; save_pretrained writes a new folder")
    if dest.exists() and not dest.is_dir():
        raise ValueError(f"{dest} exists and is not a folder; save_pretrained writes a new folder")
    if dest.is_dir() and any(dest.iterdir()):
        raise ValueError(
            f"{dest} already exists and is not empty; save_pretrained writes a new folder and "
            "overwrites nothing"
        )


def _check_rnnkit(path: Path) -> dict[str, Any]:
    """config.json of an rnnkit folder, or a one-line refusal naming what is there."""
    config = path / CONFIG
    if not config.exists() and not config.is_symlink():
        raise RunFolderError(f"{path} is not an rnnkit folder: it has no {CONFIG}")
    data = read_json(config)
    fmt = data.get("format") if isinstance(data, dict) else None
    if not (isinstance(fmt, str) and fmt.startswith("rnnkit.")):
        raise RunFolderError(
            f"{path} is not an rnnkit folder: its {CONFIG} has format {fmt!r}, not {FORMAT!r}"
        )
    return data


def _from_folder(path: Path) -> dict[str, Any]:
    """The files of a pretrained folder, read from a run or pretrained folder."""
    if not path.is_dir() or path.is_symlink():
        raise RunFolderError(not_found(path))
    _check_rnnkit(path)
    folder = RunFolder(path)
    config = folder.read_config()
    extra = get_task(config.task).extra_files if config.task != "fit" else ()
    manifest = folder.read_manifest()
    weights = folder.best_weights()
    if config.task != "fit":  # refused now when the weights do not fit the config
        check_fits(card.build_model(config, path / CONFIG).state_dict(), weights, path / MODEL)
    best = (manifest or {}).get("best") or {}
    step = best.get("step") if manifest is not None else card.best_step(path, None)
    files: dict[str, Any] = {
        CONFIG: (path / CONFIG).read_bytes(),
        MODEL: (weights, {"step": str(step)} if step is not None else None),
    }
    if (path / METRICS).is_file():
        up_to = int(manifest["step"]) if manifest else 2**62  # rows a kill left uncommitted
        files[METRICS] = to_csv(read_csv(path / METRICS, up_to))
    for name in (LOSS_PLOT, *extra):
        if (path / name).is_file() and not (path / name).is_symlink():
            files[name] = (path / name).read_bytes()
    return files


def _from_model(model: nn.Module, config: Any) -> dict[str, Any]:
    """The files of a pretrained folder of ``model``: its config and its weights."""
    saved: dict[str, torch.Tensor] | None = None  # a fit run's own weights, to fit against
    if config is None:
        config = getattr(model, "rnnkit_config", None)
        if not isinstance(config, RunConfig):
            raise ValueError(
                f"save_pretrained: this {type(model).__name__} has no rnnkit config; give "
                "config= (the run folder it came from) or load it with rnnkit.load_pretrained"
            )
    elif isinstance(config, (str, os.PathLike)):
        where = Path(config)
        if where.name == CONFIG and where.is_file():
            where = where.parent
        if not where.is_dir():
            raise RunFolderError(f"config folder not found: {where}")
        _check_rnnkit(where)
        config = parse_config(read_json(where / CONFIG), str(where / CONFIG))
        if config.task == "fit" and (where / MODEL).is_file():
            saved = RunFolder(where).best_weights()
    elif not isinstance(config, RunConfig):
        raise TypeError(
            "save_pretrained: config must be a RunConfig or a folder holding config.json; got "
            f"{type(config).__name__}"
        )
    weights = model.state_dict()
    if config.task != "fit":  # refused now when the model is not the config's
        built = card.build_model(config, f"the {config.task} config")
        check_fits(built.state_dict(), weights, f"the {type(model).__name__} given")
    elif saved is not None:  # a fit run's config builds nothing; its weights show the model
        check_fits(saved, weights, f"the {type(model).__name__} given")
    data = config.to_dict()
    return {
        CONFIG: (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"),
        MODEL: (weights, None),
    }
