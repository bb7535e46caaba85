"""The docs' references to code lines must point at the code they quote."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"`(src/rnnkit/[\w/]+\.(?:py|cpp)):(\d+)` \| `(.+?)` \|")


def test_equation_table_points_at_the_quoted_lines():
    rows = ROW.findall((ROOT / "docs" / "equations.md").read_text(encoding="utf-8"))
    assert len(rows) >= 15
    for path, line, code in rows:
        text = (ROOT / path).read_text(encoding="utf-8").splitlines()[int(line) - 1]
        assert code in text, f"{path}:{line} is {text.strip()!r}, not {code!r}"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line for line in ci.splitlines() if "python -m pytest" in line]
    assert commands, "the CI script runs no tests"
    assert all(command.strip() in readme for command in commands)


def test_readme_quick_start_runs(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks
    monkeypatch.chdir(tmp_path)  # what the examples write (runs/...) stays out of the checkout
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
