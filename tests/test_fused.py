"""The fused backend (rnnkit.kernels.fused, rnnkit.backends.fused) against the reference.

The reference is the chapter's loop differentiated by autograd (backend='reference'): the
fused kernel's forward and its hand-written backward must give the same outputs, states and
gradients to 1e-10 in float64, for every combination of direction, depth, lengths, resets
and initial state, and pass gradcheck. Where the kernel cannot be built, layers run where
they ran before, after one warning.
"""

from __future__ import annotations

import os
import types
import warnings

import pytest
import torch

import rnnkit
from rnnkit.kernels import fused

pytestmark = pytest.mark.skipif(not fused.available(), reason="no C++ compiler here")

F64 = torch.float64


def _pair(**kw):
    torch.manual_seed(0)
    ours = rnnkit.GRU(3, 5, dtype=F64, backend="fused", **kw)
    ref = rnnkit.GRU(3, 5, dtype=F64, backend="reference", **kw)
    ref.load_state_dict(ours.state_dict())
    return ours, ref


def _run(layer, x, h0, lengths, reset):
    out, h = layer(x, h0, lengths=lengths, reset=reset)
    g = torch.Generator().manual_seed(1)
    loss = (out * torch.randn(out.shape, generator=g, dtype=F64)).sum()
    loss = loss + (h * torch.randn(h.shape, generator=g, dtype=F64)).sum()
    return out, h, loss


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("resets", [False, True])
@pytest.mark.parametrize("initial", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_the_fused_gru_equals_the_reference_loop(
    bidirectional, layers, ragged, resets, initial, bias
):
    ours, ref = _pair(num_layers=layers, bidirectional=bidirectional, bias=bias)
    T, B = 7, 4
    D = 2 if bidirectional else 1
    x = torch.randn(T, B, 3, dtype=F64)
    h0 = torch.randn(layers * D, B, 5, dtype=F64) if initial else None
    lengths = torch.tensor([7, 3, 5, 1]) if ragged else None
    reset = (torch.rand(T, B) < 0.2) if resets else None
    results = []
    for layer in (ours, ref):
        xi = x.clone().requires_grad_()
        hi = None if h0 is None else h0.clone().requires_grad_()
        out, h, loss = _run(layer, xi, hi, lengths, reset)
        grads = torch.autograd.grad(loss, [xi, *([hi] if hi is not None else []),
                                           *layer.parameters()])  # fmt: skip
        results.append((out, h, grads))
    (o1, h1, g1), (o2, h2, g2) = results
    torch.testing.assert_close(o1, o2, rtol=0, atol=1e-10)
    torch.testing.assert_close(h1, h2, rtol=0, atol=1e-10)
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("reverse", [False, True])
def test_the_hand_written_backward_passes_gradcheck(reverse: bool) -> None:
    torch.manual_seed(0)
    T, B, H = 5, 3, 4
    gx = torch.randn(T, B, 3 * H, dtype=F64, requires_grad=True)
    h0 = torch.randn(B, H, dtype=F64, requires_grad=True)
    w = torch.randn(3 * H, H, dtype=F64, requires_grad=True)
    b = torch.randn(3 * H, dtype=F64, requires_grad=True)
    valid = torch.arange(T)[:, None] < torch.tensor([5, 2, 4])[None, :]
    zero = torch.zeros(T, B, dtype=torch.bool)
    zero[2, 0] = zero[1, 2] = True

    def f(gx, h0, w, b):
        return fused.gru(gx, h0, w, b, valid, zero, reverse)

    assert torch.autograd.gradcheck(f, (gx, h0, w, b))
    # a double backward (and vmapped gradients) go through autograd over the loop's form
    assert torch.autograd.gradgradcheck(f, (gx, h0, w, b))
    want = fused.reference_gru(gx, h0, w, b, valid, zero, reverse)
    got = f(gx, h0, w, b)
    for a, c in zip(got, want, strict=True):
        torch.testing.assert_close(a, c, rtol=0, atol=1e-12)


@pytest.mark.parametrize("reverse", [False, True])
def test_the_layer_norm_lstms_backward_passes_gradcheck(reverse: bool) -> None:
    torch.manual_seed(0)
    T, B, H = 4, 3, 3
    gx = torch.randn(T, B, 4 * H, dtype=F64, requires_grad=True)
    h0, c0 = (torch.randn(B, H, dtype=F64, requires_grad=True) for _ in range(2))
    w = torch.randn(4 * H, H, dtype=F64, requires_grad=True)
    b = torch.randn(4 * H, dtype=F64, requires_grad=True)
    norms = [torch.randn(n, dtype=F64, requires_grad=True) for n in (4 * H, 4 * H, H, H)]
    mask = torch.rand(B, H, dtype=F64) * 2  # recurrent dropout's mask, a constant
    valid = torch.arange(T)[:, None] < torch.tensor([4, 2, 3])[None, :]
    zero = torch.zeros(T, B, dtype=torch.bool)
    zero[2, 0] = True

    def f(gx, h0, c0, w, b, *ln):
        return fused.lstm(gx, h0, c0, w, b, mask, None, 0.2, valid, zero, reverse, tuple(ln))

    inputs = (gx, h0, c0, w, b, *norms)
    assert torch.autograd.gradcheck(f, inputs)
    assert torch.autograd.gradgradcheck(f, inputs)  # through autograd over the loop's form
    want = fused.reference_lstm(
        gx, h0, c0, w, b, mask, None, None, 0.2, valid, zero, reverse, *norms
    )
    for a, c in zip(f(*inputs), want, strict=True):
        torch.testing.assert_close(a, c, rtol=0, atol=1e-12)


def test_float32_agrees_with_torch_nn_gru() -> None:
    torch.manual_seed(0)
    ref = torch.nn.GRU(8, 16, 2, bidirectional=True)
    ours = rnnkit.GRU.from_torch(ref)
    x = torch.randn(50, 3, 8)
    with rnnkit.backends.trace() as ran:
        out, h = ours(x)
    assert ran[ours].name == "fused"
    want, want_h = ref(x)
    torch.testing.assert_close(out, want, rtol=0, atol=1e-5)
    torch.testing.assert_close(h, want_h, rtol=0, atol=1e-5)


def test_the_auto_choice_is_fused_for_small_steps_and_resets_only() -> None:
    layer = rnnkit.GRU(3, 256)
    small, large = torch.zeros(5, 2, 3), torch.zeros(5, 256, 3)  # B x H: 512, 65536
    assert layer.backend_for(small).name == "fused"
    assert layer.backend_for(torch.zeros(5, 64, 3)).name == "fused"  # B <= 64: any width
    assert layer.backend_for(torch.zeros(5, 128, 3)).name == "native"  # B x H = 32768
    assert rnnkit.GRU(3, 128).backend_for(torch.zeros(5, 128, 3)).name == "fused"  # 16384
    assert layer.backend_for(large).name == "native"
    reset = torch.zeros(5, 256, dtype=torch.bool)
    assert layer.backend_for(large, reset=reset).name == "fused"  # torch's kernel has none
    assert rnnkit.GRU(3, 4, zoneout=0.1).backend_for(small).name == "fused"
    assert rnnkit.GRU(3, 256, zoneout=0.1).backend_for(large).name == "fused"  # no other kernel
    assert rnnkit.RNN(3, 4, zoneout=0.1).backend_for(small).name == "fused"
    assert rnnkit.RNN(3, 4).backend_for(small).name == "native"  # plain: torch's kernel
    assert layer.double().backend_for(small.double()).name == "fused"
    assert layer.to(torch.bfloat16).backend_for(small.bfloat16()).name == "native"


@pytest.mark.parametrize("onednn", [True, False])
def test_without_autograd_the_gru_takes_the_fused_kernel_by_the_cpus_rule(
    monkeypatch: pytest.MonkeyPatch, onednn: bool
) -> None:
    """Under no_grad torch's GRU runs without autograd: where its products run on the
    faster BLAS (products not on oneDNN: Intel) the fused kernel wins at small steps only
    (rnnkit.backends.fused, MAX_INFERENCE_UNITS); where they go to oneDNN (AMD) the
    training rule holds."""
    from rnnkit.kernels import gemm

    monkeypatch.setattr(gemm, "enabled", lambda: onednn)
    wide, narrow, mid = rnnkit.GRU(3, 256), rnnkit.GRU(3, 64), rnnkit.GRU(3, 128)
    at = {b: torch.zeros(5, b, 3) for b in (1, 4, 8, 16, 32, 64, 128)}
    assert wide.backend_for(at[64]).name == "fused"  # with autograd: the training rule
    with torch.no_grad():
        names = {
            "256 x 64": wide.backend_for(at[64]).name,
            "256 x 8": wide.backend_for(at[8]).name,
            "256 x 4": wide.backend_for(at[4]).name,
            "128 x 16": mid.backend_for(at[16]).name,
            "128 x 32": mid.backend_for(at[32]).name,
            "64 x 32": narrow.backend_for(at[32]).name,
            "64 x 64": narrow.backend_for(at[64]).name,
            "64 x 128": narrow.backend_for(at[128]).name,
        }
        reason = mid.backend_for(at[16]).reason
    with torch.inference_mode():
        assert wide.backend_for(at[64]).name == ("fused" if onednn else "native")
    if onednn:
        assert set(names.values()) == {"fused"}
        assert reason == "rnnkit's fused kernel (B = 16 <= 64: faster than torch's)"
    else:
        fused_ones = {"256 x 4", "128 x 16", "64 x 32"}
        assert names == {k: "fused" if k in fused_ones else "native" for k in names}
        assert reason == (
            "rnnkit's fused kernel (B x H = 2048 <= 2048, H <= 128, without autograd: "
            "faster than torch's)"
        )


def test_the_gru_rule_at_its_edges() -> None:
    rule = rnnkit.backends.fused.faster_than_torchs_gru
    assert rule(64, 4096) and rule(128, 128) and not rule(128, 129) and not rule(129, 64)
    assert not rule(0, 64) and not rule(0, 64, grad=False, onednn=False)
    assert rule(16, 128, grad=False, onednn=False) and not rule(17, 128, grad=False, onednn=False)
    assert rule(4, 256, grad=False, onednn=False) and not rule(5, 256, grad=False, onednn=False)
    assert not rule(1, 257, grad=False, onednn=False) and not rule(1, 512, grad=False, onednn=False)
    assert rule(64, 4096, grad=False, onednn=True)


def test_forcing_fused_where_it_cannot_run_is_an_error() -> None:
    message = (
        r"MinGRU: backend='fused' cannot run this call \(rnnkit's fused kernels have no MINGRU\)"
    )
    with pytest.raises(ValueError, match=message):
        rnnkit.MinGRU(3, 4, backend="fused")(torch.zeros(2, 1, 3))
    with pytest.raises(ValueError, match=r"float64 on the CPU and on CUDA; got torch.bfloat16"):
        rnnkit.GRU(3, 4, backend="fused").bfloat16()(torch.zeros(2, 1, 3, dtype=torch.bfloat16))


def test_turned_off_the_gru_runs_on_torchs_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RNNKIT_FUSED", "0")
    layer = rnnkit.GRU(3, 4)
    assert layer.backend_for(torch.zeros(5, 2, 3)).name == "native"


def test_without_a_compiler_one_warning_then_the_usual_kernels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch.utils.cpp_extension as cpp

    def no_compiler(*args, **kwargs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(fused, "_module", None)
    monkeypatch.setattr(fused, "_failed", None)
    monkeypatch.setattr(cpp, "load", no_compiler)
    with pytest.warns(UserWarning, match=r"could not build its fused CPU kernels \(no C\+\+ "):
        assert not fused.available()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once: not again
        layer = rnnkit.GRU(3, 4)
        assert layer.backend_for(torch.zeros(5, 2, 3)).name == "native"
        layer(torch.zeros(5, 2, 3))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="flock is POSIX")
def test_a_build_killed_midway_does_not_hang_the_next_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    # torch's `load` waits without end while a file `lock` is in the build folder; a
    # build killed half-way leaves one. The next build must remove it, and must hold the
    # OS lock while torch builds so that no live build's file is ever removed.
    import fcntl

    import torch.utils.cpp_extension as cpp

    monkeypatch.setenv("RNNKIT_EXTENSIONS", str(tmp_path))
    where = fused.build_directory()
    where.mkdir(parents=True)
    (where / "lock").touch()  # what the killed build left
    built = types.SimpleNamespace(set_onednn=lambda on: None)

    def load(**kwargs: object) -> object:
        assert kwargs["build_directory"] == str(where)
        assert not (where / "lock").exists(), "torch would wait for this file forever"
        # another process would wait its turn
        with (where / "rnnkit-build.lock").open("a") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return built

    monkeypatch.setattr(fused, "_module", None)
    monkeypatch.setattr(fused, "_failed", None)
    monkeypatch.setattr(cpp, "load", load)
    assert fused.extension() is built
    with (where / "rnnkit-build.lock").open("a") as after:  # released once built
        fcntl.flock(after.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


# ---- the GRU with the options torch lacks ---------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("options", ["recurrent_dropout", "zoneout", "both"])
def test_the_fused_gru_equals_the_cells_own_loop_with_the_same_masks(reverse, options):
    """Training mode, the random masks drawn once and given to both: the kernel against
    rnnkit.backends.loop.loop over rnnkit.cells.GRUCell.step, forward and gradients."""
    from rnnkit.backends.loop import loop
    from rnnkit.cells import GRUCell

    torch.manual_seed(0)
    T, B, H = 7, 4, 5
    zoneout = 0.3 if options in ("zoneout", "both") else 0.0
    dropout = 0.4 if options in ("recurrent_dropout", "both") else 0.0
    cell = GRUCell(3, H, zoneout=zoneout, recurrent_dropout=dropout, dtype=F64).train()
    p = {k: v.detach().clone().requires_grad_() for k, v in cell.named_parameters()}
    x = torch.randn(T, B, 3, dtype=F64)
    h0 = torch.randn(B, H, dtype=F64, requires_grad=True)
    lengths = torch.tensor([7, 3, 5, 1])
    valid = (torch.arange(T)[:, None] < lengths[None, :]).unsqueeze(-1)
    zero = torch.zeros(T, B, 1, dtype=torch.bool)
    zero[2, 0] = zero[4, 2] = True
    mask = cell.sample_recurrent_mask(B, x)
    keep = cell.sample_zoneout(T, (h0,))
    results = []
    for run in ("fused", "loop"):
        gx = cell.project(p, x)
        if run == "fused":
            outs = fused.gru(gx, h0, p["weight_hh"], p["bias_hh"], valid, zero, reverse, mask,
                             None if keep is None else keep[0], zoneout)  # fmt: skip
        else:
            out, (h,) = loop(cell, p, gx, (h0,), valid=valid, zero=zero, reverse=reverse,
                             mask=mask, keep=keep)  # fmt: skip
            outs = (out, h)
        g = torch.Generator().manual_seed(1)
        loss = sum((o * torch.randn(o.shape, generator=g, dtype=F64)).sum() for o in outs)
        results.append((outs, torch.autograd.grad(loss, [h0, *p.values()])))
    (o1, g1), (o2, g2) = results
    for a, b in zip((*o1, *g1), (*o2, *g2), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("resets", [False, True])
def test_an_evaluating_zoneout_gru_layer_equals_the_reference_backend(bidirectional, resets):
    torch.manual_seed(0)
    kw = {"num_layers": 2, "bidirectional": bidirectional, "zoneout": 0.2, "dtype": F64}
    ours = rnnkit.GRU(3, 5, backend="fused", **kw).eval()
    ref = rnnkit.GRU(3, 5, backend="reference", **kw).eval()
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(7, 4, 3, dtype=F64)
    reset = (torch.rand(7, 4) < 0.2) if resets else None
    lengths = torch.tensor([7, 3, 5, 1])
    results = []
    for layer in (ours, ref):
        xi = x.clone().requires_grad_()
        out, h = layer(xi, lengths=lengths, reset=reset)
        loss = out.square().sum() + h.sum()
        results.append((out, h, *torch.autograd.grad(loss, [xi, *layer.parameters()])))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("training", [False, True])
def test_the_gru_options_backward_passes_gradcheck(training: bool) -> None:
    torch.manual_seed(0)
    T, B, H = 5, 3, 4
    gx = torch.randn(T, B, 3 * H, dtype=F64, requires_grad=True)
    h0 = torch.randn(B, H, dtype=F64, requires_grad=True)
    w = torch.randn(3 * H, H, dtype=F64, requires_grad=True)
    b = torch.randn(3 * H, dtype=F64, requires_grad=True)
    mask = torch.rand(B, H, dtype=F64) * 2  # recurrent dropout's mask, a constant
    keep = torch.rand(T, B, H) < 0.3 if training else None
    valid = torch.arange(T)[:, None] < torch.tensor([5, 2, 4])[None, :]
    zero = torch.zeros(T, B, dtype=torch.bool)
    zero[2, 0] = True

    def f(gx, h0, w, b):
        return fused.gru(gx, h0, w, b, valid, zero, False, mask, keep, 0.3)

    assert torch.autograd.gradcheck(f, (gx, h0, w, b))
    assert torch.autograd.gradgradcheck(f, (gx, h0, w, b))
    want = fused.reference_gru(gx, h0, w, b, valid, zero, False, mask, keep, 0.3)
    for a, c in zip(f(gx, h0, w, b), want, strict=True):
        torch.testing.assert_close(a, c, rtol=0, atol=1e-12)


# ---- the Elman RNN with the options torch lacks --------------------------------------------


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("options", ["recurrent_dropout", "zoneout", "both"])
def test_the_fused_rnn_equals_the_cells_own_loop_with_the_same_masks(
    nonlinearity, reverse, options
):
    from rnnkit.backends.loop import loop
    from rnnkit.cells import RNNCell

    torch.manual_seed(0)
    T, B, H = 7, 4, 5
    zoneout = 0.3 if options in ("zoneout", "both") else 0.0
    dropout = 0.4 if options in ("recurrent_dropout", "both") else 0.0
    cell = RNNCell(3, H, nonlinearity=nonlinearity, zoneout=zoneout,
                   recurrent_dropout=dropout, dtype=F64).train()  # fmt: skip
    p = {k: v.detach().clone().requires_grad_() for k, v in cell.named_parameters()}
    x = torch.randn(T, B, 3, dtype=F64)
    h0 = torch.randn(B, H, dtype=F64, requires_grad=True)
    valid = (torch.arange(T)[:, None] < torch.tensor([7, 3, 5, 1])[None, :]).unsqueeze(-1)
    zero = torch.zeros(T, B, 1, dtype=torch.bool)
    zero[2, 0] = zero[4, 2] = True
    mask = cell.sample_recurrent_mask(B, x)
    keep = cell.sample_zoneout(T, (h0,))
    results = []
    for run in ("fused", "loop"):
        gx = cell.project(p, x)
        if run == "fused":
            outs = fused.rnn(gx, h0, p["weight_hh"], p["bias_hh"], valid, zero, reverse, mask,
                             None if keep is None else keep[0], zoneout,
                             nonlinearity == "relu")  # fmt: skip
        else:
            out, (h,) = loop(cell, p, gx, (h0,), valid=valid, zero=zero, reverse=reverse,
                             mask=mask, keep=keep)  # fmt: skip
            outs = (out, h)
        g = torch.Generator().manual_seed(1)
        loss = sum((o * torch.randn(o.shape, generator=g, dtype=F64)).sum() for o in outs)
        results.append((outs, torch.autograd.grad(loss, [h0, *p.values()])))
    (o1, g1), (o2, g2) = results
    for a, b in zip((*o1, *g1), (*o2, *g2), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_an_evaluating_zoneout_rnn_layer_equals_the_reference_backend(nonlinearity):
    torch.manual_seed(0)
    kw = {"num_layers": 2, "bidirectional": True, "zoneout": 0.2, "dtype": F64,
          "nonlinearity": nonlinearity}  # fmt: skip
    ours = rnnkit.RNN(3, 5, backend="fused", **kw).eval()
    ref = rnnkit.RNN(3, 5, backend="reference", **kw).eval()
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(7, 4, 3, dtype=F64)
    reset = torch.rand(7, 4) < 0.2
    lengths = torch.tensor([7, 3, 5, 1])
    results = []
    for layer in (ours, ref):
        xi = x.clone().requires_grad_()
        out, h = layer(xi, lengths=lengths, reset=reset)
        loss = out.square().sum() + h.sum()
        results.append((out, h, *torch.autograd.grad(loss, [xi, *layer.parameters()])))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("relu", [False, True])
def test_the_rnns_backward_passes_gradcheck(relu: bool) -> None:
    torch.manual_seed(0)
    T, B, H = 5, 3, 4
    gx = torch.randn(T, B, H, dtype=F64, requires_grad=True)
    h0 = torch.randn(B, H, dtype=F64, requires_grad=True)
    w = torch.randn(H, H, dtype=F64, requires_grad=True)
    b = torch.randn(H, dtype=F64, requires_grad=True)
    mask = torch.rand(B, H, dtype=F64) * 2
    keep = torch.rand(T, B, H) < 0.3
    valid = torch.arange(T)[:, None] < torch.tensor([5, 2, 4])[None, :]
    zero = torch.zeros(T, B, dtype=torch.bool)
    zero[2, 0] = True

    def f(gx, h0, w, b):
        return fused.rnn(gx, h0, w, b, valid, zero, False, mask, keep, 0.3, relu)

    assert torch.autograd.gradcheck(f, (gx, h0, w, b))
    assert torch.autograd.gradgradcheck(f, (gx, h0, w, b))  # through the loop's PyTorch form
    want = fused.reference_rnn(gx, h0, w, b, valid, zero, False, mask, keep, 0.3, relu)
    for a, c in zip(f(gx, h0, w, b), want, strict=True):
        torch.testing.assert_close(a, c, rtol=0, atol=1e-12)


# ---- the LSTM with the options torch lacks -------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize(
    "options", ["plain", "recurrent_dropout", "zoneout", "both", "layer_norm", "all"]
)
def test_the_fused_lstm_equals_the_cells_own_loop_with_the_same_masks(reverse, options):
    """Training mode, the random masks drawn once and given to both: the kernel against
    rnnkit.backends.loop.loop over rnnkit.cells.LSTMCell.step, forward and gradients."""
    from rnnkit.backends.loop import loop
    from rnnkit.cells import LSTMCell

    torch.manual_seed(0)
    T, B, H = 7, 4, 5
    zoneout = 0.3 if options in ("zoneout", "both", "all") else 0.0
    dropout = 0.4 if options in ("recurrent_dropout", "both", "all") else 0.0
    ln = options in ("layer_norm", "all")
    cell = LSTMCell(3, H, zoneout=zoneout, recurrent_dropout=dropout, layer_norm=ln, dtype=F64)
    cell.train()
    # Away from the initial values (layer norm's gains start at 1, its biases at 0).
    p = {
        k: (v.detach() + 0.3 * torch.randn_like(v)).requires_grad_()
        for k, v in cell.named_parameters()
    }
    x = torch.randn(T, B, 3, dtype=F64)
    h0, c0 = (torch.randn(B, H, dtype=F64, requires_grad=True) for _ in range(2))
    lengths = torch.tensor([7, 3, 5, 1])
    valid = (torch.arange(T)[:, None] < lengths[None, :]).unsqueeze(-1)
    zero = torch.zeros(T, B, 1, dtype=torch.bool)
    zero[2, 0] = zero[4, 2] = True
    mask = cell.sample_recurrent_mask(B, x)
    keep = cell.sample_zoneout(T, (h0, c0))
    results = []
    for run in ("fused", "loop"):
        gx = cell.project(p, x)
        if run == "fused":
            names = ("hh_weight", "hh_bias", "c_weight", "c_bias")
            norms = tuple(p[f"ln_{n}"] for n in names) if ln else None
            outs = fused.lstm(gx, h0, c0, p["weight_hh"], p["bias_hh"], mask, keep, zoneout,
                              valid, zero, reverse, norms)  # fmt: skip
        else:
            out, (h, c) = loop(cell, p, gx, (h0, c0), valid=valid, zero=zero, reverse=reverse,
                               mask=mask, keep=keep)  # fmt: skip
            outs = (out, h, c)
        g = torch.Generator().manual_seed(1)
        loss = sum((o * torch.randn(o.shape, generator=g, dtype=F64)).sum() for o in outs)
        results.append((outs, torch.autograd.grad(loss, [h0, c0, *p.values()])))
    (o1, g1), (o2, g2) = results
    for a, b in zip((*o1, *g1), (*o2, *g2), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("resets", [False, True])
@pytest.mark.parametrize("options", ["zoneout", "layer_norm", "both"])
def test_an_evaluating_lstm_layer_equals_the_reference_backend(bidirectional, resets, options):
    torch.manual_seed(0)
    kw = {"num_layers": 2, "bidirectional": bidirectional, "dtype": F64}
    kw["zoneout"] = 0.2 if options != "layer_norm" else 0.0
    kw["layer_norm"] = options != "zoneout"
    ours = rnnkit.LSTM(3, 5, backend="fused", **kw).eval()
    with torch.no_grad():  # away from layer norm's initial gains and biases
        for w in ours.parameters():
            w.add_(0.3 * torch.randn_like(w))
    ref = rnnkit.LSTM(3, 5, backend="reference", **kw).eval()
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(7, 4, 3, dtype=F64)
    reset = (torch.rand(7, 4) < 0.2) if resets else None
    lengths = torch.tensor([7, 3, 5, 1])
    results = []
    for layer in (ours, ref):
        xi = x.clone().requires_grad_()
        out, (h, c) = layer(xi, lengths=lengths, reset=reset)
        loss = out.square().sum() + h.sum() + (c * 0.5).sum()
        results.append((out, h, c, *torch.autograd.grad(loss, [xi, *layer.parameters()])))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_the_lstms_auto_choice() -> None:
    x = torch.zeros(5, 2, 3)
    assert rnnkit.LSTM(3, 4).backend_for(x).name == "native"  # torch's oneDNN kernel
    for options in ({"zoneout": 0.1}, {"recurrent_dropout": 0.2}, {"layer_norm": True}):
        assert rnnkit.LSTM(3, 4, **options).backend_for(x).name == "fused"
    reset = torch.zeros(5, 2, dtype=torch.bool)
    assert rnnkit.LSTM(3, 4).backend_for(x, reset=reset).name == "fused"
    assert rnnkit.LSTM(3, 4, layer_norm=True).backend_for(x).name == "fused"
    assert rnnkit.LSTM(3, 4, proj_size=2, zoneout=0.1).backend_for(x).name == "fused"
    bf16 = rnnkit.LSTM(3, 4, zoneout=0.1).bfloat16()  # no fused kernel in bfloat16
    assert bf16.backend_for(x.bfloat16()).name == "reference"
    eval_dropout = rnnkit.LSTM(3, 4, recurrent_dropout=0.2).eval()
    assert eval_dropout.backend_for(x).name == "native"  # no dropout in evaluation


def test_a_call_torchs_kernel_takes_never_builds_the_extension(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_build() -> None:
        raise AssertionError("the extension was asked for")

    monkeypatch.setattr(fused, "available", no_build)
    x = torch.zeros(5, 256, 3)
    assert rnnkit.LSTM(3, 4).backend_for(x).name == "native"
    assert rnnkit.GRU(3, 512).backend_for(x).name == "native"  # B = 256
    assert rnnkit.RNN(3, 4).backend_for(x).name == "native"


@pytest.mark.parametrize("scale", [0.01, 1.0, 100.0])
def test_the_float32_gates_are_within_float32_rounding_and_keep_nan(scale: float) -> None:
    """With W_h = 0 and h^0 = 0 the kernels' outputs are their gate functions of gx alone:
    tanh for the Elman RNN, (1 - sigmoid) tanh for the GRU - on a CPU with AVX2 computed
    eight at a time by fused_cpu.cpp's own exp, here held to torch's to 3e-7, with NaN and
    infinities through."""
    torch.manual_seed(0)
    gx = torch.randn(1, 600, 64) * scale
    gx[0, 0, :4] = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0])
    h0 = torch.zeros(600, 64)
    out, _ = fused.rnn(gx, h0, torch.zeros(64, 64), None)
    torch.testing.assert_close(out, torch.tanh(gx), rtol=0, atol=3e-7, equal_nan=True)
    g3 = torch.randn(1, 600, 192) * scale
    g3[0, 0, 128:132] = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0])
    out, _ = fused.gru(g3, h0, torch.zeros(192, 64), None)
    _, x_z, x_n = g3.chunk(3, -1)
    want = (1 - torch.sigmoid(x_z)) * torch.tanh(x_n)
    torch.testing.assert_close(out, want, rtol=0, atol=3e-7, equal_nan=True)


@pytest.mark.parametrize("options", ["zoneout", "recurrent_dropout", "layer_norm", "all"])
@pytest.mark.parametrize("training", [False, True])
def test_the_projected_lstm_equals_the_reference_backend(options: str, training: bool) -> None:
    """proj_size (Sak et al. 2014) with every option, two layers, both directions, lengths,
    resets and an initial state: outputs, states and every gradient to 1e-10 (float64).
    In training recurrent dropout's masks come from the same seed in both backends;
    zoneout's are drawn in another order (all steps up front), so training with zoneout is
    compared below with the masks given."""
    if training and options in ("zoneout", "all"):
        options = "recurrent_dropout" if options == "zoneout" else "no_zoneout"
    kw = {"num_layers": 2, "bidirectional": True, "proj_size": 3, "dtype": F64}
    if options in ("zoneout", "all"):
        kw["zoneout"] = 0.3
    if options in ("recurrent_dropout", "all", "no_zoneout"):
        kw["recurrent_dropout"] = 0.4
    if options in ("layer_norm", "all", "no_zoneout"):
        kw["layer_norm"] = True
    torch.manual_seed(0)
    ours = rnnkit.LSTM(4, 6, **kw).train(training)
    ref = rnnkit.LSTM(4, 6, backend="reference", **kw).train(training)
    ref.load_state_dict(ours.state_dict())
    T, B = 7, 3
    x = torch.randn(T, B, 4, dtype=F64)
    state = (torch.randn(4, B, 3, dtype=F64), torch.randn(4, B, 6, dtype=F64))
    lengths, reset = torch.tensor([7, 4, 1]), torch.rand(T, B) < 0.2
    assert ours.backend_for(x, lengths=lengths, reset=reset).name == "fused"
    results = []
    for layer in (ours, ref):
        xi = x.clone().requires_grad_()
        s0 = tuple(s.clone().requires_grad_() for s in state)
        torch.manual_seed(5)  # the same zoneout and dropout masks for both
        out, (h, c) = layer(xi, s0, lengths=lengths, reset=reset)
        g = torch.Generator().manual_seed(1)
        loss = sum((t * torch.randn(t.shape, generator=g, dtype=F64)).sum() for t in (out, h, c))
        grads = torch.autograd.grad(loss, [xi, *s0, *layer.parameters()])
        results.append((out, h, c, *grads))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("layer_norm", [False, True])
def test_the_projected_lstms_backward_passes_gradcheck(layer_norm: bool) -> None:
    torch.manual_seed(0)
    T, B, H, P = 4, 2, 4, 2
    valid = torch.tensor([[1, 1]] * 3 + [[1, 0]]).bool()
    zero = torch.zeros(T, B, dtype=torch.bool)
    zero[2, 0] = True
    keep_h, keep_c = torch.rand(T, B, P) < 0.3, torch.rand(T, B, H) < 0.3
    mask = torch.rand(B, P, dtype=F64) + 0.5
    inputs = [torch.randn(T, B, 4 * H, dtype=F64), torch.randn(B, P, dtype=F64),
              torch.randn(B, H, dtype=F64), torch.randn(4 * H, P, dtype=F64),
              torch.randn(4 * H, dtype=F64), torch.randn(P, H, dtype=F64)]  # fmt: skip
    ln = [torch.randn(n, dtype=F64) for n in (4 * H, 4 * H, H, H)] if layer_norm else []
    leaves = tuple(t.requires_grad_() for t in inputs + ln)

    def fn(gx, h0, c0, w, b, w_hr, *norms):
        return fused.lstm(gx, h0, c0, w, b, mask, (keep_h, keep_c), 0.3, valid, zero, False,
                          tuple(norms) or None, w_hr)  # fmt: skip

    def ref(gx, h0, c0, w, b, w_hr, *norms):
        return fused.reference_lstm(gx, h0, c0, w, b, mask, keep_h, keep_c, 0.3, valid, zero,
                                    False, *(norms or [None] * 4), w_hr=w_hr)  # fmt: skip

    for a, e in zip(fn(*leaves), ref(*leaves), strict=True):  # zoneout's training masks
        torch.testing.assert_close(a, e, atol=1e-10, rtol=0)
    assert torch.autograd.gradcheck(fn, leaves)
