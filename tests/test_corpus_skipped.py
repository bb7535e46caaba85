"""A ``--text`` folder's files that are not read are counted, by why: what
``rnnkit train lm --text DIR`` and ``rnnkit eval --text DIR`` print, and the refusal of a
folder with none left. Each reason is checked against :func:`read_text_file`, the reader
of a file named on its own, which refuses the same files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from _refusals import raises_exactly
from rnnkit.cli import main
from rnnkit.data import corpus

GOOD = {"a.txt": "alpha beta\n", "b/c.py": "x = 1\r\ny = 2\n", "b/d.md": "# gamma"}
BAD = {  # name -> (bytes, the reason the summary gives)
    "e.txt": (b"", "empty"),
    "f.txt": (b" \n\t\n", "only whitespace"),
    "g.bin": (b"\x89PNG\r\n\x1a\n\x00\x00", "binary"),
    "b/h.bin": (b"ab\x00cd", "binary"),
    "i.txt": (b"caf\xe9\n", "not UTF-8"),
    "j.txt": (b"locked\n", "unreadable"),
}


def write_folder(root: Path) -> None:
    for name, text in GOOD.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(text.encode("utf-8"))
    for name, (data, _) in BAD.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "texts"
    root.mkdir()
    write_folder(root)
    locked = root / "j.txt"
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        # chmod 000 does not stop root, who runs some CI: refuse the read by hand.
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    return root


SUMMARY = "6 skipped (1 empty, 1 only whitespace, 2 binary, 1 not UTF-8, 1 unreadable)"


def test_each_skipped_file_is_counted_under_its_reason(folder: Path) -> None:
    named, skipped = corpus.read_files_counted(folder)
    assert [f.relative_to(folder).as_posix() for f, _ in named] == sorted(GOOD)
    assert [t for _, t in named] == [corpus.read_corpus_file(folder / n) for n in sorted(GOOD)]
    assert skipped == {"empty": 1, "only whitespace": 1, "binary": 2, "not UTF-8": 1,
                       "unreadable": 1}  # fmt: skip
    assert list(skipped) == list(corpus._SKIPPED)  # the summary's order
    assert corpus.skipped_note(skipped) == SUMMARY
    assert corpus.read_files(folder) == named


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_skipped_file_is_one_read_text_file_refuses(folder: Path, name: str) -> None:
    # The reference: the reader of a single --text file refuses exactly these.
    error = OSError if BAD[name][1] == "unreadable" else ValueError
    with pytest.raises(error):
        corpus.read_text_file(folder / name)
    assert corpus._read_or_why(folder / name) == ("", BAD[name][1])


def test_the_corpus_describes_what_it_skipped(folder: Path) -> None:
    c = corpus.read_text(folder)
    assert c.num_files == 3 and c.skipped == corpus.read_files_counted(folder)[1]
    sizes = f"train {len(c.train):,}, validation {len(c.validation):,}, test {len(c.test):,}"
    assert c.describe() == f"{folder.resolve()}: 3 file(s), {SUMMARY}; characters: {sizes}"


def test_a_folder_or_file_with_nothing_skipped_says_nothing_of_it(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("one\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("two\n", encoding="utf-8")
    assert corpus.read_files_counted(tmp_path)[1] == {}
    assert corpus.read_files_counted(tmp_path / "a.txt")[1] == {}
    assert corpus.skipped_note({}) == ""
    assert ", skipped" not in corpus.read_text(tmp_path).describe()
    assert corpus.read_text(tmp_path).describe().startswith(f"{tmp_path.resolve()}: 2 file(s); ")


def test_a_folder_of_only_skipped_files_is_refused_with_the_count(tmp_path: Path) -> None:
    (tmp_path / "x.bin").write_bytes(b"\x00\x01")
    (tmp_path / "y.txt").write_bytes(b"")
    raises_exactly(
        ValueError,
        f"folder {tmp_path} holds no UTF-8 text files; 2 skipped (1 empty, 1 binary)",
        corpus.read_files,
        tmp_path,
    )
    empty = tmp_path / "nothing"
    empty.mkdir()
    raises_exactly(
        ValueError, f"folder {empty} holds no UTF-8 text files", corpus.read_files, empty
    )


def test_train_and_eval_print_the_count(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    argv = ["train", "lm", "--text", str(folder), "--hidden", "8", "--embed", "4"]
    argv += ["--layers", "1", "--seq-len", "4", "--batch-size", "2", "--steps", "2"]
    assert main([*argv, "--eval-every", "2", "--eval-chars", "8", "--out", str(run)]) == 0
    captured = capsys.readouterr()
    said = captured.out + captured.err
    assert f"lm: {folder.resolve()}: 3 file(s), {SUMMARY}; characters: " in said
    assert main(["eval", str(run), "--text", str(folder)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    # 11 + 12 + 8 characters: c.py's "\r\n" read as "\n", d.md given its newline.
    assert re.fullmatch(
        re.escape(f"text: {folder} (3 files, {SUMMARY}): 31 characters (with a newline added "
                  "at the end of 1 file), ") + r"\d+ unknown to the model",
        first,
    )  # fmt: skip
