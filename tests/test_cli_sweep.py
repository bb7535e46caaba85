"""Every bad command line of every command: one line on stderr, status 2, nothing written.

The cases are generated from the parsers themselves: every option of every
``rnnkit train TASK`` parser (from :func:`rnnkit.cli.train.build_parser`, for each task of
the registry) and of ``generate``, ``eval``, ``predict``, ``translate``, ``explain ...`` and
``demo``
gets values it must refuse - text where a number is due, numbers outside the declared
range, ``nan``, ``inf``, ``1e400``, absurd sizes, a wrong choice, no value - and then come
the run-folder mistakes: unknown flags, two tasks, ``--resume`` of a missing folder or of
a folder that is not a run or with other options, ``--config`` files that are missing,
not JSON or of the wrong format, ``--out`` on a file, and runs of the wrong task.

Each case runs in-process in an empty working folder. It must end with status 2 and
exactly one line on stderr that says "error", no traceback, and leave the working folder
and every file or folder it named as they were. No case may reach the work itself: the
training loop (and each command's own work: sampling, scoring, translating, an
experiment) is replaced by a tripwire that fails the case.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from rnnkit import _options
from rnnkit.cli import _lm_args, main
from rnnkit.cli import build_parser as build_main_parser
from rnnkit.cli.train import build_parser
from rnnkit.tasks import NAMES, get_task
from rnnkit.train import TrainConfig
from rnnkit.train.config import BUDGET_KEYS

# ---- what the cases name -------------------------------------------------------------
# Placeholders in a case's argv, filled in with paths under one shared folder (built once
# per module, hashed before and after every case). A relative "nope..." path names
# nothing in the empty working folder.
MISSING = "nope"
SMALL = {  # options that make a task's data and model tiny (untrained runs, cheap cases)
    "lm": {"hidden_size": 16, "embed_size": 8, "num_layers": 1, "seq_len": 16, "batch_size": 4},
    "numbers": {
        "max_number": 2000,
        "n_valid": 20,
        "n_test": 20,
        "embed_size": 4,
        "encoder_hidden": 8,
        "decoder_hidden": 8,
    },
    "tag": {"hidden_size": 4, "embed_size": 4, "seq_len": 8},  # and --data {TAGS}
}
CHEAP_FLAGS = {  # added to run-folder cases so that one that gets too far stays quick
    "lm": ["--text", "{TEXT}"],
    "numbers": ["--max-number", "2000"],
}


class Tripwire(BaseException):
    """The work of a command started: the case was not refused. (Not an Exception, so
    the CLI's error handler cannot turn it into a status.)"""


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]


def _importable() -> tuple[dict[str, type], dict[str, str]]:
    tasks, broken = {}, {}
    for name in NAMES:
        try:
            tasks[name] = get_task(name)
        except Exception as err:  # a task being ported: its generic cases still run
            broken[name] = f"{type(err).__name__}: {err}"
    return tasks, broken


TASKS, BROKEN_TASKS = _importable()


# ---- bad values ----------------------------------------------------------------------


def _number_candidates(kind: type, meta: dict[str, Any]) -> list[str]:
    """Texts to try on a number option; those its field accepts are dropped later."""
    texts = ["ten", "nan", "inf", "-inf", "1e400", "", "1,5"]
    if kind is int:
        texts += ["1.5"]
    texts += ["0", "-1", str(10**12)]
    low, high = meta.get("low"), meta.get("high")
    if low is not None:
        texts += [_num(kind, low - 1)]
    if high is not None:
        texts += [_num(kind, high + 1), _num(kind, high * 1000 + 1)]
        if meta.get("open_high"):
            texts.append(_num(kind, high))
    return list(dict.fromkeys(texts))


def _num(kind: type, value: float) -> str:
    return str(int(value)) if kind is int else repr(float(value))


def _refused_by_field(field: dataclasses.Field[Any], hint: Any, text: str) -> bool:
    """True when the option's own rule (type, range) refuses ``text``."""
    kind, _ = _options.base_type(hint)
    try:
        value: Any = int(text) if kind is int else float(text)
        _options.check_value(field, hint, value)
    except (ValueError, OverflowError):
        return True
    return False


def field_bad_values(field: dataclasses.Field[Any], hint: Any) -> list[tuple[str, list[str]]]:
    """(label, argv tail) of bad values for the option of ``field``."""
    flag = _options.flag_of(field)
    kind, _ = _options.base_type(hint)
    meta = field.metadata
    if kind is bool:  # --flag / --no-flag: a switch takes no value
        no = "--no-" + flag[2:]
        return [("explicit", [f"{flag}=yes"]), ("explicit-no", [f"{no}=1"])]
    cases: list[tuple[str, list[str]]] = [("no-value", [flag])]
    if meta.get("choices"):
        upper = [c.upper() for c in meta["choices"] if c.upper() not in meta["choices"]][:1]
        for text in ["bogus", "", *upper]:
            cases.append((f"choice={text!r}", _value(flag, text)))
        return cases
    if kind is str:
        if field.name == "text":
            texts = [MISSING + ".txt", "", "{EMPTY}", "{FOREIGN}", "{BINARY}", "{SHORT}"]
        elif field.name == "lang":
            texts = ["xx_bogus", ""]
        else:
            texts = [""]
        return [*cases, *((f"value={t!r}", _value(flag, t)) for t in texts)]
    for text in _number_candidates(kind, meta):
        if _refused_by_field(field, hint, text):
            cases.append((f"value={text!r}", _value(flag, text)))
    return cases


def _value(flag: str, text: str) -> list[str]:
    """``--flag TEXT``, or ``--flag=TEXT`` where TEXT would read as an option or nothing."""
    return [f"{flag}={text}"] if not text or text.startswith("-") else [flag, text]


def field_good_value(field: dataclasses.Field[Any], hint: Any) -> list[str]:
    """A value the option accepts (for "--resume with other options")."""
    flag = _options.flag_of(field)
    kind, _ = _options.base_type(hint)
    if kind is bool:
        return [flag]
    value = field.default
    if value is None:
        value = {"text": "{TEXT}"}.get(field.name, field.metadata.get("low") or 1)
        if kind is int:
            value = int(value)
    return [flag, str(value)]


def _fields(cls: type) -> dict[str, tuple[dataclasses.Field[Any], Any]]:
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls)}


# ---- the train cases -----------------------------------------------------------------


def train_option_cases(name: str, task_cls: type) -> Iterator[Case]:
    """Bad values of every option the parser of `rnnkit train NAME` has."""
    parser, task_dests, train_dests = build_parser(task_cls)
    task_fields, train_fields = _fields(task_cls.Options), _fields(TrainConfig)
    seen = set()
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        flag = action.option_strings[0]
        if action.dest in task_dests:
            field, hint = task_fields[task_dests[action.dest]]
        elif action.dest in train_dests:
            field, hint = train_fields[train_dests[action.dest]]
        else:  # --out, --resume, --config: their own cases below
            yield Case(f"train-{name}-{flag}-no-value", ("train", name, flag))
            seen.add(action.dest)
            continue
        seen.add(action.dest)
        for label, tail in field_bad_values(field, hint):
            yield Case(f"train-{name}-{flag}-{label}", ("train", name, *tail))
    # Every CLI field of the options and of TrainConfig has its flag in the parser.
    cli_fields = [f for f in dataclasses.fields(task_cls.Options) if f.metadata.get("cli", True)]
    expected = {_options.flag_of(f)[2:].replace("-", "_") for f in cli_fields}
    expected |= {f.name for f in dataclasses.fields(TrainConfig)} | {"out", "resume", "config"}
    assert expected <= seen, sorted(expected - seen)


def train_run_folder_cases(name: str) -> Iterator[Case]:
    """Unknown flags, two tasks, --resume / --config / --out mistakes of task ``name``."""
    t = ("train", name)
    cheap = tuple(CHEAP_FLAGS.get(name, []))
    yield Case(f"train-{name}-unknown-flag", (*t, "--bogus"))
    yield Case(f"train-{name}-unknown-flag-value", (*t, "--bogus=1"))
    yield Case(f"train-{name}-unknown-flag-after-good", (*t, "--seed", "1", "--bogus", "2"))
    yield Case(f"train-{name}-extra-positional", (*t, "extra"))
    yield Case(f"train-{name}-help-typo", (*t, "-help"))
    for other in NAMES:
        if other != name:
            yield Case(f"train-{name}-two-tasks-{other}", (*t, other))
            yield Case(f"train-{name}-two-tasks-task-flag-{other}", (*t, "--task", other))
            two = ("train", "--task", name, "--task", other)
            yield Case(f"train-{name}-task-flags-{other}", two)
    # --out
    yield Case(f"train-{name}-out-a-file", (*t, *cheap, "--out", "{FILE}"))
    yield Case(f"train-{name}-out-a-foreign-folder", (*t, *cheap, "--out", "{FOREIGN}"))
    yield Case(f"train-{name}-out-a-symlink", (*t, *cheap, "--out", "{LINK}"))
    yield Case(f"train-{name}-out-under-a-file", (*t, *cheap, "--out", "{FILE}/run"))
    yield Case(f"train-{name}-out-empty", (*t, *cheap, "--out="))
    # --resume: the run's own config decides; only the budget may be given with it
    for what, path in [
        ("missing", MISSING),
        ("empty-folder", "{EMPTY}"),
        ("foreign-folder", "{FOREIGN}"),
        ("a-file", "{FILE}"),
        ("bad-config", "{CONFIG_DIR_BAD}"),
    ]:
        yield Case(f"train-{name}-resume-{what}", (*t, "--resume", path))
        yield Case(f"train-{name}-resume-{what}-steps", (*t, "--resume", path, "--steps", "5"))
    if name in TASKS:
        run = f"{{STUB_{name}}}"
        yield Case(f"train-{name}-resume-with-out", (*t, "--resume", run, "--out", "x"))
        yield Case(
            f"train-{name}-resume-with-config",
            (*t, "--resume", run, "--config", f"{{CONFIG_{name}_ok}}"),
        )
        yield Case(f"train-resume-{name}-bad-steps", ("train", "--resume", run, "--steps", "0"))
        _, task_dests, train_dests = build_parser(TASKS[name])
        for dests, cls in ((task_dests, TASKS[name].Options), (train_dests, TrainConfig)):
            fields = _fields(cls)
            for field_name in dests.values():
                if field_name in BUDGET_KEYS:
                    continue
                good = field_good_value(*fields[field_name])
                yield Case(f"train-{name}-resume-with-{good[0]}", (*t, "--resume", run, *good))
        for other in TASKS:
            if other != name:
                yield Case(
                    f"train-{name}-resume-a-run-of-{other}",
                    (*t, "--resume", f"{{STUB_{other}}}", "--steps", "5"),
                )
                yield Case(
                    f"train-{name}-config-of-{other}",
                    (*t, "--config", f"{{CONFIG_{other}_ok}}"),
                )
    # --config
    for what in CONFIG_FILES_SHARED:
        yield Case(f"train-{name}-config-{what}", (*t, "--config", f"{{CONFIG_{what}}}"))
    yield Case(f"train-{name}-config-missing", (*t, "--config", MISSING + ".json"))
    yield Case(f"train-{name}-config-folder-without-config", (*t, "--config", "{EMPTY}"))
    if name in TASKS:
        for what in config_files_of(name, TASKS[name]):
            if what == "ok":
                continue
            path = f"{{CONFIG_{name}_{what}}}"
            yield Case(f"train-{name}-config-{what}", (*t, "--config", path))
            if not what.endswith("-bad"):  # the task read from the file, not named
                yield Case(f"train-config-{name}-{what}-untold", ("train", "--config", path))


def train_generic_cases() -> Iterator[Case]:
    yield Case("train-unknown-task", ("train", "bogus"))
    yield Case("train-unknown-task-flag", ("train", "--task", "bogus"))
    yield Case("train-unknown-task-flag-eq", ("train", "--task=bogus"))
    yield Case("train-task-flag-no-value", ("train", "--task"))
    yield Case("train-task-flag-empty", ("train", "--task="))
    yield Case("train-empty-task", ("train", ""))
    yield Case("train-default-task-bad-value", ("train", "--steps", "0"))
    yield Case("train-default-task-unknown-flag", ("train", "--bogus"))
    yield Case("train-resume-missing", ("train", "--resume", MISSING))
    yield Case("train-resume-no-value", ("train", "--resume"))
    yield Case("train-config-no-value", ("train", "--config"))
    yield Case("train-resume-and-config", ("train", "--resume", MISSING, "--config", MISSING))


# ---- config files --------------------------------------------------------------------

BUDGET = {"steps": 5}  # a config file without a budget is refused (see test_cli_lm.py)
CONFIG_FILES_SHARED: dict[str, bytes] = {
    "bad-json": b"{ not json",
    "empty-file": b"",
    "not-utf8": b"\xff\xfe{\x00}\x00",
    "a-list": b"[1, 2]",
    "a-string": b'"lm"',
    "old-format": json.dumps(
        {"format": "rnnkit.charlm", "format_version": 1, "model": {}, "train": {}}
    ).encode(),
    "future-version": json.dumps(
        {"format": "rnnkit.run", "format_version": 99, "task": "lm", "train": BUDGET}
    ).encode(),
    "no-task": json.dumps({"options": {}, "train": BUDGET}).encode(),
    "task-not-a-string": json.dumps({"task": 3, "train": BUDGET}).encode(),
    "unknown-task": json.dumps({"task": "bogus", "train": BUDGET}).encode(),
}


def config_files_of(name: str, task_cls: type) -> dict[str, Any]:
    """{what: JSON object} of config files of task ``name``: one good, the rest bad."""
    files: dict[str, Any] = {
        "ok": {"task": name, "train": BUDGET},
        "unknown-top-key": {"task": name, "train": BUDGET, "bogus": 1},
        "options-not-an-object": {"task": name, "train": BUDGET, "options": []},
        "train-not-an-object": {"task": name, "train": [1]},
        "derived-not-an-object": {"task": name, "train": BUDGET, "derived": "x"},
        "unknown-option": {"task": name, "train": BUDGET, "options": {"bogus": 1}},
        "unknown-train-key": {"task": name, "train": {**BUDGET, "bogus": 1}},
        "no-budget": {"task": name, "train": {"steps": None, "minutes": None}},
        "wrong-format": {"format": "rnnkit.charlm", "task": name, "train": BUDGET},
    }
    for field_name, (field, hint) in _fields(task_cls.Options).items():
        if field.metadata.get("cli", True):
            bad = {field_name: _bad_json_value(field, hint)}
            files[f"options-{field_name}-bad"] = {"task": name, "train": BUDGET, "options": bad}
    for field_name, (field, hint) in _fields(TrainConfig).items():
        bad = {**BUDGET, field_name: _bad_json_value(field, hint)}
        files[f"train-{field_name}-bad"] = {"task": name, "train": bad}
    return files


def _bad_json_value(field: dataclasses.Field[Any], hint: Any) -> Any:
    kind, _ = _options.base_type(hint)
    meta = field.metadata
    if kind is bool:
        return "yes"
    if kind is str:
        return "bogus" if meta.get("choices") else 3
    low, high = meta.get("low"), meta.get("high")
    if low is not None:
        return kind(low - 1)
    if high is not None:
        return kind(high + 1)
    return "ten"


# ---- the other commands: options from their argparse parsers -------------------------


def subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _type_bad_texts(action: argparse.Action) -> list[str]:
    """Texts the action's type must refuse (only what is bad for any reading of it)."""
    t = action.type
    ints = ["ten", "1.5", "nan", "1e400", ""]
    floats = ["ten", "nan", "inf", "-inf", "1e400", ""]
    if action.choices is not None:
        return ["bogus", ""]
    if t is _lm_args.positive_int:
        return [*ints, "0", "-1"]
    if t is _lm_args.nonnegative_int:
        return [*ints, "-1"]
    if t in (_lm_args.folder_name, _lm_args.folder_path):
        return [""]  # an empty name would mean the working folder without saying so
    if t is _lm_args.threads:
        return [*ints, "0", "-1", str(_lm_args.THREADS_MAX + 1)]
    if t is _lm_args.seed:
        return [*ints, "-1", str(_lm_args.SEED_MAX + 1)]
    if t is _lm_args.positive_float:
        return [*floats, "0", "-1"]
    if t is _lm_args.nonnegative_float:
        return [*floats, "-1"]
    if t is int:
        return ints
    if t is float:
        return floats
    if getattr(t, "__name__", "") == "_lengths":  # explain compare --scaling-lengths
        return ["ten", "10,x", "0", "-1,5", "1.5", "10,,20"]
    return []


def command_option_cases(
    prefix: str, parser: argparse.ArgumentParser, before: tuple[str, ...], after: tuple[str, ...]
) -> Iterator[Case]:
    """Bad values of every option of ``parser``: argv is before + option + after."""
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        flag = action.option_strings[-1]
        if action.nargs == 0:  # a switch: it takes no value
            yield Case(f"{prefix}-{flag}-explicit", (*before, f"{flag}=1", *after))
            continue
        yield Case(f"{prefix}-{flag}-no-value", (*before, *after, flag))
        for text in _type_bad_texts(action):
            yield Case(f"{prefix}-{flag}-value={text!r}", (*before, *_value(flag, text), *after))
    yield Case(f"{prefix}-unknown-flag", (*before, "--bogus", *after))
    yield Case(f"{prefix}-unknown-flag-value", (*before, "--bogus=1", *after))


def not_runs(task: str) -> list[tuple[str, str]]:
    """Folders that hold no usable run of ``task``."""
    return [
        ("missing", MISSING),
        ("empty-folder", "{EMPTY}"),
        ("foreign-folder", "{FOREIGN}"),
        ("a-file", "{FILE}"),
        ("bad-config", "{CONFIG_DIR_BAD}"),
        ("stopped-before-its-first-checkpoint", f"{{STOPPED_{task}}}"),
        ("config-without-derived", f"{{STUB_{task}}}"),
    ]


def other_command_cases() -> Iterator[Case]:
    commands = subparsers(build_main_parser())
    # generate: a language-model run
    yield from command_option_cases("generate", commands["generate"], ("generate", "{RUN_lm}"), ())
    yield Case("generate-no-run", ("generate",))
    yield Case("generate-two-runs", ("generate", "{RUN_lm}", "{RUN_lm}"))
    yield Case("generate-a-numbers-run", ("generate", "{RUN_numbers}"))
    # eval: the language-model options on an lm run, the numbers ones on a numbers run
    numbers_only = {"--beam", "--alpha", "--limit"}
    eval_parser = commands["eval"]
    for action in eval_parser._actions:
        if set(action.option_strings) & numbers_only:
            sub = argparse.ArgumentParser(add_help=False)
            sub._add_action(action)
            yield from (
                c
                for c in command_option_cases("eval-numbers", sub, ("eval", "{RUN_numbers}"), ())
                if "unknown" not in c.id
            )
    lm_eval = argparse.ArgumentParser(add_help=False)
    for action in eval_parser._actions:
        if action.option_strings and not set(action.option_strings) & numbers_only:
            lm_eval._add_action(action)
    yield from command_option_cases("eval", lm_eval, ("eval", "{RUN_lm}"), ())
    yield Case("eval-no-run", ("eval",))
    yield Case("eval-text-missing", ("eval", "{RUN_lm}", "--text", MISSING + ".txt"))
    yield Case("eval-text-empty-folder", ("eval", "{RUN_lm}", "--text", "{EMPTY}"))
    yield Case("eval-text-binary", ("eval", "{RUN_lm}", "--text", "{BINARY}"))
    yield Case("eval-text-and-split", ("eval", "{RUN_lm}", "--text", "{TEXT}", "--split", "test"))
    yield Case("eval-lm-run-numbers-flag", ("eval", "{RUN_lm}", "--beam", "2"))
    yield Case("eval-numbers-run-text", ("eval", "{RUN_numbers}", "--text", "{TEXT}"))
    yield Case("eval-numbers-run-train-split", ("eval", "{RUN_numbers}", "--split", "train"))
    yield Case("eval-numbers-beam-0", ("eval", "{RUN_numbers}", "--beam", "0"))
    yield Case("eval-numbers-limit-0", ("eval", "{RUN_numbers}", "--limit", "0"))
    # predict: a tag run and a JSON-lines file of its kind
    yield from command_option_cases(
        "predict", commands["predict"], ("predict", "{RUN_tag}", "--data", "{TAGS}"), ()
    )
    yield Case("predict-no-run", ("predict",))
    yield Case("predict-no-data", ("predict", "{RUN_tag}"))
    yield Case("predict-two-runs", ("predict", "{RUN_tag}", "{RUN_tag}", "--data", "{TAGS}"))
    for task in ("lm", "numbers"):
        yield Case(f"predict-a-{task}-run", ("predict", f"{{RUN_{task}}}", "--data", "{TEXT}"))
    for task in ("forecast", "adding", "classify"):  # a classify run: --data is no .ts file
        yield Case(f"predict-a-{task}-run", ("predict", f"{{STUB_{task}}}", "--data", "{TEXT}"))
    tag_run = ("predict", "{RUN_tag}", "--data", "{TAGS}")
    yield Case("predict-out-a-file", (*tag_run, "--out", "{FILE}"))
    yield Case("predict-out-a-folder", (*tag_run, "--out", "{EMPTY}"))
    yield Case("predict-out-in-the-run", (*tag_run, "--out", "{RUN_tag}/tags.jsonl"))
    yield Case("predict-out-the-data", (*tag_run, "--out", "{TAGS}", "--force"))
    yield Case("predict-out-empty", (*tag_run, "--out="))
    yield Case("predict-data-missing", ("predict", "{RUN_tag}", "--data", MISSING + ".jsonl"))
    yield Case("predict-data-a-folder", ("predict", "{RUN_tag}", "--data", "{EMPTY}"))
    yield Case("predict-data-binary", ("predict", "{RUN_tag}", "--data", "{BINARY}"))
    yield Case("predict-data-not-jsonl", (*tag_run, "--format", "text", "--data", "{BINARY}"))
    yield Case("predict-format-of-a-classify-run", (
        "predict", "{STUB_classify}", "--data", "{TEXT}", "--format", "text",
    ))  # fmt: skip
    # translate: a numbers run and one input
    # (the input before the options: argparse gives TEXT... nothing after an option)
    yield from command_option_cases(
        "translate", commands["translate"], ("translate", "{RUN_numbers}", "twelve"), ()
    )
    yield Case("translate-no-run", ("translate",))
    yield Case("translate-an-lm-run", ("translate", "{RUN_lm}", "twelve"))
    yield Case("translate-beam-and-temperature", (
        "translate", "{RUN_numbers}", "twelve", "--beam", "2", "--temperature", "1",
    ))  # fmt: skip
    yield Case("translate-plot-two-inputs", (
        "translate", "{RUN_numbers}", "twelve", "nine", "--plot", "x.png",
    ))  # fmt: skip
    for command, task, tail in (
        ("generate", "lm", ()),
        ("eval", "lm", ()),
        ("eval", "numbers", ()),
        ("translate", "numbers", ("twelve",)),
        ("predict", "tag", ("--data", "{TAGS}")),
    ):
        for what, path in not_runs(task):
            yield Case(f"{command}-run-{what}", (command, path, *tail))
    # explain: each experiment; gates reads a language-model run
    experiments = subparsers(commands["explain"])
    for name, parser in experiments.items():
        before: tuple[str, ...] = ("explain", name)
        if name == "gates":
            before = (*before, "{RUN_lm}")
        yield from command_option_cases(f"explain-{name}", parser, before, ())
        yield Case(f"explain-{name}-out-a-file", (*before, "--out", "{FILE}"))
    yield Case("explain-no-experiment", ("explain",))
    yield Case("explain-unknown-experiment", ("explain", "bogus"))
    # without a run folder gates trains its reference model: every mistake is refused first
    yield Case("explain-gates-steps-and-a-run", ("explain", "gates", "{RUN_lm}", "--steps", "2"))
    yield Case("explain-gates-save-run-and-a-run", (
        "explain", "gates", "{RUN_lm}", "--save-run", "{EMPTY}/kept",
    ))  # fmt: skip
    yield Case("explain-gates-save-run-a-file", ("explain", "gates", "--save-run", "{FILE}"))
    yield Case("explain-gates-save-run-foreign", ("explain", "gates", "--save-run", "{FOREIGN}"))
    yield Case("explain-gates-text-too-short", ("explain", "gates", "--text", "a"))
    yield Case("explain-gates-text-and-file", (
        "explain", "gates", "{RUN_lm}", "--text", "abc", "--file", "{TEXT}",
    ))  # fmt: skip
    yield Case("explain-gates-file-missing", ("explain", "gates", "{RUN_lm}", "--file", MISSING))
    yield Case("explain-gates-units", ("explain", "gates", "{RUN_lm}", "--units", "1,x"))
    yield Case("explain-gates-a-numbers-run", ("explain", "gates", "{RUN_numbers}"))
    for what, path in not_runs("lm"):
        yield Case(f"explain-gates-run-{what}", ("explain", "gates", path))
    # demo
    yield from command_option_cases("demo", commands["demo"], ("demo",), ())
    yield Case("demo-length-below-10", ("demo", "--length", "5"))
    yield Case("demo-length-too-long", ("demo", "--length", str(10**12)))
    yield Case("demo-out-a-file", ("demo", "--out", "{FILE}"))
    yield Case("demo-out-a-foreign-folder", ("demo", "--out", "{FOREIGN}"))
    yield Case("demo-extra-positional", ("demo", "extra"))
    # the top level
    yield Case("unknown-command", ("bogus",))
    yield Case("unknown-top-level-flag", ("--bogus",))
    yield Case("flag-before-command", ("--bogus", "generate", "{RUN_lm}"))


def all_cases() -> list[Case]:
    cases: list[Case] = [*train_generic_cases()]
    for name in NAMES:
        if name in TASKS:
            cases += train_option_cases(name, TASKS[name])
        cases += train_run_folder_cases(name)
    cases += other_command_cases()
    ids: dict[str, int] = {}
    unique = []
    for case in cases:  # ids are unique: a repeat gets a number
        n = ids[case.id] = ids.get(case.id, 0) + 1
        unique.append(case if n == 1 else dataclasses.replace(case, id=f"{case.id}#{n}"))
    return unique


CASES = all_cases()


# ---- the shared folder ---------------------------------------------------------------


def _untrained_run(path: Path, name: str, text: Path) -> None:
    """A run folder as `rnnkit train` leaves it before training: config.json and the
    initial weights as model.safetensors (loadable; no training state)."""
    from rnnkit.train.distributed import Context
    from rnnkit.train.files import save_tensors
    from rnnkit.train.runfolder import MODEL, RunConfig, RunFolder

    task_cls = TASKS[name]
    given = dict(SMALL.get(name, {}))
    if name == "lm":
        given["text"] = str(text)
    if name == "tag":
        given["data"] = str(text.parent / "tags.jsonl")
    task = task_cls(task_cls.parse_options(given, where=name, partial=True))
    train = task_cls.default_train(steps=1)
    task.prepare(train, Context(0, 1, torch.device("cpu")))
    folder = RunFolder(path, task_cls.extra_files)
    path.mkdir()
    folder.write_config(RunConfig(name, task.options_dict(), train, task.derived))
    save_tensors(path / MODEL, task.build_model().state_dict())


def _stub_run(path: Path, name: str) -> None:
    """A folder with a valid config.json of task ``name`` and nothing else."""
    from rnnkit.train.runfolder import RunConfig, RunFolder

    task_cls = TASKS[name]
    path.mkdir()
    options = dataclasses.asdict(task_cls.Options())
    RunFolder(path).write_config(RunConfig(name, options, task_cls.default_train(), {}))


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    import textwrap

    root = tmp_path_factory.mktemp("sweep")
    paths: dict[str, str] = {}

    def put(key: str, path: Path) -> None:
        paths[key] = str(path)

    text = root / "text.txt"
    text.write_text(Path(textwrap.__file__).read_text(encoding="utf-8"), encoding="utf-8")
    put("TEXT", text)
    (root / "file.txt").write_text("a file, not a folder\n", encoding="utf-8")
    put("FILE", root / "file.txt")
    (root / "empty").mkdir()
    put("EMPTY", root / "empty")
    (root / "foreign").mkdir()
    (root / "foreign" / "notes.md").write_text("mine\n", encoding="utf-8")
    put("FOREIGN", root / "foreign")
    (root / "link").symlink_to(root / "empty", target_is_directory=True)
    put("LINK", root / "link")
    (root / "binary.bin").write_bytes(b"\x7fELF\x00\x01\x02" * 50)
    put("BINARY", root / "binary.bin")
    (root / "short.txt").write_text("tiny\n", encoding="utf-8")
    put("SHORT", root / "short.txt")
    (root / "bad-config").mkdir()
    (root / "bad-config" / "config.json").write_text("{ not json", encoding="utf-8")
    put("CONFIG_DIR_BAD", root / "bad-config")
    configs = root / "configs"
    configs.mkdir()
    for what, data in CONFIG_FILES_SHARED.items():
        (configs / f"{what}.json").write_bytes(data)
        put(f"CONFIG_{what}", configs / f"{what}.json")
    for name, task_cls in TASKS.items():
        for what, obj in config_files_of(name, task_cls).items():
            path = configs / f"{name}-{what}.json"
            path.write_text(json.dumps(obj), encoding="utf-8")
            put(f"CONFIG_{name}_{what}", path)
        _stub_run(root / f"stub-{name}", name)
        put(f"STUB_{name}", root / f"stub-{name}")
    words = ["ab1", "c22d", "e3", "fg", "4h", "ij5", "k6l", "7m", "no8", "p9", "qr", "s0t"]
    lines = [{"x": w, "y": ["D" if c.isdigit() else "N" for c in w]} for w in words]
    (root / "tags.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))
    put("TAGS", root / "tags.jsonl")
    for name in ("lm", "numbers", "tag"):
        if name in TASKS:
            _untrained_run(root / f"run-{name}", name, text)
            put(f"RUN_{name}", root / f"run-{name}")
            # what a run killed before its first evaluation leaves: config.json alone
            (root / f"stopped-{name}").mkdir()
            shutil.copy(root / f"run-{name}" / "config.json", root / f"stopped-{name}")
            put(f"STOPPED_{name}", root / f"stopped-{name}")
    return root, paths


def snapshot(folder: Path) -> dict[str, tuple[int, ...]]:
    """Every entry under ``folder`` (links not followed) with its inode, size and time:
    a write (or an atomic replace, a new inode) changes them."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.join(dirpath, name)] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def tripwires(monkeypatch: pytest.MonkeyPatch) -> None:
    """The work of every command fails the case: only refusals may happen."""

    def trip(what: str) -> Any:
        def wire(*args: Any, **kwargs: Any) -> Any:
            raise Tripwire(f"{what} started: the command line was not refused")

        return wire

    from rnnkit.cli import eval as eval_command
    from rnnkit.cli import seq2seq_args, translate
    from rnnkit.explain import gates
    from rnnkit.models.lm import CharLM
    from rnnkit.train.loop import Trainer

    monkeypatch.setattr(Trainer, "fit", trip("training"))
    monkeypatch.setattr(CharLM, "sample", trip("sampling"))
    monkeypatch.setattr(eval_command, "bits_per_char", trip("scoring"))
    monkeypatch.setattr(seq2seq_args, "evaluate", trip("scoring"), raising=False)
    monkeypatch.setattr(translate, "translate", trip("translating"))
    monkeypatch.setattr("rnnkit.tasks.predict.class_logits", trip("classifying"))
    monkeypatch.setattr("rnnkit.tasks.tag.predict", trip("tagging"))
    for name in ("run_gradient_flow", "run_compare", "run_bidirectional", "run_bptt",
                 "run_lstm_example"):  # fmt: skip
        monkeypatch.setattr(f"rnnkit.explain.{name}", trip(f"explain {name}"))
    monkeypatch.setattr("rnnkit.explain.rnn_loop.run_rnn_loop", trip("explain rnn-loop"))
    monkeypatch.setattr("rnnkit.explain.draw.build", trip("explain draw"))
    monkeypatch.setattr(gates.GateAnalysis, "plot", trip("explain gates' plot"))
    monkeypatch.delenv("RNNKIT_TRACEBACK", raising=False)


def _placeholders(argv: tuple[str, ...]) -> set[str]:
    import string

    return {f for a in argv for _, f, _, _ in string.Formatter().parse(a) if f}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_command_line_is_one_line_status_2_and_writes_nothing(
    case: Case,
    shared: tuple[Path, dict[str, str]],
    tripwires: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    root, paths = shared
    missing = _placeholders(case.argv) - set(paths)
    if missing:  # a task that could not be imported: no run or config of it exists
        pytest.fail(f"needs {sorted(missing)}; not importable: {BROKEN_TASKS}")
    argv = [a.format(**paths) for a in case.argv]
    cwd = tmp_path  # empty
    monkeypatch.chdir(cwd)
    before = snapshot(root)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    except Tripwire as exc:
        pytest.fail(f"rnnkit {' '.join(argv)}: {exc}")
    finally:
        torch.set_num_threads(1)  # --threads sets the process's threads
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert code == 2, f"status {code}; stderr: {err!r}"
    assert len(lines) == 1 and err.endswith("\n"), f"not one line: {err!r}"
    assert lines[0].strip() and "error" in lines[0], err
    assert list(cwd.iterdir()) == [], "files created in the working folder"
    assert snapshot(root) == before, "a file or folder it named was changed"


def test_the_sweep_covers_every_command_and_task():
    ids = [c.id for c in CASES]
    assert len(CASES) >= 500
    for name in NAMES:
        assert sum(i.startswith(f"train-{name}-") for i in ids) >= 30, name
    for command in ("generate", "eval", "predict", "translate", "explain-gates", "explain-compare",
                    "explain-gradient-flow", "explain-bidirectional", "demo"):  # fmt: skip
        assert sum(i.startswith(command + "-") for i in ids) >= 8, command
    assert not BROKEN_TASKS, f"not importable, so their option cases are missing: {BROKEN_TASKS}"
