"""Each command-line mistake below ends in one line on stderr naming the flag, what was
expected and what was given, exit status 2, no traceback and nothing written."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest

import rnnkit
from rnnkit.cli import main
from rnnkit.tasks import NAMES
from rnnkit.train import RunFolderError, TrainConfig, train


def _refused(capsys, argv: list[str], tmp_path: Path | None = None) -> str:
    """The one line rnnkit prints for ``argv``, after checking status 2 and no traceback."""
    before = sorted(tmp_path.rglob("*")) if tmp_path is not None else None
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2, (code, err)
    assert err.count("\n") == 1 and "Traceback" not in err, err
    if tmp_path is not None:
        assert sorted(tmp_path.rglob("*")) == before
    return err.strip()


@pytest.fixture(scope="module")
def numbers_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "numbers"
    options = dict(max_number=99, embed_size=4, encoder_hidden=4, decoder_hidden=4, n_valid=4,
                   n_test=4)  # fmt: skip
    train("numbers", options, TrainConfig(steps=1, eval_every=1), out=out,
          log=lambda _: None, progress=io.StringIO())  # fmt: skip
    return out


# ---- rnnkit train: which task --------------------------------------------------------


def test_train_task_messages(capsys, tmp_path):
    names = ", ".join(NAMES)
    assert _refused(capsys, ["train", "--task"], tmp_path) == (
        f"rnnkit train: error: --task needs a task name, one of {names}; got none"
    )
    assert _refused(capsys, ["train", "poetry"], tmp_path) == (
        f"rnnkit train: error: TASK must be one of {names}; got 'poetry'"
    )
    assert _refused(capsys, ["train", "lm", "--task", "forecast"], tmp_path) == (
        "rnnkit train: error: expected one task (TASK or --task); got lm and forecast"
    )


def test_train_config_file_messages(capsys, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _refused(capsys, ["train", "--config", str(empty)], tmp_path) == (
        f"rnnkit train: error: --config: {empty} is a folder with no config.json"
    )
    missing = tmp_path / "no.json"
    assert _refused(capsys, ["train", "--config", str(missing)], tmp_path) == (
        f"rnnkit train: error: --config: no such file: {missing}"
    )
    config = tmp_path / "poetry.json"
    config.write_text(json.dumps({"task": "poetry"}))
    assert _refused(capsys, ["train", "--config", str(config)], tmp_path) == (
        f"rnnkit train: error: {config} names task 'poetry'; known: {', '.join(NAMES)}"
    )


def test_train_resume_with_flags_of_a_new_run(capsys, numbers_run, tmp_path):
    argv = ["train", "--resume", str(numbers_run), "--lr", "1", "--steps", "3", "--out",
            str(tmp_path / "new"), "--config", str(tmp_path / "c.json")]  # fmt: skip
    assert _refused(capsys, argv, tmp_path) == (
        f"rnnkit train: error: --resume continues {numbers_run} with its own config.json; "
        "--lr, --out, --config cannot be given with it (only --steps and --minutes)"
    )


def test_train_resume_of_an_unknown_task(capsys, numbers_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(numbers_run, run)
    data = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**data, "task": "poetry"}))
    config = run / "config.json"
    message = f"{config}: task must be one of {', '.join(NAMES)} or fit; got 'poetry'"
    assert _refused(capsys, ["train", "--resume", str(run)], tmp_path) == (
        f"rnnkit train: error: {message}"
    )
    # Every reader of a run folder names the file (the task registry's message named none).
    for argv in (["eval", str(run)], ["export", str(run)], ["generate", str(run)]):
        assert _refused(capsys, argv, tmp_path) == f"rnnkit {argv[0]}: error: {message}"
    with pytest.raises(RunFolderError, match="^" + re.escape(message) + "$"):
        rnnkit.load(run)


# ---- argument types ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--length", "-1", "argument --length: expected an integer >= 0; got -1"),
        ("--temperature", "warm", "argument --temperature: expected a number; got 'warm'"),
        ("--temperature", "-1", "argument --temperature: expected a number >= 0; got '-1'"),
        # Python's int() and float() read these; a number on the command line is ASCII.
        ("--length", "1_000", "argument --length: expected an integer; got '1_000'"),
        ("--length", "\u0663", "argument --length: expected an integer; got '\u0663'"),
        ("--temperature", "0_5", "argument --temperature: expected a number; got '0_5'"),
        ("--temperature", "\uff11", "argument --temperature: expected a number; got '\uff11'"),
    ],
)
def test_generate_argument_types(capsys, tmp_path, flag, value, message):
    err = _refused(capsys, ["generate", str(tmp_path), flag, value], tmp_path)
    assert err == f"rnnkit generate: error: {message}"


def test_translate_temperature_must_be_positive(capsys, tmp_path):
    err = _refused(capsys, ["translate", str(tmp_path), "seven", "--temperature", "0"], tmp_path)
    assert err == "rnnkit translate: error: argument --temperature: expected a positive number; "\
        "got '0'"  # fmt: skip


def test_explain_argument_messages(capsys, tmp_path):
    err = _refused(capsys, ["explain", "compare", "--scaling-lengths", "3,x", "--out",
                            str(tmp_path)], tmp_path)  # fmt: skip
    assert err == ("rnnkit explain compare: error: argument --scaling-lengths: expected "
                   "comma-separated positive integers; got '3,x'")  # fmt: skip
    err = _refused(
        capsys, ["explain", "lstm-example", "--sequence", "0.3,X", "--out", str(tmp_path)], tmp_path
    )
    assert err == ("rnnkit explain lstm-example: error: argument --sequence: sequence step 1 is "
                   "'X'; expected a number in [-1, 1], S<number> (store), R or E (recall, "
                   "erase; optionally with a number)")  # fmt: skip
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    out = tmp_path / "out"
    err = _refused(capsys, ["explain", "gates", "--file", str(empty), "--out", str(out)],
                   tmp_path)  # fmt: skip
    assert err == f"rnnkit explain: error: --file: text file {empty} is empty"
    # Refused before the reference model trains (minutes) to read it.
    for text in ("a", ""):
        err = _refused(capsys, ["explain", "gates", "--text", text, "--out", str(out)], tmp_path)
        assert err == (
            f"rnnkit explain: error: the text must have at least 2 characters; got {len(text)}"
        )


def test_explain_layer_is_an_integer(capsys, tmp_path):
    err = _refused(capsys, ["explain", "gates", "--layer", "1_0", "--out", str(tmp_path)],
                   tmp_path)  # fmt: skip
    assert err == "rnnkit explain gates: error: argument --layer: expected an integer; got '1_0'"


# ---- a numbers run -------------------------------------------------------------------


def test_translate_without_input(capsys, monkeypatch, numbers_run):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert _refused(capsys, ["translate", str(numbers_run)]) == (
        "rnnkit translate: error: empty input: give TEXT arguments or lines on standard input"
    )


def test_eval_of_a_numbers_run_on_its_training_split(capsys, numbers_run):
    assert _refused(capsys, ["eval", str(numbers_run), "--split", "train"]) == (
        "rnnkit eval: error: a numbers run is scored on its valid or test split; got 'train'"
    )


def test_train_on_cuda_without_a_gpu(capsys, tmp_path):
    if __import__("torch").cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    argv = ["train", "lm", "--device", "cuda", "--steps", "1", "--out", str(tmp_path / "run")]
    assert _refused(capsys, argv, tmp_path) == (
        "rnnkit train: error: --device cuda was asked for, but this PyTorch sees no CUDA device"
    )


def test_export_without_the_export_extra(capsys, monkeypatch, numbers_run):
    # What a user without `pip install 'rnnkit[export]'` sees: import fails inside rnnkit.
    monkeypatch.setitem(__import__("sys").modules, "rnnkit.export", None)
    err = _refused(capsys, ["export", str(numbers_run), "--mode", "sequence"], numbers_run)
    assert err.startswith(
        "rnnkit export: error: rnnkit export needs the export extra (pip install "
        "'rnnkit[export]'): "
    ), err


def test_export_run_dir_and_out(capsys, tmp_path, numbers_run):
    assert _refused(capsys, ["export", str(tmp_path)], tmp_path) == (
        f"rnnkit export: error: RUN_DIR must be a run folder with a config.json; got {tmp_path}"
    )
    assert _refused(capsys, ["export", str(numbers_run), "--out", ""], numbers_run) == (
        "rnnkit export: error: --out: expected a file name; got an empty string"
    )


def test_export_tolerance(capsys, tmp_path, numbers_run):
    """--tolerance bounds the self-check: 0 refuses the float32 graph (it is never exact)
    and writes nothing; a bound that is no number >= 0 is refused by the parser."""
    target = tmp_path / "model.onnx"
    err = _refused(capsys, ["export", str(numbers_run), "--out", str(target), "--tolerance",
                            "0"], tmp_path)  # fmt: skip
    assert re.fullmatch(
        r"rnnkit export: error: export_onnx: onnxruntime's output differs from PyTorch's by "
        r"[0-9.e-]+ \(\|difference\| / \(1 \+ \|PyTorch's\|\), tolerance 0\); nothing was "
        r"written",
        err,
    ), err
    assert _refused(capsys, ["export", str(numbers_run), "--tolerance", "-1"], numbers_run) == (
        "rnnkit export: error: argument --tolerance: expected a number >= 0; got '-1'"
    )
    assert main(["export", str(numbers_run), "--out", str(target), "--tolerance", "1e-4"]) == 0
    assert target.is_file()


def test_export_out_in_a_folder_that_does_not_exist(capsys, tmp_path, numbers_run):
    # Refused before the model is read and exported, not when the file is written.
    target = tmp_path / "no" / "model.onnx"
    assert _refused(capsys, ["export", str(numbers_run), "--out", str(target)], tmp_path) == (
        f"rnnkit export: error: --out: the folder of {target} does not exist; expected a file "
        "name in an existing folder"
    )


def test_generate_from_a_run_that_is_no_language_model(capsys, numbers_run):
    assert _refused(capsys, ["generate", str(numbers_run)], numbers_run) == (
        f"rnnkit generate: error: {numbers_run} is a run of task 'numbers', not a "
        "language-model run (rnnkit generate samples text); translate numbers with rnnkit "
        f"translate {numbers_run} TEXT"
    )


def test_generate_judges_the_task_before_reading_any_weight(capsys, numbers_run, tmp_path):
    # Before, the weights were loaded first: a run of another task without its weights was
    # refused for the missing file, not for being no language model.
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_bytes((numbers_run / "config.json").read_bytes())
    assert _refused(capsys, ["generate", str(run)], tmp_path) == (
        f"rnnkit generate: error: {run} is a run of task 'numbers', not a language-model run "
        f"(rnnkit generate samples text); translate numbers with rnnkit translate {run} TEXT"
    )


def test_how_to_apply_names_a_command_for_every_task():
    from rnnkit.cli.predict import how_to_apply
    from rnnkit.tasks import NAMES

    want = {
        "classify": "label new data with rnnkit predict R --data FILE",
        "tag": "label new data with rnnkit predict R --data FILE",
        "forecast": "forecast new series with rnnkit forecast R --data FILE",
        "lm": "it has no classes or tags to predict: continue a text with rnnkit generate R, "
        "score one with rnnkit eval R --text FILE",
        "numbers": "translate numbers with rnnkit translate R TEXT",
        "fit": "apply its model in Python, on the model rnnkit.load(run, model=MyModel(...)) "
        "returns",
    }
    synthetic = (
        "a synthetic task has nothing to predict on new data (its inputs are generated); "
        "score it with rnnkit eval R"
    )
    for task in [*NAMES, "fit"]:
        assert how_to_apply(task, "R") == want.get(task, synthetic), task
    assert set(want) - {"fit"} <= set(NAMES)
