"""Gradient flow measurements against cases with a known answer."""

from __future__ import annotations

import pytest
import torch
from torch.func import jacrev

import rnnkit
from rnnkit.explain import gradient_flow as gf
from rnnkit.explain.gates import lstm_gates

T, B, H = 12, 3, 5


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(T, B, 2, generator=gen, dtype=torch.float64)  # >= 0, as linear_rnn needs
    return x, torch.rand(B, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("a", [0.5, 0.9, 1.3])
def test_linear_rnn_gradient_decays_as_a_to_the_k(a: float) -> None:
    layer = gf.linear_rnn(a, H)
    x, y = _inputs()
    head = torch.nn.Linear(H, 1, dtype=torch.float64)
    norms = gf.state_gradients(layer, head, x, y)["h"]  # (T, B)
    ratio = norms / norms[-1]
    for k in range(T):
        expected = torch.full((B,), a**k, dtype=torch.float64)
        torch.testing.assert_close(ratio[T - 1 - k], expected, rtol=1e-12, atol=0)
    curves = gf.jacobian_products(layer, x[:, 0])
    expected = torch.tensor([a**k for k in range(T)], dtype=torch.float64)
    torch.testing.assert_close(curves["state"], expected, rtol=1e-12, atol=0)


def test_linear_rnn_rejects_non_positive_a() -> None:
    with pytest.raises(ValueError, match="a must be > 0"):
        gf.linear_rnn(0.0, H)


@pytest.mark.parametrize("name", gf.MODELS)
def test_step_loop_gradient_equals_the_layer_gradient(name: str) -> None:
    # The measurement runs the cell step by step; the layer's own forward must agree.
    torch.manual_seed(1)
    layer = gf.build_layer(name, H, "default", T).double()
    head = torch.nn.Linear(H, 1, dtype=torch.float64)
    x, y = _inputs()
    norms = gf.state_gradients(layer, head, x, y)
    out, _ = layer(x)
    last = out[-1].detach().requires_grad_()
    ((head(last).squeeze(-1) - y) ** 2).sum().backward()
    torch.testing.assert_close(norms["h"][-1], last.grad.norm(dim=-1))
    assert set(norms) == ({"h", "c"} if name == "LSTM" else {"h"})


def _lstm(w_hh_scale: float = 1.0) -> rnnkit.LSTM:
    torch.manual_seed(2)
    layer = rnnkit.LSTM(2, H, dtype=torch.float64)
    with torch.no_grad():
        layer.weight_hh_l0.mul_(w_hh_scale * 3)  # strong recurrence: large indirect terms
    return layer


def test_lstm_partial_dc_dc_is_f_and_the_indirect_terms_match_the_formula() -> None:
    layer = _lstm()
    x, _ = _inputs()
    jacobians, states = gf.step_jacobians(layer, x[:, 0])
    cell, p = layer.cells[0], layer.cell_parameters(0, 0)
    gx = cell.project(p, x[:, 0:1])
    W_hi, W_hf, W_hc, _ = p["weight_hh"].split(H)
    for t in range(1, T):
        h_prev, c_prev = states[t - 1][:H], states[t - 1][H:]
        i, f, g, _ = (v[0] for v in lstm_gates(cell, p, gx[t], h_prev[None]))
        J = jacobians[t]
        # Holding h^{t-1} fixed, ∂c^t/∂c^{t-1} is the chapter's f^t (10.14), exactly.
        torch.testing.assert_close(J[H:, H:], torch.diag(f))
        # ∂c^t/∂h^{t-1}: the paths through f, i and c̃ that 10.14 leaves out.
        indirect = (
            torch.diag(c_prev * f * (1 - f)) @ W_hf
            + torch.diag(g * i * (1 - i)) @ W_hi
            + torch.diag(i * (1 - g**2)) @ W_hc
        )
        torch.testing.assert_close(J[H:, :H], indirect.detach())


def test_lstm_total_dc_dc_matches_autograd_through_the_cell() -> None:
    layer = _lstm()
    x, _ = _inputs()
    xs = x[:, 0]
    curves = gf.jacobian_products(layer, xs)
    cell, p = layer.cells[0], layer.cell_parameters(0, 0)
    gx = cell.project(p, xs.unsqueeze(1)).detach()
    _, states = gf.step_jacobians(layer, xs)
    f, o, _ = gf._lstm_values(layer, xs, states)
    for k in (1, 4, T - 1):
        j = T - 1 - k

        def run_from(c_j: torch.Tensor, j: int = j) -> torch.Tensor:
            state = (o[j][None] * torch.tanh(c_j)[None], c_j[None])  # h^j = o^j ∘ tanh(c^j)
            for t in range(j + 1, T):
                state = cell.step(p, gx[t], state, None)
            return state[1][0]

        with torch.enable_grad():
            full = jacrev(run_from)(states[j][H:])
        assert curves["dc/dc"][k] == pytest.approx(
            float(torch.linalg.matrix_norm(full.detach(), ord=2))
        )
        direct = torch.stack([f[t] for t in range(j + 1, T)]).prod(0).max()
        assert curves["direct"][k] == pytest.approx(float(direct))


def test_without_recurrent_weights_the_chapter_formula_is_exact() -> None:
    layer = _lstm(w_hh_scale=0.0)
    x, _ = _inputs()
    curves = gf.jacobian_products(layer, x[:, 0])
    torch.testing.assert_close(curves["dc/dc"], curves["direct"])
    assert gf.direct_term_gap(layer, x[:, 0]) == pytest.approx(0.0, abs=1e-12)
    assert gf.direct_term_gap(_lstm(), x[:, 0]) > 0.05


@pytest.mark.parametrize("init", gf.INITS)
def test_build_layer_inits(init: str) -> None:
    lstm = gf.build_layer("LSTM", 4, init, 10)
    rnn = gf.build_layer("RNN tanh", 4, init, 10)
    b_f = (lstm.bias_ih_l0 + lstm.bias_hh_l0)[4:8]
    if init == "forget-bias":
        torch.testing.assert_close(b_f, torch.ones(4))
    if init == "chrono":
        assert bool((b_f >= 0).all()) and bool((b_f <= torch.log(torch.tensor(9.0))).all())
    if init == "orthogonal":
        for w in (rnn.weight_hh_l0, *lstm.weight_hh_l0.split(4)):
            torch.testing.assert_close(w @ w.T, torch.eye(4), atol=1e-5, rtol=0)


def test_build_layer_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="init must be one of"):
        gf.build_layer("LSTM", 4, "xavier", 10)
    with pytest.raises(ValueError, match="model must be one of"):
        gf.build_layer("TCN", 4, "default", 10)


def test_run_gradient_flow_tiny(tmp_path) -> None:
    result = gf.run_gradient_flow(length=6, hidden=4, steps=2, batch=2)
    assert list(result.stages) == ["initialisation", "after 2 training steps"]
    for stage in result.stages.values():
        assert set(stage.grad) == {*gf.MODELS, "LSTM c"}
        assert all(len(v) == 6 for v in (*stage.grad.values(), *stage.jac.values()))
        assert all(stage.grad[m][0] == pytest.approx(1.0) for m in gf.MODELS)
    a, k, got, want = result.linear_check
    assert got == pytest.approx(want, rel=1e-12) and want == pytest.approx(a**k)
    assert "a^k" in result.report()
    path = result.plot(tmp_path / "flow.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
