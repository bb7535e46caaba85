"""What `rnnkit train` and `rnnkit.fit` say when a run ends: the truth about what was
scored and what was saved."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import rnnkit
from rnnkit.cli import main
from rnnkit.tasks.memory import AddingTask


def test_a_run_whose_metric_is_never_finite_says_no_model_was_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(AddingTask, "evaluate", lambda self, model: {"mse": math.nan})
    out = tmp_path / "run"
    argv = ["train", "adding", "--length", "10", "--hidden", "4", "--steps", "2",
            "--eval-every", "1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "run saved" not in captured.out and "rnnkit.load" not in captured.out
    assert captured.err.strip().splitlines()[-1] == (
        f"no model saved in {out}: the validation mse was not a finite number at any evaluation"
    )
    assert not (out / "model.safetensors").exists()


class Last(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = rnnkit.LSTM(3, 4, batch_first=True)
        self.head = torch.nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0][:, -1])


def test_fit_without_validation_data_names_the_training_loss(tmp_path: Path) -> None:
    data = TensorDataset(torch.randn(32, 5, 3), torch.randn(32, 1))
    progress = io.StringIO()
    rnnkit.fit(Last(), DataLoader(data, batch_size=8), steps=4, eval_every=2,
               loss=torch.nn.functional.mse_loss, out=tmp_path / "run", log=lambda _: None,
               progress=progress)  # fmt: skip
    lines = progress.getvalue().replace("\r", "\n").splitlines()
    scored = [line for line in lines if line.startswith("step ")]
    assert len(scored) == 2 and all("validation" not in line for line in scored)
    assert all(line.split(": ", 1)[1].startswith("training (no val_loader") for line in scored)
    assert all(math.isfinite(float(line.split(") loss ")[1].split()[0])) for line in scored)


def test_a_refit_says_it_scores_training_data_and_keeps_the_last_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [f"{a},{a + 1},{a + 2}:{'up' if a % 2 else 'down'}" for a in range(16)]
    ts = tmp_path / "ud.ts"
    ts.write_text("@problemName ud\n@classLabel true up down\n@data\n" + "\n".join(rows) + "\n")
    out = tmp_path / "refit"
    argv = ["train", "classify", "--data", str(ts), "--val-fraction", "0", "--hidden", "4",
            "--steps", "4", "--eval-every", "2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    end = next(line for line in printed.splitlines() if line.startswith("finished at step 4"))
    assert end.startswith("finished at step 4: training (no validation split) accuracy ")
    assert "; kept (the last evaluated) accuracy " in end and end.endswith("at step 4")
    card = (out / "README.md").read_text()
    assert "| last training (no validation split) |" in card and "best validation" not in card
    assert "holds the weights of step 4, the last evaluated" in card
    assert "Training (no validation split) metrics of every evaluation" in card
    # eval with --out naming the run folder itself rewrites its own figure, as without --out
    assert main(["eval", str(out), "--out", str(out)]) == 0
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"
