"""The docs' references to code must name the function that holds the code they quote."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# docs/equations.md: | ... | `rnnkit.cells.lstm.LSTMCell.recur` | `c = f * c_prev + i * c_tilde` |
ROW = re.compile(r"\| `(rnnkit[\w./]*(?:\.cpp: \w+)?)` \| `(.+?)` \|")
# docs/chapter.md: [`rnnkit.cells.lstm.LSTMCell.recur`](../src/rnnkit/cells/lstm.py): `c = ...`
LINK = re.compile(r"\[`(rnnkit[\w.]*)`\]\(\.\./(src/[\w/]+\.py)\): `([^`]+)`")


def python_source(name: str) -> tuple[str, str]:
    """The source of ``package.module.Class.function`` and the file that holds it."""
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attr in parts[split:]:
            assert hasattr(obj, attr), f"{name}: {obj.__name__} has no {attr}"
            obj = getattr(obj, attr)
        obj = inspect.unwrap(obj)
        return inspect.getsource(obj), inspect.getsourcefile(obj) or ""
    raise AssertionError(f"{name}: no such module")


def cpp_source(reference: str) -> str:
    """The body of ``file.cpp: function``: from its definition to its closing brace."""
    file, function = reference.split(": ")
    text = (ROOT / "src" / file).read_text(encoding="utf-8")
    start = re.search(rf"^\S[^;{{]*\b{function}\(", text, re.MULTILINE)
    assert start, f"{file} defines no function {function}"
    depth, i = 0, text.index("{", start.end())
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[start.start() : j + 1]
    raise AssertionError(f"{reference}: unbalanced braces")


def source(reference: str) -> str:
    return cpp_source(reference) if ".cpp: " in reference else python_source(reference)[0]


def test_equation_table_names_the_functions_that_hold_the_code():
    rows = ROW.findall((ROOT / "docs" / "equations.md").read_text(encoding="utf-8"))
    assert len(rows) >= 40
    wrong = [f"{ref} does not hold {code!r}" for ref, code in rows if code not in source(ref)]
    assert not wrong, "docs/equations.md is out of date:\n" + "\n".join(wrong)


def test_chapter_page_names_the_functions_that_hold_the_code():
    refs = LINK.findall((ROOT / "docs" / "chapter.md").read_text(encoding="utf-8"))
    assert len(refs) >= 20
    wrong = []
    for name, link, code in refs:
        text, file = python_source(name)
        if Path(file).resolve() != (ROOT / link).resolve():
            wrong.append(f"{name} is in {file}, not {link}")
        elif code not in text:
            wrong.append(f"{name} does not hold {code!r}")
    assert not wrong, "docs/chapter.md is out of date:\n" + "\n".join(wrong)


def test_docs_cite_no_line_numbers():
    """Docs name code by module and function; a line number goes stale with any edit."""
    cited = re.compile(r"\.(?:py|cpp):\d+|\.py#L\d+")
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        hits = cited.findall(page.read_text(encoding="utf-8"))
        assert not hits, f"{page.name} cites lines: {hits[:3]}"


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
