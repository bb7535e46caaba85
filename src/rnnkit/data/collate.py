"""Batching variable-length sequences for the layers' ``lengths=`` (no PackedSequence).

A ``DataLoader`` hands :func:`pad_collate` a list of samples; it right-pads the sequences
into one tensor and returns their true lengths beside it, which every rnnkit layer takes
as ``lengths=``: outputs past a sequence's end are zero and the final state is the state
at its last valid step, so the padding never leaks into the result.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor


def pad_collate(
    batch: Sequence[Any], *, batch_first: bool = True, padding_value: float = 0.0
) -> tuple[Any, ...]:
    """``(padded, lengths, *rest)`` from samples ``seq`` or ``(seq, *rest)``.

    ``seq`` is a (T_i, ...) tensor, a NumPy array or nested lists of numbers; the other
    parts of a sample (labels, per-step tags) are collated as ``torch.utils.data`` does by
    default, and per-step tensors of unequal lengths are padded with -100, which
    ``F.cross_entropy`` ignores. A sample is ``(seq, *rest)`` when it is a tuple, or a
    list whose first item is a tensor or an array (what a ``Dataset`` returns); any other
    list is the sequence itself, so ``[[1.0], [2.0]]`` is one sequence of two steps.
    Use it as ``DataLoader(data, batch_size=..., collate_fn=pad_collate)``; for other
    options, ``functools.partial(pad_collate, batch_first=False)``.

    The sequences are padded in the dtype they promote to together
    (``torch.promote_types``, as ``torch.cat`` does): integer and float samples give a
    float batch, a float64 sample a float64 one; nothing is truncated or rounded down.

    Shape:
        padded (B, T, ...) with ``batch_first`` (else (T, B, ...)), T = max T_i;
        lengths (B,) int64 on the CPU.

    Example:
        >>> x, lengths = pad_collate([torch.ones(3, 2), torch.ones(1, 2)])
        >>> tuple(x.shape), lengths.tolist()
        ((2, 3, 2), [3, 1])
    """
    if not isinstance(batch_first, bool):
        raise TypeError(f"pad_collate: batch_first must be True or False; got {batch_first!r}")
    if isinstance(padding_value, bool) or not isinstance(padding_value, (int, float)):
        raise TypeError(f"pad_collate: padding_value must be a number; got {padding_value!r}")
    if not isinstance(batch, Sequence):
        raise TypeError(f"pad_collate: batch must be a list of samples; got {type(batch).__name__}")
    if len(batch) == 0:
        raise ValueError("pad_collate: the batch is empty")
    pairs = [_parts(s) for s in batch]
    width = len(pairs[0])
    for i, p in enumerate(pairs):
        if len(p) != width:
            raise ValueError(
                "pad_collate: every sample must have the same number of parts; "
                f"sample {i} has {len(p)}, sample 0 has {width}"
            )
    seqs = [_sequence(i, p[0]) for i, p in enumerate(pairs)]
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
        _promoted(seqs), batch_first=batch_first, padding_value=padding_value
    )
    if width == 1:
        return padded, lengths
    rest = [_collate_part(k, [p[k] for p in pairs]) for k in range(1, width)]
    return (padded, lengths, *rest)


def _parts(sample: Any) -> Sequence[Any]:
    """A sample as ``(seq, *rest)``: a tuple, or a list led by a tensor or array, is parts;
    anything else (a tensor, nested lists of numbers) is the sequence alone."""
    if isinstance(sample, tuple):
        return sample
    if isinstance(sample, list) and sample and isinstance(sample[0], (Tensor, np.ndarray)):
        return sample
    return (sample,)


def _sequence(i: int, value: Any) -> Tensor:
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(
            f"pad_collate: sample {i}'s sequence must be a tensor, an array or rectangular "
            f"nested lists of numbers; got {type(value).__name__}"
        ) from None


def _promoted(tensors: list[Tensor]) -> list[Tensor]:
    """The tensors in the dtype they promote to together (a no-op when they agree)."""
    dtype = functools.reduce(torch.promote_types, (t.dtype for t in tensors))
    return [t.to(dtype) for t in tensors]


def _kind(value: Any) -> str | None:
    """What ``default_collate`` makes of a part, in words; None for what it cannot take."""
    if isinstance(value, (Tensor, np.ndarray)):
        return "tensor"
    if isinstance(value, (numbers.Number, np.generic)):
        return "number"
    if isinstance(value, (str, bytes)):
        return "string"
    if isinstance(value, Mapping):
        return "dict"
    if isinstance(value, Sequence):
        return "list"
    return None


def _collate_part(k: int, values: list[Any]) -> Any:
    """Part ``k`` of every sample: labels stack; per-step parts (tags of unequal lengths)
    are padded with -100, which ``F.cross_entropy`` ignores."""
    from torch.utils.data import default_collate

    kind = _kind(values[0])
    for i, v in enumerate(values):
        if _kind(v) is None:
            raise TypeError(
                f"pad_collate: sample {i}'s part {k} must be a tensor, an array, a number, a "
                f"string, a dict or a list; got {type(v).__name__}"
            )
        if _kind(v) != kind:
            raise TypeError(
                f"pad_collate: sample {i}'s part {k} is a {_kind(v)}; sample 0's is a {kind}"
            )
    if kind == "tensor":
        return _collate_tensors(k, values)
    if kind == "list":
        for i, v in enumerate(values):
            if len(v) != len(values[0]):
                raise ValueError(
                    f"pad_collate: sample {i}'s part {k} has {len(v)} items; "
                    f"sample 0's has {len(values[0])}"
                )
    if kind == "dict":
        for i, v in enumerate(values):
            if set(v) != set(values[0]):
                raise ValueError(
                    f"pad_collate: sample {i}'s part {k} has keys {sorted(map(str, v))}; "
                    f"sample 0's has {sorted(map(str, values[0]))}"
                )
    return default_collate(values)


def _collate_tensors(k: int, values: list[Any]) -> Tensor:
    """Tensors of one shape stack; 1-D or more that differ in their first dimension only
    are padded with -100. Either way in the dtype they promote to together."""
    from torch.utils.data import default_collate

    tensors = _promoted([torch.as_tensor(v) for v in values])
    first = tensors[0].shape
    if all(t.shape == first for t in tensors):
        return default_collate(tensors)
    for i, t in enumerate(tensors):
        per_step = t.dim() > 0 and len(first) > 0 and t.shape[1:] == first[1:]
        if t.shape != first and not per_step:
            raise ValueError(
                f"pad_collate: sample {i}'s part {k} has shape {tuple(t.shape)}; sample 0's "
                f"has {tuple(first)} (expected one shape, or per-step parts that differ in "
                "their first dimension only)"
            )
    return torch.nn.utils.rnn.pad_sequence(tensors, batch_first=True, padding_value=-100)
