"""Parameter counts, the equal-budget hidden size and the comparison run."""

from __future__ import annotations

import pytest
from torch import nn

import rnnkit
from rnnkit.explain.compare import (
    CellKind,
    available_cells,
    count_parameters,
    hidden_for_budget,
    run_compare,
)


@pytest.mark.parametrize(("name", "gates"), [("RNN tanh", 1), ("GRU", 3), ("LSTM", 4)])
def test_parameter_counts_follow_the_gate_blocks(name: str, gates: int) -> None:
    kind = next(k for k in available_cells() if k.name == name)
    I, H = 7, 11
    assert count_parameters(kind.build(I, H)) == gates * H * (I + H) + 2 * gates * H


def test_hidden_for_budget_is_the_closest() -> None:
    budget = count_parameters(rnnkit.LSTM(2, 64))
    for kind in available_cells():
        h = hidden_for_budget(kind, 2, budget)
        gap = abs(count_parameters(kind.build(2, h)) - budget)
        for other in (h - 1, h + 1):
            assert gap <= abs(count_parameters(kind.build(2, other)) - budget)
    lstm = next(k for k in available_cells() if k.name == "LSTM")
    assert hidden_for_budget(lstm, 2, budget) == 64
    gru = next(k for k in available_cells() if k.name == "GRU")
    assert hidden_for_budget(gru, 2, budget) == 74  # 3·74·76 + 6·74 = 17316 ≈ 17408


def test_hidden_for_budget_of_a_layer_without_recurrent_matrix() -> None:
    # A layer whose count is linear in H (no H² term) is solved too.
    kind = CellKind("Linear", lambda i, h: nn.Linear(i, h, bias=False))
    assert hidden_for_budget(kind, 5, 50) == 10


def test_run_compare_tiny(tmp_path) -> None:
    extra = CellKind("RNN relu", lambda i, h: rnnkit.RNN(i, h, nonlinearity="relu"))
    result = run_compare(
        hidden=8,
        input_size=2,
        length=5,
        batch=2,
        repeats=1,
        steps=2,
        cells=[*available_cells(), extra],
        scaling_lengths=(2, 4),
    )
    names = [r.name for r in result.equal_hidden]
    assert names[:3] == ["RNN tanh", "GRU", "LSTM"] and names[-1] == "RNN relu"
    assert [r.params for r in result.equal_hidden[:3]] == [
        count_parameters(layer) for layer in (rnnkit.RNN(2, 8), rnnkit.GRU(2, 8), rnnkit.LSTM(2, 8))
    ]
    assert [r.hidden for r in result.equal_budget][:3] == [18, 9, 8]  # H² + 4H ≈ 384 = 4·8·10 + 64
    assert all(r.train_ms > 0 and r.infer_ms > 0 for r in result.equal_hidden)
    assert all(r.mse is not None and r.mse >= 0 for r in result.equal_budget)
    assert result.scaling_lengths == [2, 4]
    assert list(result.scaling) == names and all(len(v) == 2 for v in result.scaling.values())
    text = result.report()
    assert "equal parameter budget" in text and "RNN relu" in text and "T=4" in text
    path = result.plot(tmp_path / "compare.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_compare_embeds_the_task_into_a_wider_input(tmp_path) -> None:
    gru = next(k for k in available_cells() if k.name == "GRU")
    result = run_compare(
        hidden=4,
        input_size=6,
        length=4,
        batch=2,
        repeats=1,
        steps=1,
        cells=[gru],
        scaling_lengths=(),
    )
    assert result.scaling == {}
    assert result.equal_hidden[0].params == count_parameters(rnnkit.GRU(6, 4))
    assert result.equal_budget[0].hidden == hidden_for_budget(
        gru, 6, count_parameters(rnnkit.LSTM(6, 4))
    )
    assert "input size I = 6" in result.report()


def test_run_compare_checks_arguments() -> None:
    with pytest.raises(ValueError, match="compare: hidden must be >= 1; got 0"):
        run_compare(hidden=0)
    with pytest.raises(ValueError, match="compare: input_size must be >= 1; got 0"):
        run_compare(input_size=0)
