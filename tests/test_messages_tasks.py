"""Each error message of the classify, tag, lm and numbers tasks that no other test
reaches, through the Python API or `rnnkit` itself, asserted word for word: the command
line's in one line on stderr, exit status 2, no traceback and nothing written."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from rnnkit.cli import main
from rnnkit.data.ts_format import write_ts
from rnnkit.tasks.classify import SequenceClassifier
from rnnkit.train import TrainConfig, train

SMALL = {"hidden_size": 4, "batch_size": 4, "dropout": 0.0}
STEPS = {"steps": 2, "eval_every": 2, "log_every": 2, "threads": 1}


def quiet() -> dict[str, Any]:
    return {"log": lambda _: None, "progress": io.StringIO()}


def _raises(exc: type[Exception], message: str, fn, *args, **kwargs) -> None:
    with pytest.raises(exc, match="^" + re.escape(message) + "$"):
        fn(*args, **kwargs)


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str], root: Path) -> str:
    """The one line rnnkit prints for ``argv``, after checking status 2, no traceback and
    nothing written under ``root``."""
    before = sorted((p, p.stat().st_mtime_ns) for p in root.rglob("*"))
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    assert code == 2, (code, captured.err)
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err, captured.err
    assert sorted((p, p.stat().st_mtime_ns) for p in root.rglob("*")) == before
    return captured.err.strip()


def series_file(path: Path, n: int = 16, dims: int = 2) -> str:
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(4 + i % 3, dims, generator=g) for i in range(n)]
    write_ts(path, xs, [i % 2 for i in range(n)], classes=["up", "down"])
    return str(path)


# ---- SequenceClassifier ---------------------------------------------------------------


def test_sequence_classifier_messages() -> None:
    _raises(ValueError, "cell must be one of rnn, lstm, gru, mingru, minlstm; got 'tcn'",
            SequenceClassifier, 2, 3, cell="tcn")  # fmt: skip
    _raises(ValueError, "pool must be one of last, mean, max; got 'median'", SequenceClassifier,
            2, 3, pool="median")  # fmt: skip
    _raises(TypeError, "SequenceClassifier: mean must be a list or tensor of numbers, one per "
            "channel; got str", SequenceClassifier, 2, 3, mean="ab")  # fmt: skip
    _raises(ValueError, "SequenceClassifier: mean must be finite; got [0.0, inf]",
            SequenceClassifier, 2, 3, mean=[0.0, float("inf")])  # fmt: skip


# ---- rnnkit train classify ------------------------------------------------------------


def test_train_classify_messages(capsys, tmp_path: Path) -> None:
    data = series_file(tmp_path / "d.ts")
    one = series_file(tmp_path / "one.ts", n=6, dims=1)
    out = str(tmp_path / "run")
    argv = ["train", "classify", "--data", data, "--out", out, "--steps", "1"]
    assert _refused(capsys, [*argv, "--test-data", one], tmp_path) == (
        f"rnnkit train: error: {one}: its series have 1 dimension(s); the training file's have 2"
    )
    assert _refused(capsys, [*argv, "--test-data", one, "--test-fraction", "0.3"], tmp_path) == (
        f"rnnkit train: error: --test-fraction 0.3 holds out a share of --data, and "
        f"--test-data {one} is the test split; leave --test-fraction out"
    )
    few = series_file(tmp_path / "few.ts", n=4)
    argv = ["train", "classify", "--data", few, "--out", out, "--steps", "1"]
    assert _refused(capsys, [*argv, "--test-fraction", "0.1"], tmp_path) == (
        "rnnkit train: error: --test-fraction 0.1 of 4 series holds out none for the test; "
        "give a larger --test-fraction or a --test-data file"
    )


@pytest.fixture(scope="module")
def classify_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("classify_run")
    f = series_file(root / "d.ts", n=24)
    train("classify", {"data": f, **SMALL}, TrainConfig(**STEPS), out=root / "run", **quiet())
    return root / "run"


def _edited(run: Path, where: Path, change) -> Path:
    copy = where / "edited"
    shutil.copytree(run, copy)
    config = json.loads((copy / "config.json").read_text())
    change(config["derived"])
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def test_eval_of_a_hand_edited_classify_run(capsys, classify_run: Path, tmp_path: Path) -> None:
    gone = tmp_path / "gone.ts"

    def no_test_list(d: dict) -> None:
        d["split"]["test"] = None

    def past_the_end(d: dict) -> None:
        d["split"]["val"] = [0, 24]

    def no_majority(d: dict) -> None:
        del d["majority"], d["mean"]

    def moved(d: dict) -> None:
        d["source"]["train"]["path"] = str(gone)

    cases = [
        (no_test_list, "split must hold the list 'test' of held-out series"),
        (past_the_end, "split.val: indices must be integers in [0, 24)"),
        (no_majority, "missing key(s) mean, majority of a classify run"),
    ]
    for change, message in cases:
        copy = _edited(classify_run, tmp_path, change)
        where = copy / "config.json"
        assert _refused(capsys, ["eval", str(copy)], tmp_path) == (
            f"rnnkit eval: error: {where}: derived: {message}"
        )
        shutil.rmtree(copy)
    copy = _edited(classify_run, tmp_path, moved)
    assert _refused(capsys, ["eval", str(copy)], tmp_path) == (
        f"rnnkit eval: error: {gone}: the train file of this run is missing"
    )
