"""The ``>>>`` examples of rnnkit's docstrings run, and show what they say.

Each module of the package that holds examples is one test, failing with doctest's report.
The examples run in an empty temporary working folder, which must stay empty: an example
that writes a file writes it into a temporary folder of its own, never where it is run.
Every class and function ``rnnkit`` exports shows a runnable example in its own docstring.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import io
import pkgutil
from pathlib import Path

import pytest

import rnnkit

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# Exports that are neither a class nor a function: there is no docstring of their own to
# hold an example (a str's docstring is str's).
NO_EXAMPLE = {"__version__": "a version string"}

# Modules whose every example is marked +SKIP: they read a trained run folder, which takes
# a run of the command line to make (their functions are tested on such runs elsewhere).
ONLY_SKIPPED = {
    "rnnkit.tasks.forecast.online": "OnlineForecaster reads a forecast run",
    "rnnkit.tasks.predict": "predict_classes and predict_tags read a classify and a tag run",
}


def _examples(name: str) -> list[doctest.DocTest]:
    """The docstrings of module ``name`` (and of what it defines) that hold examples."""
    module = importlib.import_module(name)
    return [test for test in doctest.DocTestFinder().find(module) if test.examples]


def _modules_with_examples() -> list[str]:
    names = sorted(info.name for info in pkgutil.walk_packages(rnnkit.__path__, "rnnkit."))
    return [name for name in ["rnnkit", *names] if _examples(name)]


MODULES = _modules_with_examples()


def test_the_modules_are_found() -> None:
    """The walk reaches the subpackages: a broken walk would pass every test by finding none."""
    for expected in ("rnnkit.layers.classic", "rnnkit.cells.lstm", "rnnkit.train.fit"):
        assert expected in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a relative path an example writes to lands here
    report = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in _examples(name):
        try:
            runner.run(test, out=report.write)
        finally:
            test.globs.clear()  # the examples' tensors and modules, freed
    result = runner.summarize(verbose=False)
    if result.failed:
        pytest.fail(f"{result.failed} of {result.attempted} examples failed:\n{report.getvalue()}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "an example wrote into its cwd"
    # A module listed in ONLY_SKIPPED leaves the list once one of its examples runs.
    assert (result.attempted == 0) == (name in ONLY_SKIPPED), f"{name}: {result}"


def _runnable_examples(doc: str) -> list[doctest.Example]:
    examples = doctest.DocTestParser().get_examples(doc)
    return [example for example in examples if not example.options.get(doctest.SKIP)]


@pytest.mark.parametrize("name", sorted(set(rnnkit.__all__) - set(NO_EXAMPLE)))
def test_every_export_shows_a_runnable_example(name: str) -> None:
    obj = getattr(rnnkit, name)
    assert inspect.isclass(obj) or inspect.isfunction(obj), (
        f"rnnkit.{name} is a {type(obj).__name__}: give it an example or list it in NO_EXAMPLE"
    )
    # __doc__ is the object's own; inspect.getdoc would fall back to a base class's.
    doc = inspect.getdoc(obj) if obj.__doc__ else ""
    assert _runnable_examples(doc or ""), f"rnnkit.{name} has no runnable >>> example"


def test_the_exemptions_are_exports_without_a_docstring_of_their_own() -> None:
    for name in NO_EXAMPLE:
        obj = getattr(rnnkit, name)
        assert not (inspect.isclass(obj) or inspect.isfunction(obj))


def test_a_failing_example_fails_with_its_report() -> None:
    """The check can fail: a wrong expected output is reported, naming the example."""
    doc = '"""\n>>> 1 + 1\n3\n"""'
    test = doctest.DocTestParser().get_doctest(doc, {}, "broken", "broken.py", 0)
    report = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    runner.run(test, out=report.write)
    assert runner.summarize(verbose=False).failed == 1
    assert "1 + 1" in report.getvalue() and "Got:\n    2" in report.getvalue()
