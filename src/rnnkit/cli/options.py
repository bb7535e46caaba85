"""Command-line options generated from typed config fields (:mod:`rnnkit._options`).

One flag per field, its type parsed and its range checked by the same rule the config
applies, so the parser cannot drift from the config. Every flag defaults to None: only
what the user gave overrides the task's defaults (shown in the help).
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any

from rnnkit._options import base_type, check_value, expectation, flag_of
from rnnkit.cli._lm_args import finite_float, integer


def add_fields(
    group: argparse._ActionsContainer, cls: type[Any], defaults: dict[str, Any]
) -> dict[str, str]:
    """Add a flag for each CLI field of dataclass ``cls``; returns {dest: field name}."""
    hints = typing.get_type_hints(cls)
    dests = {}
    for field in dataclasses.fields(cls):
        if not field.metadata.get("cli", True):
            continue
        kind, _ = base_type(hints[field.name])
        flag = flag_of(field)
        dest = flag[2:].replace("-", "_")
        default = defaults.get(field.name, field.default)
        shown = "none" if default is None else default
        text = field.metadata.get("help", "")
        if "default:" not in text:  # a help that explains its default says it itself
            text += f" (default: {shown})"
        text = text.replace("%", "%%")
        if kind is bool:
            group.add_argument(
                flag, dest=dest, action=argparse.BooleanOptionalAction, default=None, help=text
            )
        else:
            group.add_argument(
                flag,
                dest=dest,
                type=_parser(field, hints[field.name], kind),
                default=None,
                metavar=_metavar(field, kind),
                help=text,
            )
        dests[dest] = field.name
    return dests


def _metavar(field: dataclasses.Field[Any], kind: type) -> str:
    if field.metadata.get("metavar"):
        return str(field.metadata["metavar"])
    choices = field.metadata.get("choices")
    if choices:
        return "{" + ",".join(choices) + "}"
    return {int: "N", float: "X", str: "TEXT"}.get(kind, "VALUE")


def _parser(field: dataclasses.Field[Any], hint: Any, kind: type) -> Any:
    def parse(text: str) -> Any:
        value: Any = {int: integer, float: finite_float}.get(kind, str)(text)
        try:
            return check_value(field, hint, value)
        except ValueError:
            # argparse names the flag already: say what was expected and what came.
            raise argparse.ArgumentTypeError(
                f"expected {expectation(field, kind)}; got {text!r}"
            ) from None

    parse.__name__ = field.name  # what argparse prints for a failed conversion
    return parse


def given(args: argparse.Namespace, dests: dict[str, str]) -> dict[str, Any]:
    """{field name: value} of the flags the user gave."""
    return {
        name: getattr(args, dest) for dest, name in dests.items() if getattr(args, dest) is not None
    }
