"""The behaviours PyTorch's own RNN tests check, on rnnkit's layers and cells.

Each test names the test of PyTorch's ``test/test_nn.py`` it mirrors in its docstring and
checks the same behaviour here, written afresh: argument and shape checks (with torch's
exception types), initial states, projections, packed sequences, dropout between layers,
empty batches, cells that never broadcast, weights swapped, tied, moved or taken apart,
and first and second derivatives. Where numbers are involved, rnnkit's module is loaded
with the weights of a torch.nn module and compared with it in float64, on both the
"native" and the "reference" backend. Tests of device moves run on the CPU and, where a
GPU is present, on CUDA; the ones that need two GPUs are skipped without them.

What tests/test_dropin.py, tests/test_torch_module_db.py and tests/test_conformance.py
already check the same way is not repeated here; docs/layers.md maps every test of
test_nn.py to the rnnkit test that covers it.
"""

from __future__ import annotations

import copy
import io
import itertools
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

import rnnkit

F64 = torch.float64
BACKENDS = ["native", "reference"]
HAS_CUDA = torch.cuda.is_available()
NEEDS_CUDA = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
NEEDS_TWO_GPUS = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
DEVICES = ["cpu", pytest.param("cuda", marks=NEEDS_CUDA)]

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
# Layer variants: (LAYERS key, extra constructor arguments).
VARIANTS = {
    "rnn_tanh": ("rnn", {}),
    "rnn_relu": ("rnn", {"nonlinearity": "relu"}),
    "lstm": ("lstm", {}),
    "gru": ("gru", {}),
    "lstm_proj": ("lstm", {"proj_size": 3}),
}


# ---- helpers --------------------------------------------------------------------------


def _pair(
    kind: str, *args: Any, backend: str = "native", dtype: torch.dtype = F64, **kwargs: Any
) -> tuple[nn.Module, nn.Module]:
    """(rnnkit's layer, torch.nn's layer) with the same weights, both on the CPU in dtype."""
    ours_cls, ref_cls = LAYERS[kind]
    ref = ref_cls(*args, **kwargs).to(dtype)
    ours = ours_cls.from_torch(ref)
    ours.backend = backend
    return ours, ref


def _cell_pair(kind: str, *args: Any, **kwargs: Any) -> tuple[nn.Module, nn.Module]:
    ours_cls, ref_cls = CELLS[kind]
    ref = ref_cls(*args, **kwargs).to(F64)
    ours = ours_cls(*args, **kwargs, dtype=F64)
    ours.load_state_dict(ref.state_dict())
    return ours, ref


def _tuple(state: Any) -> tuple:
    return tuple(state) if isinstance(state, (tuple, list)) else (state,)


def _data(out: Any) -> torch.Tensor:
    return out.data if isinstance(out, PackedSequence) else out


def _weighted_sum(tensors: list[torch.Tensor], seed: int = 1) -> torch.Tensor:
    """One scalar touching every tensor with fixed random weights (the same on any device)."""
    g = torch.Generator().manual_seed(seed)
    total = torch.zeros((), dtype=F64)
    for t in tensors:
        w = torch.randn(t.shape, generator=g, dtype=F64)
        total = total + (t.to("cpu", F64) * w).sum()
    return total


def _noncontiguous(t: torch.Tensor) -> torch.Tensor:
    """``t``'s values in every other element of a buffer twice as wide (gradients flow)."""
    return torch.stack([torch.zeros_like(t), t], dim=-1)[..., 1]


def _error(call: Callable[[], Any]) -> Exception | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call()
    except Exception as err:
        return err
    return None


def _raises_like_torch(
    ours: Callable[[], Any], theirs: Callable[[], Any], expected: type[Exception] = RuntimeError
) -> None:
    """Both calls fail, torch's with ``expected``, rnnkit's with an instance of torch's type."""
    ref_err, our_err = _error(theirs), _error(ours)
    assert isinstance(ref_err, expected), f"torch.nn: {ref_err!r}"
    assert isinstance(our_err, type(ref_err)), f"torch raises {ref_err!r}, rnnkit {our_err!r}"


def _close(a: Any, b: Any, atol: float = 1e-10, msg: str = "") -> None:
    torch.testing.assert_close(a, b, atol=atol, rtol=0, msg=msg or None)


def _run_and_grads(
    module: nn.Module, leaves: list[torch.Tensor], call: Callable[[], Any]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Outputs of ``call()`` and the gradients of their weighted sum (leaves, then params)."""
    out, state = call()
    values = [_data(out), *_tuple(state)]
    _weighted_sum(values).backward()
    grads = [t.grad for t in leaves] + [p.grad for p in module.parameters()]
    return [v.detach().cpu() for v in values], [g.detach().cpu() for g in grads]


# ---- cells ----------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kind", list(CELLS))
def test_cells_iterated_six_steps_match_torch_with_gradients(kind, bias):
    """test_RNN_cell, test_LSTM_cell"""
    ours, ref = _cell_pair(kind, 10, 20, bias=bias)
    x = torch.randn(3, 10, dtype=F64)
    h = torch.randn(3, 20, dtype=F64)
    start = (h, torch.randn_like(h)) if kind == "lstm" else h
    results = []
    for cell in (ours, ref):
        xl = x.clone().requires_grad_()
        state = tuple(s.clone().requires_grad_() for s in _tuple(start))
        hx: Any = state if kind == "lstm" else state[0]
        for _ in range(6):
            hx = cell(xl, hx)
        values, grads = _run_and_grads(cell, [xl, *state], lambda hx=hx: (hx[0], hx[1:]))
        results.append((values, grads))
    for a, b in zip(results[0][0] + results[0][1], results[1][0] + results[1][1], strict=True):
        _close(a, b)


@pytest.mark.parametrize(
    "make",
    [
        lambda M: M.RNNCell(10, 0, nonlinearity="relu"),
        lambda M: M.RNNCell(10, 0, nonlinearity="tanh"),
        lambda M: M.GRUCell(10, 0),
    ],
    ids=["rnn_relu", "rnn_tanh", "gru"],
)
def test_cells_of_hidden_size_zero_return_hx_shaped_output(make):
    """test_RNN_cell_forward_zero_hidden_size"""
    x, hx = torch.randn(3, 10), torch.randn(3, 0)
    assert make(rnnkit)(x, hx).shape == make(nn)(x, hx).shape == (3, 0)


# (what is wrong, input, h, c for the LSTM cell): cell (10, 20), input batch 3.
_GOOD_X, _GOOD_H = (3, 10), (3, 20)
CELL_MISTAKES = [
    ("hx batch 1 (no broadcasting)", _GOOD_X, (1, 20), _GOOD_H),
    ("hx size 1 (no broadcasting)", _GOOD_X, (3, 1), _GOOD_H),
    ("input size 1 (no broadcasting)", (3, 1), _GOOD_H, _GOOD_H),
    ("c batch 1 (no broadcasting)", _GOOD_X, _GOOD_H, (1, 20)),
    ("c size 1 (no broadcasting)", _GOOD_X, _GOOD_H, (3, 1)),
    ("input size 11", (3, 11), _GOOD_H, _GOOD_H),
    ("h size 21", _GOOD_X, (3, 21), _GOOD_H),
    ("c size 21", _GOOD_X, _GOOD_H, (3, 21)),
]


# Only the LSTM cell carries c.
CELL_CASES = [(k, *m) for k in CELLS for m in CELL_MISTAKES if k == "lstm" or m[0][:2] != "c "]


@pytest.mark.parametrize(
    ("kind", "what", "x", "h", "c"), CELL_CASES, ids=[f"{c[0]}-{c[1]}" for c in CELL_CASES]
)
def test_cells_never_broadcast_and_reject_wrong_sizes(kind, what, x, h, c):
    """test_RNN_cell_no_broadcasting, test_LSTM_cell_forward_input_size,
    test_LSTM_cell_forward_hidden_size"""
    ours, ref = _cell_pair(kind, 10, 20)
    xt = torch.randn(x, dtype=F64)
    hx: Any = (torch.randn(h, dtype=F64), torch.randn(c, dtype=F64))
    if kind != "lstm":
        hx = hx[0]
    _raises_like_torch(lambda: ours(xt, hx), lambda: ref(xt, hx))


@pytest.mark.parametrize("device", DEVICES)
def test_lstm_cell_backward_through_one_output(device):
    """test_lstmcell_backward_only_one_output_grad (torch runs it on CUDA only)"""
    ours, ref = _cell_pair("lstm", 2, 3)
    ours.to(device)
    s = torch.randn(1, 2, dtype=F64)
    for i in range(2):
        ours_s = s.clone().to(device).requires_grad_()
        ref_s = s.clone().requires_grad_()
        ours(ours_s)[i].sum().backward()
        ref(ref_s)[i].sum().backward()
        assert ours_s.grad is not None and ours_s.grad.abs().sum().item() > 0
        _close(ours_s.grad.cpu(), ref_s.grad)


# ---- argument checks of the layers ----------------------------------------------------

_I, _H, _P, _L, _B, _T, _BAD = 3, 5, 2, 2, 4, 6, 7  # 7: a prime, so no size divides it


def _shapes(case: str, proj: bool) -> tuple[tuple, tuple, tuple]:
    """(input, h, c) shapes of a call with one mistake (``case``) to a 2-layer layer."""
    x, h, c = [_T, _B, _I], [_L, _B, _P if proj else _H], [_L, _B, _H]
    changes = {
        "input batch": (x, 1, _BAD),
        "input size": (x, 2, _BAD),
        "h batch": (h, 1, _BAD),
        "h size": (h, 2, _BAD),
        "h layers": (h, 0, _BAD),
        "c batch": (c, 1, _BAD),
        "c size": (c, 2, _BAD),
        "c layers": (c, 0, _BAD),
        "h layers = hidden_size": (h, 0, _H),
    }
    shape, dim, size = changes[case]
    shape[dim] = size
    return tuple(x), tuple(h), tuple(c)


ARGS_CASES = [
    (mode, case)
    for mode in ("rnn", "gru", "lstm")
    for case in ("input batch", "input size", "h batch", "h size", "h layers")
    + (("c batch", "c size", "c layers") if mode == "lstm" else ())
]


@pytest.mark.parametrize(("mode", "case"), ARGS_CASES, ids=[f"{m}-{c}" for m, c in ARGS_CASES])
def test_layer_shape_mistakes_raise_runtime_error(mode, case):
    """test_rnn_args_check"""
    ours, ref = _pair(mode, _I, _H, _L)
    xs, hs, cs = _shapes(case, proj=False)
    x, h = torch.randn(xs, dtype=F64), torch.randn(hs, dtype=F64)
    state = (h, torch.randn(cs, dtype=F64)) if mode == "lstm" else h
    _raises_like_torch(lambda: ours(x, state), lambda: ref(x, state))


PROJ_CASES = [
    "input batch",
    "input size",
    "h batch",
    "h size",
    "h layers",
    "c batch",
    "c size",
    "c layers",
    "h layers = hidden_size",
]


@pytest.mark.parametrize("case", PROJ_CASES)
def test_projected_lstm_shape_mistakes_raise_runtime_error(case):
    """test_projections_lstm_args_check"""
    ours, ref = _pair("lstm", _I, _H, _L, proj_size=_P)
    xs, hs, cs = _shapes(case, proj=True)
    x = torch.randn(xs, dtype=F64)
    state = (torch.randn(hs, dtype=F64), torch.randn(cs, dtype=F64))
    _raises_like_torch(lambda: ours(x, state), lambda: ref(x, state))


@pytest.mark.parametrize(
    "kind",
    [
        ("lstm", {}),
        ("lstm", {"proj_size": 10}),
        ("gru", {}),
        ("rnn", {}),
    ],
    ids=["lstm", "lstm_proj", "gru", "rnn"],
)
def test_wrong_state_or_input_size_raise_runtime_error(kind):
    """test_cudnn_forward_exception"""
    mode, extra = kind
    ours, ref = _pair(mode, 10, 20, batch_first=True, **extra)
    h = torch.zeros(1, 2, 19, dtype=F64)
    state = (h, h) if mode == "lstm" else h
    right, wrong = torch.randn(2, 3, 10, dtype=F64), torch.randn(2, 3, 3, dtype=F64)
    _raises_like_torch(lambda: ours(right, state), lambda: ref(right, state))
    _raises_like_torch(lambda: ours(wrong), lambda: ref(wrong))


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("mode", list(LAYERS))
def test_sequence_of_length_zero_raises_runtime_error(mode, bidirectional):
    """test_error_RNN_seq_len_zero"""
    ours, ref = _pair(mode, 5, 6, bidirectional=bidirectional)
    x = torch.ones(0, 10, 5, dtype=F64)
    _raises_like_torch(lambda: ours(x), lambda: ref(x))


_CUDA_MISMATCHES = [
    "input on cuda, weights on cpu",
    "weights on cuda, input on cpu",
    "state on cuda, input and weights on cpu",
    "state on cpu, input and weights on cuda",
]


@NEEDS_CUDA
@pytest.mark.parametrize("case", _CUDA_MISMATCHES)
@pytest.mark.parametrize(
    "kind",
    [("rnn", {}), ("gru", {}), ("lstm", {}), ("lstm", {"proj_size": 2})],
    ids=["rnn", "gru", "lstm", "lstm_proj"],
)
def test_device_mismatches_raise_runtime_error(kind, case):
    """test_rnn_check_device, test_projections_lstm_check_device"""
    mode, extra = kind
    ours, ref = _pair(mode, 3, 5, 2, dtype=torch.float32, **extra)
    h_size = extra.get("proj_size", 5)
    x, h, c = torch.randn(6, 4, 3), torch.randn(2, 4, h_size), torch.randn(2, 4, 5)

    def call(module: nn.Module) -> Any:
        module = copy.deepcopy(module)
        inp, state = x, (h, c)
        if case == "input on cuda, weights on cpu":
            inp = x.cuda()
        elif case == "weights on cuda, input on cpu":
            module.cuda()
        elif case == "state on cuda, input and weights on cpu":
            state = (h.cuda(), c.cuda())
        else:
            module.cuda()
            inp = x.cuda()
        return module(inp, state if mode == "lstm" else state[0])

    _raises_like_torch(lambda: call(ours), lambda: call(ref))


@NEEDS_TWO_GPUS
@pytest.mark.parametrize("proj_size", [0, 2])
def test_lstm_state_on_two_gpus_raises_runtime_error(proj_size):
    """test_rnn_check_device, test_projections_lstm_check_device (h and c on two GPUs)"""
    ours, ref = _pair("lstm", 3, 5, 2, dtype=torch.float32, proj_size=proj_size)
    ours.cuda(0)
    ref.cuda(0)
    x = torch.randn(6, 4, 3, device="cuda:0")
    h = torch.randn(2, 4, proj_size or 5, device="cuda:0")
    c = torch.randn(2, 4, 5, device="cuda:1")
    _raises_like_torch(lambda: ours(x, (h, c)), lambda: ref(x, (h, c)))


# ---- initial states -------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "kind",
    [
        ("rnn", {}),
        ("gru", {}),
        ("lstm", {}),
        ("lstm", {"proj_size": 10}),
        ("lstm", {"proj_size": 10, "bidirectional": True}),
    ],
    ids=["rnn", "gru", "lstm", "lstm_proj", "lstm_proj_bidirectional"],
)
def test_zero_initial_state_is_no_initial_state(kind, backend):
    """test_rnn_initial_hidden_state, test_projections_lstm_initial_hidden_state"""
    mode, extra = kind
    layer, _ = _pair(mode, 30, 20, 2, backend=backend, **extra)
    D = 2 if extra.get("bidirectional") else 1
    x = torch.randn(10, 32, 30, dtype=F64)
    h = torch.zeros(2 * D, 32, extra.get("proj_size", 20), dtype=F64)
    state = (h, torch.zeros(2 * D, 32, 20, dtype=F64)) if mode == "lstm" else h
    out1, s1 = layer(x, state)
    out2, s2 = layer(x)
    _close(out1, out2, atol=0)
    for a, b in zip(_tuple(s1), _tuple(s2), strict=True):
        _close(a, b, atol=0)


# ---- layers against torch on every layout ---------------------------------------------


def _layout_run(
    module: nn.Module,
    device: str,
    x: torch.Tensor,
    h0: torch.Tensor,
    c0: torch.Tensor | None,
    contiguous: bool,
    lengths: Any,
    batch_first: bool,
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    leaves = [
        t.to(device).clone().requires_grad_() for t in (x, h0, *([c0] if c0 is not None else []))
    ]
    views = leaves if contiguous else [_noncontiguous(t) for t in leaves]
    inp: Any = views[0]
    if lengths is not None:
        inp = pack_padded_sequence(inp, lengths, batch_first=batch_first)
    state = tuple(views[1:]) if c0 is not None else views[1]
    return _run_and_grads(module, leaves, lambda: module(inp, state))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dropout", [0.0, 1.0])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_layers_match_torch_on_every_layout(variant, dropout, backend, device):
    """_test_RNN_cpu_vs_cudnn: test_RNN_cpu_vs_cudnn_no_dropout, test_RNN_cpu_vs_cudnn_with_dropout

    Bias or not, one or two directions, batch_first, contiguous or strided input and state,
    packed with lengths as a list or a tensor, inter-layer dropout 0 or 1 in training; the
    reference is torch.nn on the CPU (torch compares cuDNN with its CPU kernels the same way).
    """
    mode, extra = VARIANTS[variant]
    I, H, L, T, B = 10, 6, 2, 7, 6
    lengths = [7, 5, 5, 2, 1, 1]
    for bias, bidir, batch_first, contiguous, ragged, as_tensor in itertools.product(
        [True, False], repeat=6
    ):
        if as_tensor and not ragged:
            continue
        ours, ref = _pair(
            mode,
            I,
            H,
            L,
            backend=backend,
            bias=bias,
            batch_first=batch_first,
            dropout=dropout,
            bidirectional=bidir,
            **extra,
        )
        ours.to(device)
        D = 2 if bidir else 1
        x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=F64)
        h0 = torch.randn(L * D, B, extra.get("proj_size", H), dtype=F64)
        c0 = torch.randn(L * D, B, H, dtype=F64) if mode == "lstm" else None
        lens: Any = None
        if ragged:
            lens = torch.tensor(lengths) if as_tensor else lengths
        case = f"bias={bias} bidir={bidir} batch_first={batch_first} contiguous={contiguous}"
        theirs = _layout_run(ref, "cpu", x, h0, c0, contiguous, lens, batch_first)
        mine = _layout_run(ours, device, x, h0, c0, contiguous, lens, batch_first)
        # The native backend on CUDA is cuDNN, whose float64 sums run in another order than
        # the CPU's: torch compares the two at float64's default 1e-7.
        atol = 1e-7 if (backend, device) == ("native", "cuda") else 1e-9
        for a, b in zip(mine[0] + mine[1], theirs[0] + theirs[1], strict=True):
            _close(a, b, atol=atol, msg=f"{case} ragged={ragged}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_gru_and_lstm_match_torch_on_the_cpu(dtype, backend, device):
    """test_rnn_fused (torch compares its fused CUDA kernels with the CPU)"""
    atol = 5e-5 if dtype == torch.float32 else 1e-10
    x = torch.randn(7, 6, 10, dtype=dtype)
    h = torch.randn(2, 6, 6, dtype=dtype)
    for mode, bias in itertools.product(("gru", "lstm"), (True, False)):
        ours, ref = _pair(mode, 10, 6, 2, backend=backend, dtype=dtype, bias=bias)
        ours.to(device)
        runs = []
        for module, dev in ((ours, device), (ref, "cpu")):
            leaves = [x.to(dev).clone().requires_grad_(), h.to(dev).clone().requires_grad_()]
            if mode == "lstm":
                leaves.append((h + 1).to(dev).requires_grad_())
            state = tuple(leaves[1:]) if mode == "lstm" else leaves[1]
            # cuDNN's float32 products default to TF32 (10-bit mantissas): 2e-4 off the
            # CPU. torch's own test_rnn_fused compares with TF32 off too.
            with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
                runs.append(
                    _run_and_grads(module, leaves, lambda m=module, s=state, x=leaves[0]: m(x, s))
                )
        for a, b in zip(runs[0][0] + runs[0][1], runs[1][0] + runs[1][1], strict=True):
            _close(a.to(dtype), b.to(dtype), atol=atol)


# ---- packed and variable-length sequences ---------------------------------------------

VARIABLE = [
    (True, [5]),
    (False, [5]),
    (True, [10, 10, 6, 2, 2, 1, 1]),
    (False, [10, 10, 6, 2, 2, 1, 1]),
    (False, [2, 1, 3, 2, 10, 5, 3]),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("proj_size", [0, 2])
@pytest.mark.parametrize("default_state", [True, False])
@pytest.mark.parametrize(("enforce_sorted", "lengths"), VARIABLE)
def test_packed_batch_equals_each_sequence_run_alone(
    enforce_sorted, lengths, default_state, proj_size, backend
):
    """test_variable_sequence"""
    I, H, L, D = 3, 4, 2, 2
    layer, ref = _pair("lstm", I, H, L, backend=backend, bidirectional=True, proj_size=proj_size)
    alone = copy.deepcopy(layer)
    T, B = max(lengths), len(lengths)
    x = torch.randn(T, B, I, dtype=F64, requires_grad=True)
    state = None
    if not default_state:
        state = (
            torch.randn(L * D, B, proj_size or H, dtype=F64),
            torch.randn(L * D, B, H, dtype=F64),
        )

    # One sequence at a time, its output padded with zeros to T steps.
    outs, finals = [], []
    for b, n in enumerate(lengths):
        s_b = None if state is None else tuple(s[:, b : b + 1].contiguous() for s in state)
        out, s = alone(x[:n, b : b + 1], s_b)
        outs.append(torch.cat([out, out.new_zeros(T - n, 1, out.size(-1))]))
        finals.append(s)
    seq_out = torch.cat(outs, 1)
    seq_state = tuple(torch.cat(parts, 1) for parts in zip(*finals, strict=True))

    packed = pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted)
    packed_out, packed_state = layer(packed, state)
    unpacked, unpacked_lengths = pad_packed_sequence(packed_out)
    _close(unpacked, seq_out)
    for a, b in zip(packed_state, seq_state, strict=True):
        _close(a, b)
    assert unpacked_lengths.tolist() == lengths

    # torch.nn's packed run agrees too.
    ref_out, ref_state = ref(packed, state)
    _close(packed_out.data, ref_out.data)
    for a, b in zip(packed_state, ref_state, strict=True):
        _close(a, b)

    seq_out.sum().backward()
    grad_x = x.grad.clone()
    x.grad = None
    unpacked.sum().backward()
    _close(x.grad, grad_x)
    for (name, p1), p2 in zip(layer.named_parameters(), alone.parameters(), strict=True):
        _close(p1.grad, p2.grad, msg=name)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", list(LAYERS))
def test_empty_batch_runs_and_backpropagates(mode, backend, device):
    """test_RNN_input_size_zero"""
    layer, ref = _pair(mode, 3, 4, backend=backend)
    layer.to(device)
    x = torch.zeros(5, 0, 3, dtype=F64, device=device)
    out, _ = layer(x)
    assert out.shape == ref(x.cpu())[0].shape == (5, 0, 4)
    out.sum().backward()


# ---- dropout between layers -----------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("p", [0.0, 0.276, 0.731, 1.0])
def test_dropout_sits_between_layers_and_scales_by_one_over_keep(p, train, backend, device):
    """test_RNN_dropout"""
    layer = rnnkit.RNN(
        10, 1000, 2, bias=False, dropout=p, nonlinearity="relu", backend=backend, dtype=F64
    ).to(device)
    layer.train(train)
    with torch.no_grad():
        for w in layer.parameters():
            w.fill_(1)
    x = torch.ones(1, 1, 10, dtype=F64, device=device)
    out, h = layer(x, torch.zeros(2, 1, 1000, dtype=F64, device=device))
    # Layer 0 puts out 10 everywhere; layer 1 sums its 1000 kept and rescaled inputs.
    assert out.min() == out.max()
    value = out[0, 0, 0].item()
    if p == 0 or not train:
        assert value == 10000
    elif p == 1:
        assert value == 0
    else:
        assert 8000 < value < 12000
        kept = value * (1 - p) / 10  # the number of kept units: an integer
        assert abs(kept - round(kept)) < 1e-2
    assert h[0].min() == h[0].max() == 10
    assert h[1].min() == h[1].max() == value


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("p", [0.0, 0.1234])
def test_dropout_draws_anew_each_call_and_after_pickling(p, train, backend, device):
    """test_RNN_dropout_state"""
    layer = rnnkit.RNN(
        100, 100, 2, bias=False, dropout=p, nonlinearity="relu", backend=backend, dtype=F64
    ).to(device)
    layer.train(train)
    x = torch.rand(1, 1, 100, dtype=F64, device=device)
    h = torch.rand(2, 1, 100, dtype=F64, device=device)
    out1, h1 = layer(x, h)
    out2, h2 = layer(x, h)
    buffer = io.BytesIO()
    torch.save(layer, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    loaded.flatten_parameters()
    out3, h3 = loaded(x, h)
    same = p == 0 or not train
    for a, b in ((out1, out2), (out1, out3), (h1, h2), (h1, h3)):
        assert torch.equal(a, b) == same


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("train", [True, False])
def test_changing_the_dropout_attribute_takes_effect(train, backend, device):
    """test_RNN_change_dropout"""
    layer = rnnkit.RNN(100, 100, 2, nonlinearity="relu", backend=backend, dtype=F64).to(device)
    layer.train(train)
    x = torch.rand(3, 2, 100, dtype=F64, device=device)
    previous = None
    for p in (0, 0.5, 0, 0.7, 0.2, 1, 0.2, 0):
        layer.dropout = p
        out1, h1 = layer(x)
        out2, h2 = layer(x)
        deterministic = p in (0, 1) or not train
        assert torch.equal(out1, out2) == deterministic
        assert torch.equal(h1, h2) == deterministic
        if previous is not None:
            # Every change of p changes a training output; evaluation ignores p.
            assert torch.equal(out1, previous) == (not train)
            assert torch.equal(out2, previous) == (not train)
        previous = out1


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=NEEDS_CUDA), pytest.param("cuda:1", marks=NEEDS_TWO_GPUS)],
)
def test_dropout_layer_runs_on_any_device(device):
    """test_cudnn_rnn_dropout_states_device (torch runs it on the second GPU)"""
    layer = rnnkit.RNN(10, 20, num_layers=2, dropout=0.5).to(device)
    out, h = layer(torch.randn(5, 4, 10, device=device), torch.randn(2, 4, 20, device=device))
    assert out.device.type == h.device.type == device


# ---- weights swapped, split, tied, normalised -----------------------------------------


@pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning")
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("proj_size", "name"), [(0, "weight_hh_l0"), (3, "weight_hr_l0")], ids=["hh", "hr"]
)
def test_weight_norm_survives_a_device_move_and_its_removal(proj_size, name, backend, device):
    """test_RNN_cudnn_weight_norm"""
    layer = rnnkit.LSTM(10, 6, 2, proj_size=proj_size, backend=backend, dtype=F64)
    x = torch.randn(7, 6, 10, dtype=F64)
    expected, _ = layer(x)
    # On CUDA the sums run in another order: torch's own test compares at float64's 1e-7.
    atol = 1e-7 if device == "cuda" else 1e-10
    layer = torch.nn.utils.weight_norm(layer, name=name).to(device)
    _close(layer(x.to(device))[0].cpu(), expected, atol=atol)
    layer = torch.nn.utils.remove_weight_norm(layer, name=name)
    _close(layer(x.to(device))[0].cpu(), expected, atol=atol)


@pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning")
@pytest.mark.parametrize(
    ("proj_size", "name", "count"),
    [(0, "weight_ih_l0", 4), (16, "weight_hr_l0", 5)],
    ids=["ih", "hr"],
)
def test_weight_norm_turns_one_flat_weight_into_a_tensor_and_back(proj_size, name, count):
    """test_rnn_weight_norm (torch counts Parameters in its private ``_flat_weights``;
    rnnkit's public ``flat_weights()`` lists the same weights in the same order)"""
    layer = rnnkit.LSTM(32, 32, proj_size=proj_size)
    layer = torch.nn.utils.weight_norm(layer, name=name)
    assert sum(isinstance(w, nn.Parameter) for w in layer.flat_weights()) == count - 1
    layer = torch.nn.utils.remove_weight_norm(layer, name=name)
    assert sum(isinstance(w, nn.Parameter) for w in layer.flat_weights()) == count
    params = dict(layer.named_parameters())
    assert isinstance(getattr(layer, name), nn.Parameter)
    assert params.get(name) is not None
    assert f"{name}_v" not in params and f"{name}_g" not in params


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_deleted_weight_put_back_after_a_device_move_is_used(backend, device):
    """test_partial_flat_weights"""
    layer = rnnkit.LSTM(10, 6, 2, backend=backend, dtype=F64)
    x = torch.randn(3, 2, 10, dtype=F64)
    expected, _ = layer(x)
    weight = layer.weight_hh_l0
    del layer.weight_hh_l0
    assert not hasattr(layer, "weight_hh_l0")
    layer.to(device)  # a layer missing a weight still moves
    layer.weight_hh_l0 = weight.to(device)
    _close(layer(x.to(device))[0].cpu(), expected)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "kind",
    [("lstm", {}), ("lstm", {"proj_size": 10}), ("gru", {}), ("rnn", {})],
    ids=["lstm", "lstm_proj", "gru", "rnn"],
)
def test_weights_in_separate_storage_give_the_same_results(kind, backend, device):
    """test_cudnn_weight_format (rnnkit keeps no flat buffer, so nothing to warn about)"""
    mode, extra = kind
    layer, _ = _pair(mode, 10, 20, backend=backend, batch_first=True, **extra)
    layer.to(device)
    x = torch.randn(5, 4, 10, dtype=F64, device=device, requires_grad=True)
    h = torch.randn(1, 5, extra.get("proj_size", 20), dtype=F64, device=device, requires_grad=True)
    leaves = [x, h]
    state: Any = h
    if mode == "lstm":
        c = torch.randn(1, 5, 20, dtype=F64, device=device, requires_grad=True)
        leaves.append(c)
        state = (h, c)
    everything = leaves + list(layer.parameters())

    def run() -> tuple[torch.Tensor, list[torch.Tensor]]:
        for t in everything:
            t.grad = None
        out = layer(x, state)[0]
        out.sum().backward()
        return out.detach(), [t.grad.clone() for t in everything]

    out, grads = run()
    weight = list(layer.parameters())[1]
    copy_of_data = weight.data.clone()
    with torch.no_grad():
        weight.set_(copy_of_data)  # the weight now lives in a storage of its own
    for _ in range(2):
        out2, grads2 = run()
        _close(out2, out, atol=0)
        for a, b in zip(grads2, grads, strict=True):
            _close(a, b, atol=0)
    copy_of_data[:] = 4
    assert torch.equal(weight.data, copy_of_data)  # the swapped storage is the one in use


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "kind",
    [("lstm", {}), ("lstm", {"proj_size": 10}), ("gru", {}), ("rnn", {})],
    ids=["lstm", "lstm_proj", "gru", "rnn"],
)
def test_tied_weights_train_and_move_between_devices(kind, backend, device):
    """test_cudnn_weight_tying"""
    mode, extra = kind
    ours, ref = _pair(mode, 10, 20, backend=backend, batch_first=True, bidirectional=True, **extra)
    for layer in (ours, ref):
        layer.bias_ih_l0_reverse = layer.bias_ih_l0
    x = torch.randn(5, 4, 10, dtype=F64)
    h = torch.randn(2, 5, extra.get("proj_size", 20), dtype=F64)
    c = torch.randn(2, 5, 20, dtype=F64)
    outs = []
    for layer, dev in ((ours, device), (ref, "cpu")):
        layer.to(dev)
        state = (h.to(dev), c.to(dev)) if mode == "lstm" else h.to(dev)
        opt = torch.optim.SGD(layer.parameters(), lr=0.1)
        opt.zero_grad()
        layer(x.to(dev), state)[0].sum().backward()
        opt.step()
        outs.append(layer(x.to(dev), state)[0].detach().cpu())
        assert layer.bias_ih_l0_reverse is layer.bias_ih_l0
    _close(outs[0], outs[1])
    ours.cpu()
    state = (h, c) if mode == "lstm" else h
    _close(ours(x, state)[0].detach(), outs[0])


# ---- derivatives ----------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", list(LAYERS))
def test_backward_with_retained_graph_repeats_the_same_gradients(mode, backend):
    """test_rnn_retain_variables"""
    layer, _ = _pair(mode, 10, 20, 2, backend=backend)
    x = torch.randn(5, 6, 10, dtype=F64, requires_grad=True)
    out = layer(x)[0]
    out.sum().backward(retain_graph=True)
    first = [x.grad.clone()] + [p.grad.clone() for p in layer.parameters()]
    for _ in range(4):
        layer.zero_grad()
        x.grad.zero_()
        out.sum().backward(retain_graph=True)
        again = [x.grad] + [p.grad for p in layer.parameters()]
        for a, b in zip(again, first, strict=True):
            _close(a, b, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_gradcheck_and_gradgradcheck_of_output_and_state(mode, bias, backend):
    """test_LSTM_grad_and_gradgrad, test_GRU_grad_and_gradgrad"""
    layer, _ = _pair(mode, 4, 4, backend=backend, bias=bias)
    x = torch.rand(1, 3, 4, dtype=F64, requires_grad=True)

    def outputs(inp: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out, state = layer(inp)
        return (out, *_tuple(state))

    assert torch.autograd.gradcheck(outputs, (x,), check_batched_grad=False)
    assert torch.autograd.gradgradcheck(outputs, (x,), check_batched_grad=False)


@pytest.mark.parametrize("backend", BACKENDS)
def test_backward_through_the_input_gradient_of_a_deep_lstm(backend):
    """test_LSTM_differentiable_backward_using_oneDNN (torch compares its kernels with and
    without oneDNN; here rnnkit is compared with torch.nn)"""
    ours, ref = _pair("lstm", 3, 3, 20, backend=backend, batch_first=True)
    x = torch.rand(10, 12, 3, dtype=F64)
    results = []
    for layer in (ours, ref):
        xl = x.clone().requires_grad_()
        out, _ = layer(xl)
        (d_out,) = torch.autograd.grad(out, xl, torch.ones_like(out), create_graph=True)
        d_out.sum().backward()
        results.append((d_out.detach(), xl.grad))
    _close(results[0][0], results[1][0])
    _close(results[0][1], results[1][1])
