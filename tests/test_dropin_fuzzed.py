"""Drop-in cases found by a differential fuzz against torch.nn, kept as regression tests.

Each case builds a torch.nn module and the rnnkit one with the same weights, applies the
same module operations to both (train/eval, deepcopy, state_dict both ways, from_torch /
to_torch, a weight reassigned or re-registered, a dtype change), runs the same call
(batched, unbatched, batch_first, PackedSequence sorted or not, hx None / given /
non-contiguous / a list, plain or through ``torch.func.functional_call``) and compares:
both raise or both succeed; output types and shapes; outputs, final states and the
gradients w.r.t. the input, hx and every parameter (1e-12 in float64, 1e-6 in float32).

Then the defects the fuzz found, each against torch.nn: the fused backend reading a
weight of the wrong shape, a layer running with a bias set to None, and ``mode``.
"""

from __future__ import annotations

import copy
import random
import re
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import rnnkit
from rnnkit import _checks

KINDS = ["rnn_tanh", "rnn_relu", "lstm", "lstm_proj", "gru", "rnncell", "lstmcell", "grucell"]
HX_FORMS = ["none", "given", "noncontig", "list", "wrong_h", "wrong_ld", "other_batching"]
OPS = ["train", "eval", "deepcopy", "sd_t2r", "sd_r2t", "assign", "register", "to_dtype",
       "from_torch", "to_torch", "flatten"]  # fmt: skip


def _draw(seed: int) -> dict[str, Any]:
    """One configuration; seeds were picked so the 36 cases cover every kind and form."""
    r = random.Random(seed)
    kind = KINDS[seed % len(KINDS)]
    is_cell = kind.endswith("cell")
    c: dict[str, Any] = {"kind": kind, "is_cell": is_cell, "seed": seed}
    c["I"], c["H"] = r.randint(1, 5), r.randint(2, 5)
    c["bias"] = r.random() < 0.7
    c["dtype"] = r.choice([torch.float32, torch.float64, torch.float64])
    c["L"], c["bidir"], c["batch_first"] = r.randint(1, 3), r.random() < 0.5, r.random() < 0.5
    c["P"] = r.randint(1, c["H"] - 1) if kind == "lstm_proj" else 0
    forms = ["2d", "1d"] if is_cell else ["3d", "2d", "packed_sorted", "packed_unsorted"]
    c["input"] = forms[(seed // len(KINDS)) % len(forms)]
    c["T"], c["B"] = r.choice([1, 2, 4]), r.choice([1, 2, 3])
    lengths = [r.randint(1, c["T"]) for _ in range(c["B"])]
    lengths[r.randrange(c["B"])] = c["T"]
    c["lengths"] = sorted(lengths, reverse=True) if c["input"] == "packed_sorted" else lengths
    c["hx"] = HX_FORMS[seed % len(HX_FORMS)]
    ops = [o for o in OPS if not (is_cell and o in ("from_torch", "to_torch", "flatten"))]
    c["ops"] = [r.choice(ops) for _ in range(r.randint(1, 3))]
    c["functional"] = r.random() < 0.3
    c["mode"] = r.choice(["train", "eval"])
    return c


def _build(c: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    kind, I, H, dt = c["kind"], c["I"], c["H"], c["dtype"]
    torch.manual_seed(c["seed"])
    if c["is_cell"]:
        name = {"rnncell": "RNNCell", "lstmcell": "LSTMCell", "grucell": "GRUCell"}[kind]
        ref = getattr(nn, name)(I, H, c["bias"], dtype=dt)
        ours = getattr(rnnkit, name)(I, H, c["bias"], dtype=dt)
    else:
        kw: dict[str, Any] = dict(
            num_layers=c["L"],
            bias=c["bias"],
            dtype=dt,
            batch_first=c["batch_first"],
            bidirectional=c["bidir"],
        )
        name = kind.split("_")[0].upper()
        if name == "RNN":
            kw["nonlinearity"] = kind.split("_")[1]
        if name == "LSTM":
            kw["proj_size"] = c["P"]
        ref, ours = getattr(nn, name)(I, H, **kw), getattr(rnnkit, name)(I, H, **kw)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def _apply(c: dict[str, Any], ref: nn.Module, ours: nn.Module) -> tuple[nn.Module, nn.Module]:
    g = torch.Generator().manual_seed(c["seed"])
    for op in c["ops"]:
        if op in ("train", "eval"):
            ref.train(op == "train"), ours.train(op == "train")
        elif op == "deepcopy":
            ref, ours = copy.deepcopy(ref), copy.deepcopy(ours)
        elif op == "flatten":
            ref.flatten_parameters(), ours.flatten_parameters()  # type: ignore[operator]
        elif op in ("sd_t2r", "sd_r2t"):
            src, dst = (ref, ours) if op == "sd_t2r" else (ours, ref)
            with torch.no_grad():
                for p in src.parameters():
                    p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)
            dst.load_state_dict(src.state_dict())
        elif op in ("assign", "register"):
            names = [n for n, _ in ref.named_parameters()]
            name = names[int(torch.randint(len(names), (1,), generator=g))]
            old = getattr(ref, name)
            value = (torch.randn(old.shape, generator=g, dtype=torch.float64) * 0.5).to(old.dtype)
            for m in (ref, ours):
                if op == "assign":
                    setattr(m, name, nn.Parameter(value.clone()))
                else:
                    m.register_parameter(name, nn.Parameter(value.clone()))
        elif op == "to_dtype":
            c["dtype"] = torch.float32 if c["dtype"] == torch.float64 else torch.float64
            ref, ours = ref.to(c["dtype"]), ours.to(c["dtype"])
        elif op == "from_torch":
            ours = type(ours).from_torch(ref)  # type: ignore[attr-defined]
        elif op == "to_torch":
            ref = ours.to_torch()  # type: ignore[operator]
    ref.train(c["mode"] == "train"), ours.train(c["mode"] == "train")
    return ref, ours


def _inputs(c: dict[str, Any]) -> tuple[Any, Any, list[torch.Tensor]]:
    """(input, hx, leaves), drawn afresh from the case's seed for each side."""
    g = torch.Generator().manual_seed(c["seed"] + 1)
    T, B, I, H, dt = c["T"], c["B"], c["I"], c["H"], c["dtype"]
    if c["is_cell"]:
        x_shape: tuple[int, ...] = (B, I) if c["input"] == "2d" else (I,)
        sizes = [H] * (2 if c["kind"] == "lstmcell" else 1)
        batch: tuple[int, ...] = (B,) if c["input"] == "2d" else ()
        unbatched = c["input"] == "1d"
    else:
        LD = c["L"] * (2 if c["bidir"] else 1)
        unbatched = c["input"] == "2d"
        x_shape = (T, I) if unbatched else (T, B, I)
        if c["batch_first"] and c["input"] == "3d":
            x_shape = (B, T, I)
        sizes = [c["P"] or H, H] if c["kind"].startswith("lstm") else [H]
        batch = (LD,) if unbatched else (LD, B)
    if c["hx"] == "other_batching":  # a batched state for an unbatched input, and back
        batch = ((1,) if c["is_cell"] else (batch[0], 1)) if unbatched else batch[:-1]
    x = torch.randn(x_shape, generator=g, dtype=torch.float64).to(dt).requires_grad_()
    leaves = [x]
    inp: Any = x
    if c["input"].startswith("packed"):
        sort = c["input"] == "packed_sorted"
        inp = pack_padded_sequence(x, torch.tensor(c["lengths"]), enforce_sorted=sort)
    if c["hx"] == "none":
        return inp, None, leaves
    parts = []
    for j, size in enumerate(sizes):
        shape = [*batch, size]
        if c["hx"] == "wrong_h" and j == len(sizes) - 1:
            shape[-1] += 1
        if c["hx"] == "wrong_ld" and not c["is_cell"]:
            shape[0] += 1
        s = torch.randn(shape, generator=g, dtype=torch.float64).to(dt).requires_grad_()
        leaves.append(s)
        if c["hx"] == "noncontig":
            s = torch.stack([s, torch.zeros_like(s)], dim=-1)[..., 0]
        parts.append(s)
    hx = parts[0] if len(parts) == 1 else list(parts) if c["hx"] == "list" else tuple(parts)
    return inp, hx, leaves


def _run(c: dict[str, Any], module: nn.Module) -> tuple[str, Any, Any]:
    inp, hx, leaves = _inputs(c)
    params = dict(module.named_parameters())
    try:
        if c["functional"]:
            params = {n: p.detach().clone().requires_grad_() for n, p in params.items()}
            out = torch.func.functional_call(module, params, (inp, hx))
        else:
            out = module(inp) if hx is None else module(inp, hx)
    except Exception as error:  # which one: compared by the caller
        return "raise", error, None
    # (output, state) of a layer, (h, c) of an LSTM cell, h alone: every tensor in one list.
    # A PackedSequence is a tuple too, hence the exact type test.
    flat = list(out) if type(out) is tuple else [out]
    flat = [t for o in flat for t in (o if type(o) in (tuple, list) else (o,))]
    g = torch.Generator().manual_seed(c["seed"] + 2)
    values = [t.data if isinstance(t, PackedSequence) else t for t in flat]  # Tensor.data detaches
    loss = sum(
        (v * torch.randn(v.shape, generator=g, dtype=torch.float64).to(v.dtype)).sum()
        for v in values
    )
    grads = torch.autograd.grad(loss, leaves + list(params.values()), allow_unused=True)
    return "ok", flat, grads


def _describe(t: Any) -> Any:
    if isinstance(t, PackedSequence):
        order = None if t.sorted_indices is None else t.sorted_indices.tolist()
        return ("packed", tuple(t.data.shape), t.batch_sizes.tolist(), order)
    return (type(t).__name__, tuple(t.shape), t.dtype)


# 36 cases: every kind x input form, every hx form (valid ones and mistakes torch refuses).
@pytest.mark.parametrize("seed", range(36))
def test_fuzzed_case_matches_torch(seed: int) -> None:
    c = _draw(seed)
    ref, ours = _apply(c, *_build(c))
    assert list(ours.state_dict()) == list(ref.state_dict())
    (k_ref, a, ga), (k_ours, b, gb) = _run(c, ref), _run(c, ours)
    assert k_ours == k_ref, f"torch: {k_ref} ({a}), rnnkit: {k_ours} ({b})"
    if k_ref == "raise":
        return
    assert [_describe(t) for t in b] == [_describe(t) for t in a]
    tol = 1e-12 if c["dtype"] == torch.float64 else 1e-6
    for u, v in zip(a, b, strict=True):
        u, v = (t.data if isinstance(t, PackedSequence) else t for t in (u, v))
        torch.testing.assert_close(v, u, atol=tol, rtol=tol)
    assert [g is None for g in gb] == [g is None for g in ga]
    for u, v in zip(ga, gb, strict=True):
        if u is not None:
            torch.testing.assert_close(v, u, atol=10 * tol, rtol=10 * tol)


def test_the_fuzzed_cases_cover_every_kind_input_and_hx_form() -> None:
    cases = [_draw(seed) for seed in range(36)]
    assert {c["kind"] for c in cases} == set(KINDS)
    assert {c["hx"] for c in cases} == set(HX_FORMS)
    assert {c["input"] for c in cases} == {"3d", "2d", "1d", "packed_sorted", "packed_unsorted"}
    assert {op for c in cases for op in c["ops"]} == set(OPS)


# ---- defects the fuzz found --------------------------------------------------------

LAYERS = {"RNN": {}, "GRU": {}, "LSTM": {}, "LSTM-proj": {"proj_size": 2}}


def _wrong(shape: tuple[int, ...], how: str) -> tuple[int, ...]:
    """One more column (``wider``) or one more row (``taller``)."""
    return (*shape[:-1], shape[-1] + 1) if how == "wider" else (shape[0] + 1, *shape[1:])


@pytest.mark.parametrize("how", ["wider", "taller"])
@pytest.mark.parametrize(
    ("kind", "name"),
    [(k, n) for k in LAYERS for n in ("weight_hh_l0", "bias_hh_l0")]
    + [("LSTM-proj", "weight_hr_l0")],
)
def test_fused_backend_refuses_a_weight_of_the_wrong_shape_as_torch_does(kind, name, how):
    """The fused kernels read weight_hh, bias_hh and weight_hr by the sizes they expect: a
    wider one ran with wrong numbers, a taller one corrupted the heap. torch raises."""
    cls = kind.split("-")[0]
    options = LAYERS[kind]
    ref = getattr(nn, cls)(3, 4, dtype=torch.float64, **options)
    ours = getattr(rnnkit, cls)(3, 4, dtype=torch.float64, backend="fused", **options)
    expected = tuple(getattr(ours, name).shape)
    given = _wrong(expected, how)
    for m in (ref, ours):
        setattr(m, name, nn.Parameter(torch.zeros(given, dtype=torch.float64)))
    x = torch.randn(3, 2, 3, dtype=torch.float64)
    with pytest.raises(RuntimeError):
        ref(x)
    msg = f"{cls}: {name} must have shape {expected}; got {given}"
    with pytest.raises(RuntimeError, match="^" + re.escape(msg) + "$") as caught:
        ours(x)
    assert isinstance(caught.value, _checks.ShapeError)


def test_fused_backend_names_the_reverse_weight_of_a_deeper_layer():
    ours = rnnkit.GRU(3, 4, num_layers=2, bidirectional=True, backend="fused")
    ours.weight_hh_l1_reverse = nn.Parameter(torch.zeros(12, 5))
    msg = "GRU: weight_hh_l1_reverse must have shape (12, 4); got (12, 5)"
    with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
        ours(torch.randn(3, 2, 3))


@pytest.mark.parametrize("backend", ["fused", "native", "reference"])
@pytest.mark.parametrize("name", ["bias_ih_l0", "bias_hh_l1_reverse"])
@pytest.mark.parametrize("cls", ["RNN", "GRU", "LSTM"])
def test_a_layer_refuses_a_bias_set_to_none_as_torch_does(cls, name, backend):
    """A bias set to None ran as no bias; torch.nn's layers raise TypeError."""
    kw = dict(num_layers=2, bidirectional=True, dtype=torch.float64)
    ref, ours = getattr(nn, cls)(3, 4, **kw), getattr(rnnkit, cls)(3, 4, backend=backend, **kw)
    setattr(ref, name, None)
    setattr(ours, name, None)
    x = torch.randn(3, 2, 3, dtype=torch.float64)
    with pytest.raises(TypeError):
        ref(x)
    msg = f"{cls}: {name} must be a torch.Tensor; got None"
    with pytest.raises(TypeError, match="^" + re.escape(msg) + "$"):
        ours(x)


@pytest.mark.parametrize("cls", ["RNNCell", "GRUCell", "LSTMCell"])
def test_a_cell_runs_with_a_bias_set_to_none_as_torch_does(cls):
    """torch.nn's cells take a None bias as no bias; so do rnnkit's."""
    torch.manual_seed(0)
    ref = getattr(nn, cls)(3, 4, dtype=torch.float64)
    ours = getattr(rnnkit, cls)(3, 4, dtype=torch.float64)
    ours.load_state_dict(ref.state_dict())
    for m in (ref, ours):
        m.bias_hh = None
    x = torch.randn(2, 3, dtype=torch.float64)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    ("cls", "kw"),
    [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("LSTM", {"proj_size": 1}), ("GRU", {})],
)
def test_mode_is_torchs(cls, kw):
    assert getattr(rnnkit, cls)(2, 3, **kw).mode == getattr(nn, cls)(2, 3, **kw).mode


@pytest.mark.parametrize("cls", ["RNN", "GRU"])
def test_packed_unsorted_input_refuses_a_state_with_extra_rows(cls):
    """Deliberate difference: torch reorders hx by the packed batch's sorted_indices before
    it checks hx, so extra rows are dropped without a word; rnnkit refuses them."""
    x = pack_padded_sequence(torch.randn(3, 2, 3), torch.tensor([2, 3]), enforce_sorted=False)
    h = torch.randn(1, 3, 4)
    getattr(nn, cls)(3, 4)(x, h)  # torch accepts
    msg = f"{cls}: state h must have shape (1, 2, 4); got (1, 3, 4)"
    with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
        getattr(rnnkit, cls)(3, 4)(x, h)
