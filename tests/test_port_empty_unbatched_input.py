"""An unbatched (T, I) input of 0 steps, which torch.nn refuses too: the message says what
is expected of it, and no longer suggests ``lengths``, which an unbatched input cannot take.
"""

from __future__ import annotations

import re

import pytest
import torch

import rnnkit
from rnnkit._checks import ShapeError


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU", "MinGRU"])
def test_an_empty_unbatched_input_is_refused_in_one_line(kind: str) -> None:
    layer = getattr(rnnkit, kind)(3, 5)
    message = (
        f"{kind}: input has T = 0 time steps; expected T >= 1 for an unbatched (T, I) input; "
        "got shape (0, 3)"
    )
    with pytest.raises(ShapeError, match=f"^{re.escape(message)}$"):
        layer(torch.zeros(0, 3))
    with pytest.raises(RuntimeError):  # the type torch.nn raises for it
        torch.nn.LSTM(3, 5)(torch.zeros(0, 3))


def test_the_advice_to_pass_lengths_stays_for_a_batched_input() -> None:
    message = (
        "LSTM: input has T = 0 time steps; expected T >= 1, or lengths (all 0) to run empty "
        "sequences"
    )
    with pytest.raises(ShapeError, match=f"^{re.escape(message)}$"):
        rnnkit.LSTM(3, 5)(torch.zeros(0, 2, 3))
    out, _ = rnnkit.LSTM(3, 5)(torch.zeros(0, 2, 3), lengths=[0, 0])
    assert out.shape == (0, 2, 5)
