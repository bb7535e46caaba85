"""Each error message of rnnkit.data (collate, vocab, tasks, corpus, ts_format, tagging)
reached through its public function, asserted word for word."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from _refusals import raises as _raises
from rnnkit.data import corpus, pad_collate, tagging, tasks, ts_format
from rnnkit.data.vocab import Vocabulary

# ---- pad_collate ----------------------------------------------------------------------


def test_pad_collate_messages():
    _raises(ValueError, "pad_collate: the batch is empty", pad_collate, [])
    _raises(
        ValueError,
        "pad_collate: every sample must have the same number of parts; sample 1 has 1, "
        "sample 0 has 2",
        pad_collate,
        [(torch.ones(2, 1), 0), (torch.ones(2, 1),)],
    )
    _raises(
        ValueError,
        "pad_collate: sample 1's sequence must have a time dimension; got a scalar",
        pad_collate,
        [torch.ones(2), torch.tensor(1.0)],
    )
    _raises(
        ValueError,
        "pad_collate: sample 1's steps have shape (3,); sample 0's have (2,)",
        pad_collate,
        [torch.ones(2, 2), torch.ones(1, 3)],
    )


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        # Each was torch's own words, naming neither pad_collate nor the sample.
        (lambda: pad_collate([(torch.ones(2, 1), torch.ones(2)),
                              (torch.ones(3, 1), torch.ones(3, 2))]),
         ValueError, "pad_collate: sample 1's part 1 has shape (3, 2); sample 0's has (2,) "
         "(expected one shape, or per-step parts that differ in their first dimension only)"),
        (lambda: pad_collate([(torch.ones(2, 1), torch.tensor(1)),
                              (torch.ones(3, 1), torch.ones(3))]),
         ValueError, "pad_collate: sample 1's part 1 has shape (3,); sample 0's has () "
         "(expected one shape, or per-step parts that differ in their first dimension only)"),
        (lambda: pad_collate([(torch.ones(2, 1), 0), (torch.ones(3, 1), None)]), TypeError,
         "pad_collate: sample 1's part 1 must be a tensor, an array, a number, a string, a dict "
         "or a list; got NoneType"),
        (lambda: pad_collate([(torch.ones(2, 1), torch.tensor(0)), (torch.ones(3, 1), 1)]),
         TypeError, "pad_collate: sample 1's part 1 is a number; sample 0's is a tensor"),
        (lambda: pad_collate([(torch.ones(2, 1), [1, 2]), (torch.ones(3, 1), [1])]), ValueError,
         "pad_collate: sample 1's part 1 has 1 items; sample 0's has 2"),
        (lambda: pad_collate([(torch.ones(2, 1), {"a": 1}), (torch.ones(3, 1), {"b": 1})]),
         ValueError, "pad_collate: sample 1's part 1 has keys ['b']; sample 0's has ['a']"),
        (lambda: pad_collate(["abc", "de"]), TypeError, "pad_collate: sample 0's sequence must be "
         "a tensor, an array or rectangular nested lists of numbers; got str"),
        (lambda: pad_collate([torch.ones(2), {"x": [1.0]}]), TypeError, "pad_collate: sample 1's "
         "sequence must be a tensor, an array or rectangular nested lists of numbers; got dict"),
        (lambda: pad_collate([torch.ones(2)], padding_value="0"), TypeError,
         "pad_collate: padding_value must be a number; got '0'"),
        (lambda: pad_collate([torch.ones(2)], padding_value=None), TypeError,
         "pad_collate: padding_value must be a number; got None"),
        (lambda: pad_collate([torch.ones(2)], batch_first="yes"), TypeError,
         "pad_collate: batch_first must be True or False; got 'yes'"),
    ],
    ids=["ragged-labels", "scalar-and-per-step", "none-label", "tensor-and-number", "lists",
         "dicts", "string-samples", "dict-sample", "padding-str", "padding-none", "batch-first"],
)  # fmt: skip
def test_pad_collate_names_the_sample_and_part(call, error, message):
    with pytest.raises(error, match="^" + re.escape(message) + "$"):
        call()


def test_pad_collate_pads_in_the_promoted_dtype():
    """Every sample was cast to the first one's dtype: floats truncated to integers,
    float64 rounded to float16 (70000 became inf). Now the dtype is the one ``torch.cat``
    would give, and the values are the samples' own."""
    x, lengths = pad_collate([torch.tensor([1, 2]), torch.tensor([0.7, 2.5, 3.9])])
    assert x.dtype == torch.promote_types(torch.int64, torch.float32) == torch.float32
    assert torch.equal(x, torch.tensor([[1.0, 2.0, 0.0], [0.7, 2.5, 3.9]]))
    assert lengths.tolist() == [2, 3]
    x, _ = pad_collate(
        [torch.tensor([1.0], dtype=torch.float16), torch.tensor([7e4, 1.0], dtype=torch.float64)],
        batch_first=False,
    )
    assert x.dtype == torch.float64 and x[:, 1].tolist() == [7e4, 1.0]
    # Per-step tags are padded in their promoted dtype too, with -100.
    _, _, tags = pad_collate(
        [(torch.ones(2, 1), torch.tensor([1, 2])), (torch.ones(3, 1), torch.tensor([0.5, 1, 2]))]
    )
    assert torch.equal(tags, torch.tensor([[1.0, 2.0, -100.0], [0.5, 1.0, 2.0]]))
    # Samples of one dtype keep it.
    x, _ = pad_collate([torch.ones(2, dtype=torch.int32), torch.ones(1, dtype=torch.int32)])
    assert x.dtype == torch.int32


def test_pad_collate_reads_nested_lists_as_one_sequence():
    """A list of lists of numbers was read as a (sequence, label) pair: two 2-step
    sequences became two 1-step ones with labels. A tuple, or a list led by a tensor or an
    array (what a Dataset returns), is still (sequence, *rest)."""
    x, lengths = pad_collate([[[1.0], [2.0]], [[3.0], [4.0], [5.0]]])
    assert lengths.tolist() == [2, 3]
    assert torch.equal(x, torch.tensor([[[1.0], [2.0], [0.0]], [[3.0], [4.0], [5.0]]]))
    x, lengths = pad_collate([[1, 2, 3], [4]])
    assert torch.equal(x, torch.tensor([[1, 2, 3], [4, 0, 0]])) and lengths.tolist() == [3, 1]
    x, lengths, labels = pad_collate([([[1.0], [2.0]], 0), ([[3.0]], 1)])
    assert x.shape == (2, 2, 1) and lengths.tolist() == [2, 1] and labels.tolist() == [0, 1]
    x, lengths, labels = pad_collate([[torch.ones(2, 1), 0], [np.ones((3, 1)), 1]])
    assert x.shape == (2, 3, 1) and x.dtype == torch.float64 and labels.tolist() == [0, 1]


# ---- Vocabulary -----------------------------------------------------------------------


def test_vocabulary_messages():
    _raises(
        ValueError, "Vocabulary: each entry must be one character; got 'ab'", Vocabulary, ["ab"]
    )
    _raises(
        ValueError,
        "Vocabulary: characters must be unique; got 'b' twice",
        Vocabulary,
        ["a", "b", "b"],
    )
    _raises(
        ValueError,
        "Vocabulary: min_count must be a positive integer; got 0",
        Vocabulary.from_text,
        "abc",
        min_count=0,
    )
    vocab = Vocabulary.from_text("ab")
    _raises(ValueError, "Vocabulary.decode: id must lie in [0, 3); got 3", vocab.decode, [1, 3])
    _raises(
        ValueError,
        "vocabulary must be an object with one string entry 'chars'",
        Vocabulary.from_dict,
        {"chars": 3},
    )


# ---- synthetic tasks ------------------------------------------------------------------


def test_task_generator_messages():
    _raises(ValueError, "adding_problem: length must be an integer >= 2; got 1",
            tasks.adding_problem, 2, 1)  # fmt: skip
    _raises(ValueError, "copy_memory: length must be an integer >= 1; got 0", tasks.copy_memory,
            2, 0)  # fmt: skip
    _raises(ValueError, "selective_copy: length must be an integer >= n_tokens = 16; got 8",
            tasks.selective_copy, 2, 8)  # fmt: skip


@pytest.mark.parametrize(
    ("call", "message"),
    [
        # torch failed on each with a message naming none of the arguments
        (lambda: tasks.adding_problem(-1, 5), "adding_problem: batch must be an integer >= 0; "
         "got -1"),
        (lambda: tasks.adding_problem(2, 2.5), "adding_problem: length must be an integer >= 2; "
         "got 2.5"),
        (lambda: tasks.copy_memory(2, 3, n_copy=0), "copy_memory: n_copy must be an integer >= "
         "1; got 0"),
        (lambda: tasks.copy_memory(2, 3, n_symbols=0), "copy_memory: n_symbols must be an "
         "integer >= 1; got 0"),
        (lambda: tasks.selective_copy(2, 20, vocab=2), "selective_copy: vocab must be an "
         "integer >= 3; got 2"),
        (lambda: tasks.selective_copy(2, 20, n_tokens=0), "selective_copy: n_tokens must be an "
         "integer >= 1; got 0"),
        (lambda: tasks.selective_copy(2, 20.0, n_tokens=4), "selective_copy: length must be an "
         "integer >= n_tokens = 4; got 20.0"),
    ],
)  # fmt: skip
def test_task_generators_check_their_sizes(call, message):
    _raises(ValueError, message, call)
    assert tasks.adding_problem(0, 4)[0].shape == (4, 0, 2)  # an empty batch stays allowed


# ---- corpus ---------------------------------------------------------------------------


def test_corpus_messages(tmp_path):
    _raises(
        ValueError,
        "corpus source kind must be 'stdlib', 'docs' or 'text'; got 'web'",
        corpus.load_corpus,
        {"kind": "web"},
    )
    _raises(
        ValueError,
        "--text needs a file or folder path; got an empty string",
        corpus.load_corpus,
        {"kind": "text", "path": ""},
    )
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    _raises(ValueError, f"text file {empty} is empty", corpus.read_text, empty)
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"ab\x00cd")
    _raises(
        ValueError,
        f"{binary} is a binary file (it contains NUL bytes); expected UTF-8 text",
        corpus.read_text,
        binary,
    )
    blank = tmp_path / "blank.txt"
    blank.write_text(" \n\t\n")
    _raises(ValueError, f"text file {blank} holds only whitespace", corpus.read_all, blank)
    text = tmp_path / "t.txt"
    text.write_text("hello world\n" * 50)
    _raises(
        ValueError,
        "split must be one of ('train', 'validation', 'test'); got 'dev'",
        corpus.read_text(text).split,
        "dev",
    )


# ---- .ts files ------------------------------------------------------------------------

HEAD = "@problemName p\n@classLabel true a b\n@data\n"


def _parse(text, **kwargs):
    return ts_format.parse_ts(text, "f.ts", **kwargs)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            HEAD + "1,2:3,4:a\n1,2:b\n",
            "f.ts, line 5: expected 2 dimension(s) separated by ':' "
            "and then the class label; got 1 dimension(s)",
        ),
        (HEAD + "1,2:c\n", "f.ts, line 4: class label 'c' is not declared by @classLabel (a, b)"),
        (
            HEAD + "1,2:3:a\n",
            "f.ts, line 4: dimension 2 has 1 values and dimension 1 has 2; "
            "the dimensions of one series must have the same length",
        ),
        (
            HEAD + "1,x:a\n",
            "f.ts, line 4: dimension 1, value 2: 'x' is not a number (a "
            "missing value is '?' or NaN)",
        ),
        (
            HEAD + "1,1e39:a\n",
            "f.ts, line 4: dimension 1, value 2: '1e39' is out of range for float32",
        ),
        (HEAD + "1:a\n", None),  # the one good line: parses
        (HEAD, "f.ts: no series after @data (line 3)"),
        (
            "@equalLength true\n" + HEAD + "1,2:a\n1:b\n",
            "f.ts: @equalLength true, but the series have 2 different lengths (1 to 2)",
        ),
        (
            "1,2:a\n",
            "f.ts, line 1: expected a @tag of the header or @data before the series; got '1,2:a'",
        ),
        (
            "@classLabel true a\n@data now\n",
            "f.ts, line 2: @data takes no value; the series start on the next line",
        ),
        (
            "@classLabel maybe\n@data\n",
            "f.ts, line 1: @classLabel must be 'true' followed by "
            "the class labels, or 'false'; got 'maybe'",
        ),
        ("@classLabel true\n@data\n", "f.ts, line 1: @classLabel true must list the class labels"),
        ("@classLabel true a b a\n@data\n", "f.ts, line 1: @classLabel declares a twice"),
        ("@classLabel true a\n", "f.ts: no @data line; a .ts file's series follow a line '@data'"),
        (
            "@targetLabel true\n@data\n1:2\n",
            "f.ts: @targetLabel true marks a regression file "
            "(numeric targets); classification needs @classLabel true with the class labels",
        ),
        (
            "@classLabel false\n@data\n1\n",
            "f.ts: @classLabel false; classification needs "
            "'@classLabel true <labels>' before @data",
        ),
        (
            "@univariate true\n@dimensions 2\n@classLabel true a\n@data\n",
            "f.ts: @univariate true contradicts @dimensions 2",
        ),
        ("@univariate yes\n@data\n", "f.ts, line 1: @univariate must be true or false; got 'yes'"),
        ("@dimensions 0\n@data\n", "f.ts, line 1: @dimensions must be a positive integer; got '0'"),
        (
            HEAD + "1,2\n",
            "f.ts, line 4: expected the values of each dimension separated by ':' "
            "and then the class label; got no ':' in '1,2'",
        ),
        (
            "@timeStamps true\n" + HEAD + "(1,2)),(2,3):a\n",
            "f.ts, line 5: a ')' (character 6) "
            "closes no '('; @timeStamps true writes each value as '(timestamp,value)'",
        ),
        (
            "@timeStamps true\n" + HEAD + "(1,2:a\n",
            "f.ts, line 5: a '(' is not closed by a "
            "')'; @timeStamps true writes each value as '(timestamp,value)'",
        ),
        (
            "@timeStamps true\n" + HEAD + "(1,2),3:a\n",
            "f.ts, line 5: dimension 1, value 2: "
            "@timeStamps true expects '(timestamp,value)'; got '3'",
        ),
        (
            HEAD + "?,?:a\n",
            "f.ts, line 4: dimension 1 has no value at all (every one "
            "missing); nothing to fill it from (read with missing='keep' to handle it yourself)",
        ),
    ],
)
def test_parse_ts_messages(text, message):
    if message is None:
        assert len(_parse(text)) == 1
        return
    _raises(ValueError, message, _parse, text)


def test_parse_ts_unlabelled_and_missing_messages():
    _raises(
        ValueError,
        "f.ts, line 4: expected 2 dimension(s) separated by ':' (no label: @classLabel "
        "false); got 1 dimension(s)",
        _parse,
        "@classLabel false\n@data\n1:2\n3\n",
        require_labels=False,
    )
    _raises(
        ValueError,
        "f.ts, line 4: dimension 2, value 1 is missing ('?' or NaN) and missing values are refused",
        _parse,
        HEAD + "1,2:?,3:a\n",
        missing="error",
    )
    _raises(
        ValueError,
        "f.ts, line 5: the series has 1 values; @seriesLength says 2 (and @equalLength true)",
        _parse,
        "@equalLength true\n@seriesLength 2\n" + HEAD.replace("@problemName p\n", "") + "1:a\n",
    )


def test_read_ts_messages(tmp_path):
    _raises(
        ValueError,
        "missing must be one of ffill, error, keep; got 'drop'",
        ts_format.read_ts,
        tmp_path / "x.ts",
        missing="drop",
    )
    _raises(FileNotFoundError, f"{tmp_path / 'x.ts'}: no such file", ts_format.read_ts,
            tmp_path / "x.ts")  # fmt: skip
    _raises(ValueError, f"{tmp_path} is a folder; expected a .ts file", ts_format.read_ts,
            tmp_path)  # fmt: skip
    latin = tmp_path / "latin.ts"
    latin.write_bytes("@problemName caf\xe9\n".encode("latin-1"))
    _raises(ValueError, f"{latin} is not UTF-8 text; expected a .ts file", ts_format.read_ts,
            latin)  # fmt: skip


@pytest.mark.parametrize(
    ("series", "labels", "kwargs", "message"),
    [
        ([np.ones((2, 1))], [0, 1], {}, "write_ts: 1 series but 2 labels"),
        ([], [], {}, "write_ts: no series to write"),
        ([np.ones((2, 1))], [0], {"problem_name": "a\nb"},
         "write_ts: problem_name must be one line; got 'a\\nb'"),
        ([np.ones((2, 1)), np.ones(3)], [0, 0], {},
         "write_ts: every series must be 2-D (T, D); series 1 has shape (3,)"),
        ([np.ones((2, 1)), np.ones((2, 2))], [0, 0], {},
         "write_ts: the series have different dimensions [1, 2]"),
        ([np.ones((2, 1))], [0], {"classes": ["a b"]},
         "write_ts: class names must be non-empty, without spaces or ':'"),
        ([np.ones((2, 1))], [0], {"classes": ["a", "a"]},
         "write_ts: class names must differ; 'a' twice"),
        ([np.ones((2, 1))], [2], {"classes": ["a", "b"]},
         "write_ts: series 0: label 2 is not a class index in [0, 2)"),
        ([np.ones((2, 1))], ["c"], {"classes": ["a", "b"]},
         "write_ts: label 'c' is not one of the classes"),
        ([np.ones((0, 1))], [0], {}, "write_ts: series 0 has no steps; a .ts series has at "
         "least one"),
        ([np.ones((2, 0))], [0], {}, "write_ts: series 0 has no dimension; expected at least "
         "one dimension"),
        ([np.array([[1.0], [np.inf]])], [0], {},
         "write_ts: series 0, dimension 1, step 2: inf is not finite"),
        ([np.array([[1.0], [1e39]])], [0], {},
         "write_ts: series 0, dimension 1, step 2: 1e+39 is out of range for float32"),
        ([np.array([[1.0, np.nan]])], [0], {},
         "write_ts: series 0, dimension 2 is all missing (NaN); read_ts has nothing to fill "
         "it from"),
    ],
)  # fmt: skip
def test_write_ts_messages(tmp_path, series, labels, kwargs, message):
    target = tmp_path / "out.ts"
    _raises(ValueError, message, ts_format.write_ts, target, series, labels, **kwargs)
    assert not target.exists()


def test_write_ts_never_replaces_without_overwrite(tmp_path):
    """An existing file, a link and a directory at the path are left as they were; a
    wrong overwrite, path or folder is refused before anything is written."""
    series, labels = [np.ones((2, 1)), np.zeros((3, 1))], [0, 1]
    target = tmp_path / "mine.ts"
    target.write_text("the user's file\n")
    _raises(ValueError, f"write_ts: {target} exists; pass overwrite=True to replace it",
            ts_format.write_ts, target, series, labels)  # fmt: skip
    assert target.read_text() == "the user's file\n"
    link = tmp_path / "link.ts"
    link.symlink_to(target)
    _raises(ValueError, f"write_ts: {link} exists; pass overwrite=True to replace it",
            ts_format.write_ts, link, series, labels)  # fmt: skip
    folder = tmp_path / "folder.ts"
    folder.mkdir()
    _raises(ValueError, f"write_ts: path must be the path of a file; {folder} is a directory "
            "(a directory is never replaced)", ts_format.write_ts, folder, series, labels,
            overwrite=True)  # fmt: skip
    _raises(TypeError, "write_ts: overwrite must be True or False; got 'no'",
            ts_format.write_ts, tmp_path / "new.ts", series, labels, overwrite="no")  # fmt: skip
    _raises(TypeError, "write_ts: path must be a file path; got int", ts_format.write_ts, 5,
            series, labels)  # fmt: skip
    missing = tmp_path / "absent" / "x.ts"
    _raises(ValueError, f"write_ts: the folder of {missing} does not exist",
            ts_format.write_ts, missing, series, labels)  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.ts", "link.ts", "mine.ts"]
    assert list(folder.iterdir()) == [] and link.is_symlink()
    ts_format.write_ts(target, series, labels, overwrite=True)
    assert ts_format.read_ts(target).labels == [0, 1]
    ts_format.write_ts(link, series, [1, 0], overwrite=True)  # the link is replaced, not followed
    assert not link.is_symlink() and ts_format.read_ts(target).labels == [0, 1]
    assert ts_format.read_ts(link).labels == [1, 0]


# ---- tagging --------------------------------------------------------------------------


def test_tag_source_messages():
    _raises(tagging.TokenizeError, "line 1: the tokenizer refuses '$'", tagging.tag_source,
            "x = $\n")  # fmt: skip
    with pytest.raises(tagging.TokenizeError) as caught:
        tagging.tag_source('x = """never closed\n')
    assert "\n" not in str(caught.value) and str(caught.value)


def _jsonl(tmp_path: Path, *lines: str, name: str = "d.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = json.dumps({"x": "ab", "y": ["A", "B"]})


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([GOOD, json.dumps({"x": [[1.0], [2.0]], "y": ["A", "B"]})],
         "line 2: x is features, but x of line 1 is text; one file holds one kind"),
        ([json.dumps({"x": [[1.0]], "y": ["A"]}), json.dumps({"x": [[1.0, 2.0]], "y": ["A"]})],
         "line 2: x has 2 feature(s) per step, line 1 has 1"),
        (["", "  "], ": no examples (the file is empty or blank)"),
        (['{"x": "ab", "y": ["A", "B"]'],
         "line 1: not valid JSON (Expecting ',' delimiter at column 28)"),
        # json.dump(examples, f, indent=2): a valid JSON document, not JSON lines.
        (["[", '  {"x": "ab", "y": ["A", "B"]}', "]"],
         "line 1: not valid JSON (Expecting value at column 2); expected JSON lines, one "
         '{"x": ..., "y": [...]} object per line, not a JSON document spread over lines'),
        (["{", '  "x": "ab",', '  "y": ["A", "B"]', "}"],
         "line 1: not valid JSON (Expecting property name enclosed in double quotes at "
         'column 2); expected JSON lines, one {"x": ..., "y": [...]} object per line, not a '
         "JSON document spread over lines"),
        (['{"x": [[NaN]], "y": ["A"]}'], "line 1: NaN is not a number JSON allows"),
        (["[1, 2]"], 'line 1: expected an object {"x": ..., "y": [...]}; got a list'),
        (['{"x": "ab"}'], 'line 1: missing key "y" (keys: x)'),
        (['{"x": "ab", "y": ["A", ""]}'], "line 1: y must be a list of tag names (non-empty "
         "strings); got a list whose item 1 is an empty string"),
        (['{"x": [[1.0], [1.0, 2.0]], "y": ["A", "B"]}'], "line 1: step 1 of x has 2 "
         "feature(s); step 0 has 1 (every step needs the same number)"),
        # It said "step 0 has 0 feature(s); step 0 has 0": step 0 against itself.
        (['{"x": [[]], "y": ["A"]}'], "line 1: step 0 of x has no features; a step needs at "
         "least one"),
        (['{"x": [[1.0], []], "y": ["A", "B"]}'], "line 1: step 1 of x has no features; a step "
         "needs at least one"),
        # "got null None": the kind and Python's spelling of it.
        (['{"x": [[null, 2]], "y": ["A"]}'], "line 1: step 0 of x must hold numbers; got null"),
        (['{"x": [[1], [true]], "y": ["A", "B"]}'], "line 1: step 1 of x must hold numbers; "
         "got a boolean true"),
        (['{"x": "ab", "y": ["A", null]}'], "line 1: y must be a list of tag names (non-empty "
         "strings); got a list whose item 1 is null"),
        # An integer numpy cannot convert (OverflowError), one int() refuses to read (past
        # 4300 digits), lists nested past the decoder's recursion (RecursionError).
        (['{"x": [[1' + "0" * 400 + ', 1]], "y": ["A"]}'],
         "line 1: x holds a number too large for float32"),
        (['{"x": [[-1' + "0" * 5000 + ', 1]], "y": ["A"]}'],
         "line 1: x holds a number too large for float32"),
        (['{"x": ' + "[" * 100_000 + "]" * 100_000 + ', "y": ["A"]}'], "line 1: not valid JSON "
         "(lists or objects nested too deeply to read; x needs two levels of lists)"),
        (['{"x": [[1.0], ["a"]], "y": ["A", "B"]}'], "line 1: step 1 of x must hold numbers; "
         "got a string 'a'"),
        (['{"x": [[1e39]], "y": ["A"]}'], "line 1: x holds a number too large for float32"),
        (['{"x": 3, "y": ["A"]}'], "line 1: x must be a string or a list of steps, each a list "
         "of numbers; got a number"),
        (['{"x": "", "y": []}'], "line 1: x is empty; an example needs at least one step"),
        (['{"x": "abc", "y": ["A"]}'], "line 1: len(y) must equal len(x); got 1 tags for 3 "
         "characters"),
        (['{"x": "a\\ud800", "y": ["A", "B"]}'], "line 1: x holds a lone surrogate \\ud800 at "
         "character 2; expected Unicode text"),
    ],
)  # fmt: skip
def test_read_jsonl_messages(tmp_path, lines, message):
    path = _jsonl(tmp_path, *lines)
    _raises(ValueError, f"--data {path} {message}".replace(f"{path} :", f"{path}:"),
            tagging.read_jsonl, path)  # fmt: skip


def test_read_jsonl_path_messages(tmp_path):
    _raises(ValueError, "--data needs a JSON-lines file; got an empty string",
            tagging.read_jsonl, "")  # fmt: skip
    _raises(FileNotFoundError, f"--test-data: file not found: {tmp_path / 'no.jsonl'}",
            tagging.read_jsonl, tmp_path / "no.jsonl", "--test-data")  # fmt: skip
    _raises(ValueError, f"--data: {tmp_path} is a folder; expected a JSON-lines file",
            tagging.read_jsonl, tmp_path)  # fmt: skip
    raw = tmp_path / "raw.jsonl"
    raw.write_bytes(b'{"x": "a\xff"}\n')
    _raises(ValueError, f"--data {raw} line 1: not UTF-8 text (byte 0xff at column 9)",
            tagging.read_jsonl, raw)  # fmt: skip


def test_load_jsonl_messages(tmp_path):
    two = _jsonl(tmp_path, GOOD, GOOD)
    _raises(
        ValueError,
        f"--data {two}: 2 example(s) cannot be split into train and validation and test; add lines",
        tagging.load_jsonl,
        two,
    )
    text = _jsonl(tmp_path, *[GOOD] * 5, name="text.jsonl")
    features = _jsonl(tmp_path, json.dumps({"x": [[1.0, 2.0]], "y": ["A"]}), name="f.jsonl")
    _raises(
        ValueError,
        f"--test-data {features}: x is features (2 features), but --data {text} holds text",
        tagging.load_jsonl,
        text,
        features,
    )
    wider = _jsonl(tmp_path, json.dumps({"x": [[1.0, 2.0, 3.0]], "y": ["A"]}), name="w.jsonl")
    _raises(
        ValueError,
        f"--test-data {wider}: x is features (3 features), but --data {features} holds "
        "features (2 features)",
        tagging.load_jsonl,
        features,
        wider,
    )
    data = tagging.load_jsonl(text)
    _raises(
        ValueError,
        "split must be one of ('train', 'validation', 'test'); got 'dev'",
        data.split,
        "dev",
    )
    recorded = dict(data.source)
    text.write_text(GOOD + "\n" + GOOD + "\n")
    _raises(
        ValueError,
        f"--data {text.resolve()} changed since the run was started (its sha256 differs); "
        "the run's split and vocabulary no longer fit it",
        tagging.load_jsonl,
        text,
        recorded=recorded,
    )
    text.unlink()
    _raises(
        FileNotFoundError,
        f"--data: the run's file is gone: {text.resolve()}",
        tagging.load_jsonl,
        text,
        recorded=recorded,
    )


def test_tagged_sequences_messages():
    examples = [tagging.Example("ab", ["A", "C"], 7)]
    _raises(
        ValueError,
        "TaggedSequences: text examples need a vocab",
        tagging.TaggedSequences,
        examples,
        None,
        ["A", "B"],
    )
    _raises(
        ValueError,
        "TaggedSequences: line 7: tag 'C' is not one of A, B",
        tagging.TaggedSequences,
        examples,
        Vocabulary.from_text("ab"),
        ["A", "B"],
    )


def test_a_python_install_without_its_standard_library(tmp_path, monkeypatch):
    # Some minimal Python images ship no .py sources: the default corpora say so.
    empty = tmp_path / "lib"
    empty.mkdir()
    monkeypatch.setattr(corpus, "stdlib_root", lambda: empty)
    _raises(OSError, f"no .py files under the standard library folder {empty}",
            corpus.load_corpus)  # fmt: skip
    (empty / "a.py").write_text("x = 1\n")
    _raises(OSError, f"the standard library under {empty} has too few .py files for a split "
            "by file; give --data FILE", tagging.load_stdlib)  # fmt: skip
    monkeypatch.setitem(__import__("sys").modules, "pydoc_data.topics", None)
    _raises(OSError, f"no docstrings or help topics under {empty}", corpus.load_corpus,
            {"kind": "docs"})  # fmt: skip


def test_vocabulary_names_text_that_is_no_string():
    # An int ended in "'int' object is not iterable", a list of numbers in an
    # AttributeError from inside the encoder.
    _raises(TypeError, "Vocabulary.from_text: text must be a str or an iterable of str; got int",
            Vocabulary.from_text, 3)  # fmt: skip
    _raises(TypeError, "Vocabulary.from_text: text must be a str or an iterable of str; got "
            "item 1 of type int", Vocabulary.from_text, ["ab", 3])  # fmt: skip
    _raises(TypeError, "Vocabulary.encode: text must be a str; got list",
            Vocabulary.from_text("ab").encode, ["a"])  # fmt: skip


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        # Each failed in Python's own words (dict("stdlib"), io.StringIO(3), len(3)).
        (lambda: corpus.load_corpus("stdlib"), TypeError, "load_corpus: source must be a dict "
         "such as {'kind': 'stdlib'} or None; got str"),
        (lambda: ts_format.parse_ts(3), TypeError, "parse_ts: text must be a str; got int"),
        (lambda: tagging.tag_source(3), TypeError, "tag_source: text must be a str; got int"),
        (lambda: pad_collate(3), TypeError, "pad_collate: batch must be a list of samples; got "
         "int"),
        (lambda: ts_format.write_ts("x.ts", [np.ones((2, 1))], 3), TypeError, "write_ts: labels "
         "must be a sequence; got int"),
    ],
)  # fmt: skip
def test_data_inputs_of_the_wrong_type(call, error, message):
    _raises(error, message, call)


def test_write_ts_refuses_what_it_would_write_wrongly(tmp_path):
    target = tmp_path / "out.ts"
    # int(0.5) wrote class 0, and a string of classes was one class per character.
    _raises(ValueError, "write_ts: series 0: label 0.5 is not a class index in [0, 1)",
            ts_format.write_ts, target, [np.ones((2, 1))], [0.5])  # fmt: skip
    _raises(TypeError, "write_ts: classes must be a sequence of names; got str",
            ts_format.write_ts, target, [np.ones((2, 1))], [0], classes="ab")  # fmt: skip
    assert not target.exists()
    ts_format.write_ts(target, [np.ones((3, 1))] * 2, np.array([0, 1]))  # labels as an array
    assert ts_format.read_ts(target).labels == [0, 1]
