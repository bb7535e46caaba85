"""Sequence to sequence (chapter 10.19): encoder-decoder with attention, and the numbers task.

- :mod:`~rnnkit.seq2seq.model`: the encoder-decoder with input feeding;
- :mod:`~rnnkit.seq2seq.attention`: none / additive / dot / general, padding masked;
- :mod:`~rnnkit.seq2seq.decode`: greedy, beam search, sampling;
- :mod:`~rnnkit.seq2seq.data`: numbers in words <-> digits with ``num2words``;
- :mod:`~rnnkit.seq2seq.train`, :mod:`~rnnkit.seq2seq.checkpoint`,
  :mod:`~rnnkit.seq2seq.evaluate`: training, the run folder, translation and scoring.
"""

from rnnkit.seq2seq.attention import Attention, Memory
from rnnkit.seq2seq.checkpoint import NumbersRun, load_run
from rnnkit.seq2seq.data import CharVocab, NumbersTask
from rnnkit.seq2seq.decode import Decoded, beam_search, greedy, sample
from rnnkit.seq2seq.evaluate import EvalResult, Translation, evaluate, plot_attention, translate
from rnnkit.seq2seq.model import DecoderState, Seq2Seq, Seq2SeqConfig
from rnnkit.seq2seq.train import NumbersConfig, train_numbers

__all__ = [
    "Attention",
    "CharVocab",
    "Decoded",
    "DecoderState",
    "EvalResult",
    "Memory",
    "NumbersConfig",
    "NumbersRun",
    "NumbersTask",
    "Seq2Seq",
    "Seq2SeqConfig",
    "Translation",
    "beam_search",
    "evaluate",
    "greedy",
    "load_run",
    "plot_attention",
    "sample",
    "train_numbers",
    "translate",
]
