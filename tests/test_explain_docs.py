"""docs/chapter.md: every section of the chapter is there; every figure exists.

Its code references are checked with those of docs/equations.md, in tests/test_docs.py.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "chapter.md"
FIGURE = re.compile(r"!\[[^\]]*\]\((img/[\w.-]+\.png)\)")


def test_every_chapter_section_is_covered() -> None:
    text = PAGE.read_text(encoding="utf-8")
    for section in range(1, 22):
        assert re.search(rf"^## 10\.{section} ", text, re.MULTILINE), f"10.{section} missing"


def test_figures_exist_and_are_small() -> None:
    text = PAGE.read_text(encoding="utf-8")
    figures = FIGURE.findall(text)
    assert len(figures) >= 5
    for figure in figures:
        path = ROOT / "docs" / figure
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", figure
        assert path.stat().st_size <= 110_000, f"{figure} is {path.stat().st_size} bytes"
