"""A reader (and writer) of the UEA/UCR ``.ts`` time-series classification format.

Written here rather than borrowed from aeon so that a user's own file is read the same
way whether or not aeon is installed. A file is a header of ``@tags`` and then one series
per line::

    # comments start with '#' (or '%')
    @problemName Vowels
    @timeStamps false
    @missing true
    @univariate false
    @dimensions 2
    @equalLength false
    @classLabel true a b c
    @data
    1.0,2.0,3.0:0.5,?,0.7:a        dimension 1 : dimension 2 : class label
    4.0,5.0:0.1,0.2:c               series may differ in length (not their dimensions)

Tags are case-insensitive; unknown tags are skipped. A line ends at '\\n', '\\r\\n' or a
lone '\\r' only. ``@timeStamps true`` series write each value as ``(timestamp,value)``,
the pairs of a dimension separated by ',' and nothing else: the values are read in file
order and the timestamps are dropped (a class label may hold parentheses). A missing
value is ``?`` or ``NaN``. What happens to it is ``missing``:

- ``"ffill"`` (the default): carried forward within its series and dimension; a gap at
  the start takes the first value that follows; a dimension with no value at all in a
  series is an error (there is nothing to fill it from);
- ``"error"``: the first missing value is an error;
- ``"keep"``: left as NaN (for your own handling).

A file of series to classify (``@classLabel false``, no label after the dimensions) is
read with ``require_labels=False``; its labels are -1. Such a line may end with a ':' and
nothing after it (aeon's ``save_to_ts_file`` writes every series so when it has no labels).

``classes=`` reads the labels as indices into a class list of your own, by name - the
training file's ``classes`` for its test file, whose ``@classLabel`` may declare the
classes in another order or leave one out (aeon declares the classes a file holds, sorted).

Every problem is a one-line ``ValueError`` naming the file and the line: a header tag with
a bad value, no ``@data``, a series with the wrong number of dimensions, dimensions of
unequal length within a series, a value that is not a number or beyond float32's range,
text between timestamped pairs, a label that ``@classLabel`` does not declare.

Example (a file of two univariate series, written into a temporary folder)::

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = Path(tmp) / "tiny.ts"
    ...     _ = path.write_text("@classLabel true a b\\n@data\\n1,2,3:a\\n4,?:b\\n")
    ...     data = read_ts(path)
    >>> x, label = data[0]  # x: (T_0, D) float32, label: an index into data.classes
    >>> x.shape, x.dtype, data.classes[label]
    (torch.Size([3, 1]), torch.float32, 'a')
    >>> data[1][0].flatten().tolist()  # "?" is missing: carried forward (missing="ffill")
    [4.0, 4.0]
"""

from __future__ import annotations

import math
import numbers
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

MISSING_MODES = ("ffill", "error", "keep")
COMMENTS = ("#", "%")
BOOLEAN_TAGS = ("timestamps", "missing", "univariate", "equallength", "targetlabel")
# One "(timestamp,value)" pair and the spaces around it: "(2007-01-01 00:00:00,241.97)".
# The value follows the last ',' inside the parentheses.
_PAIR = re.compile(r"\s*\(([^()]*),([^(),]*)\)\s*")
# The series become float32: a larger magnitude would turn into inf.
FLOAT32_MAX = float(torch.finfo(torch.float32).max)
# What the file formats (.ts, .tsf, CSV) mean by a number: ASCII digits with an optional
# sign, decimal point and exponent. float() alone also reads "1_000" as 1000 and digits of
# other scripts ("\u0663", Arabic-Indic three, as 3), which no such file means.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# float()'s spellings of NaN and infinity (any case, signed): each reader has its rule.
_SPELLED = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)


@dataclass
class TSData(Dataset[tuple[Tensor, int]], Sequence[tuple[Tensor, int]]):
    """The series of one ``.ts`` file: a sequence of ``(x (T_i, D) float32, label index)``.

    It is a ``torch.utils.data.Dataset`` (so ``DataLoader(data)`` type-checks too): with
    :func:`rnnkit.data.pad_collate` a batch is ``(padded (B, T, D), lengths, labels)``.
    """

    path: str
    classes: list[str]  # label index -> class name, in the order @classLabel declares them
    samples: list[tuple[Tensor, int]]
    problem_name: str | None = None
    missing: int = 0  # missing values in the file (filled unless missing="keep")
    lines: list[int] = field(default_factory=list)  # the file's line of each series

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:  # type: ignore[override]
        return self.samples[i]

    def __iter__(self) -> Iterator[tuple[Tensor, int]]:
        return iter(self.samples)

    @property
    def dimensions(self) -> int:
        return int(self.samples[0][0].size(1))

    @property
    def lengths(self) -> list[int]:
        return [int(x.size(0)) for x, _ in self.samples]

    @property
    def labels(self) -> list[int]:
        return [y for _, y in self.samples]


@dataclass
class _Header:
    problem_name: str | None = None
    timestamps: bool = False
    univariate: bool | None = None
    dimensions: int | None = None
    equal_length: bool | None = None
    series_length: int | None = None
    class_label: bool | None = None
    classes: list[str] = field(default_factory=list)
    target_label: bool = False


def read_ts(
    path: str | os.PathLike[str],
    missing: str = "ffill",
    require_labels: bool = True,
    classes: Sequence[str] | None = None,
) -> TSData:
    """The labelled series of the ``.ts`` file ``path`` (see the module's description).

    ``require_labels=False`` also reads a file of series to classify (``@classLabel
    false``, no label after the dimensions): every label is then -1 and ``classes`` empty.
    ``classes`` (e.g. the training file's ``.classes``): the labels are indices into it,
    matched by name, and it is the result's ``classes``; a label it lacks is an error. By
    default the labels index the classes in the order the file's ``@classLabel`` declares.
    """
    if missing not in MISSING_MODES:
        raise ValueError(f"missing must be one of {', '.join(MISSING_MODES)}; got {missing!r}")
    known = _class_list(classes)  # checked before the file is read
    where = str(path)
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{where}: no such file")
    if p.is_dir():
        raise ValueError(f"{where} is a folder; expected a .ts file")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{where} is not UTF-8 text; expected a .ts file") from None
    return parse_ts(text, where, missing, require_labels, known)


def parse_ts(
    text: str,
    where: str = "<text>",
    missing: str = "ffill",
    require_labels: bool = True,
    classes: Sequence[str] | None = None,
) -> TSData:
    """:func:`read_ts` of the text of a file; ``where`` names it in messages."""
    if not isinstance(text, str):
        raise TypeError(f"parse_ts: text must be a str; got {type(text).__name__}")
    if missing not in MISSING_MODES:
        raise ValueError(f"missing must be one of {', '.join(MISSING_MODES)}; got {missing!r}")
    known = _class_list(classes)
    lines = text_lines(text)
    header, first = _read_header(lines, where, require_labels)
    labelled = bool(header.class_label)
    dims = header.dimensions
    samples: list[tuple[Tensor, int]] = []
    rows: list[int] = []
    n_missing = 0
    index = {name: k for k, name in enumerate(header.classes)}
    declared = ", ".join(header.classes)
    if known is not None:
        mine = {name: k for k, name in enumerate(known)}
    for n in range(first, len(lines)):
        line = lines[n].strip()
        if not line or line.startswith(COMMENTS):
            continue
        at = f"{where}, line {n + 1}"
        parts, label = _split_series(line, at, header.timestamps, labelled)
        if dims is None:
            dims = len(parts)
        if len(parts) != dims:
            then = " and then the class label" if labelled else " (no label: @classLabel false)"
            raise ValueError(
                f"{at}: expected {dims} dimension(s) separated by ':'{then}; got "
                f"{len(parts)} dimension(s)"
            )
        if labelled and label not in index:
            raise ValueError(
                f"{at}: class label {label!r} is not declared by @classLabel ({declared})"
                f"{_spaced(label)}"
            )
        if labelled and known is not None and label not in mine:
            raise ValueError(
                f"{at}: class label {label!r} is not one of classes ({', '.join(known)})"
            )
        columns = [_values(part, at, d + 1, header.timestamps) for d, part in enumerate(parts)]
        length = len(columns[0])
        for d, col in enumerate(columns[1:], start=2):
            if len(col) != length:
                raise ValueError(
                    f"{at}: dimension {d} has {len(col)} values and dimension 1 has {length}; "
                    "the dimensions of one series must have the same length"
                )
        fixed = header.series_length if header.equal_length else None
        if fixed is not None and length != fixed:
            raise ValueError(
                f"{at}: the series has {length} values; @seriesLength says {fixed} (and "
                "@equalLength true)"
            )
        x = torch.tensor(columns, dtype=torch.float32).T.contiguous()  # (T, D)
        holes = torch.isnan(x)
        if holes.any():
            n_missing += int(holes.sum())
            if missing == "error":
                t, d = (int(v) for v in holes.nonzero()[0])
                raise ValueError(
                    f"{at}: dimension {d + 1}, value {t + 1} is missing ('?' or NaN) and "
                    "missing values are refused"
                )
            if missing == "ffill":
                x = _fill(x, at)
        y = (mine[label] if known is not None else index[label]) if labelled else -1
        samples.append((x, y))
        rows.append(n + 1)
    if not samples:
        raise ValueError(f"{where}: no series after @data (line {first})")
    if header.equal_length and header.series_length is None:
        lengths = {int(x.size(0)) for x, _ in samples}
        if len(lengths) > 1:
            raise ValueError(
                f"{where}: @equalLength true, but the series have {len(lengths)} different "
                f"lengths ({min(lengths)} to {max(lengths)})"
            )
    names = list(header.classes) if known is None or not labelled else list(known)
    return TSData(where, names, samples, header.problem_name, n_missing, rows)


def _class_list(classes: Sequence[str] | None) -> list[str] | None:
    """``classes`` as a list of distinct names, or None; refused otherwise."""
    if classes is None:
        return None
    if isinstance(classes, str) or not isinstance(classes, Sequence):
        raise TypeError(f"classes must be a list of class names; got {type(classes).__name__}")
    names = list(classes)
    for name in names:
        if not isinstance(name, str) or not name:
            raise TypeError(f"classes must be a list of class names (non-empty str); got {name!r}")
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise ValueError(f"classes must name each class once; got {twice[0]!r} twice")
    return names


def _spaced(label: str) -> str:
    """A hint for a label with a space: @classLabel separates the labels by spaces."""
    if any(c.isspace() for c in label):
        return "; a class label cannot hold a space (@classLabel separates the labels by spaces)"
    return ""


def text_lines(text: str) -> list[str]:
    """The lines of ``text``, ended by '\\n', '\\r\\n' or a lone '\\r'. Not
    ``str.splitlines``: it also breaks at a form feed, '\\x1c'-'\\x1e', U+0085, U+2028...,
    which a comment may hold, and the line numbers of the messages would be wrong."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def parse_number(text: str) -> float:
    """The number ``text`` writes, spaces around it ignored: ASCII decimal or exponent
    notation (``-1.5``, ``.5``, ``2e-3``), or a spelling of NaN or infinity (``NaN``,
    ``-inf``, ``Infinity``, in any case), read as :func:`float` reads them. A decimal
    beyond float64's range is ±inf, as ``inf`` is; :func:`spelled_out` tells them apart.
    ValueError for anything else (``1_000``, digits of other scripts, ``1,5``). The one
    parser of the values of the .ts, .tsf and CSV readers."""
    s = text.strip()
    if not (_DECIMAL.fullmatch(s) or _SPELLED.fullmatch(s)):
        raise ValueError(f"not a number: {s!r}")
    return float(s)


def spelled_out(text: str) -> bool:
    """Whether ``text`` spells NaN or infinity out, rather than writing digits."""
    return _SPELLED.fullmatch(text.strip()) is not None


# The header tags that set what the series are: each may come once (or again, the same).
_READ_TAGS = frozenset(
    {"timestamps", "univariate", "equallength", "targetlabel", "dimensions", "serieslength",
     "classlabel"}
)  # fmt: skip


def _read_header(lines: list[str], where: str, require_labels: bool) -> tuple[_Header, int]:
    """The header's tags and the index of the first line after @data."""
    h = _Header()
    seen: dict[str, tuple[int, list[str]]] = {}  # the tags read: their line and values
    for n, raw in enumerate(lines):
        line = raw.strip()
        if not line or line.startswith(COMMENTS):
            continue
        at = f"{where}, line {n + 1}"
        if not line.startswith("@"):
            raise ValueError(
                f"{at}: expected a @tag of the header or @data before the series; got "
                f"{_short(line)!r}"
            )
        tokens = line.split()
        tag, values = tokens[0][1:].lower(), tokens[1:]
        # Class labels are case-sensitive; the other tags' values (true, 12) are not.
        said = values if tag == "classlabel" else [v.lower() for v in values]
        if tag in _READ_TAGS and tag in seen and seen[tag][1] != said:
            # A second @classLabel would replace the first's classes without a word. The
            # same tag again with the same value changes nothing (and a second
            # @problemName, as aeon's own UnitTest file has, only renames the file).
            first, before = seen[tag]
            raise ValueError(
                f"{at}: {tokens[0]} {' '.join(values)!r} contradicts line {first}'s "
                f"{' '.join(before)!r}; expected each tag of the header once"
            )
        seen[tag] = (n + 1, said)
        if tag == "data":
            if values:
                raise ValueError(f"{at}: @data takes no value; the series start on the next line")
            _check_header(h, where, require_labels)
            return h, n + 1
        if tag in BOOLEAN_TAGS:
            value = _boolean(tokens[0], values, at)
            if tag == "timestamps":
                h.timestamps = value
            elif tag == "univariate":
                h.univariate = value
            elif tag == "equallength":
                h.equal_length = value
            elif tag == "targetlabel":
                h.target_label = value
        elif tag == "problemname":
            h.problem_name = " ".join(values) or None
        elif tag in ("dimensions", "serieslength"):
            number = _positive(tokens[0], values, at)
            if tag == "dimensions":
                h.dimensions = number
            else:
                h.series_length = number
        elif tag == "classlabel":
            if not values or values[0].lower() not in ("true", "false"):
                raise ValueError(
                    f"{at}: {tokens[0]} must be 'true' followed by the class labels, or "
                    f"'false'; got {' '.join(values)!r}"
                )
            h.class_label = values[0].lower() == "true"
            h.classes = values[1:]
            if h.class_label and not h.classes:
                raise ValueError(f"{at}: {tokens[0]} true must list the class labels")
            colon = [c for c in h.classes if ":" in c]
            if colon:  # a series line's last ':' starts its label: this one never matches
                raise ValueError(
                    f"{at}: {tokens[0]} declares {colon[0]!r}; a class label cannot hold "
                    "':', which separates the dimensions and the label"
                )
            if len(set(h.classes)) != len(h.classes):
                twice = sorted({c for c in h.classes if h.classes.count(c) > 1})
                raise ValueError(
                    f"{at}: {tokens[0]} declares {', '.join(twice)} twice (the labels are "
                    "separated by spaces: a class label cannot hold one)"
                )
        # other tags (@missing is read from the data itself; unknown tags) are skipped
    raise ValueError(f"{where}: no @data line; a .ts file's series follow a line '@data'")


def _check_header(h: _Header, where: str, require_labels: bool) -> None:
    if h.target_label:
        raise ValueError(
            f"{where}: @targetLabel true marks a regression file (numeric targets); "
            "classification needs @classLabel true with the class labels"
        )
    if not h.class_label and require_labels:
        said = "@classLabel false" if h.class_label is False else "no @classLabel tag"
        raise ValueError(
            f"{where}: {said}; classification needs '@classLabel true <labels>' before @data"
        )
    if h.univariate and h.dimensions not in (None, 1):
        raise ValueError(f"{where}: @univariate true contradicts @dimensions {h.dimensions}")
    if h.univariate and h.dimensions is None:
        h.dimensions = 1


def _boolean(tag: str, values: list[str], at: str) -> bool:
    if len(values) != 1 or values[0].lower() not in ("true", "false"):
        raise ValueError(f"{at}: {tag} must be true or false; got {' '.join(values)!r}")
    return values[0].lower() == "true"


def _positive(tag: str, values: list[str], at: str) -> int:
    # ASCII digits only: str.isdigit() accepts '²', which int() refuses.
    if len(values) != 1 or not re.fullmatch(r"[0-9]+", values[0]) or int(values[0]) < 1:
        raise ValueError(f"{at}: {tag} must be a positive integer; got {' '.join(values)!r}")
    return int(values[0])


def _split_series(line: str, at: str, stamped: bool, labelled: bool) -> tuple[list[str], str]:
    """The dimensions' texts and the label ("" when unlabelled) of one series line."""
    if stamped:
        # A label never holds ':', but may hold a parenthesis ("a(b"), which would open a
        # "pair" that never closes: it is split off first when the rest is balanced.
        head, colon, tail = line.rpartition(":")
        if labelled and colon and ("(" in tail or ")" in tail) and _balanced(head):
            return _split_stamped(head, at), tail.strip()
        parts = _split_stamped(line, at)
    else:
        parts = line.split(":")
    if not labelled:
        # aeon's save_to_ts_file ends every dimension with ':', so that a series without a
        # label ends with one: an empty last part is that, never a dimension (it has no values)
        if len(parts) > 1 and not parts[-1].strip():
            parts = parts[:-1]
        return parts, ""
    if len(parts) < 2:
        raise ValueError(
            f"{at}: expected the values of each dimension separated by ':' and then the "
            f"class label; got no ':' in {_short(line)!r}"
        )
    return parts[:-1], parts[-1].strip()


def _balanced(text: str) -> bool:
    """Whether every '(' of ``text`` is closed by a later ')' and every ')' closes one."""
    depth = 0
    for c in text:
        depth += (c == "(") - (c == ")")
        if depth < 0:
            return False
    return depth == 0


def _split_stamped(line: str, at: str) -> list[str]:
    """The dimensions of ``(t,v),(t,v):(t,v),(t,v)``: split on the ':' outside the
    parentheses (a timestamp holds ':' of its own)."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(line):
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:  # else every later ':' would hide inside "parentheses"
                raise ValueError(
                    f"{at}: a ')' (character {i + 1}) closes no '('; @timeStamps true "
                    "writes each value as '(timestamp,value)'"
                )
        elif c == ":" and depth == 0:
            parts.append(line[start:i])
            start = i + 1
    if depth > 0:
        raise ValueError(
            f"{at}: a '(' is not closed by a ')'; @timeStamps true writes each value as "
            "'(timestamp,value)'"
        )
    parts.append(line[start:])
    return parts


def _values(text: str, at: str, dim: int, stamped: bool) -> list[float]:
    tokens = _stamped(text, at, dim) if stamped else text.split(",")
    if not tokens or tokens == [""] or all(not t.strip() for t in tokens):
        raise ValueError(f"{at}: dimension {dim} has no values")
    out = []
    for k, token in enumerate(tokens, start=1):
        t = token.strip()
        if t == "?" or t.lower() == "nan":
            out.append(math.nan)
            continue
        try:
            value = parse_number(t)
        except ValueError:
            if _run_together(t):  # "1\t2\t3" or "1;2;3": a file of another separator
                raise ValueError(
                    f"{at}: dimension {dim}, value {k}: {_short(t)!r} is not a number; the "
                    "values of a dimension are separated by ',' (not tabs, spaces or ';')"
                ) from None
            raise ValueError(
                f"{at}: dimension {dim}, value {k}: {_short(t)!r} is not a number (a missing "
                "value is '?' or NaN)"
            ) from None
        if spelled_out(t):  # inf, or a signed NaN ("-nan")
            raise ValueError(f"{at}: dimension {dim}, value {k}: {t!r} is not finite")
        if abs(value) > FLOAT32_MAX:  # 1e39, and 1e309 (read as inf) too
            raise ValueError(
                f"{at}: dimension {dim}, value {k}: {_short(t)!r} is out of range for float32 "
                f"(at most {FLOAT32_MAX:.7g} in magnitude)"
            )
        out.append(value)
    return out


def _run_together(token: str) -> bool:
    """Whether ``token`` is numbers separated by whitespace or ';' instead of ','."""
    parts = re.split(r"[\s;]+", token.strip())
    if len(parts) < 2:
        return False
    for part in parts:
        try:
            parse_number(part)
        except ValueError:
            if part != "?":
                return False
    return True


def _stamped(text: str, at: str, dim: int) -> list[str]:
    """The value texts of one dimension's "(t,v),(t,v),...": nothing may stand between
    or around the pairs (it would be dropped unseen)."""
    if not text.strip():
        return []
    values: list[str] = []
    pos = 0
    while True:
        m = _PAIR.match(text, pos)
        if m is None:
            raise ValueError(
                f"{at}: dimension {dim}, value {len(values) + 1}: @timeStamps true expects "
                f"'(timestamp,value)'; got {_short(text[pos:].strip())!r}"
            )
        values.append(m.group(2))
        pos = m.end()
        if pos == len(text):
            return values
        if text[pos] != ",":
            raise ValueError(
                f"{at}: dimension {dim}: expected ',' after value {len(values)} "
                f"(timestamp,value); got {_short(text[pos:])!r}"
            )
        pos += 1


def _fill(x: Tensor, at: str) -> Tensor:
    """Forward fill along time per dimension; a leading gap takes the first value."""
    T, D = x.shape
    holes = torch.isnan(x)
    empty = holes.all(0)
    if empty.any():
        d = int(empty.nonzero()[0]) + 1
        raise ValueError(
            f"{at}: dimension {d} has no value at all (every one missing); nothing to fill it "
            "from (read with missing='keep' to handle it yourself)"
        )
    steps = torch.arange(T).unsqueeze(1).expand(T, D)
    last = torch.where(holes, torch.full_like(steps, -1), steps)
    last = torch.cummax(last, dim=0).values  # the last valid step at or before t; -1: none
    first = (~holes).to(torch.uint8).argmax(0).expand(T, D)  # the first valid step
    return x.gather(0, torch.where(last < 0, first, last))


def write_ts(
    path: str | os.PathLike[str],
    series: Sequence[Tensor | np.ndarray | Sequence[Sequence[float]]] | Tensor | np.ndarray,
    labels: Sequence[int | str] | Tensor | np.ndarray | None,
    classes: Sequence[str] | None = None,
    problem_name: str = "rnnkit",
    *,
    overwrite: bool = False,
) -> None:
    """Write series (each (T_i, D)) and their labels as a ``.ts`` file :func:`read_ts`
    reads back. ``labels`` are indices into ``classes`` or class names (all one or all the
    other); ``labels=None`` writes a file of series to classify (``@classLabel false``,
    read with ``require_labels=False``). NaN is written as ``?`` (a missing value). What
    :func:`read_ts` would refuse is refused here, before anything is written: a series
    without steps, an infinite value or one beyond float32, a dimension of a series with
    no value at all. An existing file is replaced only with ``overwrite=True``, and
    atomically: a reader sees the old file or the new one."""
    from rnnkit.train.files import atomic_write, writable_file

    target = writable_file("write_ts", "path", path, overwrite)
    for name, value in (("series", series), ("labels", labels)):
        if value is None and name == "labels":
            continue
        if isinstance(value, str) or not hasattr(value, "__len__"):
            raise TypeError(f"write_ts: {name} must be a sequence; got {type(value).__name__}")
    if isinstance(classes, str):  # it would be read as one class per character
        raise TypeError("write_ts: classes must be a sequence of names; got str")
    if labels is None and classes is not None:
        raise ValueError(
            "write_ts: classes must be None when labels is None (a file without labels); got "
            f"{list(classes)!r}"
        )
    if not isinstance(problem_name, str):
        raise TypeError(f"write_ts: problem_name must be a str; got {type(problem_name).__name__}")
    # Plain lists from here: a (N, T, D) array or tensor has no truth value, and a pandas
    # Series indexes by its labels, so [0] need not be its first item.
    series = _as_list(series)
    ys = None if labels is None else _as_list(labels)
    if ys is not None and len(series) != len(ys):
        raise ValueError(f"write_ts: {len(series)} series but {len(ys)} labels")
    if not series:
        raise ValueError("write_ts: no series to write")
    if any(c in problem_name for c in "\n\r"):
        raise ValueError(f"write_ts: problem_name must be one line; got {problem_name!r}")
    xs = [_series_tensor(s, i) for i, s in enumerate(series)]
    for i, x in enumerate(xs):
        if x.dim() != 2:
            raise ValueError(
                f"write_ts: every series must be 2-D (T, D); series {i} has shape {tuple(x.shape)}"
            )
    dims = {int(x.size(1)) for x in xs}
    if len(dims) > 1:
        raise ValueError(f"write_ts: the series have different dimensions {sorted(dims)}")
    for i, x in enumerate(xs):
        _check_writable(x, i)
    names = [] if ys is None else _label_names(ys, classes)
    lengths = {int(x.size(0)) for x in xs}
    (D,) = dims
    head = [
        f"@problemName {problem_name}",
        "@timeStamps false",
        f"@missing {'true' if any(torch.isnan(x).any() for x in xs) else 'false'}",
        f"@univariate {'true' if D == 1 else 'false'}",
        f"@dimensions {D}",
        f"@equalLength {'true' if len(lengths) == 1 else 'false'}",
        *([f"@seriesLength {lengths.pop()}"] if len(lengths) == 1 else []),
        "@classLabel true " + " ".join(names) if ys is not None else "@classLabel false",
        "@data",
    ]
    body = []
    for i, x in enumerate(xs):
        dims_text = [",".join("?" if math.isnan(v) else repr(float(v)) for v in col.tolist())
                     for col in x.T]  # fmt: skip
        if ys is not None:
            dims_text.append(_label_name(ys[i], i, names))
        body.append(":".join(dims_text))
    atomic_write(target, ("\n".join(head + body) + "\n").encode("utf-8"))


def _series_tensor(s: Any, i: int) -> Tensor:
    """Series ``i`` as a float64 tensor; refused unless it is an array of real numbers."""
    try:
        # A pandas DataFrame (T rows, D columns) is an array to numpy, not to torch.
        t = torch.as_tensor(
            np.array(s) if not isinstance(s, Tensor) and hasattr(s, "__array__") else s
        )
    except (TypeError, ValueError, RuntimeError):  # text, rows of unequal length, objects
        raise TypeError(
            f"write_ts: series {i} must be a (T, D) array of real numbers; got a "
            f"{type(s).__name__} that torch cannot read as one"
        ) from None
    if t.is_complex():  # its imaginary part would be dropped with only a warning
        raise TypeError(f"write_ts: series {i} must hold real numbers; got {t.dtype}")
    return t.to(torch.float64)


def _label_names(labels: list[Any], classes: Sequence[Any] | None) -> list[str]:
    """The class names the header declares, checked, from ``classes`` or ``labels``."""
    named = [isinstance(y, str) for y in labels]
    if any(named) and not all(named):
        k = named.index(not named[0])
        raise TypeError(
            "write_ts: labels must be all class names (str) or all class indices; got "
            f"{labels[0]!r} (series 0) and {labels[k]!r} (series {k})"
        )
    if not named[0]:
        for i, y in enumerate(labels):  # None or NaN: int() would fail in its own words
            if not isinstance(y, numbers.Real) or not math.isfinite(y):
                raise ValueError(
                    f"write_ts: series {i}: label {y!r} is not a class index (an integer >= 0) "
                    "or a class name"
                )
    if classes is None:
        classes = sorted(set(labels)) if named[0] else [str(k) for k in range(int(max(labels)) + 1)]
    names = [str(c) for c in classes]
    for c in names:
        if not c or any(ch.isspace() or ch == ":" for ch in c):
            raise ValueError(
                f"write_ts: class names must be non-empty, without spaces or ':'; got {c!r}"
            )
    twice = sorted({c for c in names if names.count(c) > 1})
    if twice:
        raise ValueError(f"write_ts: class names must differ; {twice[0]!r} twice")
    return names


def _label_name(y: Any, i: int, names: list[str]) -> str:
    """The class name of label ``y`` of series ``i``."""
    if isinstance(y, str):
        name = y
    elif int(y) == y and 0 <= int(y) < len(names):  # int(0.5) would pick class 0
        name = names[int(y)]
    else:
        raise ValueError(
            f"write_ts: series {i}: label {y!r} is not a class index in [0, {len(names)})"
        )
    if name not in names:
        raise ValueError(f"write_ts: label {name!r} is not one of the classes")
    return name


def _as_list(value: Any) -> list[Any]:
    """``value``'s items in order: ``tolist()`` for arrays, tensors and pandas Series, the
    rows of a pandas DataFrame (iterating one gives its column names)."""
    tolist = getattr(value, "tolist", None)
    if not callable(tolist) and callable(getattr(value, "to_numpy", None)):
        tolist = value.to_numpy().tolist
    return list(tolist()) if callable(tolist) else list(value)


def _check_writable(x: Tensor, i: int) -> None:
    """Refuse series ``i`` (T, D) where :func:`read_ts` would refuse its line."""
    T, D = x.shape
    if T == 0:
        raise ValueError(f"write_ts: series {i} has no steps; a .ts series has at least one")
    if D == 0:
        raise ValueError(f"write_ts: series {i} has no dimension; expected at least one dimension")
    bad = torch.isinf(x) | (x.abs() > FLOAT32_MAX)  # NaN compares False: written as '?'
    if bad.any():
        d, t = (int(v) for v in bad.T.nonzero()[0])  # the first in file order
        v = float(x[t, d])
        why = "is not finite" if math.isinf(v) else "is out of range for float32"
        raise ValueError(f"write_ts: series {i}, dimension {d + 1}, step {t + 1}: {v!r} {why}")
    # read_ts fills a gap from the series' other values; a dimension without any has none
    empty = torch.isnan(x).all(0)
    if empty.any():
        d = int(empty.nonzero()[0]) + 1
        raise ValueError(
            f"write_ts: series {i}, dimension {d} is all missing (NaN); read_ts has nothing "
            "to fill it from"
        )


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


__all__ = [
    "MISSING_MODES",
    "TSData",
    "parse_number",
    "parse_ts",
    "read_ts",
    "spelled_out",
    "write_ts",
]
