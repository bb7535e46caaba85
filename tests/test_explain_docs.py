"""docs/chapter.md: every code reference points at the line it quotes; every figure exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "chapter.md"
# [`src/rnnkit/cells/lstm.py:100`](../src/rnnkit/cells/lstm.py#L100): `c = f * c_prev + ...`
REFERENCE = re.compile(r"\[`([\w/.]+\.py):(\d+)`\]\(\.\./([\w/.]+\.py)#L(\d+)\): `([^`]+)`")
FIGURE = re.compile(r"!\[[^\]]*\]\((img/[\w.-]+\.png)\)")


def test_code_references_quote_their_line() -> None:
    text = PAGE.read_text(encoding="utf-8")
    refs = REFERENCE.findall(text)
    assert len(refs) >= 20
    wrong = []
    for path, line, link, anchor, snippet in refs:
        assert (path, line) == (link, anchor), f"link and label differ: {path}:{line}"
        lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
        n = int(line)
        if n > len(lines) or snippet not in lines[n - 1]:
            moved = [i + 1 for i, text_line in enumerate(lines) if snippet in text_line]
            wrong.append(f"{path}:{line} does not hold `{snippet}` (now on lines {moved})")
    assert not wrong, "docs/chapter.md is out of date:\n" + "\n".join(wrong)


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
