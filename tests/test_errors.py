"""Every mistake at the public boundary gives a clear error naming argument, expected, given."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

import rnnkit
from _refusals import raises as _raises


def test_input_errors():
    lstm = rnnkit.LSTM(32, 8)
    _raises(
        ValueError,
        "LSTM: input.size(-1) must equal input_size; expected 32, got 31",
        lstm,
        torch.randn(5, 2, 31),
    )
    _raises(
        ValueError,
        "LSTM: input must be 3-D (T, B, I) / (B, T, I) or 2-D (T, I); "
        "got 4-D with shape (1, 5, 2, 32)",
        lstm,
        torch.randn(1, 5, 2, 32),
    )
    _raises(ValueError, "got 1-D with shape (32,)", lstm, torch.randn(32))
    _raises(TypeError, "LSTM: input must be a torch.Tensor; got list", lstm, [[1.0]])
    _raises(
        TypeError,
        "LSTM: input must be a floating-point tensor; got torch.int64",
        lstm,
        torch.zeros(5, 2, 32, dtype=torch.long),
    )
    _raises(
        ValueError,
        "LSTM: input has T = 0 time steps; expected T >= 1, or lengths (all 0)",
        lstm,
        torch.randn(0, 2, 32),
    )


def test_dtype_and_device_mismatches():
    gru = rnnkit.GRU(4, 8)
    _raises(
        ValueError,
        "GRU: input.dtype must equal the parameters.dtype; expected "
        "torch.float32, got torch.float64",
        gru,
        torch.randn(3, 2, 4, dtype=torch.float64),
    )
    _raises(
        ValueError,
        "GRU: state h.dtype must equal input.dtype; expected torch.float32, got torch.float64",
        gru,
        torch.randn(3, 2, 4),
        torch.zeros(1, 2, 8, dtype=torch.float64),
    )
    on_meta = rnnkit.GRU(4, 8, device="meta")
    _raises(
        ValueError,
        "GRU: input.device must equal the parameters.device; expected meta, got cpu",
        on_meta,
        torch.randn(3, 2, 4),
    )
    _raises(
        ValueError,
        "GRU: state h.device must equal input.device; expected cpu, got meta",
        gru,
        torch.randn(3, 2, 4),
        torch.zeros(1, 2, 8, device="meta"),
    )


def test_state_errors():
    lstm = rnnkit.LSTM(4, 8, num_layers=2, bidirectional=True)
    x = torch.randn(3, 5, 4)
    h = torch.zeros(4, 5, 8)
    _raises(TypeError, "LSTM: state must be a tuple (h, c); got 1 tensors", lstm, x, (h,))
    _raises(TypeError, "LSTM: state must be a tuple (h, c); got Tensor", lstm, x, h)
    _raises(
        ValueError,
        "LSTM: state c must have shape (4, 5, 8); got (2, 5, 8)",
        lstm,
        x,
        (h, torch.zeros(2, 5, 8)),
    )
    _raises(
        ValueError, "LSTM: state h must have shape (4, 8); got (4, 5, 8)", lstm, x[:, 0], (h, h)
    )
    rnn = rnnkit.RNN(4, 8)
    _raises(TypeError, "RNN: state must be a tensor h; got tuple", rnn, x, (h, h))
    _raises(
        ValueError,
        "RNN: state h must have shape (1, 5, 8); got (1, 4, 8)",
        rnn,
        x,
        torch.zeros(1, 4, 8),
    )


def test_lengths_errors():
    gru = rnnkit.GRU(4, 8)
    x = torch.randn(6, 3, 4)
    _raises(
        ValueError, "GRU: lengths must have shape (B,) = (3,); got (2,)", gru, x, lengths=[6, 2]
    )
    _raises(
        ValueError,
        "GRU: lengths must lie in [0, T] = [0, 6]; got min -1, max 6",
        gru,
        x,
        lengths=[6, -1, 2],
    )
    _raises(
        ValueError,
        "GRU: lengths must lie in [0, T] = [0, 6]; got min 2, max 7",
        gru,
        x,
        lengths=[7, 2, 2],
    )
    _raises(
        TypeError,
        "GRU: lengths must have an integer dtype; got torch.float32",
        gru,
        x,
        lengths=torch.tensor([6.0, 2.0, 1.0]),
    )
    _raises(
        TypeError, "GRU: lengths must hold integers; got [6, 2.5, 1]", gru, x, lengths=[6, 2.5, 1]
    )
    _raises(
        TypeError, "GRU: lengths must be a 1-D integer tensor or list; got str", gru, x, lengths="6"
    )
    _raises(
        ValueError,
        "GRU: lengths needs a batched input (3-D); got a 2-D input",
        gru,
        x[:, 0],
        lengths=[6],
    )
    packed = nn.utils.rnn.pack_padded_sequence(x, [6, 2, 1])
    _raises(
        ValueError,
        "GRU: lengths must be None for a PackedSequence input",
        gru,
        packed,
        lengths=[6, 2, 1],
    )


def test_reset_errors():
    rnn = rnnkit.RNN(4, 8)
    x = torch.randn(6, 3, 4)
    _raises(
        ValueError,
        "RNN: reset must have shape (T, B) = (6, 3); got (3, 6)",
        rnn,
        x,
        reset=torch.zeros(3, 6, dtype=torch.bool),
    )
    first = rnnkit.RNN(4, 8, batch_first=True)
    _raises(
        ValueError,
        "RNN: reset must have shape (B, T) = (6, 3); got (3, 6)",
        first,
        x,
        reset=torch.zeros(3, 6, dtype=torch.bool),
    )
    _raises(
        TypeError,
        "RNN: reset must have dtype torch.bool; got torch.float32",
        rnn,
        x,
        reset=torch.zeros(6, 3),
    )
    _raises(TypeError, "RNN: reset must be a bool tensor; got list", rnn, x, reset=[[True]])
    _raises(
        ValueError,
        "RNN: reset must have shape (T,) = (6,); got (6, 1)",
        rnn,
        x[:, 0],
        reset=torch.zeros(6, 1, dtype=torch.bool),
    )


@pytest.mark.parametrize(
    ("kwargs", "exc", "message"),
    [
        ({"hidden_size": 0}, ValueError, "LSTM: hidden_size must be a positive integer; got 0"),
        ({"hidden_size": -3}, ValueError, "LSTM: hidden_size must be a positive integer; got -3"),
        ({"input_size": 2.5}, ValueError, "LSTM: input_size must be a positive integer; got 2.5"),
        ({"num_layers": 0}, ValueError, "LSTM: num_layers must be a positive integer; got 0"),
        ({"dropout": 1.5}, ValueError, "LSTM: dropout must be a number in [0, 1]; got 1.5"),
        ({"dropout": -0.1}, ValueError, "LSTM: dropout must be a number in [0, 1]; got -0.1"),
        ({"bias": "yes"}, TypeError, "LSTM: bias must be a bool; got 'yes'"),
        ({"bidirectional": 1}, TypeError, "LSTM: bidirectional must be a bool; got 1"),
        (
            {"backend": "cuda"},
            ValueError,
            "LSTM: backend must be one of ('auto', 'reference', 'native', 'scan', 'fused'); "
            "got 'cuda'",
        ),
        ({"zoneout": 2}, ValueError, "LSTMCell: zoneout must be a number in [0, 1]; got 2"),
        (
            {"recurrent_dropout": 1.0},
            ValueError,
            "LSTMCell: recurrent_dropout must be a number in [0, 1); got 1.0",
        ),
        (
            {"chrono_init": 1},
            ValueError,
            "LSTMCell: chrono_init is the longest expected dependency T_max and must be a number "
            ">= 2; got 1",
        ),
        (
            {"chrono_init": 10, "forget_bias": 1.0},
            ValueError,
            "LSTMCell: forget_bias and chrono_init both set the forget-gate bias; expected one of "
            "them, got forget_bias=1.0, chrono_init=10",
        ),
        (
            {"forget_bias": 1.0, "bias": False},
            ValueError,
            "LSTMCell: forget_bias needs bias=True; got bias=False",
        ),
        ({"layer_norm": "yes"}, TypeError, "LSTMCell: layer_norm must be a bool; got 'yes'"),
    ],
)
def test_constructor_errors(kwargs, exc, message):
    args = {"input_size": 4, "hidden_size": 8, **kwargs}
    _raises(exc, message, rnnkit.LSTM, **args)


def test_rnn_specific_constructor_errors():
    _raises(
        ValueError,
        "RNN: nonlinearity must be 'tanh' or 'relu'; got 'sigmoid'",
        rnnkit.RNN,
        4,
        8,
        nonlinearity="sigmoid",
    )
    _raises(
        ValueError,
        "RNNCell: nonlinearity must be 'tanh' or 'relu'; got 'gelu'",
        rnnkit.RNNCell,
        4,
        8,
        nonlinearity="gelu",
    )
    _raises(
        ValueError,
        "RNNCell: forget_bias needs a gated cell (LSTM or GRU); got RNNCell",
        rnnkit.RNN,
        4,
        8,
        forget_bias=1.0,
    )
    _raises(
        ValueError,
        "RNNCell: chrono_init needs a gated cell (LSTM or GRU); got RNNCell",
        rnnkit.RNNCell,
        4,
        8,
        chrono_init=10,
    )


def test_cell_forward_errors():
    cell = rnnkit.LSTMCell(4, 8)
    _raises(
        ValueError,
        "LSTMCell: input.size(-1) must equal input_size; expected 4, got 5",
        cell,
        torch.randn(2, 5),
    )
    _raises(
        ValueError,
        "LSTMCell: input must be 2-D (B, I) or 1-D (I,); got 3-D",
        cell,
        torch.randn(1, 2, 4),
    )
    _raises(
        TypeError,
        "LSTMCell: hx must be a tuple (h, c); got Tensor",
        cell,
        torch.randn(2, 4),
        torch.zeros(2, 8),
    )
    _raises(
        ValueError,
        "LSTMCell: hx c must have shape (2, 8); got (3, 8)",
        cell,
        torch.randn(2, 4),
        (torch.zeros(2, 8), torch.zeros(3, 8)),
    )
    gru = rnnkit.GRUCell(4, 8)
    _raises(
        TypeError,
        "GRUCell: hx must be a tensor h; got tuple",
        gru,
        torch.randn(2, 4),
        (torch.zeros(2, 8),),
    )
    _raises(
        ValueError,
        "GRUCell: input.dtype must equal the parameters.dtype",
        gru,
        torch.randn(2, 4, dtype=torch.float64),
    )


def test_conversion_errors():
    _raises(
        TypeError,
        "LSTM.from_torch: module must be a torch.nn.modules.rnn.LSTM; got GRU",
        rnnkit.LSTM.from_torch,
        nn.GRU(4, 8),
    )
    _raises(
        ValueError,
        "LSTM: proj_size must be smaller than hidden_size; expected < 8, got 8",
        rnnkit.LSTM,
        4,
        8,
        proj_size=8,
    )
    _raises(
        ValueError,
        "GRU: proj_size is only supported by LSTM, as in torch.nn; got proj_size=2",
        rnnkit.GRU,
        4,
        8,
        proj_size=2,
    )
    _raises(
        ValueError,
        "LSTM.to_torch: torch.nn.LSTM has no layer_norm, zoneout; expected a layer built "
        "without those options; got layer_norm=True, zoneout=0.1",
        rnnkit.LSTM(4, 8, layer_norm=True, zoneout=0.1).to_torch,
    )


def test_fit_and_load_errors(tmp_path):
    """rnnkit.fit's own arguments are named before the loop starts (an int loader failed
    inside it, a metric that is not a function at the first evaluation), and a run already
    in out= is refused in Python's words, not the command line's (--resume, --out)."""
    from torch.utils.data import DataLoader

    from rnnkit.data import pad_collate

    data = [(torch.randn(4, 2), i % 2) for i in range(8)]
    loader = DataLoader(data, batch_size=4, collate_fn=pad_collate)

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.head = rnnkit.GRU(2, 4, batch_first=True), nn.Linear(4, 2)

        def forward(self, x, lengths):
            return self.head(self.rnn(x, lengths=lengths)[1][-1])

    quiet = {"log": lambda line: None, "progress": io.StringIO(), "steps": 2, "eval_every": 2}
    _raises(
        TypeError,
        "rnnkit.fit: train_loader must be an iterable of batches (e.g. a "
        "torch.utils.data.DataLoader); got int",
        rnnkit.fit,
        Classifier(),
        5,
        **quiet,
    )
    _raises(
        TypeError,
        "rnnkit.fit: val_loader must be an iterable of batches",
        rnnkit.fit,
        Classifier(),
        loader,
        3,
        **quiet,
    )
    _raises(
        TypeError,
        "rnnkit.fit: loss must be a function (output, target) -> Tensor; got str",
        rnnkit.fit,
        Classifier(),
        loader,
        loss="cross_entropy",
        **quiet,
    )
    _raises(TypeError, "rnnkit.fit: metrics['accuracy'] must be a function (output, target) "
            "-> number; got int", rnnkit.fit, Classifier(), loader, loader,
            metrics={"accuracy": 1}, **quiet)  # fmt: skip
    # TrainConfig's checks, in fit's keyword names rather than the command line's flags
    steps = {k: v for k, v in quiet.items() if k != "steps"}
    _raises(ValueError, "rnnkit.fit: steps must be an integer in [1, 1000000000]; got 0",
            rnnkit.fit, Classifier(), loader, steps=0, **{**steps, "eval_every": 1})  # fmt: skip
    _raises(ValueError, "rnnkit.fit: eval_every must be an integer in [1, 1000000000]; got -1",
            rnnkit.fit, Classifier(), loader, **{**quiet, "eval_every": -1})  # fmt: skip
    assert list(tmp_path.iterdir()) == []
    out = tmp_path / "run"
    rnnkit.fit(Classifier(), loader, loader, out=out, **quiet)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    _raises(ValueError, f"rnnkit.fit: out={str(out)!r} already holds a run; continue it with "
            "resume=True or choose another out", rnnkit.fit, Classifier(), loader, out=out,
            **quiet)  # fmt: skip
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    _raises(
        TypeError,
        "rnnkit.load: model must be a torch.nn.Module to load the weights into "
        "(e.g. MyModel(...)); got str",
        rnnkit.load,
        out,
        model="Classifier",
    )


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell"])
def test_numpy_integer_sizes_are_sizes(kind):
    """A size taken from a NumPy shape or config (np.int64) is an integer, held as int;
    the layer matches one built from plain ints."""
    import numpy as np

    cls = getattr(rnnkit, kind)
    extra = {} if kind.endswith("Cell") else {"num_layers": np.int64(2)}
    torch.manual_seed(0)
    a = cls(np.int64(3), np.int32(4), **extra)
    torch.manual_seed(0)
    b = cls(3, 4, **({} if kind.endswith("Cell") else {"num_layers": 2}))
    assert type(a.input_size) is int and type(a.hidden_size) is int
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    what = "a non-negative integer" if kind.endswith("Cell") else "a positive integer"
    with pytest.raises(TypeError) as err:
        cls(3, np.float64(4.0))
    assert str(err.value) == f"{kind}: hidden_size must be {what}; got np.float64(4.0)"
