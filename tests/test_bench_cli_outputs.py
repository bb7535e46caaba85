"""What the benchmark scripts write, and what they refuse before the work: every output
file whole or not at all, none written over unasked (not even one made while the script
ran), a folder that cannot be written refused before the work in one line, and a device
the machine does not have refused before the first tensor."""

from __future__ import annotations

import ast
import contextlib
import errno
import io
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from _refusals import tree

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import _args  # noqa: E402

# The writes of the scripts that are no output of theirs, each with the reason.
NOT_OUTPUTS = {
    ("lm_vs_transformer.py", 'Path("/proc/self/clear_refs").write_text("5")'): (
        "resets the kernel's peak-memory mark"
    ),
    ("long_memory.py", 'open(results / f"{name}.log", "w", encoding="utf-8")'): (
        "a row's progress log, written line by line as it trains"
    ),
}


def _refused(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, str]:
    """The exit code and stderr of ``fn(*args, **kwargs)``, which must exit."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as stop:
        fn(*args, **kwargs)
    return stop.value.code, err.getvalue()


def _parser() -> Any:
    p = _args.parser("a benchmark")
    p.prog = "bench.py"
    return p


def test_write_file_writes_whole_and_replaces_nothing_unasked(tmp_path: Path) -> None:
    p = _parser()
    out = tmp_path / "table.md"
    _args.write_file(p, "--out", out, "| a |\n", overwrite=False)
    assert out.read_text() == "| a |\n"
    # A file of that name made while the script ran (after its arguments were checked).
    assert _refused(_args.write_file, p, "--out", out, "| b |\n", overwrite=False) == (
        2,
        f"bench.py: error: argument --out: expected a file name that does not exist; got "
        f"{out}, a file made while the script ran (--overwrite replaces it)\n",
    )
    assert out.read_text() == "| a |\n"
    _args.write_file(p, "--out", out, b"| b |\n", overwrite=True)
    assert out.read_text() == "| b |\n"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["table.md"]  # no temporary left


def test_a_write_that_fails_leaves_the_old_file_and_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "table.md"
    out.write_text("the user's table\n")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_args.os, "fsync", full)
    assert _refused(_args.write_file, _parser(), "--out", out, "x" * 10_000, overwrite=True) == (
        2,
        f"bench.py: error: argument --out: expected a file in a folder you may write to; got "
        f"{out}, which cannot be written (No space left on device)\n",
    )
    assert out.read_text() == "the user's table\n"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["table.md"]


def _writes(tree: ast.AST) -> list[ast.Call]:
    """The calls that write a file: write_text, write_bytes, savefig, json.dump, and open()
    with a mode that writes."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "attr", getattr(node.func, "id", ""))
        if name in ("write_text", "write_bytes", "savefig", "dump"):
            found.append(node)
        elif name == "open":
            modes = [a for a in node.args[1:2] if isinstance(a, ast.Constant)]
            modes += [k.value for k in node.keywords if k.arg == "mode"]
            if any(isinstance(m, ast.Constant) and set(str(m.value)) & set("wax+") for m in modes):
                found.append(node)
    return found


def test_no_script_writes_an_output_in_place() -> None:
    # forecast.py's --markdown, classify.py's --out and rows, long_memory.py's --out,
    # bench_mingru.py's --json, seq2seq_bottleneck.py's --png and lm_vs_transformer.py's
    # three files were opened and written in place: a kill or a full disk left half a file,
    # a table the user had kept was lost (--overwrite), and a link was followed.
    found = []
    for script in sorted(BENCHMARKS.glob("*.py")):
        if script.name == "_args.py":  # write_file and figure_bytes themselves
            continue
        source = script.read_text(encoding="utf-8")
        for call in _writes(ast.parse(source)):
            text = ast.get_source_segment(source, call) or ""
            key = (script.name, text)
            if not any(key[0] == s and key[1].startswith(t) for s, t in NOT_OUTPUTS):
                found.append(f"{script.name}:{call.lineno}: {text}")
    assert found == []


def test_an_output_file_in_a_folder_that_cannot_be_written_is_refused_before_the_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (A root process passes every permission, so the denial is the test's.)
    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(
        _args.os, "access", lambda path, mode: Path(path) != locked and real(path, mode)
    )
    p = _parser()
    p.add_argument("--out", type=_args.new_file)
    code, err = _refused(p.parse_args, ["--out", str(locked / "table.md")])
    assert (code, err) == (
        2,
        f"bench.py: error: argument --out: expected a file name in a folder you may write to; "
        f"got {locked / 'table.md'}, whose folder is not writable\n",
    )
    assert p.parse_args(["--out", str(tmp_path / "table.md")]).out == str(tmp_path / "table.md")
    # A folder the script makes and writes into: its nearest existing folder is judged.
    assert _refused(_args.writable, p, "--runs", str(locked / "runs" / "a")) == (
        2,
        f"bench.py: error: argument --runs: expected a folder you may write to; got "
        f"{locked / 'runs' / 'a'}, whose folder {locked} is not writable\n",
    )
    assert _refused(_args.writable, p, "--runs", str(locked)) == (
        2,
        f"bench.py: error: argument --runs: expected a folder you may write to; got {locked}, "
        "which is not writable\n",
    )
    (tmp_path / "file").write_text("the user's\n")
    assert _refused(_args.writable, p, "--runs", str(tmp_path / "file" / "runs")) == (
        2,
        f"bench.py: error: argument --runs: expected a folder; got {tmp_path / 'file' / 'runs'},"
        f" under the file {tmp_path / 'file'}\n",
    )
    _args.writable(p, "--runs", str(tmp_path / "new" / "runs"))  # makeable: passes
    assert sorted(f.name for f in tmp_path.iterdir()) == ["file", "locked"]


def test_a_cuda_device_the_machine_lacks_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    # It failed at the first tensor, in torch's traceback ("Torch not compiled with CUDA
    # enabled"), or at the first kernel on a machine with fewer GPUs.
    p = _parser()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _refused(_args.cuda_device, p, "--device", "cuda") == (
        2,
        "bench.py: error: argument --device: expected cpu (torch sees no CUDA device on this "
        "machine); got cuda\n",
    )
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert _refused(_args.cuda_device, p, "--device", "cuda:2") == (
        2,
        "bench.py: error: argument --device: expected cpu, cuda or cuda:N with N < 2; got cuda:2\n",
    )
    _args.cuda_device(p, "--device", "cuda:1")
    _args.cuda_device(p, "--device", "cpu")


def _run(script: str, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks a machine without CUDA")
@pytest.mark.parametrize(
    "argv",
    [
        ["bench_layers.py", "--gru", "--device", "cuda"],
        ["bench_mingru.py", "--device", "cuda"],
        ["bench_scan_reset.py", "--device", "cuda:0"],
    ],
)
def test_the_timing_scripts_refuse_cuda_without_a_gpu(tmp_path: Path, argv: list[str]) -> None:
    done = _run(*argv, cwd=tmp_path)
    assert (done.returncode, done.stderr) == (
        2,
        f"{argv[0]}: error: argument --device: expected cpu (torch sees no CUDA device on "
        f"this machine); got {argv[-1]}\n",
    )


def test_bench_export_refuses_chars_that_score_nothing(tmp_path: Path) -> None:
    # --chars 1 exported and quantized the model, then failed in bits_per_char's traceback.
    done = _run("bench_export.py", "--chars", "1", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (
        2,
        "bench_export.py: error: argument --chars: expected an integer >= 2; got 1\n",
    )


def _row(accuracy: float) -> dict[str, Any]:
    method = {"accuracy": accuracy, "seconds": 1.0}
    return {
        "rnnkit": {**method, "cell": "gru:1.5"},
        "MiniRocket": dict(method),
        "1-NN DTW": dict(method),
        "machine": "x86_64",
    }


@pytest.mark.parametrize(
    ("other", "text"),
    [("notes.json", '{"a": 1}\n'), ("broken.json", "{broken\n"), ("list.json", "[1, 2]\n")],
)
def test_classify_table_only_refuses_a_file_that_is_no_saved_row(
    tmp_path: Path, other: str, text: str
) -> None:
    # It ended in a KeyError or a JSONDecodeError traceback.
    import json

    results = tmp_path / "results"
    results.mkdir()
    (results / "GunPoint.json").write_text(json.dumps(_row(0.9)))
    (results / other).write_text(text)
    before = tree(tmp_path)
    out = tmp_path / "table.md"
    done = _run("classify.py", "--table-only", "--results", str(results), "--out", str(out),
                cwd=tmp_path)  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        f"classify.py: error: argument --results: expected a folder of this script's rows "
        f"(NAME.json); got {results}, whose {other} is not one\n",
    )
    assert tree(tmp_path) == before


def test_classify_table_only_refuses_a_folder_without_rows(tmp_path: Path) -> None:
    # It said "no saved rows", naming neither the argument nor the folder (exit 1), and
    # with the default folder missing it said the same.
    (tmp_path / "empty").mkdir()
    done = _run("classify.py", "--table-only", "--results", "empty", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (
        2,
        "classify.py: error: argument --results: expected a folder of this script's rows "
        "(NAME.json); got empty, which holds none\n",
    )
    done = _run("classify.py", "--table-only", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (
        2,
        "classify.py: error: argument --results: expected an existing folder; got "
        "runs/classify-bench, which does not exist\n",
    )


def test_classify_table_only_writes_the_table_whole(tmp_path: Path) -> None:
    import json

    results = tmp_path / "results"
    results.mkdir()
    (results / "GunPoint.json").write_text(json.dumps(_row(0.9)))
    done = _run("classify.py", "--table-only", "--results", "results", "--out", "t.md",
                cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    table = (tmp_path / "t.md").read_text()
    assert table.startswith("| dataset | rnnkit | rnnkit's pick | MiniRocket |")
    assert table == done.stdout.removesuffix("\n")  # printed with print(): one more newline
    assert sorted(f.name for f in tmp_path.iterdir()) == ["results", "t.md"]


@pytest.fixture(scope="module")
def numbers_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder holding a finished 4-step run of the numbers task without attention,
    as seq2seq_bottleneck.py names it, with --max-number 99."""
    import io as _io

    from rnnkit.tasks.numbers import NumbersOptions, NumbersTask
    from rnnkit.train import train

    runs = tmp_path_factory.mktemp("seq2seq") / "runs"
    options = NumbersOptions(max_number=99, attention="none")
    config = NumbersTask.default_train(steps=4, eval_every=2)
    train("numbers", options, config, out=runs / "en-words2digits-none",
          log=lambda _: None, progress=_io.StringIO())  # fmt: skip
    return runs


@pytest.mark.parametrize(
    ("argv", "got"),
    [
        (["--steps", "4", "--max-number", "999"], "max_number 99"),
        (["--steps", "8", "--max-number", "99"], "steps 4"),
    ],
)
def test_seq2seq_bottleneck_refuses_a_run_of_other_settings_it_would_score(
    numbers_runs: Path, tmp_path: Path, argv: list[str], got: str
) -> None:
    # A run folder that exists is scored, not retrained: one of other settings was scored
    # silently and printed and plotted as the settings asked for ("8 steps each").
    before = tree(numbers_runs)
    done = _run("seq2seq_bottleneck.py", "--runs", str(numbers_runs), "--attention", "none",
                "--eval-every", "2", *argv, cwd=tmp_path)  # fmt: skip
    run = numbers_runs / "en-words2digits-none"
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        f"seq2seq_bottleneck.py: error: argument --runs: expected {run} (scored, not trained "
        f"again) to be a finished run of these settings; got one with {got}\n",
    )
    assert tree(numbers_runs) == before


def test_seq2seq_bottleneck_refuses_a_users_folder_before_training_the_others(
    tmp_path: Path,
) -> None:
    # It trained the runs before it, then failed in the run folder's traceback.
    runs = tmp_path / "runs"
    (runs / "en-words2digits-general").mkdir(parents=True)
    (runs / "en-words2digits-general" / "notes.txt").write_text("the user's\n")
    before = tree(tmp_path)
    done = _run("seq2seq_bottleneck.py", "--runs", "runs", "--steps", "4", "--eval-every", "2",
                "--max-number", "99", cwd=tmp_path)  # fmt: skip
    assert (done.returncode, done.stderr) == (
        2,
        "seq2seq_bottleneck.py: error: argument --runs: expected a folder whose "
        "en-words2digits-general is absent or an rnnkit run folder (a run is trained there); "
        "got runs/en-words2digits-general, which is not a run folder\n",
    )
    assert tree(tmp_path) == before


def test_seq2seq_bottleneck_scores_a_run_of_its_settings_and_writes_the_plot_whole(
    numbers_runs: Path, tmp_path: Path
) -> None:
    png = tmp_path / "plot.png"
    done = _run("seq2seq_bottleneck.py", "--runs", str(numbers_runs), "--attention", "none",
                "--steps", "4", "--eval-every", "2", "--max-number", "99", "--png", str(png),
                cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "trained" not in done.stdout  # scored as it was
    assert png.read_bytes().startswith(b"\x89PNG")
    assert sorted(f.name for f in tmp_path.iterdir()) == ["plot.png"]
    assert re.search(r"^\| all \| \d+ \| \*\*", done.stdout, re.M)
