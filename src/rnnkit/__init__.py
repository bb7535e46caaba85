"""rnnkit: recurrent neural networks for PyTorch, from the classic chapter to parallel scans."""

from rnnkit._version import __version__
from rnnkit.backends import PerformanceWarning
from rnnkit.cells import GRUCell, LSTMCell, MinGRUCell, MinLSTMCell, RecurrentCell, RNNCell
from rnnkit.layers import GRU, LSTM, RNN, MinGRU, MinLSTM, RecurrentLayer
from rnnkit.quantize import QuantizationWarning, quantize_dynamic
from rnnkit.serialization import safe_globals
from rnnkit.stream import Stream
from rnnkit.train.fit import fit
from rnnkit.train.pretrained import load_pretrained, save_pretrained
from rnnkit.train.run import load

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "GRUCell",
    "LSTMCell",
    "MinGRU",
    "MinGRUCell",
    "MinLSTM",
    "MinLSTMCell",
    "PerformanceWarning",
    "QuantizationWarning",
    "RNNCell",
    "RecurrentCell",
    "RecurrentLayer",
    "Stream",
    "__version__",
    "fit",
    "load",
    "load_pretrained",
    "quantize_dynamic",
    "safe_globals",
    "save_pretrained",
]
