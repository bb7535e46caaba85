"""`rnnkit train / generate / eval` end to end, and every bad input: one line, status 2."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from rnnkit.cli import main

TINY = [
    "--hidden", "16", "--embed", "8", "--layers", "1", "--seq-len", "16",
    "--batch-size", "4", "--eval-every", "4", "--threads", "1",
]  # fmt: skip


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the command line in-process: (exit status, stdout, stderr)."""
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # --threads 1 sets it for the process


@pytest.fixture(scope="module")
def text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("text") / "textwrap.txt"
    path.write_text(Path(textwrap.__file__).read_text(encoding="utf-8"), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, text: Path) -> Path:
    out = tmp_path_factory.mktemp("runs") / "lstm"
    code = main(["train", "--text", str(text), *TINY, "--steps", "8", "--out", str(out)])
    assert code == 0
    return out


def test_train_reports_and_writes_the_run_folder(run: Path, capsys):
    names = {p.name for p in run.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "metrics.csv",
        "loss.png",
        "train_state.json",
    } <= names
    config = json.loads((run / "config.json").read_text())
    assert config["format"] == "rnnkit.charlm" and config["model"]["cell"] == "lstm"
    assert config["train"]["steps"] == 8 and config["train"]["minutes"] is None


def test_generate_streams_the_prompt_then_a_seeded_sample(run: Path, capsys):
    code, first, _ = cli(
        capsys, "generate", str(run), "--prompt", "def ", "--length", "30", "--seed", "5"
    )
    assert code == 0
    assert first.startswith("def ") and len(first) == len("def ") + 30 + 1
    _, again, _ = cli(
        capsys, "generate", str(run), "--prompt", "def ", "--length", "30", "--seed", "5"
    )
    _, other, _ = cli(
        capsys, "generate", str(run), "--prompt", "def ", "--length", "30", "--seed", "6"
    )
    assert first == again != other
    code, greedy, _ = cli(
        capsys, "generate", str(run), "--length", "5", "--temperature", "0", "--top-k", "3"
    )
    assert code == 0 and len(greedy) == 6


def test_eval_prints_bpc_last_and_takes_unseen_characters(run: Path, tmp_path: Path, capsys):
    odd = tmp_path / "odd.txt"
    odd.write_text("über naïve ∑ 文字 " * 20 + "def f(x):\n    return x\n", encoding="utf-8")
    code, out, _ = cli(capsys, "eval", str(run), "--text", str(odd))
    assert code == 0
    last = out.strip().splitlines()[-1]
    assert last.startswith("bpc: ") and float(last[5:]) > 0
    assert "unknown to the model" in out
    code, out, _ = cli(capsys, "eval", str(run), "--split", "validation")
    assert code == 0 and out.strip().splitlines()[-1].startswith("bpc: ")


@pytest.mark.parametrize("command", ["train", "generate", "eval"])
def test_help_explains_options_with_defaults_and_an_example(command: str, capsys):
    code, out, _ = cli(capsys, command, "--help")
    assert code == 0
    assert "example" in out and "default" in out
    if command == "train":
        for option in ("--cell", "--layers", "--hidden", "--embed", "--dropout", "--seq-len",
                       "--batch-size", "--lr", "--steps", "--minutes", "--seed", "--device",
                       "--out", "--resume", "--text"):  # fmt: skip
            assert option in out


def _bad_files(tmp: Path) -> dict[str, Path]:
    (tmp / "empty.txt").write_bytes(b"")
    (tmp / "binary.bin").write_bytes(b"\x7fELF\x00\x01\x02" * 50)
    (tmp / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1") * 50)
    (tmp / "short.txt").write_text("tiny text\n" * 5, encoding="utf-8")
    (tmp / "nothing").mkdir()
    (tmp / "nothing" / "blob.bin").write_bytes(b"\x00" * 10)
    return {p.stem: p for p in tmp.iterdir()}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--text", "{tmp}/missing.txt"], "not found"),
        (["--text", "{tmp}/empty.txt"], "is empty"),
        (["--text", "{tmp}/binary.bin"], "binary file"),
        (["--text", "{tmp}/latin1.txt"], "not UTF-8"),
        (["--text", "{tmp}/nothing"], "holds no UTF-8 text files"),
        (["--text", "{tmp}/short.txt"], "too short for one window"),
        (["--text", "{text}", "--cell", "transformer"], "invalid choice: 'transformer'"),
        (["--text", "{text}", "--hidden", "0"], "expected a positive integer; got 0"),
        (["--text", "{text}", "--dropout", "1.5"], "--dropout must lie in [0, 1)"),
        (["--text", "{text}", "--lr", "nan"], "expected a finite number"),
        (["--text", "{text}", "--steps", "ten"], "expected an integer; got 'ten'"),
        (["--text", "{text}", "--out", "{run}"], "already holds a run"),
        (["--resume", "{run}", "--hidden", "32"], "--hidden cannot be given"),
        (["--resume", "{run}"], "already reached its budget"),
    ],
)
def test_bad_train_input_is_one_line_status_2_and_touches_nothing(
    args: list[str], message: str, run: Path, text: Path, tmp_path: Path, capsys
):
    _bad_files(tmp_path)
    before = snapshot(run)
    argv = [a.format(tmp=tmp_path, text=text, run=run) for a in args]
    extra = [] if "--resume" in args else TINY
    code, _, err = cli(capsys, "train", *argv, *extra)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("rnnkit train: error: "), err
    assert message in err
    assert snapshot(run) == before


def _broken_copy(run: Path, dest: Path, how: str) -> Path:
    dest.mkdir()
    for p in run.iterdir():
        (dest / p.name).write_bytes(p.read_bytes())
    model = dest / "model.safetensors"
    if how == "no model":
        model.unlink()
    elif how == "no config":
        (dest / "config.json").unlink()
    elif how == "truncated":
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    elif how == "garbage":
        model.write_bytes(b"not a safetensors file at all" * 10)
    elif how == "version":
        config = json.loads((dest / "config.json").read_text())
        config["format_version"] = 99
        (dest / "config.json").write_text(json.dumps(config))
    elif how == "unknown key":
        config = json.loads((dest / "config.json").read_text())
        config["model"]["attention_heads"] = 4
        (dest / "config.json").write_text(json.dumps(config))
    elif how == "bad json":
        (dest / "config.json").write_text("{ not json")
    elif how == "truncated state":
        info = json.loads((dest / "train_state.json").read_text())
        state = dest / info["tensors"]
        state.write_bytes(state.read_bytes()[:100])
    return dest


BROKEN = [
    ("no model", "has no model.safetensors"),
    ("no config", "has no config.json"),
    ("truncated", "is truncated or corrupt"),
    ("garbage", "is truncated or corrupt"),
    ("version", "has format_version 99"),
    ("unknown key", "unknown key(s) attention_heads"),
    ("bad json", "is not valid JSON"),
]
# Resuming reads config.json and the training state, not model.safetensors (the best).


@pytest.mark.parametrize(
    ("command", "how", "message"),
    [(c, how, msg) for c in ("generate", "eval") for how, msg in BROKEN]
    + [
        ("resume", how, msg)
        for how, msg in BROKEN
        if how not in ("no model", "truncated", "garbage")
    ],
)
def test_broken_run_folders_are_one_line_errors(
    how: str, message: str, command: str, run: Path, tmp_path: Path, capsys
):
    broken = _broken_copy(run, tmp_path / "broken", how)
    before = snapshot(broken)
    if command == "resume":
        args = ["train", "--resume", str(broken), "--steps", "20"]
    else:
        args = [command, str(broken)]
    code, _, err = cli(capsys, *args)
    assert code == 2 and err.count("\n") == 1, err
    assert message in err
    assert snapshot(broken) == before


def test_resume_with_a_corrupt_training_state_is_refused(run: Path, tmp_path: Path, capsys):
    broken = _broken_copy(run, tmp_path / "broken", "truncated state")
    before = snapshot(broken)
    code, _, err = cli(capsys, "train", "--resume", str(broken), "--steps", "20")
    assert code == 2 and "is truncated or corrupt" in err
    assert snapshot(broken) == before


def test_missing_run_folder(capsys, tmp_path: Path):
    code, _, err = cli(capsys, "eval", str(tmp_path / "nope"))
    assert code == 2 and "run folder not found" in err


@pytest.mark.slow
def test_sigterm_stops_cleanly_after_saving_and_resume_continues(
    text: Path, tmp_path: Path, capsys
):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnkit", "train", "--text", str(text), *TINY,
         "--steps", "100000", "--eval-every", "100000", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:  # training starts after the "parameters" line
        if line.startswith("parameters:"):
            break
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-2000:]
    assert "stopped by SIGTERM" in stdout and "Traceback" not in stderr
    info = json.loads((out / "train_state.json").read_text())
    assert 0 < info["step"] < 100000
    assert (out / "model.safetensors").is_file()  # a run stopped early is still loadable
    code, _, _ = cli(capsys, "train", "--resume", str(out), "--steps", str(info["step"] + 2))
    assert code == 0
    assert json.loads((out / "train_state.json").read_text())["step"] == info["step"] + 2
