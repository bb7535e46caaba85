"""Layers of one's own cells where torch.nn, quantization and the messages meet them.

``to_torch``, ``from_torch`` and dynamic quantization hand a layer to torch's modules, which
compute torch's equations: a layer whose cells compute others (a GRU variant, a peephole
LSTM) or that torch has no class for (IndRNN) is refused in one line, not converted into
a module that computes something else. The messages name the cell's own states, and a
layer that no fused kernel knows runs on the reference loop without a warning.
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
from _refusals import raises_exactly
from rnnkit.cells.base import Params, RecurrentCell, State
from rnnkit.layers.base import RecurrentLayer
from rnnkit.quantize import QuantizationWarning, quantize_dynamic, unquantizable_reason
from test_custom_cell_kind import IndRNNCell, PeepholeLSTMCell, ResetBeforeGRUCell


class RBGRU(rnnkit.GRU):
    cell_class = ResetBeforeGRUCell


class PeepholeLSTM(rnnkit.LSTM):
    cell_class = PeepholeLSTMCell


class IndRNN(RecurrentLayer):
    cell_class = IndRNNCell


class NormalisedCell(RecurrentCell):
    """Three states: h, the cell c and a normaliser n."""

    num_gates: ClassVar[int] = 2
    state_names: ClassVar[tuple[str, ...]] = ("h", "c", "n")

    def recur(self, p: Params, gx: Tensor, state: State, mask: Tensor | None) -> State:
        h_prev, c_prev, n_prev = state
        gh = F.linear(self.masked(h_prev, mask), p["weight_hh"], p.get("bias_hh"))
        a_i, a_f = (gx + gh).chunk(2, dim=-1)
        i, f = torch.sigmoid(a_i), torch.sigmoid(a_f)
        c, n = f * c_prev + i * torch.tanh(a_i), f * n_prev + i
        return (c / (n + 1), c, n)


class Normalised(RecurrentLayer):
    cell_class = NormalisedCell


VARIANTS = [(RBGRU, nn.GRU, "GRU"), (PeepholeLSTM, nn.LSTM, "LSTM")]


@pytest.mark.parametrize(("layer_class", "torch_class", "mode"), VARIANTS)
def test_to_torch_refuses_cells_that_are_not_torchs_equations(layer_class, torch_class, mode):
    layer = layer_class(3, 4)
    name, kind = layer_class.__name__, layer_class.cell_class.kind
    raises_exactly(
        TypeError,
        f"{name}.to_torch: torch.nn.{mode} computes torch's {mode}; expected cells of kind "
        f"{mode!r}, got {kind!r}",
        layer.to_torch,
    )
    raises_exactly(
        TypeError,
        f"{name}.from_torch: torch.nn.{mode} computes torch's {mode}; expected cells of kind "
        f"{mode!r}, got {kind!r}",
        layer_class.from_torch,
        torch_class(3, 4),
    )


@pytest.mark.parametrize(("layer_class", "torch_class", "mode"), VARIANTS)
def test_quantization_keeps_a_variant_of_torchs_cells_float(layer_class, torch_class, mode):
    layer = layer_class(3, 4)
    why = f"its cells are of kind {layer_class.cell_class.kind!r}, not torch's {mode}"
    assert unquantizable_reason(layer) == why
    message = f"quantize_dynamic: kept 1 layer(s) float: model ({layer_class.__name__}: {why})"
    with pytest.warns(QuantizationWarning, match="^" + re.escape(message) + "$"):
        kept = quantize_dynamic(layer)
    assert type(kept) is layer_class


def test_a_layer_torch_has_no_class_for_is_refused_in_one_line():
    assert RecurrentLayer.torch_class is None
    layer = IndRNN(3, 4)
    raises_exactly(TypeError, "IndRNN.to_torch: torch.nn has no IndRNN", layer.to_torch)
    raises_exactly(
        TypeError,
        "IndRNN.from_torch: torch.nn has no IndRNN to convert",
        IndRNN.from_torch,
        nn.RNN(3, 4),
    )
    why = "torch has no dynamically quantized IndRNN layer"
    assert unquantizable_reason(layer) == why
    message = f"quantize_dynamic: kept 1 layer(s) float: rnn (IndRNN: {why})"
    with pytest.warns(QuantizationWarning, match="^" + re.escape(message) + "$"):
        kept = quantize_dynamic(nn.ModuleDict({"rnn": layer}))
    assert isinstance(kept["rnn"], IndRNN)


def test_a_wrong_state_names_the_three_states_of_the_cell():
    layer = Normalised(3, 4, backend="reference")
    x = torch.zeros(5, 2, 3)
    _, (h, c, n) = layer(x)
    assert h.shape == c.shape == n.shape == (1, 2, 4)
    raises_exactly(
        rnnkit.cells.base._checks.StateError,
        "Normalised: state must be a tuple (h, c, n); got 2 tensors",
        layer,
        x,
        (h, c),
    )
    raises_exactly(
        rnnkit.cells.base._checks.StateError,
        "LSTM: state must be a tuple (h, c); got 3 tensors",
        rnnkit.LSTM(3, 4),
        x,
        (h, c, n),
    )


@pytest.mark.parametrize("layer_class", [IndRNN, RBGRU, PeepholeLSTM, Normalised])
def test_a_kind_no_kernel_knows_runs_on_the_reference_loop_without_a_warning(layer_class):
    layer = layer_class(3, 4)
    x = torch.zeros(5, 2, 3)
    choice = layer.backend_for(x)
    assert (choice.name, choice.fallback) == ("reference", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", rnnkit.PerformanceWarning)
        layer(x)


def test_torchs_kinds_still_warn_when_they_fall_back():
    layer = rnnkit.LSTM(3, 4, zoneout=0.1).bfloat16()
    with pytest.warns(rnnkit.PerformanceWarning):
        layer(torch.zeros(5, 2, 3, dtype=torch.bfloat16))


@pytest.mark.parametrize("option", [{"forget_bias": 1.0}, {"chrono_init": 10.0}])
def test_a_bias_option_for_a_cell_without_a_keep_gate_names_the_option(option):
    (name,) = option
    raises_exactly(
        ValueError,
        f"IndRNNCell: {name} needs a cell with a gate that keeps the state (keep_gate_slice); "
        "got IndRNNCell",
        IndRNNCell,
        3,
        4,
        **option,
    )
    raises_exactly(
        ValueError,
        f"IndRNNCell: {name} needs a cell with a gate that keeps the state (keep_gate_slice); "
        "got IndRNNCell",
        IndRNN,
        3,
        4,
        **option,
    )
