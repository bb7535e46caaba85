"""Long-memory tasks: generators, baselines, goals, the model, and training on the one loop."""

from __future__ import annotations

import io
import math
import os
import re

import pytest
import torch

import rnnkit
from rnnkit import _options
from rnnkit.data.tasks import adding_problem, copy_memory, copy_memory_baseline, selective_copy
from rnnkit.models.memory import (
    MIN_LENGTH,
    MemoryModel,
    MemoryTaskConfig,
    baseline,
    goal,
    loss_and_metric,
    make_batch,
    reaches_goal,
)
from rnnkit.tasks import get_task
from rnnkit.tasks.memory import (
    AddingTask,
    CopyTask,
    FreshBatches,
    MemoryOptions,
    SelectiveCopyTask,
    versus_baseline,
)
from rnnkit.train import TrainConfig, train
from rnnkit.train.files import load_tensors

TASKS = ("adding", "copy", "selective-copy")


def quiet() -> dict:
    return {"log": lambda _: None, "progress": io.StringIO()}


def small(task: str, **options) -> dict:
    """Options of a model that trains in a blink."""
    return {"length": MIN_LENGTH[task], "hidden_size": 8, "batch_size": 8, "n_val": 16, **options}


# ---- the data ----------------------------------------------------------------------------


def test_adding_problem_targets_are_the_marked_sums():
    x, y = adding_problem(64, 30, generator=torch.Generator().manual_seed(0))
    assert x.shape == (30, 64, 2) and y.shape == (64,)
    marks = x[..., 1]
    assert torch.all(marks.sum(0) == 2)
    assert torch.all(marks[:15].sum(0) == 1)  # one mark in each half
    torch.testing.assert_close((x[..., 0] * marks).sum(0), y)


def test_copy_memory_layout_and_baseline():
    x, y = copy_memory(4, 50, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (70, 4)
    torch.testing.assert_close(x[:10], y[-10:])
    assert torch.all(x[59] == 9) and torch.all(x[10:59] == 0) and torch.all(y[:60] == 0)
    assert copy_memory_baseline(200) == pytest.approx(10 * math.log(8) / 220)
    # The baseline is what the best memoryless predictor scores: blanks, then uniform.
    logits = torch.full((70, 4, 10), -1e9)
    logits[:60, :, 0] = 0
    logits[60:, :, 1:9] = 0
    ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
    assert ce.item() == pytest.approx(copy_memory_baseline(50), rel=1e-6)


def test_selective_copy_keeps_the_data_tokens_in_order():
    x, y = selective_copy(8, 40, n_tokens=5, vocab=10, generator=torch.Generator().manual_seed(1))
    assert x.shape == (45, 8) and y.shape == (5, 8)
    assert torch.all(x[40:] == 9)
    for b in range(8):
        body = x[:40, b]
        assert torch.equal(body[body != 0], y[:, b])


@pytest.mark.parametrize("task", TASKS)
def test_a_process_keeps_its_rows_of_the_global_batch(task):
    config = MemoryTaskConfig(task=task, length=MIN_LENGTH[task])
    whole = FreshBatches(config, 8, seed=3, rows=slice(0, 8))
    second = FreshBatches(config, 8, seed=3, rows=slice(4, 8))
    for _ in range(2):
        (x, y), (x2, y2) = next(whole), next(second)
        assert torch.equal(x[:, 4:], x2) and torch.equal(y[..., 4:], y2)


def test_batches_continue_exactly_from_their_state():
    source = FreshBatches(MemoryTaskConfig(), 4, seed=0, rows=slice(0, 4))
    next(source)
    state = {k: v.clone() for k, v in source.state_dict().items()}
    expected = [next(source) for _ in range(2)]
    other = FreshBatches(MemoryTaskConfig(), 4, seed=99, rows=slice(0, 4))
    other.load_state_dict(state)
    for (x, y), (x2, y2) in zip(expected, [next(other) for _ in range(2)], strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2)


# ---- baselines, goals, options ----------------------------------------------------------


def test_goals_of_each_task():
    assert goal(MemoryTaskConfig(task="adding", length=10)) == 0.01
    copy = MemoryTaskConfig(task="copy", length=200)
    assert goal(copy) == pytest.approx(10 * math.log(8) / 220 / 100)
    assert not reaches_goal(copy, goal(copy)) and reaches_goal(copy, 0.99 * goal(copy))
    select = MemoryTaskConfig(task="selective-copy", length=64)
    assert reaches_goal(select, 0.99) and not reaches_goal(select, 0.98)


def test_baselines_and_how_a_result_is_shown_against_them():
    assert baseline(MemoryTaskConfig(task="adding")) == pytest.approx(1 / 6)
    assert baseline(MemoryTaskConfig(task="copy", length=50)) == copy_memory_baseline(50)
    assert baseline(MemoryTaskConfig(task="selective-copy", length=64)) == pytest.approx(1 / 14)
    assert versus_baseline(0.01, 1 / 6, False) == "baseline 0.1667, 17x below"
    assert versus_baseline(0.25, 1 / 6, False) == "baseline 0.1667, 1.5x above"
    assert versus_baseline(0.99, 1 / 14, True) == "chance 0.07143, 14x above"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "sorting"}, "task must be one of adding, copy, selective-copy; got 'sorting'"),
        ({"cell": "tcn"}, "cell must be one of rnn, lstm, gru, mingru, minlstm; got 'tcn'"),
        ({"length": 5}, "length must be at least 10 for the adding task"),
        ({"task": "selective-copy", "length": 20}, "length must be at least 32"),
        ({"hidden_size": 0}, "hidden_size must be a positive integer; got 0"),
    ],
)
def test_model_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        MemoryTaskConfig(**kwargs)


@pytest.mark.parametrize(
    ("task", "kwargs", "message"),
    [
        ("adding", {"cell": "tcn"}, "--cell must be one of rnn, lstm, gru, mingru, minlstm"),
        ("adding", {"hidden_size": 0}, "--hidden (hidden_size) must be an integer in [1, 65536]"),
        ("copy", {"n_val": 0}, "--n-val must be an integer in [1, 100000]; got 0"),
        ("adding", {"chrono": "no"}, "--chrono must be true or false; got 'no'"),
        ("adding", {"length": 5}, "--length must be at least 10 for the adding task"),
        ("copy", {"length": 9}, "--length must be at least 10 for the copy task"),
        ("selective-copy", {"length": 20}, "--length must be at least 32 for the selective-copy"),
    ],
)
def test_option_errors_name_the_flag(task, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        get_task(task)(MemoryOptions(**kwargs))


def test_a_bad_option_stops_training_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="--length must be at least 10 for the adding task"):
        train("adding", {"length": 3}, TrainConfig(steps=2), out=tmp_path / "r", **quiet())
    assert not (tmp_path / "r").exists()


def test_options_round_trip_and_reject_unknown_keys():
    options = MemoryOptions(length=40, cell="gru", chrono=False)
    data = _options.to_dict(options)
    assert CopyTask.parse_options(data, where="options") == options
    with pytest.raises(ValueError, match="unknown key"):
        CopyTask.parse_options({**data, "depth": 3}, where="options")


def test_the_registry_names_the_three_tasks():
    assert [get_task(t) for t in TASKS] == [AddingTask, CopyTask, SelectiveCopyTask]
    assert [(c.metric, c.higher_is_better) for c in (AddingTask, CopyTask, SelectiveCopyTask)] == [
        ("mse", False),
        ("cross_entropy", False),
        ("accuracy", True),
    ]


def test_default_training_is_the_long_memory_tasks_own():
    assert AddingTask.default_train() == TrainConfig(
        steps=2000,
        lr=1e-3,
        weight_decay=0.0,
        warmup_steps=0,
        schedule="constant",
        eval_every=100,
        clip_norm=1.0,
    )


def test_cosine_to_zero_is_half_a_cosine_over_the_steps():
    # What `--cosine` was: `--schedule cosine --min-lr-ratio 0`.
    cosine = AddingTask.default_train(steps=100, schedule="cosine", min_lr_ratio=0.0)
    for step in (0, 25, 50, 75, 100):
        expected = 1e-3 * 0.5 * (1 + math.cos(math.pi * step / 100))
        assert cosine.lr_at(step, step / 100) == pytest.approx(expected, abs=1e-15)
    assert AddingTask.default_train(steps=100).lr_at(99, 0.99) == 1e-3


# ---- the model ---------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_model_outputs_fit_the_targets(task):
    config = MemoryTaskConfig(task=task, length=MIN_LENGTH[task], hidden_size=8, cell="mingru")
    x, y = make_batch(config, 3, torch.Generator().manual_seed(0))
    model = MemoryModel(config)
    out = model(x)
    assert out.shape[:2] == x.shape[:2]
    width = {"adding": 1, "copy": 10, "selective-copy": 16}[task]
    assert out.size(-1) == width
    assert model(x, last=2).shape == (2, 3, width)
    loss, metric = loss_and_metric(config, model, x, y)
    assert loss.dim() == metric.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_chrono_initialisation_spreads_the_forget_bias_over_the_length():
    chrono = MemoryModel(MemoryTaskConfig(length=1000, cell="lstm", hidden_size=16))
    plain = MemoryModel(MemoryTaskConfig(length=1000, cell="lstm", hidden_size=16, chrono=False))
    assert chrono.state_dict().keys() == plain.state_dict().keys()
    assert not all(
        torch.equal(a, b)
        for a, b in zip(chrono.state_dict().values(), plain.state_dict().values(), strict=True)
    )


# ---- training on the one loop ------------------------------------------------------------


def test_a_short_run_beats_the_adding_baseline(tmp_path):
    run = tmp_path / "r"
    summary = train(
        "adding",
        {"length": 10, "cell": "gru", "hidden_size": 32},
        AddingTask.default_train(steps=300, eval_every=100, lr=1e-2),
        out=run,
        **quiet(),
    )
    assert [step for step, _, _ in summary.history] == [100, 200, 300]
    assert summary.step == 300 and summary.stopped_by is None
    assert summary.metrics["mse"] == summary.metrics["loss"] < 0.3 * (1 / 6)
    assert summary.best["metric"] == "mse"
    assert summary.lines[0].startswith("adding, T = 10, gru 1 x 32: mse ")
    assert "memoryless baseline 0.1667 (lower is better)" in summary.lines[0]
    assert summary.lines[1].startswith("goal mse < 0.01 ")
    for name in ("config.json", "model.safetensors", "metrics.csv", "train_state.json"):
        assert (run / name).is_file()
    model = rnnkit.load(run)
    assert isinstance(model, MemoryModel) and not model.training
    assert model.config == MemoryTaskConfig("adding", length=10, cell="gru", hidden_size=32)


def test_until_goal_stops_at_the_first_evaluation_that_reaches_it(tmp_path, monkeypatch):
    options = small("adding", cell="gru")
    config = AddingTask.default_train(steps=12, eval_every=2, lr=1e-2)
    full = train("adding", options, config, out=tmp_path / "full", **quiet())
    mses = [m["mse"] for _, _, m in full.history]
    # A goal just above the second evaluation's MSE: reached there, or at the first.
    level = mses[1] * (1 + 1e-6)
    first = next(step for step, _, m in full.history if m["mse"] < level)
    monkeypatch.setattr("rnnkit.models.memory.goal", lambda config: level)
    early = train(
        "adding", {**options, "until_goal": True}, config, out=tmp_path / "early", **quiet()
    )
    # The same seed and data: the same run, cut where it first reaches the goal.
    assert early.stopped_by == "goal" and early.step == first < 12
    assert [h[0] for h in early.history] == list(range(2, first + 1, 2))
    assert early.metrics["mse"] == full.history[first // 2 - 1][2]["mse"]
    assert f"first reached at step {first}" in early.lines[1]
    # Without --until-goal the goal is only reported.
    assert full.stopped_by is None and full.step == 12


@pytest.mark.parametrize(
    ("task", "cell"), [("adding", "lstm"), ("copy", "gru"), ("selective-copy", "mingru")]
)
def test_resume_after_a_stop_is_bitwise_identical(task, cell, tmp_path):
    options = small(task, cell=cell)
    task_cls = get_task(task)
    whole = train(
        task,
        options,
        task_cls.default_train(steps=8, eval_every=2),
        out=tmp_path / "whole",
        **quiet(),
    )
    train(
        task,
        options,
        task_cls.default_train(steps=4, eval_every=2),
        out=tmp_path / "part",
        **quiet(),
    )
    resumed = train(task, resume=tmp_path / "part", steps=8, **quiet())
    assert whole.step == resumed.step == 8
    assert [h[0] for h in resumed.history] == [2, 4, 6, 8]
    assert resumed.metrics == whole.metrics  # the last evaluation, exactly
    for name in ("model.safetensors", "train_state-00000008.safetensors"):
        a, b = load_tensors(tmp_path / "whole" / name), load_tensors(tmp_path / "part" / name)
        assert a.keys() == b.keys()
        assert "data.generator" in a or name == "model.safetensors"
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}: {key} differs"


# ---- rnnkit demo and the command line ----------------------------------------------------


def test_demo_trains_in_a_temporary_folder_and_leaves_the_cwd_alone(tmp_path, monkeypatch, capsys):
    from rnnkit.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--steps", "20", "--length", "10"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("adding problem, T = 10")
    assert "step 20: validation mse" in out
    assert os.listdir(tmp_path) == []


def test_demo_keeps_its_run_with_out(tmp_path):
    from rnnkit.demo import run_demo

    lines: list[str] = []
    history = run_demo(steps=20, length=10, out=tmp_path / "demo", log=lines.append)
    assert len(history) == 1 and history[0] > 0
    assert lines[-1].startswith(f"run saved to {tmp_path / 'demo'}")
    assert isinstance(rnnkit.load(tmp_path / "demo"), MemoryModel)


def test_demo_refuses_a_length_too_short_in_one_line(capsys):
    from rnnkit.cli import main

    assert main(["demo", "--length", "3", "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnkit demo: error: --length must be at least 10 for the adding task")
    assert "\n" not in err


def test_cli_trains_a_task_into_a_run_folder(tmp_path):
    from rnnkit.cli import main

    out = tmp_path / "run"
    argv = [
        "train",
        "copy",
        "--length",
        "10",
        "--cell",
        "minlstm",
        "--hidden",
        "16",
        "--steps",
        "4",
        "--eval-every",
        "2",
        "--no-chrono",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    model = rnnkit.load(out)
    assert isinstance(model, MemoryModel)
    assert model.config == MemoryTaskConfig("copy", 10, "minlstm", 16, chrono=False)


def test_cli_option_errors_are_one_line(capsys):
    from rnnkit.cli import main

    assert main(["train", "adding", "--length", "3", "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnkit train: error: ")
    assert "--length must be at least 10 for the adding task" in err and "\n" not in err
