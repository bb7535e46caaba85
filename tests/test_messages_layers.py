"""Error messages of the layers' neighbours not reached elsewhere: option dataclasses read
from JSON (rnnkit._options), Stream's step of a model, a quantized layer's packed input."""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_sequence

import rnnkit
from _refusals import raises as _raises
from _refusals import raises_exactly as _raises_exactly
from rnnkit._checks import ShapeError
from rnnkit.train import TrainConfig


def test_options_from_json_messages():
    full = TrainConfig(steps=2).to_dict()
    _raises(ValueError, "train must be a JSON object; got list", TrainConfig.from_dict, [1],
            where="train")  # fmt: skip
    _raises(ValueError, "train: unknown key(s) epochs", TrainConfig.from_dict,
            {**full, "epochs": 3}, where="train")  # fmt: skip
    _raises(ValueError, "train: missing key(s) lr", TrainConfig.from_dict,
            {k: v for k, v in full.items() if k != "lr"}, where="train")  # fmt: skip
    _raises(ValueError, "train: --steps must be an integer in [1, 1000000000]; got 0",
            TrainConfig.from_dict, {**full, "steps": 0}, where="train")  # fmt: skip


class _Model(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = rnnkit.GRU(2, 3)

    def forward(self, x, state=None):
        return self.rnn(x, state)


def test_stream_step_of_a_model_needs_a_batch_axis():
    _raises(ValueError, "Stream: a step must have a batch axis (B, ...); got a scalar",
            rnnkit.Stream(_Model()).step, torch.tensor(1.0))  # fmt: skip


def test_a_quantized_layer_takes_the_lengths_of_a_packed_input():
    lstm = rnnkit.quantize_dynamic(rnnkit.LSTM(2, 3))
    packed = pack_sequence([torch.randn(3, 2), torch.randn(2, 2)])
    _raises(ValueError, "QuantizedLSTM: lengths must be None for a PackedSequence input; its "
            "lengths are taken from it", lstm, packed, lengths=[3, 2])  # fmt: skip


def test_safe_globals_on_a_torch_without_its_context(monkeypatch):
    # torch < 2.5 has add_safe_globals but no safe_globals context manager.
    monkeypatch.delattr(torch.serialization, "safe_globals", raising=False)
    message = (
        f"rnnkit.safe_globals: torch {torch.__version__} has no torch.serialization.safe_globals "
        "(torch >= 2.5); expected a newer torch, or call "
        "torch.serialization.add_safe_globals(rnnkit.safe_globals()) (torch 2.4)"
    )
    with pytest.raises(RuntimeError, match=re.escape(message)), rnnkit.safe_globals():
        pass


def test_quantize_dynamic_on_a_torch_without_its_quantized_modules(monkeypatch):
    # torch.ao quantization is deprecated upstream; a torch that drops it is named.
    monkeypatch.setitem(__import__("sys").modules, "torch.ao.nn.quantized", None)
    version = torch.__version__
    message = f"quantize_dynamic: needs torch.ao.nn.quantized.dynamic; got torch {version}"
    _raises(ImportError, f"{message} without it", rnnkit.quantize_dynamic, rnnkit.LSTM(2, 3))


def test_forget_bias_must_be_a_number():
    _raises(TypeError, "LSTMCell: forget_bias must be a number; got '1'", rnnkit.LSTMCell, 2, 3,
            forget_bias="1")  # fmt: skip


def test_stream_inputs_must_be_tensors():
    stream = rnnkit.Stream(rnnkit.GRU(2, 3))
    _raises(TypeError, "Stream: chunk must be a torch.Tensor; got list", stream, [[1.0, 2.0]])
    _raises(TypeError, "Stream: x must be a torch.Tensor; got list", stream.step, [1.0, 2.0])


def test_chrono_init_and_recurrent_dropout_need_what_the_cell_has():
    _raises(ValueError, "GRUCell: chrono_init needs bias=True; got bias=False", rnnkit.GRUCell,
            2, 3, bias=False, chrono_init=10)  # fmt: skip
    _raises(ValueError, "MinGRUCell: recurrent_dropout needs a recurrent product W_hh h^(t-1), "
            "which this cell does not have; got recurrent_dropout=0.1", rnnkit.MinGRUCell, 2, 3,
            recurrent_dropout=0.1)  # fmt: skip


def test_stream_detach_must_be_a_bool():
    # "no" was taken as true: the state was detached though the caller meant otherwise.
    _raises(TypeError, "Stream: detach must be a bool; got 'no'", rnnkit.Stream,
            rnnkit.GRU(2, 3), detach="no")  # fmt: skip


def test_a_parameter_dtype_that_cannot_have_gradients_is_named():
    # torch said "Only Tensors of floating point and complex dtype can require gradients".
    _raises(TypeError, "GRU: dtype must be a floating-point torch.dtype (parameters need "
            "gradients); got torch.int64", rnnkit.GRU, 2, 3, dtype=torch.int64)  # fmt: skip
    _raises(RuntimeError, "LSTMCell: dtype must be a torch.dtype; got 'float32'",
            rnnkit.LSTMCell, 2, 3, dtype="float32")  # fmt: skip


def test_members_of_something_that_is_no_list():
    from rnnkit.layers.members import Members

    _raises(TypeError, "Members: layers must be a list of rnnkit recurrent layers; got int",
            Members, 3)  # fmt: skip


def test_members_of_projected_lstms():
    from rnnkit.layers.members import Members

    layers = [rnnkit.LSTM(2, 4, proj_size=2) for _ in range(2)]
    _raises_exactly(ValueError, "Members: layer 0 has proj_size=2; expected none (the state "
                    "would not be H wide)", Members, layers)  # fmt: skip


def test_a_forget_bias_for_a_cell_without_a_keep_gate():
    # A user's own cell that is none of torch's modes passes the option checks; its
    # initialisation then finds no gate whose bias to set.
    class Elman(rnnkit.RNNCell):
        kind = "ELMAN"

    _raises_exactly(ValueError, "Elman: forget_bias needs a cell with a gate that keeps the "
                    "state (keep_gate_slice); got Elman", Elman, 2, 3,
                    forget_bias=1.0)  # fmt: skip
    _raises_exactly(ValueError, "RNNCell.keep_gate_slice: expected a cell with a gate that "
                    "keeps the state (an LSTM's forget gate, a GRU's update gate); got RNNCell, "
                    "which has none",
                    rnnkit.RNNCell(2, 3).keep_gate_slice)  # fmt: skip


# ---- forget_bias, options of other cells, from_torch, a quantized layer of T = 0 -------


@pytest.mark.parametrize(
    ("cls", "value", "shown"),
    [
        (rnnkit.LSTM, float("nan"), "nan"),
        (rnnkit.LSTM, float("inf"), "inf"),
        (rnnkit.LSTM, -float("inf"), "-inf"),
        (rnnkit.LSTM, 10**400, str(10**400)),
    ],
    ids=["nan", "inf", "-inf", "huge-int"],
)
def test_a_forget_bias_that_is_not_finite_is_refused(cls, value, shown):
    # NaN was taken, and every output of the layer was NaN.
    _raises_exactly(ValueError, f"LSTMCell: forget_bias must be a finite number; got {shown}",
                    cls, 4, 8, forget_bias=value)  # fmt: skip
    _raises_exactly(ValueError, f"MinGRUCell: forget_bias must be a finite number; got {shown}",
                    rnnkit.MinGRU, 4, 8, forget_bias=value)  # fmt: skip


def test_a_forget_bias_the_parameters_dtype_cannot_hold_is_refused():
    # torch said "value cannot be converted to type float without overflow", naming nothing.
    _raises_exactly(ValueError, "LSTMCell: forget_bias must fit the parameters' dtype "
                    "torch.float32 (magnitude at most 3.40282e+38); got 1e+300", rnnkit.LSTM, 4,
                    8, forget_bias=1e300)  # fmt: skip
    _raises_exactly(ValueError, "GRUCell: forget_bias must fit the parameters' dtype "
                    "torch.float16 (magnitude at most 65504); got 100000.0", rnnkit.GRU, 4, 8,
                    forget_bias=1e5, dtype=torch.float16)  # fmt: skip
    _raises_exactly(ValueError, "MinLSTMCell: forget_bias must fit the parameters' dtype "
                    "torch.float16 (magnitude at most 65504); got -70000.0", rnnkit.MinLSTMCell,
                    4, 8, forget_bias=-7e4, dtype=torch.float16)  # fmt: skip
    # Re-drawn after a cast, the value is checked against the dtype the layer has now.
    layer = rnnkit.LSTM(4, 8, forget_bias=1e5)
    assert torch.all(layer.bias_ih_l0[8:16] == 1e5)
    _raises_exactly(ValueError, "LSTMCell: forget_bias must fit the parameters' dtype "
                    "torch.float16 (magnitude at most 65504); got 100000.0",
                    layer.half().reset_parameters)  # fmt: skip


def test_an_infinite_chrono_init_is_refused():
    # torch said "to is out of bounds for double" from inside uniform_.
    _raises_exactly(ValueError, "LSTMCell: chrono_init is the longest expected dependency T_max "
                    "and must be a number >= 2; got inf", rnnkit.LSTM, 4, 8,
                    chrono_init=float("inf"))  # fmt: skip


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: rnnkit.GRU(4, 8, layer_norm=True),
         "GRUCell: layer_norm is only supported by LSTM and LSTMCell; got layer_norm=True"),
        (lambda: rnnkit.MinGRU(4, 8, nonlinearity="relu"),
         "MinGRUCell: nonlinearity is only supported by RNN and RNNCell; got nonlinearity='relu'"),
        (lambda: rnnkit.LSTM(4, 8, nonlinearity="relu"),
         "LSTMCell: nonlinearity is only supported by RNN and RNNCell; got nonlinearity='relu'"),
        (lambda: rnnkit.GRUCell(4, 8, proj_size=2),
         "GRUCell: proj_size is only supported by LSTM and LSTMCell; got proj_size=2"),
        (lambda: rnnkit.RNN(4, 8, fast=True),
         "RNNCell: got an unexpected keyword argument 'fast'"),
    ],
    ids=["gru-layer_norm", "mingru-nonlinearity", "lstm-nonlinearity", "grucell-proj", "unknown"],
)  # fmt: skip
def test_an_option_of_another_cell_is_named(build, message):
    # Python said "RecurrentCell.__init__() got an unexpected keyword argument 'layer_norm'";
    # TypeError still, as torch.nn raises for an argument its class does not take.
    _raises_exactly(TypeError, message, build)


def test_from_torch_of_an_rnnkit_layer_says_so():
    _raises_exactly(TypeError, "LSTM.from_torch: module must be a torch.nn.modules.rnn.LSTM; got "
                    "rnnkit.LSTM (already an rnnkit layer)", rnnkit.LSTM.from_torch,
                    rnnkit.LSTM(4, 8))  # fmt: skip
    _raises_exactly(TypeError, "GRU.from_torch: module must be a torch.nn.modules.rnn.GRU; got "
                    "rnnkit.MinGRU (already an rnnkit layer)", rnnkit.GRU.from_torch,
                    rnnkit.MinGRU(4, 8))  # fmt: skip


@pytest.mark.parametrize("batch_first", [False, True])
def test_a_quantized_layer_refuses_zero_steps_as_the_layer_does(batch_first):
    layer = rnnkit.LSTM(4, 8, batch_first=batch_first)
    lstm = rnnkit.quantize_dynamic(layer)
    x = torch.randn(2, 0, 4) if batch_first else torch.randn(0, 2, 4)
    quantized = (
        "QuantizedLSTM: input has T = 0 time steps; expected T >= 1, or lengths (all 0) to run "
        "empty sequences"
    )
    _raises_exactly(ShapeError, quantized, lstm, x)
    _raises_exactly(ShapeError, quantized, lstm, torch.randn(0, 4))
    # The layer's own words, for the same call.
    _raises_exactly(ShapeError, "LSTM: input has T = 0 time steps; expected T >= 1, or lengths "
                    "(all 0) to run empty sequences", layer, x)  # fmt: skip
    out, (h, c) = lstm(x, lengths=[0, 0])  # the documented way to run empty sequences
    assert out.shape == (*x.shape[:2], 8) and torch.all(h == 0) and torch.all(c == 0)
