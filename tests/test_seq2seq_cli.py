"""The numbers task on the command line: train, translate, eval, and one-line errors."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from rnnkit.cli import main
from rnnkit.seq2seq.data import EOS

TINY = [
    "--task", "numbers", "--max-number", "999", "--steps", "3", "--eval-every", "3",
    "--embed", "8", "--hidden", "8", "--n-valid", "10", "--n-test", "12",
]  # fmt: skip


def set_eos_bias(run: Path, bias: float) -> None:
    """Make the run's decoder end at once (bias > 0) or never (bias < 0): the few steps of
    training below leave its outputs to chance, and the tests need them known."""
    path = run / "model.safetensors"
    weights = load_file(str(path))
    weights["head.bias"][EOS] = bias
    save_file(weights, str(path))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "en"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture
def ending_run(run_dir, tmp_path) -> Path:
    out = tmp_path / "ending"
    shutil.copytree(run_dir, out)
    set_eos_bias(out, 50.0)
    return out


def test_train_writes_a_numbers_run(run_dir, capsys):
    meta = json.loads((run_dir / "config.json").read_text())
    assert meta["task"] == "numbers"
    assert meta["config"]["encoder_hidden"] == 8 and meta["config"]["steps"] == 3
    assert main(["train", "--resume", str(run_dir), "--steps", "4"]) == 0
    assert json.loads((run_dir / "optimizer.json").read_text())["step"] == 4
    assert "run saved to" in capsys.readouterr().out


def test_translate_arguments_stdin_and_plot(ending_run, capsys, monkeypatch, tmp_path):
    assert main(["translate", str(ending_run), "seven", "Three hundred, and twelve"]) == 0
    assert capsys.readouterr().out == "\n\n"  # two inputs, two (empty) outputs
    monkeypatch.setattr("sys.stdin", io.StringIO("seven\nnine\nten\n"))
    assert main(["translate", str(ending_run), "--beam", "3", "--scores"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    png = tmp_path / "att.png"
    assert main(["translate", str(ending_run), "forty-two", "--plot", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_eval_prints_exact_match_and_cer(run_dir, capsys):
    assert main(["eval", str(run_dir), "--beam", "2", "--limit", "5"]) == 0
    out = capsys.readouterr().out
    assert "character error rate:" in out and out.strip().splitlines()[-1].startswith(
        "exact match:"
    )


def bad_calls(run_dir: Path, tmp_path: Path) -> dict[str, list[str]]:
    lm = tmp_path / "lm"
    lm.mkdir()
    (lm / "config.json").write_text(json.dumps({"format": "rnnkit.charlm"}))
    endless = tmp_path / "endless"
    shutil.copytree(run_dir, endless)
    set_eos_bias(endless, -50.0)
    return {
        "no end of output for 'seven' within": ["translate", str(endless), "seven"],
        "empty input": ["translate", str(run_dir), ""],
        "outside the vocabulary": ["translate", str(run_dir), "sept cent"],
        "longest input seen in training": ["translate", str(run_dir), "seven " * 30],
        "unsupported language 'xx'": ["train", *TINY, "--lang", "xx", "--out", str(tmp_path / "x")],
        "not a numbers (seq2seq) run": ["translate", str(lm), "seven"],
        "is not a run folder": ["translate", str(tmp_path), "seven"],
        "--plot draws one input": ["translate", str(run_dir), "a", "b", "--plot", "p.png"],
        "--beam must be >= 1": ["translate", str(run_dir), "seven", "--beam", "0"],
        "--lang: only for --task numbers": ["train", "--lang", "fr"],
        "--text, --seq-len: not used by --task numbers": [
            "train", *TINY, "--text", "notes.txt", "--seq-len", "9"
        ],
        "--text: not used by a numbers run": ["eval", str(run_dir), "--text", "x.txt"],
        "--seq-len: not used by a numbers run": ["eval", str(run_dir), "--seq-len", "9"],
        "cannot be given with it": ["train", "--resume", str(run_dir), "--lr", "1"],
        "already holds a run": ["train", *TINY, "--out", str(run_dir)],
        "valid or test split": ["eval", str(run_dir), "--split", "train"],
    }  # fmt: skip


def test_every_bad_input_is_one_line_with_status_2(run_dir, tmp_path, capsys):
    for message, argv in bad_calls(run_dir, tmp_path).items():
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert message in err and "Traceback" not in err, (message, err)
