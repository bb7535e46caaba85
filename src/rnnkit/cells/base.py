"""What every recurrent cell shares: parameters, initialisation and the cell options.

A cell computes one time step and nothing else. Its math is split in two so that the
sequence runners can hoist the input projection out of the time loop (one GEMM over all
T steps, as cuDNN does):

    gx  = project(p, x)                 # W_x· x^t + b_x·, for all gates at once
    s^t = recur(p, gx^t, s^{t-1})       # the chapter's equations for one step

``p`` is a mapping from torch's parameter names (``weight_ih``, ``weight_hh``, ``bias_ih``,
``bias_hh``) to tensors. A standalone cell passes its own parameters; a layer owns them
under torch's layer names (``weight_ih_l0_reverse``) and passes the ones of each layer and
direction, so a ``torch.nn`` state_dict loads into either as is.

The state is always a tuple inside rnnkit: ``(h,)`` for RNN/GRU, ``(h, c)`` for LSTM.

Weights are looked up at call time by ordinary attribute access (:func:`current_weight`),
never held on to, so whatever takes a parameter's place - ``torch.nn.utils.parametrize``,
``weight_norm``, ``torch.func.functional_call``, a forward pre-hook - is what runs.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit import _autocast, _checks

State = tuple[Tensor, ...]
Params = Mapping[str, Tensor]


def current_weight(module: nn.Module, name: str) -> Tensor:
    """``getattr(module, name)``, with a fast path for a parameter still in its place.

    Every way torch swaps a weight keeps attribute access right: a parametrization deletes
    the parameter and installs a property, ``weight_norm``/``spectral_norm``/``prune``
    delete it and set a plain tensor before each forward, ``functional_call`` puts its
    tensor into ``_parameters``. So a name still found in ``_parameters`` is what
    ``getattr`` would return, and the dictionary read skips ``Module.__getattr__``, which
    costs about ten times as much on the per-call path.
    """
    weight = module._parameters.get(name)
    return weight if weight is not None else getattr(module, name)


def zero_state(like: Tensor, sizes: tuple[int, ...], *shape: int) -> State:
    """Zero states of shape (*shape, size) for each size, like ``like``.

    States of one size share one tensor: nothing writes a state in place, and on the
    per-call path one allocation fewer is measurable.
    """
    zeros = like.new_zeros(*shape, sizes[0])
    return tuple(zeros if size == sizes[0] else like.new_zeros(*shape, size) for size in sizes)


def _is_finite(value: float) -> bool:
    """Whether a number is finite, an int too large for a float counting as infinite."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


# Options only some cells take, and which: another cell (or layer) refuses them by name.
# Python's own message would name RecurrentCell.__init__, neither the class that was
# called nor the class that has the option.
_ONLY_IN = {
    "layer_norm": "LSTM and LSTMCell",
    "proj_size": "LSTM and LSTMCell",
    "nonlinearity": "RNN and RNNCell",
}


# What makes a cell's step: a subclass that defines one of these computes other equations
# than its parent's, whose kind would send it to kernels written for the parent's.
_STEP_MEMBERS = frozenset(
    {
        "project",
        "recur",
        "step",
        "parameter_shapes",
        "num_gates",
        "state_names",
        "output_size",
        "state_sizes",
        "masked",
        "_zoneout",
        "coefficients",
        "scan_coefficients",
    }
)


def _refuse_unknown(owner: str, options: Mapping[str, object]) -> None:
    """Refuse the keyword arguments no class on the way up took (``options``)."""
    for name, value in options.items():
        if name in _ONLY_IN:
            raise TypeError(
                f"{owner}: {name} is only supported by {_ONLY_IN[name]}; got {name}={value!r}"
            )
        raise TypeError(f"{owner}: got an unexpected keyword argument {name!r}")


class RecurrentCell(nn.Module, abc.ABC):
    """Base class of the one-step cells.

    Options shared by all cells:

    - ``zoneout`` (Krueger et al. 2016): during training each unit of the state keeps its
      previous value with this probability; at evaluation the state is the expected value
      ``p * s^{t-1} + (1 - p) * s^t``.
    - ``recurrent_dropout`` (Gal & Ghahramani 2016, "variational" dropout): the input
      ``h^{t-1}`` of the recurrent product is multiplied by a dropout mask that is sampled
      once per sequence and reused at every step (a layer samples it per call).
    - ``forget_bias`` (Jozefowicz et al. 2015) and ``chrono_init`` (Tallec & Ollivier 2018):
      initialisation of the gate biases of gated cells; they change no math.

    A cell of one's own subclasses this class (or one of rnnkit's cells) and defines
    ``recur``, with ``num_gates`` (or its own ``parameter_shapes``) and ``state_names`` if
    its state is not ``(h,)``. ``kind`` names its equations: the backends run torch's or
    rnnkit's fused kernels for the kinds they have ("LSTM", "GRU", "RNN_TANH", "RNN_RELU"),
    and the reference loop over ``step`` for any other. A subclass that defines a member of
    the step (``recur``, ``project``, ``step``, ``parameter_shapes``, ``coefficients``,
    ...) without a ``kind`` of its own is given its qualified class name as kind, so a
    variant of the LSTM or GRU is not run on their kernels; one whose equations are still
    its parent's names that kind itself (``kind = "LSTM"``).

    A step is the input projection and the recurrence (see the module's description);
    called, a cell takes both::

        >>> import torch, rnnkit
        >>> _ = torch.manual_seed(0)
        >>> cell = rnnkit.GRUCell(3, 4)
        >>> x, h = torch.randn(2, 3), torch.randn(2, 4)  # (B, I), (B, H)
        >>> p = cell.own_parameters()  # torch's names: weight_ih, weight_hh, bias_ih, bias_hh
        >>> (h_next,) = cell.recur(p, cell.project(p, x), (h,), None)
        >>> torch.equal(h_next, cell(x, h))
        True

    A cell of one's own (IndRNN, Li et al. 2018: h^t = relu(W x^t + b + u ∘ h^{t-1})),
    and a layer of it, which runs on the reference loop over its ``step``::

        >>> from rnnkit.cells.base import RecurrentCell
        >>> class IndRNNCell(RecurrentCell):
        ...     num_gates = 1  # weight_ih is (1 * H, I)
        ...     def parameter_shapes(self):
        ...         shapes = super().parameter_shapes()
        ...         shapes["weight_hh"] = (self.hidden_size,)  # u: one weight per unit
        ...         shapes.pop("bias_hh", None)  # b_ih is the one bias
        ...         return shapes
        ...     def recur(self, p, gx, state, mask):
        ...         (h_prev,) = state
        ...         return (torch.relu(gx + p["weight_hh"] * self.masked(h_prev, mask)),)
        >>> class IndRNN(rnnkit.RecurrentLayer):
        ...     cell_class = IndRNNCell
        >>> out, h = IndRNN(3, 4, backend="reference")(torch.randn(5, 2, 3))  # (T, B, I)
        >>> out.shape, h.shape
        (torch.Size([5, 2, 4]), torch.Size([1, 2, 4]))
    """

    # The name of the equations, which picks the kernels: torch's mode name ("LSTM", "GRU",
    # "RNN_TANH", "RNN_RELU") for those it has; else the class's (see __init_subclass__).
    kind: ClassVar[str]
    num_gates: ClassVar[int]  # blocks of H rows stacked in weight_ih / weight_hh
    state_names: ClassVar[tuple[str, ...]] = ("h",)
    has_projection: ClassVar[bool] = False  # takes proj_size (the LSTM's W_hr)

    def __init_subclass__(cls, **kwargs: object) -> None:
        """Give a subclass that changes the step, or has no kind, a kind of its own.

        An inherited "LSTM" or "GRU" would run a peephole LSTM or another GRU on torch's
        kernels for those, which compute the parent's equations: a silently different
        result (or torch's "got an incorrect number of RNN parameters").
        """
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            return
        if _STEP_MEMBERS & cls.__dict__.keys() or not hasattr(cls, "kind"):
            cls.kind = f"{cls.__module__}.{cls.__qualname__}"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        *,
        zoneout: float = 0.0,
        recurrent_dropout: float = 0.0,
        forget_bias: float | None = None,
        chrono_init: float | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        _own_parameters: bool = True,
        **unknown: object,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        _refuse_unknown(owner, unknown)
        self.input_size = _checks.non_negative_int(owner, "input_size", input_size)
        _checks.parameter_dtype(owner, dtype)
        self.hidden_size = _checks.non_negative_int(owner, "hidden_size", hidden_size)
        # torch.nn's cells take any truthy ``bias`` (RNNCell(10, 20, "relu") builds, with
        # biases); the layers check for a bool, as torch.nn's layers do.
        self.bias = bool(bias)
        self.zoneout = _checks.probability(owner, "zoneout", zoneout)
        self.recurrent_dropout = _checks.probability(
            owner, "recurrent_dropout", recurrent_dropout, upper_open=True
        )
        self.forget_bias = self._check_forget_bias(forget_bias, chrono_init)
        self.chrono_init = self._check_chrono(chrono_init)
        self._parameter_names = tuple(self.parameter_shapes())
        if _own_parameters:
            for name, shape in self.parameter_shapes().items():
                param = nn.Parameter(torch.empty(shape, device=device, dtype=dtype))
                self.register_parameter(name, param)
            self.reset_parameters()

    # ---- options --------------------------------------------------------------------

    def _check_forget_bias(self, forget_bias: float | None, chrono: float | None) -> float | None:
        owner = type(self).__name__
        if forget_bias is None:
            return None
        if self.kind.startswith("RNN"):
            raise ValueError(f"{owner}: forget_bias needs a gated cell (LSTM or GRU); got {owner}")
        if chrono is not None:
            raise ValueError(
                f"{owner}: forget_bias and chrono_init both set the forget-gate bias; "
                f"expected one of them, got forget_bias={forget_bias!r}, chrono_init={chrono!r}"
            )
        if isinstance(forget_bias, bool) or not isinstance(forget_bias, (int, float)):
            raise TypeError(f"{owner}: forget_bias must be a number; got {forget_bias!r}")
        if not _is_finite(forget_bias):
            # NaN or inf in a gate's bias makes every output NaN from the first step.
            raise ValueError(f"{owner}: forget_bias must be a finite number; got {forget_bias!r}")
        if not self.bias:
            raise ValueError(f"{owner}: forget_bias needs bias=True; got bias=False")
        return float(forget_bias)

    def check_forget_bias_fits(self, bias: Tensor) -> None:
        """Refuse a ``forget_bias`` the bias parameter's dtype cannot hold (read at each
        initialisation: the layer may have been cast since it was built)."""
        if self.forget_bias is None or not bias.is_floating_point():
            return
        top = torch.finfo(bias.dtype).max
        if abs(self.forget_bias) > top:
            raise ValueError(
                f"{type(self).__name__}: forget_bias must fit the parameters' dtype "
                f"{bias.dtype} (magnitude at most {top:.6g}); got {self.forget_bias!r}"
            )

    def _check_chrono(self, chrono: float | None) -> float | None:
        owner = type(self).__name__
        if chrono is None:
            return None
        if self.kind.startswith("RNN"):
            raise ValueError(f"{owner}: chrono_init needs a gated cell (LSTM or GRU); got {owner}")
        bad = isinstance(chrono, bool) or not isinstance(chrono, (int, float))
        if bad or not _is_finite(chrono) or not chrono >= 2:
            raise ValueError(
                f"{owner}: chrono_init is the longest expected dependency T_max and must be a "
                f"number >= 2; got {chrono!r}"
            )
        if not self.bias:
            raise ValueError(f"{owner}: chrono_init needs bias=True; got bias=False")
        return float(chrono)

    @property
    def uses_cell_options(self) -> list[str]:
        """The options whose math torch's fused kernels do not have (empty for a plain cell).

        ``recurrent_dropout`` only changes the math while training.
        """
        used = []
        if getattr(self, "layer_norm", False):
            used.append("layer_norm")
        if self.zoneout > 0:
            used.append("zoneout")
        if self.recurrent_dropout > 0 and self.training:
            used.append("recurrent_dropout")
        return used

    # ---- sizes ----------------------------------------------------------------------

    @property
    def output_size(self) -> int:
        """Size of h^t, the output and the first state (an LSTM's projection makes it P)."""
        return self.hidden_size

    @property
    def state_sizes(self) -> tuple[int, ...]:
        """Size of each state in ``state_names``: h^t is the output, the rest are H wide."""
        return (self.output_size,) + (self.hidden_size,) * (len(self.state_names) - 1)

    # ---- parameters -----------------------------------------------------------------

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """torch's names and shapes; subclasses add their own (layer-norm gains)."""
        G, H, I = getattr(self, "num_gates", None), self.hidden_size, self.input_size
        if isinstance(G, bool) or not isinstance(G, int) or G < 1:
            raise TypeError(
                f"{type(self).__name__}: num_gates must be set on the class, the number of "
                "H-row blocks stacked in weight_ih and weight_hh (or parameter_shapes "
                f"overridden); expected an int >= 1, got {'none' if G is None else repr(G)}"
            )
        shapes: dict[str, tuple[int, ...]] = {"weight_ih": (G * H, I), "weight_hh": (G * H, H)}
        if self.bias:
            # Two biases, as cuDNN has them, so that torch's state_dicts load unchanged;
            # only their sum matters except in the GRU candidate, where b_hn sits inside r ∘ (·).
            shapes["bias_ih"] = (G * H,)
            shapes["bias_hh"] = (G * H,)
        return shapes

    @torch.no_grad()
    def init_parameters(self, p: Params) -> None:
        """Initialise ``p`` in place: torch's U(-1/√H, 1/√H), then the bias options."""
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size else 0.0  # H = 0: empty
        for name, value in p.items():
            if name.startswith("ln_"):
                # LayerNorm gains start at 1 and shifts at 0 (Ba et al. 2016).
                value.fill_(1.0 if name.endswith("weight") else 0.0)
            else:
                value.uniform_(-bound, bound)
        H = self.hidden_size
        if self.forget_bias is not None:
            self.check_forget_bias_fits(p["bias_ih"])
            keep = self.keep_gate_slice()
            p["bias_ih"][keep] = self.forget_bias
            p["bias_hh"][keep] = 0.0
        if self.chrono_init is not None:
            # Tallec & Ollivier 2018, eq. 16: b_f ~ log U(1, T_max - 1), b_i = -b_f, so that
            # the characteristic forgetting times spread over [1, T_max].
            keep = self.keep_gate_slice()
            u = torch.empty(H, dtype=torch.float64).uniform_(1.0, self.chrono_init - 1.0)
            b_keep = torch.log(u).to(p["bias_ih"])
            p["bias_ih"][keep] = b_keep
            p["bias_hh"][keep] = 0.0
            tied = self.tied_input_slice()
            if tied is not None:
                p["bias_ih"][tied] = -b_keep
                p["bias_hh"][tied] = 0.0

    def keep_gate_slice(self) -> slice:
        """Rows of the gate whose bias says how much of the old state is kept (what
        ``forget_bias`` and ``chrono_init`` set); a cell without one raises ValueError."""
        owner = type(self).__name__
        if self.forget_bias is None and self.chrono_init is None:  # called directly
            raise ValueError(
                f"{owner}.keep_gate_slice: expected a cell with a gate that keeps the state "
                f"(an LSTM's forget gate, a GRU's update gate); got {owner}, which has none"
            )
        asked = "forget_bias" if self.forget_bias is not None else "chrono_init"
        raise ValueError(
            f"{owner}: {asked} needs a cell with a gate that keeps the state "
            f"(keep_gate_slice); got {owner}"
        )

    def tied_input_slice(self) -> slice | None:
        """Rows of the gate that chrono init ties to minus the keep gate (LSTM's i)."""
        return None

    def reset_parameters(self) -> None:
        self.init_parameters(dict(self.named_parameters(recurse=False)))

    def own_parameters(self) -> dict[str, Tensor]:
        """This cell's weights under torch's names, as attribute access finds them now."""
        return {name: current_weight(self, name) for name in self._parameter_names}

    # ---- one time step --------------------------------------------------------------

    def project(self, p: Params, x: Tensor, linear: Callable[..., Tensor] = F.linear) -> Tensor:
        """The input half of every gate, W_x· x + b_x·: shape (..., G*H). ``linear`` is the
        product to use (``F.linear``'s signature; the fused backend passes
        :func:`rnnkit.kernels.gemm.linear`)."""
        return linear(x, p["weight_ih"], p.get("bias_ih"))

    @abc.abstractmethod
    def recur(self, p: Params, gx: Tensor, state: State, mask: Tensor | None) -> State:
        """One step of the chapter's equations, given the projected input ``gx``."""

    def step(
        self,
        p: Params,
        gx: Tensor,
        state: State,
        mask: Tensor | None,
        keep: State | None = None,
    ) -> State:
        """``recur`` followed by zoneout, the step every runner takes.

        ``keep`` gives this step's zoneout masks, one per state (drawn here if omitted):
        a runner that draws them for all steps up front passes them in.
        """
        new = self.recur(p, gx, state, mask)
        if self.zoneout > 0:
            keeps = keep if keep is not None else (None,) * len(new)
            new = tuple(self._zoneout(s, n, k) for s, n, k in zip(state, new, keeps, strict=True))
        return new

    def _zoneout(self, prev: Tensor, new: Tensor, keep: Tensor | None = None) -> Tensor:
        if self.training:
            # Krueger et al. 2016: a fresh Bernoulli(p) mask per unit and step; units
            # where it is 1 keep their previous value (identity gradient through time).
            if keep is None:
                keep = torch.rand_like(new) < self.zoneout
            return torch.where(keep, prev, new)
        return self.zoneout * prev + (1.0 - self.zoneout) * new

    def sample_zoneout(self, steps: int, state: State) -> State | None:
        """Zoneout masks for ``steps`` steps at once, (T, B, size) per state; None if unused.

        The same Bernoulli(p) draws as ``step`` makes one step at a time, taken up front so
        that a loop run as one opaque operator is a deterministic function of its inputs.
        """
        if not (self.zoneout > 0 and self.training):
            return None
        return tuple(
            torch.rand(steps, *s.shape, device=s.device, dtype=s.dtype) < self.zoneout
            for s in state
        )

    def config(self) -> dict[str, object]:
        """The constructor arguments that fix this cell's step (not its initialisation).

        A cell rebuilt from them with the same weights computes the same function; the
        opaque loop under ``torch.compile`` (:mod:`rnnkit.backends.opaque`) relies on it.
        Subclasses with arguments of their own add them.
        """
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "bias": self.bias,
            "zoneout": self.zoneout,
            "recurrent_dropout": self.recurrent_dropout,
        }

    @staticmethod
    def masked(h: Tensor, mask: Tensor | None) -> Tensor:
        """h^{t-1} as the recurrent product sees it under variational dropout."""
        return h if mask is None else h * mask

    def sample_recurrent_mask(self, batch: int, like: Tensor) -> Tensor | None:
        """One (B, H) dropout mask for a whole sequence (Gal & Ghahramani 2016)."""
        # `training` read only when an option needs it, as torch.nn's cells never read it.
        if not (self.recurrent_dropout > 0 and self.training):
            return None
        keep = 1.0 - self.recurrent_dropout
        shape = (batch, self.output_size)  # the size of h^{t-1}
        return torch.bernoulli(like.new_full(shape, keep)) / keep

    # ---- drop-in forward ------------------------------------------------------------

    def forward(
        self,
        input: Tensor,
        hx: Tensor | tuple[Tensor, Tensor] | None = None,
        *,
        recurrent_mask: Tensor | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """One step. Shape: input (B, I) or (I,); each state in hx (B, H) or (H,).

        Returns h' (RNN, GRU) or the tuple (h', c') (LSTM), as the torch.nn cells do; an
        LSTM with ``proj_size`` P carries h as (B, P). ``recurrent_mask``, shaped like h,
        fixes the variational-dropout mask (sampled per call if omitted).
        """
        owner = type(self).__name__
        x = _checks.tensor_arg(owner, "input", input)
        if x.dim() not in (1, 2):
            raise _checks.ShapeError(
                f"{owner}: input must be 2-D (B, I) or 1-D (I,); got {x.dim()}-D with shape "
                f"{tuple(x.shape)}"
            )
        batched = x.dim() == 2
        if not batched:
            x = x.unsqueeze(0)
        if x.size(-1) != self.input_size:
            raise _checks.ShapeError(
                f"{owner}: input.size(-1) must equal input_size; "
                f"expected {self.input_size}, got {x.size(-1)}"
            )
        p = self.own_parameters()
        # Autocast leaves a complex cell complex, as torch.nn's (rnnkit._autocast.applies).
        autocast = _autocast.enabled(x.device) and _autocast.applies(x, p["weight_ih"])
        given_hx, input_dtype = hx, x.dtype
        state_hx: object = hx  # cast_state passes a malformed hx on, for _state_in to name
        if autocast:
            # As torch.nn's cells under autocast, a lower-precision input or state is taken:
            # the step runs in the parameters' precision and returns the dtypes torch.nn's
            # cell returns (see rnnkit._autocast).
            x = x.to(p["weight_ih"].dtype)
            state_hx = _autocast.cast_state(hx, x.dtype)
        _checks.same_dtype_device(owner, "input", x, p["weight_ih"], "the parameters")
        state = self._state_in(state_hx, x, batched)
        if recurrent_mask is None:
            recurrent_mask = self.sample_recurrent_mask(x.size(0), x)
        new = self.step(p, self.project(p, x), state, recurrent_mask)
        if autocast:
            given = None if given_hx is None else self._state_parts(given_hx)
            dtypes = _autocast.result_dtypes(
                self.kind,
                x.device,
                input_dtype,
                None if given is None else tuple(s.dtype for s in given),
                len(new),
                projection=bool(getattr(self, "proj_size", 0)),
                sequence_kernel=False,
                layer=False,
            )
            new = tuple(s.to(d) for s, d in zip(new, dtypes[1:], strict=True))
        if not batched:
            new = tuple(s.squeeze(0) for s in new)
        return new if len(new) > 1 else new[0]  # type: ignore[return-value]

    def _state_in(self, hx: object, x: Tensor, batched: bool) -> State:
        owner = type(self).__name__
        B = x.size(0)
        if hx is None:
            return zero_state(x, self.state_sizes, B)
        out = []
        for name, size, s in zip(
            self.state_names, self.state_sizes, self._state_parts(hx), strict=True
        ):
            _checks.tensor_arg(owner, f"hx {name}", s)
            _checks.shape_is(owner, f"hx {name}", s, (B, size) if batched else (size,))
            _checks.same_dtype_device(owner, f"hx {name}", s, x, "input")
            out.append(s if batched else s.unsqueeze(0))
        return tuple(out)

    def _state_parts(self, hx: object) -> tuple:
        """``hx`` as a tuple of one entry per state, or StateError naming what was given."""
        owner = type(self).__name__
        n = len(self.state_names)
        if n == 1:
            if not isinstance(hx, Tensor):
                raise _checks.StateError(f"{owner}: hx must be a tensor h; got {type(hx).__name__}")
            return (hx,)
        if not isinstance(hx, (tuple, list)) or len(hx) != n:
            given = f"{len(hx)} items" if isinstance(hx, (tuple, list)) else type(hx).__name__
            names = ", ".join(self.state_names)
            raise _checks.StateError(f"{owner}: hx must be a tuple ({names}); got {given}")
        return tuple(hx)

    def extra_repr(self) -> str:
        parts = [f"{self.input_size}, {self.hidden_size}"]
        if not self.bias:
            parts.append("bias=False")
        for name in ("zoneout", "recurrent_dropout"):
            if getattr(self, name):
                parts.append(f"{name}={getattr(self, name)}")
        for name in ("forget_bias", "chrono_init"):
            if getattr(self, name) is not None:
                parts.append(f"{name}={getattr(self, name)}")
        return ", ".join(parts)
