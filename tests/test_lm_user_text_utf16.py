"""A text saved as UTF-16 or UTF-32 (Windows Notepad's "Unicode") holds NUL bytes but is
text: named by its encoding, with what to do, rather than called a binary file."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from rnnkit.cli import main
from rnnkit.data import corpus

TEXT = "Dear diary, today I wrote about tea.\n" * 80


@pytest.mark.parametrize(
    ("codec", "name"),
    [("utf-16", "UTF-16"), ("utf-16-be", "UTF-16"), ("utf-32", "UTF-32"), ("utf-32-be", "UTF-32")],
)
def test_a_utf16_or_utf32_file_is_named_by_its_encoding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], codec: str, name: str
) -> None:
    path = tmp_path / "diary.txt"
    bom = {"utf-16-be": codecs.BOM_UTF16_BE, "utf-32-be": codecs.BOM_UTF32_BE}.get(codec, b"")
    path.write_bytes(bom + TEXT.encode(codec))
    assert main(["train", "lm", "--text", str(path), "--steps", "1",
                 "--out", str(tmp_path / "run")]) == 2  # fmt: skip
    assert capsys.readouterr().err == (
        f"rnnkit train: error: {path} is not UTF-8 text; got {name} (the file begins with "
        "its byte-order mark): save it as UTF-8\n"
    )
    assert not (tmp_path / "run").exists()


def test_in_a_folder_it_counts_as_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text(TEXT)
    (tmp_path / "b.txt").write_bytes(TEXT.encode("utf-16"))
    (tmp_path / "c.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    named, skipped = corpus.read_files_counted(tmp_path)
    assert [p.name for p, _ in named] == ["a.txt"]
    assert skipped == {"binary": 1, "not UTF-8": 1}
