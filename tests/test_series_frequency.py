"""A CSV's dates give its series a frequency, and so a seasonality, as a .tsf file's
``@frequency`` does (rnnkit.data.series: _set_frequency, the wide, long and rows readers).

Every file is tiny and written by the tests; the training runs are two steps of a small
model.
"""

from __future__ import annotations

import calendar
import io
import json
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from rnnkit.cli import main
from rnnkit.data.series import SEASONALITY, read_series, read_tsf
from rnnkit.train import TrainConfig, train


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def wide(tmp_path: Path, times: list[str], column: str = "date") -> Path:
    rows = "".join(f"{t},{k},{2 * k}\n" for k, t in enumerate(times))
    return write(tmp_path, "wide.csv", f"{column},a,b\n{rows}")


def long(tmp_path: Path, times: list[str], column: str = "date") -> Path:
    rows = "".join(f"{s},{t},{k}\n" for s in ("a", "b") for k, t in enumerate(times))
    return write(tmp_path, "long.csv", f"id,{column},value\n{rows}")


def days(first: date, step: timedelta, n: int = 8) -> list[str]:
    return [str(first + k * step) for k in range(n)]


def clock(
    step: timedelta, n: int = 8, sep: str = " ", seconds: bool = False, zone: str = ""
) -> list[str]:
    layout = f"%Y-%m-%d{sep}%H:%M" + (":%S" if seconds else "") + zone
    return [(datetime(2020, 1, 1) + k * step).strftime(layout) for k in range(n)]


MONTH_ENDS = [f"2020-{m:02d}-{calendar.monthrange(2020, m)[1]}" for m in range(1, 13)]
# (time column's name, its cells, the frequency they give)
FREQUENCIES = [
    ("date", days(date(2020, 1, 1), timedelta(days=1)), "daily"),
    ("date", days(date(2020, 1, 6), timedelta(days=7)), "weekly"),
    ("month", [f"2020-{m:02d}" for m in range(1, 13)], "monthly"),
    ("date", [f"2020-{m:02d}-01" for m in range(1, 13)], "monthly"),
    ("date", MONTH_ENDS, "monthly"),  # 28-31 days apart: calendar months
    ("date", [f"2020-{m:02d}-30" if m != 2 else "2020-02-29" for m in range(1, 13)], "monthly"),
    ("quarter", ["2019Q3", "2019Q4", "2020Q1", "2020Q2"], "quarterly"),
    ("quarter", ["2019-Q3", "2019-Q4", "2020-Q1", "2020-Q2"], "quarterly"),
    ("quarter", ["2019 Q3", "2019 Q4", "2020 q1", "2020 q2"], "quarterly"),
    ("date", MONTH_ENDS[2::3], "quarterly"),
    ("year", ["1990", "1991", "1992", "1993"], "yearly"),
    ("date", ["1990-12-31", "1991-12-31", "1992-12-31"], "yearly"),
    ("ds", clock(timedelta(hours=1)), "hourly"),
    ("ds", clock(timedelta(hours=1), sep="T", seconds=True), "hourly"),
    ("ds", clock(timedelta(minutes=30)), "half_hourly"),
    ("ds", clock(timedelta(minutes=10)), "10_minutes"),
    ("ds", clock(timedelta(minutes=1)), "minutely"),
    # with their offset from UTC: Z, pandas' +00:00, a clock change (Berlin, 2020)
    ("ds", clock(timedelta(hours=1), sep="T", seconds=True, zone="Z"), "hourly"),
    ("ds", clock(timedelta(days=1), seconds=True, zone="+00:00"), "daily"),
    ("ds", ["2020-03-29T00:00+01:00", "2020-03-29T01:00+01:00", "2020-03-29T03:00+02:00",
            "2020-03-29T04:00+02:00", "2020-03-29T05:00+0200"], "hourly"),
    ("ds", ["2020-10-25 01:00+02:00", "2020-10-25 02:00+02:00", "2020-10-25 02:00+01:00",
            "2020-10-25 03:00+01:00", "2020-10-25 04:00+01:00"], "hourly"),
    ("date", ["2020-03-27T00:00+01:00", "2020-03-28T00:00+01:00", "2020-03-29T00:00+01:00",
              "2020-03-30T00:00+02:00", "2020-03-31T00:00+02:00"], "daily"),
    ("date", [f"2020-{m:02d}-01T00:00:00{'+02:00' if 4 <= m <= 10 else '+01:00'}"
              for m in range(1, 13)], "monthly"),
    ("date", [f"2020-{m:02d}-01T09:30-05:00" for m in range(1, 13)], "monthly"),
]  # fmt: skip


@pytest.mark.parametrize("layout", [wide, long])
@pytest.mark.parametrize(("column", "times", "frequency"), FREQUENCIES)
def test_the_dates_give_the_frequency_and_seasonality(
    tmp_path: Path, layout, column: str, times: list[str], frequency: str
) -> None:
    data = read_series(layout(tmp_path, times, column))
    assert (data.frequency, data.seasonality) == (frequency, SEASONALITY[frequency])
    assert data.info["frequency_note"] == "from the dates"
    assert data.describe().endswith(f"of length {len(times)}, {frequency} (from the dates)")


def test_years_counted_one_a_row_under_any_name(tmp_path: Path) -> None:
    """Plain years are dates in a column named year, or counting up one a row (which a
    wide CSV skips as its time column under any name); a long CSV's time column is the
    one named like a time, so there ``Jahr`` is no time column at all."""
    years = ["1990", "1991", "1992", "1993"]
    assert read_series(wide(tmp_path, years, "Jahr")).frequency == "yearly"
    assert read_series(long(tmp_path, years, "year")).frequency == "yearly"
    assert read_series(long(tmp_path, [*years[:2], "1994"], "year")).frequency == "yearly"
    assert read_series(long(tmp_path, years, "Jahr")).frequency is None
    data = read_series(wide(tmp_path, [*years[:2], "1994"], "date"))  # no count, no year
    assert (data.frequency, data.info.get("frequency_note")) == (None, None)


@pytest.mark.parametrize("layout", [wide, long])
def test_a_missing_month_still_reads_monthly_and_is_counted(tmp_path: Path, layout) -> None:
    times = ["2020-01", "2020-02", "2020-04", "2020-05", "2020-08"]  # March, June, July
    data = read_series(layout(tmp_path, times))
    assert (data.frequency, data.seasonality) == ("monthly", 12)
    assert data.values[0] == [0, 1, 2, 3, 4]  # the rows are consecutive: nothing inserted
    note = "monthly (from the dates; 3 missing date(s), not filled in)"
    if layout is long:
        note = "monthly (from the dates; 6 missing date(s), not filled in)"  # both series
    assert data.describe() == f"{tmp_path / f'{layout.__name__}.csv'}: 2 series of length 5, {note}"


def test_weekdays_read_as_daily_with_the_weekends_missing(tmp_path: Path) -> None:
    times = ["2020-01-02", "2020-01-03", "2020-01-06", "2020-01-07", "2020-01-08"]
    data = read_series(wide(tmp_path, times))
    assert (data.frequency, data.seasonality) == ("daily", 7)
    assert data.info["frequency_note"] == "from the dates; 2 missing date(s), not filled in"


def test_a_row_of_empty_cells_is_a_step_not_a_missing_date(tmp_path: Path) -> None:
    text = "date,a\n2020-01,1\n,\n2020-03,3\n2020-04,4\n"
    data = read_series(write(tmp_path, "s.csv", text))
    assert data.values == [[1, 2, 3, 4]]
    assert (data.frequency, data.info["frequency_note"]) == ("monthly", "from the dates")


@pytest.mark.parametrize(
    ("times", "why"),
    [
        (["2020-01-01", "2020-01-03", "2020-01-04", "2020-01-09"], "dates irregularly spaced"),
        (["2020-01-01", "2020-01-02", "2020-01-04", "2020-01-05", "2020-01-06T12:00"],
         "dates irregularly spaced"),
        ([*clock(timedelta(hours=1), n=4), "2020-01-01 03:30"], "dates irregularly spaced"),
        (["2020-01", "2020-03", "2020-05"], "dates 2 months apart"),
        (clock(timedelta(minutes=15)), "dates 15 minutes apart"),
        (days(date(2020, 1, 1), timedelta(days=2)), "dates 2 days apart"),
        (["2020-01", "2020-02-01", "2020-03"], "the time column mixes formats"),
        (["2020-01", "soon", "2020-03"], "the time column mixes formats"),
        (["2020-01", "2020-13", "2020-03"], "the time column mixes formats"),
        (["2020-01-01 00:00+01:00", "2020-01-01 01:00", "2020-01-01 02:00+01:00"],
         "the time column mixes formats"),  # a time with no zone among zoned ones
        (["2020-01-01 00:00Z", "2020-01-01 01:00+25:00", "2020-01-01 02:00Z"],
         "the time column mixes formats"),  # no such offset: not a date
        (["2020-01-01 00:00+01:00", "2020-01-01 01:00+01:00", "2020-01-01 03:00+01:00",
          "2020-01-01 04:00+00:00"], "dates irregularly spaced"),  # 1, 2, 2 hours apart
    ],
)  # fmt: skip
def test_irregular_or_mixed_dates_give_no_frequency_and_say_so(
    tmp_path: Path, times: list[str], why: str
) -> None:
    path = wide(tmp_path, times)
    data = read_series(path)
    assert (data.frequency, data.seasonality) == (None, None)
    assert data.describe() == f"{path}: 2 series of length {len(times)}, no frequency: {why}"


def test_a_wide_csv_newest_first_is_refused(tmp_path: Path) -> None:
    # Read in file order, its values would run backwards and the forecast would continue
    # the oldest value.
    path = wide(tmp_path, ["2020-03", "2020-02", "2020-01"])
    with pytest.raises(ValueError) as err:
        read_series(path)
    assert str(err.value) == (
        f"{path}, line 3: time '2020-02' of column 'date' comes before line 2's; expected "
        "the rows of a wide CSV in time order, oldest first"
    )


def test_zoned_times_are_ordered_as_instants(tmp_path: Path) -> None:
    # 02:30 at UTC+1 is 01:30 UTC: before the row above, whatever its clock reads.
    path = wide(tmp_path, ["2020-01-01T00:00Z", "2020-01-01T02:00+00:00", "2020-01-01T02:30+01:00"])
    with pytest.raises(ValueError) as err:
        read_series(path)
    assert str(err.value) == (
        f"{path}, line 4: time '2020-01-01T02:30+01:00' of column 'date' comes before line "
        "3's; expected the rows of a wide CSV in time order, oldest first"
    )


def test_dates_of_mixed_layouts_out_of_order_give_no_frequency(tmp_path: Path) -> None:
    # A year-month after a date is not compared as text; the spacing says no frequency.
    data = read_series(wide(tmp_path, ["2020-03-01", "2020-02", "2020-04-01"]))
    assert data.frequency is None
    assert data.info["frequency_note"] == "no frequency: the time column mixes formats"


def test_long_series_must_agree(tmp_path: Path) -> None:
    monthly = "".join(f"a,2020-{m:02d},{m}\n" for m in range(1, 7))
    quarterly = "".join(f"b,2020Q{q},{q}\n" for q in range(1, 5))
    path = write(tmp_path, "l.csv", f"id,date,value\n{monthly}{quarterly}")
    data = read_series(path)
    assert (data.frequency, data.seasonality) == (None, None)
    assert data.describe() == (
        f"{path}: 2 series of length 4-6, no frequency: the series differ: monthly, quarterly"
    )
    irregular = "b,2020-01-01,1\nb,2020-01-05,2\nb,2020-01-06,3\nb,2020-01-20,4\n"
    path = write(tmp_path, "m.csv", f"id,date,value\n{monthly}{irregular}")
    data = read_series(path)
    assert data.info["frequency_note"] == "no frequency: series 'b': dates irregularly spaced"
    # A series of one row says nothing of the spacing; the others agree.
    path = write(tmp_path, "n.csv", f"id,date,value\n{monthly}c,2020-01,5\n")
    assert read_series(path).frequency == "monthly"
    # Dates beside times that are none: no frequency.
    path = write(tmp_path, "o.csv", f"id,date,value\n{monthly}c,1,5\nc,2,6\n")
    assert read_series(path).info["frequency_note"] == "no frequency: the time column mixes formats"


def test_a_one_series_csv(tmp_path: Path) -> None:
    rows = "".join(f"2021-{m:02d}-01,{m}\n" for m in range(1, 13))
    path = write(tmp_path, "one.csv", f"date,sales\n{rows}")
    data = read_series(path)
    assert (data.names, data.frequency, data.seasonality) == (["sales"], "monthly", 12)
    assert data.describe() == f"{path}: 1 series of length 12, monthly (from the dates)"
    # One row: no step, nothing said.
    data = read_series(write(tmp_path, "row.csv", "date,sales\n2021-01-01,5\n"))
    assert (data.frequency, data.seasonality, data.info.get("frequency_note")) == (None,) * 3


@pytest.mark.parametrize(
    ("text", "note"),
    [
        ("t,x\n0,1\n1,2\n2,3\n", None),  # a count, not dates
        ("when,x\n1991 Jul,1\n1991 Aug,2\n1991 Sep,3\n", None),  # not a date format read
        ("date,x\n19580329,1\n19580405,2\n19580412,3\n", None),  # compact dates: a count
        ("x,y\n1,2\n3,4\n", None),  # no time column
        ("year,month,x\n2020,1,5\n2020,2,6\n2020,3,7\n",
         "no frequency: the time spans columns 'year', 'month'"),
        ("date,hour,load\n2020-01-01,0,5\n2020-01-01,1,6\n2020-01-02,0,7\n",
         "no frequency: the time spans columns 'date', 'hour'"),
    ],
)  # fmt: skip
def test_time_columns_without_dates(tmp_path: Path, text: str, note: str | None) -> None:
    data = read_series(write(tmp_path, "s.csv", text))
    assert (data.frequency, data.seasonality, data.info.get("frequency_note")) == (None, None, note)


def test_time_column_option_and_pandas_index(tmp_path: Path) -> None:
    text = "sales,when\n1,2020-01\n2,2020-02\n3,2020-03\n"
    data = read_series(write(tmp_path, "s.csv", text), time_column="when")
    assert (data.names, data.frequency) == (["sales"], "monthly")
    text = ",date,a,b\n0,2020-01,1,2\n1,2020-02,3,4\n2,2020-03,5,6\n"
    assert read_series(write(tmp_path, "p.csv", text)).frequency == "monthly"


def test_a_rows_csv_header_of_times(tmp_path: Path) -> None:
    data = read_series(write(tmp_path, "r.csv", "id,2020-01,2020-02,2020-03\na,1,2,3\nb,4,5,\n"))
    assert (data.info["format"], data.frequency, data.seasonality) == ("rows", "monthly", 12)
    data = read_series(write(tmp_path, "y.csv", "id,2001,2002,2003\na,1,2,3\n"))
    assert data.frequency == "yearly"
    data = read_series(write(tmp_path, "v.csv", "V1,V2,V3\nY1,1,2\nY2,3,4\n"))  # M4's header
    assert (data.frequency, data.info.get("frequency_note")) == (None, None)


def test_the_tsf_path_is_unchanged(tmp_path: Path) -> None:
    """A .tsf file's frequency is its @frequency line's; a start date says nothing."""
    head = "@attribute series_name string\n@attribute start_timestamp date\n"
    rows = "@data\na:2020-01-01 00-00-00:1,2,3,4\nb:2020-01-01 00-00-00:5,6,7\n"
    data = read_tsf(write(tmp_path, "a.tsf", f"{head}@frequency quarterly\n{rows}"))
    assert (data.frequency, data.seasonality) == ("quarterly", 4)
    assert "frequency_note" not in data.info
    assert data.describe() == f"{tmp_path / 'a.tsf'}: 2 series of length 3-4, quarterly"
    data = read_series(write(tmp_path, "b.tsf", f"{head}{rows}"))
    assert (data.frequency, data.seasonality, data.info.get("frequency_note")) == (None,) * 3
    assert data.describe() == f"{tmp_path / 'b.tsf'}: 2 series of length 3-4"


def test_the_shipped_sets_keep_their_own_frequency() -> None:
    pytest.importorskip("aeon")
    from rnnkit.data.series import load_dataset

    airline = load_dataset("airline")  # its CSV's dates are monthly too; the set's own wins
    assert (airline.frequency, airline.seasonality) == ("monthly", 12)
    assert airline.describe() == "dataset airline: 1 series of length 144, monthly"
    uschange = load_dataset("uschange")  # "1970 Q1"
    assert uschange.describe() == "dataset uschange: 5 series of length 187, quarterly"
    assert "frequency_note" not in uschange.info


# ---- the command line ---------------------------------------------------------------------

SMALL = ["--steps", "2", "--eval-every", "2", "--hidden", "8", "--batch-size", "4",
         "--context", "8", "--threads", "1"]  # fmt: skip


def shop(tmp_path: Path) -> Path:
    rows = "".join(
        f"{2018 + t // 12}-{t % 12 + 1:02d}-01,{100 + t + 10 * (t * 7 % 12) + t * 37 % 11}\n"
        for t in range(48)
    )
    return write(tmp_path, "shop.csv", f"date,sales\n{rows}")


def test_cli_prints_the_monthly_seasonality(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = shop(tmp_path), tmp_path / "run"
    assert main(["train", "forecast", "--data", str(data), "--horizon", "6", *SMALL,
                 "--out", str(out)]) == 0  # fmt: skip
    first = capsys.readouterr().out.splitlines()[0]
    assert first == (
        f"forecast: {data}: 1 series of length 48, monthly (from the dates); horizon 6, "
        "seasonality 12, 6 origin(s) per series: 6 test and 6 validation forecasts, 25 "
        "training positions; seasonal naive on validation: MASE 0.952, sMAPE 6.03%, 80% "
        "coverage 100.0%; anchor: drift (MASE of each alone on validation: seasonal-naive "
        "0.952, climatology 0.967, drift 0.415); run folder: "
        f"{out}"
    )
    derived = json.loads((out / "config.json").read_text())["derived"]
    assert (derived["seasonality"], derived["scale_window"]) == (12, 12)


def test_seasonality_option_wins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, out = shop(tmp_path), tmp_path / "run"
    assert main(["train", "forecast", "--data", str(data), "--horizon", "6", "--seasonality",
                 "3", *SMALL, "--out", str(out)]) == 0  # fmt: skip
    first = capsys.readouterr().out.splitlines()[0]
    assert "monthly (from the dates); horizon 6, seasonality 3 (--seasonality), 6 origin" in first
    assert json.loads((out / "config.json").read_text())["derived"]["seasonality"] == 3
    # Given as the dates give it, nothing is added.
    again = tmp_path / "again"
    assert main(["train", "forecast", "--data", str(data), "--horizon", "6", "--seasonality",
                 "12", *SMALL, "--out", str(again)]) == 0  # fmt: skip
    assert "; horizon 6, seasonality 12, 6 origin" in capsys.readouterr().out


def test_a_run_recorded_before_the_dates_were_read_keeps_its_seasonality(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run started when a CSV's dates gave no seasonality recorded 1 (its config.json:
    derived seasonality 1, no --seasonality): resumed, evaluated and forecast from, it
    keeps 1, and its first line says where it came from."""
    data, out = shop(tmp_path), tmp_path / "run"
    quiet = {"log": lambda _: None, "progress": io.StringIO()}
    options = {"data": str(data), "horizon": 6, "seasonality": 1, "hidden_size": 8,
               "batch_size": 4, "context": 8}  # fmt: skip
    train("forecast", options, TrainConfig(steps=2, eval_every=2, threads=1), out=out, **quiet)
    config = json.loads((out / "config.json").read_text())
    config["options"]["seasonality"] = None  # as such a run recorded it
    (out / "config.json").write_text(json.dumps(config))
    assert main(["train", "--resume", str(out), "--steps", "4"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "monthly (from the dates); horizon 6, seasonality 1 (as the run recorded it; its " \
        "data now gives 12), 6 origin(s)" in first  # fmt: skip
    assert json.loads((out / "config.json").read_text())["derived"]["seasonality"] == 1
    assert main(["eval", str(out), "--out", str(tmp_path / "figs")]) == 0
    assert "seasonal naive: MASE" in (printed := capsys.readouterr().out)
    assert "(m = 1)" in printed and "(m = 12)" not in printed
