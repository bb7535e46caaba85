"""rnnkit.fit(..., resume=True) continues the run's own training settings: the same call
again, or one giving only a new budget, trains on as the run was set up; a setting given
with another value is refused with the folder untouched; a model of other shapes is named
as the model given; a pretrained folder given as out is refused in fit's words."""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch
from torch import nn

import rnnkit
from _refusals import raises_exactly
from rnnkit.train import RunFolderError, TrainConfig

torch.manual_seed(0)
X = torch.randn(24, 4)
Y = (X.sum(1) > 0).long()
BATCHES = [(X[i : i + 8], Y[i : i + 8]) for i in range(0, 24, 8)]
QUIET = {"log": lambda line: None, "progress": io.StringIO()}
SET_UP = {"lr": 0.01, "schedule": "constant", "eval_every": 2, "seed": 3, "warmup_steps": 0}


def _model() -> nn.Module:
    torch.manual_seed(1)
    return nn.Linear(4, 2)


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def _train(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())["train"]


def test_a_resume_given_only_a_budget_continues_the_runs_own_settings(tmp_path):
    # It took fit's defaults for every setting left out (lr 1e-3, a cosine schedule,
    # eval_every 100, seed 0) and wrote them into config.json.
    whole_model = _model()
    whole = rnnkit.fit(whole_model, BATCHES, steps=6, out=tmp_path / "whole", **SET_UP, **QUIET)
    out = tmp_path / "run"
    rnnkit.fit(_model(), BATCHES, steps=4, out=out, **SET_UP, **QUIET)  # on the eval grid
    before = _train(out)
    model = _model()
    summary = rnnkit.fit(model, BATCHES, steps=6, out=out, resume=True, **QUIET)
    assert _train(out) == {**before, "steps": 6}
    assert summary.step == 6 and summary.best == whole.best
    assert [s for s, _, _ in summary.history] == [s for s, _, _ in whole.history] == [2, 4, 6]
    assert torch.equal(model.weight, whole_model.weight)


def test_a_resume_that_changes_a_training_setting_is_refused(tmp_path):
    out = tmp_path / "run"
    rnnkit.fit(_model(), BATCHES, steps=2, out=out, **SET_UP, **QUIET)
    before = _snapshot(out)
    raises_exactly(RunFolderError, f"rnnkit.fit: {out / 'config.json'} records lr=0.01, "
                   "seed=3; got lr=0.5, seed=0; a resume continues the run's own training "
                   "settings (only steps and minutes may change; to train otherwise, start a "
                   "new run with another out)", rnnkit.fit, _model(), BATCHES, steps=4,
                   out=out, resume=True, **{**SET_UP, "lr": 0.5, "seed": 0},
                   **QUIET)  # fmt: skip
    config = TrainConfig(steps=4, eval_every=2)  # every other field at its default
    raises_exactly(RunFolderError, f"rnnkit.fit: {out / 'config.json'} records lr=0.01, "
                   "schedule='constant', warmup_steps=0, seed=3; got lr=0.003, "
                   "schedule='cosine', warmup_steps=50, seed=0; a resume continues the run's "
                   "own training settings (only steps and minutes may change; to train "
                   "otherwise, start a new run with another out)", rnnkit.fit, _model(),
                   BATCHES, out=out, resume=True, train_config=config, **QUIET)  # fmt: skip
    assert _snapshot(out) == before
    same = rnnkit.fit(_model(), BATCHES, steps=4, out=out, resume=True, **SET_UP, **QUIET)
    assert same.step == 4


def test_a_resume_with_a_model_of_other_shapes_names_the_model_given(tmp_path):
    out = tmp_path / "run"
    rnnkit.fit(_model(), BATCHES, steps=2, out=out, **SET_UP, **QUIET)
    before = _snapshot(out)
    raises_exactly(RunFolderError, f"{out / 'train_state-00000002.safetensors'}: bias has "
                   "shape (2,); the Linear given expects (3,)", rnnkit.fit, nn.Linear(4, 3),
                   BATCHES, steps=4, out=out, resume=True, **SET_UP, **QUIET)  # fmt: skip
    assert _snapshot(out) == before


def test_a_pretrained_folder_given_as_out_is_refused_in_fits_words(tmp_path):
    # The advice was the command line's "--config FOLDER/config.json --out NEW", which
    # refuses the config of a run of rnnkit.fit.
    run, pub = tmp_path / "run", tmp_path / "pub"
    rnnkit.fit(_model(), BATCHES, steps=2, out=run, **SET_UP, **QUIET)
    rnnkit.save_pretrained(run, pub)
    before = _snapshot(pub)
    message = (f"rnnkit.fit: out={str(pub)!r} is a pretrained folder (model.safetensors, no "
               "train_state.json); expected a new or empty folder, or a run to resume: a "
               "pretrained folder is not trained into (choose another out)")  # fmt: skip
    for resume in (False, True):
        raises_exactly(RunFolderError, message, rnnkit.fit, _model(), BATCHES, steps=2,
                       out=pub, resume=resume, **QUIET)  # fmt: skip
    assert _snapshot(pub) == before
