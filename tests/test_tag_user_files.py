"""`rnnkit train tag --data` with the files people make: pandas' other JSON layouts, CoNLL
columns, CSV, UTF-16, token lists, one feature a step; `TaggedSequences` given what
`read_jsonl` does not check; test tags the run never saw, named."""

from __future__ import annotations

import codecs
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.cli import main
from rnnkit.data import tagging as T
from rnnkit.data.vocab import Vocabulary

PANDAS = (
    'JSON lines hold one example a line, as pandas\' to_json(orient="records", lines=True) writes'
)
ONE_A_LINE = 'expected JSON lines, one {"x": ..., "y": [...]} object per line'
ROWS = [{"x": "ab1", "y": ["L", "L", "D"]}, {"x": "c", "y": ["L"]}, {"x": "22", "y": ["D", "D"]}]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _refused(path: Path, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(f"--data {path}{message}") + "$"):
        T.read_jsonl(path)


# ---- files in other formats ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # A CoNLL file: a token and its tag a line, sentences apart.
        ("John B-PER\nlives O\n\nParis B-LOC\n",
         " line 1: not valid JSON (Expecting value at column 1); " + ONE_A_LINE
         + "; got 'John B-PER'"),
        # pandas' to_csv(): a header line, then quoted lists.
        ('x,y\nab,"[\'A\', \'B\']"\n',
         " line 1: not valid JSON (Expecting value at column 1); " + ONE_A_LINE + "; got 'x,y'"),
        # A CSV whose first field is quoted reads as a JSON string with more after it.
        ('"ab","A B"\n',
         ' line 1: not valid JSON (Extra data at column 5); ' + ONE_A_LINE
         + """; got '"ab","A B"'"""),
        # Plain text given as --data.
        ("def f(x):\n", " line 1: not valid JSON (Expecting value at column 1); " + ONE_A_LINE
         + "; got 'def f(x):'"),
    ],
    ids=["conll", "csv", "quoted-csv", "text"],
)  # fmt: skip
def test_a_file_in_another_format_says_what_a_line_must_hold(tmp_path, text, message):
    _refused(_write(tmp_path / "d.jsonl", text), message)


def test_a_broken_json_line_keeps_its_message(tmp_path):
    # A line that opens an object is JSON lines gone wrong: no hint about other formats.
    path = _write(tmp_path / "d.jsonl", '{"x": "ab", "y": ["A", "B"]\n')
    _refused(path, " line 1: not valid JSON (Expecting ',' delimiter at column 28)")


@pytest.mark.parametrize(
    ("orient", "message"),
    [
        ("records", ' line 1: expected an object {"x": ..., "y": [...]}; got a list of 3 '
         f"objects, a whole table on one line ({PANDAS})"),
        ("values", ' line 1: expected an object {"x": ..., "y": [...]}; got a list of 3 lists, '
         f"a whole table on one line ({PANDAS})"),
        ("columns", " line 1: x and y must be one example's; got objects keyed by row (3 and 3 "
         f"rows), a whole table on one line ({PANDAS})"),
        ("index", ' line 1: missing key "x" (keys: 0, 1, 2); it is a whole table on one line '
         f"({PANDAS})"),
        ("split", ' line 1: missing key "x" (keys: columns, index, data); it is a whole table '
         f"on one line ({PANDAS})"),
        ("table", ' line 1: missing key "x" (keys: schema, data); it is a whole table on one '
         f"line ({PANDAS})"),
    ],
)  # fmt: skip
def test_pandas_to_json_without_lines_is_named(tmp_path, orient, message):
    pd = pytest.importorskip("pandas")
    path = tmp_path / f"{orient}.json"
    pd.DataFrame(ROWS).to_json(path, orient=orient)
    _refused(path, message)


def test_pandas_to_json_with_lines_reads(tmp_path):
    # pandas escapes "ü" as \u00fc, "/" as \/ and an emoji as a surrogate pair; a file
    # saved again on Windows has a BOM and CRLF line ends.
    pd = pytest.importorskip("pandas")
    rows = [*ROWS, {"x": "ü/😀", "y": ["Lücke✓", "/", "😀"]}]
    path = tmp_path / "records.jsonl"
    pd.DataFrame([{**r, "id": i} for i, r in enumerate(rows)]).to_json(
        path, orient="records", lines=True
    )
    assert "\\u00fc" in path.read_text() and "\\/" in path.read_text()
    assert [(e.x, e.y) for e in T.read_jsonl(path)] == [(r["x"], r["y"]) for r in rows]
    windows = tmp_path / "windows.jsonl"
    windows.write_bytes(codecs.BOM_UTF8 + path.read_bytes().replace(b"\n", b"\r\n"))
    assert [(e.x, e.y) for e in T.read_jsonl(windows)] == [(r["x"], r["y"]) for r in rows]


def test_a_long_list_of_keys_is_cut(tmp_path):
    keys = {str(i): 0 for i in range(300)}
    path = _write(tmp_path / "d.jsonl", json.dumps(keys) + "\n")
    _refused(path, ' line 1: missing key "x" (keys: 0, 1, 2, 3, 4, ... 300 in all)')
    path = _write(tmp_path / "e.jsonl", json.dumps({"text": "ab", "tags": ["A", "B"]}) + "\n")
    _refused(path, ' line 1: missing key "x" (keys: text, tags)')


@pytest.mark.parametrize("bom", [codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE])
def test_a_utf16_file_is_named(tmp_path, bom):
    path = tmp_path / "d.jsonl"
    codec = "utf-16-le" if bom == codecs.BOM_UTF16_LE else "utf-16-be"
    path.write_bytes(bom + json.dumps(ROWS[0]).encode(codec))
    _refused(
        path,
        f": not UTF-8 text; got UTF-16 (the file begins with the byte-order mark "
        f"0x{bom[0]:02x} 0x{bom[1]:02x}): save it as UTF-8",
    )


# ---- x of the wrong shape ----------------------------------------------------------------


def test_tokens_and_one_feature_a_step_get_a_hint(tmp_path):
    path = _write(tmp_path / "d.jsonl", '{"x": ["John", "lives"], "y": ["B-PER", "O"]}\n')
    _refused(
        path,
        " line 1: x must be a string or a list of steps, each a list of numbers; got a list "
        "whose item 0 is a string 'John' (tokens: join them into one string and give each "
        "character its token's tag)",
    )
    path = _write(tmp_path / "e.jsonl", '{"x": [0.5, 2, -1], "y": ["A", "B", "A"]}\n')
    _refused(
        path,
        " line 1: x must be a string or a list of steps, each a list of numbers; got a list "
        "whose item 0 is a number 0.5 (one feature a step: each step a list of one, [[0.5], "
        "[2], ...])",
    )
    # A mix of numbers and lists is no single feature a step: the plain message.
    path = _write(tmp_path / "f.jsonl", '{"x": [[1], 2], "y": ["A", "B"]}\n')
    _refused(
        path,
        " line 1: x must be a string or a list of steps, each a list of numbers; got a list "
        "whose item 1 is a number 2",
    )


# ---- TaggedSequences -----------------------------------------------------------------------


VOCAB = Vocabulary.from_text("abc")


def _dataset_refuses(kind: type[Exception], message: str, *args: object) -> None:
    with pytest.raises(kind, match="^" + re.escape(message) + "$"):
        T.TaggedSequences(*args)  # type: ignore[arg-type]


def test_tagged_sequences_refuses_an_unlabelled_or_short_y(tmp_path):
    # read_jsonl(require_labels=False) reads a line without "y" as y == []: pad_collate
    # then made a (B, 0) tags tensor for (B, 3) inputs without a word.
    path = _write(tmp_path / "d.jsonl", '{"x": "abc"}\n{"x": "ab", "y": ["A", "B"]}\n')
    examples = T.read_jsonl(path, require_labels=False)
    _dataset_refuses(ValueError, "TaggedSequences: line 1: y must hold one tag per step of x; "
                     "got 0 tag(s) for 3 step(s)", examples, VOCAB, ["A", "B"])  # fmt: skip
    _dataset_refuses(ValueError, "TaggedSequences: line 4: y must hold one tag per step of x; "
                     "got 1 tag(s) for 2 step(s)", [T.Example("ab", ["A"], 4)], VOCAB,
                     ["A", "B"])  # fmt: skip
    doc = T.Document(np.zeros((3, 2), np.float32), np.zeros(2, np.int64), "mine")
    _dataset_refuses(ValueError, "TaggedSequences: mine: y must hold one tag per step of x; "
                     "got 2 tag(s) for 3 step(s)", [doc], None, ["A", "B"])  # fmt: skip
    doc = T.Document("ab", np.zeros(1, np.int64))
    _dataset_refuses(ValueError, "TaggedSequences: a document: y must hold one tag per step of "
                     "x; got 1 tag(s) for 2 step(s)", [doc], VOCAB, ["A", "B"])  # fmt: skip


def test_tagged_sequences_refuses_tags_listed_twice_or_a_string():
    # A tag listed twice took the id of its last place: "A" was 2 with tags A, B, A.
    examples = [T.Example("ab", ["A", "B"], 1)]
    _dataset_refuses(ValueError, "TaggedSequences: tags must be distinct (a tag's place is its "
                     "id); got 'A' more than once", examples, VOCAB, ["A", "B", "A"])  # fmt: skip
    _dataset_refuses(TypeError, "TaggedSequences: tags must be a list of tag names; got str 'AB'",
                     examples, VOCAB, "AB")  # fmt: skip


def test_tagged_sequences_refuses_x_that_is_no_text_or_features():
    # A list of tokens ended in numpy's "could not convert string to float: 'John'".
    tokens = [T.Example(["John", "lives"], ["A", "B"], 2)]  # type: ignore[arg-type]
    _dataset_refuses(TypeError, "TaggedSequences: line 2: x must be a str or a (T, F) array of "
                     "features; got list", tokens, VOCAB, ["A", "B"])  # fmt: skip
    flat = [T.Example(np.zeros(2), ["A", "B"], 2)]
    _dataset_refuses(TypeError, "TaggedSequences: line 2: x must be a str or a (T, F) array of "
                     "features; got ndarray of shape (2,)", flat, VOCAB, ["A", "B"])  # fmt: skip


def test_tagged_sequences_takes_lists_arrays_and_tensors_of_features():
    rows = [[0.5, 1.0], [2.0, -1.0]]
    for x in (rows, np.array(rows), torch.tensor(rows, requires_grad=True)):
        data = T.TaggedSequences([T.Example(x, ["B", "A"], 1)], None, ["A", "B"])  # type: ignore[arg-type]
        got_x, got_y = data[0]
        assert got_x.dtype == torch.float32 and got_x.tolist() == rows
        assert got_y.tolist() == [1, 0]


# ---- tags only in the test file ------------------------------------------------------------


def _lines(n: int, text: str, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        s = "".join(rng.choice(list(text), 8))
        out.append(json.dumps({"x": s, "y": ["D" if c.isdigit() else "L" for c in s]}))
    return "\n".join(out) + "\n"


def test_test_tags_the_run_never_saw_are_named(tmp_path, capsys):
    data = _write(tmp_path / "train.jsonl", _lines(20, "ab12"))
    test = _write(
        tmp_path / "test.jsonl",
        json.dumps({"x": "a1.!", "y": ["L", "D", "Punkt·", "Punkt·"]})
        + "\n"
        + json.dumps({"x": "b?", "y": ["L", "Frage"]})
        + "\n",
    )
    loaded = T.load_jsonl(data, test)
    assert loaded.tags == ["D", "L"] and loaded.unseen == {"Punkt·": 2, "Frage": 1}
    assert loaded.describe() == (
        f"{data.resolve()}: lines: train 18 (144 steps), validation 2 (16 steps), test 2 "
        "(6 steps); 2 tags (the test data has 2 more, always wrong: Punkt·, Frage)"
    )
    assert T.load_jsonl(data).unseen == {}
    run = tmp_path / "run"
    argv = ["train", "tag", "--data", str(data), "--test-data", str(test), "--steps", "2",
            "--hidden", "2", "--embed", "2", "--seq-len", "8", "--out", str(run)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "2 tags (the test data has 2 more, always wrong: Punkt·, Frage); run folder" in out
    assert main(["eval", str(run), "--out", str(tmp_path / "figs")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "  (tags unseen in training, always wrong: Punkt· 2, Frage 1)" in lines


def test_named_tags_are_cut_after_five():
    from rnnkit.tasks.tag import named_tags

    counts = {f"T{i}": 10 - i for i in range(7)}
    assert named_tags(counts) == "T0 10, T1 9, T2 8, T3 7, T4 6, ... 7 tags in all"
    assert named_tags({"A": 1_000}) == "A 1,000"


def test_a_features_run_reports_per_step(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(20):
        x = rng.normal(size=(6, 2)).round(3)
        rows.append(
            json.dumps({"x": x.tolist(), "y": ["up" if v > 0 else "down" for v in x[:, 0]]})
        )
    data = _write(tmp_path / "f.jsonl", "\n".join(rows) + "\n")
    argv = ["train", "tag", "--data", str(data), "--steps", "2", "--hidden", "2",
            "--seq-len", "8", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    (line,) = [x for x in out.splitlines() if x.startswith("validation accuracy ")]
    assert re.fullmatch(r"validation accuracy [\d.]+% per step \(all 12\); most frequent tag "
                        r"baseline [\d.]+%", line), line  # fmt: skip
    # The throughput counts steps too, in the progress line and the closing one.
    assert re.search(r"^[\d,]+ training steps/s", out, re.M), out
    assert "steps/s" in err and "chars/s" not in out + err


def test_a_tag_no_training_line_holds_is_named_when_training_starts(tmp_path):
    """A tag only the held-out lines of --data hold is an output the model never
    learns: the first line of the run says so, and which."""
    from rnnkit.data.tagging import load_jsonl, split_lines

    held = split_lines(19, 0, ("validation", "test"))["test"][0]
    rows = [{"x": "ab", "y": ["A", "B"]} for _ in range(19)]
    rows[held] = {"x": "c", "y": ["C"]}
    path = _write(tmp_path / "d.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    data = load_jsonl(str(path))
    assert data.untrained == ["C"]
    assert data.describe() == (
        f"{path}: lines: train 15 (30 steps), validation 2 (4 steps), test 2 (3 steps); 3 "
        "tags (1 in no training line, never learned: C; add lines that hold them, or another "
        "--split-seed)"
    )
    # A split that trains on the line: nothing to say.
    seed = next(
        s for s in range(1, 50) if held in split_lines(19, s, ("validation", "test"))["train"]
    )
    assert load_jsonl(str(path), split_seed=seed).untrained == []
