"""Training runs: determinism, exact resume after an interruption, atomic checkpoint files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit.train import TrainConfig, Trainer, train
from rnnkit.train import checkpoint as ckpt

MODEL = {"cell": "lstm", "num_layers": 2, "hidden_size": 16, "embed_size": 8, "dropout": 0.1}


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


def _train(out: Path, text: Path, steps: int = 12, **kw) -> rnnkit.train.Summary:
    config = TrainConfig(
        seq_len=16,
        batch_size=4,
        steps=steps,
        minutes=None,
        eval_every=5,
        sample_chars=20,
        warmup_steps=3,
        seed=7,
    )
    return train(
        out,
        model_options=MODEL,
        train_config=config,
        source={"kind": "text", "path": str(text)},
        log=lambda s: None,
        **kw,
    )


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    """Weights, AdamW moments, carried hidden state and RNG state of the last step."""
    return ckpt.load_train_state(run)[0]


def test_same_seed_same_run(tmp_path: Path, text_file: Path):
    _train(tmp_path / "a", text_file, steps=6)
    _train(tmp_path / "b", text_file, steps=6)
    a, b = _final_weights(tmp_path / "a"), _final_weights(tmp_path / "b")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path: Path, text_file: Path):
    whole = _train(tmp_path / "whole", text_file)
    assert whole.step == 12 and whole.stopped_by is None

    def stop_at_7(trainer: Trainer) -> None:
        if trainer.step_count == 7:  # not at an evaluation: the state must carry exactly
            trainer.request_stop("SIGINT")

    cut = _train(tmp_path / "cut", text_file, on_step=stop_at_7)
    assert cut.step == 7 and cut.stopped_by == "SIGINT"
    _, info = ckpt.load_train_state(tmp_path / "cut")
    assert info["step"] == 7
    resumed = train(resume=tmp_path / "cut", log=lambda s: None)
    assert resumed.step == 12
    a, b = _final_weights(tmp_path / "whole"), _final_weights(tmp_path / "cut")
    assert a.keys() == b.keys()
    assert "hidden.h" in a and "hidden.c" in a and "optim.0.exp_avg" in a
    for k in a:
        assert torch.equal(a[k], b[k]), k
    rows = (tmp_path / "cut" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,chars") and rows[-1].startswith("12,")


def test_run_folder_contents_and_load(tmp_path: Path, text_file: Path):
    summary = _train(tmp_path / "run", text_file, steps=5)
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == [
        "config.json",
        "loss.png",
        "metrics.csv",
        "model.safetensors",
        "train_state-00000005.safetensors",
        "train_state.json",
    ]
    model = rnnkit.load(tmp_path / "run")
    assert not model.training and model.config.hidden_size == 16
    assert len(summary.sample) == 20
    cfg = ckpt.read_run_config(tmp_path / "run")
    assert cfg.train.seed == 7 and cfg.data["kind"] == "text"
    assert (tmp_path / "run" / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_refuses_a_finished_run(tmp_path: Path, text_file: Path):
    _train(tmp_path / "run", text_file, steps=3)
    with pytest.raises(ValueError, match="already reached its budget"):
        train(resume=tmp_path / "run", log=lambda s: None)


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path: Path, monkeypatch):
    path = tmp_path / "model.safetensors"
    ckpt.save_tensors(path, {"w": torch.ones(3)})

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_tensors(path, {"w": torch.zeros(3)})
    monkeypatch.undo()
    assert torch.equal(ckpt.load_tensors(path)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temporary left
