"""Classification with a user's own files, as other tools write them: aeon's unlabelled
.ts files (every dimension ended by ':'), a test file whose @classLabel declares other
classes or another order (``read_ts(classes=...)``), values separated by tabs, labels with
spaces; ``write_ts`` of unlabelled series and of what it cannot write; NumPy integers and
lists where the classify API takes numbers and class indices."""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from _refusals import raises_exactly, refused
from rnnkit.cli import main
from rnnkit.data.ts_format import parse_ts, read_ts, write_ts
from rnnkit.tasks.classify import (
    SequenceClassifier,
    accuracy,
    aggregate,
    confusion_matrix,
    confusion_png,
)
from rnnkit.tasks.predict import predict_classes

TINY = ["--hidden", "4", "--steps", "2", "--eval-every", "2", "--threads", "1"]


def ramps(n: int, seed: int) -> tuple[list[np.ndarray], list[str]]:
    """``n`` series of two dimensions and 5-12 steps: "up" rises, "down" falls."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i in range(n):
        T, sign = 5 + i % 8, 1 if i % 2 == 0 else -1
        ramp = np.linspace(0, 1, T) * sign
        xs.append(np.stack([ramp, -0.5 * ramp], 1) + 0.05 * rng.normal(size=(T, 2)))
        ys.append("up" if sign == 1 else "down")
    return xs, ys


def aeon_unlabelled(xs: list[np.ndarray]) -> str:
    """The text aeon's ``save_to_ts_file(X)`` writes without ``y``: no @classLabel, and
    every dimension, the last too, followed by ':' (aeon 1.6, checked below)."""
    head = ["@problemName data", "@timestamps false", "@missing False", "@univariate false",
            "@dimension 2", "@equalLength false", "@targetlabel false", "@data"]  # fmt: skip
    body = ["".join(",".join(str(v) for v in col) + ":" for col in x.T) for x in xs]
    return "\n".join(head + body) + "\n"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("walk39")
    write_ts(root / "train.ts", *ramps(24, 0), classes=["up", "down"])
    write_ts(root / "test.ts", *ramps(8, 1), classes=["up", "down"])
    argv = ["train", "classify", "--data", str(root / "train.ts"), "--test-data"]
    assert main([*argv, str(root / "test.ts"), *TINY, "--out", str(root / "run")]) == 0
    return root


# ---- aeon's unlabelled files ---------------------------------------------------------------


def test_an_unlabelled_line_may_end_with_a_colon_as_aeon_writes_it() -> None:
    xs, _ = ramps(3, 2)
    data = parse_ts(aeon_unlabelled(xs), "new.ts", require_labels=False)
    assert len(data) == 3 and data.dimensions == 2 and data.labels == [-1, -1, -1]
    for (x, _), want in zip(data, xs, strict=True):
        torch.testing.assert_close(x, torch.tensor(want, dtype=torch.float32))
    # one dimension, and timestamped series, end the same way
    one = parse_ts("@data\n1,2,3:\n4:\n", "f.ts", require_labels=False)
    assert [x.flatten().tolist() for x, _ in one] == [[1.0, 2.0, 3.0], [4.0]]
    stamped = parse_ts("@timeStamps true\n@data\n(0,1),(1,2):\n", "f.ts", require_labels=False)
    assert stamped[0][0].flatten().tolist() == [1.0, 2.0]
    # only the one empty part that ends the line: an empty dimension before it is refused
    raises_exactly(ValueError, "f.ts, line 2: dimension 2 has no values", parse_ts,
                   "@data\n1,2::\n", "f.ts", require_labels=False)  # fmt: skip


def test_what_aeon_writes_without_labels_is_read_as_it_reads_it(tmp_path: Path) -> None:
    aeon = pytest.importorskip("aeon.datasets")
    xs, _ = ramps(4, 3)
    aeon.save_to_ts_file([x.T for x in xs], None, path=str(tmp_path), problem_name="new")
    path = tmp_path / "new.ts"
    assert path.read_text().splitlines()[-1].endswith(":")  # the form read above
    X, _ = aeon.load_from_ts_file(str(path))
    data = read_ts(path, require_labels=False)
    assert data.labels == [-1] * 4
    for (x, _), theirs in zip(data, X, strict=True):
        np.testing.assert_allclose(x.T.numpy(), np.asarray(theirs, dtype=np.float32))


def test_rnnkit_predict_takes_an_aeon_file_without_labels(root: Path, capsys) -> None:
    xs, _ = ramps(5, 4)
    new = root / "aeon_new.ts"
    new.write_text(aeon_unlabelled(xs), encoding="utf-8")
    capsys.readouterr()
    assert main(["predict", str(root / "run"), "--data", str(new)]) == 0
    out, err = capsys.readouterr()
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["series", "predicted", "p_up", "p_down"] and len(rows) == 6
    assert err == ""  # no labels, no accuracy line
    # the same series, labelled: the same probabilities
    write_ts(root / "labelled.ts", xs, ["up"] * 5, classes=["up", "down"], overwrite=True)
    got = predict_classes(root / "run", root / "labelled.ts").probabilities
    assert [r[2:] for r in rows[1:]] == [[f"{p:.6f}" for p in row] for row in got.tolist()]


# ---- read_ts(classes=...) ------------------------------------------------------------------


def test_classes_number_a_test_files_labels_as_the_training_file_does() -> None:
    train = parse_ts("@classLabel true jump run walk\n@data\n1:jump\n2:run\n3:walk\n")
    test = "@classLabel true jump walk\n@data\n1:jump\n2:walk\n3:walk\n"
    assert parse_ts(test).labels == [0, 1, 1]  # its own declaration: walk would be "run"
    mapped = parse_ts(test, classes=train.classes)
    assert mapped.classes == ["jump", "run", "walk"] and mapped.labels == [0, 2, 2]
    # another order of the same classes
    other = parse_ts("@classLabel true walk jump run\n@data\n1:run\n", classes=train.classes)
    assert other.labels == [1]
    # an unlabelled file keeps no classes and labels -1
    new = parse_ts("@classLabel false\n@data\n1\n", require_labels=False, classes=train.classes)
    assert new.classes == [] and new.labels == [-1]


def test_a_label_outside_classes_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "t.ts"
    path.write_text("@classLabel true a b\n@data\n1:a\n2:b\n", encoding="utf-8")
    raises_exactly(ValueError, f"{path}, line 4: class label 'b' is not one of classes (a, c)",
                   read_ts, path, classes=["a", "c"])  # fmt: skip


@pytest.mark.parametrize(
    ("classes", "exc", "message"),
    [
        ("ab", TypeError, "classes must be a list of class names; got str"),
        (5, TypeError, "classes must be a list of class names; got int"),
        (["a", 1], TypeError, "classes must be a list of class names (non-empty str); got 1"),
        (["a", ""], TypeError, "classes must be a list of class names (non-empty str); got ''"),
        (["a", "b", "a"], ValueError, "classes must name each class once; got 'a' twice"),
    ],
)
def test_classes_must_be_distinct_names(tmp_path: Path, classes, exc, message) -> None:
    missing = tmp_path / "none.ts"  # checked before the file is looked for
    raises_exactly(exc, message, read_ts, missing, classes=classes)
    raises_exactly(exc, message, parse_ts, "@classLabel true a\n@data\n1:a\n", classes=classes)


def test_parse_ts_checks_missing_as_read_ts_does() -> None:
    raises_exactly(ValueError, "missing must be one of ffill, error, keep; got 'drop'", parse_ts,
                   "@classLabel true a\n@data\n1:a\n", missing="drop")  # fmt: skip


# ---- what other tools' files get wrong, said in the line -------------------------------------


@pytest.mark.parametrize("sep", ["\t", " ", ";", " ; "])
def test_values_separated_otherwise_than_by_commas_are_named(sep: str) -> None:
    text = f"@classLabel true a b\n@data\n1,2:a\n1{sep}2{sep}?:b\n"
    raises_exactly(ValueError, f"f.ts, line 4: dimension 1, value 1: {f'1{sep}2{sep}?'!r} is not "
                   "a number; the values of a dimension are separated by ',' (not tabs, spaces "
                   "or ';')", parse_ts, text, "f.ts")  # fmt: skip
    # not numbers at all: the message of any other value
    raises_exactly(ValueError, "f.ts, line 3: dimension 1, value 1: 'x\\ty' is not a number (a "
                   "missing value is '?' or NaN)", parse_ts, "@classLabel true a\n@data\nx\ty:a\n",
                   "f.ts")  # fmt: skip


def test_a_label_with_a_space_is_explained() -> None:
    # aeon writes y = "left hand" as it is: the header declares "left", "hand", ...
    text = "@classLabel true left hand right foot\n@data\n1,2:left hand\n"
    raises_exactly(ValueError, "f.ts, line 3: class label 'left hand' is not declared by "
                   "@classLabel (left, hand, right, foot); a class label cannot hold a space "
                   "(@classLabel separates the labels by spaces)", parse_ts, text,
                   "f.ts")  # fmt: skip
    twice = "@classLabel true left hand right hand\n@data\n1,2:left hand\n"
    raises_exactly(ValueError, "f.ts, line 1: @classLabel declares hand twice (the labels are "
                   "separated by spaces: a class label cannot hold one)", parse_ts, twice,
                   "f.ts")  # fmt: skip


# ---- write_ts ----------------------------------------------------------------------------


def test_write_ts_without_labels_writes_a_file_to_classify(root: Path, capsys) -> None:
    xs, _ = ramps(4, 5)
    path = root / "to_classify.ts"
    write_ts(path, xs, None, overwrite=True)
    assert "@classLabel false" in path.read_text().splitlines()
    data = read_ts(path, require_labels=False)
    assert data.labels == [-1] * 4 and data.classes == []
    for (x, _), want in zip(data, xs, strict=True):
        torch.testing.assert_close(x, torch.tensor(want, dtype=torch.float32))
    raises_exactly(ValueError, f"{path}: @classLabel false; classification needs '@classLabel "
                   "true <labels>' before @data", read_ts, path)  # fmt: skip
    capsys.readouterr()
    assert main(["predict", str(root / "run"), "--data", str(path)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5


def test_write_ts_takes_the_rows_of_a_dataframe(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    wide = pd.DataFrame(np.ones((3, 4)))  # (N, T): iterating it gives its column names
    raises_exactly(ValueError, "write_ts: every series must be 2-D (T, D); series 0 has shape "
                   "(4,)", write_ts, tmp_path / "w.ts", wide, [0, 1, 0])  # fmt: skip
    write_ts(tmp_path / "w.ts", [np.ones((2, 1))] * 3, pd.DataFrame({"y": ["a", "b", "a"]})["y"])
    assert read_ts(tmp_path / "w.ts").labels == [0, 1, 0]


@pytest.mark.parametrize(
    ("series", "labels", "kwargs", "exc", "message"),
    [
        ([np.ones((2, 1)), "abc"], [0, 1], {}, TypeError,
         "write_ts: series 1 must be a (T, D) array of real numbers; got a str that torch "
         "cannot read as one"),
        ([np.ones((2, 1)), [[1.0], [2.0, 3.0]]], [0, 1], {}, TypeError,
         "write_ts: series 1 must be a (T, D) array of real numbers; got a list that torch "
         "cannot read as one"),
        ([np.array([["1"], ["2"]])], [0], {}, TypeError,
         "write_ts: series 0 must be a (T, D) array of real numbers; got a ndarray that torch "
         "cannot read as one"),
        ([np.ones((2, 1)) + 1j], [0], {}, TypeError,
         "write_ts: series 0 must hold real numbers; got torch.complex128"),
        ([np.ones((2, 1))] * 2, ["a", 1], {}, TypeError,
         "write_ts: labels must be all class names (str) or all class indices; got 'a' "
         "(series 0) and 1 (series 1)"),
        ([np.ones((2, 1))] * 3, [0, 1, "b"], {}, TypeError,
         "write_ts: labels must be all class names (str) or all class indices; got 0 "
         "(series 0) and 'b' (series 2)"),
        ([np.ones((2, 1))] * 2, [0, None], {}, ValueError,
         "write_ts: series 1: label None is not a class index (an integer >= 0) or a class name"),
        ([np.ones((2, 1))] * 2, [0, float("nan")], {}, ValueError,
         "write_ts: series 1: label nan is not a class index (an integer >= 0) or a class name"),
        ([np.ones((2, 1))] * 2, [0, -1], {}, ValueError,
         "write_ts: series 1: label -1 is not a class index in [0, 1)"),
        ([np.ones((2, 1))] * 2, ["left hand", "b"], {}, ValueError,
         "write_ts: class names must be non-empty, without spaces or ':'; got 'left hand'"),
        ([np.ones((2, 1))], [0], {"problem_name": 5}, TypeError,
         "write_ts: problem_name must be a str; got int"),
        ([np.ones((2, 1))], None, {"classes": ["a", "b"]}, ValueError,
         "write_ts: classes must be None when labels is None (a file without labels); got "
         "['a', 'b']"),
    ],
)  # fmt: skip
def test_write_ts_refuses_in_its_own_words(tmp_path, series, labels, kwargs, exc, message):
    target = tmp_path / "out.ts"
    with warnings.catch_warnings():  # a complex series was written with torch's warning only
        warnings.simplefilter("error")
        raises_exactly(exc, message, write_ts, target, series, labels, **kwargs)
    assert not target.exists()


def test_write_ts_float_labels_that_are_whole_numbers_are_indices(tmp_path: Path) -> None:
    write_ts(tmp_path / "f.ts", [np.ones((2, 1))] * 3, np.array([0.0, 1.0, 2.0]))
    data = read_ts(tmp_path / "f.ts")
    assert data.classes == ["0", "1", "2"] and data.labels == [0, 1, 2]


# ---- the classify API with NumPy numbers and lists -----------------------------------------


def test_sequence_classifier_takes_numpy_integers() -> None:
    y = np.array([0, 2, 1, 2])
    model = SequenceClassifier(np.int64(2), y.max() + 1, hidden_size=np.int64(4),
                               num_layers=np.int32(2), downsample=np.int64(2),
                               members=np.int64(1))  # fmt: skip
    assert model.head.out_features == 3 and model.downsample == 2
    assert type(model.downsample) is int and model.rnn.hidden_size == 4
    assert model.eval()(torch.randn(2, 5, 2), [5, 3]).shape == (2, 3)
    raises_exactly(ValueError, "SequenceClassifier: num_classes must be an integer >= 2 (a "
                   "classifier chooses among classes); got np.int64(1)", SequenceClassifier, 2,
                   np.int64(1))  # fmt: skip
    raises_exactly(ValueError, "SequenceClassifier: num_classes must be an integer >= 2 (a "
                   "classifier chooses among classes); got 3.0", SequenceClassifier, 2,
                   3.0)  # fmt: skip


def test_aggregate_refuses_a_window_of_no_steps() -> None:
    x, lengths = torch.randn(2, 4, 1), torch.tensor([4, 2])
    raises_exactly(ValueError, "aggregate: k must be a positive integer (steps per window); got 0",
                   aggregate, x, lengths, 0)  # fmt: skip
    raises_exactly(ValueError, "aggregate: k must be a positive integer (steps per window); got "
                   "1.5", aggregate, x, lengths, 1.5)  # fmt: skip
    z, n = aggregate(x, lengths, np.int64(2))
    assert z.shape == (2, 2, 1) and n.tolist() == [2, 1]


def test_accuracy_and_confusion_matrix_take_lists_and_refuse_in_one_line() -> None:
    assert accuracy([0, 1, 1], np.array([0, 1, 0])) == 2 / 3
    assert confusion_matrix([0, 1], (1, 1), 2).tolist() == [[0, 1], [0, 1]]
    raises_exactly(ValueError, "accuracy: predicted and truth must have one entry per series; "
                   "got 3 and 2", accuracy, torch.tensor([0, 1, 1]),
                   torch.tensor([1, 1]))  # fmt: skip
    raises_exactly(TypeError, "accuracy: predicted must be a 1-D tensor, array or list of class "
                   "indices; got shape (2,) of torch.float32", accuracy, torch.tensor([0.0, 1.0]),
                   [0, 1])  # fmt: skip
    raises_exactly(TypeError, "accuracy: truth must be a 1-D tensor, array or list of class "
                   "indices; got str", accuracy, [0], "a")  # fmt: skip
    raises_exactly(TypeError, "confusion_matrix: truth must be a 1-D tensor, array or list of "
                   "class indices; got shape (1, 2) of torch.int64", confusion_matrix, [[0, 1]],
                   [0, 1], 2)  # fmt: skip
    raises_exactly(ValueError, "confusion_matrix: truth and predicted must have one entry per "
                   "series; got 2 and 1", confusion_matrix, [0, 1], [0], 2)  # fmt: skip
    raises_exactly(ValueError, "confusion_matrix: truth must hold class indices in [0, 2); got "
                   "values from 0 to 3", confusion_matrix, [0, 3], [1, 1], 2)  # fmt: skip
    raises_exactly(ValueError, "confusion_matrix: predicted must hold class indices in [0, 2); "
                   "got values from -1 to 1", confusion_matrix, [0, 1], [-1, 1], 2)  # fmt: skip
    raises_exactly(ValueError, "confusion_matrix: classes must be a positive integer (the number "
                   "of classes); got 0", confusion_matrix, [], [], 0)  # fmt: skip


def test_confusion_png_needs_a_name_per_row() -> None:
    raises_exactly(ValueError, "confusion_png: confusion must be (3, 3) for 3 class names; got "
                   "shape (2, 2)", confusion_png, torch.eye(2, dtype=torch.long), ["a", "b", "c"],
                   "t")  # fmt: skip
    assert confusion_png(torch.eye(2, dtype=torch.long), ["a", "b"], "t")[:4] == b"\x89PNG"


def test_the_cli_refuses_a_tab_separated_training_file_in_one_line(tmp_path, capsys) -> None:
    data = tmp_path / "tabs.ts"
    data.write_text("@classLabel true a b\n@data\n" + "1\t2\t3:a\n3\t2\t1:b\n" * 8)
    line = refused(capsys, ["train", "classify", "--data", str(data), *TINY, "--out",
                            str(tmp_path / "run")], tmp_path)  # fmt: skip
    assert line == (f"rnnkit train: error: {data.resolve()}, line 3: dimension 1, value 1: "
                    "'1\\t2\\t3' is not a number; the values of a dimension are separated by ',' "
                    "(not tabs, spaces or ';')")  # fmt: skip


def test_a_header_tag_given_again_must_say_the_same() -> None:
    """A second @classLabel replaced the first's classes without a word; the same tag
    again with the same value (in any case, for the others than @classLabel) is read."""
    from rnnkit.data.ts_format import parse_ts

    text = "@classLabel true a b\n@classLabel true a b c\n@data\n1,2:a\n"
    with pytest.raises(ValueError) as err:
        parse_ts(text, "f.ts")
    assert str(err.value) == (
        "f.ts, line 2: @classLabel 'true a b c' contradicts line 1's 'true a b'; expected "
        "each tag of the header once"
    )
    with pytest.raises(ValueError) as err:
        parse_ts("@dimensions 1\n@classLabel true a\n@dimensions 2\n@data\n1:a\n", "f.ts")
    assert str(err.value) == (
        "f.ts, line 3: @dimensions '2' contradicts line 1's '1'; expected each tag of the "
        "header once"
    )
    same = "@univariate true\n@univariate TRUE\n@problemName x\n@problemName y\n"
    data = parse_ts(same + "@classLabel true a b\n@classLabel true a b\n@data\n1,2:a\n")
    assert data.classes == ["a", "b"] and data.problem_name == "y"
