"""Truncated BPTT: windows over unbounded streams, the carried detached state, streams."""

from __future__ import annotations

import itertools
import re
import textwrap
from pathlib import Path

import pytest
import torch

from rnnkit import GRU
from rnnkit.tasks.lm import LanguageModelTask, LMOptions
from rnnkit.train import StreamWindows, TrainConfig, detach_state, truncated_bptt, windows
from rnnkit.train.distributed import Context


def test_windows_cut_an_unbounded_stream_of_ragged_chunks():
    def stream():  # 0, 1, 2, ... forever, in chunks of 3, 1, 5, 2, 3, ... steps
        start = 0
        for k in itertools.cycle([3, 1, 5, 2]):
            yield torch.arange(start, start + k).view(-1, 1)  # (k, B=1)
            start += k

    got = list(itertools.islice(windows(stream(), 4), 5))
    for j, (x, y) in enumerate(got):
        assert x.view(-1).tolist() == list(range(4 * j, 4 * j + 4))
        assert y.view(-1).tolist() == list(range(4 * j + 1, 4 * j + 5))
    with pytest.raises(ValueError, match="seq_len must be a positive integer"):
        next(windows(stream(), 0))


def test_truncated_bptt_carries_state_but_cuts_gradients():
    layer = GRU(3, 5).double()
    x = torch.randn(12, 2, 3, dtype=torch.double, requires_grad=True)
    whole, _ = layer(x)
    outs = list(truncated_bptt(layer, ((x[t : t + 4], None) for t in range(0, 12, 4))))
    # Forward: the state carried across windows gives the outputs of the whole sequence.
    torch.testing.assert_close(torch.cat([o for o, _, _ in outs]), whole)
    # Backward: a loss on the last window reaches only that window's inputs.
    outs[-1][0].sum().backward()
    assert x.grad[:8].abs().sum() == 0
    assert x.grad[8:].abs().sum() > 0


def test_detach_state_handles_tuples_and_none():
    h = torch.ones(2, requires_grad=True) * 2
    c = torch.ones(2, requires_grad=True) * 3
    out = detach_state((h, c))
    assert isinstance(out, tuple) and not any(t.requires_grad for t in out)
    assert detach_state(None) is None
    with pytest.raises(TypeError, match="detach_state"):
        detach_state({"h": h})


def test_stream_windows_layout_wrap_and_process_slices():
    ids = torch.arange(41)
    sw = StreamWindows(ids, batch_size=4, seq_len=3)  # 4 streams of 10 steps: 3 windows
    assert sw.windows_per_pass == 3
    x, y, new_pass = next(sw)
    assert new_pass
    assert x[:, 0].tolist() == [0, 1, 2] and x[:, 1].tolist() == [10, 11, 12]
    assert torch.equal(y, x + 1)
    x2, _, new_pass = next(sw)
    assert not new_pass and x2[:, 0].tolist() == [3, 4, 5]  # contiguous text per stream
    next(sw)
    x4, _, new_pass = next(sw)
    assert new_pass and torch.equal(x4, x)  # second pass starts over
    # Two processes reading halves of the streams read exactly what one process reads.
    halves = [StreamWindows(ids, 4, 3, rows=slice(r * 2, r * 2 + 2)) for r in range(2)]
    whole = StreamWindows(ids, 4, 3)
    for _ in range(4):
        (xa, ya, _), (xb, yb, _), (xw, yw, _) = next(halves[0]), next(halves[1]), next(whole)
        assert torch.equal(torch.cat([xa, xb], 1), xw) and torch.equal(torch.cat([ya, yb], 1), yw)
    sw.load_state_dict({"position": 1})
    assert torch.equal(next(sw)[0], x2)


def test_stream_windows_too_short_names_the_sizes():
    message = "too short for one window: its 20 character(s)"
    with pytest.raises(ValueError, match=re.escape(message)):
        StreamWindows(torch.arange(20), batch_size=4, seq_len=8)


def test_the_lm_task_carries_the_detached_state_and_drops_it_at_a_new_pass(tmp_path: Path):
    path = tmp_path / "text.txt"
    path.write_text(Path(textwrap.__file__).read_text(encoding="utf-8")[:3000], encoding="utf-8")
    options = LMOptions(
        text=str(path), hidden_size=16, embed_size=8, num_layers=2, seq_len=16, batch_size=4,
        eval_chars=100, sample_chars=0, dropout=0.0,  # the state alone: no dropout
    )  # fmt: skip
    task = LanguageModelTask(options)
    ctx = Context(0, 1, torch.device("cpu"))
    train = TrainConfig(steps=12)
    task.prepare(train, ctx)
    model = task.build_model()
    batches = task.batches(train, ctx)
    per_pass = batches.windows.windows_per_pass
    assert per_pass >= 3
    (x1, y1, new1), (x2, y2, new2) = next(batches), next(batches)
    assert new1 and not new2 and torch.equal(y1[:-1], x1[1:]) and torch.equal(x2[0], y1[-1])
    loss1 = task.loss(model, (x1, y1, new1), "cpu")
    assert task.carried(ctx).keys() == {"h", "c"}
    assert task.carried(ctx)["h"].shape == (2, 4, 16)  # (L, B, H)
    loss2 = task.loss(model, (x2, y2, new2), "cpu")
    # The carried state is the state after both windows read as one sequence ...
    _, whole = model(torch.cat([x1, x2]).long())
    for carried, direct in zip(task.state, whole, strict=True):
        torch.testing.assert_close(carried, direct)
        assert not carried.requires_grad  # ... with the gradient cut at the window edge
    loss2.backward()
    assert loss1.requires_grad and torch.isfinite(loss2)
    # A checkpoint's carried state comes back exactly.
    saved = {k: v.clone() for k, v in task.carried(ctx).items()}
    task.state = None
    task.load_carried(saved, ctx)
    assert all(torch.equal(a, b) for a, b in zip(task.state, whole, strict=True))
    # A new pass starts the streams over: the old context is dropped.
    for _ in range(per_pass - 2):
        next(batches)
    x, y, new = next(batches)
    assert new and torch.equal(x, x1)
    again = task.loss(model, (x, y, new), "cpu")
    task.state = None
    fresh = task.loss(model, (x1, y1, True), "cpu")
    assert torch.equal(again, fresh)
