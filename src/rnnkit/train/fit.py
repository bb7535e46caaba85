"""``rnnkit.fit``: your model, your ``DataLoader``s, the same loop and run folder.

A batch is a tuple whose last element is the target and whose other elements are the
model's inputs: ``model(*batch[:-1])`` is scored by ``loss(output, batch[-1])``. With
:func:`rnnkit.data.pad_collate` a batch of variable-length sequences is
``(padded, lengths, labels)``, so the model is called as ``model(padded, lengths)``.
Checkpoints, resume (to the bit: the loader's shuffle order is replayed), progress,
signals, the non-finite guard and ``metrics.csv`` are those of every rnnkit task.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.tasks.base import BatchSource, Task
from rnnkit.train import distributed
from rnnkit.train.card import FIT_SCORED_ON_TRAINING
from rnnkit.train.config import BUDGET_KEYS, TrainConfig, autocast, resolve_device
from rnnkit.train.loop import Summary, Trainer
from rnnkit.train.runfolder import RunFolder, RunFolderError, check_fits

Metric = Callable[[Tensor, Tensor], float | Tensor]
_END = object()  # what next() gives at the end of an epoch


def accuracy(output: Tensor, target: Tensor) -> float:
    """The share of ``output.argmax(-1)`` equal to ``target`` (targets of -100 ignored):
    a count over a count, in float64 (nan when every target is -100)."""
    if not isinstance(output, Tensor) or not isinstance(target, Tensor):
        # A model returning a tuple or a dict failed in Python's words ("'dict' object has
        # no attribute 'argmax'").
        raise TypeError(
            "rnnkit.train.accuracy: output and target must be tensors (class scores, class "
            f"indices); got {type(output).__name__} and {type(target).__name__} (for a model "
            "that returns several values, give a metric that takes the scores from them)"
        )
    keep = target != -100
    scored = int(keep.sum())
    right = int((output.argmax(-1)[keep] == target[keep]).sum())
    return right / scored if scored else math.nan


class LoaderBatches(BatchSource):
    """Epoch after epoch of a ``DataLoader``, with a position a checkpoint restores.

    The RNG states at the start of each epoch are kept: replaying them rebuilds the
    epoch's shuffle order, and the batches already used are skipped.
    """

    def __init__(self, loader: Iterable[Any]) -> None:
        self.loader = loader
        self.epoch, self.index = 0, 0
        self._it: Iterator[Any] | None = None
        self._rng: Tensor | None = None
        self._gen: Tensor | None = None

    def _start_epoch(self) -> None:
        self._rng = torch.get_rng_state()
        gen = getattr(self.loader, "generator", None)
        self._gen = gen.get_state() if isinstance(gen, torch.Generator) else None
        self._it = self._iterate()

    def _iterate(self) -> Iterator[Any]:
        """A new pass over the loader. A sampler with ``set_epoch`` (a
        ``DistributedSampler``) is told the epoch first, as PyTorch asks of the loop that
        owns the epochs: without it every epoch is shuffled in the same order."""
        set_epoch = getattr(getattr(self.loader, "sampler", None), "set_epoch", None)
        if callable(set_epoch):
            set_epoch(self.epoch)
        return iter(self.loader)

    def __next__(self) -> Any:
        if self._it is None:
            self._start_epoch()
        assert self._it is not None
        try:
            batch = next(self._it)
        except RuntimeError as err:
            # torch's default collate stacks the items of a batch: sequences of different
            # lengths (a .ts file, tagged lines) need padding, and the error named neither.
            raise _unstackable("train_loader", err) from err
        except StopIteration:
            if self.index == 0:
                raise ValueError(
                    "rnnkit.fit: train_loader yields no batch; expected at least one"
                ) from None
            self.epoch, self.index = self.epoch + 1, 0
            self._start_epoch()
            batch = next(self._it)
        self.index += 1
        return batch

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"epoch": self.epoch, "index": self.index}
        if self._rng is not None:
            state["epoch_rng"] = self._rng
        if self._gen is not None:
            state["epoch_generator"] = self._gen
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a position; one the loader cannot reach is refused (a ValueError the
        resume names with the checkpoint's files)."""
        epoch, index = state["epoch"], state["index"]
        for key, value in (("epoch", epoch), ("index", index)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"data {key} must be an integer >= 0; got {value!r}")
        self.epoch = epoch
        if "epoch_rng" not in state:
            return
        now = torch.get_rng_state()
        try:
            # Clones: a state that is a view into other storage is misread (a crash).
            torch.set_rng_state(state["epoch_rng"].clone())
            gen = getattr(self.loader, "generator", None)
            if isinstance(gen, torch.Generator) and "epoch_generator" in state:
                gen.set_state(state["epoch_generator"].clone())
            self._rng, self._gen = state["epoch_rng"], state.get("epoch_generator")
            self._it = self._iterate()
            for done in range(index):  # the batches this epoch already gave
                if next(self._it, _END) is _END:
                    raise ValueError(
                        f"data index {index} is past the end of train_loader, which gives "
                        f"{done} batches an epoch"
                    )
        finally:
            torch.set_rng_state(now)
        self.index = index


def _unstackable(name: str, err: RuntimeError) -> Exception:
    """torch's default collate stacks the items of a batch: sequences of different lengths
    (a .ts file, tagged lines) need padding, and its error named neither. Any other error
    is given back as it was."""
    if not str(err).startswith("stack expects each tensor to be equal size"):
        return err
    return ValueError(
        f"rnnkit.fit: {name} could not make a batch ({err}); expected items of one size, or "
        "a DataLoader with collate_fn=rnnkit.data.pad_collate for sequences of different "
        "lengths"
    )


def _val_batches(loader: Iterable[Any]) -> Iterator[Any]:
    """The batches of ``loader``, with a batch it cannot stack named as the train loader's."""
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except RuntimeError as err:
            raise _unstackable("val_loader", err) from err
        yield batch


def _to(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    return batch


def _split(batch: Any) -> tuple[tuple[Any, ...], Any]:
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise ValueError(
            "rnnkit.fit: a batch must be a tuple (inputs..., target); got "
            f"{type(batch).__name__}"
            + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
        )
    return tuple(batch[:-1]), batch[-1]


def _returned(value: object) -> str:
    """What a loss or metric returned, for a refusal."""
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def _loss_value(value: object) -> Tensor:
    """The loss, checked: a float or a per-sample vector failed in the loop's own words
    ("'float' object has no attribute 'detach'")."""
    if not isinstance(value, Tensor):
        raise TypeError(
            "rnnkit.fit: loss must return a one-element tensor (the batch's mean, as "
            f"F.cross_entropy does); got {_returned(value)}"
        )
    if value.numel() != 1:
        raise ValueError(
            "rnnkit.fit: loss must return a one-element tensor (the batch's mean, as "
            f"F.cross_entropy does); got {_returned(value)} (reduction='none'?)"
        )
    return value


def _metric_value(name: str, value: object) -> float:
    """A metric's value as a float; anything but one number is refused, naming it."""
    if isinstance(value, numbers.Real) or (isinstance(value, Tensor) and value.numel() == 1):
        return float(value)
    message = (
        f"rnnkit.fit: metrics[{name!r}] must return a number (a float or a one-element "
        f"tensor); got {_returned(value)}"
    )
    if isinstance(value, Tensor):
        raise ValueError(message)
    raise TypeError(message)


class FitTask(Task):
    """A user's model and loaders as a task of the one loop."""

    name = "fit"
    summary = "your model on your DataLoaders"
    Options = dict  # no options: everything is in the objects given to fit()
    metric = "loss"

    def __init__(
        self,
        model: nn.Module,
        train_loader: Iterable[Any],
        val_loader: Iterable[Any] | None,
        loss: Callable[[Any, Any], Tensor],
        metrics: dict[str, Metric],
        monitor: str,
        higher_is_better: bool,
    ) -> None:
        super().__init__({}, {"model": type(model).__name__})
        self.model, self.train_loader, self.val_loader = model, train_loader, val_loader
        self.loss_fn, self.metrics = loss, metrics
        self.metric, self.higher_is_better = monitor, higher_is_better
        self.device = torch.device("cpu")
        # Without a val_loader the running training loss ranks the checkpoints: the finite
        # losses since the last evaluation on the eval_every grid. An evaluation off the
        # grid (a stop, the budget's end) scores them but keeps them, and the checkpoint
        # carries them, so a run stopped there and resumed ranks as the run never stopped.
        self._recent: list[float] = []
        self._steps: int | None = 0  # loss() calls: the loop's step (None: not known)
        self._eval_every = 1
        self._first = True  # the first batch checks what loss and metrics return

    def options_dict(self) -> dict[str, Any]:
        # What ranks the checkpoints, in config.json: a resume that changed it would
        # compare another quantity with the saved best (see fit's check_ranking).
        return {
            "monitor": self.metric,
            "higher_is_better": self.higher_is_better,
            "val_loader": self.val_loader is not None,
        }

    def prepare(self, train: TrainConfig, ctx: distributed.Context) -> None:
        self.device = ctx.device
        self._eval_every = train.eval_every

    def title(self, model: nn.Module) -> str:
        # The user's class, as the model card names it: the task's name said "fit".
        return type(model).__name__

    def describe(self) -> str:
        loader = self.train_loader
        data = (
            "DataLoaders"
            if isinstance(loader, torch.utils.data.DataLoader)
            else f"{type(loader).__name__} of batches"
        )
        return f"your {type(self.model).__name__} on your {data}"

    def build_model(self) -> nn.Module:
        return self.model  # fit trains the model it was given, in place

    def batches(self, train: TrainConfig, ctx: distributed.Context) -> LoaderBatches:
        return LoaderBatches(self.train_loader)

    def loss(self, net: nn.Module, batch: Any, device: Any) -> Tensor:
        inputs, target = _split(_to(batch, device))
        if self.loss_fn is F.cross_entropy and not isinstance(target, Tensor):
            # Labels read as strings ("yes"/"no") reach here as a list, and torch's refusal
            # names its own internals ("cross_entropy_loss(): argument 'target' ...").
            raise TypeError(
                "rnnkit.fit: the default loss, F.cross_entropy, needs each batch's target "
                f"as a tensor of class indices; got {_returned(target)} (encode the labels "
                "as integers, or give loss=)"
            )
        if self._first and self.loss_fn is F.cross_entropy and not target.is_floating_point():
            # Labels of -1 (a .ts file of series to classify, read_ts(require_labels=False))
            # ended in torch's "Target -1 is out of bounds", naming no file or label.
            bad = target[(target < 0) & (target != -100)]  # -100: cross_entropy's ignore_index
            if bad.numel():
                raise ValueError(
                    "rnnkit.fit: the default loss, F.cross_entropy, needs class indices >= 0 "
                    f"as the target (or -100, ignored); got {int(bad[0])} in the first batch "
                    "(read_ts(require_labels=False) labels its series -1: they have no class "
                    "to train on)"
                )
        output = net(*inputs)
        if self.loss_fn is F.cross_entropy:
            self._check_scores(output, target)
        loss = _loss_value(self.loss_fn(output, target))
        if not loss.requires_grad:
            raise ValueError(
                "rnnkit.fit: loss must return a tensor computed from the model's output; "
                "got one that needs no gradient"
            )
        if self._first and self.val_loader is not None:
            # A metric is first called at the first evaluation, perhaps many steps on:
            # what it returns is checked on the first batch instead.
            with torch.no_grad():
                for name, fn in self.metrics.items():
                    _metric_value(name, fn(output, target))
        self._first = False
        value = float(loss.detach())
        if math.isfinite(value):  # a non-finite loss's step is skipped: it ranks nothing
            self._recent.append(value)
        if self._steps is not None:
            self._steps += 1
        return loss

    def _check_scores(self, output: Any, target: Tensor) -> None:
        """The default loss's input: a tensor of class scores (a tuple or dict of outputs
        failed in torch's words, naming its internals), and at the first batch, targets
        below the number of classes ("Target 6 is out of bounds.", naming neither)."""
        if not isinstance(output, Tensor):
            raise TypeError(
                "rnnkit.fit: the default loss, F.cross_entropy, needs the model's output as "
                f"a tensor of class scores; got {_returned(output)} (give loss= that takes "
                "the scores from it)"
            )
        if not self._first or target.is_floating_point() or not output.dim():
            return
        classes = output.size(1) if output.dim() >= 2 else output.size(0)
        top = int(target.max()) if target.numel() else -1
        if top >= classes:
            raise ValueError(
                "rnnkit.fit: the default loss, F.cross_entropy, needs class indices below the "
                f"number of classes, the model's output.size(1) = {classes}; got {top} in the "
                "first batch"
            )

    def carried(self, ctx: distributed.Context) -> dict[str, Tensor]:
        if self.val_loader is not None:
            return {}
        return {
            "recent": torch.tensor(self._recent, dtype=torch.float64),
            "steps": torch.tensor([-1 if self._steps is None else self._steps]),
        }

    def load_carried(self, tensors: dict[str, Tensor], ctx: distributed.Context) -> None:
        if "steps" in tensors:
            self._recent = [float(v) for v in tensors["recent"].tolist()]
            steps = int(tensors["steps"][0])
            self._steps = None if steps < 0 else steps
        elif self.val_loader is None:  # a checkpoint of an older rnnkit: the grid is unknown
            self._recent, self._steps = [], None

    def items(self, batch: Any) -> int:
        """The samples in ``batch``: the target's first dimension (a classifier's labels,
        and pad_collate's labels and tags, time-major inputs or not), else the first
        input's. Validation averages are weighted by it."""
        parts = batch if isinstance(batch, (tuple, list)) else (batch,)
        for part in (parts[-1], parts[0]):
            if isinstance(part, Tensor) and part.dim():
                return int(part.size(0))
        return 1

    @property
    def scored_on(self) -> str:
        return "validation" if self.val_loader is not None else FIT_SCORED_ON_TRAINING

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        if self.val_loader is None:
            # Without validation data the running training loss is all there is to rank by.
            recent = self._recent
            if self._steps is None or self._steps % self._eval_every == 0:
                self._recent = []
            return {"loss": sum(recent) / len(recent) if recent else float("nan")}
        was_training = model.training
        model.eval()
        totals: dict[str, float] = {"loss": 0.0, **dict.fromkeys(self.metrics, 0.0)}
        count = 0
        try:
            for batch in _val_batches(self.val_loader):
                inputs, target = _split(_to(batch, self.device))
                out = model(*inputs)
                n = self.items(batch)
                totals["loss"] += float(_loss_value(self.loss_fn(out, target))) * n
                for name, fn in self.metrics.items():
                    totals[name] += _metric_value(name, fn(out, target)) * n
                count += n
        finally:
            model.train(was_training)
        if count == 0:
            raise ValueError("rnnkit.fit: val_loader yields no batch; expected at least one")
        return {k: v / count for k, v in totals.items()}


def fit(
    model: nn.Module,
    train_loader: Iterable[Any],
    val_loader: Iterable[Any] | None = None,
    *,
    loss: Callable[[Any, Any], Tensor] = F.cross_entropy,
    metrics: dict[str, Metric] | None = None,
    monitor: str = "loss",
    higher_is_better: bool | None = None,
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
    train_config: TrainConfig | None = None,
    progress: TextIO | None = None,
    log: Callable[[str], None] | None = None,
    on_step: Callable[[Trainer], None] | None = None,
    **train_options: Any,
) -> Summary:
    """Train ``model`` on ``train_loader`` with rnnkit's loop; the best weights by
    ``monitor`` (a validation metric) are kept in ``out``/model.safetensors and loaded
    into ``model`` at the end.

    ``loss(output, target)`` returns a one-element tensor; each of ``metrics`` (name ->
    function) returns a number, and is reported under its name beside ``"loss"`` (a
    name ``metrics`` may not use). Validation averages weigh each batch by its number
    of samples: the target's first dimension. ``train_loader`` and ``val_loader`` must
    be re-iterable (a ``DataLoader``, a list), not iterators.

    ``higher_is_better`` None tells the direction from ``monitor``'s name (see
    :func:`infer_higher_is_better`): lower is better for a loss or an error (loss,
    error, err, mse, mae, rmse, bpc, perplexity, ppl, cer, wer, mase, smape, mape),
    higher for accuracy, acc, f1, auc, precision, recall, r2, bleu; any other name needs
    ``higher_is_better``.

    ``train_options`` are :class:`~rnnkit.train.TrainConfig` fields (``steps``,
    ``minutes``, ``lr``, ``eval_every``, ``precision``, ...); the default budget is 1000
    steps at lr 1e-3. ``out`` None is a new folder ``runs/fit-YYYYMMDD-HHMMSS``.
    ``resume=True`` continues the run in ``out`` exactly where it stopped, with the run's
    own training settings (its config.json's: those left out are the run's, and only
    ``steps`` and ``minutes`` may change; a folder without a checkpoint yet starts over);
    it must rank the checkpoints as the run did (the same ``monitor``,
    ``higher_is_better``, and a ``val_loader`` or none, as its config.json records).

    Example (the run folder in a temporary folder here; a list of batches as the loaders)::

        >>> import tempfile, torch, rnnkit
        >>> _ = torch.manual_seed(0)
        >>> x, y = torch.randn(32, 4), torch.randint(0, 2, (32,))
        >>> batches = [(x[:16], y[:16]), (x[16:], y[16:])]  # re-iterable (input, target) pairs
        >>> model = torch.nn.Linear(4, 2)
        >>> with tempfile.TemporaryDirectory() as tmp:  # doctest: +ELLIPSIS
        ...     summary = rnnkit.fit(model, batches, batches, steps=20, out=f"{tmp}/run")
        fit: your Linear on your list of batches; run folder: .../run
        model: Linear; 10 parameters; processes: 1
        >>> summary.step, summary.best["metric"], summary.best["step"]
        (20, 'loss', 20)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"rnnkit.fit: model must be a torch.nn.Module; got {type(model).__name__}")
    _check_trainable(model)
    _check_loaders(train_loader, val_loader)
    if not callable(loss):
        raise TypeError(
            f"rnnkit.fit: loss must be a function (output, target) -> Tensor; got "
            f"{type(loss).__name__}"
        )
    _check_arguments(metrics, monitor, higher_is_better, out, resume, train_config, train_options,
                     {"log": log, "on_step": on_step}, progress)  # fmt: skip
    metrics = dict(metrics or {})
    _check_metrics(metrics)
    _check_monitor(monitor, metrics, val_loader)
    if higher_is_better is None:
        higher_is_better = infer_higher_is_better(monitor)
    task = FitTask(model, train_loader, val_loader, loss, metrics, monitor, higher_is_better)
    # What the caller set: a resume compares these with the run's config.json.
    given = train_config.to_dict() if train_config is not None else dict(train_options)
    if train_config is None:
        defaults = {"steps": 1000, "lr": 1e-3, "eval_every": 100}
        if any(train_options.get(k) is not None for k in ("steps", "minutes")):
            defaults = {k: v for k, v in defaults.items() if k not in ("steps", "minutes")}
        try:
            train_config = TrainConfig(**{**defaults, **train_options})
        except ValueError as err:  # TrainConfig's checks speak the command line's flags
            raise ValueError(f"rnnkit.fit: {python_names(str(err))}") from None
    elif train_options:
        raise TypeError("rnnkit.fit: give train_config or TrainConfig fields, not both")
    _check_machine(train_config)
    from rnnkit.train.run import launch

    if resume:
        if out is None:
            raise ValueError("rnnkit.fit: resume=True needs out= (the run folder to continue)")
        folder = RunFolder(out)
        folder.check_owned()
        config = folder.read_config()
        if config.task != "fit":
            raise RunFolderError(f"{out} is a run of task {config.task!r}, not of rnnkit.fit")
        start = folder.read_checkpoint(for_fit=True)
        if start is not None:  # before it, nothing was ranked: the run starts over
            check_ranking(folder, config.options, task.options_dict())
            train_config = resumed_training(folder, config.train, given)
            # Named as the model given: the loop's own check names "the config".
            given_by = f"{type(model).__name__} given"
            where = folder.path / start.info["tensors"]
            check_fits(model.state_dict(), start.prefixed("model"), where, f"the {given_by}")
        _check_metrics_scored(metrics, val_loader)
        return launch(
            task,
            train_config,
            folder=folder,
            start=start,
            log=log,
            progress=progress,
            on_step=on_step,
        )
    _check_metrics_scored(metrics, val_loader)
    return launch(
        task, train_config, out=out, log=log, progress=progress, on_step=on_step, for_fit=True
    )


# Names that say which way is better. Long ones count anywhere in a word of the monitor's
# name ("val_loss", "nllloss"); short ones only as a whole word, digits after them
# allowed ("acc1", "bleu4"), since "cer" or "acc" also occur inside unrelated words.
_LOWER_PARTS = ("loss", "error", "perplexity")
_LOWER_WORDS = {"err", "mse", "mae", "rmse", "bpc", "ppl", "cer", "wer", "mase", "smape", "mape"}
_HIGHER_PARTS = ("accuracy", "precision", "recall")
_HIGHER_WORDS = {"acc", "f1", "auc", "r2", "bleu"}


def infer_higher_is_better(monitor: str) -> bool:
    """Whether a larger ``monitor`` is better, told from its name: lower for a loss or an
    error (loss, error, err, mse, mae, rmse, bpc, perplexity, ppl, cer, wer, mase, smape,
    mape), higher for a score (accuracy, acc, f1, auc, precision, recall, r2, bleu). The
    name is split into words at anything but letters and digits and at camelCase
    ("valAcc": val, acc); a name that says neither, or both, is refused."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", monitor).lower()
    words = re.findall(r"[a-z0-9]+", spaced)

    def says(parts: tuple[str, ...], whole: set[str]) -> bool:
        return any(
            any(p in w for p in parts) or w in whole or w.rstrip("0123456789") in whole
            for w in words
        )

    lower, higher = says(_LOWER_PARTS, _LOWER_WORDS), says(_HIGHER_PARTS, _HIGHER_WORDS)
    if lower == higher:
        raise ValueError(
            f"rnnkit.fit: higher_is_better must be given for monitor {monitor!r} (whether a "
            "larger value is better cannot be told from its name)"
        )
    return higher


def check_ranking(folder: RunFolder, saved: dict[str, Any], given: dict[str, Any]) -> None:
    """Refuse a resume that ranks its checkpoints otherwise than the run did: the saved
    best would be compared with another quantity, or in the other direction. Keys the
    run's config.json does not hold are not compared."""
    for key, value in given.items():
        if key in saved and saved[key] != value:
            raise RunFolderError(
                f"rnnkit.fit: {folder.path / 'config.json'} records {_ranked_by(key, saved[key])}; "
                f"got {_ranked_by(key, value)}; a resume ranks the checkpoints as the run did "
                "(to rank them otherwise, start a new run with another out)"
            )


def resumed_training(folder: RunFolder, saved: TrainConfig, given: dict[str, Any]) -> TrainConfig:
    """The training settings a resume continues with: the run's own (its config.json),
    with the budget (``steps``, ``minutes``) replaced when one is given. A setting given
    with another value than the run's is refused: a resume continues the run exactly,
    and one that left a setting out took fit's default (another rate, schedule, seed)."""
    recorded = saved.to_dict()
    changed = [
        k for k, v in given.items() if k not in BUDGET_KEYS and k in recorded and v != recorded[k]
    ]
    if changed:
        raise RunFolderError(
            f"rnnkit.fit: {folder.path / 'config.json'} records "
            + ", ".join(f"{k}={recorded[k]!r}" for k in changed)
            + "; got "
            + ", ".join(f"{k}={given[k]!r}" for k in changed)
            + "; a resume continues the run's own training settings (only steps and minutes "
            "may change; to train otherwise, start a new run with another out)"
        )
    if any(given.get(k) is not None for k in BUDGET_KEYS):
        recorded.update({k: given.get(k) for k in BUDGET_KEYS})
    return TrainConfig(**recorded)


def _ranked_by(key: str, value: object) -> str:
    if key == "val_loader":
        return "a val_loader" if value else "no val_loader"
    return f"{key}={value!r}"


def _check_arguments(
    metrics: object,
    monitor: object,
    higher_is_better: object,
    out: object,
    resume: object,
    train_config: object,
    train_options: dict[str, Any],
    callbacks: dict[str, object],
    progress: object = None,
) -> None:
    """fit's other arguments, named before the loop starts: a wrong one failed later in
    Python's own words ("argument of type 'int' is not iterable", "'str' object is not
    callable") or, for a string resume or higher_is_better, was silently taken as true."""
    if metrics is not None and not isinstance(metrics, dict):
        raise TypeError(
            "rnnkit.fit: metrics must be a dict of name -> function (output, target) -> "
            f"number; got {type(metrics).__name__}"
        )
    if not isinstance(monitor, str):
        raise TypeError(f"rnnkit.fit: monitor must be a str; got {type(monitor).__name__}")
    if higher_is_better is not None and not isinstance(higher_is_better, bool):
        raise TypeError(f"rnnkit.fit: higher_is_better must be a bool; got {higher_is_better!r}")
    if out is not None and not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"rnnkit.fit: out must be a path; got {type(out).__name__}")
    if not isinstance(resume, bool):
        raise TypeError(f"rnnkit.fit: resume must be a bool; got {resume!r}")
    if train_config is not None and not isinstance(train_config, TrainConfig):
        raise TypeError(
            f"rnnkit.fit: train_config must be a TrainConfig; got {type(train_config).__name__}"
        )
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(train_options) - known)
    if unknown:
        raise TypeError(
            f"rnnkit.fit: unknown argument(s) {', '.join(unknown)}; expected fit's own or "
            f"TrainConfig fields ({', '.join(sorted(known))})"
        )
    for name, fn in callbacks.items():
        if fn is not None and not callable(fn):
            raise TypeError(f"rnnkit.fit: {name} must be a function; got {type(fn).__name__}")
    if progress is not None and not callable(getattr(progress, "write", None)):
        # It failed at the first progress line, after the run folder was made.
        raise TypeError(
            "rnnkit.fit: progress must be a text stream with write() (e.g. sys.stdout or an "
            f"open file) or None; got {type(progress).__name__}"
        )


def _check_trainable(model: nn.Module) -> None:
    """A model with nothing to train failed at the first batch as if the loss were not
    computed from its output ("got one that needs no gradient")."""
    params = list(model.parameters())
    if not any(p.requires_grad for p in params):
        has = "no parameters" if not params else f"{len(params)} parameters, all frozen"
        raise ValueError(
            "rnnkit.fit: model must have a parameter to train (requires_grad=True); got a "
            f"{type(model).__name__} with {has}"
        )


def _check_loaders(train_loader: object, val_loader: object) -> None:
    """Loaders are iterated steps later, deep in the loop: a wrong one is named now."""
    for name, loader in (("train_loader", train_loader), ("val_loader", val_loader)):
        if name == "val_loader" and loader is None:
            continue
        if not isinstance(loader, Iterable):
            raise TypeError(
                f"rnnkit.fit: {name} must be an iterable of batches (e.g. a "
                f"torch.utils.data.DataLoader); got {type(loader).__name__}"
            )
        if isinstance(loader, Iterator):
            # Each epoch, each evaluation and each resume iterates the loader anew: an
            # iterator (a generator, iter(list)) ended the second epoch in a bare
            # StopIteration.
            raise TypeError(
                f"rnnkit.fit: {name} must be re-iterable (a DataLoader or a list); got "
                f"{type(loader).__name__}, an iterator, which is used up after one pass"
            )


def _check_metrics(metrics: dict[Any, Any]) -> None:
    """Names and functions of ``metrics``; each is reported under its name, beside the
    loss."""
    for name, fn in metrics.items():
        if not isinstance(name, str):
            raise TypeError(
                f"rnnkit.fit: metrics' names must be str; got {name!r} ({type(name).__name__})"
            )
        if name == "loss":
            # It was added to the validation loss, which is always reported as "loss".
            raise ValueError(
                "rnnkit.fit: metrics must not hold 'loss': the loss is always reported "
                "under that name; give the metric another name"
            )
        if not callable(fn):
            raise TypeError(
                f"rnnkit.fit: metrics[{name!r}] must be a function (output, target) -> "
                f"number; got {type(fn).__name__}"
            )


def _check_monitor(monitor: str, metrics: dict[str, Metric], val_loader: object) -> None:
    """``monitor`` must name what each evaluation reports: the loss, and with a
    val_loader the metrics."""
    known = {"loss", *metrics} if val_loader is not None else {"loss"}
    if monitor not in known:
        raise ValueError(
            f"rnnkit.fit: monitor must be one of {', '.join(sorted(known))}; got "
            f"{monitor!r}" + ("" if val_loader is not None else " (no val_loader)")
        )


def _check_metrics_scored(metrics: dict[str, Metric], val_loader: object) -> None:
    """Metrics score the val_loader's batches: without one they were left out in silence.
    (Checked after a resume's ranking check, which names a val_loader left out first.)"""
    if metrics and val_loader is None:
        raise ValueError(
            f"rnnkit.fit: metrics ({', '.join(metrics)}) score the val_loader's batches; "
            "expected a val_loader with them; got val_loader=None (give one, or leave "
            "metrics out)"
        )


def _check_machine(train: TrainConfig) -> None:
    """The device and precision, checked against this machine before the loop starts and
    in fit's keyword names: the loop's own check speaks the command line's flags."""
    try:
        autocast(resolve_device(train.device), train.precision)
    except ValueError as err:
        raise ValueError(f"rnnkit.fit: {python_names(str(err))}") from None


def python_names(message: str) -> str:
    """``message`` with each command-line flag (``--eval-every``) as fit's keyword
    argument (``eval_every``)."""
    return re.sub(r"--([a-z][a-z0-9-]*)", lambda m: m.group(1).replace("-", "_"), message)
