"""What rnnkit.fit says about a user's own model, at its first batch and before: a model
with nothing to train, a model returning a tuple or a dict under the default loss or
rnnkit.train.accuracy, and class indices the model's output has no class for."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

import rnnkit
from _refusals import raises_exactly

torch.manual_seed(0)
X = torch.randn(8, 4)
Y = (X.sum(1) > 0).long()
QUIET = {"log": lambda line: None, "progress": io.StringIO(), "steps": 2}


class NoParameters(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :2]


class Several(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind, self.head = kind, nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> object:
        scores = self.head(x)
        return (scores, x) if self.kind == "tuple" else {"logits": scores}


def _frozen() -> nn.Module:
    return nn.Linear(4, 2).requires_grad_(False)


@pytest.mark.parametrize(
    ("model", "has"),
    [(NoParameters, "a NoParameters with no parameters"),
     (_frozen, "a Linear with 2 parameters, all frozen")],
)  # fmt: skip
def test_a_model_with_nothing_to_train_is_refused_before_any_file(tmp_path, model, has):
    # Both failed at the first batch with "loss must return a tensor computed from the
    # model's output; got one that needs no gradient", which the loss was.
    raises_exactly(ValueError, "rnnkit.fit: model must have a parameter to train "
                   f"(requires_grad=True); got {has}", rnnkit.fit, model(), [(X, Y)],
                   out=tmp_path / "run", **QUIET)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["tuple", "dict"])
def test_a_model_of_several_outputs_under_the_default_loss_is_named(tmp_path, kind):
    # "cross_entropy_loss(): argument 'input' (position 1) must be Tensor, not tuple"
    raises_exactly(TypeError, "rnnkit.fit: the default loss, F.cross_entropy, needs the "
                   f"model's output as a tensor of class scores; got {kind} (give loss= that "
                   "takes the scores from it)", rnnkit.fit, Several(kind), [(X, Y)],
                   out=tmp_path / "run", **QUIET)  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".lock", "config.json"]


def test_accuracy_on_a_dict_of_outputs_is_named(tmp_path):
    # "'dict' object has no attribute 'argmax'", from inside rnnkit.train.accuracy
    def loss(output, target):
        return nn.functional.cross_entropy(output["logits"], target)

    raises_exactly(TypeError, "rnnkit.train.accuracy: output and target must be tensors "
                   "(class scores, class indices); got dict and Tensor (for a model that "
                   "returns several values, give a metric that takes the scores from them)",
                   rnnkit.fit, Several("dict"), [(X, Y)], [(X, Y)], loss=loss,
                   metrics={"accuracy": rnnkit.train.accuracy}, out=tmp_path / "run",
                   **QUIET)  # fmt: skip


def test_a_class_index_past_the_models_classes_is_named(tmp_path):
    # torch said "Target 6 is out of bounds.", naming no argument.
    raises_exactly(ValueError, "rnnkit.fit: the default loss, F.cross_entropy, needs class "
                   "indices below the number of classes, the model's output.size(1) = 2; "
                   "got 6 in the first batch", rnnkit.fit, nn.Linear(4, 2), [(X, Y + 5)],
                   out=tmp_path / "run", **QUIET)  # fmt: skip
    # Indices below it, and cross-entropy's ignored -100, train.
    target = Y.clone()
    target[0] = -100
    assert rnnkit.fit(nn.Linear(4, 2), [(X, target)], out=tmp_path / "ok", **QUIET).step == 2


def test_a_frozen_part_stays_as_it_was(tmp_path):
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    before = model[0].weight.clone()
    rnnkit.fit(model, [(X, Y)], out=tmp_path / "run", weight_decay=0.5, **QUIET)
    assert torch.equal(model[0].weight, before)


def test_the_log_and_loss_plot_name_the_users_model_class(tmp_path, monkeypatch) -> None:
    # They said "model: fit; 10 parameters", the task's name.
    titles: list[str] = []
    monkeypatch.setattr("rnnkit.train.loop.plot", lambda rows, title: titles.append(title) or b"")
    lines: list[str] = []
    rnnkit.fit(
        nn.Linear(4, 2), [(X, Y)], out=tmp_path / "run", steps=1, log=lines.append,
        progress=io.StringIO(),
    )  # fmt: skip
    assert "model: Linear; 10 parameters; processes: 1" in lines
    assert titles and set(titles) == {"Linear"}
