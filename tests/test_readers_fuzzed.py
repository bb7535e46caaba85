"""rnnkit's readers of users' files against reference readers, on seeded random files.

Each seed writes a valid file of random size, dimensions and lengths, with missing values
in several spellings and numbers as exponents, with a leading '+' or '.', or as negative
zero, and compares what rnnkit reads with what the reference reads: aeon's
``load_from_ts_file`` and ``load_from_tsf_file``, ``pandas.read_csv`` and ``json``. The
files are those aeon reads too (aeon lowercases a .ts file's labels, refuses a blank line
among the series, and splits .tsf headers at single spaces). The last tests hold the cases
a larger fuzz of the same kind found, each checked against the reference or by hand.
"""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.data.series import MISSING_TOKENS, fill_missing, read_series
from rnnkit.data.tagging import read_jsonl
from rnnkit.data.ts_format import read_ts

SEEDS = range(8)


def _number(rng: random.Random) -> str:
    """A number as files write them: '-1.5e+03', '+7', '.25', '-0', '3.'."""
    v = rng.uniform(-1000, 1000)
    return rng.choice(
        [f"{v:e}", f"{v:+g}", f"{abs(v) % 1:.3f}"[1:], "-0", "-0.0", f"{int(v)}.", f"{v:.2E}",
         repr(round(v, 3))]
    )  # fmt: skip


def _eol(rng: random.Random) -> str:
    return rng.choice(["\n", "\r\n"])


def _same(mine: np.ndarray, theirs: np.ndarray) -> bool:
    """Equal as float32, NaN where NaN, and -0.0 where -0.0."""
    a, b = np.asarray(mine, np.float32), np.asarray(theirs, np.float32)
    return a.shape == b.shape and bool(
        np.array_equal(a, b, equal_nan=True) and np.array_equal(np.signbit(a), np.signbit(b))
    )


# ---- .ts against aeon -------------------------------------------------------------------


def _ts_file(rng: random.Random) -> str:
    D = rng.choice([1, 2, 3])
    equal = rng.random() < 0.5
    classes = rng.sample(["a", "b", "1", "-1", "x.y", "a-b", "[z]", "é", "#h", "%p"], 3)
    T0 = rng.randint(1, 9)
    rows = []
    for _ in range(rng.randint(1, 6)):
        T = T0 if equal else rng.randint(1, 9)
        dims = [
            ",".join(
                rng.choice(["?", "NaN", "nan"]) if rng.random() < 0.1 else _number(rng)
                for _ in range(T)
            )
            for _ in range(D)
        ]
        rows.append(":".join([*dims, rng.choice(classes)]))
    head = [
        "# a comment",
        f"@problemName fuzz{rng.randrange(9)}",
        "@timeStamps false",
        "@missing true",
        f"@univariate {'true' if D == 1 else 'false'}",
        f"@dimensions {D}",
        f"@equalLength {'true' if equal else 'false'}",
        *([f"@seriesLength {T0}"] if equal else []),
        "@classLabel true " + " ".join(classes),
        rng.choice(["@data", "@DATA"]),
    ]
    return _eol(rng).join(head + rows) + _eol(rng)


@pytest.mark.parametrize("seed", SEEDS)
def test_ts_reads_as_aeon_reads(tmp_path: Path, seed: int) -> None:
    datasets = pytest.importorskip("aeon.datasets")
    path = tmp_path / "f.ts"
    path.write_bytes(_ts_file(random.Random(seed)).encode("utf-8"))
    X, y, _ = datasets.load_from_ts_file(str(path), return_meta_data=True)
    data = read_ts(path, missing="keep")
    assert len(data) == len(X) == len(y)
    for (x, label), ax, ay in zip(data, X, y, strict=True):
        assert _same(x.numpy(), np.asarray(ax).T)
        assert data.classes[label].lower() == str(ay).replace("NaN", "nan")


# ---- .tsf against aeon ------------------------------------------------------------------


def _tsf_file(rng: random.Random) -> str:
    group = rng.random() < 0.3  # a hierarchical file: series_group before series_name
    attrs = [("series_group", "string")] * group + [("series_name", "string")]
    attrs += [("start_timestamp", "date")] * (rng.random() < 0.6)
    attrs += [("state", "numeric")] * (rng.random() < 0.4)
    head = ["# Monash", "@relation fuzz"] + [f"@attribute {a} {t}" for a, t in attrs]
    head += [f"@frequency {rng.choice(['yearly', 'monthly', 'daily'])}", "@horizon 6",
             "@missing true", "@equallength false", "@data"]  # fmt: skip
    rows = []
    for k in range(rng.randint(1, 5)):
        values = ["?" if rng.random() < 0.15 else _number(rng) for _ in range(rng.randint(1, 9))]
        values[rng.randrange(len(values))] = _number(rng)  # at least one value
        fields = {"series_group": f"G{k % 2}", "series_name": f"T{k + 1}",
                  "start_timestamp": f"19{60 + k}-01-01 00-00-00", "state": str(k)}  # fmt: skip
        rows.append(":".join([*(fields[a] for a, _ in attrs), ",".join(values)]))
    return _eol(rng).join(head + rows) + _eol(rng)


@pytest.mark.parametrize("seed", SEEDS)
def test_tsf_reads_as_aeon_reads(tmp_path: Path, seed: int) -> None:
    datasets = pytest.importorskip("aeon.datasets")
    path = tmp_path / "f.tsf"
    path.write_bytes(_tsf_file(random.Random(seed)).encode("utf-8"))
    frame, meta = datasets.load_from_tsf_file(str(path))
    data = read_series(path)
    assert data.names == list(frame["series_name"])
    want = [[None if isinstance(v, str) else float(v) for v in s] for s in frame["series_value"]]
    assert data.values == [fill_missing(v)[0] for v in want]  # gaps filled, ends dropped
    assert (data.frequency, data.horizon) == (meta["frequency"], meta["forecast_horizon"])


def test_a_hierarchical_tsf_is_named_by_series_name() -> None:
    # aeon's own file: its first string attribute is the group, shared by all series.
    datasets = pytest.importorskip("aeon.datasets")
    path = Path(datasets.__file__).parent / "data" / "UnitTest"
    path = path / "UnitTest_Tsf_Loader_hierarchical.tsf"
    frame, _ = datasets.load_from_tsf_file(str(path))
    data = read_series(path)
    assert data.names == list(frame["series_name"]) == ["T1", "T2", "T3"]
    assert data.values == [list(map(float, s)) for s in frame["series_value"]]


# ---- CSV against pandas -----------------------------------------------------------------

MISSING = ["", "?", "NA", "NaN", "null", "-", " "]


def _cell(text: str) -> float | None:
    s = text.strip() if isinstance(text, str) else ""
    return None if s.lower() in MISSING_TOKENS else float(s)


def _wide_file(rng: random.Random) -> tuple[str, list[str]]:
    k, T = rng.randint(1, 4), rng.randint(2, 9)
    names = [f"{rng.choice(['north', 'sales', 'Série', 'c,d'])}{j}" for j in range(k)]
    timed = rng.random() < 0.6
    lines = [",".join((["date"] if timed else []) + [f'"{n}"' for n in names])]
    for t in range(T):
        cells = [f"{2000 + t}"] if timed else []
        for _ in range(k):
            missing = rng.random() < 0.15 and (t > 0 or k > 1)
            value = (rng.choice(MISSING) if k > 1 else "?") if missing else _number(rng)
            cells.append(f'"{value}"' if rng.random() < 0.1 and not missing else value)
        lines.append(",".join(cells) + rng.choice(["", "", " ", "\t"]))
    return _eol(rng).join(lines) + _eol(rng), names


@pytest.mark.parametrize("seed", SEEDS[:6])
def test_wide_csv_reads_as_pandas_reads(tmp_path: Path, seed: int) -> None:
    pd = pytest.importorskip("pandas")
    text, names = _wide_file(random.Random(seed))
    path = tmp_path / "f.csv"
    path.write_bytes(text.encode("utf-8"))
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    want = [fill_missing([_cell(c) for c in frame[n]]) for n in names]
    if any(not v for v, _, _ in want):
        pytest.skip("a column with no value (refused, as it should be)")
    data = read_series(path)
    assert (data.names, data.info["format"]) == (names, "wide")
    assert data.values == [v for v, _, _ in want]


def _long_file(rng: random.Random) -> tuple[str, list[str]]:
    columns = ["id", rng.choice(["time", "date", "ds"]), rng.choice(["value", "y", "target"])]
    rng.shuffle(columns)
    rows, ids = [], [f"{rng.choice(['s', 'item ', 'a,b'])}{j}" for j in range(rng.randint(1, 4))]
    for name in ids:
        for t in range(rng.randint(1, 6)):
            cells = {"id": name, "value": _number(rng) if t == 0 or rng.random() > 0.15 else "?"}
            rows.append({**cells, "time": f"2020-{t + 1:02d}-01"})
    rng.shuffle(rows)  # series interleaved: each id on many rows ...
    rows.sort(key=lambda r: r["time"])  # ... each series in time order
    key = {"time": "time", "date": "time", "ds": "time", "id": "id"}
    lines = [",".join(columns)]
    for r in rows:
        cells = [r[key.get(c, "value")] for c in columns]
        lines.append(",".join(f'"{c}"' if "," in c else c for c in cells))
    return _eol(rng).join(lines) + _eol(rng), ids


@pytest.mark.parametrize("seed", SEEDS[:4])
def test_long_csv_reads_as_pandas_reads(tmp_path: Path, seed: int) -> None:
    pd = pytest.importorskip("pandas")
    text, _ = _long_file(random.Random(seed))
    path = tmp_path / "f.csv"
    path.write_bytes(text.encode("utf-8"))
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    value = next(c for c in frame.columns if c in ("value", "y", "target"))
    groups: dict[str, list[float | None]] = {}
    for name, cell in zip(frame["id"], frame[value], strict=True):
        groups.setdefault(name, []).append(_cell(cell))
    data = read_series(path)
    assert (data.names, data.info["format"]) == (list(groups), "long")
    assert data.values == [fill_missing(v)[0] for v in groups.values()]


# ---- JSON lines against json ------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS[:4])
def test_jsonl_reads_as_json_reads(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    features, objects = rng.random() < 0.5, []
    for _ in range(rng.randint(1, 5)):
        T = rng.randint(1, 6)
        x = (
            [[float(_number(rng)) for _ in range(2)] for _ in range(T)]
            if features
            else "".join(rng.choice('ab \t\u2028\x0c"é😀') for _ in range(T))
        )
        objects.append({"x": x, "y": [rng.choice(["A", "B", "é"]) for _ in range(T)], "k": 1})
    lines = [json.dumps(o, ensure_ascii=rng.random() < 0.5) for o in objects]
    path = tmp_path / "f.jsonl"
    path.write_bytes(("\ufeff" + "\r\n\n".join(lines)).encode("utf-8"))
    got = read_jsonl(path)
    want = [json.loads(line) for line in lines]
    assert [e.y for e in got] == [o["y"] for o in want]
    for e, o in zip(got, want, strict=True):
        assert e.x == o["x"] if not features else _same(e.x, np.asarray(o["x"]))


# ---- what the fuzz found ------------------------------------------------------------------


def test_a_row_of_empty_cells_is_a_step_of_missing_values(tmp_path: Path) -> None:
    # It was skipped as blank: the steps around it were joined, each series a step short.
    pd = pytest.importorskip("pandas")
    path = tmp_path / "gap.csv"
    path.write_text("month,a,b\n1,1.0,10\n2,,\n3,3.0,30\n4,,\n  \n5,5.0,50\n,,\n")
    frame = pd.read_csv(path)  # the blank line ("  ") is no row; ",," is one
    data = read_series(path)
    want = [fill_missing(frame[c].tolist())[0] for c in ("a", "b")]
    assert data.values == want == [[1.0, 2.0, 3.0, 4.0, 5.0], [10.0, 20.0, 30.0, 40.0, 50.0]]
    assert (data.filled, data.dropped) == (4, 2)


def test_a_row_of_empty_cells_in_a_long_csv_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("id,time,value\na,1,1\n,,\nb,1,2\na,2,3\n,,\n")
    data = read_series(path)
    assert (data.names, data.values) == (["a", "b"], [[1.0, 3.0], [2.0]])


def test_a_tab_that_ends_a_line_is_no_separator(tmp_path: Path) -> None:
    # The lines of a comma-separated file ending in a tab were refused as tab-separated.
    path = tmp_path / "tab.csv"
    path.write_text("a,b\t\n1,2\t\n3,4\t\n")
    data = read_series(path)
    assert (data.names, data.values) == (["a", "b"], [[1.0, 3.0], [2.0, 4.0]])


def test_a_timestamped_series_with_a_parenthesis_in_its_label(tmp_path: Path) -> None:
    # The label's '(' opened a "pair" that never closed, and the line was refused.
    path = tmp_path / "p.ts"
    path.write_text(
        "@timeStamps true\n@univariate true\n@classLabel true a(b c)\n@data\n"
        "(2007-01-01 00:00:00,1.5),(2007-01-02 00:00:00,?):a(b\n(0,2.5):c)\n"
    )
    data = read_ts(path, missing="keep")
    assert data.classes == ["a(b", "c)"] and data.labels == [0, 1]
    assert _same(data[0][0].numpy(), np.array([[1.5], [math.nan]]))
    assert torch.equal(data[1][0], torch.tensor([[2.5]]))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        # a field out of place: the name would have been read from the wrong one
        ("1979-01-01 00-00-00:T1:1,2",
         "line 5: attribute state (numeric) is 'T1'; expected a number"),
        ("T1:1979-13-01 00-00-00:1,2", "line 5: attribute start_timestamp (date) is "
         "'1979-13-01 00-00-00'; expected a date 'YYYY-MM-DD HH-MM-SS' (or 'YYYY-MM-DD')"),
        # a value lost: '?' marks a missing one
        ("T1:3:1,,2", "line 5: value 2 of series 'T1' is ''; expected a number or ? for a "
         "missing value"),
        ("T1:3:1,2,", "line 5: value 3 of series 'T1' is ''; expected a number or ? for a "
         "missing value"),
    ],
)  # fmt: skip
def test_malformed_tsf_lines_aeon_refuses_too(tmp_path: Path, row: str, message: str) -> None:
    head = "@attribute series_name string\n@attribute state numeric\n@horizon 2\n@data\n"
    if "start_timestamp" in message:
        head = head.replace("state numeric", "start_timestamp date")
    path = tmp_path / "m.tsf"
    path.write_text(head + row + "\n")
    before = path.read_bytes()
    with pytest.raises(ValueError, match="^" + re.escape(f"{path}, {message}") + "$"):
        read_series(path)
    assert path.read_bytes() == before
    datasets = pytest.importorskip("aeon.datasets")
    with pytest.raises(ValueError):
        datasets.load_from_tsf_file(str(path))
