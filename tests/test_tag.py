"""`rnnkit train tag`: the labelling, the JSON-lines reader, the bidirectional model, and a
run from training to `rnnkit eval` - all on small data, in seconds."""

from __future__ import annotations

import io
import json
import re
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import rnnkit
from _refusals import refused
from rnnkit.cli import main
from rnnkit.data import pad_collate
from rnnkit.data import tagging as T
from rnnkit.data.vocab import Vocabulary
from rnnkit.tasks.tag import Tagger, TaggerConfig, TagOptions, tag_loss
from rnnkit.train import TrainConfig, train
from rnnkit.train.fit import accuracy

# ---- the labelling ---------------------------------------------------------------------


def test_every_character_of_a_small_source_gets_its_token_type():
    assert T.tag_names("x = 1  # c") == [
        "NAME", "WHITESPACE", "OP", "WHITESPACE", "NUMBER",
        "WHITESPACE", "WHITESPACE", "COMMENT", "COMMENT", "COMMENT",
    ]  # fmt: skip
    src = 'if ok:\n    s = f"{a}b" + "x" \\\n        + r"""y\nz"""\nelse: pass\n'
    tags = T.tag_names(src)
    assert len(tags) == len(src)
    by_char = list(zip(src, tags, strict=True))
    assert by_char[:3] == [("i", "KEYWORD"), ("f", "KEYWORD"), (" ", "WHITESPACE")]
    assert by_char[5] == (":", "OP") and by_char[6] == ("\n", "NEWLINE")
    assert all(t == "WHITESPACE" for t in tags[7:11])  # the indentation
    fstring = src.index('f"')
    assert set(tags[fstring : fstring + 7]) == {"STRING"}  # f"{a}b", the field included
    raw = src.index('r"""')
    assert set(tags[raw : raw + 10]) == {"STRING"}  # the newline inside is the string's
    backslash = src.index("\\")
    assert tags[backslash : backslash + 2] == ["WHITESPACE", "WHITESPACE"]  # continuation
    assert tags[src.index("else") : src.index("else") + 4] == ["KEYWORD"] * 4
    assert tags[src.index("pass")] == "KEYWORD"
    # Whatever is WHITESPACE is a blank or a line continuation.
    assert {c for c, t in by_char if t == "WHITESPACE"} <= {" ", "\\", "\n"}


def test_names_numbers_soft_keywords_and_comment_lines():
    src = "match = x1 + 0x1F  # hi\n# only\n\n"
    tags = T.tag_names(src)
    assert tags[:5] == ["NAME"] * 5  # a soft keyword is a name
    assert tags[src.index("x1") : src.index("x1") + 2] == ["NAME", "NAME"]
    assert tags[src.index("0x1F") : src.index("0x1F") + 4] == ["NUMBER"] * 4
    assert tags[-1] == tags[-2] == "NEWLINE"  # NL after a comment line and a blank line
    assert tags[src.index("# only")] == "COMMENT"


@pytest.mark.parametrize("bad", ['x = "open\n', 'x = """never closed\n', "  x = 1\n y = 2\n"])
def test_a_source_the_tokenizer_refuses_raises(bad):
    with pytest.raises(T.TokenizeError):
        T.tag_source(bad)


def test_the_stdlib_data_is_split_by_file_as_the_language_model_corpus():
    from rnnkit.data import corpus

    data = T.load_stdlib()
    root = corpus.stdlib_root()
    assert data.tags == list(T.TAGS) and data.train and data.validation and data.test
    for name in ("train", "validation", "test"):
        for doc in data.split(name)[:5]:
            assert corpus.file_split(root, root / doc.name) == name
            assert len(doc.y) == len(doc.x)
    # The corpus's own rule: crc32 of the relative path, [95, 100) is test.
    some = data.test[0].name
    assert zlib.crc32(some.encode("utf-8")) % 100 >= 95


# ---- the JSON-lines reader -------------------------------------------------------------


def _write(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def python_lines(n: int = 60) -> list[str]:
    """JSON lines of real Python: each line of textwrap.py with its tokenize tags."""
    src = Path(textwrap.__file__).read_text(encoding="utf-8")
    tags = T.tag_names(src)
    out, at = [], 0
    for line in src.splitlines(keepends=True):
        if line.strip() and len(out) < n:
            out.append(json.dumps({"x": line, "y": tags[at : at + len(line)]}))
        at += len(line)
    return out


def test_the_reader_reads_text_and_features(tmp_path):
    f = _write(
        tmp_path / "a.jsonl",
        ['{"x": "ab", "y": ["A", "B"], "id": 7}', "", '{"x": "c", "y": ["A"]}'],
    )
    ex = T.read_jsonl(f)
    assert [(e.x, e.y, e.line) for e in ex] == [("ab", ["A", "B"], 1), ("c", ["A"], 3)]
    g = _write(tmp_path / "b.jsonl", ['{"x": [[1, 2.5], [0, -1]], "y": ["u", "v"]}'])
    (e,) = T.read_jsonl(g)
    assert e.x.dtype == np.float32 and e.x.shape == (2, 2)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('{"x": "ab", "y": ["A", "B"', "not valid JSON"),
        ('["ab", ["A", "B"]]', "expected an object"),
        ('{"x": "ab"}', 'missing key "y"'),
        ('{"y": ["A"]}', 'missing key "x"'),
        ('{"x": "abc", "y": ["A", "B"]}', "len(y) must equal len(x); got 2 tags for 3"),
        ('{"x": 12, "y": ["A"]}', "x must be a string or a list of steps"),
        ('{"x": "a", "y": "A"}', "y must be a list of tag names"),
        ('{"x": "a", "y": [1]}', "y must be a list of tag names"),
        ('{"x": [["a"]], "y": ["A"]}', "must hold numbers"),
        ('{"x": [[1, 2], [3]], "y": ["A", "B"]}', "step 1 of x has 1 feature(s)"),
        ('{"x": [[NaN]], "y": ["A"]}', "NaN"),
        ('{"x": "", "y": []}', "x is empty"),
        ('{"x": [[1.0]], "y": ["A"]}', "x is features, but x of line 1 is text"),
        ('{"x": "ab", "y": ["A", "B"', "Expecting ',' delimiter at column 27"),
        ('{"x": "ab', "(Unterminated string starting at column 7)"),
        ('{"x": ["de", "f"], "y": ["A", "B"]}', "got a list whose item 0 is a string 'de'"),
        ('{"x": [], "y": []}', "numbers; got an empty list"),
        ('{"x": "ab", "y": ["A", ""]}', "got a list whose item 1 is an empty string"),
        (
            '{"x": "a\\ud800b", "y": ["A", "W", "B"]}',
            "x holds a lone surrogate \\ud800 at character 2; expected Unicode text",
        ),
        (
            '{"x": "ab", "y": ["A", "\\udc00"]}',
            "y[1] holds a lone surrogate \\udc00 at character 1",
        ),
    ],
)
def test_each_reader_error_is_one_line_with_the_line_number(tmp_path, line, words):
    f = _write(tmp_path / "d.jsonl", ['{"x": "ok", "y": ["A", "B"]}', line])
    with pytest.raises(ValueError) as err:
        T.read_jsonl(f)
    message = str(err.value)
    assert "\n" not in message and "d.jsonl line 2" in message and words in message, message


def test_reader_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="--data: file not found"):
        T.read_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(ValueError, match="no examples"):
        T.read_jsonl(_write(tmp_path / "e.jsonl", [""]))
    (tmp_path / "bin.jsonl").write_bytes(b'{"x": "\xff"}')
    with pytest.raises(ValueError, match="not UTF-8"):
        T.read_jsonl(tmp_path / "bin.jsonl")


def test_invalid_utf8_is_reported_by_line_and_column(tmp_path):
    f = tmp_path / "bin.jsonl"
    f.write_bytes(b'{"x": "ab", "y": ["A", "B"]}\n{"x": "' + "é".encode() + b'\xff"}\n')
    with pytest.raises(ValueError) as err:
        T.read_jsonl(f)
    assert str(err.value) == f"--data {f} line 2: not UTF-8 text (byte 0xff at column 9)"
    f.write_bytes(b'\xef\xbb\xbf{"x": "\xff"}')  # a BOM is not a column
    with pytest.raises(ValueError, match=r"line 1: not UTF-8 text \(byte 0xff at column 8\)"):
        T.read_jsonl(f)


def test_lines_end_at_newline_only(tmp_path):
    """JSON strings may hold U+2028, U+0085, form feeds... raw; str.splitlines() breaks there."""
    odd = "a\u2028b\u2029c\x85d\x0be\x0cf\x1cg\x1dh\x1ei"
    line = json.dumps({"x": odd, "y": ["T"] * len(odd)}, ensure_ascii=False)
    f = tmp_path / "u.jsonl"
    f.write_bytes(("\ufeff" + '{"x": "ab", "y": ["A", "B"]}\r\n\r\n' + line + "\r\n").encode())
    ex = T.read_jsonl(f)
    assert [(e.x, e.line) for e in ex] == [("ab", 1), (odd, 3)]


def test_one_tag_is_refused_before_a_run_folder_is_made(tmp_path, capsys):
    f = _write(tmp_path / "one.jsonl", ['{"x": "ab", "y": ["A", "A"]}'] * 20)
    with pytest.raises(ValueError) as err:
        T.load_jsonl(f)
    assert str(err.value) == (
        f"--data {f}: every step is tagged 'A'; tagging needs at least two tags"
    )
    out = tmp_path / "run"
    assert main(["train", "tag", "--data", f, "--steps", "2", "--out", str(out)]) == 2
    assert "at least two tags" in capsys.readouterr().err and not out.exists()


def test_a_lone_surrogate_is_refused_before_a_run_folder_is_made(tmp_path, capsys):
    lines = python_lines(30)
    lines[2] = '{"x": "a\\ud800b", "y": ["A", "W", "B"]}'
    f = _write(tmp_path / "s.jsonl", lines)
    out = tmp_path / "run"
    assert main(["train", "tag", "--data", f, "--steps", "2", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "s.jsonl line 3: x holds a lone surrogate \\ud800" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("1" + "0" * 400, "x holds a number too large for float32"),  # was an OverflowError
        ("1" + "0" * 5000, "x holds a number too large for float32"),  # int()'s digit limit
        ("[" * 100_000 + "1" + "]" * 100_000, "not valid JSON (lists or objects nested too "
         "deeply to read; x needs two levels of lists)"),  # was a RecursionError
    ],
    ids=["400-digits", "5000-digits", "deep"],
)  # fmt: skip
def test_json_python_cannot_read_is_one_line_status_2(tmp_path, capsys, number, message):
    lines = [json.dumps({"x": [[0.5, 1.0]] * 3, "y": ["hi", "lo", "hi"]})] * 30
    f = _write(tmp_path / "f.jsonl", [*lines, '{"x": [[' + number + ', 1]], "y": ["hi"]}'])
    argv = ["train", "tag", "--data", f, "--steps", "2", "--hidden", "4"]
    err = refused(capsys, [*argv, "--out", str(tmp_path / "run")], tmp_path)
    assert err == f"rnnkit train: error: --data {f} line 31: {message}"


def test_integers_read_exactly_and_a_long_one_elsewhere_is_ignored(tmp_path):
    big = "9" * 5000  # in a key the reader ignores: int() would refuse it
    f = _write(tmp_path / "i.jsonl", ['{"x": [[3, -7], [16777216, 0]], "y": ["A", "B"], '
                                      f'"id": {big}}}'])  # fmt: skip
    (e,) = T.read_jsonl(f)
    assert e.x.tolist() == [[3.0, -7.0], [16777216.0, 0.0]]
    g = _write(tmp_path / "g.jsonl", ['{"x": [[1' + "0" * 38 + "]], " + '"y": ["A"]}'])
    assert T.read_jsonl(g)[0].x.tolist() == [[np.float32(1e38)]]  # within float32: read


def test_tag_ids_past_int16_are_kept():
    """int16 labels wrapped: 40,000 became -25,536 and 65,436 became -100 (ignored)."""
    from rnnkit.tasks.tag import encode

    docs = [T.Document("abc", np.array([40_000, 65_436, -1], np.int64))]
    assert encode(docs, Vocabulary.from_text("abc")).y.tolist() == [40_000, 65_436, -1]


def test_the_split_by_line_is_seeded_and_recorded(tmp_path):
    f = _write(tmp_path / "p.jsonl", python_lines(50))
    a = T.load_jsonl(f, split_seed=1)
    b = T.load_jsonl(f, split_seed=1)
    c = T.load_jsonl(f, split_seed=2)
    names = [d.name for d in a.test]
    assert names == [d.name for d in b.test] and names != [d.name for d in c.test]
    assert a.source["split"] == {"train": 40, "validation": 5, "test": 5}
    assert a.source["split_seed"] == 1 and len(a.source["sha256"]["data"]) == 64
    # A run refuses the file once it changed.
    Path(f).write_text(Path(f).read_text() + python_lines(51)[-1] + "\n")
    with pytest.raises(ValueError, match="changed since the run was started"):
        T.load_jsonl(f, split_seed=1, recorded=a.source)


# ---- the model -------------------------------------------------------------------------


def test_running_rows_by_length_equals_the_layers_lengths():
    torch.manual_seed(0)
    model = Tagger(TaggerConfig(num_tags=3, vocab_size=9, hidden_size=6, num_layers=2))
    x = torch.randint(9, (5, 11))
    lengths = torch.tensor([11, 4, 11, 0, 7])
    out = model(x, lengths)
    ref, _ = model.rnn(model.embedding(x), lengths=lengths)
    torch.testing.assert_close(out, model.head(ref))


@pytest.mark.parametrize("features", [False, True])
def test_no_characters_get_no_tags(features):
    """A tagger emits one output per step: zero steps, zero outputs (the layer alone
    refuses T = 0 without lengths)."""
    kind = {"num_features": 2} if features else {"vocab_size": 9}
    model = Tagger(TaggerConfig(num_tags=3, hidden_size=4, **kind)).eval()
    x = torch.zeros((2, 0, 2)) if features else torch.zeros((2, 0), dtype=torch.long)
    for lengths in (None, [0, 0]):
        out = model(x, lengths)
        assert out.shape == (2, 0, 3) and out.dtype == torch.float32


@pytest.mark.parametrize(
    ("x", "lengths", "error", "message"),
    [
        # Each of these once ran: rows by length took a length past T as T, a negative
        # one or a missing row as an empty window (zeros), a float length as a slice.
        ("ids", [7, 4, 2], ValueError, r"lengths must lie in \[0, T\] = \[0, 6\]"),
        ("ids", [6, -1, 2], ValueError, r"lengths must lie in \[0, T\] = \[0, 6\]"),
        ("ids", [6, 4], ValueError, r"lengths must have shape \(B,\) = \(3,\); got \(2,\)"),
        ("ids", torch.tensor([6.0, 4.0, 2.0]), TypeError, "lengths must have an integer dtype"),
        ("big", None, ValueError, r"ids in \[0, 9\) \(vocab_size = 9\); got min 0, max 9"),
        ("list", None, TypeError, r"a torch.Tensor \(B, T\) long character ids; got list"),
    ],
)
def test_wrong_inputs_are_one_line_naming_the_argument(x, lengths, error, message):
    torch.manual_seed(0)
    model = Tagger(TaggerConfig(num_tags=3, vocab_size=9, hidden_size=6))
    ids = torch.randint(9, (3, 6))
    given = {
        "ids": ids,
        "big": torch.cat([ids, torch.full((3, 1), 9)], 1),
        "list": ids.tolist(),
    }[x]
    with pytest.raises(error, match=message):
        model(given, lengths)


def test_a_nan_feature_at_a_valid_step_is_refused_and_padding_is_not_read():
    model = Tagger(TaggerConfig(num_tags=2, num_features=2, hidden_size=6))
    x = torch.randn(2, 5, 2)
    x[1, 3:] = float("nan")  # padding past the second window's end
    assert torch.isfinite(model(x, [5, 3])).all()
    with pytest.raises(ValueError, match=r"x must be finite at every valid step.*series 1, step 3"):
        model(x, [5, 4])


@pytest.mark.parametrize(
    ("target", "error", "message"),
    [
        (torch.zeros(2, 4, dtype=torch.long), ValueError, r"target must be \(B, T\) = \(2, 5\)"),
        (torch.zeros(2, dtype=torch.long), ValueError, r"got target \(2,\), logits \(2, 5, 3\)"),
        (torch.full((2, 5), 3), ValueError, r"tag ids in \[0, 3\).*got min 3, max 3"),
        (torch.zeros(2, 5), TypeError, "target must hold integer tag ids; got torch.float32"),
    ],
)
def test_tag_loss_names_a_target_that_does_not_fit(target, error, message):
    with pytest.raises(error, match=message):
        tag_loss(torch.randn(2, 5, 3), target)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"vocab_size": 2.5}, ValueError, "vocab_size must be a non-negative integer; got 2.5"),
        ({"vocab_size": -1, "num_features": 3}, ValueError, "vocab_size must be a non-negative"),
        ({"bidirectional": "no"}, TypeError, "bidirectional must be True or False; got 'no'"),
        ({"dropout": "x"}, ValueError, r"dropout must be a number in \[0, 1\); got 'x'"),
        ({"num_tags": 1}, ValueError, r"num_tags must be >= 2 \(a tagger chooses among tags\)"),
    ],
)
def test_tagger_config_refuses_what_would_build_the_wrong_model(kwargs, error, message):
    with pytest.raises(error, match=message):
        TaggerConfig(**{"num_tags": 2, "vocab_size": 5, **kwargs})


def test_rows_by_length_under_bf16_autocast():
    """Autocast makes the layer return bf16; the output buffer must take its dtype."""
    torch.manual_seed(0)
    model = Tagger(TaggerConfig(num_tags=3, vocab_size=9, hidden_size=6))
    x = torch.randint(9, (4, 7))
    lengths = torch.tensor([7, 3, 7, 0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, lengths)
    assert out.shape == (4, 7, 3) and torch.isfinite(out.float()).all()
    torch.testing.assert_close(out.float(), model(x, lengths), atol=0.05, rtol=0.05)


def test_bidirectional_beats_unidirectional_when_the_tag_is_the_next_character():
    """Tag t is 1 when character t + 1 is 'a': unknowable without the future."""
    g = torch.Generator().manual_seed(0)

    def batch():
        x = torch.randint(4, (32, 20), generator=g)
        y = torch.zeros_like(x)
        y[:, :-1] = (x[:, 1:] == 0).long()
        return x, y

    scores = {}
    for bi in (True, False):
        torch.manual_seed(0)
        model = Tagger(TaggerConfig(num_tags=2, vocab_size=4, hidden_size=16, bidirectional=bi))
        opt = torch.optim.Adam(model.parameters(), lr=0.02)
        for _ in range(40):
            x, y = batch()
            loss = tag_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        x, y = batch()
        scores[bi] = accuracy(model(x)[:, :-1], y[:, :-1])
    assert scores[True] > 0.97, scores
    assert scores[False] < 0.85, scores  # ~0.75: "not a" is all it can say


def test_fit_and_pad_collate_on_the_readers_output(tmp_path):
    examples = T.read_jsonl(_write(tmp_path / "p.jsonl", python_lines(40)))
    vocab = Vocabulary.from_text([e.x for e in examples])
    data = T.TaggedSequences(examples, vocab, T.TAGS)
    loader = DataLoader(data, batch_size=8, shuffle=True, collate_fn=pad_collate)
    x, lengths, y = next(iter(loader))
    assert x.shape == y.shape and (y[torch.arange(8), lengths - 1] >= 0).all()
    assert (y == -100).sum() == (x.size(1) - lengths).sum()
    model = Tagger(TaggerConfig(num_tags=len(T.TAGS), vocab_size=len(vocab), hidden_size=8))
    summary = rnnkit.fit(
        model, loader, loader, loss=tag_loss, metrics={"accuracy": accuracy},
        monitor="accuracy", steps=6, eval_every=3, out=tmp_path / "fit", log=lambda _: None,
        progress=io.StringIO(),
    )  # fmt: skip
    assert 0.0 <= summary.best["value"] <= 1.0


# ---- runs --------------------------------------------------------------------------------

SMALL = {"hidden_size": 8, "embed_size": 4, "seq_len": 16, "batch_size": 4, "eval_chars": 300}


def test_train_load_eval_writes_the_figure(tmp_path, capsys):
    data = _write(tmp_path / "p.jsonl", python_lines(60))
    out = tmp_path / "run"
    summary = train(
        "tag", {"data": data, **SMALL},
        TrainConfig(steps=6, eval_every=3, threads=1), out=out,
        log=lambda _: None, progress=io.StringIO(),
    )  # fmt: skip
    assert "accuracy" in summary.metrics
    model = rnnkit.load(out)
    assert isinstance(model, Tagger) and model.config.bidirectional
    figs = tmp_path / "figs"
    assert main(["eval", str(out), "--out", str(figs)]) == 0
    printed = capsys.readouterr().out
    assert "accuracy:" in printed and "per-character prior baseline" in printed
    assert "per-tag accuracy" in printed
    png = figs / "tagged.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_closing_line_says_all_when_every_validation_character_is_scored(tmp_path):
    """--eval-chars spreads windows over a longer split ("about N of M"); a budget past the
    split scores every character, said as such."""
    data = _write(tmp_path / "p.jsonl", python_lines(60))
    for budget, said in ((10**6, r"\(all [\d,]+\)"), (40, r"\(about 40 of [\d,]+\)")):
        summary = train("tag", {"data": data, **SMALL, "eval_chars": budget},
                        TrainConfig(steps=1, eval_every=1, threads=1),
                        out=tmp_path / f"run{budget}", log=lambda _: None,
                        progress=io.StringIO())  # fmt: skip
        (line,) = [x for x in summary.lines if x.startswith("validation accuracy")]
        assert re.search(r"% per character " + said + "; per-character prior baseline", line)


def test_bf16_training_and_eval(tmp_path, capsys):
    data = _write(tmp_path / "p.jsonl", python_lines(40))
    out = tmp_path / "run"
    argv = ["train", "tag", "--data", data, "--steps", "2", "--eval-every", "2", "--hidden", "4",
            "--embed", "4", "--seq-len", "16", "--batch-size", "4", "--eval-chars", "200",
            "--precision", "bf16", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert main(["eval", str(out), "--precision", "bf16"]) == 0
    assert "accuracy:" in capsys.readouterr().out


def test_more_tags_than_int16_holds_train(tmp_path):
    """33,001 tags: every step but the first of a line is "z", id 33,000 (int16: -32,536)."""
    lines = [json.dumps({"x": "abcd", "y": [f"a{i:05}", "z", "z", "z"]}) for i in range(33_000)]
    out = tmp_path / "run"
    summary = train(
        "tag", {"data": _write(tmp_path / "many.jsonl", lines), **SMALL},
        TrainConfig(steps=2, eval_every=2, threads=1), out=out,
        log=lambda _: None, progress=io.StringIO(),
    )  # fmt: skip
    assert "accuracy" in summary.metrics


def _tiny_figure_inputs(text: str, wrong_from: int = 0):
    """Documents, encoded data, predictions (every fourth step from ``wrong_from``
    wrong) and truth."""
    from rnnkit.tasks.tag import encode

    y = np.array([i % 3 for i in range(len(text))], np.int64)
    docs = [T.Document(text, y, "--data line 1")]
    data = encode(docs, Vocabulary.from_text(text))
    truth = data.y.long()
    pred = truth.clone()
    pred[wrong_from::4] = (truth[wrong_from::4] + 1) % 3
    return docs, data, pred, truth


def test_the_figure_replaces_a_link_and_is_never_half_written(tmp_path, monkeypatch):
    from rnnkit.tasks.tag import draw_tagged

    docs, data, pred, truth = _tiny_figure_inputs("def f(x):\n    return x\n")
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    run = tmp_path / "run"
    run.mkdir()
    png = run / "tagged.png"
    png.symlink_to(precious)
    draw_tagged(docs, data, pred, truth, ["A", "B", "C"], png, "t")
    assert precious.read_text() == "keep me"
    assert not png.is_symlink() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Killed mid-write: the old figure stays whole and no temporary file is left.
    png.write_bytes(b"old figure")

    def killed(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr("rnnkit.train.files.os.fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        draw_tagged(docs, data, pred, truth, ["A", "B", "C"], png, "t")
    assert png.read_bytes() == b"old figure"
    assert sorted(p.name for p in run.iterdir()) == ["tagged.png"]


def test_the_figure_warns_of_no_glyph_and_its_legend_is_below_the_panels(tmp_path):
    import warnings

    from rnnkit.tasks.tag import draw_tagged, snippets, tagged_figure

    line = "caf\u00e9 \U0001f469\u200d\U0001f467 \u6771\u4eac\n"
    docs, data, pred, truth = _tiny_figure_inputs(line * 40, wrong_from=len(line) * 30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        draw_tagged(docs, data, pred, truth, ["A", "B", "C"], tmp_path / "t.png", "t")
    panels = snippets(docs, data, pred, truth)
    assert len(panels) == 2  # the legend used to cover the second one's bottom row
    fig = tagged_figure(panels, ["A", "B", "C"], "t")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # this draw is the test's, not draw_tagged's
        fig.draw_without_rendering()
    (legend,) = fig.legends
    box = legend.get_window_extent()
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent())
    assert [t.get_text() for t in legend.get_texts()] == ["A", "B", "C", "wrong"]


def test_features_and_a_test_file(tmp_path, capsys):
    rng = np.random.default_rng(0)

    def lines(n):
        out = []
        for _ in range(n):
            v = rng.normal(size=(7, 2)).round(3)
            out.append(
                json.dumps({"x": v.tolist(), "y": ["hi" if a > 0 else "lo" for a in v[:, 0]]})
            )
        return out

    data = _write(tmp_path / "f.jsonl", lines(30))
    test = _write(tmp_path / "t.jsonl", lines(5))
    out = tmp_path / "run"
    argv = ["train", "tag", "--data", data, "--test-data", test, "--steps", "4",
            "--eval-every", "2", "--hidden", "4", "--seq-len", "5", "--batch-size", "2",
            "--no-bidirectional", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["derived"]["features"] == 2 and config["derived"]["tags"] == ["hi", "lo"]
    assert config["derived"]["source"]["split"] == {"train": 27, "validation": 3, "test": 5}
    assert main(["eval", str(out)]) == 0
    assert "most frequent tag baseline" in capsys.readouterr().out
    assert (out / "tagged.png").exists()


def test_cli_train_on_a_jsonl_file(tmp_path, capsys):
    data = _write(tmp_path / "p.jsonl", python_lines(40))
    out = tmp_path / "cli"
    argv = ["train", "tag", "--data", data, "--steps", "4", "--hidden", "8", "--embed", "4",
            "--seq-len", "16", "--batch-size", "4", "--cell", "gru", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "validation accuracy" in printed and "per-character prior baseline" in printed


def test_cli_errors_name_the_file_and_line(tmp_path, capsys):
    bad = _write(tmp_path / "bad.jsonl", ['{"x": "ab", "y": ["A", "B"]}', '{"x": "ab"}'])
    assert main(["train", "tag", "--data", bad, "--steps", "2", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.jsonl line 2" in err and "missing key" in err
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match="--test-data needs --data"):
        TagOptions(test_data="x.jsonl")


def test_confusions_count_the_pairs_that_occur_among_many_tags():
    """Most frequent errors with 200,000 tags: no k x k table (320 GB of int64)."""
    from rnnkit.tasks.tag import confusions

    tags = [f"t{i}" for i in range(200_000)]
    truth = torch.tensor([5, 5, 5, 7, 199_999, 3, -100], dtype=torch.int32)
    pred = torch.tensor([6, 6, 9, 7, 0, 3, 1], dtype=torch.int32)
    assert confusions(pred, truth, tags) == ["t5 -> t6 2", "t5 -> t9 1", "t199999 -> t0 1"]
    assert confusions(truth.clamp(min=0), truth.clamp(min=0), tags) == []
