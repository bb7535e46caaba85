"""Options: typed dataclass fields that carry their own flag, help and range.

Every config of the application layer (a task's options, :class:`~rnnkit.train.TrainConfig`)
declares its fields with :func:`option`. One checker, :func:`check`, validates them in
``__post_init__`` - so a config built from Python, read from ``config.json`` or parsed
from the command line is held to the same rules - and the CLI builds each task's parser
from the same fields, so a flag, its default, its help and its range live in one place.

A message names the option as the CLI spells it and the field it sets, what was expected
and what was given: "--hidden (hidden_size) must be an integer in [1, 65536]; got 0".
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import types
import typing
from collections.abc import Sequence
from typing import Any

MISSING = dataclasses.MISSING


def option(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    low: float | None = None,
    high: float | None = None,
    choices: Sequence[str] | None = None,
    open_high: bool = False,
    cli: bool = True,
    metavar: str | None = None,
) -> Any:
    """A dataclass field with its CLI flag (default ``--name-with-dashes``) and range.

    ``low``/``high`` bound numbers (inclusive; ``open_high`` excludes ``high``);
    ``choices`` lists the strings allowed; ``cli=False`` keeps a field out of the parser;
    ``metavar`` names the value in ``--help`` (default: N, X or TEXT by the field's type).
    """
    meta = {
        "help": help,
        "flag": flag,
        "low": low,
        "high": high,
        "choices": tuple(choices) if choices is not None else None,
        "open_high": open_high,
        "cli": cli,
        "metavar": metavar,
    }
    return dataclasses.field(default=default, metadata=meta)


def flag_of(field: dataclasses.Field[Any]) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def label(field: dataclasses.Field[Any]) -> str:
    """How messages name a field: ``--hidden (hidden_size)``, or ``--seed``."""
    flag = flag_of(field)
    plain = "--" + field.name.replace("_", "-")
    return flag if flag == plain else f"{flag} ({field.name})"


def base_type(hint: Any) -> tuple[type, bool]:
    """``(int, True)`` for ``int | None``; ``(float, False)`` for ``float``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], True
    return hint, False


def expectation(field: dataclasses.Field[Any], kind: type) -> str:
    """What a field accepts, in words: "an integer in [1, 65536]"."""
    meta = field.metadata
    if meta.get("choices"):
        return "one of " + ", ".join(meta["choices"])
    if kind is bool:
        return "true or false"
    if kind is str:
        return (
            "a path (a string or a pathlib.Path)" if meta.get("metavar") in _PATHS else "a string"
        )
    noun = "an integer" if kind is int else "a finite number"
    low, high = meta.get("low"), meta.get("high")
    if high is None:
        return noun if low is None else f"{noun} >= {_num(low)}"
    close = ")" if meta.get("open_high") else "]"
    lo = "-inf" if low is None else _num(low)
    return f"{noun} in [{lo}, {_num(high)}{close}"


def _num(x: float) -> str:
    """A bound as a reader writes it: 65536, 1000000, 0.001, 1e-09."""
    if isinstance(x, int):
        return str(x)
    if float(x).is_integer() and abs(x) < 1e16:
        return str(int(x))
    return f"{x:g}"


def check_value(field: dataclasses.Field[Any], hint: Any, value: Any) -> Any:
    """``value`` checked (and ints widened to float where a float is due); else ValueError."""
    kind, optional = base_type(hint)
    if value is None and optional:
        return None
    bad = ValueError(f"{label(field)} must be {expectation(field, kind)}; got {_shown(value)}")
    if kind is str and isinstance(value, os.PathLike) and field.metadata.get("metavar") in _PATHS:
        value = os.fspath(value)  # a pathlib.Path given from Python; config.json keeps a str
    if kind is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if kind is str:
        if not isinstance(value, str):
            raise bad
        choices = field.metadata.get("choices")
        if choices and value not in choices:
            raise bad
        return value
    # NumPy's integers and floats (a value read from an array) are numbers too; they are
    # stored as Python's, which config.json can hold.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise bad
    if kind is int:
        if not isinstance(value, numbers.Integral):
            raise bad
        value = int(value)
    if kind is float:
        value = float(value)
        if not math.isfinite(value):
            raise bad
    low, high = field.metadata.get("low"), field.metadata.get("high")
    if low is not None and value < low:
        raise bad
    if high is not None and (value > high or (field.metadata.get("open_high") and value >= high)):
        raise bad
    return value


_PATHS = ("FILE", "PATH")  # the metavars of options that name a file or a folder


def _shown(value: Any) -> str:
    """``value`` as a message shows it: its repr, or its type where that runs long (a
    DataFrame's repr is its whole table)."""
    text = repr(value)
    return text if len(text) <= 80 and "\n" not in text else f"a {type(value).__name__}"


def check(config: Any) -> None:
    """Validate every field of the dataclass instance ``config`` in place."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        setattr(
            config, field.name, check_value(field, hints[field.name], getattr(config, field.name))
        )


def from_dict(cls: type[Any], data: object, *, where: str, partial: bool = False) -> Any:
    """``cls(**data)``: unknown keys rejected; with ``partial`` missing keys take defaults."""
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a JSON object; got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}")
    if not partial:
        missing = sorted(n for n in names if n not in data)
        if missing:
            raise ValueError(f"{where}: missing key(s) {', '.join(missing)}")
    try:
        return cls(**data)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)
