"""``CharLM.sample`` from Python takes the numbers a user's code holds: a NumPy float
read from an array (np.float32 is no Python float) as temperature, and refuses an
integer too large for a float in the one line every other temperature gets."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from rnnkit.data.vocab import Vocabulary
from rnnkit.models.lm import CharLM, CharLMConfig


@pytest.fixture
def model() -> CharLM:
    torch.manual_seed(0)
    vocab = Vocabulary.from_text("the quick brown fox\n")
    return CharLM(CharLMConfig(vocab_size=len(vocab), hidden_size=8, embed_size=4), vocab)


def _text(model: CharLM, temperature: object) -> str:
    gen = torch.Generator().manual_seed(3)
    return "".join(model.sample("the ", 40, temperature=temperature, generator=gen))


@pytest.mark.parametrize("value", [np.float32(0.5), np.float16(0.5), np.int64(2)])
def test_numpy_temperatures_sample_as_the_python_number(model: CharLM, value: object) -> None:
    assert _text(model, value) == _text(model, float(value))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [10**400, -(10**400), np.float32("nan"), np.bool_(True)],
    ids=["10**400", "-10**400", "float32-nan", "bool_"],
)
def test_refused_in_one_line(model: CharLM, value: object) -> None:
    message = f"CharLM.sample: temperature must be a finite number >= 0; got {value!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        _text(model, value)
