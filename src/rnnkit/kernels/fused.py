"""Fused CPU recurrences: the step loop in C++, its backward written out by hand.

The reference backend runs the chapter's loop in Python and lets autograd differentiate
it: tens of microseconds of Python and many small saved tensors per step. Here the loop of
one direction of one layer runs in ``fused_cpu.cpp`` (next to this file), forward and
backward, and only the products over all T steps at once - the input projection and its
gradients - stay in PyTorch. The backward is the chapter's backpropagation through time
(10.7) written out; ``tests/test_fused.py`` holds it to autograd's through the reference
loop (to 1e-10 in float64, and by gradcheck).

The extension is built on first use with the compiler torch uses
(``torch.utils.cpp_extension``) and cached under ``$RNNKIT_EXTENSIONS`` (default
``~/.cache/rnnkit/extensions``), per torch version and source. Where it cannot be built
(no compiler), :func:`available` is False after one :class:`UserWarning` and every layer
runs where it ran before: torch's kernel or the reference loop. ``RNNKIT_FUSED=0`` turns
the fused kernels off. Processes that build at once take turns (:func:`_one_builder`), and
a build killed half-way does not stop the next one.
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rnnkit.kernels import gemm

SOURCE = Path(__file__).with_name("fused_cpu.cpp")
_lock = threading.Lock()
_module: Any = None
_failed: str | None = None


def enabled() -> bool:
    return os.environ.get("RNNKIT_FUSED", "1") != "0"


def _vector_flags() -> list[str]:
    """AVX2 and FMA where this CPU has them (torch's own dispatch says so): the float32
    gates then run eight at a time (``sigmoid_n``, ``tanh_n`` in fused_cpu.cpp)."""
    capability = torch.backends.cpu.get_cpu_capability()
    return ["-mavx2", "-mfma"] if capability in ("AVX2", "AVX512") else []


def build_directory() -> Path:
    root = os.environ.get("RNNKIT_EXTENSIONS") or Path.home() / ".cache" / "rnnkit" / "extensions"
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    version = torch.__version__.replace("+", "_")
    # The flags are part of the name: a cache shared by machines of different CPUs keeps
    # one build per instruction set.
    flags = "-avx2" if _vector_flags() else ""
    return Path(root) / f"fused_cpu-{version}-{digest}{flags}"


@contextmanager
def _one_builder(where: Path) -> Iterator[None]:
    """Hold an OS lock on ``where`` while torch builds or loads the extension there.

    torch marks a build in progress with a file ``lock`` in the build folder and waits,
    without end, for it to go away. A process killed mid-build (Ctrl-C in the first
    minute of a first run, a test run stopped) leaves that file behind, and every later
    process that needs the kernels would hang on import. The OS lock is released by the
    kernel when its holder dies, so whoever holds it knows no other rnnkit process is
    building: a ``lock`` file then is stale and is removed. (No flock, as on Windows:
    torch's own rule alone.)"""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with (where / "rnnkit-build.lock").open("a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # a second builder waits for the first
        (where / "lock").unlink(missing_ok=True)
        yield


def extension() -> Any:
    """The compiled module, built on the first call; None where it cannot be built.

    Each call tells the module where its large float32 products go (oneDNN or torch's
    BLAS, :func:`rnnkit.kernels.gemm.enabled`), so that ``RNNKIT_ONEDNN`` set after the
    first call still counts, as it does for the products outside the module."""
    module = _load()
    if module is not None:
        module.set_onednn(gemm.enabled())
    return module


def _load() -> Any:
    global _module, _failed
    if _module is not None or _failed is not None or not enabled():
        return _module
    with _lock:
        if _module is not None or _failed is not None:
            return _module
        try:
            from torch.utils.cpp_extension import load

            where = build_directory()
            where.mkdir(parents=True, exist_ok=True)
            with _one_builder(where):
                _module = load(
                    name="rnnkit_fused_cpu",
                    sources=[str(SOURCE)],
                    build_directory=str(where),
                    extra_cflags=["-O3", "-fopenmp-simd", *_vector_flags()],
                    verbose=False,
                )
        except Exception as err:  # no compiler, no headers, a read-only cache, ...
            _failed = " ".join(str(err).split())[:300] or type(err).__name__
            warnings.warn(
                f"rnnkit could not build its fused CPU kernels ({_failed}); the GRU runs on "
                "torch's kernel and the options on the reference loop instead. Set "
                "RNNKIT_FUSED=0 to skip the attempt.",
                UserWarning,
                stacklevel=2,
            )
    return _module


def available() -> bool:
    """Whether the fused kernels are built (building them on the first call)."""
    return extension() is not None


def kernels(t: Tensor) -> Any:
    """The kernels for ``t``'s device: the C++ extension on the CPU, Triton's on CUDA
    (:mod:`rnnkit.kernels.fused_cuda`, the same functions under the same names)."""
    if t.device.type == "cuda":
        from rnnkit.kernels import fused_cuda

        return fused_cuda
    return extension()


class GRURecurrence(torch.autograd.Function):
    """The GRU recurrence over projected inputs gx (T, B, 3H): (out (T, B, H), h_T (B, H)).

    ``valid`` and ``zero`` are (T, B) bool masks or None (lengths and resets, as
    :func:`rnnkit.backends.stack.masks` builds them), ``reverse`` runs from T - 1 down.
    ``mask`` (B, H) multiplies h^{t-1} in the recurrent product (recurrent dropout, None:
    none); ``keep`` (T, B, H) bool is zoneout's training mask (None: none, or the
    evaluation blend with ``zoneout`` = p). The masks are constants (no gradient).
    """

    @staticmethod
    def forward(
        ctx: Any,
        gx: Tensor,
        h0: Tensor,
        w_hh: Tensor,
        b_hh: Tensor | None,
        valid: Tensor | None,
        zero: Tensor | None,
        reverse: bool,
        mask: Tensor | None = None,
        keep: Tensor | None = None,
        zoneout: float = 0.0,
    ) -> tuple[Tensor, Tensor]:
        out, h_n, h_prev, r, z, n, ghn = kernels(gx).gru_forward(
            gx, h0, w_hh, b_hh, valid, zero, reverse, mask, keep, zoneout
        )
        bias = b_hh if b_hh is not None else gx.new_empty(0)
        ctx.save_for_backward(gx, h0, w_hh, bias, h_prev, r, z, n, ghn)
        ctx.masks = (valid, zero)
        ctx.options = (mask, keep, zoneout)
        ctx.reverse = reverse
        ctx.has_bias = b_hh is not None
        return out, h_n

    @staticmethod
    def backward(ctx: Any, d_out: Tensor | None, d_h: Tensor | None) -> tuple[Any, ...]:
        gx, h0, w_hh, bias, h_prev, r, z, n, ghn = ctx.saved_tensors
        valid, zero = ctx.masks
        mask, keep, zoneout = ctx.options
        b_hh = bias if ctx.has_bias else None
        none = (None,) * 6
        if _needs_autograd(d_out, d_h):
            grads = _autograd_backward(
                lambda gx, h0, w, b: reference_gru(
                    gx, h0, w, b, valid, zero, ctx.reverse, mask, keep, zoneout
                ),
                [gx, h0, w_hh, b_hh], [d_out, d_h],
            )  # fmt: skip
            return (*grads, *none)
        dgx, dh0, dw, db = kernels(r).gru_backward(
            d_out, d_h, w_hh, h_prev, r, z, n, ghn, valid, zero, ctx.reverse, mask, keep, zoneout
        )
        return dgx, dh0, dw, (db if ctx.has_bias else None), *none


def _needs_autograd(*grads: Tensor | None) -> bool:
    """A double backward (create_graph) or a vmapped one (batched gradients): then the
    same gradients come from autograd over the loop's PyTorch form, which both follow."""
    return torch.is_grad_enabled() or any(_transformed(g) for g in grads)


def _transformed(t: Tensor | None) -> bool:
    """Whether a functorch transform (vmap over the backward: batched gradients) wraps t."""
    if torch._C._are_functorch_transforms_active():
        return True
    if t is None:
        return False
    f = torch._C._functorch
    return bool(f.is_functorch_wrapped_tensor(t) or f.is_legacy_batchedtensor(t))


def reference_gru(
    gx: Tensor,
    h0: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None,
    valid: Tensor | None,
    zero: Tensor | None,
    reverse: bool,
    mask: Tensor | None = None,
    keep: Tensor | None = None,
    zoneout: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """What :class:`GRURecurrence` computes, as a PyTorch loop (``rnnkit.cells.gru``'s
    step, zoneout and recurrent dropout as ``rnnkit.cells.base`` applies them, and
    ``rnnkit.backends.loop``'s masks): the function its backward differentiates."""

    def step(gx_t: Tensor, h: Tensor) -> Tensor:
        gh = torch.nn.functional.linear(h if mask is None else h * mask, w_hh, b_hh)
        x_r, x_z, x_n = gx_t.chunk(3, dim=-1)
        h_r, h_z, h_n = gh.chunk(3, dim=-1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        return (1 - z) * n + z * h

    return _one_state_loop(step, gx, h0, valid, zero, reverse, keep, zoneout)


def _one_state_loop(
    step: Any,
    gx: Tensor,
    h0: Tensor,
    valid: Tensor | None,
    zero: Tensor | None,
    reverse: bool,
    keep: Tensor | None,
    zoneout: float,
) -> tuple[Tensor, Tensor]:
    """The time loop of a cell whose state is h alone (GRU, Elman RNN): ``step(gx^t,
    h^{t-1})`` gives h^t, then resets, zoneout and lengths as ``rnnkit.backends.loop``
    and ``rnnkit.cells.base`` apply them."""
    T = gx.size(0)
    h, outs = h0, [gx.new_empty(0)] * T
    for t in range(T - 1, -1, -1) if reverse else range(T):
        if zero is not None:
            h = torch.where(zero[t, :, None], torch.zeros_like(h), h)
        new = step(gx[t], h)
        if keep is not None:
            new = torch.where(keep[t], h, new)
        elif zoneout > 0:
            new = zoneout * h + (1.0 - zoneout) * new
        if valid is not None:
            new = torch.where(valid[t, :, None], new, h)
            outs[t] = torch.where(valid[t, :, None], new, torch.zeros_like(new))
        else:
            outs[t] = new
        h = new
    out = torch.stack(outs) if T else gx.new_zeros(0, gx.size(1), h0.size(1))
    return out, h


def _autograd_backward(
    forward: Any, inputs: list[Tensor | None], grads: list[Tensor | None]
) -> list[Tensor | None]:
    """The gradients of ``inputs`` (None: an absent bias) for output gradients ``grads``,
    by autograd through ``forward(*inputs)`` - differentiable again under create_graph."""
    present = [t for t in inputs if t is not None]
    with torch.enable_grad():
        leaves = [t if t.requires_grad else t.detach().requires_grad_() for t in present]
        it = iter(leaves)
        outs = forward(*[None if t is None else next(it) for t in inputs])
        pairs = [(o, g) for o, g in zip(outs, grads, strict=True) if g is not None]
        found = iter(torch.autograd.grad(
            [o for o, _ in pairs], leaves, [g for _, g in pairs],
            create_graph=torch.is_grad_enabled(), allow_unused=True,
        ))  # fmt: skip
    return [None if t is None else next(found) for t in inputs]


def gru(
    gx: Tensor,
    h0: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None,
    valid: Tensor | None = None,
    zero: Tensor | None = None,
    reverse: bool = False,
    mask: Tensor | None = None,
    keep: Tensor | None = None,
    zoneout: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """:class:`GRURecurrence` applied (the masks as (T, B) bool; ``mask`` recurrent
    dropout's (B, H); ``keep`` zoneout's (T, B, H) training mask)."""
    v = None if valid is None else valid.reshape(valid.shape[:2]).contiguous()
    zm = None if zero is None else zero.reshape(zero.shape[:2]).contiguous()
    m = None if mask is None else mask.contiguous()
    k = None if keep is None else keep.contiguous()
    return GRURecurrence.apply(gx, h0, w_hh, b_hh, v, zm, reverse, m, k, float(zoneout))


class RNNRecurrence(torch.autograd.Function):
    """The Elman RNN recurrence (10.1, 10.2) over projected inputs gx (T, B, H), with the
    options torch's kernels lack: (out (T, B, H), h_T (B, H)). The arguments are
    :class:`GRURecurrence`'s, and ``relu`` picks the nonlinearity (else tanh)."""

    @staticmethod
    def forward(
        ctx: Any,
        gx: Tensor,
        h0: Tensor,
        w_hh: Tensor,
        b_hh: Tensor | None,
        valid: Tensor | None,
        zero: Tensor | None,
        reverse: bool,
        mask: Tensor | None,
        keep: Tensor | None,
        zoneout: float,
        relu: bool,
    ) -> tuple[Tensor, Tensor]:
        out, h_n, h_prev, act = kernels(gx).rnn_forward(
            gx, h0, w_hh, b_hh, valid, zero, reverse, mask, keep, zoneout, relu
        )
        bias = b_hh if b_hh is not None else gx.new_empty(0)
        ctx.save_for_backward(gx, h0, w_hh, bias, h_prev, act)
        ctx.constants = (valid, zero, reverse, mask, keep, zoneout, relu)
        ctx.has_bias = b_hh is not None
        return out, h_n

    @staticmethod
    def backward(ctx: Any, d_out: Tensor | None, d_h: Tensor | None) -> tuple[Any, ...]:
        gx, h0, w_hh, bias, h_prev, act = ctx.saved_tensors
        b_hh = bias if ctx.has_bias else None
        none = (None,) * 7
        if _needs_autograd(d_out, d_h):
            grads = _autograd_backward(
                lambda gx, h0, w, b: reference_rnn(gx, h0, w, b, *ctx.constants),
                [gx, h0, w_hh, b_hh], [d_out, d_h],
            )  # fmt: skip
            return (*grads, *none)
        dgx, dh0, dw, db = kernels(act).rnn_backward(d_out, d_h, w_hh, h_prev, act, *ctx.constants)
        return dgx, dh0, dw, (db if ctx.has_bias else None), *none


def reference_rnn(
    gx: Tensor,
    h0: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None,
    valid: Tensor | None,
    zero: Tensor | None,
    reverse: bool,
    mask: Tensor | None = None,
    keep: Tensor | None = None,
    zoneout: float = 0.0,
    relu: bool = False,
) -> tuple[Tensor, Tensor]:
    """What :class:`RNNRecurrence` computes, as a PyTorch loop (``rnnkit.cells.rnn``'s
    step, zoneout and recurrent dropout as ``rnnkit.cells.base`` applies them, and
    ``rnnkit.backends.loop``'s masks)."""
    act = torch.relu if relu else torch.tanh

    def step(gx_t: Tensor, h: Tensor) -> Tensor:
        h_in = h if mask is None else h * mask
        return act(gx_t + torch.nn.functional.linear(h_in, w_hh, b_hh))  # 10.2

    return _one_state_loop(step, gx, h0, valid, zero, reverse, keep, zoneout)


def rnn(
    gx: Tensor,
    h0: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None,
    valid: Tensor | None = None,
    zero: Tensor | None = None,
    reverse: bool = False,
    mask: Tensor | None = None,
    keep: Tensor | None = None,
    zoneout: float = 0.0,
    relu: bool = False,
) -> tuple[Tensor, Tensor]:
    """:class:`RNNRecurrence` applied (the masks as for :func:`gru`)."""
    v = None if valid is None else valid.reshape(valid.shape[:2]).contiguous()
    zm = None if zero is None else zero.reshape(zero.shape[:2]).contiguous()
    m = None if mask is None else mask.contiguous()
    k = None if keep is None else keep.contiguous()
    return RNNRecurrence.apply(gx, h0, w_hh, b_hh, v, zm, reverse, m, k, float(zoneout), relu)


class LSTMRecurrence(torch.autograd.Function):
    """The LSTM recurrence over projected inputs gx (T, B, 4H), with recurrent dropout,
    zoneout and layer norm: (out (T, B, H), h_T, c_T (B, H)).

    ``mask`` (B, H) multiplies h^{t-1} in the recurrent product (None: no dropout);
    ``keep_h``/``keep_c`` (T, B, H) bool are zoneout's training masks (None: none, or the
    evaluation blend with ``zoneout`` = p). The masks are constants (no gradient).
    ``ln`` is (ln_hh weight, ln_hh bias, ln_c weight, ln_c bias), or four Nones for none:
    the recurrent product is normalised before b_hh, and c^t inside the output's tanh.
    ``w_hr`` (P, H) is the projection of h (Sak et al. 2014), or None: h, the output, h0
    and the masks on h are then P wide.
    """

    @staticmethod
    def forward(
        ctx: Any,
        gx: Tensor,
        h0: Tensor,
        c0: Tensor,
        w_hh: Tensor,
        b_hh: Tensor | None,
        mask: Tensor | None,
        keep_h: Tensor | None,
        keep_c: Tensor | None,
        zoneout: float,
        valid: Tensor | None,
        zero: Tensor | None,
        reverse: bool,
        ln_hh_w: Tensor | None,
        ln_hh_b: Tensor | None,
        ln_c_w: Tensor | None,
        ln_c_b: Tensor | None,
        w_hr: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        ln = (ln_hh_w, ln_hh_b, ln_c_w, ln_c_b)
        out, h, c, h_prev, c_prev, gates, tc, xh, rh, xc, rc, hpre = kernels(gx).lstm_forward(
            gx, h0, c0, w_hh, b_hh, mask, keep_h, keep_c, zoneout, valid, zero, reverse, *ln,
            w_hr,
        )  # fmt: skip
        empty = gx.new_empty(0)
        bias = b_hh if b_hh is not None else empty
        lnw = [w if w is not None else empty for w in ln]
        ctx.save_for_backward(
            gx, h0, c0, w_hh, bias, h_prev, c_prev, gates, tc, xh, rh, xc, rc, *lnw,
            w_hr if w_hr is not None else empty, hpre,
        )  # fmt: skip
        ctx.constants = (mask, keep_h, keep_c, zoneout, valid, zero, reverse)
        ctx.has_bias = b_hh is not None
        ctx.has_ln = ln_hh_w is not None
        ctx.has_proj = w_hr is not None
        return out, h, c

    @staticmethod
    def backward(
        ctx: Any, d_out: Tensor | None, d_h: Tensor | None, d_c: Tensor | None
    ) -> tuple[Any, ...]:
        saved = ctx.saved_tensors
        gx, h0, c0, w_hh, bias, h_prev, c_prev, gates, tc, xh, rh, xc, rc = saved[:13]
        lnw, proj, hpre = saved[13:17], saved[17], saved[18]
        mask, keep_h, keep_c, zoneout, valid, zero, reverse = ctx.constants
        b_hh = bias if ctx.has_bias else None
        ln = list(lnw) if ctx.has_ln else [None] * 4
        w_hr = proj if ctx.has_proj else None
        none = (None,) * 7
        if _needs_autograd(d_out, d_h, d_c):
            grads = _autograd_backward(
                lambda gx, h0, c0, w, b, w_hr, hh_w, hh_b, c_w, c_b: reference_lstm(
                    gx, h0, c0, w, b, mask, keep_h, keep_c, zoneout, valid, zero, reverse,
                    hh_w, hh_b, c_w, c_b, w_hr=w_hr,
                ),
                [gx, h0, c0, w_hh, b_hh, w_hr, *ln], [d_out, d_h, d_c],
            )  # fmt: skip
            return (*grads[:5], *none, *grads[6:], grads[5])
        dgx, dh0, dc0, dw, db, *dln, dw_hr = kernels(tc).lstm_backward(
            d_out, d_h, d_c, w_hh, h_prev, c_prev, gates, tc, mask, keep_h, keep_c, zoneout,
            valid, zero, reverse, ln[0], ln[2], xh, rh, xc, rc, w_hr, hpre if ctx.has_proj
            else None,
        )  # fmt: skip
        d_ln = dln if ctx.has_ln else [None] * 4
        d_proj = dw_hr if ctx.has_proj else None
        return (dgx, dh0, dc0, dw, (db if ctx.has_bias else None), *none, *d_ln, d_proj)


def reference_lstm(
    gx: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None,
    mask: Tensor | None,
    keep_h: Tensor | None,
    keep_c: Tensor | None,
    zoneout: float,
    valid: Tensor | None,
    zero: Tensor | None,
    reverse: bool,
    ln_hh_w: Tensor | None = None,
    ln_hh_b: Tensor | None = None,
    ln_c_w: Tensor | None = None,
    ln_c_b: Tensor | None = None,
    w_hr: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """What :class:`LSTMRecurrence` computes, as a PyTorch loop (``rnnkit.cells.lstm``'s
    step, zoneout and recurrent dropout as ``rnnkit.cells.base`` applies them, and
    ``rnnkit.backends.loop``'s masks)."""
    F = torch.nn.functional
    T = gx.size(0)
    h, c, outs = h0, c0, [gx.new_empty(0)] * T
    for t in range(T - 1, -1, -1) if reverse else range(T):
        if zero is not None:
            z_t = zero[t, :, None]
            h, c = (
                torch.where(z_t, torch.zeros_like(h), h),
                torch.where(z_t, torch.zeros_like(c), c),
            )
        h_in = h if mask is None else h * mask
        if ln_hh_w is not None:  # Ba et al. 2016: normalised before the bias
            wh = F.linear(h_in, w_hh)
            gh = F.layer_norm(wh, wh.shape[-1:], ln_hh_w, ln_hh_b)
            gh = gh if b_hh is None else gh + b_hh
        else:
            gh = F.linear(h_in, w_hh, b_hh)
        a_i, a_f, a_g, a_o = (gx[t] + gh).chunk(4, -1)
        c_new = torch.sigmoid(a_f) * c + torch.sigmoid(a_i) * torch.tanh(a_g)
        c_out = c_new if ln_c_w is None else F.layer_norm(c_new, c_new.shape[-1:], ln_c_w, ln_c_b)
        h_new = torch.sigmoid(a_o) * torch.tanh(c_out)
        if w_hr is not None:
            h_new = F.linear(h_new, w_hr)  # the projection (Sak et al. 2014)
        if keep_h is not None and keep_c is not None:
            h_new = torch.where(keep_h[t], h, h_new)
            c_new = torch.where(keep_c[t], c, c_new)
        elif zoneout > 0:
            h_new = zoneout * h + (1.0 - zoneout) * h_new
            c_new = zoneout * c + (1.0 - zoneout) * c_new
        if valid is not None:
            v = valid[t, :, None]
            h_new, c_new = torch.where(v, h_new, h), torch.where(v, c_new, c)
            outs[t] = torch.where(v, h_new, torch.zeros_like(h_new))
        else:
            outs[t] = h_new
        h, c = h_new, c_new
    out = torch.stack(outs) if T else gx.new_zeros(0, gx.size(1), h0.size(1))
    return out, h, c


def lstm(
    gx: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None,
    mask: Tensor | None = None,
    keep: tuple[Tensor, Tensor] | None = None,
    zoneout: float = 0.0,
    valid: Tensor | None = None,
    zero: Tensor | None = None,
    reverse: bool = False,
    ln: tuple[Tensor, Tensor, Tensor, Tensor] | None = None,
    w_hr: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """:class:`LSTMRecurrence` applied (the masks as (T, B) bool; ``keep`` the zoneout
    masks (keep_h, keep_c) in training; ``ln`` the layer norms' (ln_hh weight, ln_hh bias,
    ln_c weight, ln_c bias); ``w_hr`` the projection (P, H) or None)."""
    v = None if valid is None else valid.reshape(valid.shape[:2]).contiguous()
    zm = None if zero is None else zero.reshape(zero.shape[:2]).contiguous()
    kh, kc = (None, None) if keep is None else (keep[0].contiguous(), keep[1].contiguous())
    m = None if mask is None else mask.contiguous()
    norms = (None,) * 4 if ln is None else ln
    return LSTMRecurrence.apply(
        gx, h0, c0, w_hh, b_hh, m, kh, kc, float(zoneout), v, zm, reverse, *norms, w_hr
    )
