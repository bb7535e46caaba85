"""Typed configs read back from JSON: every key checked, unknown keys rejected."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

C = TypeVar("C")


def config_from_dict(cls: type[C], data: object, *, where: str) -> C:
    """``cls(**data)`` after checking that ``data`` has only ``cls``'s fields, well typed.

    ``where`` names the place in the file for the message ("config.json: model").
    """
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a JSON object; got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        if not _matches(value, hints[name]):
            raise ValueError(f"{where}: {name} has the wrong type; got {value!r}")
    return cls(**data)


def _matches(value: object, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is dict:
        return isinstance(value, dict)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True
