"""Drop-in to the letter: what code written for torch.nn's RNN classes does works on rnnkit's.

Each part is checked against torch.nn itself, in float64 to 1e-10 with gradients:

- ``proj_size`` (the LSTM with projections of Sak et al. 2014) on every backend;
- ``hx=`` as the state's keyword, for layers and cells;
- the exception type torch raises for the same mistake (and rnnkit's ValueError/TypeError);
- torch's accepted edge cases (cells of size 0, empty batches, unbatched input);
- weights read at call time: parametrizations, weight_norm, pruning, functional_call;
- ``torch.load(..., weights_only=True)`` of whole pickled models with rnnkit.safe_globals().
"""

from __future__ import annotations

import doctest
import io
import itertools
import pickle
import re
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations, parametrize, prune
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnkit
import rnnkit.serialization
from rnnkit import _checks

F64 = torch.float64
TOL = 1e-10
I, H, P, T, B = 3, 5, 2, 6, 3
LENGTHS = [6, 2, 4]

LAYERS = {
    "rnn": (rnnkit.RNN, nn.RNN),
    "lstm": (rnnkit.LSTM, nn.LSTM),
    "gru": (rnnkit.GRU, nn.GRU),
}
CELLS = {
    "rnn": (rnnkit.RNNCell, nn.RNNCell),
    "lstm": (rnnkit.LSTMCell, nn.LSTMCell),
    "gru": (rnnkit.GRUCell, nn.GRUCell),
}


def _tuple(state: Any) -> tuple:
    return tuple(state) if isinstance(state, (tuple, list)) else (state,)


def _loss(out: Any, state: Any) -> torch.Tensor:
    """One scalar that touches every output and state with fixed random weights."""
    g = torch.Generator().manual_seed(1)
    total = torch.zeros((), dtype=F64)
    for t in (out, *_tuple(state)):
        total = total + (t * torch.randn(t.shape, generator=g, dtype=F64)).sum()
    return total


def _assert_close(a: Any, b: Any, msg: str = "") -> None:
    torch.testing.assert_close(a, b, atol=TOL, rtol=0, msg=msg or None)


def _assert_same_grads(ours: nn.Module, ref: nn.Module) -> None:
    ref_params = dict(ref.named_parameters())
    names = [n for n, _ in ours.named_parameters()]
    assert names == list(ref_params)
    for name, p in ours.named_parameters():
        _assert_close(p.grad, ref_params[name].grad, msg=name)


# ---- 1. proj_size ---------------------------------------------------------------------


def _run_torch(ref: nn.Module, x: torch.Tensor, state: Any, lengths: Any, batch_first: bool):
    if lengths is None:
        return ref(x, state)
    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    out, s = ref(packed, state)
    out, _ = pad_packed_sequence(
        out, batch_first=batch_first, total_length=x.shape[int(batch_first)]
    )
    return out, s


PROJ_GRID = list(itertools.product([1, 2], [False, True], [False, True], [False, True], [0, 1]))


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize(("layers", "bidir", "batch_first", "with_state", "ragged"), PROJ_GRID)
def test_proj_size_matches_torch(layers, bidir, batch_first, with_state, ragged, backend):
    ref = nn.LSTM(I, H, layers, proj_size=P, bidirectional=bidir, batch_first=batch_first)
    ref = ref.double()
    ours = rnnkit.LSTM.from_torch(ref, backend=backend)
    assert ours.proj_size == P and ours.output_size == P * (2 if bidir else 1)
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=F64)
    LD = layers * (2 if bidir else 1)
    state = (torch.randn(LD, B, P, dtype=F64), torch.randn(LD, B, H, dtype=F64))
    leaves = [[s.clone().requires_grad_() for s in state] for _ in range(2)] if with_state else None
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    lengths = LENGTHS if ragged else None
    with rnnkit.backends.trace() as ran:
        out1, st1 = ours(x1, tuple(leaves[0]) if leaves else None, lengths=lengths)
    out2, st2 = _run_torch(ref, x2, tuple(leaves[1]) if leaves else None, lengths, batch_first)
    assert ran[ours].name == backend
    _assert_close(out1, out2)
    for a, b in zip(st1, st2, strict=True):
        assert a.shape == b.shape
        _assert_close(a, b)
    _loss(out1, st1).backward()
    _loss(out2, st2).backward()
    _assert_close(x1.grad, x2.grad)
    if leaves:
        for a, b in zip(leaves[0], leaves[1], strict=True):
            _assert_close(a.grad, b.grad)
    _assert_same_grads(ours, ref)


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("steps", [1, 3])
def test_proj_size_short_chunks_unbatched_and_packed_match_torch(backend, steps):
    ref = nn.LSTM(I, H, 2, proj_size=P, bidirectional=True, bias=False).double()
    ours = rnnkit.LSTM.from_torch(ref, backend=backend)
    x = torch.randn(steps, I, dtype=F64)  # unbatched (T, I)
    out, (h, c) = ours(x)
    out_ref, (h_ref, c_ref) = ref(x)
    assert h.shape == (4, P) and c.shape == (4, H)
    for a, b in ((out, out_ref), (h, h_ref), (c, c_ref)):
        _assert_close(a, b)
    packed = pack_padded_sequence(torch.randn(T, B, I, dtype=F64), LENGTHS, enforce_sorted=False)
    out, (h, c) = ours(packed)
    out_ref, (h_ref, c_ref) = ref(packed)
    for a, b in ((out.data, out_ref.data), (h, h_ref), (c, c_ref)):
        _assert_close(a, b)


def test_proj_size_cell_is_one_step_of_the_torch_layer():
    ref = nn.LSTM(I, H, proj_size=P).double()
    cell = rnnkit.LSTMCell(I, H, proj_size=P, dtype=F64)
    cell.load_state_dict({k[: -len("_l0")]: v for k, v in ref.state_dict().items()})
    names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"]  # torch's order
    assert [n for n, _ in cell.named_parameters()] == names
    x = torch.randn(B, I, dtype=F64)
    hx = (torch.randn(B, P, dtype=F64), torch.randn(B, H, dtype=F64))
    h, c = cell(x, hx)
    _, (h_ref, c_ref) = ref(x[None], (hx[0][None], hx[1][None]))
    _assert_close(h, h_ref[0])
    _assert_close(c, c_ref[0])


def test_proj_size_round_trips_through_torch_and_streams():
    ref = nn.LSTM(I, H, 2, proj_size=P, batch_first=True)
    ours = rnnkit.LSTM.from_torch(ref)
    back = ours.to_torch()
    assert repr(back) == repr(ref)
    assert (
        ours.extra_repr() == ref.extra_repr() == "3, 5, proj_size=2, num_layers=2, batch_first=True"
    )
    fresh = rnnkit.LSTM(I, H, 2, True, True, 0.0, False, P)  # torch's positional order
    fresh.load_state_dict(ref.state_dict())
    x = torch.randn(2, 5, I)
    whole, _ = fresh(x)
    stream = rnnkit.Stream(fresh)
    steps = torch.stack([stream.step(x[:, t]) for t in range(5)], dim=1)
    torch.testing.assert_close(steps, whole, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "options", [{"layer_norm": True}, {"zoneout": 0.2}, {"recurrent_dropout": 0.3}]
)
def test_proj_size_combines_with_the_options_torch_lacks(options):
    layer = rnnkit.LSTM(I, H, 2, proj_size=P, bidirectional=True, backend="reference", **options)
    layer = layer.double()
    x = torch.randn(T, B, I, dtype=F64)
    out, (h, c) = layer(x)
    assert out.shape == (T, B, 2 * P) and h.shape == (4, B, P) and c.shape == (4, B, H)
    # The option's math with a projection: one cell step by hand is the layer's first output.
    one = rnnkit.LSTM(I, H, proj_size=P, backend="reference", **options).double().eval()
    p, cell = one.cell_parameters(0, 0), one.cells[0]
    zeros = (x.new_zeros(B, P), x.new_zeros(B, H))
    h1, _ = cell.step(p, cell.project(p, x[0]), zeros, None)
    _assert_close(one(x[:1])[0][0], h1)


def test_proj_size_errors_are_torchs():
    cases = (
        (-1, ValueError, "LSTM: proj_size must be an integer >= 0; got -1"),
        (H, ValueError, f"LSTM: proj_size must be smaller than hidden_size; expected < {H}, "
         f"got {H}"),
        (H + 1, ValueError, f"LSTM: proj_size must be smaller than hidden_size; expected < {H}, "
         f"got {H + 1}"),
        (1.5, TypeError, "LSTM: proj_size must be an integer >= 0; got 1.5"),
    )  # fmt: skip
    for bad, exc, message in cases:
        with pytest.raises(exc):
            nn.LSTM(I, H, proj_size=bad)
        with pytest.raises(exc, match="^" + re.escape(message) + "$"):
            rnnkit.LSTM(I, H, proj_size=bad)
    for ours, ref in ((rnnkit.GRU, nn.GRU), (rnnkit.RNN, nn.RNN)):
        with pytest.raises(ValueError):
            ref(I, H, proj_size=0)
        with pytest.raises(ValueError, match="proj_size is only supported by LSTM"):
            ours(I, H, proj_size=0)
    with pytest.raises(ValueError, match="MinGRU: proj_size is only supported by LSTM"):
        rnnkit.MinGRU(I, H, proj_size=2)


# ---- 2. hx= ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru", "mingru"])
def test_layers_take_the_state_as_hx(kind):
    cls = {"rnn": rnnkit.RNN, "lstm": rnnkit.LSTM, "gru": rnnkit.GRU, "mingru": rnnkit.MinGRU}
    layer = cls[kind](I, H, 2).double()
    x = torch.randn(T, B, I, dtype=F64)
    h = torch.randn(2, B, H, dtype=F64)
    state = (h, torch.randn_like(h)) if kind == "lstm" else h
    expected = layer(x, state)
    for got in (layer(x, hx=state), layer(x, state=state), layer(input=x, hx=state)):
        for a, b in zip(_tuple(got[1]), _tuple(expected[1]), strict=True):
            assert torch.equal(a, b)
        assert torch.equal(got[0], expected[0])
    with pytest.raises(TypeError, match=r"state= or hx=.*got both"):
        layer(x, state, hx=state)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_hx_keyword_matches_torch(kind):
    ours_cls, ref_cls = LAYERS[kind]
    ref = ref_cls(I, H, bidirectional=True).double()
    ours = ours_cls.from_torch(ref)
    x = torch.randn(T, B, I, dtype=F64)
    h = torch.randn(2, B, H, dtype=F64)
    hx = (h, torch.randn_like(h)) if kind == "lstm" else h
    for a, b in zip(ours(x, hx=hx), ref(x, hx=hx), strict=True):
        for u, v in zip(_tuple(a), _tuple(b), strict=True):
            _assert_close(u, v)
    cell_ours, cell_ref = (c(I, H).double() for c in CELLS[kind])
    cell_ours.load_state_dict(cell_ref.state_dict())
    hx = (h[0], h[1]) if kind == "lstm" else h[0]
    for u, v in zip(_tuple(cell_ours(x[0], hx=hx)), _tuple(cell_ref(x[0], hx=hx)), strict=True):
        _assert_close(u, v)


# ---- 3. exception types ---------------------------------------------------------------

x3 = torch.randn(5, 2, I)


def _packed(size: int) -> Any:
    return pack_padded_sequence(torch.randn(5, 2, size), [5, 3])


# (name, call(namespace)): the namespace is torch.nn or rnnkit, whose classes share names.
MISTAKES: list[tuple[str, Callable[[Any], Any]]] = [
    ("input_size float", lambda M: M.LSTM(2.5, H)),
    ("input_size str", lambda M: M.GRU("3", H)),
    ("input_size 0", lambda M: M.LSTM(0, H)),
    ("hidden_size 0", lambda M: M.RNN(I, 0)),
    ("hidden_size float", lambda M: M.LSTM(I, 4.0)),
    ("num_layers 0", lambda M: M.GRU(I, H, 0)),
    ("num_layers float", lambda M: M.GRU(I, H, 1.5)),
    ("dropout 1.5", lambda M: M.LSTM(I, H, dropout=1.5)),
    ("dropout str", lambda M: M.LSTM(I, H, dropout="a")),
    ("bias str", lambda M: M.LSTM(I, H, bias="yes")),
    ("batch_first int", lambda M: M.GRU(I, H, batch_first=1)),
    ("nonlinearity", lambda M: M.RNN(I, H, nonlinearity="sigmoid")),
    ("cell size -1", lambda M: M.LSTMCell(I, -1)),
    ("cell size float", lambda M: M.GRUCell(I, 2.5)),
    ("input 4-D", lambda M: M.LSTM(I, H)(torch.randn(1, 5, 2, I))),
    ("input 1-D", lambda M: M.GRU(I, H)(torch.randn(I))),
    ("input size", lambda M: M.LSTM(I, H)(torch.randn(5, 2, I + 1))),
    ("input integer", lambda M: M.LSTM(I, H)(torch.zeros(5, 2, I, dtype=torch.long))),
    ("input float64", lambda M: M.RNN(I, H)(x3.double())),
    ("input T = 0", lambda M: M.GRU(I, H)(torch.randn(0, 2, I))),
    ("packed input size", lambda M: M.GRU(I, H)(_packed(I + 1))),
    ("h batch", lambda M: M.GRU(I, H)(x3, torch.zeros(1, 3, H))),
    ("h layers", lambda M: M.RNN(I, H, 2)(x3, torch.zeros(1, 2, H))),
    ("h 2-D for 3-D input", lambda M: M.GRU(I, H)(x3, torch.zeros(2, H))),
    ("h 3-D for 2-D input", lambda M: M.RNN(I, H)(x3[:, 0], torch.zeros(1, 1, H))),
    ("lstm c shape", lambda M: M.LSTM(I, H)(x3, (torch.zeros(1, 2, H), torch.zeros(1, 3, H)))),
    ("lstm h size", lambda M: M.LSTM(I, H)(x3, (torch.zeros(1, 2, H + 1), torch.zeros(1, 2, H)))),
    ("lstm 3 states", lambda M: M.LSTM(I, H)(x3, (torch.zeros(1, 2, H),) * 3)),
    ("lstm 1 state", lambda M: M.LSTM(I, H)(x3, (torch.zeros(1, 2, H),))),
    ("lstm state tensor", lambda M: M.LSTM(I, H)(x3, torch.zeros(1, 2, H))),
    ("gru state tuple", lambda M: M.GRU(I, H)(x3, (torch.zeros(1, 2, H),))),
    ("state float64", lambda M: M.GRU(I, H)(x3, torch.zeros(1, 2, H, dtype=F64))),
    ("packed h batch", lambda M: M.GRU(I, H)(_packed(I), torch.zeros(1, 3, H))),
    ("cell input 3-D", lambda M: M.LSTMCell(I, H)(torch.randn(1, 2, I))),
    ("cell input size", lambda M: M.LSTMCell(I, H)(torch.randn(2, I + 1))),
    ("cell input list", lambda M: M.GRUCell(I, H)([[1.0]])),
    ("cell input integer", lambda M: M.GRUCell(I, H)(torch.zeros(2, I, dtype=torch.long))),
    ("cell input float64", lambda M: M.RNNCell(I, H)(torch.zeros(2, I, dtype=F64))),
    ("cell h batch", lambda M: M.GRUCell(I, H)(torch.randn(2, I), torch.zeros(3, H))),
    ("cell h size", lambda M: M.RNNCell(I, H)(torch.randn(2, I), torch.zeros(2, H + 1))),
    ("cell h 3-D", lambda M: M.GRUCell(I, H)(torch.randn(2, I), torch.zeros(1, 2, H))),
    ("cell h 1-D batched", lambda M: M.GRUCell(I, H)(torch.randn(2, I), torch.zeros(H))),
    ("cell h 2-D unbatched", lambda M: M.GRUCell(I, H)(torch.randn(I), torch.zeros(1, H))),
    ("cell h tuple", lambda M: M.GRUCell(I, H)(torch.randn(2, I), (torch.zeros(2, H),))),
    ("cell lstm h tensor", lambda M: M.LSTMCell(I, H)(torch.randn(2, I), torch.zeros(2, H))),
    (
        "cell lstm c batch",
        lambda M: M.LSTMCell(I, H)(torch.randn(2, I), (torch.zeros(2, H), torch.zeros(3, H))),
    ),
    ("cell lstm 3 states", lambda M: M.LSTMCell(I, H)(torch.randn(2, I), (torch.zeros(2, H),) * 3)),
    ("cell h float64", lambda M: M.GRUCell(I, H)(torch.randn(2, I), torch.zeros(2, H, dtype=F64))),
]

# What torch raises by accident (a missing attribute or index deep inside) is a wrong type.
ACCIDENTAL = (AttributeError, IndexError)


def _outcome(call: Callable[[], Any]) -> BaseException | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call()
    except Exception as err:
        return err
    return None


@pytest.mark.parametrize(("name", "call"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_each_mistake_raises_what_torch_raises(name, call):
    theirs = _outcome(lambda: call(nn))
    ours = _outcome(lambda: call(rnnkit))
    assert theirs is not None, f"torch.nn accepts {name}"
    assert ours is not None, f"rnnkit accepts {name}; torch raises {theirs!r}"
    expected = TypeError if isinstance(theirs, ACCIDENTAL) else type(theirs)
    assert isinstance(ours, expected), f"{name}: torch raises {theirs!r}, rnnkit {ours!r}"
    # rnnkit's own contract, which the CLI relies on: ValueError or TypeError, one line.
    assert isinstance(ours, (ValueError, TypeError))
    message = str(ours)
    assert "\n" not in message and message.split(":")[0] in dir(rnnkit)


def test_the_exception_classes_serve_both_contracts():
    bases = {
        _checks.ShapeError: (ValueError, RuntimeError),
        _checks.DtypeError: (TypeError, ValueError, RuntimeError),
        _checks.DeviceError: (ValueError, RuntimeError),
        _checks.StateError: (TypeError, RuntimeError),
        _checks.SizeTypeError: (TypeError, ValueError),
    }
    for cls, expected in bases.items():
        assert all(issubclass(cls, base) for base in expected), cls
    with pytest.raises(RuntimeError, match=r"LSTM: state h must have shape \(1, 2, 5\); got"):
        rnnkit.LSTM(I, H)(x3, (torch.zeros(1, 3, H), torch.zeros(1, 2, H)))


# Where torch accepts an argument rnnkit rejects on purpose (documented in docs/layers.md):
# a bool where a size or a flag's type is due, and a nonlinearity torch only refuses at the
# first forward.
DELIBERATE = [
    ("input_size=True", lambda M: M.LSTM(True, H)),
    ("bidirectional=1", lambda M: M.LSTM(I, H, bidirectional=1)),
    ("cell nonlinearity='gelu'", lambda M: M.RNNCell(I, H, nonlinearity="gelu")),
]


@pytest.mark.parametrize(("name", "call"), DELIBERATE, ids=[d[0] for d in DELIBERATE])
def test_deliberate_differences_fail_early_and_clearly(name, call):
    assert _outcome(lambda: call(nn)) is None
    err = _outcome(lambda: call(rnnkit))
    assert isinstance(err, (ValueError, TypeError)), name


ACCEPTED = [
    ("cell hidden_size=0", lambda M: M.LSTMCell(I, 0)(torch.randn(2, I))),
    ("cell bias='y' (truthy: biases)", lambda M: M.LSTMCell(I, H, bias="y")(torch.randn(2, I))),
    ("cell bias=0 (falsy: none)", lambda M: M.GRUCell(I, H, bias=0)(torch.randn(2, I))),
    ("cell input_size=0", lambda M: M.GRUCell(0, H)(torch.randn(2, 0))),
    ("cell empty batch", lambda M: M.GRUCell(I, H)(torch.randn(0, I))),
    ("cell unbatched", lambda M: M.LSTMCell(I, H)(torch.randn(I), (torch.zeros(H),) * 2)),
    ("layer empty batch", lambda M: M.LSTM(I, H)(torch.randn(5, 0, I))),
    ("layer unbatched", lambda M: M.GRU(I, H, 2)(torch.randn(5, I), torch.zeros(2, H))),
    ("lstm state list", lambda M: M.LSTM(I, H)(x3, [torch.zeros(1, 2, H)] * 2)),
    ("dropout, one layer", lambda M: M.GRU(I, H, dropout=0.5)(x3)),
    ("dropout=1", lambda M: M.RNN(I, H, 2, dropout=1)(x3)),
    ("packed with state", lambda M: M.GRU(I, H)(_packed(I), torch.zeros(1, 2, H))),
]


@pytest.mark.parametrize(("name", "call"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_torchs_edge_cases_are_accepted_with_torchs_shapes(name, call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about dropout with one layer
        theirs, ours = call(nn), call(rnnkit)

    def shapes(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return tuple(value.shape)
        if hasattr(value, "data") and hasattr(value, "batch_sizes"):  # PackedSequence
            return shapes(value.data)
        return [shapes(v) for v in value]

    assert shapes(ours) == shapes(theirs)


# ---- 4. weights read at call time -----------------------------------------------------


class _Double(nn.Module):
    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return 2 * w


def _custom(module: nn.Module, name: str) -> None:
    parametrize.register_parametrization(module, name, _Double())


def _orthogonal(module: nn.Module, name: str) -> None:
    parametrizations.orthogonal(module, name)


def _spectral(module: nn.Module, name: str) -> None:
    parametrizations.spectral_norm(module, name)


def _weight_norm(module: nn.Module, name: str) -> None:
    parametrizations.weight_norm(module, name)


def _old_weight_norm(module: nn.Module, name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated, still in use
        nn.utils.weight_norm(module, name)


def _prune(module: nn.Module, name: str) -> None:
    # A forward pre-hook that sets a plain tensor in the parameter's place at each call.
    prune.custom_from_mask(module, name, torch.rand(getattr(module, name).shape) > 0.5)


WRAPPERS = {
    "parametrize": _custom,
    "orthogonal": _orthogonal,
    "spectral_norm": _spectral,
    "weight_norm": _weight_norm,
    "utils.weight_norm": _old_weight_norm,
    "prune pre-hook": _prune,
}


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("wrapper", list(WRAPPERS))
@pytest.mark.parametrize("kind", [*LAYERS, "lstm-proj"])
def test_wrapped_weights_match_torch(kind, wrapper, backend):
    proj = kind == "lstm-proj"
    ours_cls, ref_cls = LAYERS["lstm" if proj else kind]
    ref = ref_cls(I, H, 2, bidirectional=True, **({"proj_size": P} if proj else {})).double()
    ours = ours_cls.from_torch(ref, backend=backend)
    names = ["weight_hh_l0", "weight_ih_l1_reverse"]
    torch.manual_seed(3)
    for name in names:
        WRAPPERS[wrapper](ref, name)
    torch.manual_seed(3)
    for name in names:
        WRAPPERS[wrapper](ours, name)
    ours.load_state_dict(ref.state_dict())
    # eval: spectral_norm's power iteration would otherwise advance at each read, and
    # torch.nn reads a parametrized weight twice per call.
    ref.eval()
    ours.eval()
    x1 = torch.randn(T, B, I, dtype=F64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    with rnnkit.backends.trace() as ran:
        out1, st1 = ours(x1)
    out2, st2 = ref(x2)
    assert ran[ours].name == backend
    _assert_close(out1, out2)
    for a, b in zip(_tuple(st1), _tuple(st2), strict=True):
        _assert_close(a, b)
    _loss(out1, st1).backward()
    _loss(out2, st2).backward()
    _assert_close(x1.grad, x2.grad)
    _assert_same_grads(ours, ref)


def _scaled_copy(cls: type, layer: nn.Module, name: str, factor: float) -> nn.Module:
    """A plain ``cls`` with ``layer``'s weights, ``name`` multiplied by ``factor``."""
    plain = cls(I, H, 2, bidirectional=True, backend=layer.backend).double()
    state = {
        k.replace("parametrizations.", "").replace(".original", ""): v
        for k, v in layer.state_dict().items()
    }
    state[name] = state[name] * factor
    plain.load_state_dict(state)
    return plain


@pytest.mark.parametrize("backend", ["scan", "reference"])
@pytest.mark.parametrize("cls", [rnnkit.MinGRU, rnnkit.MinLSTM])
def test_parametrized_minimal_layers_on_every_backend(cls, backend):
    layer = cls(I, H, 2, bidirectional=True, backend=backend).double()
    _custom(layer, "weight_ih_l1")
    plain = _scaled_copy(cls, layer, "weight_ih_l1", 2.0)
    x = torch.randn(T, B, I, dtype=F64)
    with rnnkit.backends.trace() as ran:
        out, h = layer(x)
    out_plain, h_plain = plain(x)
    assert ran[layer].name == backend
    _assert_close(out, out_plain)
    _assert_close(h, h_plain)
    _loss(out, h).backward()
    _loss(out_plain, h_plain).backward()
    original = layer.parametrizations.weight_ih_l1.original
    _assert_close(original.grad, 2.0 * plain.weight_ih_l1.grad)  # d(2w)/dw = 2


@pytest.mark.parametrize("kind", [*LAYERS, "lstm-proj"])
def test_functional_call_matches_torch(kind):
    proj = kind == "lstm-proj"
    ours_cls, ref_cls = LAYERS["lstm" if proj else kind]
    ref = ref_cls(I, H, 2, bidirectional=True, **({"proj_size": P} if proj else {})).double()
    ours = ours_cls.from_torch(ref)
    params = {n: (p.detach() * 0.5).requires_grad_() for n, p in ref.named_parameters()}
    x = torch.randn(T, B, I, dtype=F64)
    for backend, steps in (("native", T), ("native", 2), ("reference", T)):
        ours.backend = backend
        ours_params = {n: p.detach().clone().requires_grad_() for n, p in params.items()}
        out1, st1 = torch.func.functional_call(ours, ours_params, (x[:steps],))
        out2, st2 = torch.func.functional_call(ref, params, (x[:steps],))
        _assert_close(out1, out2)
        _loss(out1, st1).backward()
        _loss(out2, st2).backward()
        for name, p in ours_params.items():
            _assert_close(p.grad, params[name].grad, msg=name)
            params[name].grad = None
    for name, p in ours.named_parameters():  # the layer's own weights are back in place
        assert torch.equal(p, ref.get_parameter(name))


@pytest.mark.parametrize("cls", [rnnkit.MinGRU, rnnkit.GRU])
def test_functional_call_on_the_scan_and_stream_paths(cls):
    layer = cls(I, H).double()
    params = {n: p.detach() * 2 for n, p in layer.named_parameters()}
    x = torch.randn(T, B, I, dtype=F64)
    out, _ = torch.func.functional_call(layer, params, (x,))
    plain = cls(I, H).double()
    plain.load_state_dict(params)
    _assert_close(out, plain(x)[0])
    # A stream reads the weights at every step, so it follows a parametrized layer's training.
    own = {n: p.detach().clone() for n, p in layer.named_parameters()}
    _custom(layer, "weight_ih_l0")  # the weight in use is 2 w
    stream = rnnkit.Stream(layer)
    first = stream.step(x[0])
    with torch.no_grad():
        layer.parametrizations.weight_ih_l0.original.mul_(2)  # now 4 w
    second = stream.step(x[1])
    plain.load_state_dict({**own, "weight_ih_l0": 4 * own["weight_ih_l0"]})
    expected, _ = plain(x[1:2], first[None])
    _assert_close(second, expected[0])


@pytest.mark.parametrize("kind", list(CELLS))
def test_cells_read_their_weights_at_call_time(kind):
    ours_cls, ref_cls = CELLS[kind]
    ref = ref_cls(I, H).double()
    ours = ours_cls(I, H, dtype=F64)
    for module in (ref, ours):
        _custom(module, "weight_hh")
    ours.load_state_dict(ref.state_dict())
    x, h = torch.randn(B, I, dtype=F64), torch.randn(B, H, dtype=F64)
    hx = (h, torch.randn_like(h)) if kind == "lstm" else h
    for a, b in zip(_tuple(ours(x, hx)), _tuple(ref(x, hx)), strict=True):
        _assert_close(a, b)
    params = {n: p.detach() * 0.5 for n, p in ref_cls(I, H).double().named_parameters()}
    plain_ours, plain_ref = ours_cls(I, H, dtype=F64), ref_cls(I, H).double()
    a = torch.func.functional_call(plain_ours, params, (x, hx))
    b = torch.func.functional_call(plain_ref, params, (x, hx))
    for u, v in zip(_tuple(a), _tuple(b), strict=True):
        _assert_close(u, v)


def test_cell_parameters_keeps_serving_its_callers():
    layer = rnnkit.LSTM(I, H, 2, bidirectional=True)
    p = layer.cell_parameters(1, 1)
    assert list(p) == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    assert p["weight_hh"] is layer.weight_hh_l1_reverse
    _custom(layer, "weight_hh_l1_reverse")
    torch.testing.assert_close(
        layer.cell_parameters(1, 1)["weight_hh"],
        2 * layer.parametrizations.weight_hh_l1_reverse.original,
    )
    rnnkit.LSTMCell(I, H).load_state_dict(layer.cell_parameters(0, 0))


# ---- 5. safe loading ------------------------------------------------------------------


class _Model(nn.Module):
    """A user's model holding rnnkit layers and cells."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = rnnkit.LSTM(I, H, 2, bidirectional=True, proj_size=P)
        self.gru = rnnkit.GRU(2 * P, H, batch_first=False)
        self.rnn = rnnkit.RNN(H, H, nonlinearity="relu")
        self.min = nn.ModuleList([rnnkit.MinGRU(H, H), rnnkit.MinLSTM(H, H)])
        self.cells = nn.ModuleList(
            [
                rnnkit.RNNCell(H, H),
                rnnkit.LSTMCell(H, H, layer_norm=True),
                rnnkit.GRUCell(H, H),
                rnnkit.MinGRUCell(H, H),
                rnnkit.MinLSTMCell(H, H),
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.rnn(self.gru(self.lstm(x)[0])[0])[0]
        for layer in self.min:
            y = layer(y)[0]
        h = y[-1]
        for cell in self.cells:
            out = cell(h)
            h = out[0] if isinstance(out, tuple) else out
        return h


def _saved(model: nn.Module) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    return buffer


def test_whole_models_load_with_weights_only_inside_safe_globals():
    model = _Model()
    x = torch.randn(T, B, I)
    with pytest.raises(pickle.UnpicklingError, match="weights_only"):
        torch.load(_saved(model), weights_only=True)
    with rnnkit.safe_globals(), torch.serialization.safe_globals([_Model]):
        loaded = torch.load(_saved(model), weights_only=True)
    assert type(loaded) is _Model
    torch.testing.assert_close(loaded(x), model(x), atol=0, rtol=0)
    # Outside the block, the allow-list is back as it was.
    with pytest.raises(pickle.UnpicklingError):
        torch.load(_saved(model), weights_only=True)


def test_safe_globals_is_a_list_for_torchs_own_context_manager():
    allowed = rnnkit.safe_globals()
    assert isinstance(allowed, list)
    assert {c.__name__ for c in allowed} >= {"LSTM", "GRU", "RNN", "LSTMCell", "ModuleList"}
    layer = rnnkit.GRU(I, H, 2)
    with torch.serialization.safe_globals(allowed):
        loaded = torch.load(_saved(layer), weights_only=True)
    x = torch.randn(T, B, I)
    torch.testing.assert_close(loaded(x)[0], layer(x)[0], atol=0, rtol=0)
    with allowed, allowed:  # re-entrant
        torch.load(_saved(layer), weights_only=True)


def test_serialization_docstring_example_runs():
    result = doctest.testmod(rnnkit.serialization)
    assert result.attempted > 0 and result.failed == 0


def test_dropout_on_one_layer_warns_as_torch_does():
    """torch.nn warns that dropout acts between layers; rnnkit warns the same words."""
    with pytest.warns(UserWarning) as theirs:
        torch.nn.GRU(3, 4, dropout=0.25)
    with pytest.warns(UserWarning) as ours:
        rnnkit.GRU(3, 4, dropout=0.25)
    assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rnnkit.GRU(3, 4, num_layers=2, dropout=0.25)
        rnnkit.GRU(3, 4, dropout=0.0)
