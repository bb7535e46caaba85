"""Every error message rnnkit raises is quoted by a test (the bar: "every error message").

The package is read with :mod:`ast`, not imported. For each ``raise E(message)`` the
message's literal text is collected: string constants, the literal parts of f-strings,
concatenations, calls that wrap them, and a message built in a local variable of the same
function. A message counts as tested when a string constant of ``tests/`` (with regex
escapes removed) holds ``WINDOW`` consecutive characters of its literal text that no
other message holds. A message whose every such stretch is shared with other messages
(``": length must be an integer >= 0; got "``, raised by several functions) counts only
when a test quotes it whole: its literal pieces in order, in one string of a test. So
does one with fewer than ``WINDOW`` literal characters (``f"text file {path} is empty"``);
one with fewer than ``LEAST`` letters (``f"{where}: {why}"``) is not checked.

A message that a function of the package builds and returns, raised as
``raise E(not_found(path))``, is read from that function: each of its ``return``s is a
message of its own, and each must be quoted. (A helper called inside an f-string, such as
a value's description, is a dynamic part like any other.)

``UNREACHABLE`` names the messages no input reaches, each with the reason. The test fails
on a message that is neither tested nor listed, and on a listed one that is tested or
gone, so the list stays exact.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "rnnkit"
WINDOW = 16
LEAST = 6  # letters of literal text below which a message is all dynamic parts

# (module, function, a fragment of the message): why no input reaches it.
UNREACHABLE: dict[tuple[str, str, str], str] = {
    ("rnnkit/data/tagging.py", "tag_source", "an f-string is not closed"): (
        "Python 3.12+'s tokenizer raises TokenError for an unclosed f-string, which "
        "tag_source turns into a TokenizeError first; before 3.12 there is no FSTRING token"
    ),
}


@dataclass(frozen=True)
class Message:
    module: str  # path under src/, e.g. "rnnkit/deploy.py"
    function: str
    line: int
    pieces: tuple[str, ...]  # the literal text, in order
    helper: str = ""  # the function that built it, "name:line" of its return; "" for none

    @property
    def text(self) -> str:
        return "{}".join(self.pieces)

    def where(self) -> str:
        via = f" via {self.helper}" if self.helper else ""
        return f"{self.module}:{self.line} ({self.function}{via}): {self.text!r}"


def _literal(node: ast.AST, assigned: dict[str, list[ast.AST]], seen: frozenset[str]) -> list[str]:
    """The literal pieces of a message expression (empty where it has none)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return [v.value for v in node.values if isinstance(v, ast.Constant)]
    if isinstance(node, ast.BinOp):
        return _literal(node.left, assigned, seen) + _literal(node.right, assigned, seen)
    if isinstance(node, ast.IfExp):
        return _literal(node.body, assigned, seen) + _literal(node.orelse, assigned, seen)
    if isinstance(node, ast.Call):
        return [p for a in node.args for p in _literal(a, assigned, seen)]
    if isinstance(node, ast.Name) and node.id in assigned and node.id not in seen:
        inner = seen | {node.id}
        return [p for v in assigned[node.id] for p in _literal(v, assigned, inner)]
    return []


def _assignments(scope: ast.AST) -> dict[str, list[ast.AST]]:
    found: dict[str, list[ast.AST]] = {}
    for node in ast.walk(scope):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name):
            found.setdefault(target.id, []).append(value)
    return found


def _functions() -> dict[Path, list[ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function (and method) of each module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found[path] = [
            n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
        ]
    return found


Return = tuple[int, tuple[str, ...]]  # a return's line and its literal pieces


def _builders(functions: list[ast.FunctionDef | ast.AsyncFunctionDef]) -> dict[str, list[Return]]:
    """The functions whose every ``return`` hands back text of its own, by name: the
    literal pieces of each return. A name defined twice in the package is left out, as a
    call to it cannot be told apart by name."""
    found: dict[str, list[Return]] = {}
    seen: set[str] = set()
    for f in functions:
        if f.name in seen:
            found.pop(f.name, None)
            continue
        seen.add(f.name)
        own = [n for n in ast.walk(f) if isinstance(n, ast.Return) and _owner(f, n)]
        assigned = _assignments(f)
        returns = sorted(
            (r.lineno, tuple(p for p in _literal(r.value, assigned, frozenset()) if p))
            for r in own
            if r.value is not None
        )
        if own and all(pieces for _, pieces in returns) and len(returns) == len(own):
            found[f.name] = returns
    return found


def _owner(f: ast.AST, node: ast.AST) -> bool:
    """Whether ``node`` belongs to ``f`` itself, not to a function defined inside it."""
    nested = [n for n in ast.walk(f) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return not any(n is node for inner in nested if inner is not f for n in ast.walk(inner))


def _called(node: ast.AST, assigned: dict[str, list[ast.AST]]) -> str | None:
    """The name of the function whose result is the whole message, if it is one."""
    if isinstance(node, ast.Name) and len(assigned.get(node.id, [])) == 1:
        node = assigned[node.id][0]
    if isinstance(node, ast.Call):
        func = node.func
        return func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    return None


def messages() -> list[Message]:
    """Every raise with a message argument in the package, innermost function first."""
    functions = _functions()
    builders = _builders([f for fs in functions.values() for f in fs])
    found: dict[tuple[str, int, int], Message] = {}
    for path, scopes in functions.items():
        module = path.relative_to(PACKAGE.parent).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        # Walk outer scopes first, so an inner function's own scope has the last word.
        for scope in [tree, *scopes]:
            assigned = _assignments(scope)
            name = getattr(scope, "name", "<module>")
            for node in ast.walk(scope):
                if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                    continue
                if not node.exc.args:
                    continue
                arg = node.exc.args[0]
                builder = _called(arg, assigned)
                if builder in builders:
                    for k, (line, pieces) in enumerate(builders[builder]):
                        via = f"{builder}:{line}"
                        found[(module, node.lineno, k)] = Message(
                            module, name, node.lineno, pieces, via
                        )
                    continue
                pieces = tuple(p for p in _literal(arg, assigned, frozenset()) if p)
                found[(module, node.lineno, 0)] = Message(module, name, node.lineno, pieces)
    return sorted(found.values(), key=lambda m: (m.module, m.line, m.helper))


def _stretches(text: str) -> set[str]:
    text = " ".join(text.split())
    return {text[i : i + WINDOW] for i in range(len(text) - WINDOW + 1)}


@dataclass(frozen=True)
class Quotes:
    """What the tests quote: every WINDOW-character stretch of their strings, and the
    strings themselves, one per line (an f-string's values as NUL)."""

    stretches: frozenset[str]
    text: str

    @classmethod
    def of(cls, strings: list[str]) -> Quotes:
        # A pattern for pytest.raises(match=...) escapes its punctuation; unescape it too.
        strings = strings + [re.sub(r"\\(.)", r"\1", s) for s in strings]
        stretches: set[str] = set()
        for s in strings:
            stretches |= _stretches(s)
        return cls(frozenset(stretches), "\n".join(" ".join(s.split()) for s in strings))

    def whole(self, m: Message) -> bool:
        """Whether one string quotes every literal piece of ``m``, in order."""
        pieces = [re.escape(" ".join(p.split())) for p in m.pieces if p.strip()]
        return re.search(r"[^\n]{0,200}?".join(pieces), self.text) is not None


def _quoted() -> Quotes:
    strings: list[str] = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        if path.name == Path(__file__).name:
            continue  # its own examples quote nothing of the package
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                strings.append(node.value)
            elif isinstance(node, ast.JoinedStr):
                parts = node.values
                strings.append(
                    "".join(v.value if isinstance(v, ast.Constant) else "\0" for v in parts)
                )
    return Quotes.of(strings)


def untested(found: list[Message], quoted: Quotes) -> list[Message]:
    stretches = {m: set().union(*map(_stretches, m.pieces)) if m.pieces else set() for m in found}
    holders: dict[str, int] = {}
    for own in stretches.values():
        for s in own:
            holders[s] = holders.get(s, 0) + 1
    missing = []
    for m, own in stretches.items():
        if sum(c.isalpha() for p in m.pieces for c in p) < LEAST:
            continue  # all dynamic parts: nothing of its own to quote
        distinct = {s for s in own if holders[s] == 1}
        if not (distinct & quoted.stretches if distinct else quoted.whole(m)):
            missing.append(m)
    return missing


def _listed(m: Message) -> tuple[str, str, str] | None:
    for key in UNREACHABLE:
        module, function, fragment = key
        if m.module == module and m.function == function and fragment in m.text:
            return key
    return None


def test_the_audit_reads_messages() -> None:
    # The reader must see the package's messages, or the test below proves nothing.
    found = messages()
    assert len(found) > 600
    texts = [m.text for m in found]
    assert any("already holds a run; continue it with --resume" in t for t in texts)
    # Concatenated and f-string pieces, with the dynamic parts left out.
    (loop,) = [m for m in found if "steps in a row (up to step " in m.text]
    assert loop.module == "rnnkit/train/loop.py" and loop.function == "_one_step"
    assert loop.text.startswith("the loss or gradient was non-finite for {} steps in a row")


def test_the_audit_reads_a_message_built_before_its_raise(tmp_path: Path) -> None:
    source = (
        "def f(x):\n    why = f'x must be positive; got {x}'\n    raise ValueError('f: ' + why)\n"
    )
    tree = ast.parse(source)
    (raise_,) = [n for n in ast.walk(tree) if isinstance(n, ast.Raise)]
    assert _literal(raise_.exc.args[0], _assignments(tree), frozenset()) == [  # type: ignore[union-attr]
        "f: ",
        "x must be positive; got ",
    ]


def test_the_audit_reads_a_message_a_function_builds() -> None:
    # Each return of the builder is a message; a formatter inside an f-string is not one.
    source = (
        "def why(p):\n"
        "    if p:\n        return f'{p} is a file; expected a folder'\n"
        "    return 'folder not found'\n"
        "def fmt(x):\n    return repr(x)\n"
        "def twice(x):\n    return 'a'\n"
        "def twice(x):\n    return 'b'\n"
    )
    functions = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef)]
    assert _builders(functions) == {
        "why": [(3, (" is a file; expected a folder",)), (4, ("folder not found",))]
    }
    call = ast.parse("why(path)", mode="eval").body
    assert _called(call, {}) == "why"
    assert _called(ast.Name("msg"), {"msg": [call]}) == "why"
    # In the package: not_found's three returns, at each of its raises.
    via = {m.helper.split(":")[0] for m in messages() if m.helper}
    assert {"not_found", "sum_overflow"} <= via
    read_config = [m for m in messages() if m.function == "read_config" and m.helper]
    assert [m.pieces for m in read_config] == [
        (" is a symbolic link; expected a run folder (rnnkit does not follow links)",),
        (" is a file; expected a run folder",),
        ("run folder not found: ",),
    ]


def test_the_audit_finds_an_untested_message() -> None:
    new = Message("rnnkit/x.py", "f", 1, ("a message no test has ever quoted, ", " or will"))
    quoted = _quoted()
    assert untested([new], quoted) == [new]
    known = Message("rnnkit/x.py", "f", 1, ("a message the test quotes", ": word for word"))
    assert untested([known], Quotes.of(["see: a message the test quotes"])) == []
    # Two call sites of one text: quoted in part, neither counts; quoted whole, one does.
    shared = ("f: ", "count must be an integer >= 0; got ")
    a, b = (Message("rnnkit/x.py", f, 1, shared) for f in ("a", "b"))
    part = Quotes.of(["count must be an integer >= 0; got -1"])
    assert untested([a, b], part) == [a, b]
    assert untested([a, b], Quotes.of(["f: count must be an integer >= 0; got -1"])) == []
    assert untested([a], Quotes.of([r"f: count must be an integer \>= 0; got \-1"])) == []
    # Short: quoted whole or not at all; all dynamic parts: not checked.
    short = Message("rnnkit/x.py", "f", 1, ("text file ", " is empty"))
    assert untested([short], Quotes.of(["text file"])) == [short]
    assert untested([short], Quotes.of(["text file a.txt is empty"])) == []
    assert untested([Message("rnnkit/x.py", "f", 1, (": ",))], Quotes.of([])) == []


def test_every_message_is_quoted_by_a_test() -> None:
    found = messages()
    missing = [m for m in untested(found, _quoted()) if _listed(m) is None]
    assert not missing, "messages no test quotes:\n" + "\n".join(m.where() for m in missing)


def test_the_unreachable_list_is_exact() -> None:
    found = messages()
    missing = set(untested(found, _quoted()))
    stale = []
    for key in UNREACHABLE:
        matches = [m for m in found if _listed(m) == key]
        if not matches or not all(m in missing for m in matches):
            stale.append(key)
    assert not stale, f"listed as unreachable but tested or gone: {stale}"
