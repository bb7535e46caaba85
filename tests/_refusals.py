"""What the tests of the CLI's refusals share: one line, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

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
