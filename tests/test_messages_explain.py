"""Error messages of rnnkit.explain's Python entry points not asserted elsewhere (each is
raised before any training or drawing starts)."""

from __future__ import annotations

import pytest
import torch

import rnnkit
from _refusals import raises as _raises
from _refusals import raises_exactly as _raises_exactly
from rnnkit.explain.bidirectional import run_bidirectional
from rnnkit.explain.compare import run_compare
from rnnkit.explain.draw import build, describe, recurrent_module
from rnnkit.explain.gradient_flow import run_gradient_flow
from rnnkit.explain.lstm_example import parse_sequence


def test_bidirectional_and_compare_sizes():
    _raises(ValueError, "bidirectional: vocab must be >= 2, hidden >= 1, steps >= 1; got "
            "vocab=1, hidden=32, steps=300", run_bidirectional, vocab=1)  # fmt: skip
    _raises(ValueError, "bidirectional: max_offset must be >= 1 and length > 2 * max_offset; "
            "got max_offset=3, length=6", run_bidirectional, length=6)  # fmt: skip
    _raises(ValueError, "compare: repeats must be >= 1 and steps >= 0; got 0, 300", run_compare,
            repeats=0)  # fmt: skip
    _raises(ValueError, "compare: repeats must be >= 1 and steps >= 0; got 20, -1", run_compare,
            steps=-1)  # fmt: skip


def test_gradient_flow_sizes():
    _raises(ValueError, "gradient-flow: length must be >= 2; got 1", run_gradient_flow,
            length=1)  # fmt: skip
    _raises(ValueError, "gradient-flow: hidden must be >= 1; got 0", run_gradient_flow,
            hidden=0)  # fmt: skip
    _raises(ValueError, "gradient-flow: steps must be >= 0; got -1", run_gradient_flow,
            steps=-1)  # fmt: skip


def test_draw_messages():
    kinds = "rnn, lstm, gru, bidirectional, seq2seq"
    _raises(ValueError, f"draw: kind must be one of {kinds}; got 'tree'", describe,
            rnnkit.GRU(2, 3), kind="tree")  # fmt: skip
    _raises(ValueError, f"draw: kind must be one of {kinds}; got 'tree'", build, "tree")
    _raises(ValueError, "draw: the model has no recurrent layer to draw; got Linear",
            recurrent_module, torch.nn.Linear(2, 2))  # fmt: skip
    gru = torch.nn.GRU(2, 3)
    gru.weight_ih_l0 = torch.nn.Parameter(torch.zeros(6, 2))
    _raises(ValueError, "draw: weight_ih_l0 of a GRU layer must have 3·H = 9 rows; got the "
            "shape (6, 2)", describe, gru)  # fmt: skip


def test_lstm_example_sequence_messages():
    _raises(TypeError, "lstm_example: sequence must be a str; got list", parse_sequence,
            ["0.3"])  # fmt: skip
    _raises(ValueError, "lstm_example: sequence step 1 is 'X'; expected a number in [-1, 1], "
            "S<number> (store), R or E (recall, erase; optionally with a number)",
            parse_sequence, "0.3,X")  # fmt: skip
    _raises(ValueError, "lstm_example: sequence step 0 has value 2; expected one in [-1, 1]",
            parse_sequence, "S2")  # fmt: skip


def test_cell_names_each_experiment_does_not_know():
    from rnnkit.explain.rnn_loop import run_rnn_loop

    _raises(ValueError, "bidirectional: cell must be one of ", run_bidirectional, cell="tcn")
    _raises(ValueError, "rnn-loop: cell must be one of ", run_rnn_loop, cell="tcn")
    _raises(ValueError, "draw: cell must be one of rnn, ", build, "rnn", cell="tcn")
    _raises(ValueError, "compare: scaling lengths must be >= 1; got (0, 4)", run_compare,
            scaling_lengths=(0, 4))  # fmt: skip


def test_analyse_gates_text_and_layer():
    from rnnkit.data.vocab import Vocabulary
    from rnnkit.explain.gates import analyse_gates
    from rnnkit.models.lm import CharLM, CharLMConfig

    vocab = Vocabulary.from_text("ab")
    model = CharLM(CharLMConfig(len(vocab), num_layers=1, hidden_size=4, embed_size=2), vocab)
    _raises(ValueError, "analyse_gates: text must have at least 2 characters; got 1",
            analyse_gates, model, "a")  # fmt: skip
    _raises(ValueError, "analyse_gates: layer must lie in [0, 0]; got 1", analyse_gates, model,
            "abab", layer=1)  # fmt: skip


def test_rnn_loop_windows_longer_than_the_text():
    from rnnkit.explain.rnn_loop import unigram_perplexity

    ids = torch.tensor([0, 1, 2])
    _raises(ValueError, "rnn-loop: seq_len must be shorter than the text; got seq_len=3 for 3 "
            "words", unigram_perplexity, ids, ids, 3, 3)  # fmt: skip


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        # Each ended in Python's own TypeError, an IndexError or a reshape error.
        (lambda: run_compare(hidden="x"), TypeError, "compare: hidden must be an integer; got "
         "'x'"),
        (lambda: run_compare(repeats=1.5), TypeError, "compare: repeats must be an integer; got "
         "1.5"),
        (lambda: run_compare(scaling_lengths=(4, 2.5)), TypeError, "compare: scaling_lengths[1] "
         "must be an integer; got 2.5"),
        (lambda: run_gradient_flow(hidden=2.5), TypeError, "gradient-flow: hidden must be an "
         "integer; got 2.5"),
        (lambda: run_gradient_flow(batch=0), ValueError, "gradient-flow: batch must be >= 1; got "
         "0"),
        (lambda: run_bidirectional(hidden="x"), TypeError, "bidirectional: hidden must be an "
         "integer; got 'x'"),
        (lambda: run_bidirectional(batch=0), ValueError, "bidirectional: batch must be >= 1; got "
         "0"),
    ],
)  # fmt: skip
def test_experiment_sizes_of_the_wrong_type_or_an_empty_batch(call, error, message):
    _raises(error, message, call)


def test_draw_names_a_cell_it_has_no_figure_for():
    # A user's own cell in an rnnkit layer: its kind is none of the figures'.
    class PeepholeCell(rnnkit.GRUCell):
        kind = "PEEPHOLE"

    class Peephole(rnnkit.GRU):
        cell_class = PeepholeCell

    _raises_exactly(ValueError, "draw: the cell 'PEEPHOLE' has no figure; expected one of "
                    "['RNN_TANH', 'RNN_RELU', 'LSTM', 'GRU', 'MINGRU', 'MINLSTM']", describe,
                    Peephole(2, 3))  # fmt: skip


def test_trace_lstm_needs_a_time_major_layer():
    from rnnkit.explain.gates import trace_lstm

    layer = rnnkit.LSTM(2, 3, batch_first=True)
    _raises_exactly(ValueError, "trace_lstm: layer must be time-major; got batch_first=True",
                    trace_lstm, layer, torch.zeros(1, 4, 2))  # fmt: skip


@pytest.mark.parametrize("a", [0.0, -0.5, float("nan")])
def test_linear_rnn_needs_a_positive_factor(a):
    from rnnkit.explain.gradient_flow import linear_rnn

    _raises_exactly(ValueError, f"linear_rnn: a must be > 0; got {a}", linear_rnn, a, 3)


@pytest.mark.parametrize("steps", [0, 2.5, True])
def test_lstm_example_trained_for_a_number_of_steps_that_is_no_count(steps):
    from rnnkit.explain.lstm_example import run_lstm_example

    _raises_exactly(ValueError, f"lstm_example: steps must be a positive integer; got {steps!r}",
                    run_lstm_example, trained=True, steps=steps)  # fmt: skip
