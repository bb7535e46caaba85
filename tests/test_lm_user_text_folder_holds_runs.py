"""A ``--text`` folder that holds rnnkit's own run folders: ``rnnkit train --text .`` with
the default ``--out runs/...`` writes its run into the folder it reads. The run's files
(config.json, metrics.csv, README.md) are not text of the user's, and reading them made
the next run train on them and a ``--resume`` of this run refuse its own text as changed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnkit.cli import main
from rnnkit.data import corpus

SMALL = ["--hidden", "8", "--embed", "4", "--layers", "1", "--seq-len", "8",
         "--batch-size", "4", "--threads", "1", "--sample-chars", "0"]  # fmt: skip


def _book(root: Path) -> None:
    root.mkdir()
    for k in range(3):
        (root / f"chapter {k}.txt").write_text(f"It was a dark and stormy night, {k}.\n" * 40)


def test_a_run_written_into_the_text_folder_resumes_and_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    book = tmp_path / "book"
    _book(book)
    monkeypatch.chdir(book)
    before = corpus.read_text(book)
    assert main(["train", "--text", ".", "--steps", "2", "--out", "runs/first", *SMALL]) == 0
    assert (book / "runs" / "first" / "metrics.csv").is_file()
    after = corpus.read_text(book)
    assert (after.train, after.validation, after.test) == (
        before.train,
        before.validation,
        before.test,
    )
    assert [p.name for p in corpus.text_files(book)] == [f"chapter {k}.txt" for k in range(3)]
    capsys.readouterr()
    assert main(["train", "--resume", "runs/first", "--steps", "4"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (
        f"lm: {book}: 3 file(s); characters: train {len(before.train):,}, validation "
        f"{len(before.validation):,}, test {len(before.test):,}; run folder: runs/first"
    )


def test_a_run_stopped_before_its_first_checkpoint_is_left_out_too(tmp_path: Path) -> None:
    book = tmp_path / "book"
    _book(book)
    started = book / "runs" / "lm-1"
    started.mkdir(parents=True)
    (started / "config.json").write_text('{"format": "rnnkit.run", "format_version": 2}')
    mine = book / "notes"  # a folder of the user's that holds a config.json of its own
    mine.mkdir()
    (mine / "config.json").write_text('{"title": "my book"}\n')
    got = [p.relative_to(book).as_posix() for p in corpus.text_files(book)]
    assert got == ["chapter 0.txt", "chapter 1.txt", "chapter 2.txt", "notes/config.json"]
