"""Drop-in details beyond the forward call, each checked against torch.nn itself.

- torch.nn.RNNBase's weight lists (``_flat_weights``, ``_flat_weights_names``,
  ``_all_weights``, ``all_weights``), which code written for torch.nn reads, and the
  AWD-LSTM weight-drop pattern that sets a plain tensor in place of a deleted weight;
- ``from_torch`` / ``to_torch`` keeping what a state_dict does not hold: ``requires_grad``
  per weight, train/eval mode, dtype and device;
- the cells' argument checks: both raise or both run, and where both run the same numbers.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

import rnnkit
from _refusals import raises_exactly
from rnnkit._checks import DtypeError

F64 = torch.float64

# (class name, constructor keywords): every weight layout torch has.
LAYOUTS = [
    ("RNN", {}),
    ("RNN", {"num_layers": 2, "bidirectional": True, "nonlinearity": "relu"}),
    ("GRU", {"num_layers": 2, "bias": False}),
    ("GRU", {"bidirectional": True}),
    ("LSTM", {"num_layers": 2, "bidirectional": True}),
    ("LSTM", {"num_layers": 2, "proj_size": 2}),
    ("LSTM", {"bias": False, "proj_size": 2, "bidirectional": True}),
]


def _pair(name: str, **kwargs: Any) -> tuple[nn.Module, rnnkit.RecurrentLayer]:
    torch.manual_seed(0)
    ref = getattr(nn, name)(3, 4, dtype=F64, **kwargs)
    return ref, getattr(rnnkit, name).from_torch(ref)


def _ids(value: object) -> str:
    return repr(value)


# ---- the weight lists ------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kwargs"), LAYOUTS, ids=_ids)
def test_weight_lists_have_torchs_names_order_and_structure(name: str, kwargs: dict) -> None:
    ref, ours = _pair(name, **kwargs)
    assert ours._flat_weights_names == ref._flat_weights_names
    assert ours._all_weights == ref._all_weights
    assert len(ours._flat_weights) == len(ref._flat_weights)
    for mine, theirs, weight_name in zip(
        ours._flat_weights, ref._flat_weights, ref._flat_weights_names, strict=True
    ):
        assert mine is getattr(ours, weight_name)
        assert type(mine) is type(theirs)
        assert torch.equal(mine, theirs)
    assert [len(ws) for ws in ours.all_weights] == [len(ws) for ws in ref.all_weights]
    for mine_ws, theirs_ws in zip(ours.all_weights, ref.all_weights, strict=True):
        for mine, theirs in zip(mine_ws, theirs_ws, strict=True):
            assert torch.equal(mine, theirs)


def test_weight_lists_follow_a_plain_tensor_set_in_place_of_a_deleted_parameter() -> None:
    ref, ours = _pair("LSTM", num_layers=2)
    index = ref._flat_weights_names.index("weight_hh_l1")
    plain = torch.randn(16, 4, dtype=F64)
    for module in (ref, ours):
        del module.weight_hh_l1
        module.weight_hh_l1 = plain
    assert ours._flat_weights[index] is plain and ref._flat_weights[index] is plain
    assert [type(w) for w in ours._flat_weights] == [type(w) for w in ref._flat_weights]
    assert ours.all_weights[1][1] is plain and ref.all_weights[1][1] is plain
    # Moved by .to(): torch refreshes its list; rnnkit's is read from the attributes.
    ref, ours = ref.float(), ours.float()
    assert [w.dtype for w in ours._flat_weights] == [w.dtype for w in ref._flat_weights]
    assert ours._flat_weights[index] is plain  # a plain attribute is not moved, as in torch
    assert ref._flat_weights[index] is plain


def test_a_deleted_weight_not_set_again_reads_as_none_as_torch_after_a_move() -> None:
    ref, ours = _pair("GRU")
    for module in (ref, ours):
        del module.weight_hh_l0
    ref = ref.to(F64)  # torch refreshes its list on a move; rnnkit's is always fresh
    assert ours._flat_weights[1] is None and ref._flat_weights[1] is None


def test_flat_weights_of_a_parametrized_weight_is_its_computed_value() -> None:
    ref, ours = _pair("GRU")
    for module in (ref, ours):
        parametrize.register_parametrization(module, "weight_hh_l0", _Double())
    ref(torch.randn(2, 1, 3, dtype=F64))  # torch refreshes its list at a forward
    torch.testing.assert_close(ours._flat_weights[1], ref._flat_weights[1], rtol=0, atol=0)
    original = ours.parametrizations.weight_hh_l0.original
    torch.testing.assert_close(ours._flat_weights[1], 2 * original, rtol=0, atol=0)


class _Double(nn.Module):
    def forward(self, w: Tensor) -> Tensor:
        return 2 * w


def test_assigning_flat_weights_takes_the_current_weights_as_torchs_refresh_does() -> None:
    ref, ours = _pair("LSTM")
    for module in (ref, ours):
        names = module._flat_weights_names
        module._flat_weights = [getattr(module, n) for n in names]  # the refresh idiom
    parametrize.register_parametrization(ours, "weight_ih_l0", _Double())
    ours._flat_weights = [getattr(ours, n) for n in ours._flat_weights_names]
    assert [type(w) for w in ours._flat_weights] == [
        Tensor,
        nn.Parameter,
        nn.Parameter,
        nn.Parameter,
    ]


def test_assigning_other_tensors_to_flat_weights_is_refused() -> None:
    _, ours = _pair("LSTM")
    other = [w.detach().clone() for w in ours._flat_weights]
    before = [w.detach().clone() for w in ours._flat_weights]
    raises_exactly(
        ValueError,
        "LSTM._flat_weights: can only be set to the layer's current weights (rnnkit reads "
        "each weight by its name at every call); got another tensor for weight_ih_l0: set "
        "it by name instead, layer.weight_ih_l0 = weight",
        setattr, ours, "_flat_weights", other,
    )  # fmt: skip
    raises_exactly(
        ValueError,
        "LSTM._flat_weights: can only be set to the layer's current weights, a list of 4; "
        "got 0 items",
        setattr, ours, "_flat_weights", [],
    )  # fmt: skip
    raises_exactly(
        ValueError,
        "LSTM._flat_weights: can only be set to the layer's current weights, a list of 4; "
        "got NoneType",
        setattr, ours, "_flat_weights", None,
    )  # fmt: skip
    for kept, was in zip(ours._flat_weights, before, strict=True):
        assert torch.equal(kept, was)


def test_init_flat_weights_calls_flatten_parameters_as_torchs_does() -> None:
    ref, ours = _pair("GRU")
    calls: dict[str, int] = {"ref": 0, "ours": 0}
    for key, module in (("ref", ref), ("ours", ours)):
        module.flatten_parameters = lambda key=key: calls.__setitem__(key, calls[key] + 1)
        module._init_flat_weights()
        module._update_flat_weights()
    assert calls == {"ref": 1, "ours": 1}
    assert ours._weights_have_changed() is False
    assert ref._weights_have_changed() is False


# ---- the weight-drop pattern (AWD-LSTM) ------------------------------------------------


class WeightDrop(nn.Module):
    """DropConnect on a recurrent layer's weights (Merity et al. 2017), as code written for
    torch.nn does it: each named weight is deleted from the layer and kept as ``<name>_raw``
    here; every forward sets the layer's attribute to a dropped-out copy, a plain tensor
    whose gradient flows back to the raw parameter."""

    def __init__(self, module: nn.Module, names: list[str], p: float) -> None:
        super().__init__()
        self.module, self.names, self.p = module, names, p
        for name in names:
            raw = getattr(module, name)
            del module._parameters[name]
            self.register_parameter(f"{name}_raw", nn.Parameter(raw.detach().clone()))
        # The fused cuDNN path would copy the weights away from the dropped tensors.
        module.flatten_parameters = lambda: None

    def forward(self, x: Tensor) -> tuple[Tensor, Any]:
        for name in self.names:
            raw = getattr(self, f"{name}_raw")
            setattr(self.module, name, F.dropout(raw, self.p, self.training))
        return self.module(x)


WEIGHT_DROP_CASES = [
    ("LSTM", {"num_layers": 2}, ["weight_hh_l0", "weight_hh_l1"]),
    ("LSTM", {"bidirectional": True, "proj_size": 2}, ["weight_hh_l0_reverse", "weight_hr_l0"]),
    ("GRU", {"num_layers": 2}, ["weight_hh_l0"]),
    ("RNN", {"bidirectional": True}, ["weight_ih_l0", "weight_hh_l0_reverse"]),
]


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize(("name", "kwargs", "dropped"), WEIGHT_DROP_CASES, ids=_ids)
def test_weight_drop_trains_as_on_torch(
    name: str, kwargs: dict, dropped: list[str], backend: str
) -> None:
    ref_layer, _ = _pair(name, **kwargs)
    ours_layer = getattr(rnnkit, name).from_torch(ref_layer, backend=backend)
    ref, ours = WeightDrop(ref_layer, dropped, 0.4), WeightDrop(ours_layer, dropped, 0.4)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    opts = [torch.optim.SGD(m.parameters(), lr=0.5) for m in (ref, ours)]
    data = torch.Generator().manual_seed(1)
    for step in range(4):
        x = torch.randn(5, 2, 3, dtype=F64, generator=data)
        results = [
            _train_step(m, opt, x, seed=100 + step)
            for m, opt in zip((ref, ours), opts, strict=True)
        ]
        (ref_out, ref_grads), (ours_out, ours_grads) = results
        torch.testing.assert_close(ours_out, ref_out, rtol=0, atol=1e-12)
        for weight_name in dropped:
            # Each step's dropped tensor is what the layer holds and lists, as in torch.
            index = ref_layer._flat_weights_names.index(weight_name)
            assert ours_layer._flat_weights[index] is getattr(ours_layer, weight_name)
            assert type(getattr(ours_layer, weight_name)) is Tensor
            # The gradient reached the raw parameter through the dropped copy.
            raw = f"{weight_name}_raw"
            assert ref_grads[raw].abs().sum() > 0
            torch.testing.assert_close(ours_grads[raw], ref_grads[raw], rtol=0, atol=1e-12)
        assert ours_grads.keys() == ref_grads.keys()
        for key, grad in ref_grads.items():
            torch.testing.assert_close(ours_grads[key], grad, rtol=0, atol=1e-12)
    for (key, theirs), (_, mine) in zip(
        ref.named_parameters(), ours.named_parameters(), strict=True
    ):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-12, msg=key)


def _train_step(
    model: nn.Module, opt: torch.optim.Optimizer, x: Tensor, seed: int
) -> tuple[Tensor, dict[str, Tensor]]:
    """One SGD step under a fixed seed (the same dropout masks on both sides)."""
    torch.manual_seed(seed)
    opt.zero_grad()
    out, _ = model(x)
    out.pow(2).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    opt.step()
    return out.detach(), grads


def test_weight_drop_in_eval_mode_runs_the_raw_weights_as_on_torch() -> None:
    ref_layer, ours_layer = _pair("LSTM")
    ref, ours = (WeightDrop(m, ["weight_hh_l0"], 0.5).eval() for m in (ref_layer, ours_layer))
    x = torch.randn(4, 2, 3, dtype=F64)
    torch.testing.assert_close(ours(x)[0], ref(x)[0], rtol=0, atol=1e-12)
    # F.dropout in eval returns the raw Parameter itself, which the layer then registers.
    assert ours_layer._flat_weights[1] is ours.weight_hh_l0_raw
    assert ref_layer._flat_weights[1] is ref.weight_hh_l0_raw


# ---- from_torch / to_torch -------------------------------------------------------------

FROZEN = ["weight_hh_l0", "bias_ih_l1_reverse"]


@pytest.mark.parametrize("name", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("training", [True, False])
def test_from_torch_keeps_requires_grad_mode_and_dtype(name: str, training: bool) -> None:
    ref = getattr(nn, name)(3, 4, num_layers=2, bidirectional=True, dtype=F64)
    for weight_name in FROZEN:
        getattr(ref, weight_name).requires_grad_(False)
    ref.train(training)
    ours = getattr(rnnkit, name).from_torch(ref)
    _assert_same_flags(ours, ref)
    back = ours.to_torch()
    assert type(back) is type(ref)
    _assert_same_flags(back, ref)


def _assert_same_flags(module: nn.Module, ref: nn.Module) -> None:
    theirs = dict(ref.named_parameters())
    mine = dict(module.named_parameters())
    assert mine.keys() == theirs.keys()
    for key, weight in theirs.items():
        assert mine[key].requires_grad == weight.requires_grad, key
        assert mine[key].dtype == weight.dtype and mine[key].device == weight.device, key
        assert torch.equal(mine[key], weight), key
        assert mine[key] is not weight  # a copy, as the docstrings say
    assert all(m.training == ref.training for m in module.modules())


def test_to_torch_keeps_what_the_rnnkit_layer_freezes_and_its_eval_mode() -> None:
    ours = rnnkit.GRU(3, 4, num_layers=2, dropout=0.5, dtype=F64).eval()
    ours.weight_ih_l1.requires_grad_(False)
    back = ours.to_torch()
    assert not back.training
    assert [p.requires_grad for p in back.parameters()] == [
        p.requires_grad for p in ours.parameters()
    ]
    x = torch.randn(5, 2, 3, dtype=F64)
    # Eval mode kept: no dropout between the layers, so both give the same numbers.
    torch.testing.assert_close(back(x)[0], ours(x)[0], rtol=0, atol=1e-12)


def test_a_frozen_weight_stays_frozen_through_training_after_from_torch() -> None:
    ref = nn.LSTM(3, 4, dtype=F64)
    ref.weight_hh_l0.requires_grad_(False)
    ours = rnnkit.LSTM.from_torch(ref)
    frozen = ours.weight_hh_l0.detach().clone()
    opts = [
        torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1) for m in (ref, ours)
    ]
    x = torch.randn(5, 2, 3, dtype=F64)
    for module, opt in zip((ref, ours), opts, strict=True):
        module(x)[0].sum().backward()
        opt.step()
    assert ours.weight_hh_l0.grad is None and ref.weight_hh_l0.grad is None
    assert torch.equal(ours.weight_hh_l0, frozen)
    for mine, theirs in zip(ours.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["GRU", "LSTM"])
def test_conversions_keep_the_device(name: str) -> None:
    # The meta device stands for any device other than the CPU.
    ref = getattr(nn, name)(3, 4, device="meta", dtype=torch.float16)
    ours = getattr(rnnkit, name).from_torch(ref)
    assert {(p.device.type, p.dtype) for p in ours.parameters()} == {("meta", torch.float16)}
    back = ours.to_torch()
    assert {(p.device.type, p.dtype) for p in back.parameters()} == {("meta", torch.float16)}


def test_from_torch_keeps_a_tied_weights_frozen_flag_under_both_names() -> None:
    ref = nn.GRU(3, 4, bidirectional=True, dtype=F64)
    ref.bias_ih_l0_reverse = ref.bias_ih_l0
    ref.bias_ih_l0.requires_grad_(False)
    ours = rnnkit.GRU.from_torch(ref)
    assert not ours.bias_ih_l0.requires_grad and not ours.bias_ih_l0_reverse.requires_grad


def test_conversions_copy_a_parametrized_weights_computed_value() -> None:
    """A weight under torch.nn.utils.parametrize (here weight_norm) is converted as the
    weight it computes, both ways, and the converted module runs the same numbers."""
    from torch.nn.utils import parametrizations

    torch.manual_seed(0)
    x = torch.randn(5, 2, 3, dtype=F64)
    ours = rnnkit.GRU(3, 4, num_layers=2, bidirectional=True, dtype=F64)
    parametrizations.weight_norm(ours, "weight_hh_l1_reverse")
    ours.parametrizations.weight_hh_l1_reverse.original0.data.mul_(1.7)  # not the identity
    theirs = ours.to_torch()
    assert type(theirs) is nn.GRU and not parametrize.is_parametrized(theirs)
    assert torch.equal(theirs.weight_hh_l1_reverse, ours.weight_hh_l1_reverse)
    assert theirs.weight_hh_l1_reverse.requires_grad
    torch.testing.assert_close(theirs(x), ours(x), rtol=0, atol=1e-12)
    ref = nn.LSTM(3, 4, proj_size=2, dtype=F64)
    parametrizations.weight_norm(ref, "weight_hr_l0")
    ref.parametrizations.weight_hr_l0.original0.data.mul_(0.3)
    back = rnnkit.LSTM.from_torch(ref)
    assert type(back) is rnnkit.LSTM and torch.equal(back.weight_hr_l0, ref.weight_hr_l0)
    torch.testing.assert_close(back(x), ref(x), rtol=0, atol=1e-12)


def test_conversions_of_a_weight_dropped_layer_copy_the_weight_set_last() -> None:
    """A plain tensor set in place of a deleted weight is the weight converted; a weight
    deleted and not set again is refused in one line, both ways."""
    torch.manual_seed(0)
    x = torch.randn(5, 2, 3, dtype=F64)
    for make, convert, message in (
        (lambda: rnnkit.LSTM(3, 4, dtype=F64), lambda m: m.to_torch(),
         "LSTM.to_torch: weight_hh_l0 was deleted and not set again; expected every weight of "
         "the layer"),
        (lambda: nn.LSTM(3, 4, dtype=F64), rnnkit.LSTM.from_torch,
         "LSTM.from_torch: module's weight_hh_l0 was deleted and not set again; expected every "
         "weight of the module"),
    ):  # fmt: skip
        layer = make()
        raw = nn.Parameter(layer.weight_hh_l0.detach().clone())
        del layer.weight_hh_l0
        raises_exactly(ValueError, message, convert, layer)
        layer.register_parameter("weight_hh_l0_raw", raw)
        layer.weight_hh_l0 = F.dropout(raw, 0.5, training=True)
        converted = convert(layer)
        assert torch.equal(converted.weight_hh_l0, layer.weight_hh_l0)
        assert isinstance(converted.weight_hh_l0, nn.Parameter)
        torch.testing.assert_close(converted(x), layer(x), rtol=0, atol=1e-12)


def test_from_torch_still_refuses_a_subclass_that_is_not_a_parametrization() -> None:
    class Mine(nn.GRU):
        pass

    raises_exactly(TypeError, "GRU.from_torch: module must be a torch.nn.modules.rnn.GRU; got "
                   "Mine", rnnkit.GRU.from_torch, Mine(3, 4))  # fmt: skip


# ---- the cells' argument checks --------------------------------------------------------

I, H = 3, 4


def _hx(kind: str, *batch: int, size: int = H, dtype: torch.dtype = F64, c: Any = None) -> Any:
    h = torch.randn(*batch, size, dtype=dtype)
    if kind != "LSTMCell":
        return h
    return (h, torch.randn(*batch, H, dtype=dtype) if c is None else c)


def _x(*shape: int, dtype: torch.dtype = F64) -> Tensor:
    return torch.randn(shape, dtype=dtype)


# (case, input, hx) for each kind; None: no hx.
CELL_CASES: dict[str, Callable[[str], tuple[Any, Any]]] = {
    "batched": lambda k: (_x(2, I), _hx(k, 2)),
    "no hx": lambda k: (_x(2, I), None),
    "unbatched": lambda k: (_x(I), _hx(k)),
    "unbatched, no hx": lambda k: (_x(I), None),
    "empty batch": lambda k: (_x(0, I), _hx(k, 0)),
    "empty batch, no hx": lambda k: (_x(0, I), None),
    "input too wide": lambda k: (_x(2, I + 1), None),
    "unbatched input too narrow": lambda k: (_x(I - 1), None),
    "input of width 0": lambda k: (_x(2, 0), None),
    "3-D input": lambda k: (_x(1, 2, I), None),
    "0-D input": lambda k: (_x(), None),
    "hx of another batch": lambda k: (_x(2, I), _hx(k, 3)),
    "hx of batch 1": lambda k: (_x(2, I), _hx(k, 1)),
    "hx too wide": lambda k: (_x(2, I), _hx(k, 2, size=H + 1)),
    "3-D hx": lambda k: (_x(2, I), _hx(k, 1, 2)),
    "1-D hx, batched input": lambda k: (_x(2, I), _hx(k)),
    "2-D hx, unbatched input": lambda k: (_x(I), _hx(k, 1)),
    "hx of batch 1, empty batch": lambda k: (_x(0, I), _hx(k, 1)),
    "empty hx, batch 2": lambda k: (_x(2, I), _hx(k, 0)),
    "float32 input": lambda k: (_x(2, I, dtype=torch.float32), None),
    "float32 input and hx": lambda k: (
        _x(2, I, dtype=torch.float32),
        _hx(k, 2, dtype=torch.float32),
    ),
    "float32 hx": lambda k: (_x(2, I), _hx(k, 2, dtype=torch.float32)),
    "integer input": lambda k: (torch.ones(2, I, dtype=torch.long), None),
    "bool input": lambda k: (torch.ones(2, I, dtype=torch.bool), None),
}
LSTM_CASES: dict[str, Callable[[], tuple[Any, Any]]] = {
    "c too wide": lambda: (_x(2, I), _hx("LSTMCell", 2, c=_x(2, H + 1))),
    "c of another batch": lambda: (_x(2, I), _hx("LSTMCell", 2, c=_x(3, H))),
    "1-D c": lambda: (_x(2, I), _hx("LSTMCell", 2, c=_x(H))),
    "hx a list": lambda: (_x(2, I), list(_hx("LSTMCell", 2))),
}
KINDS = ["RNNCell", "GRUCell", "LSTMCell"]


def _cells(kind: str) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    ref = getattr(nn, kind)(I, H, dtype=F64)
    ours = getattr(rnnkit, kind)(I, H, dtype=F64)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def _outcome(cell: nn.Module, x: Any, hx: Any) -> tuple[Tensor, ...] | type[BaseException]:
    try:
        out = cell(x, hx)
    except (RuntimeError, ValueError, TypeError) as error:
        return type(error)
    return out if isinstance(out, tuple) else (out,)


def _assert_same_outcome(kind: str, x: Any, hx: Any) -> None:
    """Both raise (an exception of torch's type) or both run and agree."""
    ref, ours = _cells(kind)
    theirs, mine = _outcome(ref, x, hx), _outcome(ours, x, hx)
    if isinstance(theirs, type):
        assert isinstance(mine, type), f"torch raises {theirs.__name__}, rnnkit runs"
        assert issubclass(mine, theirs), (mine, theirs)
        return
    assert not isinstance(mine, type), f"torch runs, rnnkit raises {mine.__name__}"
    for a, b in zip(mine, theirs, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", list(CELL_CASES))
@pytest.mark.parametrize("kind", KINDS)
def test_cells_raise_or_run_as_torchs_cells(kind: str, case: str) -> None:
    torch.manual_seed(1)
    _assert_same_outcome(kind, *CELL_CASES[case](kind))


@pytest.mark.parametrize("case", list(LSTM_CASES))
def test_lstm_cell_state_checks_as_torchs(case: str) -> None:
    torch.manual_seed(1)
    _assert_same_outcome("LSTMCell", *LSTM_CASES[case]())


@pytest.mark.parametrize("c_dtype", [torch.float32, torch.float16])
def test_lstm_cell_refuses_a_c_of_another_dtype_where_torch_promotes(
    c_dtype: torch.dtype,
) -> None:
    """A deliberate difference (docs/layers.md): torch's LSTMCell never checks c's dtype,
    runs by type promotion and may return h and c in another dtype than the cell's."""
    ref, ours = _cells("LSTMCell")
    x, (h, _) = _x(2, I), _hx("LSTMCell", 2)
    c = torch.randn(2, H, dtype=c_dtype)
    h_out, c_out = ref(x, (h, c))
    assert h_out.dtype == F64 and c_out.dtype == F64  # torch runs
    raises_exactly(
        DtypeError,
        f"LSTMCell: hx c.dtype must equal input.dtype; expected torch.float64, got {c_dtype}",
        ours, x, (h, c),
    )  # fmt: skip


def test_cell_checks_see_the_same_state_as_torch_after_copy() -> None:
    # The checks read the cell's current parameters: a deep copy converted to float32
    # accepts float32 input, as torch's does.
    ref, ours = _cells("GRUCell")
    ref32, ours32 = copy.deepcopy(ref).float(), copy.deepcopy(ours).float()
    x = _x(2, I, dtype=torch.float32)
    torch.testing.assert_close(ours32(x), ref32(x), rtol=0, atol=1e-6)
    with pytest.raises(RuntimeError):
        ref(x)
    with pytest.raises(RuntimeError, match=re.escape("GRUCell: input.dtype must equal")):
        ours(x)
