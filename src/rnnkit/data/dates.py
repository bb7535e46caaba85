"""A CSV's frequency from its dates (:mod:`rnnkit.data.series` applies it).

Kept apart from the readers: it reads no file, only the time cells they hand over, and
its rules - which texts are dates, which steps are which frequency, when gaps still
count as one - are the whole of it. The frequencies are
:data:`rnnkit.data.series.SEASONALITY`'s names, as a Monash ``.tsf`` file's ``@frequency``
gives them.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from datetime import datetime
from itertools import pairwise
from typing import Any

from rnnkit.data.ts_format import parse_number

# A step between two dates, as a frequency of SEASONALITY: in calendar months (dates on
# the same day of the month, year-months, quarters, years), else in seconds.
_MONTH_STEPS = {1: "monthly", 3: "quarterly", 12: "yearly"}
_SECOND_STEPS = {
    4: "4_seconds",
    60: "minutely",
    600: "10_minutes",
    1800: "half_hourly",
    3600: "hourly",
    86_400: "daily",
    604_800: "weekly",
}
_UNITS = (("week", 604_800), ("day", 86_400), ("hour", 3600), ("minute", 60), ("second", 1))
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2})[:-](\d{2})(?:[:-](\d{2}))?)?")
_YEAR_MONTH = re.compile(r"(\d{4})-(\d{2})")
_QUARTER = re.compile(r"(\d{4})[- ]?[Qq]([1-4])")
_EPOCH = datetime(1970, 1, 1)


def stamp_of(text: str, years: bool) -> tuple[str, Any] | None:
    """(kind, value) of a time cell read as a date, None when it is none: a date or a
    date and time (``datetime``), a year-month, a quarter (month numbers, from year 0),
    or - with ``years`` - a whole number 1000-2999, a year."""
    s = text.strip()
    try:
        if m := _DATE.fullmatch(s):
            y, mo, d, h, mi, sec = (int(g) for g in m.groups(default="0"))
            return "date", datetime(y, mo, d, h, mi, sec)  # ValueError for 02-30, 25:00
        if m := _YEAR_MONTH.fullmatch(s):
            year, month = int(m[1]), int(m[2])
            return ("month", 12 * year + month - 1) if 1 <= month <= 12 else None
        if m := _QUARTER.fullmatch(s):
            return "quarter", 12 * int(m[1]) + 3 * (int(m[2]) - 1)
        if years:
            value = parse_number(s)
            whole = math.isfinite(value) and value == int(value)
            return ("year", 12 * int(value)) if whole and 1000 <= value <= 2999 else None
    except ValueError:
        return None
    return None


def _calendar_months(times: list[datetime]) -> list[int] | None:
    """Month numbers of dates a whole number of calendar months apart: the same time of
    day, and the same day of the month (a later day falling on the last day of a shorter
    month: 01-31, 02-29, 03-31); None for other dates."""
    import calendar

    if len({t.time() for t in times}) > 1:
        return None
    day = max(t.day for t in times)
    if any(t.day != min(day, calendar.monthrange(t.year, t.month)[1]) for t in times):
        return None
    return [12 * t.year + t.month - 1 for t in times]


def _apart(step: int, in_months: bool) -> str:
    if in_months:
        return f"{step} months"
    unit, size = next((u, n) for u, n in _UNITS if step % n == 0)
    return f"{step // size} {unit}{'s' if step != size else ''}"


def dated_cells(cells: list[tuple[int, str]], years: bool) -> list[tuple[int, Any]] | str | None:
    """The (row, value) of every non-empty time cell (row, text) read as a date, all of
    one kind (a date and a date with a time are one kind); None when no cell is a date
    (an empty list when every cell is empty), a few words saying why when some are and
    others are not, or are of another kind."""
    given = [(row, text) for row, text in cells if text.strip()]
    stamps = [(row, stamp_of(text, years)) for row, text in given]
    dated = [(row, s) for row, s in stamps if s is not None]
    if not dated:
        return None if given else []
    if len(dated) < len(stamps) or len({s[0] for _, s in dated}) > 1:
        return "the time column mixes formats"
    return dated


def spacing(dated: list[tuple[int, Any]]) -> tuple[str | None, int, str | None]:
    """(frequency, dates absent, why none) of one series' dates, each (row, (kind,
    value)) as :func:`dated_cells` gives them, in increasing order: the most common step
    between neighbouring rows is the base (the smallest if several are), which must be at
    least half of the steps, and every other step a whole multiple of it (the multiples
    past one counted as absent dates). Fewer than two dates say nothing (None, 0, None)."""
    if len(dated) < 2:
        return None, 0, None
    rows = [row for row, _ in dated]
    in_months, table = True, _MONTH_STEPS
    if dated[0][1][0] == "date":
        times = [s[1] for _, s in dated]
        months = _calendar_months(times)
        if months is None:
            values = [int((t - _EPOCH).total_seconds()) for t in times]
            in_months, table = False, _SECOND_STEPS
        else:
            values = months
    else:
        values = [s[1] for _, s in dated]
    steps = [(b - a, rb - ra) for (ra, a), (rb, b) in pairwise(zip(rows, values, strict=True))]
    if any(step <= 0 for step, _ in steps):
        return None, 0, "dates not in increasing order"
    adjacent = Counter(step for step, apart in steps if apart == 1) or Counter(
        step for step, _ in steps
    )
    base = min(adjacent, key=lambda step: (-adjacent[step], step))
    if 2 * adjacent[base] < adjacent.total():  # no step the usual one: 1, 3, 1, 5 days
        return None, 0, "dates irregularly spaced"
    absent = 0
    for step, apart in steps:
        if step % base or step // base < apart:
            return None, 0, "dates irregularly spaced"
        absent += step // base - apart
    if base not in table:
        return None, 0, f"dates {_apart(base, in_months)} apart"
    return table[base], absent, None
