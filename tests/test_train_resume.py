"""Training runs: determinism, exact resume after an interruption, atomic checkpoint files."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit.tasks.lm import LMOptions
from rnnkit.train import RunFolder, RunFolderError, Summary, TrainConfig, Trainer, train
from rnnkit.train.files import load_tensors, save_tensors

OPTIONS = {
    "cell": "lstm",
    "num_layers": 2,
    "hidden_size": 16,
    "embed_size": 8,
    "dropout": 0.1,
    "seq_len": 16,
    "batch_size": 4,
    "eval_chars": 2000,
    "sample_chars": 20,
}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # shared 2-core machines: one thread is fastest and exact
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def text_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import textwrap

    path = tmp_path_factory.mktemp("text") / "text.txt"
    path.write_text(Path(textwrap.__file__).read_text(encoding="utf-8"), encoding="utf-8")
    return path


def _train(out: Path, text: Path, steps: int = 12, **kw) -> Summary:
    config = TrainConfig(steps=steps, eval_every=5, warmup_steps=3, seed=7)
    return train(
        "lm",
        LMOptions(text=str(text), **OPTIONS),
        config,
        out=out,
        log=lambda s: None,
        progress=io.StringIO(),
        **kw,
    )


def _state(run: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Weights, AdamW moments, carried hidden state and RNG state of the last checkpoint,
    and the manifest."""
    ckpt = RunFolder(run).read_checkpoint()
    assert ckpt is not None
    return ckpt.tensors, ckpt.info


def _validation(run: Path) -> dict[tuple[int, str], str]:
    with (run / "metrics.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return {(int(r["step"]), r["metric"]): r["value"] for r in rows if r["split"] == "validation"}


def test_same_seed_same_run(tmp_path: Path, text_file: Path):
    _train(tmp_path / "a", text_file, steps=6)
    _train(tmp_path / "b", text_file, steps=6)
    (a, info_a), (b, info_b) = _state(tmp_path / "a"), _state(tmp_path / "b")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert info_a["best"] == info_b["best"] and info_a["data"] == info_b["data"]
    assert _validation(tmp_path / "a") == _validation(tmp_path / "b")


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path: Path, text_file: Path):
    whole = _train(tmp_path / "whole", text_file)
    assert whole.step == 12 and whole.stopped_by is None

    def stop_at_7(trainer: Trainer) -> None:
        if trainer.step == 7:  # not at an evaluation: the state must carry exactly
            trainer.request_stop("SIGINT")

    cut = _train(tmp_path / "cut", text_file, on_step=stop_at_7)
    assert cut.step == 7 and cut.stopped_by == "SIGINT"
    _, info = _state(tmp_path / "cut")
    assert info["step"] == 7 and info["data"] == {"position": 7}
    resumed = train("lm", resume=tmp_path / "cut", log=lambda s: None, progress=io.StringIO())
    assert resumed.step == 12 and resumed.stopped_by is None
    (a, info_a), (b, info_b) = _state(tmp_path / "whole"), _state(tmp_path / "cut")
    assert a.keys() == b.keys()
    assert {"task.h", "task.c", "optim.0.exp_avg", "rng.cpu"} <= a.keys()
    assert any(k.startswith("model.") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert info_a["step"] == info_b["step"] == 12
    assert info_a["data"] == info_b["data"] == {"position": 12}
    assert info_a["items"] == info_b["items"] == 12 * 16 * 4
    assert info_a["best"] == info_b["best"]
    # The long metrics.csv: the cut run has one more evaluation (at the stop, step 7);
    # every evaluation the whole run made has the same value in the resumed run.
    lines = (tmp_path / "cut" / "metrics.csv").read_text().splitlines()
    assert lines[0] == "step,time,split,metric,value" and lines[-1].startswith("12,")
    whole_val, cut_val = _validation(tmp_path / "whole"), _validation(tmp_path / "cut")
    assert {s for s, _ in whole_val} == {5, 10, 12} and {s for s, _ in cut_val} == {5, 7, 10, 12}
    assert {m for _, m in whole_val} == {"bpc", "loss"}
    assert all(cut_val[key] == value for key, value in whole_val.items())


def test_run_folder_contents_and_load(tmp_path: Path, text_file: Path):
    summary = _train(tmp_path / "run", text_file, steps=5)
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == [
        ".lock",
        "README.md",
        "config.json",
        "loss.png",
        "metrics.csv",
        "model.safetensors",
        "train_state-00000005.safetensors",
        "train_state.json",
    ]
    model = rnnkit.load(tmp_path / "run")
    assert not model.training and model.config.hidden_size == 16
    assert summary.lines[0] == "sample from the best model:"
    assert 0 < len("\n".join(summary.lines[1:])) <= 20
    assert summary.best == {"metric": "bpc", "value": summary.metrics["bpc"], "step": 5}
    cfg = RunFolder(tmp_path / "run").read_config()
    assert cfg.task == "lm" and cfg.train.seed == 7 and cfg.train.steps == 5
    assert cfg.options["hidden_size"] == 16 and cfg.derived["corpus"]["kind"] == "text"
    assert "seq_len" not in json.loads((tmp_path / "run" / "config.json").read_text())["train"]
    assert (tmp_path / "run" / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_refuses_a_finished_run(tmp_path: Path, text_file: Path):
    _train(tmp_path / "run", text_file, steps=3)
    with pytest.raises(RunFolderError, match="already reached its budget"):
        train("lm", resume=tmp_path / "run", log=lambda s: None)
    resumed = train(
        "lm", resume=tmp_path / "run", steps=4, log=lambda s: None, progress=io.StringIO()
    )
    assert resumed.step == 4  # a larger budget continues it


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path: Path, monkeypatch):
    path = tmp_path / "model.safetensors"
    save_tensors(path, {"w": torch.ones(3)})

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_tensors(path, {"w": torch.zeros(3)})
    monkeypatch.undo()
    assert torch.equal(load_tensors(path)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temporary left


def test_a_short_minutes_budget_reads_in_significant_digits() -> None:
    # A 0.01-minute budget reached read "0.0 of 0.01 minutes".
    from rnnkit.train.loop import budget_reached

    assert budget_reached(TrainConfig(minutes=0.01), 7, 0.63) == "0.0105 of 0.01 minutes"
    assert budget_reached(TrainConfig(minutes=3), 700, 181.0) == "3.02 of 3 minutes"
    assert budget_reached(TrainConfig(minutes=3), 700, 100.0) is None
