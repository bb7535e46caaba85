"""Argument checks shared by cells and layers.

Every message names the owner (``LSTM``), the argument, what was expected and what was
given, so a user's mistake never surfaces as a traceback from deep inside a kernel.

The exception types serve two audiences at once. rnnkit's own contract is that a mistake
at the public boundary is a ``ValueError`` or ``TypeError`` (the CLI turns either into a
one-line exit 2); code written for ``torch.nn`` catches what torch raises for the same
mistake - ``RuntimeError`` for a shape that does not fit, ``TypeError`` for a wrong type.
The classes below inherit from both, so either ``except`` clause catches them.
"""

from __future__ import annotations

import math
import numbers
import operator

import torch
from torch import Tensor


class ShapeError(ValueError, RuntimeError):
    """A tensor's shape or a size does not fit (torch: RuntimeError; rnnkit: ValueError)."""


class DtypeError(TypeError, ValueError, RuntimeError):
    """A tensor has the wrong dtype.

    torch raises ValueError (a layer's input) or RuntimeError (a cell's input, any state),
    rnnkit has raised ValueError for a mismatch and TypeError for an integer input.
    """


class DeviceError(ValueError, RuntimeError):
    """A tensor lives on another device than the one it must share (torch: RuntimeError)."""


class SizeTypeError(TypeError, ValueError):
    """A size is not an integer (torch: TypeError; rnnkit has raised ValueError)."""


class StateError(TypeError, RuntimeError):
    """The state is not the tensor or ``(h, c)`` pair the cell carries.

    torch raises RuntimeError for an LSTM state of three tensors, and AttributeError or
    IndexError by accident for the rest; a wrong structure is a TypeError here.
    """


def positive_int(owner: str, name: str, value: object) -> int:
    return _int_at_least(owner, name, value, 1, "a positive integer", ValueError)


def non_negative_int(owner: str, name: str, value: object) -> int:
    # torch.nn's cells accept sizes of 0 (empty weights) and fail on negative ones inside
    # torch.empty with a RuntimeError.
    return _int_at_least(owner, name, value, 0, "a non-negative integer", ShapeError)


def _int_at_least(
    owner: str, name: str, value: object, low: int, what: str, error: type[Exception]
) -> int:
    # Any integer type is one (NumPy's np.int64 from a shape or a config), as int(): the
    # layers then hold a plain int, as torch.nn's do.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SizeTypeError(f"{owner}: {name} must be {what}; got {value!r}")
    if value < low:
        raise error(f"{owner}: {name} must be {what}; got {value!r}")
    return int(value)


def parameter_dtype(owner: str, dtype: object) -> None:
    """Refuse a ``dtype=`` parameters cannot have; torch said "Only Tensors of floating
    point and complex dtype can require gradients", naming no argument."""
    if dtype is None:
        return
    if not isinstance(dtype, torch.dtype):
        raise DtypeError(f"{owner}: dtype must be a torch.dtype; got {dtype!r}")
    if not (dtype.is_floating_point or dtype.is_complex):
        raise DtypeError(
            f"{owner}: dtype must be a floating-point torch.dtype (parameters need "
            f"gradients); got {dtype}"
        )


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
        raise DtypeError(
            f"{owner}: {name}.dtype must equal {ref_name}.dtype; "
            f"expected {ref.dtype}, got {value.dtype}"
        )
    if value.device != ref.device:
        raise DeviceError(
            f"{owner}: {name}.device must equal {ref_name}.device; "
            f"expected {ref.device}, got {value.device}"
        )


def shape_is(owner: str, name: str, value: Tensor, expected: tuple[int, ...]) -> None:
    if tuple(value.shape) != tuple(expected):
        raise ShapeError(
            f"{owner}: {name} must have shape {tuple(expected)}; got {tuple(value.shape)}"
        )


def _integer(value: object) -> int | None:
    """An integer (Python's, NumPy's, a 0-d integer tensor) as an int; else None. A bool
    is not a length."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Tensor) and (value.dim() != 0 or value.dtype == torch.bool):
        return None
    try:
        # Any object may be tried: operator.index's TypeError is the "not an integer" answer.
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        return None


def lengths(owner: str, lengths: object, T: int, B: int) -> Tensor:
    """``lengths`` (a list or integer tensor of B values in [0, T]) as a CPU long tensor."""
    if isinstance(lengths, (list, tuple)):
        values = [_integer(v) for v in lengths]
        if any(v is None for v in values):
            raise TypeError(f"{owner}: lengths must hold integers; got {lengths!r}")
        lengths = torch.tensor(values, dtype=torch.long)
    if not isinstance(lengths, Tensor):
        raise TypeError(
            f"{owner}: lengths must be a 1-D integer tensor or list; got {type(lengths).__name__}"
        )
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise TypeError(f"{owner}: lengths must have an integer dtype; got {lengths.dtype}")
    if tuple(lengths.shape) != (B,):
        raise ValueError(
            f"{owner}: lengths must have shape (B,) = ({B},); got {tuple(lengths.shape)}"
        )
    lengths = lengths.detach().to("cpu", torch.long)
    if torch.compiler.is_compiling():
        # Reading the values would break the graph (a data-dependent branch): the check
        # runs inside it instead and raises RuntimeError when the call runs.
        inside = ((lengths >= 0) & (lengths <= T)).all()
        torch._assert_async(inside, f"{owner}: lengths must lie in [0, T] = [0, {T}]")
        return lengths
    if B and (int(lengths.min()) < 0 or int(lengths.max()) > T):
        raise ValueError(
            f"{owner}: lengths must lie in [0, T] = [0, {T}]; got min {int(lengths.min())}, "
            f"max {int(lengths.max())}"
        )
    return lengths


def finite_steps(owner: str, name: str, x: Tensor, lengths: Tensor) -> None:
    """Refuse a NaN or inf at a valid step of ``x`` (B, T, ...); the padding past each
    ``lengths[b]`` may hold anything. A task model standardises raw values, so one missing
    value would turn a whole series' result into NaN without a word."""
    if torch.compiler.is_compiling() or not x.is_floating_point() or x.numel() == 0:
        return
    B, T = x.shape[:2]
    bad = ~torch.isfinite(x.reshape(B, T, -1)).all(-1)  # (B, T)
    bad &= torch.arange(T, device=x.device) < lengths.to(x.device).unsqueeze(1)
    if bool(bad.any()):
        b, t = (int(i) for i in bad.nonzero()[0])
        value = x[b, t].reshape(-1)
        value = value[~torch.isfinite(value)][0]
        raise ValueError(
            f"{owner}: {name} must be finite at every valid step (fill missing values "
            f"first); got {float(value)} in series {b}, step {t}"
        )


def tensor_input(owner: str, name: str, value: object, shape: str) -> Tensor:
    """``value`` if it is a tensor; otherwise a TypeError that says the shape expected."""
    if not isinstance(value, Tensor):
        raise TypeError(
            f"{owner}: {name} must be a torch.Tensor {shape}; got {type(value).__name__}"
        )
    return value
