"""rnnkit.fit against a training loop written from docs/run-folder.md alone.

The reference below imports nothing of rnnkit.train: it is plain PyTorch doing what the
documentation and TrainConfig's help say — AdamW with decoupled decay on matrices only,
linear warm-up (at most a tenth of the budget) then a cosine decay to ``min_lr_ratio`` or a
constant rate, gradient-norm clipping, non-finite steps skipped and counted, and the best
of the evaluations every ``eval_every`` steps (and at the end) kept. Both run in float64
on the same models and loaders; the weights must agree bit for bit, the learning rates in
metrics.csv must be the formula's, and model.safetensors must hold the reference's best.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

import rnnkit

torch.set_num_threads(1)

# 20 samples in batches of 6: an epoch is 4 batches, the last of 2 samples.
N, BATCH, LENGTH, VOCAB = 20, 6, 5, 7
BATCHES_PER_EPOCH = 4

# ---- models and data --------------------------------------------------------------------


class GRUHead(nn.Module):
    """An rnnkit.GRU and a Linear: matrices, and biases that must not decay."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn, self.head = rnnkit.GRU(3, 5, batch_first=True), nn.Linear(5, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.rnn(x)[1][-1])


class Embedded(nn.Module):
    """An Embedding (a matrix: decayed), a GRU, a LayerNorm (gain and bias: not decayed)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 4)
        self.rnn = rnnkit.GRU(4, 5, batch_first=True)
        self.norm, self.head = nn.LayerNorm(5), nn.Linear(5, 3)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.head(self.norm(self.rnn(self.embed(tokens))[1][-1]))


def _model(kind: str) -> nn.Module:
    torch.manual_seed(11)
    model = GRUHead() if kind == "gru" else Embedded()
    with torch.no_grad():  # LayerNorm starts at 1 and 0: move it, so its decay would show
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.double()


def _data(kind: str, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    if kind == "gru":
        x = torch.randn(N, LENGTH, 3, generator=g, dtype=torch.float64)
        return TensorDataset(x, (x.sum((1, 2)) > 0).long())
    tokens = torch.randint(0, VOCAB, (N, LENGTH), generator=g)
    return TensorDataset(tokens, tokens[:, -1] % 3)


class Loss:
    """Cross-entropy; the training calls listed give a NaN loss, or a finite loss with a
    NaN gradient (d sqrt(x)/dx at 0). Evaluations run without grad and are never hit."""

    def __init__(self, nan_loss: tuple[int, ...] = (), nan_grad: tuple[int, ...] = ()) -> None:
        self.nan_loss, self.nan_grad, self.calls = nan_loss, nan_grad, 0

    def __call__(self, output: Tensor, target: Tensor) -> Tensor:
        loss = F.cross_entropy(output, target)
        if torch.is_grad_enabled():
            step, self.calls = self.calls, self.calls + 1
            if step in self.nan_loss:
                loss = loss * float("nan")
            if step in self.nan_grad:
                loss = loss + 0.0 * (output - output.detach()).abs().sqrt().sum()
        return loss


def accuracy(output: Tensor, target: Tensor) -> float:
    return float((output.argmax(-1) == target).double().mean())


# ---- the reference, from the documentation ----------------------------------------------


def documented_lr(k: int, c: dict[str, Any]) -> float:
    """The rate of step ``k`` (0-based) of a ``steps`` budget: a warm-up of
    min(warmup_steps, steps // 10) steps rising linearly from lr/warm-up to lr (step k
    uses lr * (k + 1) / warm-up), then lr, or a cosine over the whole budget from lr at
    progress 0 to lr * min_lr_ratio at progress 1, progress being k / steps."""
    warm = min(c["warmup_steps"], c["steps"] // 10)
    if k < warm:
        return c["lr"] * (k + 1) / warm
    if c["schedule"] == "constant":
        return c["lr"]
    m, progress = c["min_lr_ratio"], k / c["steps"]
    return c["lr"] * (m + (1 - m) * 0.5 * (1 + math.cos(math.pi * progress)))


def decays(p: Tensor) -> bool:
    """Matrices: every parameter of two or more dimensions, embedding tables included."""
    return p.dim() >= 2


@dataclass
class Reference:
    final: dict[str, Tensor]
    best: dict[str, Tensor] | None = None
    best_step: int | None = None
    best_value: float | None = None
    lr: dict[int, float] = field(default_factory=dict)  # step (1-based) -> its rate, if taken
    skipped: int = 0
    evaluations: dict[int, dict[str, float]] = field(default_factory=dict)


def _batches(loader: DataLoader) -> Iterator[Any]:
    while True:  # epoch after epoch, each a new pass over the loader
        yield from loader


@torch.no_grad()
def _validate(model: nn.Module, val: DataLoader, loss: Loss, metrics: dict) -> dict[str, float]:
    """Each batch weighed by its samples (the target's first dimension)."""
    model.eval()
    totals = {"loss": 0.0, **dict.fromkeys(metrics, 0.0)}
    count = 0
    for *inputs, target in val:
        out = model(*inputs)
        totals["loss"] += float(loss(out, target)) * len(target)
        for name, fn in metrics.items():
            totals[name] += fn(out, target) * len(target)
        count += len(target)
    model.train()
    return {k: v / count for k, v in totals.items()}


def reference(
    model: nn.Module,
    train: DataLoader,
    val: DataLoader | None,
    loss: Loss,
    c: dict[str, Any],
    *,
    metrics: dict[str, Callable[[Tensor, Tensor], float]] | None = None,
    monitor: str = "loss",
    higher_is_better: bool = False,
    lr_of: Callable[[int, dict[str, Any]], float] = documented_lr,
    decayed: Callable[[Tensor], bool] = decays,
    global_seed: int | None = None,
    stop_at: int | None = None,
) -> Reference:
    metrics = metrics or {}
    params = list(model.parameters())
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in params if decayed(p)]},
            {"params": [p for p in params if not decayed(p)], "weight_decay": 0.0},
        ],
        lr=c["lr"],
        weight_decay=c["weight_decay"],
    )
    ref = Reference(final={})
    recent: list[float] = []  # training losses since the last evaluation (no val loader)
    if global_seed is not None:
        # A loader without a generator of its own draws its order from torch's global one.
        torch.manual_seed(global_seed + 1)
    batches = _batches(train)
    for k in range(c["steps"] if stop_at is None else stop_at):
        *inputs, target = next(batches)
        rate = lr_of(k, c)
        for group in optimizer.param_groups:
            group["lr"] = rate
        value = loss(model(*inputs), target)
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, c["clip_norm"])
        finite = math.isfinite(float(value.detach()))
        if finite:
            recent.append(float(value.detach()))
        if finite and bool(torch.isfinite(norm)):
            optimizer.step()
            ref.lr[k + 1] = rate
        else:
            ref.skipped += 1
        step = k + 1
        if step % c["eval_every"] == 0 or step == c["steps"]:
            if val is None:
                scores = {"loss": sum(recent) / len(recent) if recent else math.nan}
                recent = []
            else:
                scores = _validate(model, val, loss, metrics)
            ref.evaluations[step] = scores
            score = scores[monitor]
            better = ref.best_value is None or (
                score > ref.best_value if higher_is_better else score < ref.best_value
            )
            if math.isfinite(score) and better:  # a tie keeps the earlier
                ref.best_value, ref.best_step = score, step
                ref.best = copy.deepcopy(model.state_dict())
    ref.final = copy.deepcopy(model.state_dict())
    return ref


# ---- running both -----------------------------------------------------------------------

BASE = {
    "steps": 20,
    "lr": 0.05,
    "weight_decay": 0.1,
    "schedule": "cosine",
    "warmup_steps": 0,
    "min_lr_ratio": 0.1,
    "clip_norm": 1e9,
    "eval_every": 5,
}


@dataclass
class Case:
    model: str = "gru"
    config: dict[str, Any] = field(default_factory=dict)
    val: bool = True
    nan_loss: tuple[int, ...] = ()
    nan_grad: tuple[int, ...] = ()
    monitor: str = "loss"
    shuffle: str = "no"  # "no", "generator" (the loader's own), "global" (fit's seed)

    @property
    def c(self) -> dict[str, Any]:
        return {**BASE, **self.config}


CASES = {
    # warm-up 5 capped at a tenth of 20 steps; decay on the GRU's and Linear's matrices
    "cosine-warmup-capped": Case(config={"warmup_steps": 5}),
    "cosine-to-zero-clipped": Case("embed", {"min_lr_ratio": 0.0, "clip_norm": 1e-3}),
    "cosine-warmup-embed": Case("embed", {"steps": 30, "warmup_steps": 3, "eval_every": 7}),
    # a rate too high: the best is an early evaluation; 20 is off the grid of 3
    "constant-warmup-no-decay": Case(config={"schedule": "constant", "warmup_steps": 2,
                                             "weight_decay": 0.0, "clip_norm": 0.5,
                                             "lr": 0.2, "eval_every": 3}),
    "constant-embed": Case("embed", {"schedule": "constant", "steps": 10, "lr": 0.02}),
    # 12 steps end exactly at the end of the third epoch, 10 in the middle of one
    "epoch-boundary": Case(config={"steps": 12, "eval_every": 4}),
    "nan-loss": Case(config={"steps": 15}, nan_loss=(6,)),
    "nan-loss-no-val": Case("embed", {"steps": 15}, val=False, nan_loss=(2, 7)),
    "nan-grad-no-val": Case(config={"steps": 15}, val=False, nan_grad=(3, 4)),
    "accuracy-ranked": Case("embed", {"steps": 24, "eval_every": 3}, monitor="accuracy"),
    "shuffled-by-its-generator": Case(config={"steps": 14}, shuffle="generator"),
    "shuffled-by-fit-seed": Case("embed", {"steps": 14, "seed": 5}, shuffle="global"),
}  # fmt: skip


def _loaders(case: Case) -> tuple[DataLoader, DataLoader | None]:
    data = _data(case.model, 1)
    shuffle = case.shuffle != "no"
    gen = torch.Generator().manual_seed(3) if case.shuffle == "generator" else None
    train = DataLoader(data, batch_size=BATCH, shuffle=shuffle, generator=gen)
    val = DataLoader(_data(case.model, 2), batch_size=BATCH) if case.val else None
    return train, val


def run_reference(case: Case, **kwargs: Any) -> Reference:
    train, val = _loaders(case)
    metrics = {"accuracy": accuracy} if case.monitor == "accuracy" else {}
    return reference(_model(case.model), train, val, Loss(case.nan_loss, case.nan_grad),
                     case.c, metrics=metrics, monitor=case.monitor,
                     higher_is_better=case.monitor == "accuracy",
                     global_seed=case.c.get("seed", 0), **kwargs)  # fmt: skip


@dataclass
class Fitted:
    out: Path
    summary: Any
    model: nn.Module


def run_fit(case: Case, out: Path, **kwargs: Any) -> Fitted:
    train, val = _loaders(case)
    model = _model(case.model)
    metrics = {"accuracy": accuracy} if case.monitor == "accuracy" else {}
    summary = rnnkit.fit(model, train, val, loss=Loss(case.nan_loss, case.nan_grad),
                         metrics=metrics, monitor=case.monitor, out=out, log_every=1,
                         log=lambda line: None, progress=io.StringIO(), **case.c,
                         **kwargs)  # fmt: skip
    return Fitted(out, summary, model)


_FITTED: dict[str, Fitted] = {}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Fitted]:
    """fit's run of a case, trained once for all the tests that read it."""

    def get(name: str) -> Fitted:
        if name not in _FITTED:
            _FITTED[name] = run_fit(CASES[name], tmp_path_factory.mktemp(name) / "run")
        return _FITTED[name]

    return get


def final_weights(out: Path) -> dict[str, Tensor]:
    """The weights of the run's last step, from the checkpoint its manifest names."""
    manifest = json.loads((out / "train_state.json").read_text())
    tensors = load_file(out / manifest["tensors"])
    return {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}


def csv_rows(out: Path, split: str, metric: str) -> dict[int, str]:
    with (out / "metrics.csv").open(newline="") as f:
        return {int(r["step"]): r["value"] for r in csv.DictReader(f)
                if r["split"] == split and r["metric"] == metric}  # fmt: skip


def differences(a: dict[str, Tensor], b: dict[str, Tensor]) -> list[str]:
    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k], b[k])]


# ---- the comparisons --------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_fit_trains_as_the_documented_loop(fitted, name):
    case, run = CASES[name], fitted(name)
    ref = run_reference(case)
    # the weights of the last step, and the best ones: bit for bit
    assert differences(final_weights(run.out), ref.final) == []
    assert ref.best is not None and run.summary.best["step"] == ref.best_step
    assert differences(load_file(run.out / "model.safetensors"), ref.best) == []
    assert differences(run.model.state_dict(), ref.best) == []  # fit loads the best back
    assert run.summary.skipped_steps == ref.skipped == len(case.nan_loss) + len(case.nan_grad)
    # metrics.csv: the rate of each step taken, and every evaluation
    assert csv_rows(run.out, "train", "lr") == {s: f"{v:.6g}" for s, v in ref.lr.items()}
    for metric in ref.evaluations[ref.best_step]:
        logged = csv_rows(run.out, "validation", metric)
        assert logged == {s: f"{m[metric]:.6g}" for s, m in ref.evaluations.items()}


def test_the_grid_covers_what_it_claims():
    """Each documented option is exercised at both of its kinds of values."""
    cs = [case.c for case in CASES.values()]
    assert {c["schedule"] for c in cs} == {"cosine", "constant"}
    warm = {min(c["warmup_steps"], c["steps"] // 10) for c in cs}
    assert 0 in warm and max(warm) > 1
    assert any(c["warmup_steps"] > c["steps"] // 10 for c in cs)  # the cap
    assert {c["min_lr_ratio"] for c in cs} == {0.0, 0.1}
    assert {c["weight_decay"] for c in cs} == {0.0, 0.1}
    assert min(c["clip_norm"] for c in cs) < 1e-2 and max(c["clip_norm"] for c in cs) > 1e6
    assert {c["steps"] % BATCHES_PER_EPOCH == 0 for c in cs} == {True, False}


# ---- resume: stopped between evaluations, continued to the same budget -------------------


@pytest.mark.parametrize("name", ["shuffled-by-fit-seed", "shuffled-by-its-generator"])
def test_a_run_stopped_mid_epoch_and_resumed_trains_as_the_documented_loop(tmp_path, name):
    """A stop (what SIGTERM does) at step 7, between evaluations and in an epoch's middle,
    then resume=True with the same budget: the reference, uninterrupted."""
    case = CASES[name]

    def stop_at_7(trainer: Any) -> None:
        if trainer.step == 7:
            trainer.request_stop("SIGTERM")

    first = run_fit(case, tmp_path / "run", on_step=stop_at_7)
    assert first.summary.step == 7 and first.summary.stopped_by == "SIGTERM"
    train, val = _loaders(case)
    model = _model(case.model)
    summary = rnnkit.fit(model, train, val, loss=Loss(), out=tmp_path / "run", resume=True,
                         log_every=1, log=lambda line: None, progress=io.StringIO(),
                         **case.c)  # fmt: skip
    ref = run_reference(case)
    assert summary.step == case.c["steps"]
    assert differences(final_weights(tmp_path / "run"), ref.final) == []
    assert summary.best["step"] == ref.best_step
    assert differences(model.state_dict(), ref.best) == []


def test_without_a_val_loader_a_stop_and_resume_ranks_as_the_run_never_stopped(tmp_path):
    """Without validation data the running training loss ranks the checkpoints: a stop's
    evaluation at step 7 scores the losses since step 5 but keeps them, and the checkpoint
    carries them, so step 10 averages steps 6-10 as in the run never stopped."""
    case = Case("embed", {"steps": 15}, val=False)

    def stop_at_7(trainer: Any) -> None:
        if trainer.step == 7:
            trainer.request_stop("SIGTERM")

    first = run_fit(case, tmp_path / "run", on_step=stop_at_7)
    assert first.summary.step == 7
    train, _ = _loaders(case)
    model = _model(case.model)
    summary = rnnkit.fit(model, train, None, loss=Loss(), out=tmp_path / "run", resume=True,
                         log_every=1, log=lambda line: None, progress=io.StringIO(),
                         **case.c)  # fmt: skip
    ref = run_reference(case)
    logged = csv_rows(tmp_path / "run", "validation", "loss")
    assert {s: logged[s] for s in ref.evaluations} == {
        s: f"{m['loss']:.6g}" for s, m in ref.evaluations.items()
    }
    assert summary.best["step"] == ref.best_step
    assert differences(model.state_dict(), ref.best) == []


# ---- the comparison can fail --------------------------------------------------------------


def _shifted(k: int, c: dict[str, Any]) -> float:
    return documented_lr(k + 1, c)  # step k at the rate of step k + 1


def _warm_from_zero(k: int, c: dict[str, Any]) -> float:
    warm = min(c["warmup_steps"], c["steps"] // 10)
    return c["lr"] * k / warm if k < warm else documented_lr(k, c)


def _uncapped(k: int, c: dict[str, Any]) -> float:
    return documented_lr(k, {**c, "steps": 10 * max(c["steps"], c["warmup_steps"])}) if (
        k < c["warmup_steps"]) else documented_lr(k, c)  # fmt: skip


def _cosine(c: dict[str, Any], progress: float) -> float:
    m = c["min_lr_ratio"]
    return c["lr"] * (m + (1 - m) * 0.5 * (1 + math.cos(math.pi * progress)))


def _cosine_after_warmup(k: int, c: dict[str, Any]) -> float:
    warm = min(c["warmup_steps"], c["steps"] // 10)  # the cosine spans the rest only
    return documented_lr(k, c) if k < warm else _cosine(c, (k - warm) / (c["steps"] - warm))


def _ends_at_the_floor(k: int, c: dict[str, Any]) -> float:
    warm = min(c["warmup_steps"], c["steps"] // 10)  # the last step at min_lr_ratio
    return documented_lr(k, c) if k < warm else _cosine(c, k / (c["steps"] - 1))


def _a_hair_higher(k: int, c: dict[str, Any]) -> float:
    return documented_lr(k, c) * (1 + 1e-9)


@pytest.mark.parametrize(
    ("name", "changed"),
    [
        ("cosine-warmup-embed", {"lr_of": _shifted}),
        ("cosine-warmup-embed", {"lr_of": _warm_from_zero}),
        ("cosine-warmup-capped", {"lr_of": _uncapped}),
        ("cosine-warmup-embed", {"lr_of": _cosine_after_warmup}),
        ("cosine-warmup-embed", {"lr_of": _ends_at_the_floor}),
        ("constant-embed", {"lr_of": _a_hair_higher}),
        ("cosine-warmup-embed", {"decayed": lambda p: True}),  # biases and gains decayed
        ("cosine-warmup-embed", {"decayed": lambda p: p.dim() >= 2 and p.shape != (VOCAB, 4)}),
    ],
)
def test_a_reference_changed_slightly_no_longer_matches(fitted, name, changed):
    """The comparison above is sharp enough to tell each of these from the documented loop."""
    changed_ref = run_reference(CASES[name], **changed)
    assert differences(final_weights(fitted(name).out), changed_ref.final)


def test_the_grid_covers_what_it_claims_beyond_options():
    """Bests before the last evaluation, ties (the earlier kept), both shuffles."""
    refs = {name: run_reference(case) for name, case in CASES.items()}
    assert any(r.best_step < max(r.evaluations) for r in refs.values())
    ranked = refs["accuracy-ranked"]
    tied = [s for s, m in ranked.evaluations.items() if m["accuracy"] == ranked.best_value]
    assert len(tied) > 1 and ranked.best_step == min(tied)
    assert any(c.c["steps"] % c.c["eval_every"] for c in CASES.values())  # an off-grid end
