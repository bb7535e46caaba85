"""Dynamic int8 quantization of models built from rnnkit layers, for CPU inference.

``torch.ao.quantization.quantize_dynamic(model, {nn.LSTM, nn.Linear})`` matches modules by
exact type, so it silently leaves rnnkit's layers in float. :func:`quantize_dynamic` returns
a copy of the model in which

- every rnnkit :class:`~rnnkit.LSTM` / :class:`~rnnkit.GRU` that torch's dynamically
  quantized ``torch.ao.nn.quantized.dynamic.LSTM`` / ``GRU`` computes exactly (the layer
  converts with :meth:`~rnnkit.RecurrentLayer.to_torch`, has biases and no projection) runs
  on that module, inside a :class:`QuantizedRecurrent` that keeps the rnnkit call
  ``layer(x, state, lengths=...)``;
- every ``torch.nn.Linear`` outside the recurrent layers is ``torch.ao.nn.quantized.dynamic
  .Linear``.

"Dynamic" means the weights are stored as int8 (one scale per tensor) and each matrix
product quantizes its activations on the fly (Jacob et al. 2018; PyTorch's dynamic
quantization tutorial for LSTMs). The rest stays float: torch has no dynamically quantized
Elman ``RNN`` layer (only an ``RNNCell``) and no dynamic ``Embedding`` (embeddings quantize
weight-only, statically), and options torch lacks (layer norm, zoneout, recurrent dropout,
MinGRU/MinLSTM, cells of one's own) have no quantized kernel. Those layers are named in one
:class:`QuantizationWarning`.

torch's quantized kernels are CPU only and inference only (no gradient reaches the int8
weights), and ``torch.ao`` quantization is deprecated upstream in favour of ``torchao``:
this module uses only the module classes' ``from_float``, not the deprecated entry points.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit import _checks
from rnnkit.layers.base import LayerState, RecurrentLayer

DTYPES = (torch.qint8, torch.float16)  # what torch's dynamic LSTM/GRU/Linear accept


class QuantizationWarning(UserWarning):
    """Some layers of a model stayed float in :func:`quantize_dynamic` (filterable).

    Example (torch has no quantized MinGRU)::

        >>> import warnings, torch, rnnkit
        >>> model = torch.nn.Sequential(rnnkit.MinGRU(3, 4))
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     _ = rnnkit.quantize_dynamic(model)
        >>> [w.category.__name__ for w in caught]
        ['QuantizationWarning']
    """


def quantize_dynamic(
    model: nn.Module,
    dtype: torch.dtype = torch.qint8,
    *,
    layers: bool = True,
    linear: bool = True,
) -> nn.Module:
    """A copy of ``model`` with its LSTM/GRU layers and ``nn.Linear`` dynamically quantized.

    Args:
        model: a CPU model (or a single rnnkit layer); it is not modified.
        dtype: ``torch.qint8`` (int8 weights) or ``torch.float16`` (fp16 weights).
        layers: quantize the rnnkit LSTM/GRU layers torch can express exactly.
        linear: quantize every ``torch.nn.Linear`` outside the recurrent layers.

    Layers that cannot be quantized stay float and are named in one
    :class:`QuantizationWarning`. The copy is in eval mode, like torch's quantized models.
    A model already (partly) quantized with ``dtype`` keeps its quantized parts and has
    the rest converted (``linear=False``, then ``layers=False``); one quantized with the
    other dtype is refused, since its quantized weights cannot be read back as float.

    Example:
        >>> import rnnkit
        >>> from rnnkit.quantize import QuantizedRecurrent, quantize_dynamic
        >>> lstm = quantize_dynamic(rnnkit.LSTM(4, 8))
        >>> isinstance(lstm, QuantizedRecurrent)
        True
        >>> out, (h, c) = lstm(torch.randn(5, 2, 4), lengths=[5, 3])
        >>> tuple(out.shape), tuple(h.shape)
        ((5, 2, 8), (1, 2, 8))
    """
    _check_arguments(model, dtype, layers, linear)
    quantized = copy.deepcopy(model).eval()
    kept_float: dict[str, str] = {}
    with warnings.catch_warnings():
        # torch warns (once, from C++) that its quantized tensor types are deprecated; the
        # module docstring says so, and the user cannot act on it from here.
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor")
        if isinstance(quantized, RecurrentLayer):
            root = _convert_layer(quantized, dtype, "model", kept_float) if layers else quantized
        else:
            _convert_children(quantized, "", dtype, layers, linear, kept_float)
            root = quantized
    if kept_float:
        names = "; ".join(f"{name} ({why})" for name, why in kept_float.items())
        warnings.warn(
            f"quantize_dynamic: kept {len(kept_float)} layer(s) float: {names}",
            QuantizationWarning,
            stacklevel=2,
        )
    return root


def _check_arguments(model: object, dtype: object, layers: object, linear: object) -> None:
    """One-line refusals for what quantization cannot do, before anything is copied."""
    owner = "quantize_dynamic"
    if not isinstance(model, nn.Module):
        raise TypeError(f"{owner}: model must be a torch.nn.Module; got {type(model).__name__}")
    if dtype not in DTYPES:
        raise ValueError(f"{owner}: dtype must be torch.qint8 or torch.float16; got {dtype!r}")
    for name, flag in (("layers", layers), ("linear", linear)):
        if not isinstance(flag, bool):
            raise TypeError(f"{owner}: {name} must be a bool; got {flag!r}")
    if not (layers or linear):
        raise ValueError(f"{owner}: expected layers=True or linear=True; got both False")
    # Quantized weights cannot be read back as the float ones: a part already quantized
    # with another dtype stayed so, and the copy was not what dtype asked for.
    for path, was in _quantized_parts(model).items():
        if was != dtype:
            raise ValueError(
                f"{owner}: model is already quantized with dtype {was} ({path}); expected "
                f"dtype={was}, or the float model for {dtype}; got dtype={dtype}"
            )
    devices = {t.device for t in (*model.parameters(), *model.buffers())}
    off_cpu = sorted(str(d) for d in devices if d.type != "cpu")
    if off_cpu:
        raise _checks.DeviceError(
            f"{owner}: model must be on the CPU (torch's dynamic quantized kernels are "
            f"CPU only); got parameters on {', '.join(off_cpu)}"
        )


def _quantized_parts(model: nn.Module) -> dict[str, torch.dtype]:
    """The dynamically quantized modules of ``model`` (path -> dtype): the layers in a
    :class:`QuantizedRecurrent` and torch's own dynamic LSTM/GRU/Linear."""
    if not any(type(m).__module__.startswith("torch.ao.") for m in model.modules()):
        return {}  # a float model: torch.ao is not imported for it
    dynamic = _torch_ao()
    parts: dict[str, torch.dtype] = {}
    inner: set[int] = set()  # the torch.ao layers named by the wrapper around them
    for name, module in model.named_modules():
        path = name or "model"
        if isinstance(module, QuantizedRecurrent):
            parts[path] = cast(torch.dtype, module.quantized.dtype)  # a torch.ao layer's
            inner.add(id(module.quantized))
        elif isinstance(module, dynamic.Linear):
            parts[path] = module._packed_params.dtype
        elif isinstance(module, (dynamic.LSTM, dynamic.GRU)) and id(module) not in inner:
            parts[path] = module.dtype
    return parts


def _convert_children(
    module: nn.Module,
    prefix: str,
    dtype: torch.dtype,
    layers: bool,
    linear: bool,
    kept_float: dict[str, str],
) -> None:
    """Replace, in place, the quantizable children of ``module`` (a private copy)."""
    for name, child in module.named_children():
        path = f"{prefix}{name}"
        if isinstance(child, RecurrentLayer):
            # Never descend into a layer: its weights are read by name by the backends.
            if layers:
                setattr(module, name, _convert_layer(child, dtype, path, kept_float))
        elif type(child) is nn.Linear:  # a subclass may change forward: left alone
            if linear:
                setattr(module, name, _convert_linear(child, dtype, path, kept_float))
        else:
            _convert_children(child, f"{path}.", dtype, layers, linear, kept_float)


def _convert_linear(
    layer: nn.Linear, dtype: torch.dtype, path: str, kept_float: dict[str, str]
) -> nn.Module:
    """The quantized form of ``layer``, or ``layer`` itself with the reason recorded.

    The quantized Linear reads and returns float32: in a float64 (or float16) model it
    would fail on the first call, "expected scalar type Float but found Double", after
    layers kept float in that dtype hand it their output.
    """
    weight_dtype = layer.weight.dtype
    if weight_dtype != torch.float32:
        kept_float[path] = (
            f"Linear: its parameters are {weight_dtype}; the quantized kernels compute in float32"
        )
        return layer
    return _quantized_linear(layer, dtype)


def _quantized_linear(layer: nn.Linear, dtype: torch.dtype) -> nn.Module:
    layer.qconfig = _qconfig(dtype)  # from_float reads the weight observer from it
    return _torch_ao().Linear.from_float(layer)


def _convert_layer(
    layer: RecurrentLayer, dtype: torch.dtype, path: str, kept_float: dict[str, str]
) -> nn.Module:
    """The quantized form of ``layer``, or ``layer`` itself with the reason recorded."""
    why = unquantizable_reason(layer)
    if why is not None:
        kept_float[path] = f"{type(layer).__name__}: {why}"
        return layer
    float_module = layer.to_torch()
    float_module.qconfig = _qconfig(dtype)
    quantized = _quantized_classes()[type(float_module)].from_float(float_module)
    return QuantizedRecurrent(layer, quantized)


def unquantizable_reason(layer: RecurrentLayer) -> str | None:
    """Why torch's dynamic quantized layers cannot compute ``layer`` exactly, or None."""
    torch_class = layer.torch_class
    if torch_class is None or torch_class not in _quantized_classes():
        torch_name = getattr(torch_class, "__name__", type(layer).__name__)
        return f"torch has no dynamically quantized {torch_name} layer"
    mode = torch_class.__name__  # "LSTM" or "GRU": torch's names of their equations
    if layer.kind != mode:  # a variant of them, on cells of one's own
        return f"its cells are of kind {layer.kind!r}, not torch's {mode}"
    if parametrize.is_parametrized(layer):
        return "its weights are parametrized (weight_norm, spectral_norm, ...)"
    try:
        layer.to_torch()  # refuses layer_norm, zoneout, recurrent_dropout
    except (TypeError, ValueError) as err:
        return str(err).split(": ", 1)[-1].split(";")[0]  # "torch.nn.LSTM has no layer_norm"
    if layer.proj_size:
        return "torch's quantized LSTM has no proj_size"
    if not layer.bias:
        return "torch's quantized kernels need bias=True"
    dtype = layer.weight_ih_l0.dtype
    if dtype != torch.float32:
        return f"its parameters are {dtype}; the quantized kernels compute in float32"
    return None


def _quantized_classes() -> dict[type[nn.Module], Any]:
    """torch.nn layer -> its dynamically quantized form (torch has none for nn.RNN)."""
    dynamic = _torch_ao()
    return {nn.LSTM: dynamic.LSTM, nn.GRU: dynamic.GRU}


def _torch_ao() -> Any:
    """``torch.ao.nn.quantized.dynamic``, imported on use.

    torch.ao quantization is deprecated upstream: importing it here, not at the top, keeps
    ``import rnnkit`` working on a torch that has dropped it.
    """
    try:
        from torch.ao.nn.quantized import dynamic
    except ImportError:
        raise ImportError(
            "quantize_dynamic: needs torch.ao.nn.quantized.dynamic; "
            f"got torch {torch.__version__} without it"
        ) from None
    return dynamic


def _qconfig(dtype: torch.dtype) -> Any:
    from torch.ao.quantization import qconfig  # with _torch_ao: on use

    if dtype == torch.qint8:
        return qconfig.default_dynamic_qconfig
    return qconfig.float16_dynamic_qconfig


class QuantizedRecurrent(nn.Module):
    """A dynamically quantized ``torch.ao`` LSTM/GRU, called as the rnnkit layer it replaces.

    ``forward(input, state=None, lengths=None, reset=None, *, hx=None)`` returns
    ``(output, state)`` with the shapes of :meth:`rnnkit.RecurrentLayer.forward`; ``lengths``
    (zeros included) runs as a packed sequence, unbatched input gains a batch of one.
    ``reset`` is refused: torch's kernel cannot zero a sample's state mid-sequence.

    Shape:
        input (T, B, I), (B, T, I) with ``batch_first``, or (T, I); state (L*D, B, H),
        a tuple (h, c) for LSTM; output (T, B, D*H) (batch_first: (B, T, D*H)).
    """

    def __init__(self, layer: RecurrentLayer, quantized: nn.Module) -> None:
        super().__init__()
        self.name = f"Quantized{type(layer).__name__}"  # the owner in error messages
        self.kind = layer.kind
        self.input_size = layer.input_size
        self.hidden_size = layer.hidden_size
        self.num_layers = layer.num_layers
        self.bias = layer.bias
        self.batch_first = layer.batch_first
        self.dropout = layer.dropout
        self.bidirectional = layer.bidirectional
        self.proj_size = 0
        self.num_directions = layer.num_directions
        self.output_size = layer.output_size
        self.is_lstm = isinstance(quantized, _torch_ao().LSTM)
        self.last_backend = "quantized"  # what rnnkit.Stream reports for this layer
        self.quantized = quantized

    def forward(
        self,
        input: Tensor | PackedSequence,
        state: LayerState | None = None,
        lengths: Tensor | list[int] | None = None,
        reset: Tensor | None = None,
        *,
        hx: LayerState | None = None,
    ) -> tuple[Tensor | PackedSequence, LayerState]:
        """Run the quantized layer over a sequence; returns ``(output, state)``."""
        state = self._merge_hx(state, hx)
        if reset is not None:
            raise ValueError(
                f"{self.name}: reset must be None (torch's quantized kernel cannot reset a "
                f"state mid-sequence); got a {type(reset).__name__}"
            )
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError(
                    f"{self.name}: lengths must be None for a PackedSequence input; "
                    "its lengths are taken from it"
                )
            return self.quantized(input, state)
        x = self._check_input(input)
        batched = x.dim() == 3
        B = (x.size(0) if self.batch_first else x.size(1)) if batched else None
        # Checked as given, before an unbatched state gains its batch axis: a string was
        # split into characters there, and a wrong shape shown with an axis it lacked.
        self._check_state(state, B)
        if not batched:  # torch's quantized kernels take 3-D input only
            x = x.unsqueeze(0 if self.batch_first else 1)
            state = _map_state(state, lambda s: s.unsqueeze(1))
        T = x.size(1) if self.batch_first else x.size(0)
        B = x.size(0) if self.batch_first else x.size(1)
        if lengths is None:
            if T == 0:  # torch's kernel: "Expected sequence length to be larger than 0"
                raise _checks.ShapeError(
                    f"{self.name}: input has T = 0 time steps; expected T >= 1, or "
                    "lengths (all 0) to run empty sequences"
                )
            out, state_n = self.quantized(x, state)
        else:
            if not batched:
                raise ValueError(f"{self.name}: lengths needs a batched input (3-D); got 2-D")
            out, state_n = self._run_lengths(x, state, _checks.lengths(self.name, lengths, T, B))
        if not batched:
            out = out.squeeze(0 if self.batch_first else 1)
            state_n = _map_state(state_n, lambda s: s.squeeze(1))
        return out, state_n

    def _run_lengths(
        self, x: Tensor, state: LayerState | None, lengths: Tensor
    ) -> tuple[Tensor, LayerState]:
        """Right-padded sequences as a packed one; length-0 samples keep their state.

        ``pack_padded_sequence`` refuses length 0, so only the samples with steps run, and
        their results are scattered back into zero outputs and the initial state.
        """
        bdim = 0 if self.batch_first else 1
        run = lengths.nonzero().squeeze(1)  # (B',) samples with at least one step
        s0 = state if state is not None else self._zero_state(x)
        out = x.new_zeros(*x.shape[:2], self.output_size)  # (T, B, D*H) / (B, T, D*H)
        if run.numel() == 0:
            return out, s0
        packed = pack_padded_sequence(
            x.index_select(bdim, run), lengths[run], self.batch_first, enforce_sorted=False
        )
        sub_state = _map_state(s0, lambda s: s.index_select(1, run))
        out_packed, sub_n = self.quantized(packed, sub_state)
        T = x.size(1 - bdim)
        sub_out, _ = pad_packed_sequence(out_packed, self.batch_first, total_length=T)
        out.index_copy_(bdim, run, sub_out)
        parts_0, parts_n = _parts(s0), _parts(sub_n)
        merged = tuple(
            s.clone().index_copy_(1, run, n) for s, n in zip(parts_0, parts_n, strict=True)
        )
        return out, (merged if self.is_lstm else merged[0])  # type: ignore[return-value]

    def _zero_state(self, x: Tensor) -> LayerState:
        B = x.size(0 if self.batch_first else 1)
        h = x.new_zeros(self.num_layers * self.num_directions, B, self.hidden_size)
        return (h, h.clone()) if self.is_lstm else h

    # ---- argument checks: rnnkit's one-line messages, not the kernel's ------------------

    def _merge_hx(self, state: LayerState | None, hx: LayerState | None) -> LayerState | None:
        if hx is None:
            return state
        if state is not None:
            raise TypeError(
                f"{self.name}: the initial state is state= or hx= (torch.nn's name); "
                "expected one of them, got both"
            )
        return hx

    def _check_input(self, input: object) -> Tensor:
        x = _checks.tensor_arg(self.name, "input", input)
        if x.dim() not in (2, 3):
            raise _checks.ShapeError(
                f"{self.name}: input must be 3-D (T, B, I) / (B, T, I) or 2-D (T, I); "
                f"got {x.dim()}-D with shape {tuple(x.shape)}"
            )
        if x.dtype != torch.float32 or x.device.type != "cpu":
            raise _checks.DtypeError(
                f"{self.name}: input must be a float32 CPU tensor (the quantized kernels' "
                f"input); got {x.dtype} on {x.device}"
            )
        if x.size(-1) != self.input_size:
            raise _checks.ShapeError(
                f"{self.name}: input.size(-1) must equal input_size; "
                f"expected {self.input_size}, got {x.size(-1)}"
            )
        return x

    def _check_state(self, state: object, B: int | None) -> None:
        """``state`` of a batch of B (None: an unbatched input), in the rnnkit layer's words:
        torch's kernel named neither argument nor expectation ("zip() argument 2 is
        longer", "expected scalar type Float but found Double")."""
        if state is None:
            return
        names = ("h", "c") if self.is_lstm else ("h",)
        if self.is_lstm and not (isinstance(state, (tuple, list)) and len(state) == 2):
            raise _checks.StateError(
                f"{self.name}: state must be a tuple (h, c); got {type(state).__name__}"
            )
        if not self.is_lstm and not isinstance(state, Tensor):
            raise _checks.StateError(
                f"{self.name}: state must be a tensor h; got {type(state).__name__}"
            )
        LD = self.num_layers * self.num_directions
        shape = (LD, self.hidden_size) if B is None else (LD, B, self.hidden_size)
        for name, s in zip(names, _parts(state), strict=True):  # type: ignore[arg-type]
            _checks.tensor_arg(self.name, f"state {name}", s)
            _checks.shape_is(self.name, f"state {name}", s, shape)
            if s.dtype != torch.float32 or s.device.type != "cpu":
                raise _checks.DtypeError(
                    f"{self.name}: state {name} must be a float32 CPU tensor (the quantized "
                    f"kernels' state); got {s.dtype} on {s.device}"
                )

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, batch_first={self.batch_first}"


def _parts(state: LayerState) -> tuple[Tensor, ...]:
    return tuple(state) if isinstance(state, (tuple, list)) else (state,)


def _map_state(state: Any, fn: Any) -> Any:
    """``fn`` applied to each tensor of a state (None, a tensor, or a tuple (h, c))."""
    if state is None or isinstance(state, Tensor):
        return state if state is None else fn(state)
    return tuple(fn(s) for s in state)


__all__ = ["QuantizationWarning", "QuantizedRecurrent", "quantize_dynamic", "unquantizable_reason"]
