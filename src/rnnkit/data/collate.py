"""Batching variable-length sequences for the layers' ``lengths=`` (no PackedSequence).

A ``DataLoader`` hands :func:`pad_collate` a list of samples; it right-pads the sequences
into one tensor and returns their true lengths beside it, which every rnnkit layer takes
as ``lengths=``: outputs past a sequence's end are zero and the final state is the state
at its last valid step, so the padding never leaks into the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor


def pad_collate(
    batch: Sequence[Any], *, batch_first: bool = True, padding_value: float = 0.0
) -> tuple[Any, ...]:
    """``(padded, lengths, *rest)`` from samples ``seq`` or ``(seq, *rest)``.

    ``seq`` is a (T_i, ...) tensor (or anything ``torch.as_tensor`` takes); the other parts
    of a sample (labels, per-step tags) are collated as ``torch.utils.data`` does by default.
    Use it as ``DataLoader(data, batch_size=..., collate_fn=pad_collate)``; for other
    options, ``functools.partial(pad_collate, batch_first=False)``.

    Shape:
        padded (B, T, ...) with ``batch_first`` (else (T, B, ...)), T = max T_i;
        lengths (B,) int64 on the CPU.

    Example:
        >>> x, lengths = pad_collate([torch.ones(3, 2), torch.ones(1, 2)])
        >>> tuple(x.shape), lengths.tolist()
        ((2, 3, 2), [3, 1])
    """
    if not isinstance(batch, Sequence):
        raise TypeError(f"pad_collate: batch must be a list of samples; got {type(batch).__name__}")
    if len(batch) == 0:
        raise ValueError("pad_collate: the batch is empty")
    pairs = [s if isinstance(s, (tuple, list)) else (s,) for s in batch]
    width = len(pairs[0])
    for i, p in enumerate(pairs):
        if len(p) != width:
            raise ValueError(
                "pad_collate: every sample must have the same number of parts; "
                f"sample {i} has {len(p)}, sample 0 has {width}"
            )
    seqs = [torch.as_tensor(p[0]) for p in pairs]
    for i, s in enumerate(seqs):
        if s.dim() == 0:
            raise ValueError(
                f"pad_collate: sample {i}'s sequence must have a time dimension; got a scalar"
            )
        if s.shape[1:] != seqs[0].shape[1:]:
            raise ValueError(
                f"pad_collate: sample {i}'s steps have shape {tuple(s.shape[1:])}; sample 0's "
                f"have {tuple(seqs[0].shape[1:])}"
            )
    lengths = torch.tensor([s.size(0) for s in seqs], dtype=torch.long)  # (B,)
    padded = torch.nn.utils.rnn.pad_sequence(
        seqs, batch_first=batch_first, padding_value=padding_value
    )
    if width == 1:
        return padded, lengths
    rest = [_collate_part([p[k] for p in pairs]) for k in range(1, width)]
    return (padded, lengths, *rest)


def _collate_part(values: list[Any]) -> Any:
    """Labels stack; per-step parts (tags of unequal lengths) are padded with -100, which
    ``F.cross_entropy`` ignores."""
    from torch.utils.data import default_collate

    ragged = len({v.shape for v in values if isinstance(v, Tensor)}) > 1
    if ragged and all(isinstance(v, Tensor) and v.dim() >= 1 for v in values):
        return torch.nn.utils.rnn.pad_sequence(values, batch_first=True, padding_value=-100)
    return default_collate(values)
