"""Recurrent layers: stacking, bidirectional runs, lengths, resets and state in and out.

A layer owns its parameters under torch's names (``weight_ih_l0``, ``bias_hh_l1_reverse``,
...) so that a ``torch.nn.RNN/LSTM/GRU`` state_dict loads as is, and one parameter-less
cell per stacked layer that knows the math. The call

    out, state = layer(x, state=None, lengths=None, reset=None)

normalises every argument to time-major form and checks it (one helper, ``_check_call``),
asks :func:`rnnkit.backends.choose` which backend runs it, and hands that backend plain
values: a :class:`~rnnkit.backends.Plan` (the cells and the layer's flags) and the weights,
read by attribute access at every call (:meth:`RecurrentLayer.read_weights`), so
parametrizations, ``weight_norm`` and ``torch.func.functional_call`` reach every backend.
``forward`` changes nothing on the module: which backend ran is asked ahead with
:meth:`RecurrentLayer.backend_for` or recorded by :func:`rnnkit.backends.trace`.
``hx=`` is accepted for ``state=``, as torch.nn names it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple, cast

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit import _autocast, _checks, backends
from rnnkit.cells.base import RecurrentCell, State, current_weight, zero_state

LayerState = Tensor | tuple[Tensor, Tensor]


# Why a call recorded by torch.jit.trace or torch.export runs torch's sequence kernel.
_RECORDED = "recorded (torch.jit.trace, torch.export): torch's sequence kernel, as torch.nn's"


class _Call(NamedTuple):
    """One call's arguments after the checks, in the time-major form the backends take."""

    x: Tensor  # (T, B, I)
    state: State  # (L*D, B, H) each
    lengths: Tensor | None  # (B,) on the CPU
    reset: Tensor | None  # (T, B) bool
    packed: PackedSequence | None  # the input, if it came packed
    batched: bool  # False: the input was (T, I)
    batch_first: bool  # the input was (B, T, I)
    # Under autocast: the dtypes (output, *state) torch.nn returns for this call.
    autocast_dtypes: tuple[torch.dtype, ...] | None = None


class RecurrentLayer(nn.Module):
    """Base of :class:`~rnnkit.RNN`, :class:`~rnnkit.LSTM` and :class:`~rnnkit.GRU`, and of
    a layer of one's own cell: a subclass that sets ``cell_class`` (see
    :class:`~rnnkit.RecurrentCell`), with ``torch_class`` only where the cells compute that
    ``torch.nn`` class's equations (for :meth:`to_torch` and :meth:`from_torch`).

    Shape:
        input (T, B, I), or (B, T, I) with ``batch_first``, or unbatched (T, I);
        state (L*D, B, H) - a tuple (h, c) for LSTM - or (L*D, H) unbatched;
        output (T, B, D*H) (batch_first: (B, T, D*H)); D = 2 if bidirectional else 1.
        An LSTM with ``proj_size`` P > 0 has h and the output P wide instead of H.

    Example (the state returned continues the sequence: two calls equal one)::

        >>> import torch, rnnkit
        >>> _ = torch.manual_seed(0)
        >>> layer = rnnkit.GRU(3, 4)
        >>> x = torch.randn(6, 2, 3)  # (T, B, I)
        >>> out, state = layer(x)
        >>> first, s = layer(x[:4])
        >>> rest, s = layer(x[4:], s)
        >>> torch.allclose(out, torch.cat([first, rest]), atol=1e-6)
        True
    """

    cell_class: ClassVar[type[RecurrentCell]]
    # The torch.nn layer of the same equations (to_torch, from_torch, quantization); None
    # where torch.nn has none.
    torch_class: ClassVar[type[nn.Module] | None] = None
    # The first layer's weights under torch's names, for type checkers only: nn.Module
    # types a registered parameter as Tensor | Module. (The biases are absent with
    # bias=False; the other layers' and directions' names are read with getattr.)
    weight_ih_l0: Tensor
    weight_hh_l0: Tensor
    bias_ih_l0: Tensor
    bias_hh_l0: Tensor

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        *,
        backend: str = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **cell_options: Any,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.input_size = _checks.positive_int(owner, "input_size", input_size)
        _checks.parameter_dtype(owner, dtype)
        self.hidden_size = _checks.positive_int(owner, "hidden_size", hidden_size)
        self.num_layers = _checks.positive_int(owner, "num_layers", num_layers)
        for name, flag in (("bias", bias), ("batch_first", batch_first)):
            if not isinstance(flag, bool):
                raise TypeError(f"{owner}: {name} must be a bool; got {flag!r}")
        if not isinstance(bidirectional, bool):
            raise TypeError(f"{owner}: bidirectional must be a bool; got {bidirectional!r}")
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = _checks.probability(owner, "dropout", dropout)
        if self.dropout > 0 and self.num_layers == 1:
            # torch.nn's warning, word for word: code that filters it keeps working.
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero "
                f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                f"num_layers={num_layers}",
                UserWarning,
                stacklevel=3,
            )
        self.bidirectional = bidirectional
        if backend not in backends.CHOICES:
            raise ValueError(f"{owner}: backend must be one of {backends.CHOICES}; got {backend!r}")
        self.backend = backend

        if "proj_size" in cell_options and not self.cell_class.has_projection:
            raise ValueError(
                f"{owner}: proj_size is only supported by LSTM, as in torch.nn; "
                f"got proj_size={cell_options['proj_size']!r}"
            )
        D = self.num_directions
        first = self.cell_class(
            input_size, hidden_size, bias, _own_parameters=False, **cell_options
        )
        # Layer k > 0 reads the D outputs of layer k - 1 side by side (D*H, or D*P with a
        # projection).
        self.cells = nn.ModuleList(
            [first]
            + [
                self.cell_class(
                    first.output_size * D, hidden_size, bias, _own_parameters=False, **cell_options
                )
                for _ in range(1, self.num_layers)
            ]
        )
        self.proj_size: int = getattr(first, "proj_size", 0)
        # Registration order is torch's: per layer, per direction, w_ih, w_hh, b_ih, b_hh
        # (and w_hr with a projection). The names are fixed at construction; forward reads
        # the weights by them at every call (see cell_parameters).
        self._names: list[list[dict[str, str]]] = []
        for k, cell in enumerate(self._cells()):
            per_direction = []
            for d in range(D):
                names = {}
                for name, shape in cell.parameter_shapes().items():
                    param = nn.Parameter(torch.empty(shape, device=device, dtype=dtype))
                    names[name] = self._param_name(name, k, d)
                    self.register_parameter(names[name], param)
                per_direction.append(names)
            self._names.append(per_direction)
        self._flat_names = [n for per_d in self._names for names in per_d for n in names.values()]
        self.reset_parameters()

    # ---- parameters -----------------------------------------------------------------

    @property
    def kind(self) -> str:
        return self.first_cell.kind

    @property
    def mode(self) -> str:
        """torch.nn.RNNBase's ``mode``: "LSTM", "GRU", "RNN_TANH" or "RNN_RELU"."""
        return self.kind

    @property
    def first_cell(self) -> RecurrentCell:
        cells = cast(nn.ModuleList, self._modules["cells"])
        return cast(RecurrentCell, cells._modules["0"])

    def _cells(self) -> tuple[RecurrentCell, ...]:
        """The cells, one per layer, read from ``_modules`` past Module.__getattr__ (plan
        runs at every call)."""
        cells = cast(nn.ModuleList, self._modules["cells"])
        return cast("tuple[RecurrentCell, ...]", tuple(cells._modules.values()))

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        return self.first_cell.output_size * self.num_directions

    @staticmethod
    def _param_name(name: str, k: int, d: int) -> str:
        return f"{name}_l{k}{'_reverse' if d else ''}"

    def cell_parameters(self, k: int, d: int) -> dict[str, Tensor]:
        """The weights of layer ``k``, direction ``d``, under the cell's names.

        Read now, by attribute access (:func:`~rnnkit.cells.base.current_weight`): a
        parametrized weight is computed, a swapped one is the swap.
        """
        return {name: current_weight(self, full) for name, full in self._names[k][d].items()}

    def read_weights(self) -> backends.Weights:
        """Every layer's and direction's weights, read now (what a backend runs with).

        ``read_weights()[k][d]`` is ``cell_parameters(k, d)``; each weight is read once.
        """
        # Lists turned into tuples: generator expressions cost ~15% more on the per-call path.
        return tuple(
            [
                tuple([{n: self._run_weight(w) for n, w in names.items()} for names in per_k])
                for per_k in self._names
            ]
        )

    def _run_weight(self, name: str) -> Tensor:
        """``current_weight``, refusing a weight set to None as torch.nn's layers do (a
        bias set to None would otherwise run as no bias, where torch raises TypeError)."""
        weight = self._parameters.get(name)
        if weight is not None:
            return weight
        weight = getattr(self, name)
        if weight is None:
            raise TypeError(f"{type(self).__name__}: {name} must be a torch.Tensor; got None")
        return weight

    def weight_names(self, k: int, d: int) -> list[str]:
        """The attribute names of layer ``k``, direction ``d``'s weights, in the cell's order."""
        return list(self._names[k][d].values())

    def _any_weight(self) -> Tensor:
        """A weight that tells the layer's dtype and device, read without computing one.

        A parametrized weight is computed at each read (and ``spectral_norm`` advances its
        power iteration), so the check reads a parameter still in place when there is one;
        the backend then reads every weight exactly once.
        """
        for weight in self._parameters.values():
            if weight is not None:
                return weight
        return current_weight(self, self._flat_names[0])

    def flat_weights(self) -> list[Tensor]:
        """torch's ``_flat_weights`` order, as its fused kernels take them, read now."""
        return [current_weight(self, name) for name in self._flat_names]

    # torch.nn.RNNBase's private weight lists, which code written for torch.nn reads (the
    # AWD-LSTM weight-drop pattern, quantisation helpers, torch's own tests). torch keeps a
    # cached list in step in ``__setattr__`` and refreshes it before each forward; here the
    # list is read from the attributes whenever it is asked for, so it cannot go stale: a
    # plain tensor set in place of a deleted parameter, a parametrized weight, a weight
    # moved by ``.to()`` are what it holds.

    @property
    def _flat_weights_names(self) -> list[str]:
        """torch's ``_flat_weights_names``: every weight's name, layer by layer and direction
        by direction (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``, ...)."""
        return list(self._flat_names)

    @property
    def _all_weights(self) -> list[list[str]]:
        """torch's ``_all_weights``: the weight names of each layer and direction."""
        return [list(names.values()) for per_k in self._names for names in per_k]

    @property
    def _flat_weights(self) -> list[Tensor | None]:
        """torch's ``_flat_weights``: the weights in ``_flat_weights_names`` order as the
        attributes hold them now, None for a name deleted and not set again (as torch)."""
        return [self._weight_or_none(name) for name in self._flat_names]

    @_flat_weights.setter
    def _flat_weights(self, value: object) -> None:
        # Code written for torch.nn assigns the list to refresh torch's cache after it set
        # the weights by name; that list is the current one, and nothing needs refreshing.
        # A list of other tensors would change what torch runs but not what rnnkit runs
        # (it reads the weights by name), so it is refused rather than ignored.
        owner = type(self).__name__
        names = self._flat_names
        if not isinstance(value, (list, tuple)) or len(value) != len(names):
            given = (
                f"{len(value)} items" if isinstance(value, (list, tuple)) else type(value).__name__
            )
            raise ValueError(
                f"{owner}._flat_weights: can only be set to the layer's current weights, "
                f"a list of {len(names)}; got {given}"
            )
        for name, given_weight in zip(names, value, strict=True):
            if not self._is_current_weight(name, given_weight):
                raise ValueError(
                    f"{owner}._flat_weights: can only be set to the layer's current weights "
                    f"(rnnkit reads each weight by its name at every call); got another tensor "
                    f"for {name}: set it by name instead, layer.{name} = weight"
                )

    def _weight_or_none(self, name: str) -> Tensor | None:
        """The weight ``name`` as attribute access finds it, None where there is none."""
        weight = self._parameters.get(name)
        return weight if weight is not None else getattr(self, name, None)

    def _is_current_weight(self, name: str, weight: object) -> bool:
        """Whether ``weight`` is what the layer holds under ``name``.

        A weight held (a parameter or a plain tensor set in its place) must be that very
        tensor; one computed at each read (a parametrization) is new at every read, so any
        tensor of its shape is taken as a fresh read of it.
        """
        for store in (self._parameters, self._buffers, self.__dict__):
            if name in store:
                return weight is store[name]
        current = getattr(self, name, None)
        if current is None or not isinstance(weight, Tensor):
            return weight is current
        return weight.shape == current.shape

    def _init_flat_weights(self) -> None:
        """torch's cache refresh, kept for code that calls it: ``_flat_weights`` is read
        from the attributes, so only the ``flatten_parameters`` call is left to make."""
        self.flatten_parameters()

    def _update_flat_weights(self) -> None:
        """torch refreshes its cached ``_flat_weights`` here; it never needs refreshing."""

    def _weights_have_changed(self) -> bool:
        """Whether ``_flat_weights`` is out of date: never, as it is read when asked for."""
        return False

    @property
    def all_weights(self) -> list[list[Tensor]]:
        """As ``torch.nn.RNNBase.all_weights``: one list per layer and direction."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def reset_parameters(self) -> None:
        """Re-draw the registered parameters (a parametrized weight keeps its own state)."""
        params = self._parameters
        for k, cell in enumerate(self._cells()):
            for d in range(self.num_directions):
                names = self._names[k][d].items()
                cell.init_parameters({n: w for n, f in names if (w := params.get(f)) is not None})

    def flatten_parameters(self) -> None:
        """Kept for drop-in use with code written for ``torch.nn``; nothing to do."""

    # ---- conversion -----------------------------------------------------------------

    def _torch_kwargs(self) -> dict[str, Any]:
        return dict(
            input_size=self.input_size,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            bias=self.bias,
            batch_first=self.batch_first,
            dropout=self.dropout,
            bidirectional=self.bidirectional,
        )

    @classmethod
    def from_torch(cls, module: nn.Module, **options: Any) -> RecurrentLayer:
        """A layer with ``module``'s configuration and weights (``options``: cell options).

        The weights are copies, of ``module``'s dtype and on its device, of the weights
        ``module`` runs with now, read by name (a parametrized weight's computed value, a
        plain tensor set in place of a parameter); which of them train (``requires_grad``)
        and the train/eval mode are ``module``'s too.
        """
        owner = cls.__name__
        torch_class = cls.torch_class
        if torch_class is None:
            raise TypeError(f"{owner}.from_torch: torch.nn has no {owner} to convert")
        # torch.nn.utils.parametrize swaps the module's class for a subclass it makes.
        plain = type(module).__bases__ if parametrize.is_parametrized(module) else ()
        if type(module) is not torch_class and plain != (torch_class,):
            given = type(module).__name__
            if isinstance(module, RecurrentLayer):  # not torch's LSTM, though named the same
                given = f"rnnkit.{given} (already an rnnkit layer)"
            raise TypeError(
                f"{owner}.from_torch: module must be a {torch_class.__module__}."
                f"{torch_class.__name__}; got {given}"
            )
        kwargs = cls._kwargs_from_torch(module)
        names: list[str] = cast(nn.RNNBase, module)._flat_weights_names  # checked above
        weights = _every_weight(
            f"{owner}.from_torch", "module", {name: getattr(module, name, None) for name in names}
        )
        w = weights["weight_ih_l0"]
        layer = cls(**kwargs, **options, device=w.device, dtype=w.dtype)
        layer._check_torch_kind(f"{owner}.from_torch", torch_class, module)
        _copy_weights(weights, module.training, layer, strict=not options.get("layer_norm"))
        return layer

    @classmethod
    def _kwargs_from_torch(cls, module: Any) -> dict[str, Any]:
        return dict(
            input_size=module.input_size,
            hidden_size=module.hidden_size,
            num_layers=module.num_layers,
            bias=module.bias,
            batch_first=module.batch_first,
            dropout=float(module.dropout),
            bidirectional=module.bidirectional,
        )

    def to_torch(self) -> nn.Module:
        """The equivalent ``torch.nn`` module, with the same weights (copies), dtype and
        device, the same ``requires_grad`` per weight and the same train/eval mode.

        The weights are those the layer runs with now, read by name: a parametrized
        weight's computed value, a plain tensor set in place of a parameter (the weight-drop
        pattern: the tensor last set)."""
        owner = type(self).__name__
        torch_class = self.torch_class
        if torch_class is None:
            raise TypeError(f"{owner}.to_torch: torch.nn has no {owner}")
        cell = self.cells[0]
        unsupported = [
            name
            for name in ("layer_norm", "zoneout", "recurrent_dropout")
            if getattr(cell, name, False)
        ]
        if unsupported:
            raise ValueError(
                f"{owner}.to_torch: torch.nn.{torch_class.__name__} has no "
                f"{', '.join(unsupported)}; expected a layer built without those options; "
                f"got {', '.join(f'{n}={getattr(cell, n)!r}' for n in unsupported)}"
            )
        weights = _every_weight(
            f"{owner}.to_torch",
            "layer",
            dict(zip(self._flat_names, self._flat_weights, strict=True)),
        )
        w = weights["weight_ih_l0"]
        module = torch_class(**self._torch_kwargs(), device=w.device, dtype=w.dtype)
        self._check_torch_kind(f"{owner}.to_torch", torch_class, module)
        _copy_weights(weights, self.training, module)
        return module

    def _check_torch_kind(
        self, where: str, torch_class: type[nn.Module], module: nn.Module
    ) -> None:
        """Refuse, in one line, a ``torch_class`` ``module`` whose equations (its ``mode``)
        are not the cells' (``kind``): a GRU variant's weights would load into torch's GRU
        and compute torch's GRU, a silently different function."""
        mode = getattr(module, "mode", None)
        if mode != self.kind:
            raise TypeError(
                f"{where}: torch.nn.{torch_class.__name__} computes torch's {mode}; "
                f"expected cells of kind {mode!r}, got {self.kind!r}"
            )

    # ---- forward --------------------------------------------------------------------

    def plan(self) -> backends.Plan:
        """What a backend needs to know of the layer now, as a plain value (no weights)."""
        return backends.Plan(
            type(self).__name__,
            self.backend,
            self._cells(),
            self.bias,
            self.dropout,
            self.training,
            self.bidirectional,
            self.proj_size,
        )

    def backend_for(
        self,
        input: Tensor | PackedSequence,
        state: LayerState | None = None,
        lengths: Tensor | list[int] | None = None,
        reset: Tensor | None = None,
        *,
        hx: LayerState | None = None,
    ) -> backends.Choice:
        """The backend a call with these arguments runs on, and why, without running it.

        Takes the arguments of :meth:`forward` and checks them the same way:

            >>> import torch, rnnkit
            >>> rnnkit.LSTM(3, 4).backend_for(torch.zeros(5, 2, 3)).name
            'native'
            >>> layer = rnnkit.LSTM(3, 4, zoneout=0.1).bfloat16()
            >>> layer.backend_for(torch.zeros(5, 2, 3, dtype=torch.bfloat16)).reason
            "torch's fused kernels have no zoneout"
        """
        call = self._check_call(input, state, lengths, reset, hx)
        return backends.choose(self.plan(), call.x.size(0), call.reset is not None, call.x)

    def forward(
        self,
        input: Tensor | PackedSequence,
        state: LayerState | None = None,
        lengths: Tensor | list[int] | None = None,
        reset: Tensor | None = None,
        *,
        hx: LayerState | None = None,
    ) -> tuple[Tensor | PackedSequence, LayerState]:
        """Run the layer over a sequence; returns ``(output, state)``.

        Args:
            input: (T, B, I), (B, T, I) with ``batch_first``, (T, I) unbatched, or a
                ``PackedSequence``.
            state: initial state, zeros if None; the returned state continues the
                sequence exactly when passed to the next call (streaming). ``hx`` is the
                same argument under torch.nn's name.
            lengths: (B,) true length of each right-padded sequence (0 allowed): outputs
                past the end are zero and the state is the one at the last valid step.
            reset: (T, B) bool ((B, T) with ``batch_first``): the state of sample b is set
                to zero before step t where ``reset[t, b]``.
        """
        call = self._check_call(input, state, lengths, reset, hx)
        plan = self.plan()
        run: Callable[..., tuple[Tensor, State]]
        if self._recorded_as_torch(plan, call):
            # Not asked of backends.choose, whose choice for speed reads the batch size.
            choice = backends.Choice("native", _RECORDED)
            run = backends.native.recorded
        else:
            choice = backends.choose(plan, call.x.size(0), call.reset is not None, call.x)
            if choice.fallback and not torch.compiler.is_compiling():
                # The registry of warnings shows it once per call site; the message is
                # fixed by the layer's class and the reason, so it is the same at every
                # call. Not under the compiler, where a warning breaks the graph.
                warnings.warn(
                    f"{plan.owner} runs on the reference backend ({choice.reason}); it is "
                    "slower than torch's fused kernel. Pass backend='reference' to choose it "
                    "explicitly and silence this.",
                    backends.PerformanceWarning,
                    stacklevel=4,  # forward <- Module._call_impl <- __call__ <- user
                )
            run = backends.BACKENDS[choice.name]
        backends.note(self, choice)
        out, s_n = run(plan, self.read_weights(), call.x, call.state, call.lengths, call.reset)
        return self._output(call, out, s_n)

    def _recorded_as_torch(self, plan: backends.Plan, call: _Call) -> bool:
        """Whether this call is being recorded - by ``torch.jit.trace``, or by
        ``torch.export`` without ``lengths`` (what ``torch.onnx.export`` runs) - and should
        be recorded as torch.nn's layer is: torch's sequence kernel (``aten::lstm`` and
        co.), one node for any T and B, which both ONNX exporters translate.

        Only where torch's kernel computes the call exactly and no other backend was asked
        for: the backend chosen for speed (a few steps on the one-step kernels, the GRU's
        fused kernel) is not what a recording should keep - a trace of the one-step loop
        holds the example's number of steps, and the exporters cannot translate rnnkit's
        own operators. Ragged calls under ``torch.export`` keep ``rnnkit::native_rnn``:
        torch's packed path branches on the lengths' values."""
        if plan.backend not in ("auto", "native"):
            return False
        exporting = torch.compiler.is_exporting() and call.lengths is None
        if not (torch.jit.is_tracing() or exporting):
            return False
        return backends.native.supports(plan, call.reset is not None) is None

    # ---- argument checks ------------------------------------------------------------

    def _check_call(
        self,
        input: object,
        state: object,
        lengths: object,
        reset: object,
        hx: object,
    ) -> _Call:
        """Every argument of a call checked and put in time-major form, or a clear error."""
        owner = type(self).__name__
        if hx is not None:
            if state is not None:
                raise TypeError(
                    f"{owner}: the initial state is state= or hx= (torch.nn's name); "
                    "expected one of them, got both"
                )
            state = hx
        packed = input if isinstance(input, PackedSequence) else None
        if packed is not None:
            if lengths is not None:
                raise ValueError(
                    f"{owner}: lengths must be None for a PackedSequence input; "
                    "its lengths are taken from it"
                )
            if packed.data.device.type == "meta" and packed.sorted_indices is not None:
                x, lengths_t = _unpack_meta(packed)
            else:
                x, lengths_t = pad_packed_sequence(packed)  # (T, B, I), original batch order
            batched, batch_first = True, False
        else:
            x = _checks.tensor_arg(owner, "input", input)
            if x.dim() not in (2, 3):
                raise _checks.ShapeError(
                    f"{owner}: input must be 3-D (T, B, I) / (B, T, I) or 2-D (T, I); "
                    f"got {x.dim()}-D with shape {tuple(x.shape)}"
                )
            batched, batch_first = x.dim() == 3, self.batch_first
            if not batched:
                x = x.unsqueeze(1)
            elif batch_first:
                x = x.transpose(0, 1)  # (B, T, I) -> (T, B, I)
            lengths_t = None
        weight = self._any_weight()
        # A complex layer (dtype=torch.complex64, as torch.nn's layers and rnnkit's cells
        # run) takes a complex input; any other layer a floating-point one.
        if not (x.is_floating_point() or (x.is_complex() and weight.is_complex())):
            raise _checks.DtypeError(
                f"{owner}: input must be a floating-point tensor; got {x.dtype}"
            )
        if x.is_complex():
            self._check_complex_options(x.dtype)
        if x.size(-1) != self.input_size:
            raise _checks.ShapeError(
                f"{owner}: input.size(-1) must equal input_size; "
                f"expected {self.input_size}, got {x.size(-1)}"
            )
        input_dtype = x.dtype
        autocast = _autocast.enabled(x.device) and _autocast.applies(weight, x)
        if x.dtype != weight.dtype and autocast:
            # A lower-precision layer upstream under autocast (torch.nn's layers accept this
            # too): the layer reads its input at the parameters' precision, and autocast
            # picks the precision of each product inside.
            x = x.to(weight.dtype)
        _checks.same_dtype_device(owner, "input", x, weight, "the parameters")
        T, B, _ = x.shape
        if packed is None:
            lengths_t = self._check_lengths(lengths, batched, T, B)
        if T == 0 and lengths_t is None:
            if not batched:  # lengths needs a batched input: no way to run it empty
                raise _checks.ShapeError(
                    f"{owner}: input has T = 0 time steps; expected T >= 1 for an unbatched "
                    f"(T, I) input; got shape {tuple(cast(Tensor, input).shape)}"
                )
            raise _checks.ShapeError(
                f"{owner}: input has T = 0 time steps; expected T >= 1, or "
                "lengths (all 0) to run empty sequences"
            )
        reset_t = self._check_reset(reset, batched, batch_first, T, B, x.device)
        s0 = self._check_state(state, batched, B, x)
        dtypes = None
        if autocast:
            # The recurrence runs in the parameters' precision on every backend; what it
            # returns is cast to the dtypes torch.nn returns (see rnnkit._autocast).
            given = None if state is None else tuple(s.dtype for s in self._state_parts(state))
            dtypes = _autocast.result_dtypes(
                self.kind,
                x.device,
                input_dtype,
                given,
                len(s0),
                projection=self.proj_size > 0,
                sequence_kernel=packed is None,
            )
        return _Call(x, s0, lengths_t, reset_t, packed, batched, batch_first, dtypes)

    def _check_complex_options(self, dtype: torch.dtype) -> None:
        """Refuse, in one line, what cannot run on a complex input.

        torch has no complex layer norm and draws no complex random masks, so layer norm,
        and zoneout, recurrent dropout and dropout between layers in training, failed deep
        inside torch ("LayerNormKernelImpl" not implemented for 'ComplexFloat'; torch.nn's
        complex layers fail so with dropout).
        """
        cell = self.first_cell
        names, given = [], []
        if getattr(cell, "layer_norm", False):
            names.append("layer_norm")
            given.append("layer_norm=True")
        for name in ("zoneout", "recurrent_dropout"):
            if cell.training and getattr(cell, name):
                names.append(f"{name} in training")
                given.append(f"{name}={getattr(cell, name)!r}")
        if self.training and self.dropout > 0 and self.num_layers > 1:
            names.append("dropout in training")
            given.append(f"dropout={self.dropout!r}")
        if names:
            raise _checks.DtypeError(
                f"{type(self).__name__}: a complex input needs a layer without "
                f"{', '.join(names)} (torch has no complex kernels for them); "
                f"got {dtype} with {', '.join(given)}"
            )

    def _output(
        self, call: _Call, out: Tensor, state: State
    ) -> tuple[Tensor | PackedSequence, LayerState]:
        """The backend's (T, B, D*H) output and state in the form the call came in."""
        if call.autocast_dtypes is not None:
            out = out.to(call.autocast_dtypes[0])
            state = tuple(s.to(d) for s, d in zip(state, call.autocast_dtypes[1:], strict=True))
        if call.packed is not None:
            if out.is_complex() or out.device.type == "meta":
                out_packed = _pack_like(out, call.packed)
            else:
                out_packed = pack_padded_sequence(
                    out,
                    call.lengths,  # type: ignore[arg-type]
                    enforce_sorted=call.packed.sorted_indices is None,
                )
            return out_packed, self._state_out(state, True)
        if not call.batched:
            out = out.squeeze(1)
        elif call.batch_first:
            out = out.transpose(0, 1)  # (T, B, D*H) -> (B, T, D*H)
        return out, self._state_out(state, call.batched)

    def _check_lengths(self, lengths: object, batched: bool, T: int, B: int) -> Tensor | None:
        owner = type(self).__name__
        if lengths is None:
            return None
        if not batched:
            raise ValueError(f"{owner}: lengths needs a batched input (3-D); got a 2-D input")
        return _checks.lengths(owner, lengths, T, B)

    def _check_reset(
        self, reset: object, batched: bool, batch_first: bool, T: int, B: int, device: torch.device
    ) -> Tensor | None:
        owner = type(self).__name__
        if reset is None:
            return None
        if not isinstance(reset, Tensor):
            raise TypeError(f"{owner}: reset must be a bool tensor; got {type(reset).__name__}")
        if reset.dtype != torch.bool:
            raise TypeError(f"{owner}: reset must have dtype torch.bool; got {reset.dtype}")
        if not batched:
            expected: tuple[int, ...] = (T,)
        else:
            expected = (B, T) if batch_first else (T, B)
        if tuple(reset.shape) != expected:
            layout = "(T,)" if not batched else ("(B, T)" if batch_first else "(T, B)")
            raise ValueError(
                f"{owner}: reset must have shape {layout} = {expected}; got {tuple(reset.shape)}"
            )
        if not batched:
            reset = reset.unsqueeze(1)
        elif batch_first:
            reset = reset.transpose(0, 1)  # (B, T) -> (T, B)
        return reset.to(device)

    def _check_state(self, state: object, batched: bool, B: int, x: Tensor) -> State:
        owner = type(self).__name__
        cell = self.first_cell
        LD = self.num_layers * self.num_directions
        if state is None:
            return zero_state(x, cell.state_sizes, LD, B)
        out = []
        parts = self._state_parts(state)
        for name, size, s in zip(cell.state_names, cell.state_sizes, parts, strict=True):
            _checks.tensor_arg(owner, f"state {name}", s)
            _checks.shape_is(owner, f"state {name}", s, (LD, B, size) if batched else (LD, size))
            if s.dtype != x.dtype and _autocast.enabled(x.device) and _autocast.applies(s, x):
                s = s.to(x.dtype)  # a state carried out of an autocast region
            _checks.same_dtype_device(owner, f"state {name}", s, x, "input")
            out.append(s if batched else s.unsqueeze(1))
        return tuple(out)

    def _state_parts(self, state: object) -> tuple:
        """``state`` as one entry per state name, or StateError naming what was given."""
        owner = type(self).__name__
        names = self.first_cell.state_names
        n = len(names)
        if n == 1:
            if not isinstance(state, Tensor):
                raise _checks.StateError(
                    f"{owner}: state must be a tensor h; got {type(state).__name__}"
                )
            return (state,)
        if not isinstance(state, (tuple, list)) or len(state) != n:
            given = (
                f"{len(state)} tensors"
                if isinstance(state, (tuple, list))
                else type(state).__name__
            )
            raise _checks.StateError(
                f"{owner}: state must be a tuple ({', '.join(names)}); got {given}"
            )
        return tuple(state)

    def _state_out(self, state: State, batched: bool) -> LayerState:
        if not batched:
            state = tuple(s.squeeze(1) for s in state)
        return state if len(state) > 1 else state[0]  # type: ignore[return-value]

    def extra_repr(self) -> str:
        parts = [f"{self.input_size}, {self.hidden_size}"]
        if self.proj_size:
            parts.append(f"proj_size={self.proj_size}")  # torch's place for it
        if self.num_layers != 1:
            parts.append(f"num_layers={self.num_layers}")
        for name, default in (
            ("bias", True),
            ("batch_first", False),
            ("dropout", 0.0),
            ("bidirectional", False),
            ("backend", "auto"),
        ):
            if getattr(self, name) != default:
                parts.append(f"{name}={getattr(self, name)!r}")
        return ", ".join(parts)


def _pack_like(out: Tensor, packed: PackedSequence) -> PackedSequence:
    """``out`` (T, B, ...), in the input's original batch order, packed as ``packed`` is.

    By indexing, which autograd differentiates in every dtype: torch's
    ``pack_padded_sequence`` has no gradient for complex tensors ("_pack_padded_sequence
    does not support automatic differentiation for outputs with complex dtype"), while
    torch.nn's complex layers return a packed output that has one.
    """
    if packed.sorted_indices is not None:
        out = out.index_select(1, packed.sorted_indices.to(out.device))
    sizes = packed.batch_sizes  # (T,) on the CPU: step t holds the first sizes[t] samples
    steps, samples = _packed_positions(sizes, out.size(1), out.device)
    data = out[steps, samples]  # step by step, as the packed layout holds them
    return PackedSequence(data, sizes, packed.sorted_indices, packed.unsorted_indices)


def _unpack_meta(packed: PackedSequence) -> tuple[Tensor, Tensor]:
    """A meta ``PackedSequence`` packed unsorted as (T, B, I) and its (B,) lengths, both in
    the packed (sorted) batch order.

    torch's ``pad_packed_sequence`` puts the samples back in their original order, which
    reads ``unsorted_indices`` back to the CPU: "Cannot copy out of meta tensor". A meta
    tensor holds no values, so the order of its samples changes nothing a meta call can
    give - the shapes of the output and the state - and the lengths in sorted order come
    from ``batch_sizes``, which stays on the CPU. The output is packed again by
    :func:`_pack_like` with the input's indices, as torch.nn's is.
    """
    sizes = packed.batch_sizes
    T, B = sizes.numel(), int(sizes[0]) if sizes.numel() else 0
    x = packed.data.new_zeros(T, B, packed.data.size(-1))
    x = x.index_put(_packed_positions(sizes, B, x.device), packed.data)
    return x, (torch.arange(B) < sizes.unsqueeze(1)).sum(0)


def _packed_positions(sizes: Tensor, B: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """The (step, sample) index of each row of a packed batch's data, in its order: step t
    holds the first ``sizes[t]`` samples. Integer indices built on the CPU, where
    ``batch_sizes`` lives, so that the meta device, which cannot index by a boolean mask
    (its ``nonzero`` has no values to count), takes them too."""
    valid = torch.arange(B) < sizes.unsqueeze(1)  # (T, B)
    steps, samples = valid.nonzero(as_tuple=True)
    return steps.to(device), samples.to(device)


def _every_weight(where: str, whose: str, weights: dict[str, Tensor | None]) -> dict[str, Tensor]:
    """``weights`` (name -> the tensor a module runs with), refused in one line if one was
    deleted and not set again (the weight-drop pattern between its steps)."""
    deleted = [name for name, weight in weights.items() if weight is None]
    if deleted:
        name = f"module's {deleted[0]}" if whose == "module" else deleted[0]
        raise ValueError(
            f"{where}: {name} was deleted and not set again; expected every weight of the {whose}"
        )
    return {name: weight for name, weight in weights.items() if weight is not None}


def _copy_weights(
    weights: dict[str, Tensor], training: bool, target: nn.Module, strict: bool = True
) -> None:
    """Give ``target`` copies of ``weights`` by name, with their ``requires_grad``, and the
    train/eval mode ``training``: what a conversion keeps.

    By name, not by state_dict: a parametrized or weight-dropped module's state_dict holds
    its sources (``parametrizations.*.original``, ``*_raw``), not the weights it runs with.
    """
    target.load_state_dict({name: w.detach() for name, w in weights.items()}, strict=strict)
    for name, weight in weights.items():
        getattr(target, name).requires_grad_(weight.requires_grad)
    target.train(training)
