"""rnnkit: recurrent neural networks for PyTorch, from the classic chapter to parallel scans."""

from rnnkit.backends import PerformanceWarning
from rnnkit.cells import GRUCell, LSTMCell, RecurrentCell, RNNCell
from rnnkit.layers import GRU, LSTM, RNN, RecurrentLayer

__version__ = "0.1.0"

from rnnkit.train.checkpoint import load  # after __version__, which it reads

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "GRUCell",
    "LSTMCell",
    "PerformanceWarning",
    "RNNCell",
    "RecurrentCell",
    "RecurrentLayer",
    "__version__",
    "load",
]
