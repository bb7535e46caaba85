"""Sampling from a CharLM: the pick rule, and the fused C++ loop against the Python one.

The fused loop (``rnnkit.models._sampling.FusedLoop``, ``lm_generate`` in
``kernels/fused_cpu.cpp``) must write the text the Stream path writes from the same seed,
and leave the state and logits the model's own forward pass computes over that text.
"""

from __future__ import annotations

import pytest
import torch

from rnnkit.data.vocab import UNK_ID, Vocabulary
from rnnkit.kernels import fused
from rnnkit.models import _sampling
from rnnkit.models._sampling import BLOCK, FusedLoop, pick_index
from rnnkit.models.lm import CharLM, CharLMConfig

TEXT = "def greet(name):\n    return 'hello, ' + name  # [x] {y}\n" * 3
needs_kernel = pytest.mark.skipif(not fused.available(), reason="no fused CPU kernels here")


def model(cell: str = "lstm", dtype: torch.dtype = torch.float32, **kw) -> CharLM:
    torch.manual_seed(0)
    vocab = Vocabulary.from_text(TEXT)
    m = CharLM(CharLMConfig(vocab_size=len(vocab), cell=cell, hidden_size=24, **kw), vocab)
    with torch.no_grad():  # larger weights than the init: peaked, state-dependent logits
        for p in m.parameters():
            p.mul_(3.0)
    return m.to(dtype)


def text(m: CharLM, n: int, *, python: bool, seed: int = 1, **kw) -> str:
    g = torch.Generator().manual_seed(seed)
    if not python:
        return "".join(m.sample("def ", n, generator=g, **kw))
    saved = FusedLoop.for_model
    FusedLoop.for_model = staticmethod(lambda model: None)  # type: ignore[method-assign]
    try:
        return "".join(m.sample("def ", n, generator=g, **kw))
    finally:
        FusedLoop.for_model = saved  # type: ignore[method-assign]


# ---- the pick rule -----------------------------------------------------------------------


def test_pick_is_the_inverse_cumulative_distribution_at_u() -> None:
    logits = torch.tensor([5.0, 0.0, 1.0, 2.0])  # index 0 is the unknown class
    p = torch.softmax(logits[1:].double(), 0)  # what classes 1..3 get
    edges = torch.cumsum(p, 0)
    for u, want in [(0.0, 1), (float(edges[0]) - 1e-9, 1), (float(edges[0]) + 1e-9, 2),
                    (float(edges[1]) + 1e-9, 3), (1 - 1e-12, 3)]:  # fmt: skip
        assert pick_index(logits, u, 1.0, None) == want, u


def test_pick_never_writes_the_unknown_class_and_keeps_top_k() -> None:
    logits = torch.tensor([9.0, 1.0, 3.0, 2.0, 0.5])
    picks = {pick_index(logits, u / 100, 1.0, None) for u in range(100)}
    assert UNK_ID not in picks and picks == {1, 2, 3, 4}
    assert {pick_index(logits, u / 100, 1.0, 2) for u in range(100)} == {2, 3}
    assert {pick_index(logits, u / 100, 1.0, 1) for u in range(100)} == {2}
    assert pick_index(logits, 0.99, 0.0, None) == 2  # temperature 0: the largest allowed
    assert pick_index(torch.tensor([0.0, 4.0, 4.0]), 0.9, 0.0, None) == 1  # the first of a tie


def test_pick_frequencies_follow_the_tempered_softmax() -> None:
    logits = torch.tensor([0.0, 1.0, 0.2, -0.5, 0.7])
    g = torch.Generator().manual_seed(0)
    n = 20_000
    for temperature in (1.0, 0.5):
        counts = torch.zeros(5)
        for u in torch.rand(n, dtype=torch.float64, generator=g).tolist():
            counts[pick_index(logits, u, temperature, None)] += 1
        want = torch.softmax(logits[1:] / temperature, 0)
        assert counts[0] == 0
        assert torch.allclose(counts[1:] / n, want, atol=0.015), (counts / n, want)


# ---- the fused loop --------------------------------------------------------------------------


@needs_kernel
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("temperature,top_k", [(1.0, None), (0.7, 5), (0.0, None)])
def test_fused_loop_writes_what_the_stream_path_writes(cell, dtype, temperature, top_k) -> None:
    m = model(cell, dtype)
    assert FusedLoop.for_model(m.eval()) is not None
    n = 2 * BLOCK + 17  # several blocks of uniforms and a partial one
    fast = text(m, n, python=False, temperature=temperature, top_k=top_k)
    slow = text(m, n, python=True, temperature=temperature, top_k=top_k)
    assert len(fast) == n and fast == slow
    if temperature:  # a different seed, a different text
        assert text(m, n, python=False, seed=2, temperature=temperature) != fast


@needs_kernel
@pytest.mark.parametrize("top_k", [None, 10**3, 2**31, 10**30])
def test_a_top_k_of_the_whole_vocabulary_or_more_keeps_every_character(top_k) -> None:
    # The kernel takes a C int: a top_k beyond one was lm_generate's TypeError, which
    # printed every weight of the model; the Python loop already kept every character.
    m = model("lstm")
    whole = text(m, BLOCK + 5, python=True, temperature=1.0)
    assert text(m, BLOCK + 5, python=False, temperature=1.0, top_k=top_k) == whole
    assert text(m, BLOCK + 5, python=True, temperature=1.0, top_k=top_k) == whole
    assert text(m, BLOCK + 5, python=False, top_k=len(m.vocab)) == text(m, BLOCK + 5, python=False)


@needs_kernel
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_fused_loop_leaves_the_state_and_logits_of_the_forward_pass(cell: str) -> None:
    m = model(cell, torch.float64, num_layers=3).eval()
    prompt = m.vocab.encode("def ").unsqueeze(1)
    with torch.no_grad():
        logits, state = m(prompt)
        loop = FusedLoop.for_model(m)
        assert loop is not None
        h, c = loop.start(state)
        last = logits[-1, 0].contiguous()
        u = torch.rand(50, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        ids = loop.run(last, h, c, u, 1.0, None)
        whole, final = m(torch.cat([prompt, torch.tensor(ids).unsqueeze(1)]))
    torch.testing.assert_close(last, whole[-1, 0], rtol=0, atol=1e-10)
    want_h = final[0] if isinstance(final, tuple) else final
    torch.testing.assert_close(h, want_h[:, 0], rtol=0, atol=1e-10)
    if cell == "lstm":
        torch.testing.assert_close(c, final[1][:, 0], rtol=0, atol=1e-10)


@needs_kernel
def test_fused_loop_is_taken_only_where_it_computes_the_same_thing() -> None:
    assert FusedLoop.for_model(model("lstm").eval()) is not None
    assert FusedLoop.for_model(model("mingru").eval()) is None  # no kernel for it
    m = model("lstm")
    m.head = torch.nn.Sequential(m.head)  # not a plain Linear head
    assert FusedLoop.for_model(m.eval()) is None


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_cells_without_the_fused_loop_sample_the_same_text_for_a_seed(cell: str) -> None:
    m = model(cell)
    assert _sampling.FusedLoop.for_model(m.eval()) is None
    assert text(m, 80, python=False) == text(m, 80, python=False)
    assert len(text(m, 80, python=False)) == 80
