"""rnnkit.fit's checks of what it is given and of what it resumes: the direction of the
monitor, metric names, what ranks the checkpoints, the weight of a validation batch, the
default folder, the manifest's best and data position, and what loss and metrics return.
Each refusal is asserted whole, with the folder it leaves."""

from __future__ import annotations

import functools
import io
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import rnnkit
from _refusals import raises_exactly
from rnnkit.data import pad_collate
from rnnkit.train import RunFolderError
from rnnkit.train.fit import infer_higher_is_better

torch.manual_seed(0)
X = torch.randn(16, 5, 3)
Y = (X.sum((1, 2)) > 0).long()


class M(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn, self.head = rnnkit.GRU(3, 4, batch_first=True), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[1][-1])


def _loader() -> DataLoader:
    return DataLoader(TensorDataset(X, Y), batch_size=4)


def _quiet(**extra):
    return {"log": lambda line: None, "progress": io.StringIO(), "steps": 2, "eval_every": 2,
            **extra}  # fmt: skip


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Names, bytes and modification times: what a refused call must leave as it was."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A run with a val_loader, ranked by the validation loss, with a checkpoint at 2."""
    out = tmp_path_factory.mktemp("fit") / "run"
    rnnkit.fit(M(), _loader(), _loader(), out=out, **_quiet())
    return out


# ---- 1. the direction of monitor ------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["loss", "val_loss", "NLLLoss", "error", "top1_error", "err", "mse", "MAE", "rmse", "bpc",
     "perplexity", "val_ppl", "cer", "wer", "mase", "smape", "mape", "valLoss"],
)  # fmt: skip
def test_a_loss_or_an_error_is_lower_is_better(name):
    assert infer_higher_is_better(name) is False


@pytest.mark.parametrize(
    "name",
    ["accuracy", "val_accuracy", "acc", "acc1", "valAcc", "f1", "macro_f1", "microF1", "auc",
     "precision", "recall", "r2", "bleu", "bleu4"],
)  # fmt: skip
def test_a_score_is_higher_is_better(name):
    assert infer_higher_is_better(name) is True


@pytest.mark.parametrize("name", ["score", "power", "success", "acc_loss", "metric"])
def test_a_name_that_says_neither_or_both_is_refused(name):
    # "power" holds "wer" and "success" holds neither "acc" nor "cer" as a word.
    raises_exactly(ValueError, f"rnnkit.fit: higher_is_better must be given for monitor "
                   f"{name!r} (whether a larger value is better cannot be told from its name)",
                   infer_higher_is_better, name)  # fmt: skip


def test_an_error_metric_keeps_the_lowest(tmp_path):
    # "error" was maximised: the worst weights were kept.
    def error(output, target):
        return float(F.cross_entropy(output, target))

    summary = rnnkit.fit(M(), _loader(), _loader(), metrics={"error": error}, monitor="error",
                         out=tmp_path / "r", lr=0.05, **_quiet(steps=6, eval_every=1))  # fmt: skip
    errors = {step: metrics["error"] for step, _, metrics in summary.history}
    best = min(errors, key=errors.__getitem__)
    assert max(errors.values()) > min(errors.values())  # the choice matters
    assert summary.best == {"metric": "error", "value": errors[best], "step": best}


def test_fit_refuses_a_monitor_of_unknown_direction(tmp_path):
    raises_exactly(ValueError, "rnnkit.fit: higher_is_better must be given for monitor 'score' "
                   "(whether a larger value is better cannot be told from its name)",
                   rnnkit.fit, M(), _loader(), _loader(), metrics={"score": lambda o, t: 1.0},
                   monitor="score", out=tmp_path / "r", **_quiet())  # fmt: skip
    assert list(tmp_path.iterdir()) == []
    summary = rnnkit.fit(M(), _loader(), _loader(), metrics={"score": lambda o, t: 1.0},
                         monitor="score", higher_is_better=True, out=tmp_path / "r",
                         **_quiet())  # fmt: skip
    assert summary.best["metric"] == "score"


# ---- 2. metric names ------------------------------------------------------------------


def test_fit_refuses_a_metric_named_loss_or_not_named_by_a_str(tmp_path):
    # "loss" was summed into the validation loss; 1 failed after a checkpoint was written.
    raises_exactly(ValueError, "rnnkit.fit: metrics must not hold 'loss': the loss is always "
                   "reported under that name; give the metric another name", rnnkit.fit, M(),
                   _loader(), _loader(), metrics={"loss": lambda o, t: 100.0},
                   out=tmp_path / "r", **_quiet())  # fmt: skip
    raises_exactly(TypeError, "rnnkit.fit: metrics' names must be str; got 1 (int)", rnnkit.fit,
                   M(), _loader(), _loader(), metrics={1: lambda o, t: 1.0},
                   out=tmp_path / "r", **_quiet())  # fmt: skip
    assert list(tmp_path.iterdir()) == []


# ---- 3. what ranks the checkpoints ----------------------------------------------------


def test_the_run_records_what_ranks_its_checkpoints(run):
    options = json.loads((run / "config.json").read_text())["options"]
    assert options == {"monitor": "loss", "higher_is_better": False, "val_loader": True}


@pytest.mark.parametrize(
    ("change", "saved", "given"),
    [
        ({"monitor": "accuracy"}, "monitor='loss'", "monitor='accuracy'"),
        ({"higher_is_better": True}, "higher_is_better=False", "higher_is_better=True"),
        ({"val_loader": None}, "a val_loader", "no val_loader"),
    ],
)
def test_a_resume_that_ranks_otherwise_is_refused(copy, change, saved, given):
    before = _snapshot(copy)
    args = {"val_loader": _loader(), "metrics": {"accuracy": rnnkit.train.accuracy}, **change}
    raises_exactly(RunFolderError, f"rnnkit.fit: {copy / 'config.json'} records {saved}; got "
                   f"{given}; a resume ranks the checkpoints as the run did (to rank them "
                   "otherwise, start a new run with another out)", rnnkit.fit, M(), _loader(),
                   out=copy, resume=True, **args, **_quiet(steps=4))  # fmt: skip
    assert _snapshot(copy) == before
    same = rnnkit.fit(M(), _loader(), _loader(), out=copy, resume=True, **_quiet(steps=4))
    assert same.step == 4 and same.best["metric"] == "loss"


def test_a_run_without_a_checkpoint_may_resume_ranked_otherwise(tmp_path):
    out = tmp_path / "r"
    with pytest.raises(TypeError):  # stopped at its first batch: config.json only
        rnnkit.fit(M(), _loader(), out=out, loss=lambda o, t: 1.0, **_quiet())
    summary = rnnkit.fit(M(), _loader(), _loader(), metrics={"accuracy": rnnkit.train.accuracy},
                         monitor="accuracy", out=out, resume=True, **_quiet())  # fmt: skip
    assert summary.step == 2 and summary.best["metric"] == "accuracy"
    assert json.loads((out / "config.json").read_text())["options"]["monitor"] == "accuracy"


# ---- 4. the weight of a validation batch ----------------------------------------------


class TimeMajor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(x.sum(0))  # x: (T, B, 3)


def test_validation_averages_weigh_each_sample_once(tmp_path):
    # Batches of 7 and 2 sequences, time-major, of at most 3 and 12 steps: weighed by
    # batch[0].size(0) (T), the second counted four times the first.
    torch.manual_seed(1)
    steps = [3] * 7 + [12, 2]
    data = [(torch.randn(t, 3), int(torch.randint(0, 2, ()))) for t in steps]
    collate = functools.partial(pad_collate, batch_first=False)
    val = DataLoader(data, batch_size=7, collate_fn=collate)
    model = TimeMajor()
    summary = rnnkit.fit(model, DataLoader(data, batch_size=4, collate_fn=collate), val,
                         metrics={"accuracy": rnnkit.train.accuracy}, out=tmp_path / "r",
                         **_quiet(steps=1, eval_every=1))  # fmt: skip
    loss, right = 0.0, 0
    with torch.no_grad():
        for x, lengths, y in val:
            out = model(x, lengths)
            loss += float(F.cross_entropy(out, y, reduction="sum"))
            right += int((out.argmax(-1) == y).sum())
    assert summary.metrics["loss"] == pytest.approx(loss / 9, rel=1e-6)
    assert summary.metrics["accuracy"] == pytest.approx(right / 9, rel=1e-6)


# ---- 5. the folder of a new run -------------------------------------------------------


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(rnnkit.train.run.time, "strftime", lambda fmt: "20250101-120000")
    dirs = [rnnkit.fit(M(), _loader(), **_quiet(steps=1)).run_dir for _ in range(3)]
    base = str(Path("runs") / "fit-20250101-120000")
    assert dirs == [base, base + "-2", base + "-3"]
    assert all((tmp_path / d / "train_state.json").is_file() for d in dirs)


def test_a_folder_refused_as_out_is_named_as_fits_argument(copy):
    before = _snapshot(copy)
    raises_exactly(RunFolderError, f"rnnkit.fit: out={str(copy)!r} already holds a run; "
                   "continue it with resume=True or choose another out", rnnkit.fit, M(),
                   _loader(), out=copy, **_quiet())  # fmt: skip
    inner = copy / "inner"
    raises_exactly(RunFolderError, f"rnnkit.fit: out={str(inner)!r}: expected a folder outside "
                   f"any run folder; got one inside the run folder {copy}, which holds only "
                   "what rnnkit writes", rnnkit.fit, M(), _loader(), out=inner,
                   **_quiet())  # fmt: skip
    assert _snapshot(copy) == before


# ---- 6. the manifest's best and data position, checked before anything is written -----


def _resume(out: Path) -> None:
    rnnkit.fit(M(), _loader(), _loader(), out=out, resume=True, **_quiet(steps=6))


@pytest.mark.parametrize(
    ("best", "why"),
    [
        ({"metric": "loss", "value": "abc", "step": 2},
         'best value must be a finite number or null; got "abc"'),
        ({"metric": "loss", "value": float("inf"), "step": 2},
         "best value must be a finite number or null; got Infinity"),
        ({"metric": "loss", "value": True, "step": 2},
         "best value must be a finite number or null; got true"),
        ({"metric": "loss", "value": 0.5, "step": 9},
         "best step must be an integer from 0 to 2 or null; got 9"),
        ({"metric": "loss", "value": 0.5, "step": "2"},
         'best step must be an integer from 0 to 2 or null; got "2"'),
        ([0.5], "best must be a JSON object; got [0.5]"),
    ],
)  # fmt: skip
def test_resume_refuses_a_best_of_another_kind(copy, best, why):
    # A best value "abc" trained on and failed at the first comparison, after config.json
    # had been rewritten.
    manifest = copy / "train_state.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "best": best}))
    before = _snapshot(copy)
    raises_exactly(RunFolderError, f"{manifest} is corrupt: {why}", _resume, copy)
    assert _snapshot(copy) == before


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ({"index": 1000}, "data index 1000 is past the end of train_loader, which gives 4 "
         "batches an epoch"),
        ({"index": -3}, "data index must be an integer >= 0; got -3"),
        ({"index": 1.5}, "data index must be an integer >= 0; got 1.5"),
        ({"epoch": "0"}, "data epoch must be an integer >= 0; got '0'"),
    ],
)  # fmt: skip
def test_resume_refuses_a_data_position_the_loader_cannot_reach(copy, data, why):
    # 1000 ended in a bare StopIteration; -3 was taken.
    manifest = copy / "train_state.json"
    info = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**info, "data": {**info["data"], **data}}))
    before = _snapshot(copy)
    raises_exactly(RunFolderError, f"the checkpoint {manifest} and {info['tensors']} is corrupt "
                   f"or does not fit ({why})", _resume, copy)  # fmt: skip
    assert _snapshot(copy) == before


def test_resume_at_the_end_of_an_epoch(copy):
    manifest = copy / "train_state.json"
    info = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**info, "data": {**info["data"], "index": 4}}))
    assert rnnkit.fit(M(), _loader(), _loader(), out=copy, resume=True,
                      **_quiet(steps=4)).step == 4  # fmt: skip


# ---- 7. what loss and metrics return, and loaders used up after one pass ---------------


def _vector_loss(output, target):
    return F.cross_entropy(output, target, reduction="none")


@pytest.mark.parametrize(
    ("kwargs", "exc", "message"),
    [
        ({"loss": lambda o, t: 1.0}, TypeError, "rnnkit.fit: loss must return a one-element "
         "tensor (the batch's mean, as F.cross_entropy does); got float"),
        ({"loss": _vector_loss}, ValueError, "rnnkit.fit: loss must return a one-element tensor "
         "(the batch's mean, as F.cross_entropy does); got a tensor of shape (4,) "
         "(reduction='none'?)"),
        ({"loss": lambda o, t: torch.tensor(1.0)}, ValueError, "rnnkit.fit: loss must return a "
         "tensor computed from the model's output; got one that needs no gradient"),
        ({"metrics": {"first": lambda o, t: o[:, 0]}}, ValueError, "rnnkit.fit: "
         "metrics['first'] must return a number (a float or a one-element tensor); got a "
         "tensor of shape (4,)"),
        ({"metrics": {"name": lambda o, t: "good"}}, TypeError, "rnnkit.fit: metrics['name'] "
         "must return a number (a float or a one-element tensor); got str"),
    ],
)  # fmt: skip
def test_what_loss_and_metrics_return_is_checked_at_the_first_batch(tmp_path, kwargs, exc,
                                                                    message):  # fmt: skip
    # Each failed in Python's own words ("'float' object has no attribute 'detach'",
    # "only one element tensors can be converted"), a metric only at the first evaluation.
    out = tmp_path / "r"
    raises_exactly(exc, message, rnnkit.fit, M(), _loader(), _loader(), out=out,
                   **_quiet(steps=100, eval_every=100), **kwargs)  # fmt: skip
    # A run stopped before its first checkpoint, which the next run into it starts anew in.
    assert sorted(p.name for p in out.iterdir()) == [".lock", "config.json"]


def test_string_labels_with_the_default_loss_are_refused_naming_the_target(tmp_path):
    # Labels read as strings come out of pad_collate as a list; cross_entropy refused them
    # in its own words ("cross_entropy_loss(): argument 'target' (position 2) must be
    # Tensor, not list").
    words = ["yes" if y else "no" for y in Y.tolist()]
    batches = [(X[k : k + 4], words[k : k + 4]) for k in range(0, 16, 4)]
    out = tmp_path / "r"
    raises_exactly(TypeError, "rnnkit.fit: the default loss, F.cross_entropy, needs each "
                   "batch's target as a tensor of class indices; got list (encode the labels "
                   "as integers, or give loss=)", rnnkit.fit, M(), batches, out=out,
                   **_quiet())  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == [".lock", "config.json"]
    # A loss of the user's own may take any target.
    index = {"no": 0, "yes": 1}
    own = lambda o, t: F.cross_entropy(o, torch.tensor([index[w] for w in t]))  # noqa: E731
    assert rnnkit.fit(M(), batches, loss=own, out=tmp_path / "own", **_quiet()).step == 2


def test_a_validation_loss_of_another_shape_is_named(tmp_path):
    # Training sees a mean; validation, in eval mode, a vector.
    def loss(output, target):
        reduction = "mean" if torch.is_grad_enabled() else "none"
        return F.cross_entropy(output, target, reduction=reduction)

    raises_exactly(ValueError, "rnnkit.fit: loss must return a one-element tensor (the batch's "
                   "mean, as F.cross_entropy does); got a tensor of shape (4,) "
                   "(reduction='none'?)", rnnkit.fit, M(), _loader(), _loader(), loss=loss,
                   out=tmp_path / "r", **_quiet())  # fmt: skip


@pytest.mark.parametrize("which", ["train_loader", "val_loader"])
def test_an_iterator_as_loader_is_refused(tmp_path, which):
    # iter(list) ended the second epoch in a bare StopIteration.
    loaders = {"train_loader": _loader(), "val_loader": _loader()}
    loaders[which] = iter(list(_loader()))
    raises_exactly(TypeError, f"rnnkit.fit: {which} must be re-iterable (a DataLoader or a "
                   "list); got list_iterator, an iterator, which is used up after one pass",
                   rnnkit.fit, M(), **loaders, out=tmp_path / "r", **_quiet())  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_a_metric_may_return_a_number_of_any_kind(tmp_path):
    import numpy as np

    metrics = {"a": lambda o, t: 1, "b": lambda o, t: np.float32(0.5),
               "c": lambda o, t: torch.tensor([0.25])}  # fmt: skip
    summary = rnnkit.fit(M(), _loader(), _loader(), metrics=metrics, out=tmp_path / "r",
                         **_quiet())  # fmt: skip
    assert {k: summary.metrics[k] for k in "abc"} == {"a": 1.0, "b": 0.5, "c": 0.25}


def test_the_first_log_line_names_what_the_batches_came_in(tmp_path):
    """A DataLoader is named so; a list or generator of batches by its type."""
    for loader, data in ((_loader(), "DataLoaders"), (list(_loader()), "list of batches")):
        lines: list[str] = []
        rnnkit.fit(M(), loader, **{**_quiet(log=lines.append), "out": tmp_path / data})
        assert lines[0] == f"fit: your M on your {data}; run folder: {tmp_path / data}"


def test_a_loader_of_unequal_sequences_without_padding_names_pad_collate(tmp_path):
    """torch's default collate cannot stack series of different lengths; the refusal says
    what to give (a .ts file read with read_ts is such a dataset)."""
    from rnnkit.data.ts_format import read_ts, write_ts

    write_ts(tmp_path / "a.ts", [torch.randn(5 + i % 3, 3) for i in range(8)], [0, 1] * 4)
    loader = DataLoader(read_ts(tmp_path / "a.ts"), batch_size=4)
    raises_exactly(ValueError, "rnnkit.fit: train_loader could not make a batch (stack expects "
                   "each tensor to be equal size, but got [5, 3] at entry 0 and [6, 3] at entry "
                   "1); expected items of one size, or a DataLoader with "
                   "collate_fn=rnnkit.data.pad_collate for sequences of different lengths",
                   rnnkit.fit, M(), loader, out=tmp_path / "r", **_quiet())  # fmt: skip


def test_unlabelled_series_are_refused_by_the_default_loss(tmp_path):
    """read_ts(require_labels=False) labels every series -1: torch's refusal named no
    label ("Target -1 is out of bounds"). cross_entropy's ignored -100 is a target."""
    from rnnkit.data.ts_format import read_ts, write_ts

    write_ts(tmp_path / "u.ts", [torch.randn(5, 3) for _ in range(8)], None)
    data = read_ts(tmp_path / "u.ts", require_labels=False)

    class Pooled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            return self.head(x.mean(1))

    loader = DataLoader(data, batch_size=4, collate_fn=pad_collate)
    raises_exactly(ValueError, "rnnkit.fit: the default loss, F.cross_entropy, needs class "
                   "indices >= 0 as the target (or -100, ignored); got -1 in the first batch "
                   "(read_ts(require_labels=False) labels its series -1: they have no class to "
                   "train on)", rnnkit.fit, Pooled(), loader, out=tmp_path / "r",
                   **_quiet())  # fmt: skip
    ignored = [(X[k : k + 4], torch.tensor([0, -100, 1, -100])) for k in range(0, 16, 4)]
    assert rnnkit.fit(M(), ignored, out=tmp_path / "ok", **_quiet()).step == 2
