"""The GPU kernels (rnnkit.kernels.fused_cuda, Triton) against the reference loops.

On a machine with CUDA they run there. Without one, the same cases run on the CPU in
Triton's interpreter (TRITON_INTERPRET=1, which must be set before Triton is imported,
so in a subprocess of their own): the kernels' arithmetic, masks and indexing are the
ones a GPU runs, checked against the chapter's loop differentiated by autograd - outputs
and every gradient to 1e-10 in float64, and gradcheck - for every cell, option, direction,
lengths and resets, and the scan against the blocked scan of rnnkit.kernels.scan.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import rnnkit
from rnnkit.kernels import fused, scan

triton = pytest.importorskip("triton")

CUDA = torch.cuda.is_available()
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
DEVICE = "cuda" if CUDA else "cpu"
F64 = torch.float64
cases = pytest.mark.skipif(
    not (CUDA or INTERPRETED), reason="run in a subprocess, in Triton's interpreter"
)


def test_the_cases_pass_in_tritons_interpreter() -> None:
    if CUDA or INTERPRETED:
        pytest.skip("the cases run in this process")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    command = [sys.executable, "-m", "pytest", __file__, "-q", "-o", "addopts="]
    only_the_cases = ["-k", "not compiles_for_a_gpu and not in_tritons_interpreter"]
    done = subprocess.run(
        [*command, *only_the_cases, "-p", "no:cacheprovider"],
        env=env, capture_output=True, text=True, cwd=Path(__file__).parent.parent, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    summary = done.stdout.strip().split("\n")[-1]
    assert re.match(r"\d+ passed, \d+ deselected in", summary), summary  # none skipped


@pytest.fixture(autouse=True)
def _triton_kernels(monkeypatch: pytest.MonkeyPatch):
    """On the CPU, route the fused backend and the scan to the Triton kernels."""
    if not (CUDA or INTERPRETED):
        yield
        return
    from rnnkit.kernels import fused_cuda

    if not CUDA:
        monkeypatch.setattr(fused, "kernels", lambda t: fused_cuda)
        monkeypatch.setattr(scan, "gpu_kernels", lambda t: fused_cuda)
    yield


def _tensor(*shape: int, dtype=F64) -> torch.Tensor:
    return torch.randn(*shape, dtype=dtype, device=DEVICE)


def _masks(T: int, B: int, H: int, option: str):
    """(valid, zero, reverse, mask, keep, zoneout) for one option of the cases."""
    g = torch.Generator().manual_seed(3)
    valid = zero = mask = keep = None
    zoneout, reverse = 0.0, option == "reverse"
    if option in ("lengths", "reverse"):
        lengths = torch.tensor([T, 2, T - 1, 0])[:B]
        valid = (torch.arange(T)[:, None] < lengths[None, :]).to(DEVICE)
    if option == "resets":
        zero = (torch.rand(T, B, generator=g) < 0.3).to(DEVICE)
    if option == "dropout":
        mask = (torch.rand(B, H, generator=g) < 0.7).to(F64).to(DEVICE) / 0.7
    if option == "zoneout-train":
        keep = (torch.rand(T, B, H, generator=g) < 0.3).to(DEVICE)
    if option == "zoneout-eval":
        zoneout = 0.2
    return valid, zero, reverse, mask, keep, zoneout


OPTIONS = ["plain", "lengths", "reverse", "resets", "dropout", "zoneout-train", "zoneout-eval"]


def _compare(ours, ref, inputs: list[torch.Tensor]) -> None:
    xs = [t.clone().requires_grad_() for t in inputs]
    ys = [t.clone().requires_grad_() for t in inputs]
    out, want = ours(*xs), ref(*ys)
    g = torch.Generator().manual_seed(1)
    weights = [torch.randn(o.shape, generator=g, dtype=F64).to(DEVICE) for o in want]
    for a, b in zip(out, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    grads = torch.autograd.grad(out, xs, weights, allow_unused=True)
    expected = torch.autograd.grad(want, ys, weights, allow_unused=True)
    for a, b in zip(grads, expected, strict=True):
        if b is None:
            assert a is None or not a.abs().any()
        else:
            torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@cases
@pytest.mark.parametrize("option", OPTIONS)
def test_the_gru_kernel_equals_the_reference_loop(option: str) -> None:
    T, B, H = 6, 4, 5
    valid, zero, reverse, mask, keep, p = _masks(T, B, H, option)
    args = (valid, zero, reverse, mask, keep, p)
    _compare(
        lambda gx, h0, w, b: fused.gru(gx, h0, w, b, *args),
        lambda gx, h0, w, b: fused.reference_gru(gx, h0, w, b, *args),
        [_tensor(T, B, 3 * H), _tensor(B, H), _tensor(3 * H, H), _tensor(3 * H)],
    )


@cases
@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("relu", [False, True])
def test_the_rnn_kernel_equals_the_reference_loop(option: str, relu: bool) -> None:
    T, B, H = 6, 4, 5
    args = (*_masks(T, B, H, option), relu)
    _compare(
        lambda gx, h0, w, b: fused.rnn(gx, h0, w, b, *args),
        lambda gx, h0, w, b: fused.reference_rnn(gx, h0, w, b, *args),
        [_tensor(T, B, H), _tensor(B, H), _tensor(H, H), _tensor(H)],
    )


@cases
@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("projection", [False, True])
def test_the_lstm_kernel_equals_the_reference_loop(
    option: str, layer_norm: bool, projection: bool
) -> None:
    """With ``projection`` h is W_hr (o tanh c), P = 3 wide: h0, W_h, the dropout mask
    and h's zoneout mask are P wide, c's H."""
    T, B, H = 6, 4, 5
    R = 3 if projection else H
    valid, zero, reverse, mask, keep, p = _masks(T, B, R, option)
    keep_c = _masks(T, B, H, option)[4]
    keep_c = None if keep_c is None else keep_c.roll(1, 0)
    after = (valid, zero, reverse)
    inputs = [_tensor(T, B, 4 * H), _tensor(B, R), _tensor(B, H), _tensor(4 * H, R)]
    inputs += [_tensor(4 * H), *([_tensor(R, H)] if projection else [])]
    if layer_norm:
        inputs += [_tensor(4 * H), _tensor(4 * H), _tensor(H), _tensor(H)]

    def split(rest):
        return (rest[0], rest[1:]) if projection else (None, rest)

    def ours(gx, h0, c0, w, b, *rest):
        w_hr, ln = split(rest)
        both = None if keep is None else (keep, keep_c)
        return fused.lstm(gx, h0, c0, w, b, mask, both, p, *after, tuple(ln) or None, w_hr)

    def ref(gx, h0, c0, w, b, *rest):
        w_hr, ln = split(rest)
        return fused.reference_lstm(
            gx, h0, c0, w, b, mask, keep, keep_c, p, *after, *(ln or [None] * 4), w_hr=w_hr
        )

    _compare(ours, ref, inputs)


@cases
@pytest.mark.parametrize("cell", ["gru", "lstm-ln", "lstm-projected", "rnn"])
def test_the_kernels_pass_gradcheck(cell: str) -> None:
    T, B, H = 4, 3, 3
    valid = _masks(T, B, H, "lengths")[0]
    zero = torch.zeros(T, B, dtype=torch.bool, device=DEVICE)
    zero[2, 0] = True
    if cell == "gru":
        fn = lambda gx, h0, w, b: fused.gru(gx, h0, w, b, valid, zero, True, None, None, 0.3)  # noqa: E731
        inputs = (_tensor(T, B, 3 * H), _tensor(B, H), _tensor(3 * H, H), _tensor(3 * H))
    elif cell == "rnn":
        fn = lambda gx, h0, w, b: fused.rnn(gx, h0, w, b, valid, zero, False, None, None, 0.3)  # noqa: E731
        inputs = (_tensor(T, B, H), _tensor(B, H), _tensor(H, H), _tensor(H))
    elif cell == "lstm-ln":

        def fn(gx, h0, c0, w, b, *ln):
            return fused.lstm(gx, h0, c0, w, b, None, None, 0.2, valid, zero, False, tuple(ln))

        inputs = (_tensor(T, B, 4 * H), _tensor(B, H), _tensor(B, H), _tensor(4 * H, H))
        inputs += (_tensor(4 * H), _tensor(4 * H), _tensor(4 * H), _tensor(H), _tensor(H))
    else:  # a projection to P = 2, with zoneout's evaluation blend

        def fn(gx, h0, c0, w, b, w_hr):
            return fused.lstm(gx, h0, c0, w, b, None, None, 0.2, valid, zero, False, None, w_hr)

        inputs = (_tensor(T, B, 4 * H), _tensor(B, 2), _tensor(B, H), _tensor(4 * H, 2))
        inputs += (_tensor(4 * H), _tensor(2, H))
    inputs = tuple(t.requires_grad_() for t in inputs)
    # fast_mode: a random projection of the Jacobian (the parity tests above compare the
    # whole gradient with autograd's); the interpreter runs every kernel in Python.
    assert torch.autograd.gradcheck(fn, inputs, fast_mode=True)


@cases
@pytest.mark.parametrize("cls", [rnnkit.LSTM, rnnkit.GRU, rnnkit.RNN, "projected"])
def test_a_layer_with_options_equals_the_reference_backend(cls) -> None:
    """The whole layer - two layers, both directions, lengths, resets, initial state -
    on the fused backend (the Triton kernels) and on the reference backend."""
    torch.manual_seed(0)
    kw = {"num_layers": 2, "bidirectional": True, "zoneout": 0.2, "dtype": F64, "device": DEVICE}
    if cls == "projected":
        cls, kw["proj_size"] = rnnkit.LSTM, 2
    if cls is rnnkit.LSTM:
        kw["layer_norm"] = True
    ours = cls(3, 4, backend="fused", **kw).eval()
    ref = cls(3, 4, backend="reference", **kw).eval()
    ref.load_state_dict(ours.state_dict())
    T, B = 7, 3
    x = _tensor(T, B, 3)
    lengths = torch.tensor([7, 4, 1])
    reset = torch.zeros(T, B, dtype=torch.bool, device=DEVICE)
    reset[3, 0] = True
    results = []
    for layer in (ours, ref):
        xi = x.clone().requires_grad_()
        out, state = layer(xi, lengths=lengths, reset=reset)
        s = state if isinstance(state, tuple) else (state,)
        weight = torch.linspace(-1, 1, out.numel(), dtype=F64, device=DEVICE)
        loss = (out * weight.view_as(out)).sum()
        loss = loss + sum((t * t).sum() for t in s)
        grads = torch.autograd.grad(loss, [xi, *layer.parameters()])
        results.append((out, *s, *grads))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@cases
@pytest.mark.parametrize("T", [1, 5, 31, 32, 33, 100])
def test_the_scan_kernel_equals_the_blocked_scan(T: int) -> None:
    from rnnkit.kernels import fused_cuda

    N = 70
    a = torch.rand(T, N, dtype=F64, device=DEVICE)
    b, h0, G = _tensor(T, N), _tensor(N), _tensor(T, N)
    want = scan._scan(a, b, h0, False, torch.empty_like(b))
    torch.testing.assert_close(fused_cuda.scan_forward(a, b, h0), want, atol=1e-12, rtol=0)
    inplace = b.clone()  # out may be b itself, as rnnkit.cells.mingru writes it
    fused_cuda.scan_forward(a, inplace, h0, out=inplace)
    torch.testing.assert_close(inplace, want, atol=1e-12, rtol=0)
    g = torch.empty_like(G)
    g[-1] = G[-1]
    if T > 1:
        scan._scan(a[1:], G[:-1], G[-1], True, g[:-1])
    torch.testing.assert_close(fused_cuda.scan_gradient(a, G), g, atol=1e-12, rtol=0)


@cases
@pytest.mark.parametrize("cls", [rnnkit.MinGRU, rnnkit.MinLSTM])
def test_mingru_and_minlstm_on_the_scan_kernel_equal_the_step_loop(cls) -> None:
    torch.manual_seed(0)
    ours = cls(3, 6, num_layers=2, bidirectional=True, dtype=F64, device=DEVICE)
    ref = cls(3, 6, num_layers=2, bidirectional=True, dtype=F64, device=DEVICE,
              backend="reference")  # fmt: skip
    ref.load_state_dict(ours.state_dict())
    x = _tensor(40, 2, 3)
    results = []
    for layer in (ours, ref):
        xi = x.clone().requires_grad_()
        out, _ = layer(xi)
        grads = torch.autograd.grad((out * out).sum(), [xi, *layer.parameters()])
        results.append((out, *grads))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@cases
def test_float32_agrees_with_float64() -> None:
    """The kernels in float32 (what a GPU trains in) against the same call in float64."""
    T, B, H = 20, 3, 8
    inputs = [_tensor(T, B, 4 * H), _tensor(B, H), _tensor(B, H), _tensor(4 * H, H), _tensor(4 * H)]
    ln = (_tensor(4 * H), _tensor(4 * H), _tensor(H), _tensor(H))
    want = fused.lstm(*inputs, None, None, 0.1, None, None, False, ln)
    got = fused.lstm(*[t.float() for t in inputs], None, None, 0.1, None, None, False,
                     tuple(t.float() for t in ln))  # fmt: skip
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a.double(), b, atol=1e-4, rtol=1e-4)


# ---- compiled for a GPU, without one -----------------------------------------------------

COMPILED = [
    ("_gru_forward_step", ("HAS_KEEP", "BLEND", "HAS_VALID")),
    ("_gru_backward_step", ("HAS_DOUT", "HAS_KEEP", "BLEND", "HAS_VALID")),
    ("_rnn_forward_step", ("RELU", "HAS_KEEP", "BLEND", "HAS_VALID")),
    ("_rnn_backward_step", ("RELU", "HAS_DOUT", "HAS_KEEP", "BLEND", "HAS_VALID")),
    ("_lstm_forward_step", ("HAS_BIAS", "LN", "HAS_KEEP", "BLEND", "HAS_VALID", "PROJ")),
    ("_lstm_backward_step", ("HAS_DOUT", "LN", "HAS_KEEP", "BLEND", "HAS_VALID", "PROJ")),
    ("_projected_step", ("HAS_KEEP", "BLEND", "HAS_VALID")),
    ("_projected_backward_step", ("HAS_DOUT", "HAS_KEEP", "BLEND", "HAS_VALID")),
    ("_scan_kernel", ("GRADIENT",)),
]


@pytest.mark.skipif(INTERPRETED, reason="the interpreter compiles nothing")
@pytest.mark.parametrize("dtype", ["fp32", "fp64"])
@pytest.mark.parametrize(("name", "flags"), COMPILED)
def test_every_kernel_compiles_for_a_gpu(name: str, flags: tuple[str, ...], dtype: str) -> None:
    """Each kernel, with its options on and off, lowered by Triton to a cubin for sm_90
    (H100/H200) with the ptxas Triton ships: what a GPU would run, compiled ahead of time
    on a machine without one."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from rnnkit.kernels import fused_cuda

    kernel = getattr(fused_cuda, name)
    sizes = {"_scan_kernel": ("T", "N"), "_projected_step": ("R",)}.get(name, ("H",))
    sizes = {"_projected_backward_step": ("R",)}.get(name, sizes)
    masks = ("KEEP", "VALID", "KEEP_H", "KEEP_C")
    blocks = {"BLOCK": 256, "BLOCK_T": 32, "BLOCK_N": 64}
    for on in (False, True):
        constants = {flag: on for flag in flags}
        if "BLEND" in constants:  # zoneout's two forms exclude each other
            constants["BLEND"] = not constants.get("HAS_KEEP", False)
        constants.update({k: v for k, v in blocks.items() if k in kernel.arg_names})
        signature = {
            arg: "constexpr" if arg in constants
            else "i32" if arg in sizes
            else "*i1" if arg in masks
            else f"*{dtype}"
            for arg in kernel.arg_names
        }  # fmt: skip
        where = {(kernel.arg_names.index(k),): v for k, v in constants.items()}
        source = ASTSource(fn=kernel, signature=signature, constexprs=where)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Triton's notices about its own defaults
            compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32))
        assert len(compiled.asm["cubin"]) > 1000
