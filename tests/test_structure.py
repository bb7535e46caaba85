"""The shape of the code: imports that go one way, and a forward that changes nothing.

- The import graph of ``src/rnnkit`` - every ``import`` statement, at the top of a module
  or inside a function, ``TYPE_CHECKING`` blocks included - has no cycle through the core
  (cells, the scan kernel, backends, layers, stream), and the core's layers depend one
  way: layers -> backends -> cells -> kernels.
- ``forward`` leaves the module as it found it, in training and in evaluation, on every
  backend: the backend that ran is returned by ``rnnkit.backends.trace`` and asked ahead by
  ``layer.backend_for``, never written onto the layer.
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import rnnkit

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "rnnkit"

# The core packages (a name covers the module and everything under it).
CORE = ("rnnkit.cells", "rnnkit.kernels", "rnnkit.backends", "rnnkit.layers", "rnnkit.stream")

# What the core must not import: the arrows of DESIGN.md's data flow, never reversed.
FORBIDDEN = {
    "rnnkit.kernels": ("rnnkit",),  # a leaf: torch only
    "rnnkit.cells": ("rnnkit.backends", "rnnkit.layers", "rnnkit.stream"),
    "rnnkit.backends": ("rnnkit.layers", "rnnkit.stream"),
    "rnnkit.layers": ("rnnkit.stream",),
}

# Cycles outside the core, known and left for later (each a sorted strongly connected
# component). A new cycle, or a known one that grows, fails the test; one that is removed
# only leaves its entry here to delete.
KNOWN_CYCLES: list[list[str]] = [
    # tasks.numbers imports seq2seq.evaluate, which names seq2seq.run's NumbersRun for its
    # types, and seq2seq.run imports tasks.numbers inside a function.
    ["rnnkit.seq2seq.evaluate", "rnnkit.seq2seq.run", "rnnkit.tasks.numbers"],
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the rnnkit modules it imports, anywhere in its body."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's package, level - 1 further up
                    package = name.split(".") if is_package else name.split(".")[:-1]
                    up = package[: len(package) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                # ``from pkg import sub`` imports the submodule; ``from mod import f`` the module.
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names
                ]
            else:
                continue
            for target in targets:
                # ``import rnnkit.a.b`` names rnnkit.a.b; keep the longest known prefix.
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _in(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def test_the_import_graph_sees_function_level_and_relative_imports() -> None:
    graph = _import_graph()
    assert "rnnkit.kernels.scan" in graph["rnnkit.cells.mingru"]
    assert "rnnkit.backends.plan" in graph["rnnkit.backends.native"]
    assert "rnnkit.layers.base" in graph["rnnkit.layers.classic"]
    # a function-level import counts: the CLI reaches tasks only from inside functions
    assert any(_in(t, ("rnnkit.cli",)) for t in graph["rnnkit.__main__"])


def test_no_import_cycle_runs_through_the_core() -> None:
    cycles = _cycles(_import_graph())
    core = [c for c in cycles if any(_in(m, CORE) for m in c)]
    assert not core, f"import cycles through the core: {core}"
    unknown = [c for c in cycles if c not in core and c not in KNOWN_CYCLES]
    assert not unknown, f"new import cycles: {unknown}"


def test_the_core_imports_one_way() -> None:
    graph = _import_graph()
    wrong = [
        f"{module} imports {target}"
        for module, targets in sorted(graph.items())
        for package, banned in FORBIDDEN.items()
        if _in(module, (package,))
        for target in sorted(targets)
        if _in(target, banned) and not _in(target, (package,))
    ]
    assert not wrong, "\n".join(wrong)


# ---- forward changes nothing on the module -------------------------------------------


def _snapshot(module: nn.Module) -> dict[tuple[str, str], Any]:
    """Every attribute of the module and its children; dictionaries copied one level."""
    snap: dict[tuple[str, str], Any] = {}
    for name, sub in module.named_modules():
        for key, value in vars(sub).items():
            snap[name, key] = dict(value) if isinstance(value, dict) else value
    return snap


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return a is b
    return a is b or (type(a) is type(b) and a == b)


def _assert_unchanged(before: dict, after: dict) -> None:
    assert before.keys() == after.keys(), (
        f"attributes added or removed: {before.keys() ^ after.keys()}"
    )
    changed = [key for key in before if not _same(before[key], after[key])]
    assert not changed, f"forward changed {changed}"


CONFIGS = [
    (rnnkit.LSTM, "auto", {}),
    (rnnkit.LSTM, "native", {}),
    (rnnkit.LSTM, "reference", {}),
    (rnnkit.GRU, "auto", {"zoneout": 0.1}),  # rnnkit's fused kernel
    (rnnkit.RNN, "auto", {"zoneout": 0.1}),  # rnnkit's fused kernel
    (rnnkit.LSTM, "auto", {"proj_size": 2, "zoneout": 0.1}),  # rnnkit's fused kernel
    (rnnkit.RNN, "native", {}),
    (rnnkit.MinGRU, "auto", {}),
    (rnnkit.MinGRU, "scan", {}),
    (rnnkit.MinLSTM, "reference", {}),
]


def _calls(backend: str) -> list[dict[str, Any]]:
    T, B = 6, 3
    calls: list[dict[str, Any]] = [{}, {"lengths": [6, 2, 0]}]
    if backend != "native":  # torch's kernels have no reset; forcing them raises
        reset = torch.zeros(T, B, dtype=torch.bool)
        reset[3, 1] = True
        calls.append({"reset": reset})
    return calls


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize(("cls", "backend", "options"), CONFIGS)
def test_forward_leaves_the_module_unchanged(cls, backend, options, training) -> None:
    layer = cls(4, 5, 2, dropout=0.2, bidirectional=True, backend=backend, **options)
    layer.train(training)
    x = torch.randn(6, 3, 4)
    params = {name: (p._version, p.detach().clone()) for name, p in layer.named_parameters()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rnnkit.PerformanceWarning)
        for kwargs in _calls(backend):
            before = _snapshot(layer)
            asked = layer.backend_for(x, **kwargs)
            with rnnkit.backends.trace() as ran:
                out, _ = layer(x, **kwargs)
                out.sum().backward()
            _assert_unchanged(before, _snapshot(layer))
            assert ran[layer] == asked  # asking ahead gives what the call does
    for name, p in layer.named_parameters():
        version, value = params[name]
        assert p._version == version and torch.equal(p.detach(), value), name


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.MinGRU])
def test_stream_steps_leave_the_layer_unchanged(cls, training) -> None:
    layer = cls(4, 5, 2).train(training)
    before = _snapshot(layer)
    stream = rnnkit.Stream(layer)
    for _ in range(3):
        stream.step(torch.randn(2, 4))
    assert stream.last_backend == ("native" if cls is rnnkit.LSTM else "reference")
    stream(torch.randn(3, 2, 4))
    assert stream.last_backend == ("native" if cls is rnnkit.LSTM else "scan")
    _assert_unchanged(before, _snapshot(layer))


def test_trace_blocks_nest_and_close() -> None:
    a, b = rnnkit.LSTM(3, 4), rnnkit.MinGRU(3, 4)
    x = torch.randn(5, 2, 3)
    with rnnkit.backends.trace() as outer:
        a(x)
        with rnnkit.backends.trace() as inner:
            b(x)
    assert set(outer) == {a, b} and set(inner) == {b}
    assert inner[b].name == "scan" and outer[a].name == "native"
    a(x)  # no block open: nothing is recorded anywhere
    assert len(outer) == 2
