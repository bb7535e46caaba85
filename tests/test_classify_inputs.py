"""What `rnnkit train classify`, `rnnkit eval` and the `.ts` reader and writer refuse: a
value float32 cannot hold, odd line breaks, stray text between timestamped pairs, files
write_ts must not write, a hand-edited config.json, options that are silently ignored."""

from __future__ import annotations

import io
import math
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from _runs import edited
from rnnkit.cli import main
from rnnkit.data.ts_format import parse_ts, read_ts, write_ts
from rnnkit.tasks.classify import ClassifyTask, confusion_png
from rnnkit.train import TrainConfig, train
from rnnkit.train.distributed import Context

LABELLED = "@classLabel true a b\n@data\n"
STAMPED = "@timeStamps true\n@univariate true\n" + LABELLED
SMALL = {"hidden_size": 8, "batch_size": 4, "dropout": 0.0}
STEPS = {"steps": 2, "eval_every": 2, "log_every": 2, "threads": 1}


def quiet() -> dict[str, Any]:
    return {"log": lambda _: None, "progress": io.StringIO()}


def series_file(path: Path, n: int = 16) -> str:
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(4 + i % 3, 2, generator=g) for i in range(n)]
    write_ts(path, xs, [i % 2 for i in range(n)], classes=["up", "down"])
    return str(path)


# ---- the reader ---------------------------------------------------------------------------


def test_a_value_float32_cannot_hold_is_refused():
    body = "0,1,2:a\n" * 6 + "3,1e+39,2:b\n"
    with pytest.raises(
        ValueError, match=r"^h\.ts, line 9: dimension 1, value 2: '1e\+39' is out of range for "
    ):
        parse_ts(LABELLED + body, "h.ts")
    with pytest.raises(ValueError, match=r"line 3: dimension 1, value 1: '-4e38' is out of range"):
        parse_ts(LABELLED + "-4e38:a\n", "h.ts")
    assert parse_ts(LABELLED + "3.4e38,-3.4e38,1e-50:a\n", "h.ts")[0][0][:, 0].isfinite().all()


@pytest.mark.parametrize("value", ["1_000", "\u0663", "\uff11", "0x10"])
def test_a_value_float_reads_but_no_ts_file_means_is_not_a_number(value):
    """float() reads "1_000" as 1000 and "\u0663" (Arabic-Indic three) as 3."""
    message = (
        f"h.ts, line 3: dimension 1, value 2: {value!r} is not a number (a missing value is "
        "'?' or NaN)"
    )
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        parse_ts(LABELLED + f"1,{value}:a\n", "h.ts")


def test_a_value_beyond_float64_is_out_of_range_not_infinite():
    """1e309 reads as inf: it was called 'not finite', while 1e39 was out of range."""
    for value in ("1e309", "-1e309"):
        message = (
            f"h.ts, line 3: dimension 1, value 2: {value!r} is out of range for float32 (at most "
            "3.402823e+38 in magnitude)"
        )
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            parse_ts(LABELLED + f"1,{value}:a\n", "h.ts")
    for value in ("inf", "-Infinity", "-nan"):  # spelled out: not finite, as before
        message = f"h.ts, line 3: dimension 1, value 2: {value!r} is not finite"
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            parse_ts(LABELLED + f"1,{value}:a\n", "h.ts")
    x, _ = parse_ts(LABELLED + "+1.5, .5 ,5.,2E1,NaN,?:a\n", "h.ts")[0]
    assert x[:, 0].tolist() == [1.5, 0.5, 5.0, 20.0, 20.0, 20.0]


def test_a_header_count_in_other_digits_is_refused_in_the_readers_words():
    """'\u00b2'.isdigit() is true, and int() then failed in its own words."""
    for value in ("\u00b2", "\u0663"):
        message = f"h.ts, line 1: @dimensions must be a positive integer; got {value!r}"
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            parse_ts(f"@dimensions {value}\n" + LABELLED + "1:a\n", "h.ts")


def test_only_newlines_end_lines():
    """A form feed (or U+2028, \\x1c, ...) inside a line is not a line break: a comment
    holding one is still one comment line, and the line numbers after it stay right."""
    for odd in ("\x0c", "\x0b", "\x1c", "\x85", "\u2028"):
        text = f"# exported by tool{odd}page 2\n" + LABELLED + "1,2,3:a\n4,x,6:b\n"
        with pytest.raises(ValueError, match=r"^f\.ts, line 5: dimension 1, value 2: 'x'"):
            parse_ts(text, "f.ts")
        assert len(parse_ts(text.replace("x", "5"), "f.ts")) == 2
    crlf = "@classLabel true a b\r\n@data\r\n1,2:a\r\n3,4:b\r\n"
    assert parse_ts(crlf, "c.ts").lines == [3, 4]
    assert parse_ts(crlf.replace("\r\n", "\r"), "c.ts").lines == [3, 4]  # old Mac files


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("(t,1),2.5,(t,3):a", r"line 5: dimension 1, value 2: @timeStamps true expects "
                              r"'\(timestamp,value\)'; got '2\.5,\(t,3\)'"),
        ("(1,5)junk(2,6):a", r"line 5: dimension 1: expected ',' after value 1 "
                             r"\(timestamp,value\); got 'junk\(2,6\)'"),
        ("(1,5),(2,6),:a", r"line 5: dimension 1, value 3: .*expects '\(timestamp,value\)'; "
                           r"got ''"),
        ("(1,5),(6):a", r"line 5: dimension 1, value 2: .*expects '\(timestamp,value\)'"),
        ("(1,5),(2,6:a", r"line 5: a '\(' is not closed by a '\)'"),
        ("(1,5)),(2,6):a", r"line 5: a '\)' \(character 6\) closes no '\('"),
        ("((1,5)):a", r"line 5: dimension 1, value 1: .*expects '\(timestamp,value\)'"),
    ],
)  # fmt: skip
def test_timestamped_series_are_pairs_and_nothing_else(line, message):
    with pytest.raises(ValueError, match=message) as err:
        parse_ts(STAMPED + line + "\n", "s.ts")
    assert "\n" not in str(err.value) and str(err.value).startswith("s.ts, line 5: ")


def test_timestamped_pairs_with_spaces_and_dimensions_still_read():
    text = "@timeStamps true\n@dimensions 2\n" + LABELLED + "(1, 5) , (2,6):(1,7),(2, ?):b\n"
    x, y = parse_ts(text, "s.ts")[0]
    assert x.tolist() == [[5, 7], [6, 7]] and y == 1


# ---- the writer ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("series", "labels", "classes", "message"),
    [
        ([torch.zeros(0, 2), torch.zeros(3, 2)], [0, 1], None, r"series 0 has no steps"),
        ([torch.zeros(3, 0)], [0], None, r"series 0 has no dimension"),
        ([torch.tensor([[1.0], [math.inf]])], [0], None,
         r"series 0, dimension 1, step 2: inf is not finite"),
        ([torch.tensor([[1.0], [-math.inf]])], [0], None,
         r"series 0, dimension 1, step 2: -inf is not finite"),
        ([torch.tensor([[1.0], [1e39]], dtype=torch.float64)], [0], None,
         r"series 0, dimension 1, step 2: 1e\+39 is out of range for float32"),
        ([torch.tensor([[1.0, math.nan], [2.0, math.nan]])], [0], None,
         r"series 0, dimension 2 is all missing"),
        ([torch.zeros(2, 1)], [-1], ["a", "b"], r"series 0: label -1 is not a class index"),
        ([torch.zeros(2, 1)], [2], ["a", "b"], r"series 0: label 2 is not a class index"),
        ([torch.zeros(2, 1)], [0], ["a", "a"], r"class names must differ; 'a' twice"),
    ],
)  # fmt: skip
def test_write_ts_refuses_what_read_ts_would_refuse(tmp_path, series, labels, classes, message):
    f = tmp_path / "w.ts"
    with pytest.raises(ValueError, match="^write_ts: " + message):
        write_ts(f, series, labels, classes=classes)
    assert not f.exists()
    with pytest.raises(ValueError, match=r"^write_ts: problem_name must be one line"):
        write_ts(f, [torch.zeros(2, 1)], [0], problem_name="two\nlines")


def test_what_write_ts_writes_read_ts_reads_back(tmp_path):
    big = torch.tensor([[3.4e38, -1e-45, math.nan], [1.0, 2.0, 5.0]])  # (T 2, D 3)
    write_ts(tmp_path / "w.ts", [big, big[1:, :]], [1, 0], classes=["x", "y"])
    back = read_ts(tmp_path / "w.ts", missing="keep")
    assert torch.equal(back[0][0].nan_to_num(7.0), big.nan_to_num(7.0)) and back.labels == [1, 0]
    assert back.missing == 1 and back.lengths == [2, 1]


# ---- options ------------------------------------------------------------------------------


def test_test_fraction_ignored_by_the_split_used_is_refused(tmp_path):
    f = series_file(tmp_path / "d.ts")
    t = series_file(tmp_path / "t.ts", n=6)
    with pytest.raises(ValueError, match=r"^--test-fraction 0\.3 .*--test-data"):
        train("classify", {"data": f, "test_data": t, "test_fraction": 0.3, **SMALL},
              TrainConfig(**STEPS), out=tmp_path / "run", **quiet())  # fmt: skip
    assert not (tmp_path / "run").exists()
    task = ClassifyTask(ClassifyTask.Options(dataset="GunPoint", test_fraction=0.3))
    with pytest.raises(ValueError, match=r"^--test-fraction 0\.3 .*--dataset GunPoint"):
        task.prepare(ClassifyTask.default_train(), Context(0, 1, torch.device("cpu")))
    # the default, given or not, is no request: a run with a test file starts
    train("classify", {"data": f, "test_data": t, "test_fraction": 0.25, **SMALL},
          TrainConfig(**STEPS), out=tmp_path / "ok", **quiet())  # fmt: skip


def test_test_fraction_on_the_command_line_is_one_line_status_2(tmp_path, capsys):
    f = series_file(tmp_path / "d.ts")
    t = series_file(tmp_path / "t.ts", n=6)
    out = tmp_path / "run"
    for given in (["--test-data", t, "--test-fraction", "0.3"], ["--test-fraction", "1"],
                  ["--test-fraction", "0"], ["--test-fraction", "-0.5"]):  # fmt: skip
        assert main(["train", "classify", "--data", f, *given, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "--test-fraction" in err, err
        if given[0] != "--test-data":
            assert "(0, 1)" in err and "[0" not in err, err
        assert not out.exists()


# ---- a hand-edited config.json ------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("classify_run")
    f = series_file(root / "d.ts", n=24)
    out = root / "run"
    train("classify", {"data": f, **SMALL}, TrainConfig(**STEPS), out=out, **quiet())
    return out


def _set(*keys_value):
    *keys, value = keys_value

    def change(d):
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value(d) if callable(value) else value

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("split", "test", []), r"split\.test must hold at least one series"),
        (_set("split", "test", lambda s: s["test"] + s["val"][:1]),
         r"split\.test and split\.val share series \d+"),
        (_set("split", "val", lambda s: s["val"] + s["val"][:1]),
         r"derived: split\.val holds series \d+ twice$"),
        (_set("majority", 7), r"majority must be a class index in \[0, 2\); got 7"),
        (_set("majority", "up"), r"majority must be a class index in \[0, 2\); got 'up'"),
        (_set("source", "train", {}), r"source\.train must be an object with the 'path' of"),
        (_set("source", "train", "x.ts"), r"source\.train must be an object with the 'path'"),
        (_set("source", "test", 3), r"source\.test must be null or an object with the 'path'"),
        (_set("source", "dataset", "Nope"), r"source\.dataset must be null or one of"),
        (_set("classes", [1, 2]), r"classes must be a list of at least two names; got \[1, 2\]"),
        (_set("classes", ["up", "up"]), r"derived: classes: 'up' is named twice$"),
        (_set("classes", ["up", "left"]), r"classes \['up', 'left'\] are not those of the "
                                          r"training file"),
        (_set("std", [0.0, 1.0]),
         r"derived: std must be 2 finite numbers > 0; got \[0\.0, 1\.0\]$"),
        (_set("std", [1.0, -2.0]),
         r"derived: std must be 2 finite numbers > 0; got \[1\.0, -2\.0\]$"),
        (_set("mean", [True, 0.0]), r"derived: mean must be 2 finite numbers; got \[True, 0\.0\]$"),
    ],
)  # fmt: skip
def test_a_hand_edited_config_is_one_line_naming_the_key(run_dir, tmp_path, capsys, change,
                                                        message):  # fmt: skip
    copy = edited(run_dir, tmp_path, change)
    before = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no torch warning on the way
        assert main(["eval", str(copy)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"{copy / 'config.json'}: derived: " in err, err
    assert re.search(message, err), err
    assert {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()} == before


def test_a_run_whose_splits_leave_no_training_series_is_refused(run_dir, tmp_path, capsys):
    def everything(d):
        n = 24
        d["split"]["val"] = [i for i in range(n) if i not in d["split"]["test"]]

    assert main(["eval", str(edited(run_dir, tmp_path, everything))]) == 2
    assert "leave no training series" in capsys.readouterr().err


# ---- the confusion matrix -----------------------------------------------------------------


def test_class_names_outside_the_font_draw_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        png = confusion_png(torch.tensor([[2, 1], [0, 3]]), ["猫", "犬"], "猫 or 犬")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_split_test_list_in_a_run_with_a_test_file_is_refused():
    from rnnkit.tasks.classify import check_split

    with pytest.raises(ValueError, match=r"^c: split\.test must be null: the run has a test"):
        check_split({"val": [1], "test": 5}, 10, False, "c")
    check_split({"val": [1], "test": None}, 10, False, "c")
