"""What the tests of refusals share: the CLI's one line, exit 2 and nothing written; an
exception's message, in part or whole; a folder's tree, to compare before and after."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from rnnkit.cli import main


def refused(capsys: pytest.CaptureFixture[str], argv: list[str], root: Path) -> str:
    """The one line rnnkit prints for ``argv``, after checking status 2, no traceback,
    nothing on standard output and nothing written or touched under ``root``."""
    before = sorted((p, p.stat().st_mtime_ns) for p in root.rglob("*"))
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    assert code == 2, (code, captured.err)
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err, captured.err
    assert captured.out == ""
    assert sorted((p, p.stat().st_mtime_ns) for p in root.rglob("*")) == before
    return captured.err.strip()


def raises(exc: type[BaseException], message: str, fn: Any, *args: Any, **kwargs: Any) -> None:
    """``fn(*args, **kwargs)`` raises ``exc`` whose message holds ``message`` word for word."""
    with pytest.raises(exc, match=re.escape(message)):
        fn(*args, **kwargs)


def raises_exactly(
    exc: type[BaseException], message: str, fn: Any, *args: Any, **kwargs: Any
) -> None:
    """``fn(*args, **kwargs)`` raises ``exc`` whose message is ``message``, whole."""
    with pytest.raises(exc, match="^" + re.escape(message) + "$"):
        fn(*args, **kwargs)


def tree(root: Path) -> dict[str, tuple[bool, int, int]]:
    """Every path under ``root``: whether a folder, its size and its modification time."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        out[str(path.relative_to(root))] = (path.is_dir(), st.st_size, st.st_mtime_ns)
    return out
