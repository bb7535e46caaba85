"""The command line's shell: version, help, the demo, and one-line errors with status 2."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

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


def test_a_path_option_shows_what_it_takes_in_help():
    """The placeholder of a file option says FILE, not the TEXT of any string option."""
    parsers = [train.build_parser(get_task(name))[0] for name in NAMES]
    shown = {}
    for p in parsers:
        for action in p._actions:
            if action.dest in ("data", "test_data", "text", "time_column"):
                shown[(p.prog, action.dest)] = action.metavar
    assert shown == {
        ("rnnkit train lm", "text"): "PATH",
        **{(f"rnnkit train {t}", d): "FILE" for t in ("classify", "tag", "forecast")
           for d in ("data", "test_data")},
        ("rnnkit train forecast", "time_column"): "NAME",
    }  # fmt: skip


def test_bad_option_value_is_one_line_and_status_2():
    done = _run("demo", "--steps", "-3")
    assert done.returncode == 2
    assert "expected a positive integer; got -3" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("rnnkit demo: error: ")


def test_a_seed_torch_cannot_take_is_refused_naming_the_flag(tmp_path, capsys):
    # torch.manual_seed takes a signed 64-bit integer; a larger seed ended in torch's
    # "Overflow when unpacking long long", naming no flag.
    big = str(2**63)
    for argv in (
        ["generate", str(tmp_path), "--seed", big],
        ["translate", str(tmp_path), "seven", "--seed", big],
        ["explain", "bptt", "--seed", big, "--out", str(tmp_path)],
        ["demo", "--seed", big, "--steps", "1"],
    ):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.endswith(
            f"error: argument --seed: expected an integer in [0, {2**63 - 1}]; got {big}"
        ), err
    assert list(tmp_path.iterdir()) == []


def test_threads_beyond_trains_bound_are_refused_naming_the_flag(tmp_path, capsys):
    # --threads 100000 ended in a segmentation fault inside torch, and a number beyond a C
    # long in "Overflow when unpacking long"; train's --threads stops at 4096.
    from rnnkit.cli._lm_args import THREADS_MAX
    from rnnkit.train.config import TrainConfig

    with pytest.raises(ValueError, match=f"in \\[1, {THREADS_MAX}\\]"):
        TrainConfig(steps=1, threads=THREADS_MAX + 1)
    for value in ("100000", str(2**64)):
        for argv in (
            ["generate", str(tmp_path), "--threads", value],
            ["eval", str(tmp_path), "--threads", value],
            ["translate", str(tmp_path), "seven", "--threads", value],
            ["explain", "bptt", "--threads", value, "--out", str(tmp_path)],
            ["demo", "--threads", value, "--steps", "1"],
        ):
            with pytest.raises(SystemExit) as stop:
                main(argv)
            assert stop.value.code == 2
            err = capsys.readouterr().err.strip()
            assert err.endswith(
                f"error: argument --threads: expected an integer in [1, {THREADS_MAX}]; got {value}"
            ), err
    assert list(tmp_path.iterdir()) == []


def test_a_model_too_large_for_memory_is_one_line(monkeypatch, capsys):
    # `rnnkit train lm --hidden 65536` asks for 68 GB at once: torch's allocator raised a
    # RuntimeError that ended in a traceback and exit status 1.
    import rnnkit.cli.demo as demo_command

    def allocate(**_kwargs: object) -> None:
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't "
            "allocate memory: you tried to allocate 68719476736 bytes. Error code 12 "
            "(Cannot allocate memory)"
        )

    monkeypatch.setattr(demo_command, "run_demo", allocate)
    assert main(["demo", "--steps", "1"]) == 2
    assert capsys.readouterr().err == (
        "rnnkit demo: error: out of memory: an allocation of 68719476736 bytes failed; "
        "expected sizes that fit this machine (a smaller model, batch or sequence length)\n"
    )

    def bug(**_kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(demo_command, "run_demo", bug)
    with pytest.raises(RuntimeError, match="a bug"):  # a bug keeps its traceback
        main(["demo", "--steps", "1"])


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


def test_an_empty_folder_name_is_refused_not_read_as_the_working_folder(
    tmp_path, capsys, monkeypatch
):
    # Path("") is ".": --out '' wrote into the working folder, --resume '' said ". is not a
    # run folder".
    monkeypatch.chdir(tmp_path)
    for argv in (
        ["train", "--resume", ""],
        ["train", "--config="],
        ["train", "--out", "", "--steps", "1"],
        ["explain", "bptt", "--out", ""],
        ["demo", "--out", "", "--steps", "1"],
        ["eval", str(tmp_path), "--out", ""],
    ):
        try:
            code = main(argv)
        except SystemExit as stop:
            code = stop.code
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1, (argv, err)
        assert ": expected a name; got an empty string" in err, (argv, err)
    assert list(tmp_path.iterdir()) == []
