"""Starting, resuming and loading a run of any task: every check before the first write.

:func:`train` is what ``rnnkit train TASK`` runs: it checks the options, the folder and the
data (and, to resume, every file of the checkpoint) without writing anything, then takes
the folder's lock, re-checks under it, and hands over to the :class:`Trainer`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import torch
from torch import nn

from rnnkit.tasks import get_task
from rnnkit.tasks.base import DerivedError, Task
from rnnkit.train import distributed
from rnnkit.train.card import build_recorded
from rnnkit.train.config import TrainConfig
from rnnkit.train.loop import Summary, Trainer, budget_reached
from rnnkit.train.runfolder import (
    MANIFEST,
    Checkpoint,
    RunConfig,
    RunFolder,
    RunFolderError,
    check_fits,
    enclosing_run,
    not_found,
)


def train(
    task: str,
    options: Any = None,
    train_config: TrainConfig | None = None,
    *,
    out: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | None = None,
    steps: int | None = None,
    minutes: float | None = None,
    log: Callable[[str], None] | None = None,
    progress: TextIO | None = None,
    on_step: Callable[[Trainer], None] | None = None,
) -> Summary:
    """Train a new run of ``task`` into ``out``, or continue the run in ``resume``.

    ``options`` is the task's ``Options`` (or a dict of its fields); ``train_config``
    defaults to the task's own. With ``resume`` only the budget (``steps``, ``minutes``)
    may change. ``on_step(trainer)`` runs after every step. Under torchrun every process
    calls this; rank 0 writes.
    """
    _check_arguments(options, train_config, out, resume, steps, minutes, log, on_step)
    if progress is not None and not callable(getattr(progress, "write", None)):
        # It failed at the first progress line, after the run folder was made.
        raise TypeError(
            "rnnkit.train: progress must be a text stream with write() (e.g. sys.stdout or "
            f"an open file) or None; got {type(progress).__name__}"
        )
    if resume is not None:
        folder, config, task_obj, start = _check_resume(resume, steps, minutes)
        if get_task(task).name != config.task:  # the run's own task trains on, whatever given
            raise ValueError(
                f"rnnkit.train: {resume} is a run of task {config.task!r}; got task {task!r}"
            )
        return launch(
            task_obj,
            config.train,
            folder=folder,
            start=start,
            log=log,
            progress=progress,
            on_step=on_step,
        )
    task_cls = get_task(task)
    task_obj = task_cls(_options(task_cls, options))
    train_config = train_config or task_cls.default_train()
    return launch(task_obj, train_config, out=out, log=log, progress=progress, on_step=on_step)


def _check_arguments(
    options: Any,
    train_config: Any,
    out: Any,
    resume: Any,
    steps: Any,
    minutes: Any,
    log: Any,
    on_step: Any,
) -> None:
    """Refuse what :func:`train` would ignore or fail on later in Python's own words: a
    resumed run keeps its options, training fields and folder (as ``--resume`` does), and
    ``steps`` and ``minutes`` change only a resumed run's budget."""
    for name, value in (("out", out), ("resume", resume)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"rnnkit.train: {name} must be a path; got {type(value).__name__}")
    if train_config is not None and not isinstance(train_config, TrainConfig):
        raise TypeError(
            f"rnnkit.train: train_config must be a TrainConfig (e.g. TrainConfig(steps=100)) "
            f"or None; got {type(train_config).__name__}"
        )
    for name, value in (("log", log), ("on_step", on_step)):
        if value is not None and not callable(value):
            raise TypeError(
                f"rnnkit.train: {name} must be a callable or None; got {type(value).__name__}"
            )
    if resume is not None:
        given = [n for n, v in (("options", options), ("train_config", train_config),
                                ("out", out)) if v is not None]  # fmt: skip
        if given:
            raise ValueError(
                f"rnnkit.train: resume continues {resume} with its own config.json; "
                f"{', '.join(given)} cannot be given with it (only steps and minutes)"
            )
    else:
        given = [n for n, v in (("steps", steps), ("minutes", minutes)) if v is not None]
        if given:
            raise ValueError(
                f"rnnkit.train: {' and '.join(given)} change the budget of a resumed run; "
                "a new run takes its budget from train_config (TrainConfig(steps=..., "
                "minutes=...))"
            )


def launch(
    task: Task,
    train_config: TrainConfig,
    *,
    out: str | os.PathLike[str] | None = None,
    folder: RunFolder | None = None,
    start: Checkpoint | None = None,
    log: Callable[[str], None] | None = None,
    progress: TextIO | None = None,
    on_step: Callable[[Trainer], None] | None = None,
    for_fit: bool = False,
) -> Summary:
    """Run ``task``: into a new folder ``out``, or on in the checked ``folder`` (resuming,
    from ``start`` when it has a checkpoint). Writes nothing until everything is checked.

    ``out`` None is a new folder ``runs/TASK-YYYYMMDD-HHMMSS`` (``-2``, ``-3``, ... when
    that name is taken). ``for_fit``: a refused folder is named in the words of
    :func:`rnnkit.fit` (``out=``, ``resume=True``), not of the command line.
    """
    log = log or _print
    resuming = folder is not None
    if out is not None and not os.fspath(out):
        # Only rnnkit.fit and rnnkit.train get here (the command line refuses --out ""
        # itself): named as their argument, not as the flag.
        raise ValueError("out must be a folder path; got an empty string")
    ctx = distributed.setup(train_config.device)
    trainer = None
    held = contextlib.ExitStack()  # SIGTERM held while a group that lost a process ends
    try:
        if folder is None:
            path = distributed.broadcast_str(ctx, str(out or new_run_path(task.name)))
            folder = RunFolder(path, task.extra_files)
            check_new_run(folder, for_fit)
        # Resuming, the task checks what the folder's config.json recorded.
        with recorded_in(folder.path / "config.json") if resuming else contextlib.nullcontext():
            task.prepare(train_config, ctx)
        config = RunConfig(task.name, task.options_dict(), train_config, task.derived)
        # Built (and, to resume, restored) before the lock: a checkpoint that does not fit
        # is refused with the folder untouched.
        trainer = Trainer(
            task, train_config, folder, ctx, start=start, out=progress, on_step=on_step
        )
        distributed.barrier(ctx)  # every process has checked before anything is written
        with folder.locked() if ctx.is_main else contextlib.nullcontext():
            if ctx.is_main:
                _prepare_folder(folder, config, start, resuming, log, for_fit)
                n = sum(p.numel() for p in trainer.model.parameters())
                at = f"; continuing at step {start.step}" if start is not None else ""
                log(f"{task.name}: {task.describe()}; run folder: {folder}")
                log(
                    f"model: {task.title(trainer.model)}; {n:,} parameters; processes: "
                    f"{ctx.world_size}{at}"
                )
            distributed.barrier(ctx)
            summary = trainer.fit()
            # The main process still writes the last checkpoint and the model card; no
            # process tears the group down under it (gloo can abort a peer at teardown).
            distributed.barrier(ctx)
            return summary
    except RuntimeError as err:
        lost = distributed.peer_lost(ctx, err)
        if lost is None:
            raise  # not a process gone: a bug, with its traceback
        # torchrun's SIGTERM must not cut the message short: ignored until the group is
        # torn down, then as before, for a caller that goes on (the command line, which
        # ends, ignores it from then on).
        held.enter_context(distributed.sigterm_held())
        what, rank = lost
        raise distributed.PeerLostError(f"{what}; {_after_loss(folder, for_fit)}", rank) from err
    finally:
        with held:
            # DistributedDataParallel's reducer holds the process group: freed first, or
            # the group's threads outlive its teardown and gloo can abort the process at
            # exit.
            del trainer
            distributed.teardown(ctx)


def _after_loss(folder: RunFolder | None, for_fit: bool) -> str:
    """What a run whose processes lost one of them leaves, and how to go on: read from the
    folder (the main process may have committed a checkpoint this process has not heard
    of). A checkpoint is committed whole or not at all, so the folder holds the last one."""
    again = "run it again" if for_fit else "run the command again"
    if folder is None:  # lost before the folder was even named: nothing written
        return f"no checkpoint was written: {again}"
    try:
        info = folder.read_manifest()
    except (RunFolderError, OSError):
        info = {}  # a checkpoint, but not readable here: the resume will say more
    if info is None:
        return f"no checkpoint was written: {again}"
    at = f" (step {info['step']})" if "step" in info else ""
    how = "continue it with resume=True" if for_fit else f"resume with --resume {folder}"
    return f"{folder} keeps the last checkpoint{at}: {how}"


def new_run_path(task_name: str) -> Path:
    """``runs/TASK-YYYYMMDD-HHMMSS``, or with ``-2``, ``-3``, ... after it when a run
    started in the same second has that name (a loop of short runs does)."""
    base = Path("runs") / f"{task_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = base, 1
    while path.exists() or path.is_symlink():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def _prepare_folder(
    folder: RunFolder,
    config: RunConfig,
    start: Any,
    resuming: bool,
    log: Callable[[str], None],
    for_fit: bool,
) -> None:
    """Under the lock: check again (another writer may have finished meanwhile), then
    clear a kill's leftovers and write config.json."""
    if not resuming:
        reuse = check_new_run(folder, for_fit)
        if reuse:
            log(reuse)
            folder.reset()
        folder.clean()  # a kill's temporary files
    else:
        info = folder.read_manifest()
        if (info or {}).get("step") != (start.step if start is not None else None):
            raise RunFolderError(f"{folder} changed while it was being checked; try again")
        folder.clean()
        folder.repair()
        if start is None:
            log(f"{folder} has no checkpoint yet: starting it from step 0")
    folder.write_config(config)


def check_new_run(folder: RunFolder, for_fit: bool = False) -> str | None:
    """Refuse a folder that is not ours, holds a run or lies in one; say when one is reused.
    ``for_fit``: named as rnnkit.fit's arguments, not as the command line's flags."""
    outer = enclosing_run(folder.path)
    if outer is not None:
        # The new folder would be something the outer run does not own: its --resume
        # would then refuse it.
        given = f"rnnkit.fit: out={str(folder)!r}" if for_fit else f"--out {folder}"
        raise RunFolderError(
            f"{given}: expected a folder outside any run folder; got one inside the "
            f"run folder {outer}, which holds only what rnnkit writes"
        )
    folder.check_owned()
    if (folder.path / MANIFEST).exists():
        if for_fit:
            raise RunFolderError(
                f"rnnkit.fit: out={str(folder)!r} already holds a run; continue it with "
                "resume=True or choose another out"
            )
        raise RunFolderError(
            f"{folder} already holds a run; continue it with --resume {folder} or choose "
            "another --out"
        )
    folder.check_not_pretrained(for_fit)
    if folder.has_config():
        folder.read_config()  # ours, or refused in one line
        return f"{folder} holds a run stopped before its first checkpoint; starting anew in it"
    return None


def _check_resume(
    resume: str | os.PathLike[str], steps: int | None, minutes: float | None
) -> tuple[RunFolder, RunConfig, Task, Any]:
    """Everything a resume needs, read and checked; nothing written."""
    probe = RunFolder(resume)
    if not probe.path.is_dir() and not probe.path.is_symlink():
        raise RunFolderError(not_found(probe.path))
    config = probe.read_config()
    task_cls = get_task(config.task)
    folder = RunFolder(resume, task_cls.extra_files)
    folder.check_owned()
    opts = task_cls.parse_options(config.options, where=f"{folder}/config.json: options")
    train_config = config.train
    if steps is not None or minutes is not None:
        budget = train_config.to_dict()
        budget.update(steps=steps, minutes=minutes)
        train_config = TrainConfig(**budget)
    start = folder.read_checkpoint()
    if start is not None:
        done = budget_reached(train_config, start.step, float(start.info["elapsed_s"]))
        if done is not None:
            raise RunFolderError(
                f"{folder} already reached its budget ({done}); give a larger --steps or --minutes"
            )
    config = RunConfig(config.task, config.options, train_config, config.derived)
    task = task_cls(opts, config.derived)
    build(task, folder)  # derived data that cannot rebuild the model is refused now
    if start is not None:  # checked before the data is read; the Trainer loads it later
        where = folder.path / start.info["tensors"]
        check_fits(build(task, folder).state_dict(), start.prefixed("model"), where)
    return folder, config, task, start


def build(task: Task, folder: RunFolder) -> nn.Module:
    """``task``'s model from its config alone; a config that cannot build it is refused
    in one line naming the file."""
    return build_recorded(task, folder.path / "config.json")


@contextlib.contextmanager
def recorded_in(config: Path) -> Iterator[None]:
    """Name ``config`` (a run's config.json) in front of a task's refusal of what the run
    recorded (:class:`~rnnkit.tasks.base.DerivedError`, whose message names only the
    key): the task checks values without knowing which folder they came from."""
    try:
        yield
    except DerivedError as err:
        raise RunFolderError(f"{config}: {err}") from None


def load(
    run_dir: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    model: nn.Module | None = None,
) -> nn.Module:
    """The trained model of a run folder of any task (its best weights), in eval mode.

    For a run of :func:`rnnkit.fit`, pass the ``model`` to load the weights into. The
    model keeps the run's config as ``model.rnnkit_config`` (a :class:`RunConfig`), so
    :func:`rnnkit.save_pretrained` can write it again.

    Example (a run of :func:`rnnkit.fit`, two steps, in a temporary folder)::

        >>> import tempfile, torch, rnnkit
        >>> batches = [(torch.randn(8, 4), torch.randint(0, 2, (8,)))]
        >>> model = torch.nn.Linear(4, 2)
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     run = f"{tmp}/run"
        ...     _ = rnnkit.fit(model, batches, batches, steps=2, out=run, log=lambda line: None)
        ...     loaded = rnnkit.load(run, model=torch.nn.Linear(4, 2))
        >>> torch.equal(loaded.weight, model.weight), loaded.training
        (True, False)

    A run of ``rnnkit train lm`` brings its own model::

        >>> model = rnnkit.load("runs/lm")  # doctest: +SKIP
        >>> print("".join(model.sample("def ", 100)))  # doctest: +SKIP
    """
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(
            f"rnnkit.load: model must be a torch.nn.Module to load the weights into (e.g. "
            f"MyModel(...)); got {type(model).__name__}"
        )
    device = _load_device(device)
    probe = RunFolder(run_dir)
    config = probe.read_config()
    owner = "the config" if model is None else f"the {type(model).__name__} given"
    if model is None:
        if config.task == "fit":
            raise RunFolderError(
                f"{run_dir} is a run of rnnkit.fit: give the model to load its weights into, "
                "rnnkit.load(run, model=MyModel(...))"
            )
        task_cls = get_task(config.task)
        folder = RunFolder(run_dir, task_cls.extra_files)
        opts = task_cls.parse_options(config.options, where=f"{run_dir}/config.json: options")
        model = build(task_cls(opts, config.derived), folder)
    else:
        folder = probe
    weights = folder.best_weights()
    check_fits(model.state_dict(), weights, folder.path / "model.safetensors", owner)
    model.load_state_dict(weights)
    # A plain attribute, not part of the state_dict. (torch's stub types an attribute set on a
    # Module as Tensor | Module; any value is accepted at run time.)
    model.rnnkit_config = config  # type: ignore[assignment]
    return model.to(device).eval()


def _load_device(device: object) -> torch.device:
    """``device`` as a torch.device this torch can use, checked before any file is read;
    torch's own refusal came last and named no argument (or, for a missing GPU, was an
    AssertionError)."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError(
            f"rnnkit.load: device must be a str or torch.device such as 'cpu' or 'cuda:0'; "
            f"got {type(device).__name__}"
        )
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(
            f"rnnkit.load: device must name a torch device such as 'cpu' or 'cuda:0'; got "
            f"{device!r}"
        ) from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (dev.index or 0) >= count:
            raise ValueError(
                f"rnnkit.load: device {str(dev)!r} is not available; this torch sees "
                f"{count} CUDA device(s)"
            )
    return dev


def _options(task_cls: type[Task], options: Any) -> Any:
    if options is None:
        return task_cls.Options()
    if isinstance(options, task_cls.Options):
        return options
    if isinstance(options, dict):
        return task_cls.parse_options(options, where=f"{task_cls.name} options", partial=True)
    raise TypeError(
        f"options of task {task_cls.name!r} must be a {task_cls.Options.__name__} or a dict; "
        f"got {type(options).__name__}"
    )


def _print(text: str) -> None:
    print(text, flush=True)
