"""Argument checks shared by cells and layers.

Every message names the owner (``LSTM``), the argument, what was expected and what was
given, so a user's mistake never surfaces as a traceback from deep inside a kernel.
"""

from __future__ import annotations

import math

from torch import Tensor


def positive_int(owner: str, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a positive integer; got {value!r}")
    return value


def probability(owner: str, name: str, value: object, *, upper_open: bool = False) -> float:
    bad = isinstance(value, bool) or not isinstance(value, (int, float))
    if not bad:
        value = float(value)  # type: ignore[arg-type]
        bad = math.isnan(value) or value < 0.0 or value > 1.0 or (upper_open and value >= 1.0)
    if bad:
        interval = "[0, 1)" if upper_open else "[0, 1]"
        raise ValueError(f"{owner}: {name} must be a number in {interval}; got {value!r}")
    return float(value)  # type: ignore[arg-type]


def tensor_arg(owner: str, name: str, value: object) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{owner}: {name} must be a torch.Tensor; got {type(value).__name__}")
    return value


def same_dtype_device(owner: str, name: str, value: Tensor, ref: Tensor, ref_name: str) -> None:
    if value.dtype != ref.dtype:
        raise ValueError(
            f"{owner}: {name}.dtype must equal {ref_name}.dtype; "
            f"expected {ref.dtype}, got {value.dtype}"
        )
    if value.device != ref.device:
        raise ValueError(
            f"{owner}: {name}.device must equal {ref_name}.device; "
            f"expected {ref.device}, got {value.device}"
        )


def shape_is(owner: str, name: str, value: Tensor, expected: tuple[int, ...]) -> None:
    if tuple(value.shape) != tuple(expected):
        raise ValueError(
            f"{owner}: {name} must have shape {tuple(expected)}; got {tuple(value.shape)}"
        )
