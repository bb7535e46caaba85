"""docs/chapter.md states a few values the code decides; each is checked here against the code.

- compare's largest --length with its defaults (300 training steps) and with --steps 0;
- what `draw lstm --hidden 32` relabels (the input weights stay 4H×I, not 4H×H);
- the ∏ f figure of 10.14 is the largest unit's product, not 0.5^k.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from rnnkit.explain import compare, draw
from rnnkit.explain import gradient_flow as gf

PAGE = (Path(__file__).resolve().parent.parent / "docs" / "chapter.md").read_text(encoding="utf-8")


def _compare_check(length: int, steps: int) -> None:
    sizes = {"input_size": 32, "hidden": 64, "batch": 32, "scaling_lengths": 400}
    compare.check_memory({**sizes, "length": length}, steps, shown="(25, 50, 100, 200, 400)")


@pytest.mark.parametrize(("steps", "largest"), [(300, 499), (0, 2998)])
def test_compare_largest_length_is_the_one_the_page_states(steps: int, largest: int) -> None:
    assert "`--length` at most 499 with the defaults" in PAGE
    assert "2998 with `--steps 0`" in PAGE
    _compare_check(largest, steps)  # accepted
    with pytest.raises(ValueError, match=f" must be at most {largest} "):
        _compare_check(largest + 1, steps)


def test_draw_lstm_hidden_32_relabels_the_input_weights_4h_by_i() -> None:
    assert "`weight_ih_l0` 4H×I = 128×8 (and `weight_hh_l0` 4H×H = 128×32)" in PAGE
    report = draw.describe(draw.build("lstm", hidden=32)).report()
    assert re.search(r"^  weight_ih_l0 +4H×I = 128×8$", report, re.MULTILINE)
    assert re.search(r"^  weight_hh_l0 +4H×H = 128×32$", report, re.MULTILINE)
    assert re.search(r"^    i\^t +σ +rows 0:32 ", report, re.MULTILINE)


def test_the_direct_term_is_the_largest_units_product_of_forget_gates() -> None:
    # ‖diag(∏ f)‖₂ is the largest unit's product, which the page quotes next to 0.5^k.
    assert "‖diag(∏ f)‖₂, is 6.8e−7 at k = 25; 0.5^25 = 3.0e−8" in PAGE
    torch.manual_seed(0)
    layer = gf.build_layer("LSTM", 6, "default", 12).double()
    x = torch.rand(12, 2, dtype=torch.float64)
    curves = gf.jacobian_products(layer, x)
    _, states = gf.step_jacobians(layer, x)
    f, _, _ = gf._lstm_values(layer, x, states)
    for k in (1, 5, 11):
        product = f[12 - k :].prod(0)
        assert curves["direct"][k] == pytest.approx(float(product.max()), rel=1e-12)


@pytest.mark.parametrize("name", ["RNN tanh", "RNN relu"])
def test_the_elman_step_jacobian_is_the_one_the_page_gives(name: str) -> None:
    # 10.14 as corrected: ∂h^t/∂h^{t−1} = diag(1 − (h^t)²) W_hh (ReLU: diag(1[a^t > 0]) W_hh),
    # rows of W_hh scaled, not W_hh diag(·); held against torch.func.jacrev of rnnkit's step.
    assert "∂h^t/∂h^{t−1} = diag(1 − (h^t)²) W_hh          (ReLU: diag(1[a^t > 0]) W_hh)" in PAGE
    torch.manual_seed(1)
    layer = gf.build_layer(name, 5, "default", 8).double()
    with torch.no_grad():
        layer.weight_hh_l0.mul_(3.0)  # large enough that the two orders differ visibly
    x = torch.randn(8, 2, dtype=torch.float64)
    jacobians, states = gf.step_jacobians(layer, x)
    W_hh = layer.weight_hh_l0.detach()
    W_ih, b = layer.weight_ih_l0.detach(), (layer.bias_ih_l0 + layer.bias_hh_l0).detach()
    for t in range(1, 8):
        h_prev, h = states[t - 1], states[t]
        a = x[t] @ W_ih.T + b + h_prev @ W_hh.T
        slope = 1 - h**2 if name == "RNN tanh" else (a > 0).double()
        torch.testing.assert_close(jacobians[t], torch.diag(slope) @ W_hh, rtol=1e-12, atol=1e-14)
        assert not torch.allclose(jacobians[t], W_hh @ torch.diag(slope))
