"""A CSV's frequency from its dates (:mod:`rnnkit.data.series` applies it).

Kept apart from the readers: it reads no file, only the time cells they hand over, and
its rules - which texts are dates, which steps are which frequency, when gaps still
count as one - are the whole of it. The frequencies are
:data:`rnnkit.data.series.SEASONALITY`'s names, as a Monash ``.tsf`` file's ``@frequency``
gives them.
"""

from __future__ import annotations

import calendar
import math
import re
from collections import Counter
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from typing import Any

from rnnkit.data.ts_format import parse_number

# A step between two dates, as a frequency of SEASONALITY: in calendar months (dates on
# the same day of the month, or on a month's first or last working days; year-months,
# quarters, years), else in seconds.
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
_DATE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2})[:-](\d{2})(?:[:-](\d{2})(?:\.(\d{1,6}))?)?)?"
)
# A time's offset from UTC: Z, +01:00, -0500 (pandas writes +00:00 for an aware index).
# Only after a time of day; "-05" alone is not one, for "13-00-05" is a time.
_ZONED = re.compile(r"(.*\d{2}[:-]\d{2}(?:[:-]\d{2}(?:\.\d{1,6})?)?) ?(Z|[+-]\d{2}:?\d{2})")
_YEAR_MONTH = re.compile(r"(\d{4})-(\d{2})")
_QUARTER = re.compile(r"(\d{4})[- ]?[Qq]([1-4])")
_ISO_WEEK = re.compile(r"(\d{4})-?W(\d{2})")  # its Monday
_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)
_SECOND = 1_000_000  # steps between dates are counted in microseconds
# A step of whole days may be an hour longer or shorter: a daily series stamped at local
# midnight in UTC (or in local time, at 01:00 one season and 00:00 the other).
_DST = 3600 * _SECOND
# A month's first and last working days: the 1st to the 4th (a weekend, then a holiday),
# the last day to 3 days before it.
_FIRST_DAYS, _LAST_DAYS = 4, 3


def stamp_of(text: str, years: bool) -> tuple[str, Any] | None:
    """(kind, value) of a time cell read as a date, None when it is none: a date or a
    date and time (``datetime``; an ISO week, ``2020-W05``, is its Monday), a date and
    time with its offset from UTC ("zoned": an aware ``datetime``), a year-month,
    a quarter (month numbers, from year 0), or - with ``years`` - a whole number
    1000-2999, a year."""
    s = text.strip()
    if not s[:4].isdigit():  # every form starts with its year (a count: 1, 2, 3)
        return None
    try:
        if (z := _ZONED.fullmatch(s)) and (m := _DATE.fullmatch(z[1])):
            return "zoned", _date(m).replace(tzinfo=_zone(z[2]))  # ValueError: +25:00
        if m := _DATE.fullmatch(s):
            return "date", _date(m)
        if m := _YEAR_MONTH.fullmatch(s):
            year, month = int(m[1]), int(m[2])
            return ("month", 12 * year + month - 1) if 1 <= month <= 12 else None
        if m := _QUARTER.fullmatch(s):
            return "quarter", 12 * int(m[1]) + 3 * (int(m[2]) - 1)
        if m := _ISO_WEEK.fullmatch(s):
            return "date", datetime.fromisocalendar(int(m[1]), int(m[2]), 1)  # no week 54
        if years:
            value = parse_number(s)
            whole = math.isfinite(value) and value == int(value)
            return ("year", 12 * int(value)) if whole and 1000 <= value <= 2999 else None
    except ValueError:
        return None
    return None


def _date(m: re.Match[str]) -> datetime:
    """The date and time a :data:`_DATE` match reads; ValueError for 02-30, 25:00."""
    y, mo, d, h, mi, sec, part = m.groups()  # part: of a second (.5, .000)
    return datetime(
        int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(sec or 0),
        int(part.ljust(6, "0")) if part else 0,
    )  # fmt: skip


def _zone(text: str) -> timezone:
    """UTC's offset a :data:`_ZONED` suffix names; ValueError past 24 hours or 59 minutes."""
    if text == "Z":
        return timezone.utc
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:])
    if minutes > 59:
        raise ValueError(text)
    offset = timedelta(hours=hours, minutes=minutes)
    return timezone(-offset if text[0] == "-" else offset)


def _calendar_months(times: list[datetime]) -> list[int] | None:
    """Month numbers of dates a whole number of calendar months apart: the same time of
    day, and the same day of the month (a later day falling on the last day of a shorter
    month: 01-31, 02-29, 03-31), or one date a month on its first or last working days
    (a business month's start, 1st-4th, or end, its last 4 days); None for other dates."""
    if len({t.time() for t in times}) > 1:
        return None
    months = [12 * t.year + t.month - 1 for t in times]
    ends = [calendar.monthrange(t.year, t.month)[1] for t in times]
    day = max(t.day for t in times)
    if all(t.day == min(day, end) for t, end in zip(times, ends, strict=True)):
        return months
    first = all(t.day <= _FIRST_DAYS for t in times)
    last = all(end - t.day <= _LAST_DAYS for t, end in zip(times, ends, strict=True))
    if (first or last) and all(a < b for a, b in pairwise(months)):  # one date a month
        return months
    return None


def _utc(t: datetime) -> datetime:
    """A zoned time as UTC's naive time; a time with no zone as it is."""
    offset = t.utcoffset()
    return t if offset is None else t.replace(tzinfo=None) - offset


def _apart(step: int, in_months: bool) -> str:
    if in_months:
        return f"{step} months"
    if step % _SECOND:
        return f"{step / _SECOND:g} seconds"
    step //= _SECOND
    unit, size = next((u, n) for u, n in _UNITS if step % n == 0)
    return f"{step // size} {unit}{'s' if step != size else ''}"


def _whole_days(step: int, base: int) -> int:
    """A step between dates of a base of whole days, an hour's change of clocks (DST)
    taken out of it: 23 or 25 hours are a day."""
    if base % (86_400 * _SECOND) or step < base - _DST:
        return step
    days, off = divmod(step + _DST, base)
    return days * base if off <= 2 * _DST else step


def dated_cells(
    cells: list[tuple[int, str]], years: bool, known: dict[str, Any] | None = None
) -> list[tuple[int, Any]] | str | None:
    """The (row, value) of every non-empty time cell (row, text) read as a date, all of
    one kind (a date and a date with a time are one kind); None when no cell is a date
    (an empty list when every cell is empty), a few words saying why when some are and
    others are not, or are of another kind. ``known``: :func:`stamp_of` of texts already
    read (stripped), with the same ``years``; the texts read here are added to it."""
    read = {} if known is None else known
    stamps = []
    for row, text in cells:
        key = text.strip()
        if key:
            if key not in read:
                read[key] = stamp_of(key, years)
            stamps.append((row, read[key]))
    dated = [(row, s) for row, s in stamps if s is not None]
    if not dated:
        return None if stamps else []
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
    if dated[0][1][0] in ("date", "zoned"):
        # Calendar months read the clocks' own dates and times; other steps are counted
        # between instants, a zoned time's in UTC (an hour at a clock change is an hour).
        times = [s[1] for _, s in dated]
        months = _calendar_months(times)
        if months is None:
            values = [(_utc(t) - _EPOCH) // _MICROSECOND for t in times]
            in_months, table = False, {n * _SECOND: f for n, f in _SECOND_STEPS.items()}
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
    if not in_months:
        steps = [(_whole_days(step, base), apart) for step, apart in steps]
        adjacent = Counter(_whole_days(step, base) for step in adjacent.elements())
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
