"""The chapter's claims, run and plotted: each module is one experiment.

- :mod:`~rnnkit.explain.gradient_flow`: vanishing gradients and the LSTM's cell-state path
  (chapter 10.7, 10.14, 10.15).
- :mod:`~rnnkit.explain.gates`: what an LSTM language model's gates and cell units do
  (10.9-10.13, 10.16; Karpathy et al. 2015).
- :mod:`~rnnkit.explain.compare`: parameters and time of RNN, GRU and LSTM (10.17).
- :mod:`~rnnkit.explain.bidirectional`: outputs that depend on future inputs (10.18).
- :mod:`~rnnkit.explain.rnn_loop`: a word RNN fed one word at a time (10.4).
- :mod:`~rnnkit.explain.bptt`: the backward pass written as its recurrences, checked
  against autograd (10.7, 10.15).
- :mod:`~rnnkit.explain.lstm_example`: a 1-unit LSTM with hand-set weights, traced step by
  step (10.16).
- :mod:`~rnnkit.explain.draw`: the chapter's figures drawn from a real module.

Each experiment returns a result object with the numbers, a ``report()`` that prints them
as text and a ``plot(path)`` that writes a PNG; the library never prints by itself.
"""

from rnnkit.explain.bidirectional import BidirectionalResult, run_bidirectional
from rnnkit.explain.bptt import BPTTResult, autograd_bptt, lstm_bptt, rnn_bptt, run_bptt
from rnnkit.explain.compare import CompareResult, run_compare
from rnnkit.explain.draw import Diagram, draw_figure
from rnnkit.explain.gates import GateAnalysis, analyse_gates, trace_lstm
from rnnkit.explain.gradient_flow import GradientFlowResult, run_gradient_flow
from rnnkit.explain.lstm_example import LSTMExampleResult, run_lstm_example
from rnnkit.explain.rnn_loop import RnnLoopResult, run_rnn_loop

__all__ = [
    "BPTTResult",
    "BidirectionalResult",
    "CompareResult",
    "Diagram",
    "GateAnalysis",
    "GradientFlowResult",
    "LSTMExampleResult",
    "RnnLoopResult",
    "analyse_gates",
    "autograd_bptt",
    "draw_figure",
    "lstm_bptt",
    "rnn_bptt",
    "run_bidirectional",
    "run_bptt",
    "run_compare",
    "run_gradient_flow",
    "run_lstm_example",
    "run_rnn_loop",
    "trace_lstm",
]
