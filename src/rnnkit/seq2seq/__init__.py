"""Sequence to sequence (chapter 10.19): encoder-decoder with attention, and the numbers task.

- :mod:`~rnnkit.seq2seq.model`: the encoder-decoder with input feeding;
- :mod:`~rnnkit.seq2seq.attention`: none / additive / dot / general, padding masked;
- :mod:`~rnnkit.seq2seq.decode`: greedy, beam search, sampling;
- :mod:`~rnnkit.seq2seq.data`: numbers in words <-> digits with ``num2words``;
- :mod:`~rnnkit.seq2seq.run`, :mod:`~rnnkit.seq2seq.evaluate`: a trained run, translation
  and scoring.

Training is the one loop's: ``rnnkit train numbers`` or
``rnnkit.train.train("numbers", NumbersOptions(...))``, with the task in
:mod:`rnnkit.tasks.numbers`.
"""

from rnnkit.seq2seq.attention import Attention, Memory
from rnnkit.seq2seq.data import CharVocab, NumbersTask
from rnnkit.seq2seq.decode import Decoded, beam_search, greedy, sample
from rnnkit.seq2seq.evaluate import EvalResult, Translation, evaluate, plot_attention, translate
from rnnkit.seq2seq.model import DecoderState, Seq2Seq, Seq2SeqConfig
from rnnkit.seq2seq.run import NumbersRun, is_numbers_run, load_run

__all__ = [
    "Attention",
    "CharVocab",
    "Decoded",
    "DecoderState",
    "EvalResult",
    "Memory",
    "NumbersRun",
    "NumbersTask",
    "Seq2Seq",
    "Seq2SeqConfig",
    "Translation",
    "beam_search",
    "evaluate",
    "greedy",
    "is_numbers_run",
    "load_run",
    "plot_attention",
    "sample",
    "translate",
]
