"""Continuous streams (the chapter's first "desired capability", 10.21).

A :class:`Stream` wraps a unidirectional layer or model with the ``(x, state) -> (out,
state)`` contract and feeds it an unbounded sequence chunk by chunk, carrying the state:
chunks of any size - single steps included - give the same outputs as one call on the
whole sequence, and memory stays flat however long the stream runs (the state is
detached between chunks, so no autograd graph grows behind it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit import _autocast, backends
from rnnkit.layers.base import RecurrentLayer
from rnnkit.train.tbptt import detach_state


class Stream:
    """Run ``module`` on an unbounded stream, chunk by chunk, with its state carried.

    Args:
        module: a unidirectional rnnkit layer, or a model whose forward is
            ``(x, state) -> (out, state)`` with state tensors shaped (L, B, ...).
        detach: cut the autograd graph behind the state after every chunk (default), so a
            stream of any length holds one chunk's graph at most.

    Shape:
        chunk (T, B, ...) time-major, or (B, T, ...) if ``module.batch_first``;
        a single step for :meth:`step` is (B, ...).

    Example (chunks of any size, single steps too, give the outputs of one call)::

        >>> import torch, rnnkit
        >>> _ = torch.manual_seed(0)
        >>> layer = rnnkit.LSTM(3, 4)
        >>> x = torch.randn(10, 2, 3)  # (T, B, I)
        >>> stream = rnnkit.Stream(layer)
        >>> outs = [stream(x[:3]), stream(x[3:9]), stream.step(x[9]).unsqueeze(0)]
        >>> torch.allclose(torch.cat(outs), layer(x)[0], atol=1e-6), stream.steps
        (True, 10)
    """

    def __init__(self, module: nn.Module, *, detach: bool = True) -> None:
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"Stream: module must be a torch.nn.Module; got {type(module).__name__}"
            )
        for name, sub in module.named_modules():
            if getattr(sub, "bidirectional", False):
                where = f" ({name})" if name else ""
                raise ValueError(
                    f"Stream: a stream runs forward in time, but {type(sub).__name__}{where} is "
                    "bidirectional and its reverse direction needs the future; expected a "
                    "unidirectional layer or model"
                )
        if not isinstance(detach, bool):
            # A string such as "no" would be taken as true: the state detached unasked.
            raise TypeError(f"Stream: detach must be a bool; got {detach!r}")
        self.module = module
        self.detach = detach
        self.batch_first = bool(getattr(module, "batch_first", False))
        self._state: Any = None  # the module's form: (L, B, H) tensors
        self._layers: list[Any] | None = None  # a layer's state as a list per layer k
        self._stepper: Any = None
        self._stepper_key: tuple = ()
        self.batch_size: int | None = None
        # A state assigned since the last call: its batch size is the module's to check.
        self._assigned = False
        self.steps = 0  # time steps consumed since the last full reset
        # The backend the last chunk or step ran on: a stream is stateful by nature, so it
        # keeps what the layer itself does not (see rnnkit.backends.trace).
        self.last_backend: str | None = None

    @property
    def state(self) -> Any:
        """The carried state in the module's own form (None before the first chunk)."""
        return self._gathered()

    @state.setter
    def state(self, value: Any) -> None:
        # A state of any batch size may be assigned (one saved from another stream): the
        # next chunk or step checks it as the layer checks any state, and batch_size
        # follows it, so that call is not refused for the batch size that ran before.
        self._state, self._layers = value, None
        self.batch_size = _state_batch_size(value)
        self._assigned = True

    def _gathered(self) -> Any:
        """The state in the module's form, the per-layer states of single steps stacked."""
        if self._layers is not None:
            n = len(self._layers[0])
            state = tuple(torch.stack([s[j] for s in self._layers]) for j in range(n))
            self._state = state if n > 1 else state[0]
            self._layers = None
        return self._state

    def __call__(self, chunk: Tensor) -> Tensor:
        """Feed the next chunk; returns its outputs, shaped like the module's output.

        An empty chunk (T = 0) returns no outputs and leaves the state as it was for a
        layer; a model is refused it, since only the model knows its empty output's shape.
        """
        if not isinstance(chunk, Tensor):
            raise TypeError(f"Stream: chunk must be a torch.Tensor; got {type(chunk).__name__}")
        if chunk.dim() < 2:
            layout = "(B, T, ...)" if self.batch_first else "(T, B, ...)"
            raise ValueError(
                f"Stream: chunk must have a time and a batch axis {layout}; got shape "
                f"{tuple(chunk.shape)} (use step() for a single step)"
            )
        if isinstance(self.module, RecurrentLayer) and chunk.dim() != 3:
            # A layer reads a 2-D chunk as one unbatched sequence (T, I): the stream would
            # take I for the batch size and carry an unbatched state.
            layout = "(B, T, I)" if self.batch_first else "(T, B, I)"
            raise ValueError(
                f"Stream: a layer's chunk must be 3-D {layout}; got shape {tuple(chunk.shape)}"
            )
        T, B = (chunk.size(1), chunk.size(0)) if self.batch_first else chunk.shape[:2]
        self._check_batch(B, "chunk")
        if T == 0:
            if _takes_lengths(self.module):
                return self._empty_chunk(chunk, B)
            # A model's empty output has a shape only it knows, and run on T = 0 its layer
            # refused it naming lengths, which a stream's caller never passes.
            raise ValueError(
                f"Stream: chunk has T = 0 time steps; expected T >= 1 for a model (an empty "
                f"chunk runs on a layer only); got shape {tuple(chunk.shape)} for "
                f"{type(self.module).__name__}"
            )
        return self._run(chunk, T, B)

    def _check_batch(self, B: int, what: str) -> None:
        """A chunk's or a step's B: the running stream's, unless a state was assigned."""
        if self.batch_size is not None and self.batch_size != B and not self._assigned:
            raise ValueError(
                f"Stream: {what} batch size must equal the running stream's; expected "
                f"{self.batch_size}, got {B} (reset() starts a new stream)"
            )

    def _run(self, chunk: Tensor, T: int, B: int) -> Tensor:
        """Run the module on a chunk of T >= 1 steps and B samples; carry its state."""
        with backends.trace() as ran:
            result = self.module(chunk, self.state)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            # A model without the contract (a Tagger's forward(x, lengths)) gets the state
            # as its second argument; its output must not be unpacked as (out, state).
            raise TypeError(
                f"Stream: module must return (out, state) from forward(x, state); "
                f"{type(self.module).__name__} returned {type(result).__name__}"
                + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "")
            )
        out, state = result
        _check_carried(state, B, type(self.module).__name__)
        self.state = detach_state(state) if self.detach and torch.is_grad_enabled() else state
        choice = ran.get(self.module)
        if choice is not None:  # an rnnkit layer
            self.last_backend = choice.name
        else:  # another module may name its own kernel (rnnkit.quantize_dynamic's do)
            self.last_backend = getattr(self.module, "last_backend", None)
        self.batch_size, self._assigned = B, False
        self.steps += T
        return out

    def _empty_chunk(self, chunk: Tensor, B: int) -> Tensor:
        """The outputs of a chunk of no time steps (none), the state left as it was.

        A layer refuses T = 0 unless its lengths say every sequence is empty, and a
        stream's empty chunk (nothing new arrived) is exactly that: run so, the layer
        checks the chunk and the state as it checks any, and returns its empty output.
        """
        lengths = torch.zeros(B, dtype=torch.long)
        out, _ = self.module(chunk, self.state, lengths=lengths)
        self.batch_size, self._assigned = B, False
        return out

    def step(self, x: Tensor) -> Tensor:
        """Feed one time step x (B, ...); returns its output (B, ...).

        For an rnnkit layer this takes a fast path - torch's one-step kernels, or the
        cell's step for options they lack - with the state kept per stacked layer, so a
        step costs about what ``torch.nn.LSTMCell`` costs.
        """
        if not isinstance(x, Tensor):
            raise TypeError(f"Stream: x must be a torch.Tensor; got {type(x).__name__}")
        layer = self.module
        if isinstance(layer, RecurrentLayer):
            if x.dim() != 2:
                raise ValueError(
                    f"Stream: a layer's step must be 2-D (B, I); got shape {tuple(x.shape)}"
                )
            return self._layer_step(layer, x)
        if x.dim() < 1:
            raise ValueError("Stream: a step must have a batch axis (B, ...); got a scalar")
        axis = 1 if self.batch_first else 0
        self._check_batch(x.size(0), "step")
        return self._run(x.unsqueeze(axis), 1, x.size(0)).squeeze(axis)

    def _layer_step(self, layer: RecurrentLayer, x: Tensor) -> Tensor:
        B, I = x.shape
        if layer.input_size != I:
            raise ValueError(
                f"Stream: x.size(-1) must equal the layer's input_size; expected "
                f"{layer.input_size}, got {I}"
            )
        if self.batch_size is not None and self.batch_size != B and not self._assigned:
            raise ValueError(
                f"Stream: step batch size must equal the running stream's; expected "
                f"{self.batch_size}, got {B} (reset() starts a new stream)"
            )
        weight = layer.weight_ih_l0  # a registered weight (or its parametrization)
        # Autocast leaves a complex layer complex, as torch.nn's (rnnkit._autocast.applies).
        autocast = _autocast.enabled(x.device) and _autocast.applies(x, weight)
        key = (layer.training, x.dtype, x.device)
        if self._stepper is None or key != self._stepper_key:
            dtype_ok = x.dtype == weight.dtype or autocast  # autocast: read as the layer does
            if not dtype_ok or x.device != weight.device:
                layer(x.unsqueeze(0), self.state)  # the layer's own error names the mismatch
            self.last_backend, self._stepper = backends.stepper(layer.plan())
            self._stepper_key = key
            # The layer moved (another dtype or device) or changed mode: the state carried
            # per layer is checked again as an assigned one, below. Run unchecked, torch
            # failed in its words ("mat1 and mat2 must have the same dtype") or a float32
            # state was promoted to the layer's float64 without a word.
            self._gathered()
        fresh = self._layers is None and self._state is None
        if self._layers is None:
            state = self._state
            if state is None:
                zeros = tuple(x.new_zeros(B, size) for size in layer.first_cell.state_sizes)
                self._layers = [zeros for _ in range(layer.num_layers)]
            else:
                # An assigned state is checked as a chunk's is: split per layer unchecked, a
                # wrong shape failed in torch's words (an IndexError, "hidden0 has ...").
                layer._check_state(state, True, B, x)
                parts = layer._state_parts(state)
                self._layers = [tuple(s[k] for s in parts) for k in range(layer.num_layers)]
        if autocast:
            return self._autocast_step(layer, x, weight.dtype, fresh)
        # The weights are read at every step, so a stream over a parametrized layer follows
        # its training.
        h, layers = self._stepper(layer.read_weights(), x, self._layers)
        if self.detach and torch.is_grad_enabled():
            layers = [tuple(s.detach() for s in st) for st in layers]
        self._layers = layers
        self.batch_size, self._assigned = B, False
        self.steps += 1
        return h

    def _autocast_step(
        self, layer: RecurrentLayer, x: Tensor, dtype: torch.dtype, fresh: bool
    ) -> Tensor:
        """A step under autocast, in the dtypes a one-step call of the layer returns.

        As the layer does (rnnkit._autocast): the step reads its input and state at the
        parameters' precision, and what it returns is cast to torch.nn's dtypes for the call.
        """
        assert self._layers is not None and self._stepper is not None
        given = None if fresh else tuple(s.dtype for s in self._layers[0])
        dtypes = _autocast.result_dtypes(
            layer.kind,
            x.device,
            x.dtype,
            given,
            len(self._layers[0]),
            projection=layer.proj_size > 0,
            sequence_kernel=True,
        )
        states = [tuple(s.to(dtype) for s in st) for st in self._layers]
        h, layers = self._stepper(layer.read_weights(), x.to(dtype), states)
        if self.detach and torch.is_grad_enabled():
            layers = [tuple(s.detach() for s in st) for st in layers]
        self._layers = [
            tuple(s.to(d) for s, d in zip(st, dtypes[1:], strict=True)) for st in layers
        ]
        self.batch_size, self._assigned = x.size(0), False
        self.steps += 1
        return h.to(dtypes[0])

    def reset(self, samples: Sequence[int] | Tensor | None = None) -> None:
        """Zero the whole state (``samples=None``) or the state of chosen samples.

        ``samples`` is a 1-D list (or tensor) of batch indices, one index, or a (B,) bool
        mask; an empty list resets nothing. The chosen samples start again from zeros,
        whatever their state held.
        """
        if samples is None:
            self.state, self.steps = None, 0
            return
        given = _samples(samples)
        state = self.state
        if state is None:
            return  # nothing has run yet: every state is already zero
        B = _batch_size(state)  # a state with no B to read is refused here in one line
        if given.dtype == torch.bool:
            if tuple(given.shape) != (B,):
                raise ValueError(
                    f"Stream: reset mask must have shape (B,) = ({B},); got {tuple(given.shape)}"
                )
            chosen = given.cpu()
        else:
            index = given.to(torch.long)
            if index.numel() and (int(index.min()) < -B or int(index.max()) >= B):
                raise ValueError(
                    f"Stream: reset samples must be batch indices in [0, {B}) (or from the end, "
                    f"-{B} to -1); got {index.tolist()}"
                )
            chosen = torch.zeros(B, dtype=torch.bool)
            chosen[index] = True
        assigned = self._assigned
        self.state = _zero_samples(state, chosen)
        self._assigned = assigned  # the same state, zeroed in part: no new assignment


def _takes_lengths(module: nn.Module) -> bool:
    """Whether ``module`` is a layer called as ``(x, state, lengths=...)``: an rnnkit layer,
    or the quantized form rnnkit.quantize_dynamic gives one."""
    from rnnkit.quantize import QuantizedRecurrent  # on use: quantize is optional here

    return isinstance(module, (RecurrentLayer, QuantizedRecurrent))


def _samples(samples: object) -> Tensor:
    """``samples`` of :meth:`Stream.reset` as a bool mask or an integer tensor of indices
    (empty: none), or a one-line TypeError (not indices) or ValueError (not 1-D) naming
    what was given."""
    expected = "Stream: reset samples must be integer batch indices or a (B,) bool mask"
    if isinstance(samples, (str, bytes)):  # a sequence, but of characters
        raise TypeError(f"{expected}; got {type(samples).__name__} {samples!r}")
    try:
        # A list of bools is a mask too: read as indices, [True, False] would zero 1 and 0.
        given = torch.as_tensor(samples)
    except (TypeError, ValueError, RuntimeError):  # torch's words: "new(): invalid data type"
        raise TypeError(f"{expected}; got {type(samples).__name__} {samples!r}") from None
    if given.numel() and (given.is_floating_point() or given.is_complex()):
        # Cast to long, 0.5 would zero sample 0 without a word.
        raise TypeError(f"{expected}; got {given.dtype} {given.tolist()}")
    if given.dim() == 0 and given.dtype != torch.bool:
        return given.reshape(1)  # one index, reset(3), as a list of one
    if given.dim() != 1:
        # Flattened, [[0]] or a (1, B) mask was read as the 1-D one it resembles.
        raise ValueError(
            "Stream: reset samples must be a 1-D list of integer batch indices or a (B,) bool "
            f"mask; got {given.dtype} of shape {tuple(given.shape)}"
        )
    if given.numel() == 0 and given.dtype != torch.bool:
        return given.to(torch.long)  # [] reads as float32: no index, nothing to reset
    return given


def _check_carried(state: Any, B: int, owner: str) -> None:
    """``state`` returned by a module for a chunk of B samples: tensors (L, B, ...), or a
    tuple or list of them (nested too), refused in one line otherwise. A (B, H) state read
    H as the batch size and a reset zeroed hidden units instead of samples; a dict failed
    in detach_state's words after the module had run."""
    if isinstance(state, (tuple, list)):
        for part in state:
            _check_carried(part, B, owner)
        return
    if not isinstance(state, Tensor):
        raise TypeError(
            "Stream: the module's state must be a tensor or a tuple or list of them "
            f"(L, B, ...); got {type(state).__name__} from {owner}"
        )
    if state.dim() < 2 or state.size(1) != B:
        raise ValueError(
            f"Stream: the module's state must be tensors (L, B, ...) with the batch B = {B} "
            f"on axis 1; got a tensor of shape {tuple(state.shape)} from {owner}"
        )


def _state_batch_size(state: Any) -> int | None:
    """B of a state in a module's form (axis 1 of its first tensor), or None where it has
    none to read (None, or a malformed state the next call refuses in the module's words)."""
    first = state
    while isinstance(first, (tuple, list)) and first:
        first = first[0]
    return first.size(1) if isinstance(first, Tensor) and first.dim() >= 2 else None


def _batch_size(state: Any) -> int:
    """B of a state in a module's form: axis 1 of its first tensor (L, B, ...)."""
    first = state
    while isinstance(first, (tuple, list)) and first:
        first = first[0]
    if not isinstance(first, Tensor) or first.dim() < 2:
        given = f"shape {tuple(first.shape)}" if isinstance(first, Tensor) else type(first).__name__
        raise ValueError(
            f"Stream: reset of chosen samples needs a state of (L, B, ...) tensors; got {given}"
        )
    return first.size(1)


def _zero_samples(state: Any, chosen: Tensor) -> Any:
    """``state`` with the samples where ``chosen`` is True set to zero (batch axis 1).

    Set, not multiplied by a mask: NaN * 0 and inf * 0 are NaN, so a sample whose state
    had overflowed would never start again.
    """
    if isinstance(state, Tensor):
        mask = chosen.to(state.device).view(1, -1, *([1] * (state.dim() - 2)))
        return state.masked_fill(mask, 0)
    return type(state)(_zero_samples(s, chosen) for s in state)
