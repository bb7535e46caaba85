"""What docs/beyond-the-chapter.md shows for a stream that outlives its process or whose
samples come and go: the state saved with safetensors and assigned to a new stream over
the same weights continues it exactly; samples dropped from or added to the state run on
as they would alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import rnnkit


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "MinGRU"])
def test_a_saved_state_continues_the_stream_exactly_after_a_restart(kind, tmp_path: Path) -> None:
    torch.manual_seed(0)
    layer = getattr(rnnkit, kind)(3, 8, num_layers=2).eval()
    x = torch.randn(40, 2, 3)
    stream = rnnkit.Stream(layer)
    stream(x[:10])
    for t in range(10, 20):
        stream.step(x[t])
    # Saved as docs/beyond-the-chapter.md shows: the state's tensors and the step count.
    state = stream.state
    parts = state if isinstance(state, tuple) else (state,)
    save_file({str(i): s for i, s in enumerate(parts)}, tmp_path / "state.st")
    save_file(layer.state_dict(), tmp_path / "weights.st")
    # "Restarted": a new layer and a new stream, built from the files alone.
    again = getattr(rnnkit, kind)(3, 8, num_layers=2).eval()
    again.load_state_dict(load_file(tmp_path / "weights.st"))
    loaded = load_file(tmp_path / "state.st")
    resumed = rnnkit.Stream(again)
    restored = tuple(loaded[str(i)] for i in range(len(loaded)))
    resumed.state = restored if len(restored) > 1 else restored[0]
    resumed.steps = stream.steps
    for t in range(20, 40):
        assert torch.equal(resumed.step(x[t]), stream.step(x[t]))
    assert resumed.steps == stream.steps == 40
    for a, b in zip(parts, restored, strict=True):
        assert torch.equal(a, b)


def test_samples_leave_and_join_a_running_stream_through_its_state() -> None:
    torch.manual_seed(0)
    layer = rnnkit.LSTM(3, 6, dtype=torch.float64)
    x = torch.randn(12, 3, 3, dtype=torch.float64)
    whole, _ = layer(x)
    stream = rnnkit.Stream(layer)
    for t in range(6):
        stream.step(x[t])
    keep = [0, 2]  # sample 1 leaves
    stream.state = tuple(s[:, keep] for s in stream.state)
    for t in range(6, 9):
        torch.testing.assert_close(stream.step(x[t, keep]), whole[t, keep], rtol=0, atol=1e-12)
    # A new sample joins from zeros, as a fresh stream of it alone starts.
    stream.state = tuple(
        torch.cat([s, s.new_zeros(s.size(0), 1, s.size(2))], 1) for s in stream.state
    )
    alone, _ = layer(x[9:, 1:2])
    got = torch.stack([stream.step(torch.cat([x[t, keep], x[t, 1:2]])) for t in range(9, 12)])
    torch.testing.assert_close(got[:, :2], whole[9:, keep], rtol=0, atol=1e-12)
    torch.testing.assert_close(got[:, 2:], alone, rtol=0, atol=1e-12)
    assert stream.batch_size == 3
