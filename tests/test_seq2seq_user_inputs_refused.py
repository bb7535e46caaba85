"""The encoder-decoder's Python API refuses a user's own mistakes in one line naming the
argument, what was expected and what was given: lengths that are no integer tensor, an
empty batch, a target of no steps or another batch size, a config a decoder cannot run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _refusals import raises_exactly
from rnnkit.seq2seq import Seq2Seq, Seq2SeqConfig, beam_search, greedy


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(attention: str = "general") -> Seq2Seq:
    torch.manual_seed(0)
    config = Seq2SeqConfig(
        10, 8, embed_size=4, encoder_hidden=4, decoder_hidden=8, attention=attention
    )
    return Seq2Seq(config)


SRC = torch.tensor([[5], [6], [7]])  # (S, B) = (3, 1)


@pytest.mark.parametrize(
    ("lengths", "message"),
    [
        # was "'list' object has no attribute 'numel'"
        ([3], "Seq2Seq: src_lengths must be an integer tensor (B,) of lengths; got list"),
        (3, "Seq2Seq: src_lengths must be an integer tensor (B,) of lengths; got int"),
        # was "GRU: lengths must have an integer dtype; got torch.float32"
        (torch.tensor([3.0]), "Seq2Seq: src_lengths must be an integer tensor (B,) of lengths; "
         "got torch.float32 tensor of shape (1,)"),
        (torch.tensor([True]), "Seq2Seq: src_lengths must be an integer tensor (B,) of lengths; "
         "got torch.bool tensor of shape (1,)"),
        (torch.tensor([[3]]), "Seq2Seq: src_lengths must be an integer tensor (B,) of lengths; "
         "got torch.int64 tensor of shape (1, 1)"),
    ],
)  # fmt: skip
def test_src_lengths_that_are_no_integer_tensor_are_refused_by_name(
    lengths: object, message: str
) -> None:
    model = tiny()
    for decode in (greedy, lambda *a: beam_search(*a, beam=2)):
        raises_exactly(TypeError, message, decode, model, SRC, lengths, 4)
    raises_exactly(TypeError, message, model.encode, SRC, lengths)


def test_an_empty_batch_is_refused() -> None:
    # src_lengths.min() said "Expected reduction dim to be specified for input.numel() == 0".
    raises_exactly(
        ValueError,
        "Seq2Seq: src must have B >= 1 columns; got shape (3, 0)",
        greedy,
        tiny(),
        torch.zeros(3, 0, dtype=torch.long),
        torch.zeros(0, dtype=torch.long),
        4,
    )


def test_the_padding_id_inside_a_length_is_refused_and_past_it_taken() -> None:
    # Ids from the caller's own vocabulary may use 0, rnnkit's <pad>: it was embedded as
    # zeros inside the length, a silent hole in the source.
    model = tiny()
    src = torch.tensor([[5, 5], [0, 6], [7, 0]])  # column 0: <pad> at step 1 of 3
    message = (
        "Seq2Seq: src must not hold the padding id 0 within src_lengths (ids 0-3 are <pad>, "
        "<bos>, <eos>, <unk>); got it at step 1 of column 0, whose length is 3"
    )
    for decode in (greedy, lambda *a: beam_search(*a, beam=2)):
        raises_exactly(ValueError, message, decode, model, src, torch.tensor([3, 2]), 4)
    raises_exactly(ValueError, message, model.encode, src, torch.tensor([3, 2]))
    # Past the lengths, padding is what it is for.
    memory = model.encode(torch.tensor([[5, 5], [6, 6], [7, 0]]), torch.tensor([3, 2]))
    assert memory.mask.tolist() == [[True, True, True], [True, True, False]]


@pytest.mark.parametrize(
    ("tgt_in", "shape"),
    [
        (torch.zeros(0, 1, dtype=torch.long), "(0, 1)"),  # was "index 0 is out of bounds"
        (torch.ones(2, 2, dtype=torch.long), "(2, 2)"),  # was torch.cat's "Sizes of tensors"
    ],
)
def test_a_target_of_no_steps_or_another_batch_is_refused(tgt_in: torch.Tensor, shape: str) -> None:
    raises_exactly(
        ValueError,
        f"Seq2Seq: tgt_in must have T >= 1 steps and B = 1 columns as src; got shape {shape}",
        tiny(),
        SRC,
        torch.tensor([3]),
        tgt_in,
    )


@pytest.mark.parametrize("field", ["bidirectional", "input_feeding"])
@pytest.mark.parametrize("value", ["no", 0, 1, None])
def test_a_switch_must_be_a_bool(field: str, value: object) -> None:
    # bidirectional="no" built a bidirectional encoder (a non-empty string is true).
    raises_exactly(
        TypeError,
        f"Seq2SeqConfig: {field} must be True or False; got {value!r}",
        Seq2SeqConfig,
        10,
        8,
        **{field: value},
    )


@pytest.mark.parametrize("size", [1, 2])
def test_a_target_vocabulary_without_an_end_id_is_refused(size: int) -> None:
    # 1 failed in the embedding ("index out of range in self"), 2 scored every output -inf.
    raises_exactly(
        ValueError,
        "Seq2SeqConfig: tgt_vocab_size must be at least 3 (ids 0, 1, 2 are padding, begin and "
        f"end of sequence); got {size}",
        Seq2SeqConfig,
        10,
        size,
    )
    model = Seq2Seq(Seq2SeqConfig(10, 3, embed_size=2, encoder_hidden=2, decoder_hidden=2))
    assert [d.tokens for d in greedy(model, SRC, torch.tensor([3]), 4)] == [[]]  # EOS only


def test_numpy_integer_sizes_are_taken_as_ints() -> None:
    config = Seq2SeqConfig(np.int64(10), np.int32(8), encoder_hidden=np.int64(4))
    assert (config.src_vocab_size, config.tgt_vocab_size, config.encoder_hidden) == (10, 8, 4)
    assert all(type(v) is int for v in (config.src_vocab_size, config.encoder_hidden))
    assert Seq2SeqConfig.from_dict(config.to_dict()) == config


def test_dot_attention_names_the_sizes_that_must_agree() -> None:
    raises_exactly(
        ValueError,
        "Seq2SeqConfig: attention 'dot' needs the decoder hidden size to equal the encoder "
        "output size: decoder_hidden must be 8 (encoder_hidden 4 x 2 directions); got 6 "
        "(use 'general')",
        Seq2SeqConfig,
        10,
        8,
        encoder_hidden=4,
        decoder_hidden=6,
        attention="dot",
    )
    raises_exactly(
        ValueError,
        "Seq2SeqConfig: attention 'dot' needs the decoder hidden size to equal the encoder "
        "output size: decoder_hidden must be 4 (encoder_hidden 4 x 1 direction); got 8 "
        "(use 'general')",
        Seq2SeqConfig,
        10,
        8,
        encoder_hidden=4,
        decoder_hidden=8,
        bidirectional=False,
        attention="dot",
    )
