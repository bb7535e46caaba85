"""Under torch.autocast a lower-precision layer may feed an rnnkit layer, as with torch.nn."""

from __future__ import annotations

import pytest
import torch

import rnnkit


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_a_bf16_linear_feeds_the_layer_as_it_feeds_torch_nn(name):
    torch.manual_seed(0)
    ref = getattr(torch.nn, name)(8, 16, num_layers=2)
    ours = getattr(rnnkit, name).from_torch(ref)
    lin = torch.nn.Linear(4, 8)
    x = torch.randn(7, 3, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected, _ = ref(lin(x))
        got, state = ours(lin(x))
    torch.testing.assert_close(got.float(), expected.float(), rtol=0, atol=2e-2)
    # The state returned inside autocast goes back in: the stream continues.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours(lin(x), state)


@pytest.mark.parametrize(
    "layer", [rnnkit.MinGRU(8, 16), rnnkit.LSTM(8, 16, layer_norm=True, backend="reference")]
)
def test_bf16_autocast_runs_every_backend_close_to_fp32(layer):
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 8)
    x = torch.randn(9, 2, 4)
    full, _ = layer(lin(x))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low, _ = layer(lin(x))
    torch.testing.assert_close(low.float(), full, rtol=0, atol=5e-2)


def test_outside_autocast_a_dtype_mismatch_is_still_an_error():
    with pytest.raises(ValueError, match=r"input\.dtype must equal the parameters\.dtype"):
        rnnkit.LSTM(4, 8)(torch.randn(3, 2, 4, dtype=torch.float64))
