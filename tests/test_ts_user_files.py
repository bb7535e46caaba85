"""A user's own series through `rnnkit.data.ts_format`: what NumPy, torch and pandas hand
`write_ts`, and a class label the reader could never match."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tests._refusals import raises_exactly, refused

from rnnkit.data.ts_format import parse_ts, read_ts, write_ts


def _read_back(path: Path) -> tuple[list[np.ndarray], list[str]]:
    data = read_ts(path)
    return [x.numpy() for x, _ in data], [data.classes[y] for y in data.labels]


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_write_ts_takes_a_batch_as_one_array(tmp_path: Path, kind: str) -> None:
    # (N, T, D) is a sequence of N (T, D) series; it has no truth value of its own
    batch = np.arange(24, dtype=np.float64).reshape(4, 3, 2) / 8
    labels = np.array([0, 1, 1, 0])
    series = torch.from_numpy(batch) if kind == "torch" else batch
    tags = torch.from_numpy(labels) if kind == "torch" else labels
    write_ts(tmp_path / "b.ts", series, tags, classes=["no", "yes"])
    xs, names = _read_back(tmp_path / "b.ts")
    assert names == ["no", "yes", "yes", "no"]
    for x, want in zip(xs, batch, strict=True):
        np.testing.assert_array_equal(x, want.astype(np.float32))


def test_write_ts_takes_pandas_series_by_position_not_index(tmp_path: Path) -> None:
    # a Series' [0] is by index label: these start at 10 and "x"
    xs = [np.full((2, 1), 1.0), np.full((3, 1), 2.0), np.full((1, 1), 3.0)]
    write_ts(tmp_path / "s.ts", pd.Series(xs, index=["x", "y", "z"]),
             pd.Series(["b", "a", "b"], index=[10, 11, 12]))  # fmt: skip
    got, names = _read_back(tmp_path / "s.ts")
    assert names == ["b", "a", "b"]
    assert [x.ravel().tolist() for x in got] == [[1.0, 1.0], [2.0, 2.0, 2.0], [3.0]]
    write_ts(tmp_path / "n.ts", xs, pd.Series([2, 0, 2], index=[5, 6, 7]), overwrite=True)
    assert read_ts(tmp_path / "n.ts").classes == ["0", "1", "2"]
    assert _read_back(tmp_path / "n.ts")[1] == ["2", "0", "2"]


def test_a_class_label_with_a_colon_is_refused_where_it_is_declared(tmp_path: Path) -> None:
    text = "@problemName x\n@classLabel true a:b c\n@data\n1,2:a:b\n3,4:c\n"
    msg = (
        "mine.ts, line 2: @classLabel declares 'a:b'; a class label cannot hold ':', which "
        "separates the dimensions and the label"
    )
    raises_exactly(ValueError, msg, parse_ts, text, "mine.ts")
    path = tmp_path / "mine.ts"
    path.write_text(text.replace("@classLabel", "@CLASSLABEL"))
    raises_exactly(ValueError, msg.replace("@classLabel", "@CLASSLABEL").replace(
        "mine.ts", str(path)), read_ts, path)  # fmt: skip


def test_the_cli_refuses_the_colon_label_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "d.ts"
    rows = "\n".join(f"{i},{i + 1}:{'a:b' if i % 2 else 'c'}" for i in range(12))
    data.write_text(f"@classLabel true a:b c\n@data\n{rows}\n")
    line = refused(capsys, ["train", "classify", "--data", str(data), "--out",
                            str(tmp_path / "run")], tmp_path)  # fmt: skip
    assert line == (
        f"rnnkit train: error: {data}, line 1: @classLabel declares 'a:b'; a class label "
        "cannot hold ':', which separates the dimensions and the label"
    )
    assert not (tmp_path / "run").exists()


def test_labels_as_indices_still_round_trip(tmp_path: Path) -> None:
    # the conversion keeps what worked: a list of tensors and a list of ints
    xs = [torch.tensor([[0.5], [1.5]]), torch.tensor([[2.5]])]
    write_ts(tmp_path / "l.ts", xs, [1, 0], classes=["up", "down"])
    assert _read_back(tmp_path / "l.ts")[1] == ["down", "up"]
