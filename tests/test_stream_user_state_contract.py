"""A stream over a user's model or a moved layer: the state it carries is checked.

A model's state must be tensors (or tuples or lists of them) shaped (L, B, ...): a (B, H)
state set the batch size to H and made ``reset([i])`` zero hidden unit i of every sample;
a dict failed in ``detach_state``'s words after the model had run. A layer moved to
another dtype mid-stream failed its next ``step`` in torch's words (LSTM, GRU, RNN) or
promoted the state silently (MinGRU, MinLSTM), where a chunk refused it in one line.
"""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import rnnkit
from rnnkit.stream import Stream


class _CellModel(nn.Module):
    """A model on torch's GRUCell: its state is (B, H), not (L, B, H)."""

    def __init__(self) -> None:
        super().__init__()
        self.cell = nn.GRUCell(3, 4)

    def forward(self, x, state=None):
        h, outs = state, []
        for xt in x:
            h = self.cell(xt, h)
            outs.append(h)
        return torch.stack(outs), h


class _DictModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = rnnkit.GRU(3, 4)

    def forward(self, x, state=None):
        out, h = self.rnn(x, None if state is None else state["h"])
        return out, {"h": h}


class _Head(nn.Module):
    """An rnnkit layer and a read-out: the contract a stream expects."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = rnnkit.LSTM(3, 4)
        self.head = nn.Linear(4, 2)

    def forward(self, x, state=None):
        out, state = self.rnn(x, state)
        return self.head(out), state


def _refused(kind, message, fn, *args):
    with pytest.raises(kind, match="^" + re.escape(message) + "$"):
        fn(*args)


@pytest.mark.parametrize("call", ["chunk", "step"])
def test_a_state_without_the_batch_on_axis_1_is_refused(call) -> None:
    stream = Stream(_CellModel())
    x = torch.randn(1, 2, 3)
    _refused(
        ValueError,
        "Stream: the module's state must be tensors (L, B, ...) with the batch B = 2 on "
        "axis 1; got a tensor of shape (2, 4) from _CellModel",
        stream if call == "chunk" else stream.step,
        x if call == "chunk" else x[0],
    )
    assert stream.state is None and stream.steps == 0  # nothing carried


def test_a_step_without_its_feature_axis_is_refused_by_the_state_it_returns() -> None:
    """x (3,) to a model of features read as one sample of 3 features, unbatched: the
    output had no batch axis and the state (1, 4) set the batch size to 4."""
    stream = Stream(_Head())
    _refused(
        ValueError,
        "Stream: the module's state must be tensors (L, B, ...) with the batch B = 3 on "
        "axis 1; got a tensor of shape (1, 4) from _Head",
        stream.step,
        torch.randn(3),
    )


def test_a_state_that_is_not_tensors_is_refused_in_the_streams_words() -> None:
    stream = Stream(_DictModel())
    _refused(
        TypeError,
        "Stream: the module's state must be a tensor or a tuple or list of them (L, B, ...); "
        "got dict from _DictModel",
        stream.step,
        torch.randn(2, 3),
    )


def test_a_models_step_of_another_batch_size_is_named_a_step() -> None:
    stream = Stream(_Head())
    stream.step(torch.randn(2, 3))
    _refused(
        ValueError,
        "Stream: step batch size must equal the running stream's; expected 2, got 5 "
        "(reset() starts a new stream)",
        stream.step,
        torch.randn(5, 3),
    )


def test_a_users_model_of_rnnkit_layers_still_streams_and_resets_samples() -> None:
    torch.manual_seed(0)
    model = _Head().eval()
    x = torch.randn(9, 3, 3)
    whole, (h, _) = model(x)
    stream = Stream(model)
    outs = [stream(x[:4])] + [stream.step(x[t]).unsqueeze(0) for t in range(4, 9)]
    torch.testing.assert_close(torch.cat(outs), whole, rtol=0, atol=1e-6)
    torch.testing.assert_close(stream.state[0], h, rtol=0, atol=1e-6)
    stream.reset([1])
    assert stream.state[0][:, 1].abs().max().item() == 0.0
    assert stream.state[0][:, 0].abs().max().item() > 0.0


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN", "MinGRU", "MinLSTM"])
def test_a_step_after_the_layer_moved_dtype_checks_the_carried_state(kind) -> None:
    layer = getattr(rnnkit, kind)(3, 4, num_layers=2)
    stream = Stream(layer)
    stream.step(torch.randn(2, 3))
    layer.double()
    name = (
        f"{kind}: state h.dtype must equal input.dtype; expected torch.float64, got torch.float32"
    )
    _refused(ValueError, name, stream.step, torch.randn(2, 3, dtype=torch.float64))
    _refused(ValueError, name, stream, torch.randn(1, 2, 3, dtype=torch.float64))
    # Moved with the layer, the state streams on: as one call of the layer from it.
    start = stream.state
    stream.state = tuple(s.double() for s in start) if kind == "LSTM" else start.double()
    x = torch.randn(2, 3, dtype=torch.float64)
    expected, _ = layer(x.unsqueeze(0), stream.state)
    torch.testing.assert_close(stream.step(x), expected[0], rtol=0, atol=1e-12)
