"""The future-label tagging task and the uni- against bidirectional run."""

from __future__ import annotations

import pytest
import torch

from rnnkit.explain.bidirectional import accuracy_per_offset, run_bidirectional, shifted_symbols


def test_shifted_symbols_labels() -> None:
    offsets = range(-2, 3)
    x, y = shifted_symbols(3, 6, 5, offsets, generator=torch.Generator().manual_seed(0))
    tokens = x.argmax(-1)  # (T, B)
    assert x.shape == (6, 3, 5) and y.shape == (6, 3, 5)
    for j, d in enumerate(offsets):
        for t in range(6):
            if 0 <= t + d < 6:
                assert torch.equal(y[t, :, j], tokens[t + d])
            else:
                assert bool((y[t, :, j] == -100).all())


def test_accuracy_ignores_unscored_steps() -> None:
    y = torch.tensor([[[1, -100]], [[0, 2]]])  # (T=2, B=1, offsets=2)
    logits = torch.zeros(2, 1, 2, 3)
    logits[0, 0, 0, 1] = logits[1, 0, 0, 1] = logits[1, 0, 1, 2] = 1.0
    torch.testing.assert_close(accuracy_per_offset(logits, y), torch.tensor([0.5, 1.0]))


def test_only_the_bidirectional_layer_learns_the_future(tmp_path) -> None:
    result = run_bidirectional(
        cell="gru", hidden=8, length=6, vocab=3, max_offset=1, steps=80, batch=64
    )
    uni, wide, bi = result.models
    assert result.offsets == [-1, 0, 1]
    assert bi.params == wide.params or abs(bi.params - wide.params) < 0.05 * bi.params
    assert bi.final[2] > 0.9  # the future label, d = +1
    assert uni.final[2] < 0.5 and wide.final[2] < 0.5  # chance is 1/3
    assert uni.final[0] > 0.9  # the past is learned by both
    assert "bidirectional, H = 8 per direction" in result.report()
    path = result.plot(tmp_path / "bi.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_run_bidirectional_checks_arguments() -> None:
    with pytest.raises(ValueError, match="cell must be one of"):
        run_bidirectional(cell="tcn")
    with pytest.raises(ValueError, match="length > 2 \\* max_offset"):
        run_bidirectional(length=4, max_offset=2)
