"""Time series that work offline: Monash ``.tsf`` files, CSV files, and shipped series.

Four file formats are read (``read_series`` picks one by the file, or ``format=``):

* **Monash ``.tsf``** (Godahewa et al. 2021): ``#`` comments, a header of ``@relation``,
  ``@attribute NAME TYPE``, ``@frequency``, ``@horizon``, ``@missing``,
  ``@equallength`` lines (keywords and types in any case), then ``@data`` and one series
  a line: the attribute values and the series separated by ``:``, the values by ``,``,
  ``?`` (or ``NaN``) for a missing value; an empty value or ``-`` is an error. The
  ``series_name`` attribute, else the first string attribute, names the series; an
  empty or repeated name is an error. A numeric attribute must be a number and a date
  one ``YYYY-MM-DD HH-MM-SS`` (or ``YYYY-MM-DD``).
* **wide CSV**: a header row and one column per series. One column is skipped as the
  time column: the one ``time_column=`` names, else the first when named like a time
  (``time``, ``date``, ``year``, ``month``, ..., or an empty name), holding no number at
  all (``1991 Jul``), or counting years one a row (``Jahr``: 1990, 1991, ...), with the
  columns named like a time right after it (``year,month``) - after an unnamed first
  column (pandas's index), skipped too. Any other cell that is not a number is an error.
  A row may have fewer cells than the header (its last series have ended), not more; a
  row of empty cells (``,,``) is a step with every value missing, a blank line no row. A
  file whose first row is numbers and missing values only has no header: its columns
  are series 1, 2, ... An unnamed column
  empty in every row (a spreadsheet's trailing ``,,``) is no series; a date twice in the
  time column (a long CSV read as wide) is an error, and so is a date earlier than the
  row before's (a newest-first export).
* **rows CSV**: one row per series, its id in the first cell and its values after it,
  in time order (M4's CSV files). Empty cells after a series' last value pad it to the
  table's width; a missing value inside it is filled as in any format. The first row is
  a header, skipped, when its first cell names the id column (``id``, ``series``, ...,
  R's ``V1``, or empty, as pandas writes an index) or its other cells are not all
  values (times: ``Jan``, ``2020-01``); an id twice is an error. ``auto`` reads a CSV
  this way when its header is R's ``V1,V2,...`` over ids that are no numbers (M4's), or
  an id column's name followed by two or more times (``id,2001,2002``).
* **long CSV**: a header with an id column (``id``, ``series``, ``unique_id``, ...) and a
  value column (``value``, ``y``, ``target``) - or an id, a time and exactly one more
  column (``id,date,sales``), the values - one row per observation, the rows of a series
  in time order (numeric and ISO-date times are checked).

Values are separated by ``,``: a file separated by ``;`` or tabs is refused.

A ``.tsf`` file's frequency is its ``@frequency``; a CSV's comes from its dates (a wide
CSV's one time column - pandas' unnamed index when it holds the dates -, each series'
times in a long CSV's, a rows CSV's header): ISO dates (``2020-03-01``), dates with a
time (``2020-03-01 13:00``, ``T``, seconds or a fraction of one too), year-months
(``2020-03``), quarters (``2020Q1``, ``2020-Q1``, ``2020 Q1``), ISO weeks (``2020-W05``)
and, in a column named ``year`` or counting up one a row, years (``1990``). The most
common step between neighbouring rows, if it is at least half of them, sets it: 1, 3 or
12 calendar months (dates on one day of the month, month ends, or a month's first or
last working days): monthly, quarterly, yearly; a week, a day (23 or 25 hours too: a
change of clocks), an hour, 30, 10 or 1 minute(s), 4 seconds: weekly, daily, hourly,
half_hourly, 10_minutes, minutely, 4_seconds. Steps that are whole multiples of it are
missing dates (counted, not filled in: the rows stay consecutive). Other dates -
irregular, out of order, of mixed formats, an unlisted step, a time split over columns,
long series that disagree - give none, and ``info["frequency_note"]`` says why; times
that are no dates (``1, 2, 3``, ``1991 Jul``) say nothing. The seasonality is
:data:`SEASONALITY`'s for the frequency.

Missing values - in a CSV an empty cell, ``?``, ``NA``, ``NaN``, ``null`` - are filled by linear
interpolation between the observed values around them; missing values before the first
or after the last observation of a series are dropped (a wide CSV's shorter columns end
early). The counts are kept on the :class:`SeriesSet`. A test file (:func:`join_test`:
each series' next values, matched by name to a training file's) may have none. A
malformed file is refused with a one-line message naming the file and line.

The shipped series (``--dataset``) are read with the same readers from files that aeon and
statsmodels install (the ``timeseries`` extra); nothing is downloaded.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from rnnkit.data.dates import dated_cells, spacing, stamp_of
from rnnkit.data.ts_format import parse_number, spelled_out, text_lines

MISSING_TOKENS = frozenset({"", "?", "na", "nan", "null", "none", "n/a", "#n/a", "-"})
TIME_NAMES = frozenset(
    {
        "", "time", "date", "datetime", "timestamp", "ds", "t", "year", "month", "quarter",
        "week", "day", "hour", "period", "index", "obs", "start_timestamp",
    }
)  # fmt: skip
ID_NAMES = ("id", "unique_id", "series", "series_id", "series_name", "item_id", "name", "key")
VALUE_NAMES = ("value", "values", "y", "target", "observation")
# Seasonal period of a frequency, as the Monash archive uses for MASE (the first of its
# periods); a frequency not listed has period 1.
SEASONALITY = {
    "yearly": 1,
    "annual": 1,
    "quarterly": 4,
    "monthly": 12,
    "weekly": 52,
    "daily": 7,
    "hourly": 24,
    "half_hourly": 48,
    "30_minutes": 48,
    "10_minutes": 144,
    "minutely": 1440,
    "4_seconds": 21600,
}
FORMATS = ("auto", "tsf", "wide", "long", "rows")
# A .tsf file's missing value is '?' (NaN is read as one too); its dates, as Monash
# writes them: '-' between the hours, minutes and seconds, as ':' separates the fields.
_TSF_MISSING = frozenset({"?", "nan"})
_TSF_DATES = ("%Y-%m-%d %H-%M-%S", "%Y-%m-%d")
_ISO = re.compile(r"\d{4}-\d{2}(-\d{2})?([ T]\d{2}[:-]\d{2}([:-]\d{2})?)?")


@dataclass
class SeriesSet:
    """Series read from a file or a shipped dataset, missing values handled.

    ``values[i]`` is series ``names[i]`` as floats, gaps filled; ``frequency``,
    ``seasonality`` and ``horizon`` are what the data says (None when it says nothing):
    a CSV's frequency comes from its dates, and ``info["frequency_note"]`` says so, or
    why its dates give none.
    """

    names: list[str]
    values: list[list[float]]
    source: str  # what was read, for messages: a path or "dataset m1-yearly (...)"
    frequency: str | None = None
    seasonality: int | None = None
    horizon: int | None = None
    filled: int = 0  # missing values interpolated inside a series
    dropped: int = 0  # missing values dropped at the start or end of a series
    info: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.values)

    def describe(self) -> str:
        held = int(self.info.get("test_values", 0))  # the test values join_test added
        lengths = [len(v) - held for v in self.values]
        span = (
            f"{min(lengths)}"
            if min(lengths) == max(lengths)
            else (f"{min(lengths)}-{max(lengths)}")
        )
        freq = f", {self.frequency}" if self.frequency else ""
        note = self.info.get("frequency_note")  # how a CSV's dates gave it, or why not
        if note:
            freq = f"{freq} ({note})" if self.frequency else f", {note}"
        gaps = ""
        if self.filled or self.dropped:
            gaps = f", {self.filled} missing value(s) interpolated, {self.dropped} dropped at ends"
        test = f"; test: {self.info['test']}, the next {held} values of each" if held else ""
        return f"{self.source}: {len(self)} series of length {span}{freq}{gaps}{test}"


# ---- missing values -----------------------------------------------------------------


def fill_missing(values: Sequence[float | None]) -> tuple[list[float], int, int]:
    """(filled values, interpolated count, dropped count): linear interpolation inside,
    missing values (None or NaN) at either end dropped."""
    known = [i for i, v in enumerate(values) if v is not None and not math.isnan(v)]
    if not known:
        return [], 0, len(values)
    first, last = known[0], known[-1]
    out: list[float] = []
    filled = 0
    prev = first
    for i in range(first, last + 1):
        v = values[i]
        if v is not None and not math.isnan(v):
            out.append(float(v))
            prev = i
            continue
        nxt = next(j for j in known if j > i)
        a, b = float(values[prev]), float(values[nxt])  # type: ignore[arg-type]
        out.append(a + (b - a) * (i - prev) / (nxt - prev))
        filled += 1
    return out, filled, len(values) - (last - first + 1)


def parse_value(text: str) -> float | None:
    """A number, None for a missing-value token (or a NaN: ``-nan``); ValueError for
    anything else, ``inf`` included. A decimal beyond float64's range is ±inf, which
    :func:`_finish` refuses as too large."""
    s = text.strip()
    if s.lower() in MISSING_TOKENS:
        return None
    value = parse_number(s)  # ValueError for text
    if math.isnan(value):
        return None
    if spelled_out(s):
        raise ValueError(s)
    return value


def _is_number(text: str) -> bool:
    try:
        return parse_value(text) is not None
    except ValueError:
        return False


def _finish(
    names: list[str],
    raw: list[list[float | None]],
    path: str,
    **kw: Any,
) -> SeriesSet:
    """Fill the gaps of every series; refuse a series without any value, or with one too
    large to forecast."""
    from rnnkit.deploy import FORECAST_MAX  # deploy.py stands alone: it cannot import this

    values, filled, dropped = [], 0, 0
    gaps: dict[str, int] = {}  # per series, for a test file, which may have none
    for name, series in zip(names, raw, strict=True):
        for k, value in enumerate(series, 1):
            # Before the gaps are filled: interpolating between -1e308 and 1e308 overflows.
            if value is not None and abs(value) > FORECAST_MAX:
                raise ValueError(
                    f"{path}: value {k} of series {name!r} is {_magnitude(value)}; expected a "
                    f"magnitude of at most {FORECAST_MAX:g} (the sums that scale a series "
                    "overflow past it)"
                )
        v, f, d = fill_missing(series)
        if not v:
            raise ValueError(f"{path}: series {name!r} has no values (all missing)")
        values.append(v)
        filled += f
        dropped += d
        if f + d:
            gaps[name] = f + d
    if not values:
        raise ValueError(f"{path}: no series found")
    data = SeriesSet(names, values, path, filled=filled, dropped=dropped, **kw)
    data.info["missing"] = gaps
    return data


def _magnitude(value: float) -> str:
    """A value as a message shows it; one beyond float64's range (1e309) was read as inf."""
    if math.isinf(value):
        return f"{'less than -' if value < 0 else 'more than '}{_FLOAT64_MAX:.2g}"
    return f"{value:g}"


_FLOAT64_MAX = 1.7976931348623157e308


def _open(path: str | os.PathLike[str]) -> list[str]:
    """The lines of a UTF-8 text file (a BOM is skipped); one-line errors."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{p}: is a folder; expected a .tsf or .csv file")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FileNotFoundError(f"series file not found: {p}") from None
    except UnicodeDecodeError as err:
        line = p.read_bytes()[: err.start].count(b"\n") + 1
        raise ValueError(f"{p}, line {line}: not UTF-8 text ({err.reason})") from None
    if not text.strip():
        raise ValueError(f"{p}: the file is empty")
    return text_lines(text)  # not str.splitlines: it breaks at a form feed, U+2028...


# ---- .tsf -----------------------------------------------------------------------------


def read_tsf(path: str | os.PathLike[str]) -> SeriesSet:
    """A Monash ``.tsf`` file (format described in the module docstring)."""
    where = str(path)
    lines = _open(path)
    attributes: list[tuple[str, str]] = []
    frequency: str | None = None
    horizon: int | None = None
    names: list[str] = []
    raw: list[list[float | None]] = []
    lines_of: dict[str, int] = {}  # the line of each series name
    in_data = False
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        at = f"{where}, line {number}"
        if not in_data:
            if not text.startswith("@"):
                raise ValueError(
                    f"{at}: expected a header line starting with @ (or @data before the "
                    f"series); got {_clip(text)!r}"
                )
            # Keywords and types in any case, separated by any whitespace (tabs too).
            key, *more = text[1:].split(None, 1)
            key, rest = key.lower(), (more[0].strip() if more else "")
            if key == "attribute":
                parts = rest.split()
                if len(parts) != 2 or parts[1].lower() not in ("string", "numeric", "date"):
                    raise ValueError(
                        f"{at}: expected '@attribute NAME string|numeric|date'; got {_clip(text)!r}"
                    )
                attributes.append((parts[0], parts[1].lower()))
            elif key == "frequency":
                frequency = rest.lower() or None
            elif key == "horizon":
                # ASCII digits only: str.isdigit() accepts '²', which int() refuses.
                if not re.fullmatch(r"[0-9]+", rest) or int(rest) < 1:
                    raise ValueError(f"{at}: @horizon must be a positive integer; got {rest!r}")
                horizon = int(rest)
            elif key in ("missing", "equallength"):
                if rest.lower() not in ("true", "false"):
                    raise ValueError(f"{at}: @{key} must be true or false; got {rest!r}")
            elif key == "relation":
                pass
            elif key == "data":
                in_data = True
            else:
                raise ValueError(
                    f"{at}: unknown header @{key}; expected @relation, @attribute, "
                    "@frequency, @horizon, @missing, @equallength or @data"
                )
            continue
        parts = text.split(":")
        if len(parts) != len(attributes) + 1:
            raise ValueError(
                f"{at}: expected {len(attributes)} attribute value(s) and the series, "
                f"separated by ':' ({len(attributes) + 1} fields); got {len(parts)}"
            )
        _check_attributes(parts, attributes, at)
        name = _tsf_name(parts, attributes, len(names), at)
        if name in lines_of:  # names label the output: each must say which series it is
            raise ValueError(
                f"{at}: series name {name!r} appears twice (first on line {lines_of[name]})"
            )
        lines_of[name] = number
        series: list[float | None] = []
        for k, cell in enumerate(parts[-1].split(","), 1):
            try:
                # A .tsf file marks a missing value '?': an empty value ("1,,2", "1,2,")
                # or a '-' is a value lost or cut, not one the file says is missing.
                if cell.strip().lower() in MISSING_TOKENS - _TSF_MISSING:
                    raise ValueError(cell)
                series.append(parse_value(cell))
            except ValueError:
                raise ValueError(
                    f"{at}: value {k} of series {name!r} is {_clip(cell)!r}; expected a "
                    "number or ? for a missing value"
                ) from None
        names.append(name)
        raw.append(series)
    if not in_data:
        raise ValueError(f"{where}: no @data line; not a .tsf file")
    seasonality = SEASONALITY.get(frequency, 1) if frequency else None
    return _finish(names, raw, where, frequency=frequency, seasonality=seasonality, horizon=horizon)


def _check_attributes(parts: list[str], attributes: list[tuple[str, str]], at: str) -> None:
    """Refuse a numeric or date attribute that is not one: most often the fields of the
    line are out of order, and the series' name would be read from the wrong field."""
    for value, (attribute, kind) in zip(parts, attributes, strict=False):
        text = value.strip()
        if kind == "numeric" and not _is_number(text):
            raise ValueError(
                f"{at}: attribute {attribute} (numeric) is {_clip(text)!r}; expected a number"
            )
        if kind == "date" and not _is_tsf_date(text):
            raise ValueError(
                f"{at}: attribute {attribute} (date) is {_clip(text)!r}; expected a date "
                "'YYYY-MM-DD HH-MM-SS' (or 'YYYY-MM-DD')"
            )


def _is_tsf_date(text: str) -> bool:
    """Whether ``text`` is a date as .tsf files write it (no ':', the field separator)."""
    for layout in _TSF_DATES:
        try:
            datetime.strptime(text, layout)
        except ValueError:
            continue
        return True
    return False


def _tsf_name(parts: list[str], attributes: list[tuple[str, str]], count: int, at: str) -> str:
    """The series' name: its ``series_name`` attribute, else its first string attribute
    (not empty), else T1, T2, ... A hierarchical file's first string attribute is the
    series' group (``series_group``), which many series share."""
    named = [a for a in attributes if a[0].lower() == "series_name" and a[1] == "string"]
    for value, (attribute, kind) in zip(parts, attributes, strict=False):
        if kind == "string" and (not named or (attribute, kind) == named[0]):
            if not value.strip():
                raise ValueError(f"{at}: the series name ({attribute}) is empty")
            return value.strip()
    return f"T{count + 1}"


# ---- CSV ------------------------------------------------------------------------------


def _rows(path: str | os.PathLike[str]) -> list[tuple[int, list[str]]]:
    """(line number, cells) of every CSV row, one row a line, from the first row with a
    value on. A blank line (nothing but spaces) is no row, as pandas reads it; a row of
    empty cells (``,,``) is one: in a wide CSV a time step with every value missing,
    which skipping would join the steps around it."""
    lines = _open(path)
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(lines)
    start = 1  # the line the next row starts on (blank lines are rows of no cells)
    try:
        for cells in reader:
            if reader.line_num > start:  # a quoted cell ran on: numbers never span lines
                raise ValueError(
                    f"{path}, line {start}: a quote opened on this line is not closed on it "
                    f"(the row runs on to line {reader.line_num}); expected one row per line"
                )
            if any(c.strip() for c in cells) or (rows and len(cells) > 1):
                rows.append((start, cells))
            start = reader.line_num + 1
    except csv.Error as err:
        raise ValueError(f"{path}, line {start}: malformed CSV ({err})") from None
    if not rows:
        raise ValueError(f"{path}: the file has no rows")
    _check_separator(path, rows)
    return rows


def _check_separator(path: str | os.PathLike[str], rows: list[tuple[int, list[str]]]) -> None:
    """Refuse a file separated by ';' or tabs (as spreadsheets with decimal commas save
    it): its cells would read as text, or its decimal commas split numbers in two."""
    for sep, what in ((";", "';'"), ("\t", "a tab")):
        # Inside the cells: a tab that ends a line (trailing whitespace) separates nothing.
        if all(any(sep in c.strip() for c in cells) for _, cells in rows[:2]):
            raise ValueError(
                f"{path}, line {rows[0][0]}: found {what} between values; expected ',' "
                "separators and '.' decimal points (save the file as comma-separated CSV)"
            )


def _long_columns(header: list[str]) -> tuple[int | None, int | None, int | None]:
    """(id, time, value) column of a long CSV's header, None where there is none. The
    value column is named like a value, or is the one column besides the id and time."""
    names = [h.strip().lower() for h in header]
    id_col = next((names.index(n) for n in ID_NAMES if n in names), None)
    time_col = next((i for i, n in enumerate(names) if n in TIME_NAMES and n and i != id_col), None)
    value_col = next((names.index(n) for n in VALUE_NAMES if n in names), None)
    others = [i for i in range(len(names)) if i not in (id_col, time_col)]
    if value_col is None and id_col is not None and len(others) == 1:
        value_col = others[0]
    return id_col, time_col, value_col


def _header_kind(header: list[str]) -> str:
    """'long' when the header names an id and a value column, or an id, a time and one
    more column (``id,date,sales``), else 'wide'."""
    id_col, time_col, value_col = _long_columns(header)
    names = [h.strip().lower() for h in header]
    named = any(n in VALUE_NAMES for n in names)
    if id_col is not None and value_col is not None and (named or time_col is not None):
        return "long"
    return "wide"


def _is_header(cells: list[str]) -> bool:
    """Whether a wide CSV's first row is a header. A row of numbers and missing values
    (at least one number) is data - except an empty first cell over whole numbers: the
    unnamed index and numbered columns pandas writes (``,0,1``)."""
    first, *rest = [c.strip() for c in cells]
    if not first and rest and all(c.isdigit() for c in rest):
        return True
    numbers = [_is_number(c) for c in cells]
    return not any(numbers) or not all(
        n or c.strip().lower() in MISSING_TOKENS for n, c in zip(numbers, cells, strict=True)
    )


def _skipped_columns(
    where: str, header: list[str], body: list[tuple[int, list[str]]], time_column: str | None
) -> list[int]:
    """The columns of a wide CSV that hold no series: the one ``time_column`` names; else
    the first column when it is named like a time, holds no number or counts years, and
    the columns named like a time right after it - after an unnamed first column (an
    index, as pandas writes), which is skipped too."""
    if time_column is not None:
        if time_column not in header:
            raise ValueError(
                f"{where}: --time-column {time_column!r} is not a column; the header has "
                f"{', '.join(repr(h) for h in header[:8])}"
            )
        index = [0] if len(header) > 2 and not header[0] else []  # pandas' index, as below
        return [*index, header.index(time_column)]
    skip = [0] if len(header) > 2 and not header[0] else []
    k = len(skip)
    numbers = any(_is_number(c[k]) for _, c in body if k < len(c))
    years = _counts_years([c[k] if k < len(c) else "" for _, c in body])
    if k < len(header) - 1 and (header[k].lower() in TIME_NAMES or not numbers or years):
        if header[k].lower() in ID_NAMES and not numbers:  # a long CSV taken for wide
            raise ValueError(
                f"{where}: column {header[k]!r} holds series ids, not times: a long CSV "
                f"needs a value column ({', '.join(VALUE_NAMES)}) or an id, a time and one "
                "more column; rename its value column, or give --format long (a row per "
                "value) or --format rows (a row per series)"
            )
        skip.append(k)
        # More time columns right after it (year,month,sales; date,hour,load): a calendar
        # split over columns, each of whose numbers would else be read as a series.
        while k + 2 < len(header) and header[k + 1].lower() in TIME_NAMES - {""}:
            k += 1
            skip.append(k)
    return skip


def _counts_years(cells: list[str]) -> bool:
    """Whether a column counts years, one a row (``Jahr: 1990, 1991, ...``), over three
    rows or more: a time column under a name not listed (``Jahr``, ``año``, ``anno``),
    not a series anyone forecasts. A column counting 1, 2, 3 stays a series: toy data."""
    try:
        steps = [parse_number(c.strip()) for c in cells]
    except ValueError:
        return False
    return (
        len(steps) >= 3
        and all(1000 <= v <= 2999 and v == int(v) for v in steps)
        and all(b - a == 1 for a, b in pairwise(steps))
    )


def _spacer(header: list[str], body: list[tuple[int, list[str]]], k: int) -> bool:
    """Whether column k is unnamed and empty in every row: the separators a spreadsheet
    leaves after the last column (``a,b,,``), not a series of the user's."""
    return not header[k] and all(k >= len(c) or not c[k].strip() for _, c in body)


def _check_one_row_per_time(
    where: str,
    header: list[str],
    body: list[tuple[int, list[str]]],
    times: list[int],
    years: bool = False,
) -> dict[str, Any]:
    """Refuse a date that comes twice in a wide CSV's time column: such a file holds a row
    per observation (a long CSV whose id column has another name, ``date,store,sales``),
    and read as wide its ids and values would be series, each mixing every store's rows.
    With several time columns (``date,hour``) it is their values together that must not
    come twice. Refuse, too, a date earlier than the row before's. ``times``: the time
    columns; ``years``: whether the one time column holds years. Returns the dates read
    (:func:`stamp_of` of each text), which the frequency reads again."""
    known: dict[str, Any] = {}
    first: dict[tuple[str, ...], int] = {}
    last: tuple[Any, int] | None = None  # the last date read, and its line
    for number, cells in body:
        stamp = tuple(cells[k].strip() if k < len(cells) else "" for k in times)
        # Only a date with its year is a time (a quarter, a week, a year in a column so
        # named too): a count (1, 2, 3) may come twice.
        date = None
        if len(times) == 1:
            date = known[stamp[0]] = stamp_of(stamp[0], years)
        if date is None and not any(_ISO.fullmatch(s) for s in stamp):
            continue
        what = (
            f"time {stamp[0]!r} of column {header[times[0]]!r}"
            if len(times) == 1
            else f"time ({', '.join(stamp)}) of columns "
            + ", ".join(repr(header[k]) for k in times)
        )
        if stamp in first:
            raise ValueError(
                f"{where}, line {number}: {what} comes again (first on line "
                f"{first[stamp]}); expected one row per time step in a wide CSV, and a long "
                f"CSV's id column named {', '.join(ID_NAMES)}"
            )
        first[stamp] = number
        # A date earlier than the row before (a repeat is refused above, as a long file):
        # a newest-first export read as it stands would run backwards, and the forecast
        # would continue its oldest value. Dates of two kinds (a date, a year-month) are
        # not compared.
        if date is None:
            continue
        if last is not None and last[0][0] == date[0] and date[1] < last[0][1]:
            raise ValueError(
                f"{where}, line {number}: {what} comes before line {last[1]}'s; expected the "
                "rows of a wide CSV in time order, oldest first"
            )
        last = (date, number)
    return known


def _time_columns(
    header: list[str], body: list[tuple[int, list[str]]], skip: list[int]
) -> list[int]:
    """The columns of a wide CSV's time among those it skips: not pandas' unnamed index
    (``,date,a,b``), unless that index is the one column of dates (a ``DatetimeIndex``
    written by ``to_csv()``: ``,a,b`` over ``2020-01-01,1,2``)."""
    if not (len(header) > 2 and not header[0]):
        return skip
    if skip[1:] or skip[:1] != [0]:
        return skip[1:]
    column = [(row, cells[0]) for row, (_, cells) in enumerate(body) if cells]
    dated = dated_cells(column, _counts_years([text for _, text in column]))
    return [0] if isinstance(dated, list) and dated else []


def _set_frequency(
    data: SeriesSet,
    columns: list[tuple[str, list[tuple[int, str]]]],
    years: bool,
    known: dict[str, Any] | None = None,
) -> SeriesSet:
    """Give ``data`` the frequency (and seasonality) that the dates of its time cells
    agree on: ``columns`` holds, per series (or once for all, as a wide CSV's), a label
    for the note and its time cells (row, text); ``known``, the dates of texts already
    read. Where dates are found but give no frequency, ``info["frequency_note"]`` says
    why; where none are, nothing changes."""
    known = {} if known is None else known  # each text read once (a long CSV's repeat)
    read = [(label, dated_cells(cells, years, known)) for label, cells in columns]
    if all(dated is None or dated == [] for _, dated in read):
        return data
    why: str | None = None
    if any(dated is None for _, dated in read):  # series of dates beside series of none
        why = "the time column mixes formats"
    spacings = [(label, spacing(d) if isinstance(d, list) else (None, 0, d)) for label, d in read]
    for label, (_, _, reason) in spacings:
        if why is None and reason is not None:
            why = f"{label}{': ' if label else ''}{reason}"
    frequencies = sorted({s[0] for _, s in spacings if s[0] is not None})
    if why is None and len(frequencies) > 1:
        why = f"the series differ: {', '.join(frequencies)}"
    if why is not None:
        data.info["frequency_note"] = f"no frequency: {why}"
        return data
    if not frequencies:  # one date per series: no step to read
        return data
    absent = sum(s[1] for _, s in spacings)
    data.frequency = frequencies[0]
    data.seasonality = SEASONALITY[frequencies[0]]
    data.info["frequency_note"] = "from the dates" + (
        f"; {absent} missing date(s), not filled in" if absent else ""
    )
    return data


def read_wide_csv(path: str | os.PathLike[str], time_column: str | None = None) -> SeriesSet:
    """A CSV file with one column per series (see the module docstring)."""
    where = str(path)
    rows = _rows(path)
    first = rows[0][1]
    width = len(first)
    has_header = _is_header(first)
    if has_header:
        header = [h.strip() for h in first]
        body = rows[1:]
    else:
        header = [f"series{k + 1}" for k in range(width)]
        body = rows
    if not body:
        raise ValueError(f"{where}: a header row and no data rows")
    skip = _skipped_columns(where, header, body, time_column) if has_header or time_column else []
    times = _time_columns(header, body, skip)
    column = []  # the one time column's cells (row, text), for its frequency
    years = False
    if len(times) == 1:
        k = times[0]
        column = [(row, cells[k] if k < len(cells) else "") for row, (_, cells) in enumerate(body)]
        years = header[k].lower() == "year" or _counts_years([text for _, text in column])
    known = _check_one_row_per_time(where, header, body, times, years)
    columns = [k for k in range(width) if k not in skip and not _spacer(header, body, k)]
    names = [header[k] for k in columns]
    if not names:
        left_out = ", ".join(repr(header[k]) for k in range(width))
        raise ValueError(
            f"{where}: no value columns after the time column(s); expected a column of "
            f"values beside them, got only {left_out}"
        )
    raw: list[list[float | None]] = [[] for _ in names]
    what = "as in the header" if has_header else f"as on line {rows[0][0]}"
    for number, cells in body:
        # A cell more than the header is a series without a name (or another format);
        # cells fewer are the missing values of the last series, which have ended.
        if len(cells) > width:
            noun = "cell" if width == 1 else "cells"
            raise ValueError(
                f"{where}, line {number}: expected {width} {noun} {what}; got {len(cells)}"
            )
        for j, k in enumerate(columns):
            cell = cells[k] if k < len(cells) else ""
            try:
                raw[j].append(parse_value(cell))
            except ValueError:
                hint = ""
                if names[j].lower() in TIME_NAMES:
                    hint = " (only the first column, or the one --time-column names, is times)"
                raise ValueError(
                    f"{where}, line {number}: column {names[j]!r} has {_clip(cell)!r}; expected "
                    f"a number, or an empty cell, ?, NA or NaN for a missing value{hint}"
                ) from None
    for j, name in enumerate(names):
        if not name:
            names[j] = f"series{j + 1}"
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"{where}, line {rows[0][0]}: column name {dup!r} appears twice")
    data = _finish(names, raw, where)
    if len(times) > 1:
        spans = ", ".join(repr(header[k]) for k in times)
        data.info["frequency_note"] = f"no frequency: the time spans columns {spans}"
    elif times:
        _set_frequency(data, [("", column)], years, known)
    return data


def read_long_csv(path: str | os.PathLike[str]) -> SeriesSet:
    """A CSV file of ``id,time,value`` rows (see the module docstring)."""
    where = str(path)
    rows = _rows(path)
    header = [h.strip().lower() for h in rows[0][1]]
    id_col, time_col, value_col = _long_columns(header)
    if id_col is None or value_col is None:
        raise ValueError(
            f"{where}, line {rows[0][0]}: a long CSV needs an id column ({', '.join(ID_NAMES)}) "
            f"and a value column ({', '.join(VALUE_NAMES)}, or the one column besides the id "
            f"and time); got header {rows[0][1]!r}"
        )
    series: dict[str, list[float | None]] = {}
    last_time: dict[str, tuple[Any, int]] = {}
    times: dict[str, list[tuple[int, str]]] = {}  # each series' time cells, for its frequency
    for number, cells in rows[1:]:
        if not any(c.strip() for c in cells):  # ",,": no id, no value - nothing to read
            continue
        if len(cells) != len(header):
            raise ValueError(
                f"{where}, line {number}: expected {len(header)} cells as in the header; got "
                f"{len(cells)}"
            )
        key = cells[id_col].strip()
        if not key:
            raise ValueError(f"{where}, line {number}: the id cell is empty")
        try:
            value = parse_value(cells[value_col])
        except ValueError:
            raise ValueError(
                f"{where}, line {number}: value {_clip(cells[value_col])!r} of series {key!r} "
                "is not a number (or a missing-value token: empty, ?, NA, NaN)"
            ) from None
        if time_col is not None:
            stamp = _time_key(cells[time_col])
            before = last_time.get(key)
            comparable = before is not None and _comparable(before[0], stamp)
            if stamp is not None and before is not None and comparable and stamp <= before[0]:
                raise ValueError(
                    f"{where}, line {number}: time {cells[time_col].strip()!r} of series "
                    f"{key!r} does not come after line {before[1]}'s; the rows of a "
                    "series must be in time order, each time once"
                )
            if stamp is not None:
                last_time[key] = (stamp, number)
            times.setdefault(key, []).append((len(series.get(key, [])), cells[time_col]))
        series.setdefault(key, []).append(value)
    if not series:
        raise ValueError(f"{where}: a header row and no data rows")
    data = _finish(list(series), list(series.values()), where)
    if time_col is not None:
        years = header[time_col] == "year" or all(
            _counts_years([text for _, text in cells]) for cells in times.values()
        )
        _set_frequency(data, [(f"series {_clip(k)!r}", c) for k, c in times.items()], years)
    return data


def _is_rows_header(cells: list[str], body: list[tuple[int, list[str]]]) -> bool:
    """Whether a CSV's header says one row per series: M4's files (``V1,V2,...``, R's
    names for unnamed columns, over ids that are no numbers: ``Y1,5172.1,...``), or an
    id column followed by two or more times (``id,2001,2002``; ``series,2020-01,...``)."""
    names = [h.strip() for h in cells]
    if len(names) < 3:
        return False
    if names == [f"V{k}" for k in range(1, len(names) + 1)]:
        return not any(_is_number(c[0]) for _, c in body if c)
    times = names[1:]
    return names[0].lower() in ID_NAMES and all(
        _is_number(t) or _ISO.fullmatch(t) or stamp_of(t, years=False) for t in times
    )


def _csv_kind(rows: list[tuple[int, list[str]]]) -> str:
    """'rows', 'long' or 'wide', by the header (see :func:`read_series`)."""
    header, body = rows[0][1], rows[1:]
    if _is_rows_header(header, body):
        return "rows"
    return _header_kind(header)


def read_rows_csv(path: str | os.PathLike[str]) -> SeriesSet:
    """A CSV file with one row per series: its id, then its values (see the module
    docstring)."""
    where = str(path)
    rows = _rows(path)
    first = [c.strip() for c in rows[0][1]]
    # A header, skipped, when it names the id column (id, V1, or pandas' unnamed index)
    # or holds something besides values after its first cell (times: Jan, 2020-01).
    rest = first[1:]
    values_only = all(_is_number(c) or c.lower() in MISSING_TOKENS for c in rest)
    has_header = first[0].lower() in (*ID_NAMES, "v1", "") or not values_only
    body = rows[1:] if has_header else rows
    width = len(first) if has_header else None
    names: list[str] = []
    raw: list[list[float | None]] = []
    seen: dict[str, int] = {}
    for number, cells in body:
        if not any(c.strip() for c in cells):  # ",,": no id, no value - nothing to read
            continue
        if width is not None and len(cells) > width:
            raise ValueError(
                f"{where}, line {number}: expected at most {width} cells as in the header "
                f"(an id and {width - 1} values); got {len(cells)}"
            )
        key = cells[0].strip()
        if not key:
            raise ValueError(
                f"{where}, line {number}: the id cell is empty; expected the series' name "
                "in the first cell of each row"
            )
        if key in seen:
            raise ValueError(
                f"{where}, line {number}: series {_clip(key)!r} comes again (first on line "
                f"{seen[key]}); expected one row per series"
            )
        seen[key] = number
        # Empty cells after the last value pad a shorter series to the table's width (as
        # M4's files do): they end it, and are no missing values.
        end = len(cells)
        while end > 1 and not cells[end - 1].strip():
            end -= 1
        series: list[float | None] = []
        for k, cell in enumerate(cells[1:end], 2):
            try:
                series.append(parse_value(cell))
            except ValueError:
                raise ValueError(
                    f"{where}, line {number}: cell {k} of series {_clip(key)!r} has "
                    f"{_clip(cell)!r}; expected a number, or an empty cell, ?, NA or NaN for "
                    "a missing value"
                ) from None
        names.append(key)
        raw.append(series)
    if not names:
        raise ValueError(f"{where}: a header row and no data rows")
    data = _finish(names, raw, where)
    if has_header:  # the header's times, one a value (id,2020-01,2020-02,...)
        _set_frequency(data, [("", list(enumerate(rest)))], _counts_years(rest))
    return data


def _time_key(text: str) -> Any:
    """A comparable time: a number, an ISO date string, another date (a quarter, an ISO
    week, a time with a fraction of a second) as its (kind, value), or None (not
    checked)."""
    s = text.strip()
    try:
        return parse_number(s)
    except ValueError:
        pass
    return s if _ISO.fullmatch(s) else stamp_of(s, years=False)


def _comparable(a: Any, b: Any) -> bool:
    """Whether two :func:`_time_key` values are times of one kind."""
    return type(a) is type(b) and (not isinstance(a, tuple) or a[0] == b[0])


def read_series(
    path: str | os.PathLike[str], format: str = "auto", time_column: str | None = None
) -> SeriesSet:
    """Read a ``.tsf`` file, or a wide, long or rows CSV file; ``format`` auto picks by
    the extension (``.tsf``) and the CSV header (an id and a value column: long; R's
    ``V1,V2,...`` over ids, or an id column and times: rows; else wide)."""
    # Checked by name: Path(None) failed inside pathlib, and a number as time_column was
    # looked up among the header's names (never found) as if it were one.
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"read_series: path must be a path; got {type(path).__name__}")
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {format!r}")
    if time_column is not None and not isinstance(time_column, str):
        raise TypeError(
            f"read_series: time_column must be a column name (str) or None; got "
            f"{type(time_column).__name__}"
        )
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"series file not found: {p}")
    if format == "auto":
        format = "tsf" if p.suffix.lower() == ".tsf" else _csv_kind(_rows(p))
    if format == "tsf":
        data = read_tsf(p)
    elif format == "long":
        data = read_long_csv(p)
    elif format == "rows":
        data = read_rows_csv(p)
    else:
        data = read_wide_csv(p, time_column)
    if time_column is not None and format != "wide":
        raise ValueError(f"--time-column is for a wide CSV; {p} was read as {format}")
    data.info["format"] = format
    return data


def join_test(train: SeriesSet, test: SeriesSet, horizon: int | None = None) -> SeriesSet:
    """Each series of ``train`` followed by its test values in ``test``: the next
    ``horizon`` values of the same series, matched by name (as M4 and the Monash archive
    ship a train and a test file). The result's ``info["test_values"]`` is the horizon;
    its ``source`` is the training file's.

    Refused in one line naming the file: a name on one side only, a missing test value
    (a filled-in one would be scored as the series' own), and test series whose lengths
    are not the horizon - ``horizon`` when given, else their common length, which must
    agree with the training file's ``@horizon`` where it has one.
    """
    where = test.source
    known = set(train.names)
    for name in test.names:
        if name not in known:
            raise ValueError(
                f"{where}: series {name!r} is not a series of {train.source}; a test file "
                "holds the next values of the training file's series, by name"
            )
    index = {name: k for k, name in enumerate(test.names)}
    for name in train.names:
        if name not in index:
            raise ValueError(
                f"{where}: no test values for series {name!r} of {train.source}; a test "
                "file holds the next values of every series of the training file, by name"
            )
    gaps = test.info.get("missing", {})
    if gaps:
        name, count = next(iter(gaps.items()))
        raise ValueError(
            f"{where}: series {name!r} has {count} missing value(s) (a missing cell, or a "
            "column that ends early); every test value must be observed, as a filled-in "
            "one would be scored as the series' own"
        )
    h = _test_length(train, test, horizon)
    values = [train.values[k] + test.values[index[name]] for k, name in enumerate(train.names)]
    return SeriesSet(
        list(train.names),
        values,
        train.source,
        frequency=train.frequency,
        seasonality=train.seasonality,
        horizon=h,
        filled=train.filled,
        dropped=train.dropped,
        info={**train.info, "origins": 1, "test": test.source, "test_values": h},
    )


def _test_length(train: SeriesSet, test: SeriesSet, horizon: int | None) -> int:
    """The horizon a test file gives: every test series holds exactly that many values."""
    where = test.source
    if horizon is not None:
        for name, values in zip(test.names, test.values, strict=True):
            if len(values) != horizon:
                raise ValueError(
                    f"{where}: series {name!r} has {len(values)} test value(s); expected "
                    f"--horizon {horizon}, a test series holding the next horizon values"
                )
        return horizon
    first, n = test.names[0], len(test.values[0])
    for name, values in zip(test.names, test.values, strict=True):
        if len(values) != n:
            raise ValueError(
                f"{where}: the test series differ in length: {first!r} has {n} value(s), "
                f"{name!r} {len(values)}; expected each series' next horizon values"
            )
    if train.horizon is not None and train.horizon != n:
        raise ValueError(
            f"{where}: the test series hold {n} value(s) each, but {train.source} says "
            f"@horizon {train.horizon}; give --horizon {n} to forecast {n} steps"
        )
    return n


def _clip(text: str, n: int = 40) -> str:
    text = text.strip()
    return text if len(text) <= n else text[: n - 3] + "..."


# ---- shipped series -------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """A series set that installed packages ship, and how it is forecast by default."""

    name: str
    summary: str
    load: Callable[[], SeriesSet]
    seasonality: int
    horizon: int
    origins: int  # forecast origins per series for validation and test (rolling)


def _aeon_file(*parts: str) -> Path:
    try:
        import aeon
    except ImportError:
        raise ValueError(
            "the shipped forecasting data comes with aeon: pip install 'rnnkit[timeseries]' "
            "(or give your own file with --data)"
        ) from None
    return Path(aeon.__file__).parent.joinpath("datasets", "data", *parts)


def _statsmodels_file(*parts: str) -> Path:
    try:
        import statsmodels
    except ImportError:
        raise ValueError(
            "this shipped series comes with statsmodels: pip install 'rnnkit[timeseries]' "
            "(or give your own file with --data)"
        ) from None
    return Path(statsmodels.__file__).parent.joinpath("datasets", *parts)


def _csv(locate: Callable[..., Path], *parts: str, name: str, frequency: str) -> SeriesSet:
    data = read_wide_csv(locate(*parts))
    data.names = [name] if len(data) == 1 else data.names
    data.frequency = frequency  # the set's own, whatever its time column says
    data.info.pop("frequency_note", None)
    return data


def _elnino() -> SeriesSet:
    """statsmodels' El Niño sea-surface temperatures: a row per year, a column per month,
    read as one monthly series."""
    rows = read_wide_csv(_statsmodels_file("elnino", "elnino.csv"))
    values = [v for year in zip(*rows.values, strict=True) for v in year]
    return SeriesSet(["elnino"], [values], rows.source, frequency="monthly")


def _m1_yearly() -> SeriesSet:
    return read_tsf(_aeon_file("m1_yearly_dataset", "m1_yearly_dataset.tsf"))


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset(
            "m1-yearly",
            "M1 competition, 181 yearly series of 15-58 years (aeon's m1_yearly_dataset.tsf)",
            _m1_yearly, 1, 6, 1,
        ),
        Dataset(
            "airline",
            "airline passengers, monthly 1949-1960, 144 values (aeon's Airline.csv)",
            lambda: _csv(_aeon_file, "Airline", "Airline.csv", name="airline",
                         frequency="monthly"),
            12, 12, 12,
        ),
        Dataset(
            "lynx",
            "Canadian lynx trappings, yearly 1821-1934, 114 values (aeon's Lynx.csv)",
            lambda: _csv(_aeon_file, "Lynx", "Lynx.csv", name="lynx", frequency="yearly"),
            1, 10, 10,
        ),
        Dataset(
            "shampoo",
            "shampoo sales, monthly over 3 years, 36 values (aeon's ShampooSales.csv)",
            lambda: _csv(_aeon_file, "ShampooSales", "ShampooSales.csv", name="shampoo",
                         frequency="monthly"),
            12, 6, 3,
        ),
        Dataset(
            "uschange",
            "US consumption, income, production, savings, unemployment: 5 quarterly series "
            "of percentage changes, 187 values (aeon's Uschange.csv)",
            lambda: _csv(_aeon_file, "Uschange", "Uschange.csv", name="",
                         frequency="quarterly"),
            4, 8, 8,
        ),
        Dataset(
            "sunspots",
            "yearly sunspot numbers 1700-2008, 309 values (statsmodels' sunspots)",
            lambda: _csv(_statsmodels_file, "sunspots", "sunspots.csv", name="sunspots",
                         frequency="yearly"),
            1, 11, 11,
        ),
        Dataset(
            "co2",
            "Mauna Loa CO2, weekly 1958-2001, 2284 values, 59 missing (statsmodels' co2)",
            lambda: _csv(_statsmodels_file, "co2", "co2.csv", name="co2", frequency="weekly"),
            52, 52, 26,
        ),
        Dataset(
            "elnino",
            "El Nino sea-surface temperature, monthly 1950-2010, 732 values (statsmodels' "
            "elnino)",
            _elnino, 12, 12, 12,
        ),
        Dataset(
            "nile",
            "Nile river flow at Aswan, yearly 1871-1970, 100 values (statsmodels' nile)",
            lambda: _csv(_statsmodels_file, "nile", "nile.csv", name="nile", frequency="yearly"),
            1, 10, 10,
        ),
    )
}  # fmt: skip


def load_dataset(name: str) -> SeriesSet:
    """A shipped series set by name (:data:`DATASETS`), read from installed files."""
    if not isinstance(name, str) or name not in DATASETS:  # a list is unhashable
        raise ValueError(f"--dataset must be one of {', '.join(DATASETS)}; got {name!r}")
    d = DATASETS[name]
    data = d.load()
    data.source = f"dataset {name}"
    data.seasonality = d.seasonality
    data.horizon = d.horizon
    data.info.update(origins=d.origins, summary=d.summary)
    return data


__all__ = [
    "DATASETS",
    "FORMATS",
    "SEASONALITY",
    "Dataset",
    "SeriesSet",
    "fill_missing",
    "join_test",
    "load_dataset",
    "read_long_csv",
    "read_series",
    "read_tsf",
    "read_wide_csv",
]
