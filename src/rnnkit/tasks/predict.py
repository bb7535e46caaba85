"""Apply a trained classify or tag run to new data (`rnnkit predict` and its Python API).

:func:`predict_classes` gives the class probabilities and predicted classes of the series
of a ``.ts`` file; :func:`predict_tags` the tag of every character of texts (or every
step of feature sequences). Each reads the run as ``rnnkit eval`` does - the best
weights, the recorded options and derived statistics - and computes as the task's
evaluation does, so that applied to the run's own test data they give exactly the
predictions the evaluation scores:

- classify: the model holds the run's normalisation and downsampling; the series are
  read with the run's ``--missing`` and scored in the chunks of
  :func:`rnnkit.tasks.classify.scoring.predict` (sorted by length, ``EVAL_BATCH`` at a
  time);
- tag: the inputs are encoded with the run's vocabulary (a character outside it is the
  unknown class, as in training) by :func:`rnnkit.tasks.tag.encode`, and tagged by
  :func:`rnnkit.tasks.tag.predict` in windows of the run's ``--seq-len``, each read with
  ``--eval-context`` steps of context either side.

Example:
    >>> out = predict_classes("runs/classify", "new.ts")  # doctest: +SKIP
    >>> out.predicted[:3], out.probabilities.shape  # doctest: +SKIP
    >>> predict_tags("runs/tag", ["def f(x):\\n    return x\\n"])  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.data.tagging import Document
from rnnkit.data.ts_format import TSData, read_ts
from rnnkit.train.runfolder import RunConfig, RunFolder

RunPath = str | os.PathLike[str]


@dataclass
class ClassPredictions:
    """What :func:`predict_classes` gives for N series of a file, in file order."""

    classes: list[str]  # the run's class names: column k of probabilities is classes[k]
    probabilities: Tensor  # (N, classes) float32, each row summing to 1
    predicted: list[str]  # the most probable class of each series
    labels: list[int] | None  # the file's labels as indices into classes; None: unlabelled

    @property
    def index(self) -> Tensor:
        """(N,) the predicted class indices (the argmax of each row of the logits)."""
        return self.probabilities.argmax(-1)

    @property
    def right(self) -> int | None:
        """How many series are predicted as labelled (None for an unlabelled file)."""
        if self.labels is None:
            return None
        return sum(self.classes[y] == p for y, p in zip(self.labels, self.predicted, strict=True))


def read_run(run: RunPath, task: str, function: str) -> RunConfig:
    """The run's checked config.json (a symbolic link as the folder is refused, as every
    reader of a run refuses it), refused unless it is a run of ``task``."""
    config = RunFolder(run).read_config()
    if config.task != task:
        other = "predict_tags" if task == "classify" else "predict_classes"
        raise ValueError(
            f"{function}: {run} is a run of task {config.task!r}; expected a {task} run "
            f"({other} applies {'tag' if task == 'classify' else 'classify'} runs)"
        )
    return config


def _options(config: RunConfig, run: RunPath) -> Any:
    """The run's task options, parsed and checked as rnnkit.load parses them."""
    from rnnkit.tasks import get_task

    task_cls = get_task(config.task)
    return task_cls.parse_options(config.options, where=f"{run}/config.json: options")


# ---- classify ----------------------------------------------------------------------------


def predict_classes(
    run: RunPath,
    data: RunPath | TSData,
    device: str | torch.device = "cpu",
    model: nn.Module | None = None,
) -> ClassPredictions:
    """The class probabilities and predicted classes of the series of ``data`` (a ``.ts``
    file, labelled or not, or a :class:`~rnnkit.data.ts_format.TSData`) under the
    classify run ``run``. A labelled file's labels are mapped to the run's classes by
    name (a class the run does not know is refused). ``model``: the run's model, already
    loaded (``rnnkit.load(run)``), to skip loading it again."""
    from rnnkit.tasks.classify import check_derived, map_labels
    from rnnkit.train import load

    config = read_run(run, "classify", "predict_classes")
    check_derived(config.derived, f"{Path(run) / 'config.json'}: derived")
    options = _options(config, run)
    if model is None:
        model = load(run, device)  # the run is checked before the data is read
    if isinstance(data, TSData):
        series = data
    elif isinstance(data, (str, os.PathLike)):
        series = read_ts(data, missing=options.missing, require_labels=False)
    else:
        raise TypeError(
            f"predict_classes: data must be a .ts file path or a TSData; got {type(data).__name__}"
        )
    derived = config.derived
    classes = list(derived["classes"])
    if series.dimensions != derived["dimensions"]:
        raise ValueError(
            f"{series.path}: its series have {series.dimensions} dimension(s); the run {run} "
            f"was trained on {derived['dimensions']}"
        )
    labels = None
    if series.classes:  # a labelled file (@classLabel true)
        labels = map_labels(series, classes, _trained_on(derived))
    logits = class_logits(model, [x for x, _ in series])
    probabilities = logits.softmax(-1)
    predicted = [classes[k] for k in logits.argmax(-1).tolist()]
    return ClassPredictions(classes, probabilities, predicted, labels)


def _trained_on(derived: dict[str, Any]) -> str:
    """The run's training file, as a message names it."""
    source = derived["source"]
    if source.get("dataset"):
        return f"{source['dataset']}_TRAIN.ts"
    return str(source["train"]["path"])


@torch.no_grad()
def class_logits(model: nn.Module, series: list[Tensor]) -> Tensor:
    """(N, classes) float32 logits of ``series`` (each (T_i, D) raw values), in eval mode,
    scored as :func:`rnnkit.tasks.classify.scoring.predict` scores a split
    (:func:`rnnkit.tasks.classify.scoring.logits_of`): the logits of the evaluation, bit for
    bit."""
    from rnnkit.tasks.classify import logits_of, pad

    if not series:
        return torch.zeros(0, 0)
    x, lengths = pad(series)
    return logits_of(model, x, lengths)


# ---- tag ---------------------------------------------------------------------------------


def predict_tags(
    run: RunPath,
    inputs: Sequence[Any],
    device: str | torch.device = "cpu",
    model: nn.Module | None = None,
) -> list[list[str]]:
    """The predicted tag of every character of each text of ``inputs`` (a run trained on
    text), or of every step of each feature sequence ((T, F) arrays or lists of steps; a
    run trained on features), under the tag run ``run``: one list of tag names per input.
    ``model``: the run's model, already loaded (``rnnkit.load(run)``)."""
    from rnnkit.tasks.tag import TagTask, encode, predict
    from rnnkit.train import load

    config = read_run(run, "tag", "predict_tags")
    options = _options(config, run)
    if isinstance(inputs, (str, bytes)) or not isinstance(inputs, Sequence):
        raise TypeError(
            "predict_tags: inputs must be a list of texts or of feature sequences; got "
            f"{type(inputs).__name__}"
        )
    if model is None:
        model = load(run, device)  # the run is checked before the inputs are read
    vocab = TagTask(options, config.derived).vocab()
    # No tags are known: -1, a tag unseen in training, which predict() scores as no tag.
    docs = [Document(x, np.full(len(x), -1, np.int64)) for x in _checked(inputs, config, run)]
    tags = list(config.derived["tags"])
    if sum(len(d) for d in docs) == 0:
        return [[] for _ in docs]
    encoded = encode(docs, vocab)
    pred, _, _ = predict(model, encoded, options.seq_len, options.eval_context)
    # predict() gives every step in order, so document d is pred[bounds[d]:bounds[d + 1]].
    bounds = encoded.bounds.tolist()
    return [[tags[k] for k in pred[a:b].tolist()] for a, b in itertools.pairwise(bounds)]


def _checked(inputs: Sequence[Any], config: RunConfig, run: RunPath) -> list[Any]:
    """``inputs`` as the run's kind of input: strings, or (T, F) float32 arrays of its F."""
    derived = config.derived
    if trained_on_text(config):
        for i, x in enumerate(inputs):
            if not isinstance(x, str):
                raise TypeError(
                    f"predict_tags: inputs[{i}] must be a str (the run {run} was trained on "
                    f"text); got {type(x).__name__}"
                )
        return list(inputs)
    width = int(derived["features"])
    out = []
    for i, x in enumerate(inputs):
        if isinstance(x, str):
            raise TypeError(
                f"predict_tags: inputs[{i}] must be a (T, {width}) feature sequence (the run "
                f"{run} was trained on features); got a str"
            )
        try:
            a = np.asarray(x.cpu() if isinstance(x, Tensor) else x, dtype=np.float64)
        except (TypeError, ValueError):
            a = None
        if a is None or a.ndim != 2 or a.shape[1] != width:
            shape = "no array of numbers" if a is None else f"shape {a.shape}"
            raise ValueError(
                f"predict_tags: inputs[{i}] must be (T, {width}) features, {width} per step "
                f"as the run {run} was trained on; got {shape}"
            )
        if not np.isfinite(a).all() or (np.abs(a) > 3e38).any():
            raise ValueError(
                f"predict_tags: inputs[{i}] must hold finite numbers within float32's range"
            )
        out.append(a.astype(np.float32))
    return out


def trained_on_text(config: RunConfig) -> bool:
    """Whether a tag run reads characters (it has a vocabulary) rather than features."""
    return config.derived.get("vocab") is not None


__all__ = ["ClassPredictions", "class_logits", "predict_classes", "predict_tags"]
