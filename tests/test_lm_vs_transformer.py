"""The pieces of benchmarks/lm_vs_transformer.py that its numbers rest on: the transformer's
key-value cache, its held-out scoring, the parameter matching and the grid."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import lm_vs_transformer as bench
from rnnkit.data.vocab import Vocabulary


@pytest.fixture
def gpt():
    torch.manual_seed(0)
    vocab = Vocabulary.from_text("abcdefghij klmnop\n")
    return bench.TinyGPT(vocab, d=16, layers=2, heads=4, context=12).double()


def test_the_key_value_cache_gives_the_full_forward_pass(gpt):
    ids = torch.randint(1, len(gpt.vocab), (12, 1))
    full, _ = gpt(ids)  # (12, 1, V), causal over all 12
    caches = [[] for _ in gpt.blocks]
    prefix, _ = gpt(ids[:5], caches=caches)
    steps = [gpt(ids[t : t + 1], caches=caches)[0] for t in range(5, 12)]
    torch.testing.assert_close(torch.cat([prefix, *steps]), full, rtol=0, atol=1e-12)
    caches = [[] for _ in gpt.blocks]
    gpt(ids[:5], caches=caches)
    with pytest.raises(ValueError, match="one position at a time; got 2"):
        gpt(ids[5:7], caches=caches)


def test_the_model_is_causal(gpt):
    ids = torch.randint(1, len(gpt.vocab), (12, 2))
    changed = ids.clone()
    changed[7:] = (changed[7:] + 1) % len(gpt.vocab)
    torch.testing.assert_close(gpt(ids)[0][:7], gpt(changed)[0][:7], rtol=0, atol=0)


@pytest.mark.parametrize("N", [2, 7, 12, 13, 30, 41])
def test_held_out_scoring_scores_every_character_once_with_its_context(gpt, N):
    ids = torch.randint(1, len(gpt.vocab), (N,))
    C, half = min(gpt.context, N), max(min(gpt.context, N) // 2, 1)
    # Brute force, one window at a time: windows of C starting every half context (the
    # last one flush with the end); each target scored in the first window that holds it
    # and has not scored it, seeing t + 1 characters before it.
    starts = list(range(0, max(N - C, 0) + 1, half))
    if starts[-1] + C < N:
        starts.append(N - C)
    total, done = 0.0, 0
    for s in starts:
        with torch.no_grad():
            logits = gpt(ids[s : s + C].unsqueeze(1))[0][:, 0]  # (C, V)
        for t in range(C - 1):
            target = s + 1 + t
            if target > done:
                total -= float(F.log_softmax(logits[t], -1)[ids[target]])
                assert s == 0 or t + 1 >= half  # at least half a context before it
        done = s + C - 1
    assert done == N - 1  # every target 1..N-1 scored
    bpc = bench.gpt_bits_per_char(gpt, ids, batch=3)
    assert bpc == pytest.approx(total / (N - 1) / math.log(2), rel=1e-12)


def test_the_transformer_matches_the_lstm_parameter_count():
    V, target = 166, bench.lm_parameters("lstm", 166, 64, 128, 2)
    layers = bench.gpt_shape(target, V, d=64, heads=4, context=256)
    vocab = Vocabulary.from_text("".join(chr(33 + i) for i in range(V - 1)))
    assert len(vocab) == V
    n = sum(p.numel() for p in bench.TinyGPT(vocab, 64, layers, 4, 256).parameters())
    assert abs(n - target) <= 0.1 * target
    with pytest.raises(SystemExit, match="no depth gives"):
        bench.gpt_shape(target, V, d=512, heads=4, context=256)


@pytest.mark.parametrize("cell", ["gru", "mingru", "minlstm", "rnn"])
def test_each_cell_is_sized_to_the_lstm_parameter_count(cell):
    target = bench.lm_parameters("lstm", 166, 64, 128, 2)
    H = bench.rnn_hidden_for(cell, target, 166, 64, 2)
    count = bench.lm_parameters(cell, 166, 64, H, 2)
    assert abs(count - target) <= min(
        abs(bench.lm_parameters(cell, 166, 64, h, 2) - target) for h in (H - 1, H + 1)
    )
    assert abs(count - target) < 0.02 * target


def test_grid_and_model_names_are_checked():
    args = bench.parser().parse_args(["--grid", "hidden=64,96", "lr=1e-3", "--minutes", "2"])
    specs = bench.specs_of(args, V=100)
    assert [s["name"] for s in specs] == ["hidden=64 lr=0.001", "hidden=96 lr=0.001"]
    assert all(s["hidden"] in (64, 96) and s["minutes"] == 2 for s in specs)
    args = bench.parser().parse_args(["--variants", "default", "batch=64,lr=6e-3"])
    specs = bench.specs_of(args, V=100)
    assert [s["name"] for s in specs] == ["default", "batch=64 lr=0.006"]
    assert (specs[0]["batch"], specs[1]["batch"], specs[1]["lr"]) == (32, 64, 6e-3)
    args = bench.parser().parse_args(["--variants", "default", "--models", "transformer"])
    assert [s["kind"] for s in bench.specs_of(args, V=166)] == ["rnn", "transformer"]
    args = bench.parser().parse_args([])
    assert [s["name"].split()[0] for s in bench.specs_of(args, V=166)] == [
        "lstm",
        "gru",
        "mingru",
        "minlstm",
        "transformer",
    ]
    for bad, message in [
        (["--variants", "batch=64,size=2"], "--variants: expected KEY=V,KEY=V"),
        (["--grid", "depth=2"], "--grid: expected KEY=V1,V2 with KEY in"),
        (["--models", "lstm,bert"], "--models: expected names from"),
    ]:
        with pytest.raises(SystemExit, match=message):
            bench.specs_of(bench.parser().parse_args(bad), V=100)
