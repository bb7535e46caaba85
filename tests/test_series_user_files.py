"""A new user's own forecasting files, as spreadsheets and pandas write them: what is
read from them, and the one-line refusals of files that would be misread."""

from __future__ import annotations

from pathlib import Path

import pytest

from _refusals import raises_exactly, refused
from rnnkit.cli import main
from rnnkit.data.series import read_series

LONG_HINT = (
    "expected one row per time step in a wide CSV, and a long CSV's id column named id, "
    "unique_id, series, series_id, series_name, item_id, name, key"
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def test_a_spreadsheets_trailing_empty_columns_are_not_series(tmp_path: Path) -> None:
    # Excel saves the separators of formatted but empty columns: 'a,b,,' on every row.
    path = write(
        tmp_path,
        "sales export.csv",
        "\ufeffdate,a,b,,\r\n2020-01-01,1,2,,\r\n2020-01-02,3,,,\r\n2020-01-03,5,6,,\r\n",
    )
    data = read_series(path)
    assert data.names == ["a", "b"]
    assert data.values == [[1.0, 3.0, 5.0], [2.0, 4.0, 6.0]]
    assert (data.filled, data.dropped) == (1, 0)


def test_an_empty_spacer_column_between_series_is_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "date,a,,b\n2020-01,1,,2\n2020-02,3,,4\n")
    data = read_series(path)
    assert (data.names, data.values) == (["a", "b"], [[1.0, 3.0], [2.0, 4.0]])


def test_an_unnamed_column_with_values_is_still_a_series(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "date,a,\n2020-01,1,7\n2020-02,3,8\n")
    data = read_series(path)
    assert (data.names, data.values) == (["a", "series2"], [[1.0, 3.0], [7.0, 8.0]])


def test_a_named_column_without_values_is_still_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "date,a,b\n2020-01,1,\n2020-02,3,\n")
    raises_exactly(ValueError, f"{path}: series 'b' has no values (all missing)", read_series, path)


def test_a_long_csv_whose_id_column_has_another_name_is_refused(tmp_path: Path) -> None:
    # Read as wide it made two series, 'store' (the ids 1, 2, 1, 2) and 'sales' (both
    # stores' values interleaved), and trained on them.
    text = "date,store,sales\n2020-01-01,1,5\n2020-01-01,2,7\n2020-01-02,1,6\n2020-01-02,2,8\n"
    path = write(tmp_path, "stores.csv", text)
    message = f"{path}, line 3: time '2020-01-01' of column 'date' comes again (first on line 2); "
    raises_exactly(ValueError, message + LONG_HINT, read_series, path)


def test_the_same_file_with_time_column_named_is_refused(tmp_path: Path) -> None:
    text = "store,date,sales\n1,2020-01,5\n1,2020-02,6\n2,2020-01,7\n2,2020-02,8\n"
    path = write(tmp_path, "stores.csv", text)
    message = f"{path}, line 4: time '2020-01' of column 'date' comes again (first on line 2); "
    raises_exactly(ValueError, message + LONG_HINT, read_series, path, time_column="date")


def test_an_id_column_named_so_reads_the_same_rows_as_long(tmp_path: Path) -> None:
    text = "date,id,sales\n2020-01-01,1,5\n2020-01-01,2,7\n2020-01-02,1,6\n2020-01-02,2,8\n"
    data = read_series(write(tmp_path, "stores.csv", text))
    assert (data.names, data.values) == (["1", "2"], [[5.0, 6.0], [7.0, 8.0]])


@pytest.mark.parametrize("times", [["Jan", "Feb", "Jan", "Feb"], ["1", "2", "1", "2"]])
def test_repeated_times_that_name_no_year_are_read_as_rows(
    tmp_path: Path, times: list[str]
) -> None:
    # A month column without its year repeats every year: only a dated time is checked.
    rows = "".join(f"{t},{k}\n" for k, t in enumerate(times))
    data = read_series(write(tmp_path, "m.csv", "month,sales\n" + rows))
    assert data.values == [[0.0, 1.0, 2.0, 3.0]]


def test_train_forecast_refuses_such_a_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = "".join(f"2020-01-{d:02d},{s},{d + s}\n" for d in range(1, 30) for s in (1, 2))
    path = write(tmp_path, "stores.csv", "date,store,sales\n" + rows)
    out = tmp_path / "run"
    line = refused(
        capsys,
        ["train", "forecast", "--data", str(path), "--horizon", "2", "--out", str(out)],
        tmp_path,
    )
    message = f"{path}, line 3: time '2020-01-01' of column 'date' comes again (first on line 2); "
    assert line == "rnnkit train: error: " + message + LONG_HINT
    assert not out.exists()


@pytest.mark.parametrize(
    ("header", "rows", "names"),
    [
        ("year,month,sales", ["2020,1,5", "2020,2,6", "2021,1,7"], ["sales"]),
        ("year,quarter,a,b", ["2020,1,5,1", "2020,2,6,2", "2020,3,7,3"], ["a", "b"]),
        ("date,hour,load", ["2020-01-01,0,5", "2020-01-01,1,6", "2020-01-02,0,7"], ["load"]),
        (",year,month,sales", ["0,2020,1,5", "1,2020,2,6", "2,2020,3,7"], ["sales"]),
    ],
)
def test_a_calendar_over_several_columns_is_time_not_series(
    tmp_path: Path, header: str, rows: list[str], names: list[str]
) -> None:
    # Before, only the first was skipped: 'month' (1, 2, 1) was read as a series.
    data = read_series(write(tmp_path, "c.csv", "\n".join([header, *rows]) + "\n"))
    assert data.names == names
    assert data.values[0] == [5.0, 6.0, 7.0]


def test_a_time_named_column_is_left_as_a_series_when_no_other_is_left(tmp_path: Path) -> None:
    data = read_series(write(tmp_path, "c.csv", "year,month\n2020,5\n2021,6\n"))
    assert (data.names, data.values) == (["month"], [[5.0, 6.0]])


def test_a_time_named_column_after_a_series_is_a_series(tmp_path: Path) -> None:
    data = read_series(write(tmp_path, "c.csv", "date,sales,week\n2020-01,5,1\n2020-02,6,2\n"))
    assert (data.names, data.values) == (["sales", "week"], [[5.0, 6.0], [1.0, 2.0]])


def test_a_date_and_hour_that_come_again_together_are_refused(tmp_path: Path) -> None:
    text = "date,hour,load\n2020-01-01,0,5\n2020-01-01,1,6\n2020-01-01,0,7\n"
    path = write(tmp_path, "h.csv", text)
    message = (
        f"{path}, line 4: time (2020-01-01, 0) of columns 'date', 'hour' comes again (first "
        "on line 2); "
    )
    raises_exactly(ValueError, message + LONG_HINT, read_series, path)


def test_the_start_line_names_the_series_too_short_for_a_test_forecast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A short series ends early in a wide CSV; it trains, but has no test forecast, and
    # the test's scores left it out without saying so.
    rows = [f"{t},{(t * 7) % 11},{t % 5 if t < 4 else ''}" for t in range(40)]
    path = write(tmp_path, "two.csv", "t,long,short\n" + "\n".join(rows) + "\n")
    argv = ["train", "forecast", "--data", str(path), "--horizon", "3", "--steps", "2",
            "--eval-every", "2", "--hidden", "4", "--batch-size", "4", "--context", "8",
            "--threads", "1", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 0
    said = capsys.readouterr()
    assert (
        " (1 series too short for a test forecast, which needs 5 values, left out of the "
        "test: 'short'); seasonal naive on validation: " in said.out + said.err
    )


@pytest.mark.parametrize("name", ["Jahr", "año", "anno", "fy"])
def test_a_first_column_counting_years_is_time_under_any_name(tmp_path: Path, name: str) -> None:
    data = read_series(write(tmp_path, "s.csv", f"{name},Umsatz\n2001,5\n2002,6\n2003,7.5\n"))
    assert data.names == ["Umsatz"] and data.values == [[5, 6, 7.5]]


@pytest.mark.parametrize(
    "first",
    [
        ["1", "2", "3"],  # counts rows, not years: toy data, a series
        ["2001", "2003", "2004"],  # a year skipped
        ["2001", "2002"],  # two rows
        ["2001", "", "2003"],  # a gap
        ["2001.5", "2002.5", "2003.5"],
    ],
)
def test_other_numeric_first_columns_stay_series(tmp_path: Path, first: list[str]) -> None:
    rows = "".join(f"{t},{v}\n" for t, v in zip(first, ["5", "6", "7"], strict=False))
    data = read_series(write(tmp_path, "s.csv", "a,b\n" + rows))
    assert data.names == ["a", "b"]
