"""A cell of one's own on rnnkit's base classes, run everywhere rnnkit's cells run.

Each cell is checked against a plain Python loop over its own ``step``: a layer built from
it (``cell_class``), on every backend that takes it, with lengths, bidirectional and
stacked, and a ``Stream`` over it. A cell that subclasses one of rnnkit's and changes its
step must not run on the kernels of the cell it came from: those compute the parent's
equations, not the new ones.
"""

from __future__ import annotations

import re
import warnings
from typing import ClassVar

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import rnnkit
from rnnkit.cells.base import Params, RecurrentCell, State
from rnnkit.layers.base import RecurrentLayer


class ResetBeforeGRUCell(rnnkit.GRUCell):
    """Cho et al. 2014's GRU: the reset gate multiplies h^{t-1} before the product."""

    def recur(self, p: Params, gx: Tensor, state: State, mask: Tensor | None) -> State:
        (h_prev,) = state
        w_r, w_z, w_n = p["weight_hh"].chunk(3)
        b_r, b_z, b_n = p["bias_hh"].chunk(3)
        x_r, x_z, x_n = gx.chunk(3, dim=-1)
        h_in = self.masked(h_prev, mask)
        r = torch.sigmoid(x_r + F.linear(h_in, w_r, b_r))
        z = torch.sigmoid(x_z + F.linear(h_in, w_z, b_z))
        n = torch.tanh(x_n + F.linear(r * h_in, w_n, b_n))
        return ((1 - z) * n + z * h_prev,)


class PeepholeLSTMCell(rnnkit.LSTMCell):
    """Gers & Schmidhuber 2000: the gates also read the cell state."""

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        H = self.hidden_size
        return {**super().parameter_shapes(), "w_ci": (H,), "w_cf": (H,), "w_co": (H,)}

    def recur(self, p: Params, gx: Tensor, state: State, mask: Tensor | None) -> State:
        h_prev, c_prev = state
        gh = F.linear(self.masked(h_prev, mask), p["weight_hh"], p.get("bias_hh"))
        a_i, a_f, a_c, a_o = (gx + gh).chunk(4, dim=-1)
        i = torch.sigmoid(a_i + p["w_ci"] * c_prev)
        f = torch.sigmoid(a_f + p["w_cf"] * c_prev)
        c = f * c_prev + i * torch.tanh(a_c)
        o = torch.sigmoid(a_o + p["w_co"] * c)
        return (o * torch.tanh(c), c)


class IndRNNCell(RecurrentCell):
    """Li et al. 2018: h^t = relu(W x^t + b + u ∘ h^{t-1}); no kind named."""

    num_gates: ClassVar[int] = 1

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = super().parameter_shapes()
        shapes["weight_hh"] = (self.hidden_size,)  # u: one recurrent weight per unit
        shapes.pop("bias_hh", None)
        return shapes

    def recur(self, p: Params, gx: Tensor, state: State, mask: Tensor | None) -> State:
        (h_prev,) = state
        return (torch.relu(gx + p["weight_hh"] * self.masked(h_prev, mask)),)


class TanhMinGRUCell(rnnkit.MinGRUCell):
    """minGRU with its candidate through tanh: new coefficients, the same scan."""

    def coefficients(self, p: Params, gx: Tensor) -> tuple[Tensor, Tensor]:
        a_z, h_tilde = gx.chunk(2, dim=-1)
        z = torch.sigmoid(a_z)
        return 1 - z, z * torch.tanh(h_tilde)


class OrthogonalLSTMCell(rnnkit.LSTMCell):
    """Only the initialisation changes: the LSTM's equations, and torch's kernels."""

    def init_parameters(self, p: Params) -> None:
        super().init_parameters(p)
        with torch.no_grad():
            for block in p["weight_hh"].chunk(4):
                nn.init.orthogonal_(block)


CUSTOM = [ResetBeforeGRUCell, PeepholeLSTMCell, IndRNNCell, TanhMinGRUCell]


def _layer_class(cell: type[RecurrentCell]) -> type[RecurrentLayer]:
    return type(cell.__name__.removesuffix("Cell"), (RecurrentLayer,), {"cell_class": cell})


def _loop(layer: RecurrentLayer, x: Tensor, lengths: list[int]) -> tuple[Tensor, list[Tensor]]:
    """Every layer, direction and sequence one step at a time through ``cell.step``."""
    T, B, _ = x.shape
    inp, finals = x, []
    for k, cell in enumerate(layer.cells):
        outs = []
        for d in range(layer.num_directions):
            p = layer.cell_parameters(k, d)
            out = x.new_zeros(T, B, cell.output_size)
            ends = []
            for b in range(B):
                state = tuple(x.new_zeros(1, size) for size in cell.state_sizes)
                steps = range(lengths[b] - 1, -1, -1) if d else range(lengths[b])
                for t in steps:
                    state = cell.step(p, cell.project(p, inp[t, b : b + 1]), state, None)
                    out[t, b] = state[0][0]
                ends.append(state)
            outs.append(out)
            finals.append([torch.cat([e[j] for e in ends]) for j in range(len(ends[0]))])
        inp = torch.cat(outs, dim=-1)
    return inp, [torch.stack([f[j] for f in finals]) for j in range(len(finals[0]))]


def _states(state: Tensor | tuple[Tensor, ...]) -> list[Tensor]:
    return list(state) if isinstance(state, tuple) else [state]


@pytest.mark.parametrize("cell", CUSTOM, ids=lambda c: c.__name__)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_layer_of_a_custom_cell_equals_the_loop_over_its_step(cell, bidirectional):
    torch.manual_seed(0)
    layer = _layer_class(cell)(3, 4, num_layers=2, bidirectional=bidirectional)
    layer = layer.double()
    x = torch.randn(6, 3, 3, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rnnkit.PerformanceWarning)
        for given in (None, [6, 4, 1]):
            out, state = layer(x, lengths=given)
            expected_out, expected_state = _loop(layer, x, given or [6, 6, 6])
            torch.testing.assert_close(out, expected_out, rtol=0, atol=1e-12)
            for s, e in zip(_states(state), expected_state, strict=True):
                torch.testing.assert_close(s, e, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", CUSTOM, ids=lambda c: c.__name__)
def test_a_stream_over_a_custom_cell_equals_the_whole_call(cell):
    torch.manual_seed(0)
    layer = _layer_class(cell)(3, 4, num_layers=2).double()
    x = torch.randn(7, 2, 3, dtype=torch.float64)
    expected, _ = _loop(layer, x, [7, 7])
    stream = rnnkit.Stream(layer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rnnkit.PerformanceWarning)
        chunks = [stream(x[:1]), stream.step(x[1])[None], stream(x[2:5]), stream(x[5:])]
    torch.testing.assert_close(torch.cat(chunks), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", [ResetBeforeGRUCell, PeepholeLSTMCell])
def test_a_subclass_that_changes_the_step_is_not_run_on_its_parents_kernels(cell):
    layer = _layer_class(cell)(3, 4)
    x = torch.zeros(5, 2, 3)
    assert layer.backend_for(x).name == "reference"
    assert cell.kind == f"{__name__}.{cell.__qualname__}"
    name = type(layer).__name__
    expected = (
        f"{name}: backend='native' cannot run this call exactly (torch has no fused kernel "
        f"for {cell.kind}); use backend='auto' or 'reference'"
    )
    with pytest.raises(ValueError, match="^" + re.escape(expected) + "$"):
        _layer_class(cell)(3, 4, backend="native")(x)


def test_a_cell_without_a_kind_of_its_own_is_named_by_its_class():
    assert IndRNNCell.kind == f"{__name__}.IndRNNCell"
    assert IndRNNCell(2, 3).kind == IndRNNCell.kind


def test_a_subclass_that_keeps_the_step_keeps_its_kind_and_kernels():
    assert OrthogonalLSTMCell.kind == "LSTM"
    layer = _layer_class(OrthogonalLSTMCell)(3, 4)
    assert layer.backend_for(torch.zeros(5, 2, 3)).name == "native"


def test_a_kind_named_by_the_subclass_is_kept():
    class SameMathGRUCell(rnnkit.GRUCell):
        kind = "GRU"  # its recur computes torch's GRU: its kernels may run it

        def recur(self, p: Params, gx: Tensor, state: State, mask: Tensor | None) -> State:
            return super().recur(p, gx, state, mask)

    assert SameMathGRUCell.kind == "GRU"


def test_rnnkits_own_cells_keep_torchs_mode_names():
    kinds = [rnnkit.LSTMCell.kind, rnnkit.GRUCell.kind, rnnkit.MinGRUCell.kind]
    assert kinds == ["LSTM", "GRU", "MINGRU"]
    assert rnnkit.MinLSTMCell.kind == "MINLSTM"
    assert [rnnkit.RNNCell(2, 3, nonlinearity=g).kind for g in ("tanh", "relu")] == [
        "RNN_TANH",
        "RNN_RELU",
    ]


def test_a_min_gru_subclass_with_its_own_coefficients_scans_them():
    torch.manual_seed(0)
    layer = _layer_class(TanhMinGRUCell)(3, 4).double()
    x = torch.randn(8, 2, 3, dtype=torch.float64, requires_grad=True)
    assert layer.backend_for(x).name == "scan"
    out, _ = layer(x)
    expected, _ = _loop(layer, x, [8, 8])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    (grad,) = torch.autograd.grad(out.sum(), x)
    (expected_grad,) = torch.autograd.grad(expected.sum(), x)
    torch.testing.assert_close(grad, expected_grad, rtol=0, atol=1e-12)


def test_a_cell_with_three_states_names_them_when_hx_is_wrong():
    class NormalisedCell(RecurrentCell):
        num_gates: ClassVar[int] = 2
        state_names: ClassVar[tuple[str, ...]] = ("h", "c", "n")

        def recur(self, p: Params, gx: Tensor, state: State, mask: Tensor | None) -> State:
            h_prev, c_prev, n_prev = state
            a_i, a_f = (gx + F.linear(h_prev, p["weight_hh"], p.get("bias_hh"))).chunk(2, -1)
            i, f = torch.sigmoid(a_i), torch.sigmoid(a_f)
            c, n = f * c_prev + i * a_i.tanh(), f * n_prev + i
            return (c / (n + 1), c, n)

    cell = NormalisedCell(2, 3)
    h, c, n = cell(torch.zeros(4, 2))
    assert h.shape == c.shape == n.shape == (4, 3)
    with pytest.raises(rnnkit.cells.base._checks.StateError) as caught:
        cell(torch.zeros(4, 2), (h, c))
    assert str(caught.value) == "NormalisedCell: hx must be a tuple (h, c, n); got 2 items"


def test_a_cell_without_num_gates_is_refused_in_one_line():
    class Gateless(RecurrentCell):
        def recur(self, p: Params, gx: Tensor, state: State, mask: Tensor | None) -> State:
            return state

    with pytest.raises(TypeError) as caught:
        Gateless(2, 3)
    assert str(caught.value) == (
        "Gateless: num_gates must be set on the class, the number of H-row blocks stacked "
        "in weight_ih and weight_hh (or parameter_shapes overridden); expected an int >= 1, "
        "got none"
    )
