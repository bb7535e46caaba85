"""What tests comparing layers' results share: a nested result as its list of tensors."""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.utils.rnn import PackedSequence


def tensors(result: Any) -> list[torch.Tensor]:
    """The tensors of a (possibly nested) result in order, packed sequences by their data."""
    if isinstance(result, PackedSequence):
        return [result.data]
    if isinstance(result, (tuple, list)):
        return [t for r in result for t in tensors(r)]
    return [result]
