"""`rnnkit train / generate / eval` end to end, and every bad input: one line, status 2."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
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
    """Every file and folder under ``folder``, with the hash of each file's bytes."""

    def digest(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"

    return {str(p.relative_to(folder)): digest(p) for p in folder.rglob("*")}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # --threads 1 sets it for the process


@pytest.fixture(autouse=True)
def _in_a_scratch_folder(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """A run that starts by mistake lands in runs/ of a scratch folder, not the checkout."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="module")
def text(textwrap_text: Path) -> Path:
    return textwrap_text


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, text: Path) -> Path:
    out = tmp_path_factory.mktemp("runs") / "lstm"
    code = main(["train", "--text", str(text), *TINY, "--steps", "8", "--out", str(out)])
    assert code == 0
    return out


def test_train_reports_and_writes_the_run_folder(run: Path, capsys):
    names = {p.name for p in run.iterdir()}
    assert names == {
        ".lock",
        "README.md",
        "config.json",
        "model.safetensors",
        "metrics.csv",
        "loss.png",
        "train_state.json",
        "train_state-00000008.safetensors",
    }
    config = json.loads((run / "config.json").read_text())
    assert config["format"] == "rnnkit.run" and config["task"] == "lm"
    assert config["options"]["cell"] == "lstm" and config["options"]["hidden_size"] == 16
    assert config["options"]["seq_len"] == 16 and config["options"]["batch_size"] == 4
    assert config["train"]["steps"] == 8 and config["train"]["minutes"] is None
    assert config["train"]["eval_every"] == 4 and "seq_len" not in config["train"]
    assert config["derived"]["corpus"]["kind"] == "text"
    lines = (run / "metrics.csv").read_text().splitlines()
    assert lines[0] == "step,time,split,metric,value"
    rows = [line.split(",") for line in lines[1:]]
    assert {(int(r[0]), r[2], r[3]) for r in rows if r[2] == "validation"} == {
        (s, "validation", m) for s in (4, 8) for m in ("bpc", "loss")
    }
    info = json.loads((run / "train_state.json").read_text())
    assert info["step"] == 8 and info["data"] == {"position": 8} and info["world_size"] == 1


def test_metrics_csv_has_the_training_loss_of_the_last_steps(run: Path):
    """8 steps, logged every 10 and evaluated every 4: the loss of steps 1-8 is logged at the
    end (and drawn in loss.png); metrics.csv must hold it too."""
    rows = [line.split(",") for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    train_rows = {(int(r[0]), r[3]) for r in rows if r[2] == "train"}
    assert {(8, "loss"), (8, "lr")} <= train_rows  # also at step 4, an evaluation


def test_train_prints_the_summary_and_how_to_continue(text: Path, tmp_path: Path, capsys):
    code, out, err = cli(
        capsys, "train", "lm", "--text", str(text), *TINY, "--steps", "2", "--eval-every", "2",
        "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert code == 0, err
    assert "finished at step 2: validation bpc" in out and "best bpc" in out
    assert "training chars/s" in out and "sample from the best model:" in out
    assert f"rnnkit train --resume {tmp_path / 'run'} --steps N" in out
    assert "Traceback" not in err


def test_resume_continues_and_config_starts_a_new_run(run: Path, tmp_path: Path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    code, _, err = cli(capsys, "train", "--resume", str(copy), "--steps", "10")
    assert code == 0, err
    info = json.loads((copy / "train_state.json").read_text())
    assert info["step"] == 10 and info["data"] == {"position": 10}
    assert json.loads((copy / "config.json").read_text())["train"]["steps"] == 10
    assert (copy / "metrics.csv").read_text().splitlines()[-1].startswith("10,")
    # --config: a new run from a run's config.json; flags given with it win.
    new = tmp_path / "new"
    code, _, err = cli(
        capsys, "train", "--config", str(run / "config.json"), "--seed", "1", "--steps", "2",
        "--out", str(new),
    )  # fmt: skip
    assert code == 0, err
    old_config = json.loads((run / "config.json").read_text())
    new_config = json.loads((new / "config.json").read_text())
    assert new_config["options"] == old_config["options"]
    assert new_config["train"] == {**old_config["train"], "seed": 1, "steps": 2}


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


def test_a_config_file_may_leave_out_what_it_does_not_change(text: Path, tmp_path: Path, capsys):
    """`--config FILE` "allows omissions": what the file leaves out takes the task's
    defaults, the budget included, and flags given with it override it."""
    tiny = {"hidden_size": 16, "embed_size": 8, "num_layers": 1, "seq_len": 16, "batch_size": 4}
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"task": "lm", "options": {"text": str(text), **tiny}}))
    out = tmp_path / "run"
    code, _, err = cli(
        capsys, "train", "--config", str(partial), "--steps", "2", "--eval-every", "2",
        "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["options"]["hidden_size"] == 16 and config["train"]["steps"] == 2
    assert config["train"]["lr"] == 6e-3  # the lm task's default
    assert config["train"]["warmup_steps"] == 200


@pytest.mark.parametrize("command", ["train", "generate", "eval"])
def test_help_explains_options_with_defaults_and_an_example(command: str, capsys):
    code, out, _ = cli(capsys, command, "--help")
    assert code == 0
    assert "example" in out and "default" in out
    if command == "train":
        for option in ("--cell", "--layers", "--hidden", "--embed", "--dropout", "--seq-len",
                       "--batch-size", "--eval-chars", "--sample-chars", "--lr", "--steps",
                       "--minutes", "--seed", "--device", "--precision", "--out", "--resume",
                       "--config", "--text"):  # fmt: skip
            assert option in out
        assert main_help_of("train", "lm", capsys) == out  # `train` is `train lm`
    else:
        assert "--device" in out and "--precision" in out and "--threads" in out


def main_help_of(command: str, task: str, capsys: pytest.CaptureFixture[str]) -> str:
    code, out, _ = cli(capsys, command, task, "--help")
    assert code == 0
    return out


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
        (
            ["--text", "{text}", "--cell", "transformer"],
            "argument --cell: expected one of rnn, lstm, gru, mingru, minlstm; got 'transformer'",
        ),
        (["--text", "{text}", "--corpus", "docs"], "--text and --corpus name two corpora"),
        (["--corpus", "prose"], "argument --corpus: expected one of stdlib, docs; got 'prose'"),
        (["--text", "{text}", "--hidden", "0"], "expected an integer in [1, 65536]; got '0'"),
        (["--text", "{text}", "--dropout", "1.5"], "expected a finite number in [0, 1); got '1.5'"),
        (["--text", "{text}", "--lr", "nan"], "expected a finite number; got 'nan'"),
        (["--text", "{text}", "--steps", "ten"], "expected an integer; got 'ten'"),
        (["--text", "{text}", "--cell", "rnn", "--forget-bias", "1"], "needs a gated cell"),
        (["--text", "{text}", "--batch-size", "100000"], "too short for one window"),
        (["--text", "{text}", "--out", "{run}"], "already holds a run"),
        (["--text", "{text}", "--out", "{text}"], "is a file; expected a folder"),
        (["--resume", "{run}", "--hidden", "32"], "--hidden cannot be given"),
        (["--resume", "{run}", "--out", "{tmp}/x"], "--out cannot be given"),
        (["--resume", "{run}"], "already reached its budget"),
        (["--resume", "{tmp}/missing"], "run folder not found"),
        (["--config", "{tmp}/missing.json"], "no such file"),
    ],
)
def test_bad_train_input_is_one_line_status_2_and_touches_nothing(
    args: list[str], message: str, run: Path, text: Path, tmp_path: Path, capsys
):
    _bad_files(tmp_path)
    before = snapshot(run)
    argv = [a.format(tmp=tmp_path, text=text, run=run) for a in args]
    extra = [] if "--resume" in args else TINY
    files = snapshot(tmp_path)
    code, out, err = cli(capsys, "train", *extra, *argv)  # the case's own values win
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("rnnkit train"), err
    assert "error: " in err and "Traceback" not in out + err
    assert message in err
    assert snapshot(run) == before and snapshot(tmp_path) == files


def _broken_copy(run: Path, dest: Path, how: str) -> Path:
    dest.mkdir()
    for p in run.iterdir():
        (dest / p.name).write_bytes(p.read_bytes())
    model = dest / "model.safetensors"
    if how in ("no model", "truncated", "garbage"):
        # Without the training state: with it, the best weights of the last checkpoint
        # would be read from it (see test_a_lost_model_file_is_read_from_the_checkpoint).
        for p in dest.glob("train_state*"):
            p.unlink()
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
        config["options"]["attention_heads"] = 4
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
    ("no config", "is not a run folder: it has no config.json"),
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
    code, out, err = cli(capsys, *args)
    assert code == 2 and err.count("\n") == 1, err
    assert message in err and "Traceback" not in out + err
    assert snapshot(broken) == before


def test_resume_with_a_corrupt_training_state_is_refused(run: Path, tmp_path: Path, capsys):
    broken = _broken_copy(run, tmp_path / "broken", "truncated state")
    before = snapshot(broken)
    code, _, err = cli(capsys, "train", "--resume", str(broken), "--steps", "20")
    assert code == 2 and "is truncated or corrupt" in err
    assert snapshot(broken) == before


def test_a_lost_model_file_is_read_from_the_checkpoint(run: Path, tmp_path: Path, capsys):
    """A kill between the commit and the copy of the best weights loses nothing."""
    info = json.loads((run / "train_state.json").read_text())
    assert info["best"]["step"] == info["step"]  # the last checkpoint holds the best weights
    copy = _broken_copy(run, tmp_path / "copy", "truncated state")  # a full copy ...
    shutil.copy(run / info["tensors"], copy / info["tensors"])  # ... with its state intact
    (copy / "model.safetensors").unlink()
    before = snapshot(copy)
    args = ["--prompt", "def ", "--length", "10", "--seed", "1"]
    code, from_state, _ = cli(capsys, "generate", str(copy), *args)
    assert code == 0
    assert cli(capsys, "generate", str(run), *args)[1] == from_state
    assert snapshot(copy) == before  # reading never writes


def test_missing_run_folder(capsys, tmp_path: Path):
    for command in ("eval", "generate"):
        code, _, err = cli(capsys, command, str(tmp_path / "nope"))
        assert code == 2 and "run folder not found" in err
    assert list(tmp_path.iterdir()) == []


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
    for line in proc.stdout:  # training starts after the "model: ... parameters" line
        if line.startswith("model:") and "parameters" in line:
            break
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-2000:]
    assert "stopped by SIGTERM at step" in stdout and "Traceback" not in stderr
    info = json.loads((out / "train_state.json").read_text())
    assert 0 < info["step"] < 100000 and info["data"] == {"position": info["step"]}
    assert (out / "model.safetensors").is_file()  # a run stopped early is still loadable
    code, _, _ = cli(capsys, "train", "--resume", str(out), "--steps", str(info["step"] + 2))
    assert code == 0
    assert json.loads((out / "train_state.json").read_text())["step"] == info["step"] + 2


def test_a_reader_that_stops_early_ends_generate_quietly(run: Path) -> None:
    # `rnnkit generate RUN | head` is no mistake: it printed "error: [Errno 32] Broken
    # pipe" and exited 2, as for bad input.
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnnkit", "generate", str(run), "--length", "1000000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    assert len(proc.stdout.read(10)) == 10
    proc.stdout.close()  # as head does once it has its lines
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == ""


def test_resume_refuses_a_text_that_changed_or_is_gone(tmp_path: Path, capsys):
    # The run's windows and vocabulary come from its text: an edited file would train on
    # other data without a word, a deleted one was reported as a bare "not found".
    text = tmp_path / "t.txt"
    text.write_text(Path(textwrap.__file__).read_text(encoding="utf-8"), encoding="utf-8")
    out = tmp_path / "run"
    assert (
        cli(capsys, "train", "--text", str(text), *TINY, "--steps", "4", "--out", str(out))[0] == 0
    )
    recorded = json.loads((out / "config.json").read_text())["derived"]["corpus_sha256"]
    assert len(recorded) == 64
    before = snapshot(out)
    text.write_text(text.read_text(encoding="utf-8").replace("wrap", "WRAP"), encoding="utf-8")
    code, _, err = cli(capsys, "train", "--resume", str(out), "--steps", "8")
    assert code == 2 and err.count("\n") == 1
    assert f"the run's text {text} changed since the run started" in err
    assert f"the run recorded {recorded[:12]}...; resume with the data as it was" in err
    text.unlink()
    code, _, err = cli(capsys, "train", "--resume", str(out), "--steps", "8")
    assert code == 2 and "the run's text is gone (text file or folder not found:" in err
    assert snapshot(out) == before
