"""The series readers' rules for the files users bring: which columns are series, which
rows are data, and one-line errors naming the file and line (docs/forecast.md, "Your own
data")."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnkit.data.series import read_series


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path, **kw: str) -> str:
    with pytest.raises(ValueError) as err:
        read_series(path, **kw)
    message = str(err.value)
    assert "\n" not in message and path.name in message
    return message


def stores(value: str = "sales") -> str:
    rows = [f"id,date,{value}"]
    for store, base in (("store_a", 100), ("store_b", 500)):
        rows += [f"{store},2020-01-{d:02d},{base + d}" for d in range(1, 6)]
    return "\n".join(rows) + "\n"


# ---- which columns are series ---------------------------------------------------------


def test_long_csv_with_an_id_a_time_and_one_value_column_of_any_name(tmp_path: Path) -> None:
    data = read_series(write(tmp_path, "s.csv", stores()))
    assert data.info["format"] == "long"
    assert data.names == ["store_a", "store_b"]
    assert data.values == [[101, 102, 103, 104, 105], [501, 502, 503, 504, 505]]


def test_an_id_column_read_as_wide_is_refused_and_format_long_reads_it(tmp_path: Path) -> None:
    text = "id,sales\nstore_a,1\nstore_a,2\nstore_b,7\nstore_b,8\n"
    path = write(tmp_path, "s.csv", text)
    message = refused(path)
    assert "column 'id' holds series ids, not times" in message
    assert "--format long" in message
    data = read_series(path, format="long")  # the one column besides the id: the values
    assert data.names == ["store_a", "store_b"] and data.values == [[1, 2], [7, 8]]


def test_a_wide_csv_skips_one_time_column_only(tmp_path: Path) -> None:
    text = "date,when,x\n2020-01,Jan,1\n2020-02,Feb,2\n"
    message = refused(write(tmp_path, "w.csv", text))
    assert "w.csv, line 2: column 'when' has 'Jan'" in message
    text = "date,x,day\n2020-01,1,Mon\n2020-02,2,3\n"
    message = refused(write(tmp_path, "v.csv", text))
    assert "v.csv, line 2: column 'day' has 'Mon'" in message
    assert "only the first column, or the one --time-column names, is times" in message


def test_an_unnamed_index_column_and_a_time_column_are_skipped(tmp_path: Path) -> None:
    # as pandas writes a frame with a time column: the index, then the times
    text = ",Quarter,a,b\n0,1970 Q1,1,5\n1,1970 Q2,2,6\n2,1970 Q3,3,7\n"
    data = read_series(write(tmp_path, "p.csv", text))
    assert data.names == ["a", "b"] and data.values == [[1, 2, 3], [5, 6, 7]]
    # numbered columns over the index (",0"): a header, as in aeon's Lynx.csv
    data = read_series(write(tmp_path, "q.csv", ",0\n1821,269\n1822,321\n"))
    assert data.names == ["0"] and data.values == [[269, 321]]


def test_time_column_skips_only_the_column_it_names(tmp_path: Path) -> None:
    text = "north,date,south\n10,2020-01,50\n11,2020-02,51\n12,2020-03,52\n"
    data = read_series(write(tmp_path, "m.csv", text), time_column="date")
    assert data.names == ["north", "south"]
    assert data.values == [[10, 11, 12], [50, 51, 52]]


# ---- which rows are data ---------------------------------------------------------------


def test_a_row_longer_than_the_header_is_refused(tmp_path: Path) -> None:
    rows = ["a,b", *(f"{10 + k}.00,{20 + k}.00" for k in range(14)), "17.00,20.99,999"]
    message = refused(write(tmp_path, "r.csv", "\n".join(rows) + "\n"))
    assert "r.csv, line 16: expected 2 cells as in the header; got 3" in message
    message = refused(write(tmp_path, "n.csv", "1,2\n3,4\n5,6,7\n"))
    assert "n.csv, line 3: expected 2 cells as on line 1; got 3" in message
    message = refused(write(tmp_path, "l.csv", "id,time,value\na,1,1,9\n"))
    assert "l.csv, line 2: expected 3 cells as in the header; got 4" in message


def test_a_tsf_file_read_as_a_csv_is_refused(tmp_path: Path) -> None:
    text = "@relation t\n@horizon 2\n@data\nS1:1,2,3,4\n"
    message = refused(write(tmp_path, "t.tsf", text), format="wide")
    assert "t.tsf, line 2: column '@relation t' has '@horizon 2'" in message
    message = refused(write(tmp_path, "u.tsf", "@data\n1,2,3\n"), format="wide")
    assert "u.tsf, line 2: expected 1 cell as in the header; got 3" in message


def test_a_row_shorter_than_the_header_ends_its_last_series(tmp_path: Path) -> None:
    data = read_series(write(tmp_path, "s.csv", "long,short\n1,5\n2,6\n3\n4\n"))
    assert data.values == [[1, 2, 3, 4], [5, 6]] and data.dropped == 2


@pytest.mark.parametrize("first", ["10.00,", "NaN,21.00", "10,NA"])
def test_a_first_row_of_numbers_and_missing_values_is_data(tmp_path: Path, first: str) -> None:
    data = read_series(write(tmp_path, "h.csv", f"{first}\n11,22\n12,23\n"))
    assert data.names == ["series1", "series2"]
    assert sum(map(len, data.values)) == 5 and data.dropped == 1


# ---- separators and quotes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("a;b\n10,00;21,00\n11,34;20,54\n", "';'"),
        ("a;b\n10.00;21.00\n11.34;20.54\n", "';'"),
        ("a\tb\n10.00\t21.00\n11.34\t20.54\n", "a tab"),
    ],
)
def test_other_separators_are_refused(tmp_path: Path, text: str, found: str) -> None:
    message = refused(write(tmp_path, "e.csv", text))
    assert f"e.csv, line 1: found {found} between values; expected ',' separators" in message


def test_an_unclosed_quote_is_reported_where_it_opened(tmp_path: Path) -> None:
    message = refused(write(tmp_path, "q.csv", 'a,b\n1,"2\n3,4\n5,6\n'))
    assert "q.csv, line 2: a quote opened on this line is not closed on it" in message


# ---- .tsf ------------------------------------------------------------------------------


TSF_HEAD = "@relation t\n@attribute series_name string\n@horizon 2\n@data\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("S1:1,2,3\nS2:4,5\nS1:6,7\n", "line 7: series name 'S1' appears twice (first on line 5)"),
        (":1,2,3\n", "line 5: the series name (series_name) is empty"),
    ],
)
def test_tsf_series_names_must_be_given_and_distinct(
    tmp_path: Path, body: str, message: str
) -> None:
    assert message in refused(write(tmp_path, "n.tsf", TSF_HEAD + body))


def test_tsf_header_keywords_in_any_case_and_separated_by_tabs(tmp_path: Path) -> None:
    text = "@relation\tt\n@attribute\tseries_name\tstring\n@horizon\t4\n@data\nA:1,2,3\n"
    data = read_series(write(tmp_path, "tab.tsf", text))
    assert data.names == ["A"] and data.horizon == 4
    text = "@RELATION t\n@ATTRIBUTE series_name STRING\n@HORIZON 4\n@DATA\nA:1,2,3\n"
    data = read_series(write(tmp_path, "upper.tsf", text))
    assert data.names == ["A"] and data.horizon == 4


def test_tsf_horizon_must_be_ascii_digits(tmp_path: Path) -> None:
    message = refused(write(tmp_path, "h.tsf", "@relation t\n@horizon ²\n@data\n1,2\n"))
    assert "h.tsf, line 2: @horizon must be a positive integer; got '²'" in message


def test_time_column_after_an_unnamed_index_skips_both(tmp_path: Path) -> None:
    path = tmp_path / "pandas.csv"
    rows = [",date,a,b", *(f"{t},2020-01-{t + 1:02d},{t},{2 * t}" for t in range(12))]
    path.write_text("\n".join(rows) + "\n")
    data = read_series(path, time_column="date")
    assert list(data.names) == ["a", "b"]


def test_lines_end_only_at_newlines_and_carriage_returns(tmp_path: Path) -> None:
    # A form feed or U+2028 in a comment or a name is not a line break (str.splitlines
    # would break there and misnumber the lines after it).
    text = (
        "# notes\x0cpage two\u2028more\r\n@relation t\r@attribute series_name string\n"
        "@horizon 2\n@data\nA:1,2,3\n"
    )
    data = read_series(write(tmp_path, "ff.tsf", text))
    assert data.names == ["A"] and data.horizon == 2
    text = "a\u2028b,c\n1,2\n3,x\n"
    message = refused(write(tmp_path, "ls.csv", text))
    assert "ls.csv, line 3:" in message


# ---- values too large to forecast ----------------------------------------------------------


def test_a_value_too_large_to_forecast_is_refused_naming_file_series_and_value(
    tmp_path: Path,
) -> None:
    """Near 1e308 the running sums that scale a series overflow, and every forecast was
    NaN; a missing value between -1e308 and 1e308 was interpolated as inf."""
    message = refused(write(tmp_path, "big.csv", "week,a,b\n0,1,2\n1,3,1e308\n2,5,4\n"))
    assert (
        "big.csv: value 2 of series 'b' is 1e+308; expected a magnitude of at most 1e+300"
    ) in message
    message = refused(write(tmp_path, "neg.csv", "id,value\ns,-1e301\ns,\ns,1e301\n"))
    assert "value 1 of series 's' is -1e+301" in message
    message = refused(write(tmp_path, "big.tsf", TSF_HEAD + "S1:1,2,1e308\n"))
    assert "value 3 of series 'S1' is 1e+308" in message
    data = read_series(write(tmp_path, "edge.csv", "x\n-1e300\nNA\n1e300\n"))
    assert data.values == [[-1e300, 0.0, 1e300]]  # at the bound: read, and filled finite


def test_the_forecast_command_refuses_such_a_file_in_one_line(tmp_path: Path, capsys) -> None:
    import io

    from rnnkit.cli import main
    from rnnkit.train import TrainConfig, train

    rows = "\n".join(f"{t},{20 + t % 4 + t / 10:.2f},{30 - t % 3:.2f}" for t in range(30))
    good = write(tmp_path, "good.csv", f"week,a,b\n{rows}\n")
    run = tmp_path / "run"
    options = {"horizon": 2, "seasonality": 1, "hidden_size": 4, "batch_size": 2, "context": 6}
    train("forecast", {**options, "data": str(good)}, TrainConfig(steps=2, eval_every=2, threads=1),
          out=run, log=lambda _: None, progress=io.StringIO())  # fmt: skip
    big = write(tmp_path, "big.csv", "week,a,b\n0,1,2\n1,3,1e308\n2,5,4\n")
    out = tmp_path / "f.csv"
    capsys.readouterr()
    assert main(["forecast", str(run), "--data", str(big), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and not out.exists()
    assert captured.err == (
        f"rnnkit forecast: error: {big}: value 2 of series 'b' is 1e+308; expected a magnitude "
        "of at most 1e+300 (the sums that scale a series overflow past it)\n"
    )
