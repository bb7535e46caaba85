"""The dtypes torch.nn's recurrent modules return under ``torch.autocast``.

Autocast lowers the precision of matrix products; the rest of a recurrent step runs at the
precision its operands promote to. So torch.nn's layers and cells do not all return the
autocast dtype, and which dtype they return depends on the kernel that ran:

- CUDA (and other accelerators): the fused sequence kernel (cuDNN) and the one-step
  kernels are on autocast's list, so output and state come in the autocast dtype - but
  for a layer on cuDNN in float16, whatever the autocast dtype: torch's autocast wrapper
  of ``_cudnn_rnn`` (pytorch PR 42385) casts the weights into one float16 buffer, so under
  ``torch.autocast("cuda", dtype=torch.bfloat16)`` torch.nn.LSTM returns float16 (seen
  with torch 2.11 on an H200). A cell, or a layer with cuDNN switched off, follows the
  autocast dtype.
- CPU: the one-step math is not on the list. An Elman RNN's tanh/relu of two products is in
  the autocast dtype; a GRU's ``h' = (1 - z) n + z h`` and an LSTM's ``c' = f c + i g``
  promote with the previous state, so they keep the dtype of the initial state (zeros in
  the input's dtype when none is given); an LSTM's h follows c unless a projection (a
  product) makes it low. ``torch.nn.LSTM``'s oneDNN sequence kernel - used for an unpacked
  input without projection, in a dtype oneDNN runs - is on the list: all in the autocast dtype.
  minGRU and minLSTM have no torch.nn counterpart; their ``h' = a h + b`` promotes with the
  state, so they follow the GRU.

rnnkit runs the recurrence in the parameters' precision on every backend and casts what it
returns to these dtypes, so code written for torch.nn gets the dtypes it expects.
"""

from __future__ import annotations

import torch


def _probe(name: str) -> bool:
    """A oneDNN capability of this CPU; read once, as torch's dispatch reads it."""
    try:
        return bool(getattr(torch.ops.mkldnn, name)())
    except (AttributeError, RuntimeError):  # an older torch or a build without oneDNN
        return False


_ONEDNN = torch.backends.mkldnn.is_available()
_ONEDNN_BF16 = _ONEDNN and _probe("_is_mkldnn_bf16_supported")
_ONEDNN_FP16 = _ONEDNN and _probe("_is_mkldnn_fp16_supported")


def enabled(device: torch.device) -> bool:
    """Whether autocast is active for ``device``'s type (older torch spells it per device).

    A device type autocast has no mode for (``meta``, ``lazy``) is never under autocast:
    torch raises RuntimeError when asked, and torch.nn's layers run there (shape
    inference on the meta device), so rnnkit's must not fail asking.
    """
    try:
        return bool(torch.is_autocast_enabled(device.type))
    except TypeError:  # torch < 2.4
        if device.type == "cpu":
            return bool(torch.is_autocast_cpu_enabled())
        return bool(torch.is_autocast_enabled())
    except RuntimeError:  # "unknown device type for autocast"
        return False


def applies(*tensors: torch.Tensor) -> bool:
    """Whether autocast acts on a call with these tensors: floating-point ones only.

    Autocast leaves complex tensors alone (torch.nn's complex layers return complex under
    it), and a cast of a complex tensor to a real dtype would drop its imaginary part.
    """
    return all(t.is_floating_point() for t in tensors)


def lower_dtype(device: torch.device) -> torch.dtype:
    """The dtype autocast gives products on ``device``'s type."""
    try:
        return torch.get_autocast_dtype(device.type)
    except AttributeError:  # torch < 2.4
        if device.type == "cpu":
            return torch.get_autocast_cpu_dtype()
        return torch.get_autocast_gpu_dtype()


def _onednn_runs(dtype: torch.dtype) -> bool:
    """Whether torch.nn.LSTM takes its oneDNN sequence kernel for an input of ``dtype``."""
    if not (_ONEDNN and torch.backends.mkldnn.enabled):
        return False
    if dtype == torch.float32:
        return True
    if dtype == torch.bfloat16:
        return _ONEDNN_BF16
    if dtype == torch.float16:
        return _ONEDNN_FP16 and not torch.is_grad_enabled()
    return False


def _cudnn_runs() -> bool:
    """Whether torch.nn's layers on CUDA take cuDNN's sequence kernel."""
    return bool(torch.backends.cudnn.enabled and torch.backends.cudnn.is_available())


def result_dtypes(
    kind: str,
    device: torch.device,
    input_dtype: torch.dtype,
    state_dtypes: tuple[torch.dtype, ...] | None,
    num_states: int,
    *,
    projection: bool,
    sequence_kernel: bool,
    layer: bool = True,
) -> tuple[torch.dtype, ...]:
    """``(output, *state)`` dtypes torch.nn returns under autocast (see the module docstring).

    Args:
        kind: the cell's kind ("LSTM", "GRU", "RNN_TANH", "MINGRU", ...).
        input_dtype: the input's dtype as given (before any cast).
        state_dtypes: the initial state's dtypes as given, None for zeros.
        projection: an LSTM with ``proj_size``.
        sequence_kernel: a layer called with an unpacked input (torch.nn.LSTM may then take
            its oneDNN kernel); False for a cell or a packed input.
        layer: a layer (on CUDA, torch.nn runs it on cuDNN); False for a cell.
    """
    if layer and device.type == "cuda" and _cudnn_runs():
        return (torch.float16,) * (1 + num_states)
    low = lower_dtype(device)
    if device.type != "cpu" or kind.startswith("RNN"):
        return (low,) * (1 + num_states)
    states = state_dtypes if state_dtypes is not None else (input_dtype,) * num_states
    if kind == "LSTM":
        if sequence_kernel and not projection and _onednn_runs(input_dtype):
            return (low, low, low)
        h = low if projection else states[1]
        return (h, h, states[1])
    return (states[0],) * (1 + num_states)


def cast_state(hx: object, dtype: torch.dtype) -> object:
    """``hx`` (a tensor, a tuple of them or None) in ``dtype``; anything else as it is.

    A malformed ``hx`` passes through untouched, so the checks that follow name it; so
    does a tensor autocast leaves alone (a complex one, which the cast would strip of its
    imaginary part, or an integer one).
    """

    def cast(s: object) -> object:
        return s.to(dtype) if isinstance(s, torch.Tensor) and s.is_floating_point() else s

    if isinstance(hx, (tuple, list)):
        return type(hx)(cast(s) for s in hx)
    return cast(hx)
