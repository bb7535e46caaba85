"""Each error message of `rnnkit eval` and `rnnkit forecast` that no other test reaches:
one line on stderr naming the flag, what was expected and what was given, exit status 2,
no traceback and nothing written."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from _refusals import refused
from rnnkit.train import TrainConfig, train


@pytest.fixture(scope="module")
def forecast_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("forecast")
    rows = "\n".join(f"{t},{20 + t % 4 + t / 10:.2f},{30 - t % 3:.2f}" for t in range(30))
    data = root / "shops.csv"
    data.write_text(f"week,shop0,shop1\n{rows}\n", encoding="utf-8")
    options = {"horizon": 2, "seasonality": 1, "hidden_size": 4, "batch_size": 2, "context": 6}
    train("forecast", {**options, "data": str(data)}, TrainConfig(steps=2, eval_every=2, threads=1),
          out=root / "run", log=lambda _: None, progress=io.StringIO())  # fmt: skip
    return root / "run"


# ---- rnnkit eval ----------------------------------------------------------------------


def test_eval_flags_of_another_kind_of_run(capsys, adding_run: Path) -> None:
    root = adding_run.parent
    assert refused(capsys, ["eval", str(adding_run), "--beam", "3"], root) == (
        "rnnkit eval: error: --beam: only for numbers runs"
    )
    assert refused(capsys, ["eval", str(adding_run), "--limit", "2", "--alpha", "1"], root) == (
        "rnnkit eval: error: --alpha, --limit: only for numbers runs"
    )
    argv = ["eval", str(adding_run), "--split", "test", "--seq-len", "8"]
    assert refused(capsys, argv, root) == (
        f"rnnkit eval: error: --split, --seq-len: only for language-model runs; {adding_run} "
        "is a run of task 'adding'"
    )


# ---- rnnkit forecast ------------------------------------------------------------------


def test_forecast_of_another_kind_of_run(capsys, adding_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "f.csv"
    assert refused(capsys, ["forecast", str(adding_run), "--out", str(out)], tmp_path) == (
        f"rnnkit forecast: error: {adding_run} is a run of task 'adding', not a forecast "
        "run; a synthetic task has nothing to predict on new data (its inputs are generated); "
        f"score it with rnnkit eval {adding_run}"
    )


def test_forecast_series_not_in_the_data(capsys, forecast_run: Path, tmp_path: Path) -> None:
    data = forecast_run.parent / "shops.csv"
    argv = ["forecast", str(forecast_run), "--plot", str(tmp_path / "f.png"), "--series", "shop0",
            "--series", "shop9", "--out", str(tmp_path / "f.csv")]  # fmt: skip
    assert refused(capsys, argv, tmp_path) == (
        f"rnnkit forecast: error: --series 'shop9' is not a series of {data}; it has 'shop0', "
        "'shop1'"
    )
