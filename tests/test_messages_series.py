"""Each error message of rnnkit.data.series (read_series and its .tsf, wide and long CSV
readers) reached through read_series, asserted word for word."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from rnnkit.data.series import read_series


def _refused(tmp_path: Path, name: str, text: str | bytes, **kw: str) -> str:
    """read_series' one-line message for a file ``name`` holding ``text``, with the
    file's path replaced by its name."""
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError) as err:
        read_series(path, **kw)
    message = str(err.value)
    assert "\n" not in message
    return message.replace(str(path), name)


# ---- any file -------------------------------------------------------------------------


def test_file_messages(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as err:
        read_series(tmp_path / "a.csv", format="xlsx")
    assert str(err.value) == "format must be one of auto, tsf, wide, long, rows; got 'xlsx'"
    assert _refused(tmp_path, "u.csv", b"x,y\n1,2\n3,\xff\n") == (
        "u.csv, line 3: not UTF-8 text (invalid start byte)"
    )
    assert _refused(tmp_path, "n.csv", ",,\n , \n") == "n.csv: the file has no rows"
    big = "x\n" + "1" * 200_000 + "\n"
    assert _refused(tmp_path, "big.csv", big) == (
        "big.csv, line 2: malformed CSV (field larger than field limit (131072))"
    )


def test_a_folder_is_no_series_file(tmp_path: Path) -> None:
    # By its name (read as .tsf) and without one (its header looked for as a CSV's).
    named = tmp_path / "m4.tsf"
    named.mkdir()
    for folder in (named, tmp_path):
        with pytest.raises(ValueError) as err:
            read_series(folder)
        assert str(err.value) == f"{folder}: is a folder; expected a .tsf or .csv file"


# ---- .tsf -----------------------------------------------------------------------------


def test_tsf_messages(tmp_path: Path) -> None:
    assert _refused(tmp_path, "a.tsf", "@attribute name text\n@data\n") == (
        "a.tsf, line 1: expected '@attribute NAME string|numeric|date'; got '@attribute name text'"
    )
    assert _refused(tmp_path, "b.tsf", "@colour blue\n@data\n") == (
        "b.tsf, line 1: unknown header @colour; expected @relation, @attribute, @frequency, "
        "@horizon, @missing, @equallength or @data"
    )
    assert _refused(tmp_path, "c.tsf", "@attribute n string\n@data\nno-colon\n") == (
        "c.tsf, line 3: expected 1 attribute value(s) and the series, separated by ':' "
        "(2 fields); got 1"
    )
    assert _refused(tmp_path, "d.tsf", "@frequency yearly\n@data\n\n# none\n") == (
        "d.tsf: no series found"
    )
    assert (
        _refused(tmp_path, "e.tsf", "@data\n?,?\n")
        == "e.tsf: series 'T1' has no values (all missing)"
    )
    assert _refused(tmp_path, "f.tsf", "@data\n1,2\n", time_column="t") == (
        "--time-column is for a wide CSV; f.tsf was read as tsf"
    )
    assert _refused(tmp_path, "g.tsf", "@attribute name string\n@data\nshop:1,2,oops,4\n") == (
        "g.tsf, line 3: value 3 of series 'shop' is 'oops'; expected a number or ? for a "
        "missing value"
    )
    assert _refused(tmp_path, "h.tsf", "@frequency yearly\n@horizon 6\n") == (
        "h.tsf: no @data line; not a .tsf file"
    )
    # A numeric or date attribute that is not one; a value left empty, or a '-' ('?' is
    # a .tsf file's missing value).
    head = "@attribute name string\n@attribute n numeric\n@attribute d date\n@data\n"
    assert _refused(tmp_path, "i.tsf", head + "s:x:2001-01-01:1,2\n") == (
        "i.tsf, line 5: attribute n (numeric) is 'x'; expected a number"
    )
    assert _refused(tmp_path, "j.tsf", head + "s:1:2001-01-01 00:00:00:1,2\n") == (
        "j.tsf, line 5: expected 3 attribute value(s) and the series, separated by ':' "
        "(4 fields); got 6"
    )
    assert _refused(tmp_path, "k.tsf", head + "s:1:01/02/2001:1,2\n") == (
        "k.tsf, line 5: attribute d (date) is '01/02/2001'; expected a date "
        "'YYYY-MM-DD HH-MM-SS' (or 'YYYY-MM-DD')"
    )
    for cell in ("", "-", "NA", "null"):
        assert _refused(tmp_path, "l.tsf", head + f"s:1:2001-01-01:1,{cell},3\n") == (
            f"l.tsf, line 5: value 2 of series 's' is {cell!r}; expected a number or ? for a "
            "missing value"
        )


# ---- wide CSV -------------------------------------------------------------------------


def test_wide_csv_messages(tmp_path: Path) -> None:
    assert _refused(tmp_path, "a.csv", "a,b\n") == "a.csv: a header row and no data rows"
    assert _refused(tmp_path, "b.csv", "week,a\n1,2\n", time_column="day") == (
        "b.csv: --time-column 'day' is not a column; the header has 'week', 'a'"
    )
    assert _refused(tmp_path, "c.csv", "t\n1\n2\n", time_column="t") == (
        "c.csv: no value columns after the time column(s); expected a column of values "
        "beside them, got only 't'"
    )
    # An index pandas wrote, a time and an empty spacer column: no series among them.
    assert _refused(tmp_path, "f.csv", ",date,\n0,2020-01,\n1,2020-02,\n") == (
        "f.csv: no value columns after the time column(s); expected a column of values "
        "beside them, got only '', 'date', ''"
    )
    assert _refused(tmp_path, "d.csv", "x\n1\n2,3\n") == (
        "d.csv, line 3: expected 1 cell as in the header; got 2"
    )
    assert _refused(tmp_path, "e.csv", "week,a\n1,2\n2,oops\n") == (
        "e.csv, line 3: column 'a' has 'oops'; expected a number, or an empty cell, ?, NA or "
        "NaN for a missing value"
    )
    assert _refused(tmp_path, "f.csv", "a,date\n1,2020-01-01\n", time_column="a") == (
        "f.csv, line 2: column 'date' has '2020-01-01'; expected a number, or an empty cell, "
        "?, NA or NaN for a missing value (only the first column, or the one --time-column "
        "names, is times)"
    )


# ---- long CSV -------------------------------------------------------------------------


def test_long_csv_messages(tmp_path: Path) -> None:
    assert _refused(tmp_path, "a.csv", "id,time,value\n") == "a.csv: a header row and no data rows"
    assert (
        _refused(tmp_path, "b.csv", "id,time,value\n,1,2\n")
        == "b.csv, line 2: the id cell is empty"
    )
    assert _refused(tmp_path, "c.csv", "id,time,value\na,1,abc\n") == (
        "c.csv, line 2: value 'abc' of series 'a' is not a number (or a missing-value token: "
        "empty, ?, NA, NaN)"
    )
    assert _refused(tmp_path, "d.csv", "id,time,value\na,2,1\na,2,2\n") == (
        "d.csv, line 3: time '2' of series 'a' does not come after line 2's; the rows of a "
        "series must be in time order, each time once"
    )
    # format="long" for a header with no id column: which names it looks for.
    assert _refused(tmp_path, "e.csv", "date,sales\n2020-01-01,3\n", format="long") == (
        "e.csv, line 1: a long CSV needs an id column (id, unique_id, series, series_id, "
        "series_name, item_id, name, key) and a value column (value, values, y, target, "
        "observation, or the one column besides the id and time); got header ['date', 'sales']"
    )


def test_argument_types(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("a,b\n1,2\n3,4\n", encoding="utf-8")
    for bad, name in ((None, "NoneType"), (3, "int")):
        with pytest.raises(TypeError) as err:
            read_series(bad)  # type: ignore[arg-type]
        assert str(err.value) == f"read_series: path must be a path; got {name}"
    with pytest.raises(TypeError) as err:
        read_series(path, time_column=0)  # type: ignore[arg-type]
    assert str(err.value) == "read_series: time_column must be a column name (str) or None; got int"


def test_load_dataset_names_a_dataset_that_is_not_a_name() -> None:
    """A list (as a hand-edited config.json may hold) failed as unhashable."""
    from rnnkit.data.series import DATASETS, load_dataset

    with pytest.raises(ValueError) as err:
        load_dataset(["airline"])  # type: ignore[arg-type]
    assert str(err.value) == f"--dataset must be one of {', '.join(DATASETS)}; got ['airline']"


@pytest.mark.parametrize(
    ("name", "package", "message"),
    [
        ("airline", "aeon", "the shipped forecasting data comes with aeon: pip install "
         "'rnnkit[timeseries]' (or give your own file with --data)"),
        ("nile", "statsmodels", "this shipped series comes with statsmodels: pip install "
         "'rnnkit[timeseries]' (or give your own file with --data)"),
    ],
)  # fmt: skip
def test_a_shipped_dataset_without_its_package(
    monkeypatch: pytest.MonkeyPatch, name: str, package: str, message: str
) -> None:
    """What a user without the timeseries extra sees (the import fails inside rnnkit)."""
    import sys

    from rnnkit.data.series import load_dataset

    monkeypatch.setitem(sys.modules, package, None)
    with pytest.raises(ValueError) as err:
        load_dataset(name)
    assert str(err.value) == message


# ---- what a number is -----------------------------------------------------------------

# float() also reads "1_000" as 1000 and digits of other scripts as digits: "\u0663" is
# Arabic-Indic three, "\uff11" a full-width one. No .tsf or CSV file means them as numbers.
NOT_NUMBERS = ("1_000", "\u0663", "\uff11", "1e", "0x10", "1,5", "--1", "nan(1)")


@pytest.mark.parametrize("cell", NOT_NUMBERS)
def test_a_cell_float_reads_but_no_file_means_is_not_a_number(tmp_path: Path, cell: str) -> None:
    quoted = f'"{cell}"' if "," in cell else cell
    assert _refused(tmp_path, "w.csv", f"week,a\n1,2\n2,{quoted}\n") == (
        f"w.csv, line 3: column 'a' has {cell!r}; expected a number, or an empty cell, ?, NA "
        "or NaN for a missing value"
    )
    assert _refused(tmp_path, "l.csv", f"id,time,value\ns,1,2\ns,2,{quoted}\n") == (
        f"l.csv, line 3: value {cell!r} of series 's' is not a number (or a missing-value "
        "token: empty, ?, NA, NaN)"
    )
    if "," not in cell:
        assert _refused(tmp_path, "t.tsf", f"@attribute n string\n@data\nS:1,{cell},3\n") == (
            f"t.tsf, line 3: value 2 of series 'S' is {cell!r}; expected a number or ? for a "
            "missing value"
        )


def test_the_number_parser_names_what_it_refuses() -> None:
    from rnnkit.data.ts_format import parse_number, spelled_out

    for text in NOT_NUMBERS:
        with pytest.raises(ValueError, match="^" + re.escape(f"not a number: {text!r}") + "$"):
            parse_number(f" {text} ")
    reads = {"12": 12.0, " -0.5 ": -0.5, "+.5": 0.5, "5.": 5.0, "2E-3": 2e-3, "1e309": math.inf,
             "-1e309": -math.inf, "-Infinity": -math.inf}  # fmt: skip
    assert {text: parse_number(text) for text in reads} == reads
    assert math.isnan(parse_number("-NaN"))
    assert [spelled_out(t) for t in ("inf", " -nan", "Infinity", "1e309", "1")] == [
        True, True, True, False, False,
    ]  # fmt: skip


def test_plain_numbers_and_missing_value_spellings_still_read(tmp_path: Path) -> None:
    path = tmp_path / "ok.csv"
    path.write_text("x\n+1.5\n.5\n5.\n1E2\n -2e-1 \nNAN\n-nan\n+nan\n7\n", encoding="utf-8")
    data = read_series(path)
    # the three NaN spellings are gaps between -0.2 and 7, filled by steps of 7.2 / 4
    assert data.values[0] == pytest.approx([1.5, 0.5, 5.0, 100.0, -0.2, 1.6, 3.4, 5.2, 7.0])
    assert data.filled == 3


def test_a_value_beyond_float64_gets_the_magnitude_message(tmp_path: Path) -> None:
    """1e309 reads as inf: it was called 'not a number', while 1e301 got the magnitude."""
    tail = (
        "; expected a magnitude of at most 1e+300 (the sums that scale a series overflow past it)"
    )
    assert _refused(tmp_path, "l.csv", "id,value\ns,1\ns,1e309\n") == (
        "l.csv: value 2 of series 's' is more than 1.8e+308" + tail
    )
    assert _refused(tmp_path, "w.csv", "a,b\n1,2\n3,-1e400\n") == (
        "w.csv: value 2 of series 'b' is less than -1.8e+308" + tail
    )
    assert _refused(tmp_path, "t.tsf", "@data\n1,2,1e999\n") == (
        "t.tsf: value 3 of series 'T1' is more than 1.8e+308" + tail
    )
    # inf spelled out is no number at all, as before
    assert _refused(tmp_path, "i.csv", "a\n1\ninf\n") == (
        "i.csv, line 3: column 'a' has 'inf'; expected a number, or an empty cell, ?, NA or "
        "NaN for a missing value"
    )
