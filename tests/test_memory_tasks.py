"""Long-memory tasks: generators, baselines, configuration errors, a short training run."""

from __future__ import annotations

import math

import pytest
import torch

from rnnkit.data.tasks import adding_problem, copy_memory, copy_memory_baseline, selective_copy
from rnnkit.models.memory import (
    MemoryTaskConfig,
    baseline,
    goal,
    lr_factor,
    reaches_goal,
    train_memory_task,
)


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


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "sorting"}, "task must be one of adding, copy, selective-copy; got 'sorting'"),
        ({"cell": "tcn"}, "cell must be one of rnn, lstm, gru, mingru, minlstm; got 'tcn'"),
        ({"length": 5}, "length must be at least 10 for the adding task"),
        ({"task": "selective-copy", "length": 20}, "length must be at least 32"),
        ({"hidden_size": 0}, "hidden_size must be a positive integer; got 0"),
        ({"lr": 0.0}, "lr must be > 0; got 0.0"),
    ],
)
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        MemoryTaskConfig(**kwargs)


def test_config_round_trips_and_rejects_unknown_keys():
    config = MemoryTaskConfig(task="copy", length=40, cell="gru")
    assert MemoryTaskConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown key"):
        MemoryTaskConfig.from_dict({**config.to_dict(), "depth": 3})


def test_a_short_run_beats_the_adding_baseline():
    config = MemoryTaskConfig(
        task="adding", length=10, cell="gru", hidden_size=32, steps=300, eval_every=100, lr=1e-2
    )
    result = train_memory_task(config, log=lambda _: None)
    assert result["baseline"] == pytest.approx(baseline(config))
    assert result["final"] < 0.3 * result["baseline"]
    assert result["metric"] == "mse" and result["steps"] == 300
    assert result["goal"] == 0.01 and [row[0] for row in result["history"]] == [100, 200, 300]


def test_until_goal_stops_at_the_first_evaluation_that_reaches_it():
    config = MemoryTaskConfig(
        task="adding", length=10, cell="gru", hidden_size=32, steps=2000, eval_every=50, lr=1e-2
    )
    full = train_memory_task(config, log=lambda _: None)
    assert full["goal_step"] is not None and full["goal_step"] < 2000
    first = next(step for step, mse, _ in full["history"] if mse < 0.01)
    assert full["goal_step"] == first and full["steps"] == 2000
    early = train_memory_task(
        MemoryTaskConfig(**{**config.to_dict(), "until_goal": True}), log=lambda _: None
    )
    # The same seed and data: the same run, cut where it first reaches the goal.
    assert early["steps"] == early["goal_step"] == first
    assert early["final"] == pytest.approx(full["history"][len(early["history"]) - 1][1])


def test_cosine_schedule_runs_from_lr_to_zero():
    flat = MemoryTaskConfig(steps=100)
    assert lr_factor(flat, 0) == lr_factor(flat, 100) == 1.0
    cosine = MemoryTaskConfig(steps=100, cosine=True)
    assert lr_factor(cosine, 0) == 1.0
    assert lr_factor(cosine, 50) == pytest.approx(0.5)
    assert lr_factor(cosine, 100) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(cosine, 25) > lr_factor(cosine, 75)
    # Wired into training: the second step of a 2-step cosine run is taken at half the rate.
    runs = [
        train_memory_task(
            MemoryTaskConfig(length=10, steps=2, eval_every=1, lr=0.1, cosine=c), log=lambda _: None
        )
        for c in (False, True)
    ]
    assert runs[0]["history"][0][1] == runs[1]["history"][0][1]
    assert runs[0]["history"][1][1] != runs[1]["history"][1][1]


def test_goals_of_each_task():
    assert goal(MemoryTaskConfig(task="adding", length=10)) == 0.01
    copy = MemoryTaskConfig(task="copy", length=200)
    assert goal(copy) == pytest.approx(10 * math.log(8) / 220 / 100)
    assert not reaches_goal(copy, goal(copy)) and reaches_goal(copy, 0.99 * goal(copy))
    select = MemoryTaskConfig(task="selective-copy", length=64)
    assert reaches_goal(select, 0.99) and not reaches_goal(select, 0.98)


def test_cli_trains_a_task_and_saves_its_result(tmp_path, capsys):
    from rnnkit.cli import main

    out = tmp_path / "run"
    argv = [
        "train",
        "--task",
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
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "copy, T = 10, minlstm 1 x 16: cross-entropy" in text
    assert (out / "config.json").is_file() and (out / "result.json").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--task", "adding", "--length", "3"], "length must be at least 10 for the adding task"),
        (["--task", "copy", "--seq-len", "5"], "--seq-len: not an option of --task copy"),
        (
            ["--length", "50", "--steps", "1"],
            "--length, --no-chrono, --until-goal, --cosine: only for --task "
            "adding|copy|selective-copy",
        ),
    ],
)
def test_cli_errors_are_one_line(argv, message, capsys):
    from rnnkit.cli import main

    assert main(["train", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("rnnkit train: error: ") and message in err
    assert "\n" not in err
