"""The command line's shell: version, help, the demo, and one-line errors with status 2."""

from __future__ import annotations

import argparse
import subprocess
import sys

import rnnkit
from rnnkit.cli import build_parser, main, train
from rnnkit.demo import BASELINE_MSE, run_demo
from rnnkit.tasks import NAMES, get_task


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rnnkit", *args], capture_output=True, text=True, timeout=120
    )


def test_version_and_help():
    done = _run("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"rnnkit {rnnkit.__version__}"
    done = _run("--help")
    assert done.returncode == 0
    assert "demo" in done.stdout


def _parsers(p: argparse.ArgumentParser):
    yield p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)


def test_every_help_text_renders_its_percent_signs_once():
    # A description is printed as written (only help strings are %-formatted): an
    # escaped "80%%" there would reach the user doubled.
    parsers = list(_parsers(build_parser()))
    parsers += [train.build_parser(get_task(name))[0] for name in NAMES]  # rnnkit train TASK
    progs = {p.prog for p in parsers}
    assert {"rnnkit forecast", "rnnkit explain gates", "rnnkit train forecast"} <= progs
    for p in parsers:
        text = p.format_help()
        assert "%%" not in text, (p.prog, text[text.index("%%") - 40 :][:80])


def test_bad_option_value_is_one_line_and_status_2():
    done = _run("demo", "--steps", "-3")
    assert done.returncode == 2
    assert "expected a positive integer; got -3" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("rnnkit demo: error: ")


def test_library_value_error_becomes_one_line(capsys):
    assert main(["demo", "--length", "1", "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "rnnkit demo: error: --length must be at least 10 for the adding task (shorter needs "
        "no long memory); got 1"
    )


def test_demo_loss_falls_below_the_baseline(tmp_path):
    lines: list[str] = []
    history = run_demo(steps=300, length=20, log=lines.append, out=tmp_path / "demo")
    assert len(history) == 6  # an evaluation every 50 steps
    assert history[-1] < 0.25 * BASELINE_MSE
    assert lines[0].startswith("adding problem, T = 20")
    assert lines[-1].startswith(f"run saved to {tmp_path / 'demo'}")
    model = rnnkit.load(tmp_path / "demo")  # the demo is a run like any other
    assert not model.training


def test_demo_without_out_leaves_nothing_behind(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--steps", "2", "--length", "10"]) == 0
    assert "adding problem, T = 10" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
