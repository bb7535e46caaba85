"""Each error message of rnnkit.models (CharLM and its config) and rnnkit.seq2seq (the
numbers task, attention, the model and its decoders), asserted word for word."""

from __future__ import annotations

import pytest
import torch

from _refusals import raises as _raises
from rnnkit.data.vocab import Vocabulary
from rnnkit.models.lm import CharLM, CharLMConfig
from rnnkit.seq2seq import (
    Attention,
    NumbersTask,
    Seq2Seq,
    Seq2SeqConfig,
    beam_search,
    greedy,
    sample,
)

# ---- CharLM ---------------------------------------------------------------------------


def test_char_lm_config_messages():
    _raises(ValueError, "vocab_size must be at least 2; got 1", CharLMConfig, 1)
    _raises(ValueError, "dropout must lie in [0, 1); got 1.0", CharLMConfig, 3, dropout=1.0)
    _raises(ValueError, "forget_bias needs a gated cell (lstm or gru); got cell 'rnn'",
            CharLMConfig, 3, cell="rnn", forget_bias=1.0)  # fmt: skip
    _raises(ValueError, "model config must be a JSON object; got list", CharLMConfig.from_dict,
            [3])  # fmt: skip
    _raises(ValueError, "model config: unknown key(s) layers", CharLMConfig.from_dict,
            {"vocab_size": 3, "layers": 2})  # fmt: skip
    _raises(ValueError, "config.json: model: hidden_size has the wrong type; got '8'",
            CharLMConfig.from_dict, {"vocab_size": 3, "hidden_size": "8"},
            where="config.json: model")  # fmt: skip


def _lm() -> CharLM:
    vocab = Vocabulary.from_text("ab")
    return CharLM(CharLMConfig(len(vocab), num_layers=1, hidden_size=4, embed_size=2), vocab)


def test_char_lm_messages():
    lm = _lm()
    _raises(ValueError, "CharLM: config.vocab_size must equal len(vocab); expected 3, got 5",
            CharLM, CharLMConfig(5), Vocabulary.from_text("ab"))  # fmt: skip
    _raises(ValueError, "CharLM: ids must be a (T, B) long tensor; got torch.float32 tensor of "
            "shape (2, 1)", lm, torch.zeros(2, 1))  # fmt: skip
    _raises(ValueError, "CharLM.sample: length must be a non-negative integer; got -1", next,
            lm.sample("a", -1))  # fmt: skip
    _raises(ValueError, "CharLM.sample: temperature must be a finite number >= 0; got -0.5",
            next, lm.sample("a", 2, temperature=-0.5))  # fmt: skip
    _raises(ValueError, "CharLM.sample: top_k must be a positive integer; got 0", next,
            lm.sample("a", 2, top_k=0))  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        # Each ended in Python's or the fused loop's own TypeError, naming no argument.
        ({"length": 2.5}, TypeError, "CharLM.sample: length must be a non-negative integer; "
         "got 2.5"),
        ({"temperature": "x"}, ValueError, "CharLM.sample: temperature must be a finite number "
         ">= 0; got 'x'"),
        # The fused loop sampled uniformly at infinity, the Python loop repeated one character.
        ({"temperature": float("inf")}, ValueError, "CharLM.sample: temperature must be a "
         "finite number >= 0; got inf"),
        ({"temperature": float("nan")}, ValueError, "CharLM.sample: temperature must be a "
         "finite number >= 0; got nan"),
        ({"top_k": 2.5}, TypeError, "CharLM.sample: top_k must be a positive integer; got 2.5"),
        ({"prompt": 3}, TypeError, "CharLM.sample: prompt must be a str; got int"),
    ],
)  # fmt: skip
def test_char_lm_sample_checks_its_argument_types(kwargs, error, message):
    _raises(error, message, lambda: list(_lm().sample(**{"length": 2, **kwargs})))


def test_char_lm_config_checks_number_types():
    # float("x") said "could not convert string to float", naming no field.
    _raises(ValueError, "dropout must lie in [0, 1); got 'x'", CharLMConfig, 3, dropout="x")
    _raises(ValueError, "forget_bias must be a number; got 'x'", CharLMConfig, 3,
            forget_bias="x")  # fmt: skip


# ---- seq2seq --------------------------------------------------------------------------


def test_numbers_task_messages():
    _raises(ValueError, "numbers task: unsupported language 'xx'; expected one of ",
            NumbersTask, lang="xx")  # fmt: skip
    _raises(ValueError, "numbers task: direction must be one of words2digits, digits2words; "
            "got 'up'", NumbersTask, direction="up")  # fmt: skip
    _raises(ValueError, "numbers task: the range must satisfy 0 <= min_number <= max_number; "
            "got 5..4", NumbersTask, min_number=5, max_number=4)  # fmt: skip
    _raises(ValueError, "numbers task: test_fraction must lie in (0, 0.5); got 0.5",
            NumbersTask, test_fraction=0.5)  # fmt: skip
    task = NumbersTask(min_number=0, max_number=0)
    other = next(s for s in ("train", "valid", "test") if s != task.split_of(0))
    _raises(ValueError, f"numbers task: the range 0..0 has (almost) no {other} numbers; widen "
            "it", task.sample, other, 1, torch.Generator().manual_seed(0))  # fmt: skip
    _raises(ValueError, "numbers task: split must be one of ('train', 'valid', 'test'); "
            "got 'dev'", task.fixed_set, "dev", 3)  # fmt: skip


def test_attention_messages():
    _raises(ValueError, "Attention: kind must be one of ('none', 'additive', 'dot', "
            "'general'); got 'cosine'", Attention, "cosine", 4, 4)  # fmt: skip
    _raises(ValueError, "Attention: 'dot' needs the decoder hidden size to equal the encoder "
            "output size; expected 6, got 4 (use 'general')", Attention, "dot", 4, 6)  # fmt: skip


def test_seq2seq_config_messages():
    _raises(ValueError, "Seq2SeqConfig: encoder must be one of ", Seq2SeqConfig, 6, 6,
            encoder="transformer")  # fmt: skip
    _raises(ValueError, "Seq2SeqConfig: attention must be one of none, additive, dot, general; "
            "got 'cosine'", Seq2SeqConfig, 6, 6, attention="cosine")  # fmt: skip
    _raises(TypeError, "Seq2SeqConfig: embed_size must be an integer; got 2.5", Seq2SeqConfig,
            6, 6, embed_size=2.5)  # fmt: skip
    _raises(ValueError, "Seq2SeqConfig: decoder_layers must be positive; got 0", Seq2SeqConfig,
            6, 6, decoder_layers=0)  # fmt: skip
    _raises(ValueError, "Seq2SeqConfig: dropout must lie in [0, 1); got 1.0", Seq2SeqConfig,
            6, 6, dropout=1.0)  # fmt: skip
    sizes = {"src_vocab_size": 6, "tgt_vocab_size": 6}
    _raises(ValueError, "Seq2SeqConfig: unknown keys ['heads']; expected some of ",
            Seq2SeqConfig.from_dict, {**sizes, "heads": 2})  # fmt: skip


def test_seq2seq_model_and_decoder_messages():
    config = Seq2SeqConfig(6, 6, embed_size=2, encoder_hidden=4, decoder_hidden=4)
    model = Seq2Seq(config)
    src = torch.ones(3, 2, dtype=torch.long)
    _raises(ValueError, "Seq2Seq: src_lengths must have B = 2 entries, each >= 1; got [3, 0]",
            model.encode, src, torch.tensor([3, 0]))  # fmt: skip
    lengths = torch.tensor([3, 3])
    _raises(ValueError, "beam_search: beam must be >= 1; got 0", beam_search, model, src,
            lengths, 4, beam=0)  # fmt: skip
    _raises(ValueError, "sample: temperature must be > 0; got 0", sample, model, src, lengths,
            4, temperature=0)  # fmt: skip


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        # Compared as given, each ended in Python's own TypeError, naming no field.
        (lambda: NumbersTask(valid_fraction="x"), ValueError,
         "numbers task: valid_fraction must lie in (0, 0.5); got 'x'"),
        (lambda: NumbersTask(min_number="x"), TypeError,
         "numbers task: min_number must be an integer; got 'x'"),
        (lambda: NumbersTask(max_number=9.5), TypeError,
         "numbers task: max_number must be an integer; got 9.5"),
        (lambda: Seq2SeqConfig(6, 6, dropout="x"), ValueError,
         "Seq2SeqConfig: dropout must lie in [0, 1); got 'x'"),
        (lambda: Seq2SeqConfig.from_dict([1]), TypeError,
         "Seq2SeqConfig: expected a JSON object; got list"),
    ],
)  # fmt: skip
def test_seq2seq_settings_of_the_wrong_type(call, error, message):
    _raises(error, message, call)


def test_decoders_check_their_argument_types():
    model = Seq2Seq(Seq2SeqConfig(6, 6, embed_size=2, encoder_hidden=4, decoder_hidden=4))
    src, lengths = torch.ones(3, 2, dtype=torch.long), torch.tensor([3, 3])
    _raises(TypeError, "beam_search: beam must be an integer >= 1; got 2.0", beam_search, model,
            src, lengths, 4, beam=2.0)  # fmt: skip
    _raises(TypeError, "sample: temperature must be a number > 0; got 'x'", sample, model, src,
            lengths, 4, temperature="x")  # fmt: skip


@pytest.mark.parametrize("max_len", [0, -1, 2.0, True])
def test_decoders_need_a_positive_max_len(max_len):
    # greedy and sample ended in torch.stack's "expects a non-empty TensorList", beam
    # search answered an empty, unfinished output.
    model = Seq2Seq(Seq2SeqConfig(6, 6, embed_size=2, encoder_hidden=4, decoder_hidden=4))
    src, lengths = torch.ones(3, 2, dtype=torch.long), torch.tensor([3, 3])
    error = ValueError if isinstance(max_len, int) and not isinstance(max_len, bool) else TypeError
    for name, decode in (("greedy", greedy), ("sample", sample), ("beam_search", beam_search)):
        _raises(error, f"{name}: max_len must be a positive integer; got {max_len!r}", decode,
                model, src, lengths, max_len)  # fmt: skip


def test_memory_model_and_attention_arguments():
    from rnnkit.models.memory import MemoryModel, MemoryTaskConfig

    # "no" was taken as true; MemoryModel(3) and Attention(.., "4", ..) failed inside.
    _raises(ValueError, "chrono must be a bool; got 'no'", MemoryTaskConfig, chrono="no")
    _raises(TypeError, "MemoryModel: config must be a MemoryTaskConfig; got int", MemoryModel, 3)
    _raises(ValueError, "Attention: query_size must be a positive integer; got '4'", Attention,
            "general", "4", 4)  # fmt: skip
