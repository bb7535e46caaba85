"""What users build models from."""

from rnnkit.layers.base import RecurrentLayer
from rnnkit.layers.classic import GRU, LSTM, RNN
from rnnkit.layers.minimal import MinGRU, MinLSTM

__all__ = ["GRU", "LSTM", "RNN", "MinGRU", "MinLSTM", "RecurrentLayer"]
