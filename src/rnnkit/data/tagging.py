"""Labelled sequences for `rnnkit train tag`: one tag for every character (or step).

Two sources:

- **Python source, labelled by the standard library's own tokenizer** (the default).
  Every character of a file gets the type of the token it belongs to, from
  :mod:`tokenize`:

  ============  ================================================================
  tag           characters
  ============  ================================================================
  WHITESPACE    in no token: spaces, tabs, indentation, form feeds, and the
                backslash-newline of an explicit line continuation
  NAME          identifiers (soft keywords such as ``match``, ``case`` and ``_``
                are names: :func:`keyword.iskeyword` is false for them)
  KEYWORD       a NAME for which :func:`keyword.iskeyword` is true (``def``,
                ``else``, ``None``, ...)
  OP            operators and delimiters: ``( ) [ ] { } : , . = + -> ...``
  NUMBER        numeric literals: ``1``, ``0x1F``, ``1_000``, ``2.5e-3``, ``3j``
  STRING        string and bytes literals with their prefixes and quotes,
                docstrings, and f-strings as a whole (from Python 3.12 the tokenizer
                splits them into parts; every part, the replacement fields
                included, is labelled STRING, as Python 3.11 does)
  COMMENT       ``#`` to the end of the line
  NEWLINE       line ends (the NEWLINE and NL tokens: ``\\n`` or ``\\r\\n``), except
                those inside a string or after a backslash continuation
  ============  ================================================================

  The files are those the language model reads (:func:`rnnkit.data.corpus.stdlib_files`),
  split by file with the corpus's own checksum of the relative path (``file_split`` in
  :mod:`rnnkit.data.corpus`: 90 % train, 5 % validation, 5 % test), so a file is in the
  same split for both tasks and no test file was half seen in training. A file the
  tokenizer refuses is skipped and counted.

- **Your own data**, one example per line of a JSON-lines file (:func:`read_jsonl`)::

      {"x": "def f", "y": ["KEYWORD", "KEYWORD", "KEYWORD", "WHITESPACE", "NAME"]}
      {"x": [[0.1, 2.0], [0.3, 1.5]], "y": ["A", "B"]}

  ``x`` is a string (one step per character) or a list of steps, each a list of numbers
  (features); ``y`` has one tag name per step. Other keys are ignored. Without a test
  file the lines are split by :func:`split_lines` (seeded, by line).

:class:`TaggedSequences` turns examples into a ``Dataset`` for
:func:`rnnkit.data.pad_collate` and :func:`rnnkit.fit`.
"""

from __future__ import annotations

import codecs
import functools
import io
import json
import keyword
import os
import reprlib
import sys
import tokenize
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rnnkit.data import corpus
from rnnkit.data.corpus import file_split
from rnnkit.data.vocab import Vocabulary
from rnnkit.train.files import file_sha256, refuse_same_file

TAGS = ("WHITESPACE", "NAME", "KEYWORD", "OP", "NUMBER", "STRING", "COMMENT", "NEWLINE")
WHITESPACE, NAME, KEYWORD, OP, NUMBER, STRING, COMMENT, NEWLINE = range(len(TAGS))
IGNORE = -100  # the label of padding: F.cross_entropy's ignore_index

_SIMPLE = {
    tokenize.OP: OP,
    tokenize.NUMBER: NUMBER,
    tokenize.STRING: STRING,
    tokenize.COMMENT: COMMENT,
    tokenize.NEWLINE: NEWLINE,
    tokenize.NL: NEWLINE,
}
# Python 3.12 splits an f-string into FSTRING_START, parts, FSTRING_END; 3.11 has one token.
_FSTRING_START = getattr(tokenize, "FSTRING_START", None)
_FSTRING_END = getattr(tokenize, "FSTRING_END", None)


class TokenizeError(ValueError):
    """The tokenizer refused a source text."""


# ---- labelling Python source ---------------------------------------------------------


def tag_source(text: str) -> np.ndarray:
    """The tag id (an index into :data:`TAGS`) of every character of the Python source
    ``text``: a uint8 array of ``len(text)``. Raises :class:`TokenizeError` for a text
    the tokenizer refuses (unterminated strings, bad indentation, stray characters).

    Example:
        >>> [TAGS[t][:2] for t in tag_source("x = 1  # c")]  # doctest: +NORMALIZE_WHITESPACE
        ['NA', 'WH', 'OP', 'WH', 'NU', 'WH', 'WH', 'CO', 'CO', 'CO']
    """
    if not isinstance(text, str):
        raise TypeError(f"tag_source: text must be a str; got {type(text).__name__}")
    lines = io.StringIO(text).readlines()  # the lines tokenize reads, with their endings
    starts = np.zeros(len(lines) + 2, dtype=np.int64)
    np.cumsum([len(line) for line in lines], out=starts[2:])
    tags = np.full(len(text), WHITESPACE, dtype=np.uint8)
    depth, opened = 0, 0  # f-string nesting (3.12) and where the outermost one began
    try:
        for tok in tokenize.generate_tokens(iter(lines).__next__):
            kind = tok.type
            a = int(starts[tok.start[0]]) + tok.start[1]
            b = int(starts[tok.end[0]]) + tok.end[1]
            if kind == _FSTRING_START:
                if depth == 0:
                    opened = a
                depth += 1
                continue
            if kind == _FSTRING_END:
                depth -= 1
                if depth == 0:
                    tags[opened:b] = STRING
                continue
            if depth or a == b:
                continue  # inside an f-string (labelled at its end); DEDENT, ENDMARKER
            if kind == tokenize.NAME:
                tags[a:b] = KEYWORD if keyword.iskeyword(tok.string) else NAME
            elif kind in _SIMPLE:
                tags[a:b] = _SIMPLE[kind]
            elif kind == tokenize.ERRORTOKEN and not tok.string.isspace():
                raise TokenizeError(f"line {tok.start[0]}: the tokenizer refuses {tok.string!r}")
            # INDENT and whitespace error tokens stay WHITESPACE.
    except (tokenize.TokenError, SyntaxError) as err:
        raise TokenizeError(str(err).splitlines()[0] if str(err) else type(err).__name__) from None
    if depth:
        raise TokenizeError("an f-string is not closed")
    return tags


def tag_names(text: str) -> list[str]:
    """:func:`tag_source` as tag names, one per character."""
    return [TAGS[t] for t in tag_source(text)]


# ---- documents and splits ------------------------------------------------------------


@dataclass
class Document:
    """One sequence and its tags: ``x`` a string (characters) or a (T, F) float32 array
    (features); ``y`` the (T,) tag ids (int64; -1 for a tag unseen in training)."""

    x: str | np.ndarray
    y: np.ndarray
    name: str = ""

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class TaggedData:
    """The train, validation and test documents of a tagging task, and their origin."""

    train: list[Document]
    validation: list[Document]
    test: list[Document]
    tags: list[str]
    source: dict[str, Any]  # how to read it again (stored in a run's derived)
    skipped: list[str] = field(default_factory=list)  # files the tokenizer refused
    # The test tags outside ``tags`` (id -1, always wrong) and their steps, most first.
    unseen: dict[str, int] = field(default_factory=dict)
    # Tags of ``tags`` that no training line holds: outputs the model never learns.
    untrained: list[str] = field(default_factory=list)

    def split(self, name: str) -> list[Document]:
        if name not in corpus.SPLITS:
            raise ValueError(f"split must be one of {corpus.SPLITS}; got {name!r}")
        return {"train": self.train, "validation": self.validation, "test": self.test}[name]

    @property
    def is_text(self) -> bool:
        return isinstance(self.train[0].x, str)

    def describe(self) -> str:
        sizes = ", ".join(
            f"{name} {len(self.split(name)):,} ({sum(map(len, self.split(name))):,} steps)"
            for name in corpus.SPLITS
        )
        if self.source["kind"] == "stdlib":
            where = (
                f"the Python {self.source.get('python', '')} standard library labelled by "
                f"tokenize ({len(self.skipped)} file(s) it refused skipped); files"
            )
        else:
            where = f"{self.source['data']}: lines"
        unseen = ""
        if self.unseen:
            # Known before training: the test scores count these steps as wrong.
            names = ", ".join(list(self.unseen)[:5]) + (", ..." if len(self.unseen) > 5 else "")
            unseen = f" (the test data has {len(self.unseen):,} more, always wrong: {names})"
        if self.untrained:
            shown = ", ".join(self.untrained[:5]) + (", ..." if len(self.untrained) > 5 else "")
            unseen += (
                f" ({len(self.untrained):,} in no training line, never learned: {shown}; "
                "add lines that hold them, or another --split-seed)"
            )
        return f"{where}: {sizes}; {len(self.tags)} tags{unseen}"


@functools.lru_cache(maxsize=1)
def _stdlib_tagged(root: str) -> tuple[tuple[str, str, np.ndarray, str], ...]:
    """(relative path, text, tags, split) of every standard-library file, read once per
    process (the labelling of 12 MB of source takes seconds); a split of "" marks a file
    the tokenizer refused."""
    base = Path(root)
    out = []
    for path in corpus.stdlib_files():
        text = corpus._read_lenient(path)
        if not text:
            continue
        rel = path.relative_to(base).as_posix()
        try:
            tags = tag_source(text)
        except TokenizeError:
            out.append((rel, "", np.zeros(0, np.uint8), ""))
            continue
        out.append((rel, text, tags, file_split(base, path)))
    return tuple(out)


def load_stdlib() -> TaggedData:
    """The standard library's sources labelled by :func:`tag_source`, split by file as
    the language model's corpus is."""
    parts: dict[str, list[Document]] = {name: [] for name in corpus.SPLITS}
    skipped = []
    for rel, text, tags, split in _stdlib_tagged(str(corpus.stdlib_root())):
        if not split:
            skipped.append(rel)
            continue
        parts[split].append(Document(text, tags.astype(np.int64), rel))
    if not all(parts.values()):
        raise OSError(
            f"the standard library under {corpus.stdlib_root()} has too few .py files for a "
            "split by file; give --data FILE"
        )
    source = {"kind": "stdlib", "python": sys.version.split()[0]}
    return TaggedData(
        parts["train"], parts["validation"], parts["test"], list(TAGS), source, skipped
    )


# ---- JSON lines ----------------------------------------------------------------------


@dataclass
class Example:
    """One line of a JSON-lines file: ``x`` a string or a (T, F) float32 array, ``y``
    the tag names (``[]`` for a line without ``"y"``, read with ``require_labels=False``),
    ``line`` its 1-based line number."""

    x: str | np.ndarray
    y: list[str]
    line: int


def read_jsonl(
    path: str | os.PathLike[str], flag: str = "--data", require_labels: bool = True
) -> list[Example]:
    """The examples of a JSON-lines file, ``{"x": "text" or [[features], ...], "y":
    ["TAG", ...]}`` per line with ``len(y) == len(x)``; blank lines are skipped.
    ``require_labels=False`` also reads lines without ``"y"`` (sequences to tag): their
    ``y`` is ``[]``; a ``"y"`` given is checked as ever.

    Every problem is a one-line ValueError naming ``flag``, the file and the line: bytes
    that are not UTF-8 (and their column), bad JSON, a missing key, a length mismatch, a
    value of the wrong type, a lone surrogate in a string, features of unequal width,
    text on one line and features on another. Lines end at ``"\\n"`` only.
    """
    p = Path(path)
    if not os.fspath(path):
        raise ValueError(f"{flag} needs a JSON-lines file; got an empty string")
    if not p.exists():
        raise FileNotFoundError(f"{flag}: file not found: {p}")
    if p.is_dir():
        raise ValueError(f"{flag}: {p} is a folder; expected a JSON-lines file")
    # The BOM goes first: "utf-8-sig" would count error offsets from after it.
    data = p.read_bytes().removeprefix(codecs.BOM_UTF8)
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Notepad's "Unicode" and Excel's "Unicode text": every other byte is 0x00.
        raise ValueError(
            f"{flag} {p}: not UTF-8 text; got UTF-16 (the file begins with the byte-order "
            f"mark 0x{data[0]:02x} 0x{data[1]:02x}): save it as UTF-8"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line, column = _line_column(data, err.start)
        raise ValueError(
            f"{flag} {p} line {line}: not UTF-8 text (byte 0x{data[err.start]:02x} at "
            f"column {column})"
        ) from None
    examples: list[Example] = []
    first: tuple[str, int] | None = None  # the kind of x ("text"/"features") and its width
    # Lines end at "\n" only: str.splitlines() also breaks at U+2028, U+0085, form feeds
    # and more, which JSON strings may hold raw. A "\r" before it is JSON whitespace.
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip(_JSON_BLANK):
            continue
        where = f"{flag} {p} line {number}"
        example = _parse_line(raw, number, where, require_labels)
        kind = ("text", 0) if isinstance(example.x, str) else ("features", example.x.shape[1])
        if first is None:
            first = (kind[0], kind[1], number)  # type: ignore[assignment]
        elif kind[0] != first[0]:
            raise ValueError(
                f"{where}: x is {kind[0]}, but x of line {first[2]} is {first[0]}; "  # type: ignore[misc]
                "one file holds one kind"
            )
        elif kind[1] != first[1]:
            raise ValueError(
                f"{where}: x has {kind[1]} feature(s) per step, line {first[2]} has "  # type: ignore[misc]
                f"{first[1]}"
            )
        examples.append(example)
    if not examples:
        raise ValueError(f"{flag} {p}: no examples (the file is empty or blank)")
    return examples


_JSON_BLANK = " \t\r"  # what JSON calls whitespace, besides the "\n" that ends a line
_ONE_A_LINE = 'expected JSON lines, one {"x": ..., "y": [...]} object per line'
_PANDAS = (
    'JSON lines hold one example a line, as pandas\' to_json(orient="records", lines=True) writes'
)
_SHOWN_KEYS = 5  # the keys a message lists


def _keys(obj: dict[str, Any]) -> str:
    """The keys of a JSON object as a message lists them: the first few and the count."""
    keys = list(obj)
    if len(keys) <= _SHOWN_KEYS:
        return ", ".join(keys) or "none"
    return f"{', '.join(keys[:_SHOWN_KEYS])}, ... {len(keys):,} in all"


def _table(obj: dict[str, Any]) -> str:
    """A hint for an object that is a whole pandas table (orient "index", "split" or
    "table"), not one example."""
    values = list(obj.values())
    by_row = values and all(isinstance(v, dict) and "x" in v for v in values)
    if by_row or set(obj) in ({"columns", "index", "data"}, {"schema", "data"}):
        return f"; it is a whole table on one line ({_PANDAS})"
    return ""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _line_column(data: bytes, at: int) -> tuple[int, int]:
    """The 1-based line and column of the byte ``data[at]``, all before it UTF-8 (the
    column counts characters, as JSON's errors do)."""
    start = data.rfind(b"\n", 0, at) + 1
    return data.count(b"\n", 0, at) + 1, len(data[start:at].decode("utf-8")) + 1


def _parse_line(raw: str, number: int, where: str, require_labels: bool = True) -> Example:
    try:
        obj = json.loads(raw, parse_constant=_no_constant, parse_int=_json_int)
    except json.JSONDecodeError as err:
        # Some of json's messages end in "at" ("Unterminated string starting at").
        msg = err.msg if err.msg.endswith(" at") else f"{err.msg} at"
        # A lone bracket opens a JSON document written over many lines (json.dump(indent=)),
        # which looks valid to its writer: say what a line must hold.
        # A line that opens no JSON value at all is another format: CoNLL's token and tag
        # columns, CSV, plain text. Say what a line must hold, and show what it holds.
        start = raw.lstrip(_JSON_BLANK)[:1]
        if raw.strip() in ("[", "{"):
            hint = f"; {_ONE_A_LINE}, not a JSON document spread over lines"
        elif start not in ("{", "["):
            hint = f"; {_ONE_A_LINE}; got {reprlib.repr(raw.strip(_JSON_BLANK))}"
        else:
            hint = ""
        raise ValueError(f"{where}: not valid JSON ({msg} column {err.colno}){hint}") from None
    except RecursionError:
        # json's decoder recurses once per bracket: thousands of them exhaust the stack.
        raise ValueError(
            f"{where}: not valid JSON (lists or objects nested too deeply to read; x needs "
            "two levels of lists)"
        ) from None
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None
    if not isinstance(obj, dict):
        got = _kind(obj)
        if isinstance(obj, list) and obj and all(isinstance(v, (dict, list)) for v in obj):
            # pandas' to_json(orient="records") or "values": the whole table on one line.
            items = "objects" if all(isinstance(v, dict) for v in obj) else "lists"
            got = f"a list of {len(obj):,} {items}, a whole table on one line ({_PANDAS})"
        raise ValueError(f'{where}: expected an object {{"x": ..., "y": [...]}}; got {got}')
    for key in ("x", "y") if require_labels or "y" in obj else ("x",):
        if key not in obj:
            raise ValueError(f'{where}: missing key "{key}" (keys: {_keys(obj)}){_table(obj)}')
    x, y = obj["x"], obj.get("y")
    if isinstance(x, dict) and isinstance(y, dict):
        # pandas' to_json() by default: {"x": {"0": ..., "1": ...}, "y": {"0": ...}}.
        raise ValueError(
            f"{where}: x and y must be one example's; got objects keyed by row ({len(x):,} "
            f"and {len(y):,} rows), a whole table on one line ({_PANDAS})"
        )
    if "y" in obj and (not isinstance(y, list) or not all(isinstance(t, str) and t for t in y)):
        raise ValueError(
            f"{where}: y must be a list of tag names (non-empty strings); "
            f"got {_kind(y) if not isinstance(y, list) else _bad_item(y, str)}"
        )
    for i, tag in enumerate(y or []):
        _check_unicode(tag, f"{where}: y[{i}]")
        _check_visible(tag, f"{where}: y[{i}]")
    if isinstance(x, str):
        _check_unicode(x, f"{where}: x")
        xs: str | np.ndarray = x
    elif isinstance(x, list) and x and all(isinstance(s, list) for s in x):
        width = len(x[0])
        for i, step in enumerate(x):
            if not step:
                raise ValueError(
                    f"{where}: step {i} of x has no features; a step needs at least one"
                )
            if len(step) != width:
                raise ValueError(
                    f"{where}: step {i} of x has {len(step)} feature(s); step 0 has {width} "
                    "(every step needs the same number)"
                )
            for v in step:
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise ValueError(f"{where}: step {i} of x must hold numbers; got {_shown(v)}")
        xs = np.asarray(x, dtype=np.float64)
        if not np.isfinite(xs).all() or (np.abs(xs) > 3e38).any():
            raise ValueError(f"{where}: x holds a number too large for float32")
        xs = xs.astype(np.float32)
    else:
        hint = ""
        if isinstance(x, list) and x and all(isinstance(v, str) for v in x):
            hint = " (tokens: join them into one string and give each character its token's tag)"
        elif isinstance(x, list) and x and all(_is_number(v) for v in x):
            steps = ", ".join(f"[{json.dumps(v)}]" for v in x[:2])
            hint = f" (one feature a step: each step a list of one, [{steps}, ...])"
        raise ValueError(
            f"{where}: x must be a string or a list of steps, each a list of numbers; got "
            f"{_kind(x) if not isinstance(x, list) else _bad_item(x, list)}{hint}"
        )
    if len(xs) == 0:
        raise ValueError(f"{where}: x is empty; an example needs at least one step")
    # y is a list whenever obj has one (checked above); None when it has none.
    if isinstance(y, list) and len(y) != len(xs):
        unit = "characters" if isinstance(xs, str) else "steps"
        raise ValueError(
            f"{where}: len(y) must equal len(x); got {len(y)} tags for {len(xs)} {unit}"
        )
    return Example(xs, list(y or []), number)


def _check_unicode(text: str, what: str) -> None:
    """Refuse a lone surrogate (JSON's "\\ud800" without its pair): no UTF-8 file, not
    even the run's config.json, can hold it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(
            f"{what} holds a lone surrogate \\u{ord(text[err.start]):04x} at character "
            f"{err.start + 1}; expected Unicode text"
        ) from None


def _check_visible(tag: Any, what: str) -> None:
    """Refuse a tag name of only whitespace: a report would print it as a blank row."""
    if isinstance(tag, str) and not tag.strip():
        raise ValueError(f"{what} must be a tag name with a visible character; got {tag!r}")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _json_int(text: str) -> int | float:
    """A JSON integer: a float past 300 digits (inf past 308), which the float32 check
    then refuses. int() refuses more than 4300 digits, and numpy refuses to convert an
    int beyond float64; either would end in Python's own words, not the reader's."""
    return int(text) if len(text) <= 300 else float(text)


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        type(None): "null",
        int: "a number",
        float: "a number",
    }.get(type(value), "?")


def _shown(value: Any) -> str:
    """A JSON value as a message shows it: its kind and its JSON spelling."""
    if value is None:
        return "null"
    text = json.dumps(value) if isinstance(value, bool) else reprlib.repr(value)
    return f"{_kind(value)} {text}"


def _bad_item(items: list[Any], want: type) -> str:
    """What is wrong with a list that should hold only ``want`` (non-empty strings)."""
    if not items:
        return "an empty list"
    for i, v in enumerate(items):
        if not isinstance(v, want) or (want is str and not v):
            return f"a list whose item {i} is {'an empty string' if v == '' else _shown(v)}"
    return "a list"


def split_lines(
    n: int, seed: int, held_out: Sequence[str] = ("validation", "test"), percent: int = 10
) -> dict[str, list[int]]:
    """Indices of ``n`` lines per split: each held-out split gets ``percent`` % of them
    (at least one); the rest train. Which lines: the order of ``crc32(f"{seed}:{i}")``,
    the same on every machine and Python version, for every line of a file of ``n``."""
    need = len(held_out) + 1
    if n < need:
        raise ValueError(f"{n} example(s) cannot be split into train and {' and '.join(held_out)}")
    order = sorted(range(n), key=lambda i: (zlib.crc32(f"{seed}:{i}".encode()), i))
    size = max(1, round(n * percent / 100))
    out: dict[str, list[int]] = {}
    at = 0
    for name in held_out:
        out[name] = sorted(order[at : at + size])
        at += size
    out["train"] = sorted(order[at:])
    return out


def load_jsonl(
    data: str | os.PathLike[str],
    test_data: str | os.PathLike[str] | None = None,
    split_seed: int = 0,
    recorded: dict[str, Any] | None = None,
) -> TaggedData:
    """A user's JSON-lines data split into train, validation and test.

    Without ``test_data`` 10 % of the lines validate and 10 % test (:func:`split_lines`);
    with it 10 % of ``data`` validates. The tag set is that of ``data``, sorted; a test tag
    outside it is scored as a miss. ``recorded`` (a run's ``derived["source"]``) is
    checked against the files: a file changed since the run began is refused.
    """
    if recorded is not None:
        for key, flag in (("data", "--data"), ("test_data", "--test-data")):
            path = recorded.get(key)
            if path is not None and file_sha256_checked(path, flag) != recorded["sha256"][key]:
                raise ValueError(
                    f"{flag} {path} changed since the run was started (its sha256 differs); "
                    "the run's split and vocabulary no longer fit it"
                )
    examples = read_jsonl(data, "--data")
    if test_data is not None:
        refuse_same_file("--test-data", test_data, "--data", data)
    test_examples = read_jsonl(test_data, "--test-data") if test_data is not None else None
    kind, width = _x_kind(examples[0].x)
    if test_examples is not None:
        tkind, twidth = _x_kind(test_examples[0].x)
        if (tkind, twidth) != (kind, width):
            raise ValueError(
                f"--test-data {test_data}: x is {tkind}"
                + (f" ({twidth} features)" if twidth else "")
                + f", but --data {data} holds {kind}"
                + (f" ({width} features)" if width else "")
            )
    held = ("validation",) if test_examples is not None else ("validation", "test")
    try:
        index = split_lines(len(examples), split_seed, held)
    except ValueError as err:
        raise ValueError(f"--data {data}: {err}; add lines") from None
    tags = sorted({t for e in examples for t in e.y})
    if len(tags) == 1:
        raise ValueError(
            f"--data {data}: every step is tagged {tags[0]!r}; tagging needs at least two tags"
        )
    tag_id = {t: i for i, t in enumerate(tags)}

    def docs(items: list[Example], flag: str) -> list[Document]:
        return [
            Document(
                e.x, np.array([tag_id.get(t, -1) for t in e.y], np.int64), f"{flag} line {e.line}"
            )
            for e in items
        ]

    parts = {name: docs([examples[i] for i in idx], "--data") for name, idx in index.items()}
    if test_examples is not None:
        parts["test"] = docs(test_examples, "--test-data")
    source: dict[str, Any] = {
        "kind": "jsonl",
        "data": str(Path(data).resolve()),
        "test_data": None if test_data is None else str(Path(test_data).resolve()),
        "split_seed": split_seed,
        "split": {name: len(parts[name]) for name in corpus.SPLITS},
        "sha256": {
            "data": file_sha256(data),
            "test_data": None if test_data is None else file_sha256(test_data),
        },
    }
    unseen = Counter(t for e in test_examples or [] for t in e.y if t not in tag_id)
    trained = {t for i in index["train"] for t in examples[i].y}
    return TaggedData(
        parts["train"], parts["validation"], parts["test"], tags, source, [],
        dict(unseen.most_common()), [t for t in tags if t not in trained],
    )  # fmt: skip


def _x_kind(x: str | np.ndarray) -> tuple[str, int]:
    """("text", 0) for a string x, ("features", F) for a (T, F) array."""
    return ("text", 0) if isinstance(x, str) else ("features", x.shape[1])


def file_sha256_checked(path: str, flag: str) -> str:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{flag}: the run's file is gone: {path}")
    return file_sha256(path)


# ---- a Dataset for pad_collate and rnnkit.fit ----------------------------------------


class TaggedSequences(torch.utils.data.Dataset):
    """``(x, y)`` tensors of tagged sequences, for ``DataLoader(...,
    collate_fn=pad_collate)``: ``x`` (T,) character ids from ``vocab`` (or (T, F) float
    features), ``y`` (T,) tag ids (int64).

    Example:
        >>> examples = [Example("ab", ["A", "B"], 1), Example("b", ["B"], 2)]
        >>> data = TaggedSequences(examples, Vocabulary.from_text("ab"), ["A", "B"])
        >>> from rnnkit.data import pad_collate
        >>> x, lengths, y = pad_collate([data[0], data[1]])
        >>> x.tolist(), lengths.tolist(), y.tolist()
        ([[1, 2], [2, 0]], [2, 1], [[0, 1], [1, -100]])
    """

    def __init__(
        self,
        examples: Sequence[Example | Document],
        vocab: Vocabulary | None,
        tags: Sequence[str],
    ) -> None:
        if isinstance(tags, str):  # "AB" would read as the tags "A" and "B"
            raise TypeError(f"TaggedSequences: tags must be a list of tag names; got str {tags!r}")
        index = {t: i for i, t in enumerate(tags)}
        if len(index) < len(tags):
            # A tag listed twice would take the id of its last place: ids past the ones used.
            twice = next(t for i, t in enumerate(tags) if index[t] != i)
            raise ValueError(
                f"TaggedSequences: tags must be distinct (a tag's place is its id); got "
                f"{twice!r} more than once"
            )
        self.items: list[tuple[Tensor, Tensor]] = []
        for k, e in enumerate(examples):
            if not isinstance(e, (Example, Document)):
                # (x, y) pairs ended in AttributeError: 'tuple' object has no attribute 'name'.
                raise TypeError(
                    f"TaggedSequences: examples[{k}] must be an Example(x, y, line) (read_jsonl "
                    f"gives them) or a Document; got {type(e).__name__}"
                )
            where = f"line {e.line}" if isinstance(e, Example) else (e.name or "a document")
            features = None if isinstance(e.x, str) else _features(e.x)
            if isinstance(e.x, str):
                if vocab is None:
                    raise ValueError("TaggedSequences: text examples need a vocab")
                x = vocab.encode(e.x)
            elif features is not None:
                x = features
                bad = ~torch.isfinite(x)
                if bad.any():
                    # It reached the model, which named the step of a padded batch.
                    step = int(bad.any(dim=1).nonzero()[0])
                    value = float(x[step][bad[step]][0])
                    raise ValueError(
                        f"TaggedSequences: {where}: x must be finite features (fill missing "
                        f"values first); got {value} at step {step}"
                    )
            else:  # a list of tokens ended in numpy's "could not convert string to float"
                raise TypeError(
                    f"TaggedSequences: {where}: x must be a str or a (T, F) array of "
                    f"features; got {_x_shown(e.x)}"
                )
            if len(x) == 0:
                raise ValueError(
                    f"TaggedSequences: {where}: x is empty; an example needs at least one step"
                )
            if len(e.y) != len(x):
                # An unlabelled line (read_jsonl(require_labels=False)) has y == [].
                raise ValueError(
                    f"TaggedSequences: {where}: y must hold one tag per step of x; got "
                    f"{len(e.y)} tag(s) for {len(x)} step(s)"
                )
            if isinstance(e, Document):
                y = torch.from_numpy(e.y.astype(np.int64))
            else:
                for i, tag in enumerate(e.y):
                    _check_visible(tag, f"TaggedSequences: {where}: y[{i}]")
                unknown = [t for t in e.y if t not in index]
                if unknown:
                    raise ValueError(
                        f"TaggedSequences: {where}: tag {unknown[0]!r} is not one of "
                        f"{', '.join(tags)}"
                    )
                y = torch.tensor([index[t] for t in e.y], dtype=torch.long)
            self.items.append((x, y))
        for i, tag in enumerate(tags):
            _check_visible(tag, f"TaggedSequences: tags[{i}]")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.items[i]


def _features(x: Any) -> Tensor | None:
    """``x`` as a (T, F) float32 tensor, or None when it is no 2-d array of numbers."""
    if isinstance(x, Tensor):
        x = x.detach().cpu()
    try:
        with np.errstate(over="ignore"):  # beyond float32 is inf, which the caller refuses
            array = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError):
        return None
    return torch.from_numpy(array) if array.ndim == 2 else None


def _x_shown(x: Any) -> str:
    """What an example's x is, for a message: its type, and its shape if it has one."""
    shape = getattr(x, "shape", None)
    return f"{type(x).__name__} of shape {tuple(shape)}" if shape is not None else type(x).__name__
