"""What users build models from."""

from rnnkit.layers.base import RecurrentLayer
from rnnkit.layers.classic import GRU, LSTM, RNN

__all__ = ["GRU", "LSTM", "RNN", "RecurrentLayer"]
