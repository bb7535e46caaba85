"""Library hygiene: what importing rnnkit costs, and what plotting leaves behind.

- ``import rnnkit`` must not import matplotlib or num2words (both are needed only by
  some features: figures, the numbers task);
- importing ``rnnkit.explain``, ``rnnkit.seq2seq`` and all their submodules must not
  import ``matplotlib.pyplot``;
- drawing a figure must leave the caller's matplotlib backend and rcParams alone (a
  notebook user keeps their inline or widget backend): no ``matplotlib.use``, no pyplot;
- every third-party package imported under ``src/rnnkit`` is declared in pyproject.toml.

The import checks run in fresh interpreters, since this process has imported everything
already.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "rnnkit"

# Import name -> distribution name, where the two differ or to be explicit.
DISTRIBUTIONS = {
    "safetensors": "safetensors",
    "torch": "torch",
    "numpy": "numpy",
    "matplotlib": "matplotlib",
    "num2words": "num2words",
    "onnx": "onnx",
    "onnxruntime": "onnxruntime",
    "PIL": "Pillow",
    "aeon": "aeon",
    "statsmodels": "statsmodels",
    "sklearn": "scikit-learn",
    "pandas": "pandas",
    "yaml": "PyYAML",
    "triton": "triton",
}


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter; fail with its stderr if it fails."""
    full_env = {**os.environ, **env}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done


def test_import_rnnkit_imports_neither_matplotlib_nor_num2words() -> None:
    _run(
        """
        import sys
        import rnnkit
        loaded = [m for m in ("matplotlib", "num2words", "PIL") if m in sys.modules]
        assert not loaded, f"import rnnkit imported {loaded}"
        """
    )


def test_importing_explain_and_seq2seq_does_not_import_pyplot_or_num2words() -> None:
    _run(
        """
        import importlib
        import pkgutil
        import sys

        import rnnkit.explain
        import rnnkit.seq2seq

        names = []
        for package in (rnnkit.explain, rnnkit.seq2seq):
            for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
                importlib.import_module(info.name)
                names.append(info.name)
        assert "rnnkit.explain.plotting" in names and "rnnkit.seq2seq.data" in names, names
        loaded = [m for m in ("matplotlib.pyplot", "num2words") if m in sys.modules]
        assert not loaded, f"importing {names} imported {loaded}"
        """
    )


def test_plotting_leaves_the_backend_and_rcparams_alone(tmp_path) -> None:
    _run(
        f"""
        import sys
        from pathlib import Path

        import matplotlib
        import torch

        assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
        before = dict(matplotlib.rcParams)

        from rnnkit.explain import plotting
        from rnnkit.explain.bidirectional import BidirectionalResult, ModelCurve
        from rnnkit.seq2seq import Translation, plot_attention

        out = Path({str(tmp_path)!r})
        attention = torch.softmax(torch.randn(3, 5), dim=-1)
        plot_attention(Translation("forty", "42", -0.1, attention), out / "a.png", title="t")
        curve = ModelCurve("GRU", 4, 100, [0, 1], [0.3, 0.6], [0.9, 0.9, 0.5])
        result = BidirectionalResult("gru", 6, 3, [-1, 0, 1], 2, [curve], 0.1)
        result.plot(out / "b.png")
        fig, axes = plotting.figure(1, 1, width=3, height=2)
        axes[0, 0].plot([0, 1], [1, 0])
        plotting.save(fig, out / "c.png", "title")

        for name in ("a.png", "b.png", "c.png"):
            assert (out / name).read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n", name
        assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
        assert "matplotlib.pyplot" not in sys.modules
        changed = sorted(k for k, v in matplotlib.rcParams.items() if before[k] != v)
        assert not changed, f"plotting changed rcParams {{changed}}"
        """,
        MPLBACKEND="svg",
    )


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_matplotlib_use_or_pyplot_import_in_the_library() -> None:
    pattern = re.compile(
        r"matplotlib\.use\(|import matplotlib\.pyplot|from matplotlib import pyplot"
    )
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert not offenders, "use matplotlib's object API (Figure, FigureCanvasAgg):\n" + "\n".join(
        offenders
    )


def _imported_packages() -> dict[str, set[str]]:
    """Top-level third-party import names under src/rnnkit -> the files importing them."""
    found: dict[str, set[str]] = {}
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in {"rnnkit", "__future__"}:
                    continue
                found.setdefault(top, set()).add(path.relative_to(SRC).as_posix())
    return found


def _declared() -> set[str]:
    """Distribution names (normalised) from dependencies and all optional-dependencies."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: tomllib is new in 3.11
        tomllib = pytest.importorskip("tomli")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return {_normalise(re.match(r"[A-Za-z0-9._-]+", r.strip()).group()) for r in requirements}


def _normalise(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def test_every_imported_package_is_declared() -> None:
    imported = _imported_packages()
    assert {"torch", "numpy", "safetensors"} <= set(imported)  # the scan sees the imports
    unknown = sorted(set(imported) - set(DISTRIBUTIONS))
    assert not unknown, f"map these import names to distributions in DISTRIBUTIONS: {unknown}"
    declared = _declared()
    missing = {
        f"{DISTRIBUTIONS[name]} (import {name}: {', '.join(sorted(files))})"
        for name, files in imported.items()
        if _normalise(DISTRIBUTIONS[name]) not in declared
    }
    assert not missing, "imported but not declared in pyproject.toml: " + "; ".join(sorted(missing))
