"""A CSV with one row per series (M4's files: ``V1,V2,...`` over ``Y1,5172.1,...``, the
rows padded with empty cells to the longest series): read by ``--format rows``, and by
``auto`` from its header (docs/forecast.md, "Your own data")."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from _refusals import raises_exactly, refused
from rnnkit.cli import main
from rnnkit.data.series import join_test, read_series
from rnnkit.tasks.forecast import ForecastTask
from rnnkit.train import TrainConfig, train
from rnnkit.train.distributed import Context
from rnnkit.train.runfolder import RunFolder

# Three series of different lengths, as M4's train files hold them: the shorter rows end
# in empty cells, quoted as R's write.csv writes every cell.
M4_TRAIN = (
    '"V1","V2","V3","V4","V5","V6","V7","V8"\n'
    '"Y1","5172.1","5133.5","5186.9","5084.6","5182","5414.3","5576.2"\n'
    '"Y2","2070","2104","2394","1651","","",""\n'
    '"Y3","2760","2980","3200","3450","3680","3940",""\n'
)
M4_TEST = '"V1","V2","V3"\n"Y1","5800","5900"\n"Y2","1700","1750"\n"Y3","4100","4200"\n'
WANT = [
    [5172.1, 5133.5, 5186.9, 5084.6, 5182.0, 5414.3, 5576.2],
    [2070.0, 2104.0, 2394.0, 1651.0],
    [2760.0, 2980.0, 3200.0, 3450.0, 3680.0, 3940.0],
]
QUIET: dict[str, Any] = {"log": lambda _: None, "progress": io.StringIO()}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_m4s_files_are_read_a_row_per_series(tmp_path: Path) -> None:
    data = read_series(write(tmp_path, "Yearly-train.csv", M4_TRAIN))
    assert data.info["format"] == "rows"
    assert data.names == ["Y1", "Y2", "Y3"] and data.values == WANT
    # The empty cells that pad a shorter row are its end, not missing values.
    assert (data.filled, data.dropped, data.info["missing"]) == (0, 0, {})
    assert read_series(write(tmp_path, "a.csv", M4_TRAIN), format="rows").values == WANT


def test_m4s_test_file_joins_its_train_file(tmp_path: Path) -> None:
    train_file = write(tmp_path, "Yearly-train.csv", M4_TRAIN)
    test_file = write(tmp_path, "Yearly-test.csv", M4_TEST)
    joined = join_test(read_series(train_file), read_series(test_file))
    assert joined.values == [
        [*WANT[0], 5800.0, 5900.0],
        [*WANT[1], 1700.0, 1750.0],
        [*WANT[2], 4100.0, 4200.0],
    ]
    assert joined.info["test_values"] == 2


@pytest.mark.parametrize(
    "header",
    ["id,2001,2002,2003,2004", "unique_id,2020-01,2020-02,2020-03,2020-04", "Series,1,2,3,4"],
)
def test_an_id_column_followed_by_times_is_read_as_rows(tmp_path: Path, header: str) -> None:
    text = f"{header}\na,1,2,3,4\nb,10,,30,\n"
    data = read_series(write(tmp_path, "s.csv", text))
    assert data.info["format"] == "rows"
    assert data.names == ["a", "b"] and data.values == [[1, 2, 3, 4], [10, 20, 30]]
    assert (data.filled, data.dropped) == (1, 0)  # the gap inside b; its padding is no gap


def test_format_rows_reads_other_headers_and_none(tmp_path: Path) -> None:
    # pandas' to_csv of a frame indexed by series, its columns times or months.
    for header in (",2001,2002,2003", "store,Jan,Feb,Mar"):
        data = read_series(write(tmp_path, "s.csv", f"{header}\na,1,2,3\nb,4,5,6\n"), "rows")
        assert data.names == ["a", "b"] and data.values == [[1, 2, 3], [4, 5, 6]]
    # No header: the first row is a series too, as its cells after the id are values.
    data = read_series(write(tmp_path, "n.csv", "a,1,2,3\nb,4,NA,6,7\n"), "rows")
    assert data.names == ["a", "b"] and data.values == [[1, 2, 3], [4, 5, 6, 7]]
    # Blank lines and rows of empty cells are no series.
    data = read_series(write(tmp_path, "b.csv", "id,1,2\na,1,2\n\n,,\nb,3,4\n"))
    assert data.names == ["a", "b"]


def test_a_wide_file_with_r_column_names_over_numbers_stays_wide(tmp_path: Path) -> None:
    data = read_series(write(tmp_path, "w.csv", "V1,V2,V3\n1,2,3\n4,5,6\n"))
    assert data.info["format"] == "wide"
    assert data.names == ["V1", "V2", "V3"] and data.values == [[1, 4], [2, 5], [3, 6]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "id,1,2\na,1,2\nb,3,4\na,5,6\n",
            ", line 4: series 'a' comes again (first on line 2); expected one row per series",
        ),
        (
            "id,1,2\na,1,2\n,3,4\n",
            ", line 3: the id cell is empty; expected the series' name in the first cell of "
            "each row",
        ),
        (
            "id,1,2\na,1,2\nb,3,x4\n",
            ", line 3: cell 3 of series 'b' has 'x4'; expected a number, or an empty cell, ?, "
            "NA or NaN for a missing value",
        ),
        (
            "id,1,2\na,1,2\nb,3,4,5\n",
            ", line 3: expected at most 3 cells as in the header (an id and 2 values); got 4",
        ),
        ("id,1,2\na,1,2\nb,,\n", ": series 'b' has no values (all missing)"),
        ("id,1,2,3\n", ": a header row and no data rows"),
    ],
)
def test_malformed_rows_are_refused_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "r.csv", text)
    raises_exactly(ValueError, f"{path}{message}", read_series, path, "rows")


def test_a_time_column_is_for_a_wide_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", M4_TRAIN)
    raises_exactly(
        ValueError,
        f"--time-column is for a wide CSV; {path} was read as rows",
        read_series,
        path,
        time_column="V2",
    )


def test_an_id_column_over_names_points_to_both_csv_layouts(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "id,a,b\nx,1,2\ny,3,4\n")
    raises_exactly(
        ValueError,
        f"{path}: column 'id' holds series ids, not times: a long CSV needs a value column "
        "(value, values, y, target, observation) or an id, a time and one more column; "
        "rename its value column, or give --format long (a row per value) or --format rows "
        "(a row per series)",
        read_series,
        path,
    )
    assert read_series(path, format="rows").values == [[1, 2], [3, 4]]


def test_the_command_line_trains_on_m4s_two_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``rnnkit train forecast --data TRAIN --test-data TEST`` on M4's layout: the test
    forecasts each series once from the end of TRAIN, over TEST's values."""
    rng = np.random.default_rng(0)
    lengths = (30, 24, 27)
    series = [np.round(100 + np.cumsum(rng.normal(1, 2, n + 3)), 1) for n in lengths]
    width = 1 + max(lengths)

    def rows(part: str) -> str:
        head = ",".join(f'"V{k}"' for k in range(1, (width if part == "train" else 4) + 1))
        lines = [head]
        for k, (n, s) in enumerate(zip(lengths, series, strict=True)):
            values = s[:n] if part == "train" else s[n:]
            cells = [f'"{v}"' for v in values]
            if part == "train":
                cells += ['""'] * (width - 1 - n)
            lines.append(",".join([f'"S{k + 1}"', *cells]))
        return "\n".join(lines) + "\n"

    train_file = write(tmp_path, "train.csv", rows("train"))
    test_file = write(tmp_path, "test.csv", rows("test"))
    argv = ["train", "forecast", "--data", str(train_file), "--test-data", str(test_file),
            "--steps", "2", "--eval-every", "2", "--hidden", "8", "--batch-size", "4",
            "--context", "8", "--threads", "1", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 0
    config = RunFolder(tmp_path / "run").read_config()
    task = ForecastTask(ForecastTask.parse_options(config.options, "options"), config.derived)
    task.prepare(config.train, Context(0, 1, torch.device("cpu")))
    assert [list(v) for v in task.values] == [list(s) for s in series]
    assert [w.origin for w in task.test] == list(lengths)
    assert task.derived["horizon"] == 3
    # --time-column belongs to a wide CSV: refused in one line, nothing written.
    bad = [*argv[:-1], str(tmp_path / "other"), "--time-column", "V2"]
    assert refused(capsys, bad, tmp_path) == (
        f"rnnkit train: error: --time-column is for a wide CSV; {train_file} was read as rows"
    )


def test_train_on_rows_from_python(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", "id,1,2,3,4,5,6,7,8,9,10,11,12\n" + "".join(
        f"s{k}," + ",".join(str(10 * k + t + (t % 3)) for t in range(12)) + "\n"
        for k in range(4)
    ))  # fmt: skip
    options = {"data": str(path), "horizon": 2, "hidden_size": 8, "context": 4}
    train("forecast", options, TrainConfig(steps=2, eval_every=2, threads=1),
          out=tmp_path / "run", **QUIET)  # fmt: skip
    derived = RunFolder(tmp_path / "run").read_config().derived
    assert derived["described"].endswith("4 series of length 12")


def test_m1_yearly_in_m4s_layout_is_the_shipped_set(tmp_path: Path) -> None:
    """The shipped M1 yearly set written as M4 ships its sets, a train and a test file a
    row per series, joins back to the shipped values exactly."""
    from rnnkit.data.series import load_dataset

    m1 = load_dataset("m1-yearly")
    h = m1.horizon
    assert h == 6
    width = max(len(v) for v in m1.values) - h

    def row(name: str, values: list[float], pad: int) -> str:
        return ",".join([f'"{name}"', *(f'"{v!r}"' for v in values), *['""'] * pad])

    train_lines = [",".join(f'"V{k}"' for k in range(1, width + 2))]
    pairs = list(zip(m1.names, m1.values, strict=True))
    train_lines += [row(n, v[:-h], width - len(v) + h) for n, v in pairs]
    test_lines = [",".join(f'"V{k}"' for k in range(1, h + 2))]
    test_lines += [row(n, v[-h:], 0) for n, v in pairs]
    train_file = write(tmp_path, "Yearly-train.csv", "\n".join(train_lines) + "\n")
    test_file = write(tmp_path, "Yearly-test.csv", "\n".join(test_lines) + "\n")
    joined = join_test(read_series(train_file), read_series(test_file))
    assert joined.names == m1.names and joined.values == m1.values
    assert (joined.filled, joined.dropped) == (0, 0)
