"""One time step of each recurrent cell: the chapter's equations."""

from rnnkit.cells.base import RecurrentCell
from rnnkit.cells.gru import GRUCell
from rnnkit.cells.linear import LinearRecurrentCell
from rnnkit.cells.lstm import LSTMCell
from rnnkit.cells.mingru import MinGRUCell
from rnnkit.cells.minlstm import MinLSTMCell
from rnnkit.cells.rnn import RNNCell

__all__ = [
    "GRUCell",
    "LSTMCell",
    "LinearRecurrentCell",
    "MinGRUCell",
    "MinLSTMCell",
    "RNNCell",
    "RecurrentCell",
]
