"""Data a notebook holds, given to the applications' Python API: a DataFrame per series
for write_ts, (x, y) pairs, NaN features and empty sequences for TaggedSequences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from _refusals import raises_exactly
from rnnkit.data import tagging as T
from rnnkit.data.ts_format import read_ts, write_ts
from rnnkit.data.vocab import Vocabulary


def test_write_ts_takes_a_dataframe_per_series(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    frames = [pd.DataFrame(rng.normal(size=(n, 2)), columns=["x", "y"]) for n in (5, 3)]
    # torch cannot read a DataFrame: "series 0 must be a (T, D) array of real numbers;
    # got a DataFrame that torch cannot read as one"
    write_ts(tmp_path / "f.ts", frames, pd.Series(["猫", "dog"]), ["dog", "猫"])
    data = read_ts(tmp_path / "f.ts")
    assert data.lengths == [5, 3] and data.classes == ["dog", "猫"] and data.labels == [1, 0]
    for (x, _), frame in zip(data, frames, strict=True):
        torch.testing.assert_close(x, torch.tensor(frame.to_numpy(), dtype=torch.float32))
    text = pd.DataFrame({"when": pd.date_range("2020", periods=2), "v": [1.0, 2.0]})
    raises_exactly(
        TypeError,
        "write_ts: series 0 must be a (T, D) array of real numbers; got a DataFrame that torch "
        "cannot read as one",
        write_ts, tmp_path / "g.ts", [text], [0], ["a", "b"],
    )  # fmt: skip
    assert not (tmp_path / "g.ts").exists()


def test_tagged_sequences_refuses_pairs_in_one_line() -> None:
    pairs = [(np.zeros((2, 1)), ["A", "B"])]
    raises_exactly(
        TypeError,
        "TaggedSequences: examples[0] must be an Example(x, y, line) (read_jsonl gives them) "
        "or a Document; got tuple",
        T.TaggedSequences, pairs, None, ["A", "B"],
    )  # fmt: skip


def test_tagged_sequences_refuses_missing_features_naming_the_line_and_step() -> None:
    # They reached the model, which named a row and step of the padded batch instead.
    x = np.ones((4, 2))
    x[2, 1] = np.nan
    examples = [T.Example(np.ones((3, 2)), ["A", "B", "A"], 1), T.Example(x, ["A"] * 4, 5)]
    raises_exactly(
        ValueError,
        "TaggedSequences: line 5: x must be finite features (fill missing values first); "
        "got nan at step 2",
        T.TaggedSequences, examples, None, ["A", "B"],
    )  # fmt: skip
    big = T.Example(np.array([[1.0], [1e300]]), ["A", "B"], 3)  # inf in float32
    raises_exactly(
        ValueError,
        "TaggedSequences: line 3: x must be finite features (fill missing values first); "
        "got inf at step 1",
        T.TaggedSequences, [big], None, ["A", "B"],
    )  # fmt: skip


def test_tagged_sequences_refuses_an_empty_sequence() -> None:
    # A batch of only such sequences had a NaN loss.
    for x in ("", np.zeros((0, 2))):
        raises_exactly(
            ValueError,
            "TaggedSequences: line 2: x is empty; an example needs at least one step",
            T.TaggedSequences, [T.Example(x, [], 2)], Vocabulary.from_text("a"), ["A", "B"],
        )  # fmt: skip
