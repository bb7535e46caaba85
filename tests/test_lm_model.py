"""The character vocabulary and the language model: shapes, state, sampling, configs."""

from __future__ import annotations

import pytest
import torch

import rnnkit
from rnnkit.data.vocab import UNK_ID, UNK_TEXT, Vocabulary
from rnnkit.models import CELLS, CharLM, CharLMConfig

TEXT = "def f(x):\n    return x + 1\n" * 4


def _model(cell: str = "lstm", **kw: object) -> CharLM:
    vocab = Vocabulary.from_text(TEXT)
    options = {"hidden_size": 12, "embed_size": 5, "num_layers": 2, **kw}
    return CharLM(CharLMConfig(vocab_size=len(vocab), cell=cell, **options), vocab)


def test_vocab_round_trip_and_unknown_class():
    vocab = Vocabulary.from_text(TEXT)
    assert len(vocab) == len(set(TEXT)) + 1
    ids = vocab.encode(TEXT)
    assert ids.dtype == torch.long and ids.min() >= 1
    assert vocab.decode(ids) == TEXT
    odd = vocab.encode("x€r\U0001f600")  # a character above the table, one beyond the BMP
    assert odd.tolist()[1] == UNK_ID and odd.tolist()[3] == UNK_ID
    assert vocab.decode(odd) == f"x{UNK_TEXT}r{UNK_TEXT}"
    assert Vocabulary.from_dict(vocab.to_dict()) == vocab
    with pytest.raises(ValueError, match="one string entry"):
        Vocabulary.from_dict({"chars": "ab", "extra": 1})
    with pytest.raises(ValueError, match="unique"):
        Vocabulary(["a", "a"])


@pytest.mark.parametrize("cell", list(CELLS))
def test_forward_shapes_and_streaming(cell: str):
    model = _model(cell).eval()
    ids = model.vocab.encode(TEXT).view(-1, 2)  # (T, B)
    logits, _ = model(ids)
    assert logits.shape == (ids.size(0), 2, len(model.vocab))
    assert isinstance(model.rnn, CELLS[cell])
    # Two halves with the state carried give the whole: the model streams.
    a, s = model(ids[:10])
    b, _ = model(ids[10:], s)
    torch.testing.assert_close(torch.cat([a, b]), logits)


def test_config_checks_and_unknown_keys():
    with pytest.raises(
        ValueError, match="cell must be one of rnn, lstm, gru, mingru, minlstm; got 'tcn'"
    ):
        CharLMConfig(vocab_size=10, cell="tcn")
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        CharLMConfig(vocab_size=10, hidden_size=0)
    with pytest.raises(ValueError, match="dropout must lie in"):
        CharLMConfig(vocab_size=10, dropout=1.0)
    config = CharLMConfig(vocab_size=10, cell="gru")
    assert CharLMConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown key"):
        CharLMConfig.from_dict({**config.to_dict(), "heads": 4})
    with pytest.raises(ValueError, match="hidden_size has the wrong type"):
        CharLMConfig.from_dict({**config.to_dict(), "hidden_size": "64"})
    with pytest.raises(ValueError, match="vocab_size must equal len"):
        CharLM(CharLMConfig(vocab_size=3), Vocabulary.from_text(TEXT))


def test_forward_rejects_non_id_input():
    with pytest.raises(ValueError, match=r"ids must be a \(T, B\) long tensor"):
        _model()(torch.zeros(3, 2))


def test_sampling_is_seeded_streams_and_never_unknown():
    model = _model()
    first = "".join(model.sample("def", 40, generator=torch.Generator().manual_seed(3)))
    again = "".join(model.sample("def", 40, generator=torch.Generator().manual_seed(3)))
    other = "".join(model.sample("def", 40, generator=torch.Generator().manual_seed(4)))
    assert first == again and first != other and len(first) == 40
    assert UNK_TEXT not in first
    greedy = "".join(model.sample("", 10, temperature=0))
    assert greedy == "".join(model.sample("", 10, temperature=0))
    top1 = "".join(model.sample("", 10, top_k=1, generator=torch.Generator().manual_seed(9)))
    assert top1 == greedy  # k = 1 keeps only the most likely character
    assert model.training  # sampling restores the mode it found
    with pytest.raises(ValueError, match="temperature"):
        next(model.sample("", 1, temperature=-1))


def test_load_is_public():
    assert rnnkit.load is rnnkit.train.load


def test_vocab_min_count_leaves_rare_characters_to_the_unknown_class():
    vocab = Vocabulary.from_text(["aaab", "bbc"], min_count=2)
    assert vocab.chars == ["a", "b"]
    assert vocab.encode("abc").tolist() == [1, 2, UNK_ID]
    with pytest.raises(ValueError, match="min_count must be a positive integer"):
        Vocabulary.from_text("abc", min_count=0)


def test_bits_per_char_against_a_direct_computation():
    from rnnkit.train import bits_per_char

    model = _model("gru").eval().requires_grad_(False)
    ids = model.vocab.encode(TEXT[:41])  # 40 targets
    # One stream, the whole text in one call: bpc is the plain mean of -log2 p.
    logits, _ = model(ids[:-1].unsqueeze(1))
    logp = torch.log_softmax(logits[:, 0], -1)
    direct = -logp.gather(1, ids[1:].unsqueeze(1)).mean().item() / torch.log(torch.tensor(2.0))
    bpc, n = bits_per_char(model, ids, batch_size=1, seq_len=7)  # windows, state carried
    assert n == 40 and bpc == pytest.approx(float(direct), rel=1e-5)
    # With the state reset before every character, each is predicted from zeros alone.
    alone = model(ids[:-1].unsqueeze(0))[0][0]  # (B=40 one-step sequences, V)
    logp1 = torch.log_softmax(alone, -1).gather(1, ids[1:].unsqueeze(1))
    reset, _ = bits_per_char(model, ids, batch_size=1, reset_every=1)
    assert reset == pytest.approx(float(-logp1.mean() / torch.log(torch.tensor(2.0))), rel=1e-5)
    assert reset != pytest.approx(bpc)


def test_forget_bias_sets_the_gate_and_keeps_the_fused_kernel():
    model = _model("lstm", forget_bias=1.0, num_layers=1)
    H = model.config.hidden_size
    b = model.rnn.bias_ih_l0 + model.rnn.bias_hh_l0  # gates i, f, g, o
    torch.testing.assert_close(b[H : 2 * H], torch.ones(H))
    with rnnkit.backends.trace() as ran:
        model(model.vocab.encode("def").unsqueeze(1))
    assert ran[model.rnn].name == "native"
    with pytest.raises(ValueError, match="forget_bias needs a gated cell"):
        CharLMConfig(vocab_size=5, cell="rnn", forget_bias=1.0)
