"""The model card: ``README.md`` of a run folder, written from the folder's own files.

The card says what a model hub and a reader want to know first: the task, the data it
trained on, the model and its size, the budget and the steps done, the best validation
metrics and their step, and the exact lines that load, evaluate and export the model. It
opens with a YAML front-matter block (``library_name: rnnkit``, tags) as model hubs read.

It is generated from ``config.json``, ``metrics.csv``, the manifest and the header of
``model.safetensors`` alone - never from the training process's memory - so the trainer's
card and one regenerated later with :func:`write_card` are the same bytes. The trainer
rewrites it after every checkpoint's commit; it is written atomically like every other file.

``README.md`` is a common name, so rnnkit owns it only when it carries :data:`CARD_MARK`
(see :func:`rnnkit.train.runfolder.is_card`): a user's own ``README.md`` is never
rewritten or removed, and a folder holding one is not taken for a run folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rnnkit._version import __version__
from rnnkit.tasks import get_task
from rnnkit.tasks.base import DerivedError, Task
from rnnkit.train.config import TrainConfig
from rnnkit.train.files import atomic_write, read_json, tensors_meta
from rnnkit.train.metrics import Row, clock, read_csv
from rnnkit.train.runfolder import (
    CARD,
    CARD_MARK,
    CONFIG,
    LOSS_PLOT,
    METRICS,
    MODEL,
    RunConfig,
    RunFolder,
    RunFolderError,
    is_card,
    not_found,
    parse_config,
)

LAST_EVALUATIONS = 10  # the card's table of evaluations shows at most the last this many

# What each task's model is used with, besides `rnnkit eval` (the same command for all).
_USE: dict[str, tuple[list[str], list[str]]] = {
    # task: (Python lines after `model = ...`, command lines); {run} is the folder
    "lm": (
        ['print("".join(model.sample("def ", 200, temperature=0.8)))'],
        ["rnnkit generate {run} --prompt 'def ' --length 200"],
    ),
    "numbers": ([], ['rnnkit translate {run} "three hundred and twelve"']),
    "forecast": ([], ["rnnkit forecast {run}"]),
}
# How `rnnkit export` writes each task's model as ONNX (rnnkit.export.parts): a step graph
# where the model answers at every step, a sequence graph where it needs the whole
# sequence (a bidirectional tagger, a classifier), both for the encoder-decoder (the
# encoder and the decoder's step).
_STEP, _SEQUENCE = "--mode step", "--mode sequence --lengths"
_EXPORT_MODES = {
    "lm": [_STEP],
    "forecast": [_STEP],
    "adding": [_STEP],
    "copy": [_STEP],
    "selective-copy": [_STEP],
    "tag": [_SEQUENCE],
    "classify": [_SEQUENCE],
    "numbers": ["--mode sequence   # the encoder", "--mode step       # the decoder's step"],
}


# A run of rnnkit.fit (rnnkit.train.fit): what it scores without a val_loader, and what
# the options it records in config.json mean (it has no Options class to explain them).
FIT_SCORED_ON_TRAINING = "training (no val_loader: the mean loss since the last evaluation)"
FIT_OPTIONS = {
    "monitor": "the metric that ranks the checkpoints",
    "higher_is_better": "whether a larger value of the monitor is better",
    "val_loader": "whether a val_loader was given (without one the training loss ranks them)",
}


def build_model(config: RunConfig, where: object) -> nn.Module:
    """The untrained model a config describes; the global RNG is left as it was.

    ``where`` names the config in messages (a path to config.json).

    Building draws initial weights; the trainer writes a card mid-run, and a draw there
    would change every later dropout mask (and break bitwise resume).
    """
    task_cls = get_task(config.task)
    opts = task_cls.parse_options(config.options, where=f"{where}: options")
    with torch.random.fork_rng(devices=[]):
        return build_recorded(task_cls(opts, config.derived), where)


def build_recorded(task: Task, where: object) -> nn.Module:
    """``task``'s model from the options and ``derived`` recorded in ``where`` (a run's
    config.json); one that cannot build it is refused in one line naming ``where`` once.

    A task's own check (:class:`~rnnkit.tasks.base.DerivedError`) names the key but not
    the file, which it does not know; ``where`` goes in front, as
    :func:`rnnkit.train.run.recorded_in` does.
    """
    try:
        return task.build_model()
    except DerivedError as err:
        raise RunFolderError(f"{where}: {err}") from None
    except (KeyError, TypeError, ValueError) as err:
        what = f"has no {err}" if isinstance(err, KeyError) else f"is inconsistent ({err})"
        raise RunFolderError(f"{where}: derived {what}") from None


def render(folder: str | os.PathLike[str], *, name: str | None = None) -> str:
    """The model card of the run or pretrained folder ``folder``, as text.

    ``name`` is how its commands name the folder (default: the folder's own name).
    """
    path = Path(folder)
    name = name or path.resolve().name
    data = read_json(path / CONFIG)
    config = parse_config(data, str(path / CONFIG))
    manifest = RunFolder(path).read_manifest()
    rows = read_csv(path / METRICS, int(manifest["step"]) if manifest else 2**62)
    evaluations = _evaluations(rows)
    at = best_step(path, manifest)
    task_cls = None if config.task == "fit" else get_task(config.task)

    scored_on, selects = "validation", True
    if task_cls is None and config.options.get("val_loader") is False:
        scored_on = FIT_SCORED_ON_TRAINING
    if task_cls is not None:
        task = task_cls(task_cls.parse_options(config.options, where=str(path / CONFIG)),
                        config.derived)  # fmt: skip
        scored_on, selects = task.scored_on, task.selects
        model = build_model(config, path / CONFIG)
        kind = type(model).__name__
        size = f"{sum(p.numel() for p in model.parameters()):,} parameters"
    else:
        kind = str(config.derived.get("model", "your model"))
        size = f"{_stored_values(path / MODEL):,} values in {MODEL} (parameters and buffers)"
    summary = task_cls.summary if task_cls is not None else "your model, trained by rnnkit.fit"
    options = config.options
    cell = options.get("cell")

    out: list[str] = ["---", "library_name: rnnkit"]
    if config.task == "lm":
        out.append("pipeline_tag: text-generation")
    tags = ["rnnkit", "pytorch", "safetensors", config.task]
    if task_cls is not None:  # rnnkit's own tasks train recurrent models; fit, anything
        tags.insert(3, "recurrent-neural-network")
    if isinstance(cell, str):
        tags.append(cell)
    out += ["tags:", *(f"- {json.dumps(t)}" for t in dict.fromkeys(tags))]
    out += ["---", "", CARD_MARK, ""]

    title = f"{kind} ({cell})" if isinstance(cell, str) else kind
    out += [f"# rnnkit {config.task}: {_cell(title)}", "", f"{_sentence(summary)}", ""]
    done = _done(config, manifest, rows)
    best = evaluations.get(at) if at is not None else None
    facts = [
        ("task", f"`{config.task}`"),
        ("model", ", ".join([kind, *_shape(task_cls, options), size])),
        ("trained", done),
        (
            f"best {scored_on}" if selects else f"last {scored_on}",
            _metrics_text(best, at) if best else "none yet",
        ),
        ("rnnkit", _versions(str(data.get("rnnkit_version", "?")))),
    ]
    out += ["| | |", "|---|---|", *(f"| {k} | {_cell(v)} |" for k, v in facts), ""]

    out += ["## Data", ""]
    data = _data_lines(config.derived) if task_cls is not None else []
    if task_cls is None:
        out += ["The DataLoaders given to `rnnkit.fit`; rnnkit does not record them.", ""]
    elif data:
        out += ["What the task read from its data (`config.json`, `derived`):", ""]
        out += ["| | |", "|---|---|", *(f"| {k} | {_cell(v)} |" for k, v in data), ""]
    else:
        out += ["Generated by the task itself from its options and seed; nothing is read.", ""]

    out += ["## Metrics", ""]
    if best is not None:
        ranked = (manifest or {}).get("best", {}).get("metric") or (
            task_cls.metric if task_cls is not None else None
        )
        by = f", ranked by `{ranked}`" if ranked else ""
        which = (
            f"the best {scored_on} score{by}"
            if selects
            else "the last evaluated (nothing is held out to choose on)"
        )
        out += [
            f"`{MODEL}` holds the weights of step {at}, {which}.",
            "",
        ]
    if evaluations:
        names = sorted({m for ev in evaluations.values() for m in ev})
        steps = sorted(evaluations)
        shown = steps[-LAST_EVALUATIONS:]
        if at is not None and at in evaluations and at not in shown:
            shown = [at, *shown]
        out += ["| step | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for step in shown:
            mark = " (best)" if step == at else ""
            values = " | ".join(_num(evaluations[step].get(m)) for m in names)
            out.append(f"| {step}{mark} | {values} |")
        kept = "every evaluation"
        if len(shown) < len(steps):
            kept = f"the last {len(shown)} of {len(steps)} evaluations"
        scored = scored_on[0].upper() + scored_on[1:]
        out += ["", f"{scored} metrics of {kept}; `{METRICS}` holds them all."]
    else:
        out.append(f"No evaluation recorded in `{METRICS}`.")
    tests = _split_last(rows, "test")
    if tests:
        out += ["", "Test: " + _metrics_text(tests[1], tests[0]) + "."]
    else:
        out += ["", "No test metrics are recorded in `metrics.csv`."]
        if task_cls is not None:
            out[-1] += (
                " `rnnkit eval` scores the model again (on its test split, for tasks that "
                "hold one out)."
            )
    if (path / LOSS_PLOT).is_file():
        out += ["", f"![training curves]({LOSS_PLOT})"]
    out.append("")

    out += [
        "## Use",
        "",
        "Nothing is downloaded: every line reads this folder, and the data files it records.",
        "",
    ]
    out += _use(config.task, name, manifest is not None)

    out += ["## Options", ""]
    if options and task_cls is not None:
        out += _options_table(task_cls.Options, options)
    elif options:  # a run of rnnkit.fit: what ranks its checkpoints
        out += _options_table(None, options, FIT_OPTIONS)
    else:
        out += ["None: the model and its data are the objects given to `rnnkit.fit`.", ""]
    out += ["## Training", ""]
    out += _options_table(TrainConfig, config.train.to_dict())
    out += [
        "",
        f"This file is regenerated from `{CONFIG}` and `{METRICS}` at every checkpoint and by "
        "`rnnkit.train.write_card(folder)`; remove the marker comment at its top to keep "
        "your own text (rnnkit then no longer treats the folder as a run it may write).",
        "",
    ]
    return "\n".join(out)


def write(folder: str | os.PathLike[str], *, name: str | None = None) -> bool:
    """Write ``folder``/README.md atomically; False (and nothing written) when a
    README.md that rnnkit did not write is there."""
    target = Path(folder) / CARD
    if (target.exists() or target.is_symlink()) and not is_card(target):
        return False
    atomic_write(target, render(folder, name=name).encode("utf-8"))
    return True


def write_card(run: str | os.PathLike[str]) -> Path:
    """Regenerate the model card of the run or pretrained folder ``run``; its path.

    The folder must be rnnkit's only (a user's README.md is refused, never replaced);
    the card is written under the folder's lock, so not while a run is writing it.
    """
    probe = RunFolder(run)
    if not probe.path.is_dir() or probe.path.is_symlink():
        raise RunFolderError(not_found(probe.path))
    config = probe.read_config()
    extra = get_task(config.task).extra_files if config.task != "fit" else ()
    folder = RunFolder(run, extra)
    folder.check_owned()
    with folder.locked():
        write(folder.path)
    return folder.path / CARD


# ---- pieces -------------------------------------------------------------------------------


def _evaluations(rows: list[Row]) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    for r in rows:
        if r.split == "validation":
            out.setdefault(r.step, {})[r.metric] = r.value
    return out


def _split_last(rows: list[Row], split: str) -> tuple[int, dict[str, float]] | None:
    steps = [r.step for r in rows if r.split == split]
    if not steps:
        return None
    last = max(steps)
    return last, {r.metric: r.value for r in rows if r.split == split and r.step == last}


def best_step(path: Path, manifest: dict[str, Any] | None) -> int | None:
    """The step of the best weights: the manifest's, else model.safetensors's header."""
    if manifest is not None:
        step = (manifest.get("best") or {}).get("step")
        return step if isinstance(step, int) and not isinstance(step, bool) else None
    model = path / MODEL
    step = tensors_meta(model).get("step") if model.is_file() else None
    return int(step) if step is not None and step.isdigit() else None


def _done(config: RunConfig, manifest: dict[str, Any] | None, rows: list[Row]) -> str:
    if manifest is not None:
        step, elapsed = int(manifest["step"]), float(manifest["elapsed_s"])
    elif rows:
        step, elapsed = rows[-1].step, rows[-1].time
    else:
        return "no training recorded (weights saved from a model object)"
    train = config.train
    budget = []
    if train.steps is not None:
        budget.append(f"{train.steps:,} steps")
    if train.minutes is not None:
        budget.append(f"{train.minutes:g} minutes")
    text = f"{step:,} steps in {clock(elapsed)} (budget: {' or '.join(budget)})"
    skipped = int((manifest or {}).get("skipped_steps", 0) or 0)
    if skipped:
        text += f"; {skipped} non-finite steps skipped"
    world = int((manifest or {}).get("world_size", 1) or 1)
    if world > 1:
        text += f"; {world} processes"
    return text


def _versions(trained: str) -> str:
    if trained == __version__:
        return trained
    return f"{trained} (this card written by {__version__})"


def _shape(task_cls: Any, options: dict[str, Any]) -> list[str]:
    """The options that size the model, as their flags say them: "--hidden 128"."""
    flags = _flags(task_cls.Options if task_cls is not None else None)
    out = []
    for key, value in options.items():
        sizes = "hidden" in key or "layers" in key or key.startswith("embed") or key == "proj_size"
        if (key == "cell" or key.endswith("_cell") or sizes) and value is not None:
            out.append(f"{flags.get(key, key)} {value}")
    return out


def _flags(options_cls: Any) -> dict[str, str]:
    """Each field's command-line flag ("--hidden" for hidden_size)."""
    if options_cls is None or not dataclasses.is_dataclass(options_cls):
        return {}
    return {
        f.name: f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        for f in dataclasses.fields(options_cls)
    }


def _metrics_text(metrics: dict[str, float], step: int | None) -> str:
    shown = ", ".join(f"{k} {_num(v)}" for k, v in sorted(metrics.items()))
    return f"{shown} (step {step})" if step is not None else shown


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _stored_values(model: Path) -> int:
    """How many numbers model.safetensors holds, from its header alone."""
    if not model.is_file():
        return 0
    from safetensors import safe_open

    total = 0
    with safe_open(str(model), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
            n = 1
            for d in f.get_slice(key).get_shape():
                n *= d
            total += n
    return total


def _data_lines(derived: dict[str, Any]) -> list[tuple[str, str]]:
    """``derived`` in words: scalars as they are, lists and vocabularies by their size."""
    lines: list[tuple[str, str]] = []

    def add(key: str, value: Any) -> None:
        if isinstance(value, dict) and isinstance(value.get("chars"), str) and len(value) == 1:
            lines.append((key, f"{len(value['chars'])} characters (and the unknown class)"))
        elif isinstance(value, dict) and key.count(".") < 2:
            for k, v in value.items():
                add(f"{key}.{k}", v)
        elif isinstance(value, dict):
            lines.append((key, f"{len(value)} entries"))
        elif isinstance(value, list):
            short = all(isinstance(v, str) and len(v) <= 20 for v in value)
            if short and 0 < len(value) <= 12:
                lines.append((key, ", ".join(value)))
            else:
                lines.append((key, f"{len(value)} entries"))
        elif isinstance(value, str):
            lines.append((key, value if len(value) <= 120 else value[:117] + "..."))
        elif value is not None:
            lines.append((key, json.dumps(value)))

    for key, value in derived.items():
        add(key, value)
    return lines


def _options_table(
    options_cls: Any, values: dict[str, Any], helps: dict[str, str] | None = None
) -> list[str]:
    """``values`` as a table: each option's flag, its value (JSON) and its help (from
    ``options_cls``'s fields, or ``helps``)."""
    flags, helps = _flags(options_cls), dict(helps or {})
    if options_cls is not None and dataclasses.is_dataclass(options_cls):
        helps = {f.name: str(f.metadata.get("help", "")) for f in dataclasses.fields(options_cls)}
    out = ["| option | value | meaning |", "|---|---|---|"]
    for key, value in values.items():
        label, meaning = flags.get(key, key), helps.get(key, "")
        out.append(f"| `{label}` | {_cell(json.dumps(value))} | {_cell(meaning)} |")
    return [*out, ""]


def _use(task: str, name: str, is_run: bool) -> list[str]:
    quoted = json.dumps(name)
    run = shlex.quote(name)
    given = ", model=MyModel(...)" if task == "fit" else ""
    py = [
        "```python",
        "import rnnkit",
        "",
        f"model = rnnkit.load_pretrained({quoted}{given})  # the best weights, in eval mode",
        f"# the same: rnnkit.train.run.load({quoted}{given})",
        *_USE.get(task, ([], []))[0],
        "```",
        "",
    ]
    if task == "fit":
        return [
            f"Commands below name this folder `{name}`; run them from the folder that holds it.",
            "",
            *py,
        ]
    sh = ["```bash", f"rnnkit eval {run}"]
    sh += [line.format(run=run) for line in _USE.get(task, ([], []))[1]]
    for mode in _EXPORT_MODES.get(task, []):
        sh.append(f"rnnkit export {run} --format onnx {mode}")
    if is_run:
        sh.append(f"rnnkit train --resume {run} --steps N   # train on, exactly where it stopped")
    sh.append(f"rnnkit train --config {run}/config.json --out NEW   # a new run, same options")
    sh += ["```", ""]
    intro = [
        f"Commands below name this folder `{name}`; run them from the folder that holds it.",
        "",
    ]
    return [*intro, *py, *sh]


def _cell(text: str) -> str:
    """``text`` safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")) if text else ""
