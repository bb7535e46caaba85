"""The numbers task on the command line: train, translate, eval, and one-line errors."""

from __future__ import annotations

import io
import json
import math
import re
import shutil
from pathlib import Path

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from _refusals import refused
from rnnkit.cli import main
from rnnkit.seq2seq import evaluate, load_run, translate
from rnnkit.seq2seq.data import EOS
from rnnkit.train import TrainConfig, train

TINY_OPTIONS = dict(
    max_number=999, embed_size=8, encoder_hidden=8, decoder_hidden=8, n_valid=10, n_test=12
)
TINY = [
    "numbers", "--max-number", "999", "--steps", "3", "--eval-every", "3", "--embed", "8",
    "--encoder-hidden", "8", "--decoder-hidden", "8", "--n-valid", "10", "--n-test", "12",
]  # fmt: skip


def status(argv: list[str]) -> int:
    """The exit status of ``rnnkit ARGV`` (argparse's own errors exit)."""
    try:
        return main(argv)
    except SystemExit as stop:
        return int(stop.code or 0)


def set_eos_bias(run: Path, bias: float) -> None:
    """Make the run's decoder end at once (bias > 0) or never (bias < 0): the few steps of
    training below leave its outputs to chance, and the tests need them known."""
    path = run / "model.safetensors"
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()  # the step the copy belongs to: kept, so it is read as current
    weights = load_file(str(path))
    weights["head.bias"][EOS] = bias
    save_file(weights, str(path), metadata=meta)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A numbers run trained through the Python API."""
    out = tmp_path_factory.mktemp("cli") / "en"
    train(
        "numbers",
        TINY_OPTIONS,
        TrainConfig(steps=3, eval_every=3),
        out=out,
        log=lambda _: None,
        progress=io.StringIO(),
    )
    return out


@pytest.fixture
def ending_run(run_dir, tmp_path) -> Path:
    out = tmp_path / "ending"
    shutil.copytree(run_dir, out)
    set_eos_bias(out, 50.0)
    return out


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
    assert "test split: 5 held-out numbers in 0..999, beam 2" in out
    assert main(["eval", str(run_dir), "--split", "validation", "--device", "cpu"]) == 0
    assert "words2digits, valid split:" in capsys.readouterr().out


def test_train_numbers_writes_a_run_that_resumes(tmp_path, capsys):
    # `rnnkit train numbers` is the generic CLI built from NumbersOptions' fields.
    out = tmp_path / "en"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    meta = json.loads((out / "config.json").read_text())
    assert meta["task"] == "numbers"
    assert meta["options"]["encoder_hidden"] == 8 and meta["train"]["steps"] == 3
    assert meta["train"]["weight_decay"] == 0.0 and meta["train"]["min_lr_ratio"] == 0.05
    printed = capsys.readouterr().out
    assert "valid exact match" in printed and f"rnnkit translate {out}" in printed
    assert main(["train", "--resume", str(out), "--steps", "4"]) == 0
    assert json.loads((out / "train_state.json").read_text())["step"] == 4
    assert "run saved to" in capsys.readouterr().out
    options = ["--no-bidirectional", "--no-input-feeding", "--attention", "none"]
    other = tmp_path / "uni"
    assert main(["train", *TINY, *options, "--out", str(other)]) == 0
    meta = json.loads((other / "config.json").read_text())["options"]
    assert (meta["bidirectional"], meta["input_feeding"], meta["attention"]) == (
        False,
        False,
        "none",
    )


def bad_calls(run_dir: Path, tmp_path: Path) -> dict[str, list[str]]:
    lm = tmp_path / "lm"
    lm.mkdir()
    config = json.loads((run_dir / "config.json").read_text())
    config.update(task="lm", options={}, derived={})
    (lm / "config.json").write_text(json.dumps(config))
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"format": "rnnkit.numbers", "task": "numbers"}))
    endless = tmp_path / "endless"
    shutil.copytree(run_dir, endless)
    set_eos_bias(endless, -50.0)
    return {
        "no end of output for 'seven' within": ["translate", str(endless), "seven"],
        "empty input": ["translate", str(run_dir), ""],
        "outside the vocabulary": ["translate", str(run_dir), "sept cent"],
        "longest input of the trained range": ["translate", str(run_dir), "seven " * 30],
        "not a numbers (seq2seq) run": ["translate", str(lm), "seven"],
        "runs of rnnkit 0.1 must be trained again": ["translate", str(old), "seven"],
        "is not a run folder": ["translate", str(tmp_path), "seven"],
        "--plot draws one input": ["translate", str(run_dir), "a", "b", "--plot", "p.png"],
        # the figure would make the run refuse --resume: refused before anything is read
        f"inside the run folder {run_dir}": [
            "translate", str(run_dir), "seven", "--plot", str(run_dir / "attention.png")
        ],
        # matplotlib cannot write .txt: refused before the translation is printed
        "--plot: expected a file name ending in a figure format": [
            "translate", str(run_dir), "seven", "--plot", str(tmp_path / "p.txt")
        ],
        "argument --beam: expected a positive integer; got 0": [
            "translate", str(run_dir), "seven", "--beam", "0"
        ],
        "--text: not used by a numbers run": ["eval", str(run_dir), "--text", "x.txt"],
        "--seq-len: not used by a numbers run": ["eval", str(run_dir), "--seq-len", "9"],
        "valid or test split": ["eval", str(run_dir), "--split", "train"],
        "argument --limit: expected a positive integer; got 0": [
            "eval", str(run_dir), "--limit", "0"
        ],
    }  # fmt: skip


def bad_train_calls(run_dir: Path, tmp_path: Path) -> dict[str, list[str]]:
    """Mistakes `rnnkit train numbers` (the generic CLI) must refuse in one line."""
    return {
        "unsupported language 'xx'": ["train", *TINY, "--lang", "xx", "--out", str(tmp_path / "x")],
        "unrecognized arguments: --text": ["train", *TINY, "--text", "notes.txt"],
        "cannot be given with it": ["train", "--resume", str(run_dir), "--lr", "1"],
        "already holds a run": ["train", *TINY, "--out", str(run_dir)],
        "--direction": ["train", *TINY, "--direction", "both"],
        "--min-number must be <= --max-number": [
            "train", *TINY, "--min-number", "2000", "--out", str(tmp_path / "y")
        ],
        "--scheduled-sampling rises over the step budget": [
            "train", "numbers", "--minutes", "1", "--scheduled-sampling", "0.2",
            "--out", str(tmp_path / "z"),
        ],
    }  # fmt: skip


def test_every_bad_input_is_one_line_with_status_2(run_dir, tmp_path, capsys):
    for message, argv in bad_calls(run_dir, tmp_path).items():
        assert status(argv) == 2, argv
        out, err = capsys.readouterr()
        assert out == "", (argv, out)  # refused before any output
        err = err.strip()
        assert len(err.splitlines()) == 1, err
        assert message in err and "Traceback" not in err, (message, err)


def test_every_bad_train_call_is_one_line_with_status_2(run_dir, tmp_path, capsys):
    for message, argv in bad_train_calls(run_dir, tmp_path).items():
        assert status(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert message in err and "Traceback" not in err, (message, err)
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert not (run_dir / "attention.png").exists() and not (tmp_path / "p.txt").exists()


def test_eval_and_translate_honour_precision_and_device(run_dir, ending_run, capsys):
    """bf16 autocast is accepted and used; fp16 on the CPU is refused in one line."""
    assert main(["eval", str(run_dir), "--precision", "bf16", "--limit", "5"]) == 0
    assert "exact match" in capsys.readouterr().out
    assert main(["translate", str(ending_run), "seven", "--precision", "bf16"]) == 0
    capsys.readouterr()
    assert main(["translate", str(ending_run), "seven", "--precision", "fp16"]) == 2
    assert "needs a CUDA device" in capsys.readouterr().err


# The beam length penalty exponent alpha must be >= 0: a negative one favoured the
# longest outputs. `translate --alpha`, `eval --alpha` and the Python API refuse it.


@pytest.mark.parametrize(
    "argv",
    [
        ["translate", "{run}", "seven", "--beam", "2", "--alpha", "-1"],
        ["translate", "{run}", "seven", "--alpha", "-0.5"],
        ["eval", "{run}", "--beam", "2", "--alpha", "-1", "--limit", "2"],
    ],
)
def test_the_cli_refuses_a_negative_alpha(
    run_dir: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [a.replace("{run}", str(run_dir)) for a in argv]
    given = argv[argv.index("--alpha") + 1]
    assert refused(capsys, argv, run_dir.parent) == (
        f"rnnkit {argv[0]}: error: argument --alpha: expected a number >= 0; got {given!r}"
    )


def test_the_cli_takes_alpha_zero_and_above(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rnnkit.cli import main

    assert main(["eval", str(run_dir), "--beam", "2", "--alpha", "0.6", "--limit", "2"]) == 0
    assert "beam 2, alpha 0.6" in capsys.readouterr().out
    assert main(["eval", str(run_dir), "--beam", "2", "--alpha", "0", "--limit", "2"]) == 0


@pytest.mark.parametrize("alpha", [-1.0, -1e-9, math.inf, math.nan, "0.6", True])
def test_the_api_refuses_an_alpha_below_zero_or_not_a_number(run_dir: Path, alpha: object) -> None:
    run = load_run(run_dir)
    message = f"alpha must be a finite number >= 0 (a length penalty); got {alpha!r}"
    for call in (
        lambda: evaluate(run, beam=2, alpha=alpha, limit=2),  # type: ignore[arg-type]
        lambda: translate(run, ["seven"], beam=2, alpha=alpha),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
            call()
    assert len(evaluate(run, beam=2, alpha=0.6, limit=2).examples) == 2
    assert len(evaluate(run, beam=2, alpha=0, limit=2).examples) == 2
