"""A tag of only whitespace is refused, in a JSON-lines file and in TaggedSequences: a
report (`rnnkit eval`'s per-tag lines) printed it as a blank row."""

from __future__ import annotations

from pathlib import Path

import pytest

from _refusals import raises_exactly, refused
from rnnkit.data import tagging as T
from rnnkit.data.vocab import Vocabulary

VOCAB = Vocabulary.from_text("ab ")


@pytest.mark.parametrize("tag", [" ", "\t", "\u3000"])
def test_a_whitespace_tag_in_a_file_is_refused_naming_the_line(tmp_path: Path, tag: str) -> None:
    path = tmp_path / "d.jsonl"
    line = T.json.dumps({"x": "a b", "y": ["A", tag, "B"]})
    path.write_text('{"x": "ab", "y": ["A", "B"]}\n' + line + "\n", encoding="utf-8")
    raises_exactly(
        ValueError,
        f"--data {path} line 2: y[1] must be a tag name with a visible character; got {tag!r}",
        T.read_jsonl,
        path,
    )


def test_the_cli_refuses_a_whitespace_tag_in_one_line(tmp_path: Path, capsys) -> None:
    (tmp_path / "d.jsonl").write_text(
        '{"x": "ab", "y": ["A", "B"]}\n{"x": "a b", "y": ["A", " ", "B"]}\n', encoding="utf-8"
    )
    out = tmp_path / "run"
    line = refused(capsys, ["train", "tag", "--data", str(tmp_path / "d.jsonl"), "--out",
                            str(out), "--steps", "1"], tmp_path)  # fmt: skip
    assert line == (
        f"rnnkit train: error: --data {tmp_path / 'd.jsonl'} line 2: y[1] must be a tag name "
        "with a visible character; got ' '"
    )
    assert not out.exists()


@pytest.mark.parametrize("tag", [" ", ""])
def test_tagged_sequences_refuses_a_blank_tag_naming_the_sequence(tag: str) -> None:
    examples = [T.Example("ab", ["A", "B"], 1), T.Example("a b", ["A", tag, "B"], 7)]
    raises_exactly(
        ValueError,
        f"TaggedSequences: line 7: y[1] must be a tag name with a visible character; got {tag!r}",
        T.TaggedSequences,
        examples,
        VOCAB,
        ["A", "B", tag],
    )


def test_tagged_sequences_refuses_a_blank_name_in_tags() -> None:
    raises_exactly(
        ValueError,
        "TaggedSequences: tags[2] must be a tag name with a visible character; got '\\t'",
        T.TaggedSequences,
        [T.Example("ab", ["A", "B"], 1)],
        VOCAB,
        ["A", "B", "\t"],
    )


def test_tags_that_are_not_strings_still_work() -> None:
    data = T.TaggedSequences([T.Example("ab", [1, 0], 1)], VOCAB, [0, 1])  # type: ignore[list-item]
    assert data[0][1].tolist() == [1, 0]
