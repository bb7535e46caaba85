"""Fused GPU recurrences: each step's gate math as one Triton kernel, the backward written out.

The same algorithm as ``fused_cpu.cpp``, for CUDA tensors: per step of one direction, one
product with W_h (cuBLAS, through ``torch.mm``) and one kernel that computes every gate,
the new state, zoneout, lengths and, for the layer-norm LSTM, both normalisations (a
program per sample row, so a row's mean and variance are a reduction in registers). The
backward runs the chapter's BPTT (10.7) step by step the same way - one kernel for the
gate deltas, one product with W_h for the gradient that flows to h^{t-1} - and the weight
gradients are one product over all T steps after the loop, as in cuDNN.

The functions below take and return what the C++ extension's functions of the same name
do, so :mod:`rnnkit.kernels.fused` runs either behind one ``torch.autograd.Function``
per cell. ``tests/test_fused_cuda.py`` runs them on the CPU in Triton's interpreter
(``TRITON_INTERPRET=1``) against the reference loops, to 1e-10 in float64.

Formulas (per sample row; x, h the step's input half and previous state):

* GRU: r, z = sigmoid(gx_rz + gh_rz), n = tanh(gx_n + r gh_n), h' = (1 - z) n + z h.
* LSTM: a = gx + gh; i, f, o = sigmoid, g = tanh; c' = f c + i g; h' = o tanh(c').
* Elman: h' = tanh(gx + gh) or relu(gx + gh) (10.2).

with gh = W_h (m ∘ h) + b_h (m: recurrent dropout's mask), zoneout mixing (h', c') with
(h, c), and a step past a sample's length keeping the state and writing zero.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import torch
from torch import Tensor

try:  # Triton ships with torch's CUDA builds; without it there is no GPU path.
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - the CPU build of torch has no Triton
    triton = None


def available() -> bool:
    """Whether the GPU kernels can run here: Triton is installed and a CUDA device is seen."""
    return (
        triton is not None
        and os.environ.get("RNNKIT_FUSED", "1") != "0"
        and torch.cuda.is_available()
    )


def _block(n: int) -> int:
    return max(16, 1 << (n - 1).bit_length())


def _given(t: Tensor | None) -> Tensor:
    """``t``, which a flag says is there: LSTMRecurrence saves xh, rh, xc, rc with layer
    norm and hpre with a projection, and hands them back to :func:`lstm_backward`."""
    assert t is not None, "lstm_backward: a tensor its flags need is missing"
    return t


def _opt(t: Tensor | None, like: Tensor) -> Tensor:
    """A placeholder pointer for an absent optional argument (never read)."""
    return like if t is None else t


def _param(p: float, like: Tensor) -> Tensor:
    # A scalar argument reaches a Triton kernel as float32; zoneout's p is passed as a
    # one-element tensor of the data's type so that float64 runs compute with p exactly.
    return torch.full((1,), p, dtype=like.dtype, device=like.device)


if triton is not None:

    @triton.jit
    def _sigmoid(x):
        return 1.0 / (1.0 + tl.exp(-x))

    @triton.jit
    def _tanh(x):
        return 2.0 / (1.0 + tl.exp(-2.0 * x)) - 1.0

    @triton.jit
    def _load(ptr, cols, m):
        return tl.load(ptr + cols, mask=m, other=0.0)

    @triton.jit
    def _zoneout(new, old, KEEP, P, at, cols, m, HAS_KEEP: tl.constexpr, BLEND: tl.constexpr):
        """Zoneout (Krueger et al. 2017): a kept unit holds its old value (training), or
        the evaluation blend p old + (1 - p) new."""
        if HAS_KEEP:
            new = tl.where(tl.load(KEEP + at + cols, mask=m, other=0) != 0, old, new)
        elif BLEND:
            p = tl.load(P)
            new = p * old + (1.0 - p) * new
        return new

    @triton.jit
    def _zoneout_split(d, KEEP, P, at, cols, m, HAS_KEEP: tl.constexpr, BLEND: tl.constexpr):
        """The gradient of zoneout's mix: (the share reaching h', the share kept for h)."""
        if HAS_KEEP:
            kept = tl.load(KEEP + at + cols, mask=m, other=0) != 0
            return tl.where(kept, 0.0, d), tl.where(kept, d, 0.0)
        elif BLEND:
            p = tl.load(P)
            return (1.0 - p) * d, p * d
        else:
            return d, d * 0.0

    @triton.jit
    def _incoming(DH, DOUT, at, cols, m, HAS_DOUT: tl.constexpr):
        """dh (from step t + 1) and dh' = dh + ∂L/∂y^t, the output's own gradient."""
        dh = tl.load(DH + at + cols, mask=m, other=0.0)
        dhz = dh
        if HAS_DOUT:
            dhz += tl.load(DOUT + at + cols, mask=m, other=0.0)
        return dh, dhz

    @triton.jit
    def _lengths(new, old, VALID, i, HAS_VALID: tl.constexpr):
        """(state, output) of a row: past a sample's end the state is kept, the output 0."""
        out = new
        if HAS_VALID:
            inside = tl.load(VALID + i) != 0
            new = tl.where(inside, new, old)
            out = tl.where(inside, out, 0.0)
        return new, out

    @triton.jit
    def _normalise(v, m, n):
        """F.layer_norm of one row (biased variance, eps 1e-5): (x^, 1/sqrt(var + eps))."""
        mean = tl.sum(tl.where(m, v, 0.0), 0) / n
        d = tl.where(m, v - mean, 0.0)
        rstd = 1.0 / tl.sqrt(tl.sum(d * d, 0) / n + 1e-5)
        return d * rstd, rstd

    @triton.jit
    def _gru_forward_step(
        GX, GH, HP, KEEP, VALID, P, OUT, HN, R, Z, N, GHN, H,
        HAS_KEEP: tl.constexpr, BLEND: tl.constexpr, HAS_VALID: tl.constexpr,
        BLOCK: tl.constexpr,
    ):  # fmt: skip
        i = tl.program_id(0)
        cols = tl.arange(0, BLOCK)
        m = cols < H
        g, gh, at = GX + i * 3 * H, GH + i * 3 * H, i * H
        hn = tl.load(gh + 2 * H + cols, mask=m, other=0.0)
        r = _sigmoid(tl.load(g + cols, mask=m, other=0.0) + tl.load(gh + cols, mask=m, other=0.0))
        z = _sigmoid(
            tl.load(g + H + cols, mask=m, other=0.0) + tl.load(gh + H + cols, mask=m, other=0.0)
        )
        n = _tanh(tl.load(g + 2 * H + cols, mask=m, other=0.0) + r * hn)
        h = tl.load(HP + at + cols, mask=m, other=0.0)
        new = _zoneout((1.0 - z) * n + z * h, h, KEEP, P, at, cols, m, HAS_KEEP, BLEND)
        new, out = _lengths(new, h, VALID, i, HAS_VALID)
        tl.store(OUT + at + cols, out, mask=m)
        tl.store(HN + at + cols, new, mask=m)
        tl.store(R + at + cols, r, mask=m)
        tl.store(Z + at + cols, z, mask=m)
        tl.store(N + at + cols, n, mask=m)
        tl.store(GHN + at + cols, hn, mask=m)

    @triton.jit
    def _gru_backward_step(
        DH, DOUT, HP, R, Z, N, GHN, KEEP, VALID, P, DGX, DGH, DIRECT, H,
        HAS_DOUT: tl.constexpr, HAS_KEEP: tl.constexpr, BLEND: tl.constexpr,
        HAS_VALID: tl.constexpr, BLOCK: tl.constexpr,
    ):  # fmt: skip
        # dn = dh' (1 - z), dz = dh' (h - n), da_n = dn (1 - n^2), da_r = da_n gh_n r (1 - r),
        # da_z = dz z (1 - z); dgx = (da_r, da_z, da_n), dgh = (da_r, da_z, da_n r).
        i = tl.program_id(0)
        cols = tl.arange(0, BLOCK)
        m = cols < H
        at = i * H
        dh, dhz = _incoming(DH, DOUT, at, cols, m, HAS_DOUT)
        g, kept = _zoneout_split(dhz, KEEP, P, at, cols, m, HAS_KEEP, BLEND)
        r = tl.load(R + at + cols, mask=m, other=0.0)
        z = tl.load(Z + at + cols, mask=m, other=0.0)
        n = tl.load(N + at + cols, mask=m, other=0.0)
        h = tl.load(HP + at + cols, mask=m, other=0.0)
        da_n = g * (1.0 - z) * (1.0 - n * n)
        da_r = da_n * tl.load(GHN + at + cols, mask=m, other=0.0) * r * (1.0 - r)
        da_z = g * (h - n) * z * (1.0 - z)
        direct = g * z + kept
        da_h = da_n * r
        if HAS_VALID:  # past the end: the gradient passes through
            inside = tl.load(VALID + i) != 0
            da_r = tl.where(inside, da_r, 0.0)
            da_z = tl.where(inside, da_z, 0.0)
            da_n = tl.where(inside, da_n, 0.0)
            da_h = tl.where(inside, da_h, 0.0)
            direct = tl.where(inside, direct, dh)
        row = i * 3 * H
        tl.store(DGX + row + cols, da_r, mask=m)
        tl.store(DGX + row + H + cols, da_z, mask=m)
        tl.store(DGX + row + 2 * H + cols, da_n, mask=m)
        tl.store(DGH + row + cols, da_r, mask=m)
        tl.store(DGH + row + H + cols, da_z, mask=m)
        tl.store(DGH + row + 2 * H + cols, da_h, mask=m)
        tl.store(DIRECT + at + cols, direct, mask=m)

    @triton.jit
    def _rnn_forward_step(
        GX, GH, HP, KEEP, VALID, P, OUT, HN, ACT, H,
        RELU: tl.constexpr, HAS_KEEP: tl.constexpr, BLEND: tl.constexpr,
        HAS_VALID: tl.constexpr, BLOCK: tl.constexpr,
    ):  # fmt: skip
        i = tl.program_id(0)
        cols = tl.arange(0, BLOCK)
        m = cols < H
        at = i * H
        a = tl.load(GX + at + cols, mask=m, other=0.0) + tl.load(GH + at + cols, mask=m, other=0.0)
        act = tl.where(a > 0, a, 0.0) if RELU else _tanh(a)  # 10.2
        h = tl.load(HP + at + cols, mask=m, other=0.0)
        new = _zoneout(act, h, KEEP, P, at, cols, m, HAS_KEEP, BLEND)
        new, out = _lengths(new, h, VALID, i, HAS_VALID)
        tl.store(OUT + at + cols, out, mask=m)
        tl.store(HN + at + cols, new, mask=m)
        tl.store(ACT + at + cols, act, mask=m)

    @triton.jit
    def _rnn_backward_step(
        DH, DOUT, ACT, KEEP, VALID, P, DA, DIRECT, H,
        RELU: tl.constexpr, HAS_DOUT: tl.constexpr, HAS_KEEP: tl.constexpr,
        BLEND: tl.constexpr, HAS_VALID: tl.constexpr, BLOCK: tl.constexpr,
    ):  # fmt: skip
        i = tl.program_id(0)
        cols = tl.arange(0, BLOCK)
        m = cols < H
        at = i * H
        dh, dhz = _incoming(DH, DOUT, at, cols, m, HAS_DOUT)
        g, kept = _zoneout_split(dhz, KEEP, P, at, cols, m, HAS_KEEP, BLEND)
        act = tl.load(ACT + at + cols, mask=m, other=0.0)
        da = tl.where(act > 0, g, 0.0) if RELU else g * (1.0 - act * act)
        direct = kept
        if HAS_VALID:
            inside = tl.load(VALID + i) != 0
            da = tl.where(inside, da, 0.0)
            direct = tl.where(inside, direct, dh)
        tl.store(DA + at + cols, da, mask=m)
        tl.store(DIRECT + at + cols, direct, mask=m)

    @triton.jit
    def _lstm_forward_step(
        GX, GH, BH, HP, CP, KEEP_H, KEEP_C, VALID, P, LNW, LNB, LNCW, LNCB,
        OUT, HN, CN, GATES, TC, XH, RH, XC, RC, H,
        HAS_BIAS: tl.constexpr, LN: tl.constexpr, HAS_KEEP: tl.constexpr,
        BLEND: tl.constexpr, HAS_VALID: tl.constexpr, BLOCK: tl.constexpr,
        PROJ: tl.constexpr = False,
    ):  # fmt: skip
        # PROJ: HN receives o tanh(c') before the projection (h's zoneout and lengths are
        # then _projected_step's, after the product with W_hr); OUT and HP are unused.
        i = tl.program_id(0)
        cols = tl.arange(0, BLOCK)
        m = cols < H
        at, row = i * H, i * 4 * H
        # The recurrent product of each gate; with layer norm it has no bias yet, and is
        # normalised over all 4H units (Ba et al. 2016) before b_h.
        v_i = tl.load(GH + row + cols, mask=m, other=0.0)
        v_f = tl.load(GH + row + H + cols, mask=m, other=0.0)
        v_g = tl.load(GH + row + 2 * H + cols, mask=m, other=0.0)
        v_o = tl.load(GH + row + 3 * H + cols, mask=m, other=0.0)
        if LN:
            n4 = 4 * H
            mean = (tl.sum(v_i, 0) + tl.sum(v_f, 0) + tl.sum(v_g, 0) + tl.sum(v_o, 0)) / n4
            d_i = tl.where(m, v_i - mean, 0.0)
            d_f = tl.where(m, v_f - mean, 0.0)
            d_g = tl.where(m, v_g - mean, 0.0)
            d_o = tl.where(m, v_o - mean, 0.0)
            var = tl.sum(d_i * d_i + d_f * d_f + d_g * d_g + d_o * d_o, 0) / n4
            rstd = 1.0 / tl.sqrt(var + 1e-5)
            tl.store(RH + i, rstd)
            d_i, d_f, d_g, d_o = d_i * rstd, d_f * rstd, d_g * rstd, d_o * rstd
            tl.store(XH + row + cols, d_i, mask=m)
            tl.store(XH + row + H + cols, d_f, mask=m)
            tl.store(XH + row + 2 * H + cols, d_g, mask=m)
            tl.store(XH + row + 3 * H + cols, d_o, mask=m)
            v_i = d_i * _load(LNW, cols, m) + _load(LNB, cols, m)
            v_f = d_f * _load(LNW + H, cols, m) + _load(LNB + H, cols, m)
            v_g = d_g * _load(LNW + 2 * H, cols, m) + _load(LNB + 2 * H, cols, m)
            v_o = d_o * _load(LNW + 3 * H, cols, m) + _load(LNB + 3 * H, cols, m)
            if HAS_BIAS:
                v_i += tl.load(BH + cols, mask=m, other=0.0)
                v_f += tl.load(BH + H + cols, mask=m, other=0.0)
                v_g += tl.load(BH + 2 * H + cols, mask=m, other=0.0)
                v_o += tl.load(BH + 3 * H + cols, mask=m, other=0.0)
        g_i = _sigmoid(tl.load(GX + row + cols, mask=m, other=0.0) + v_i)
        g_f = _sigmoid(tl.load(GX + row + H + cols, mask=m, other=0.0) + v_f)
        g_g = _tanh(tl.load(GX + row + 2 * H + cols, mask=m, other=0.0) + v_g)
        g_o = _sigmoid(tl.load(GX + row + 3 * H + cols, mask=m, other=0.0) + v_o)
        c = tl.load(CP + at + cols, mask=m, other=0.0)
        c_new = g_f * c + g_i * g_g
        c_out = c_new
        if LN:  # h' = o tanh(LN_c(c')); c' itself is what the next step reads
            xc, rc = _normalise(c_new, m, H)
            tl.store(XC + at + cols, xc, mask=m)
            tl.store(RC + i, rc)
            c_out = xc * _load(LNCW, cols, m) + _load(LNCB, cols, m)
        tc = _tanh(c_out)
        h_new = g_o * tc
        h = h_new  # (unused with PROJ: HP is P wide then)
        if not PROJ:
            h = tl.load(HP + at + cols, mask=m, other=0.0)
            h_new = _zoneout(h_new, h, KEEP_H, P, at, cols, m, HAS_KEEP, BLEND)
        c_new = _zoneout(c_new, c, KEEP_C, P, at, cols, m, HAS_KEEP, BLEND)
        out = h_new
        if HAS_VALID:
            inside = tl.load(VALID + i) != 0
            if not PROJ:
                h_new = tl.where(inside, h_new, h)
            c_new = tl.where(inside, c_new, c)
            out = tl.where(inside, out, 0.0)
        tl.store(GATES + row + cols, g_i, mask=m)
        tl.store(GATES + row + H + cols, g_f, mask=m)
        tl.store(GATES + row + 2 * H + cols, g_g, mask=m)
        tl.store(GATES + row + 3 * H + cols, g_o, mask=m)
        tl.store(TC + at + cols, tc, mask=m)
        if not PROJ:
            tl.store(OUT + at + cols, out, mask=m)
        tl.store(HN + at + cols, h_new, mask=m)
        tl.store(CN + at + cols, c_new, mask=m)

    @triton.jit
    def _projected_step(
        HQ, HP, KEEP, VALID, P, OUT, HN, R,
        HAS_KEEP: tl.constexpr, BLEND: tl.constexpr, HAS_VALID: tl.constexpr,
        BLOCK: tl.constexpr,
    ):  # fmt: skip
        """A projected LSTM's h^t from W_hr (o tanh c') = HQ: zoneout and lengths, R wide."""
        i = tl.program_id(0)
        cols = tl.arange(0, BLOCK)
        m = cols < R
        at = i * R
        h = tl.load(HP + at + cols, mask=m, other=0.0)
        new = _zoneout(tl.load(HQ + at + cols, mask=m, other=0.0), h, KEEP, P, at, cols, m,
                       HAS_KEEP, BLEND)  # fmt: skip
        new, out = _lengths(new, h, VALID, i, HAS_VALID)
        tl.store(OUT + at + cols, out, mask=m)
        tl.store(HN + at + cols, new, mask=m)

    @triton.jit
    def _projected_backward_step(
        DH, DOUT, KEEP, VALID, P, DHN, DIRECT, R,
        HAS_DOUT: tl.constexpr, HAS_KEEP: tl.constexpr, BLEND: tl.constexpr,
        HAS_VALID: tl.constexpr, BLOCK: tl.constexpr,
    ):  # fmt: skip
        """_projected_step's backward: zoneout's split of dh' into the share reaching
        W_hr (o tanh c') (DHN) and the share kept for h^{t-1} (DIRECT)."""
        i = tl.program_id(0)
        cols = tl.arange(0, BLOCK)
        m = cols < R
        at = i * R
        dh, dhz = _incoming(DH, DOUT, at, cols, m, HAS_DOUT)
        dhn, kept = _zoneout_split(dhz, KEEP, P, at, cols, m, HAS_KEEP, BLEND)
        if HAS_VALID:
            inside = tl.load(VALID + i) != 0
            dhn = tl.where(inside, dhn, 0.0)
            kept = tl.where(inside, kept, dh)
        tl.store(DHN + at + cols, dhn, mask=m)
        tl.store(DIRECT + at + cols, kept, mask=m)

    @triton.jit
    def _lstm_backward_step(
        DH, DC, DOUT, CP, GATES, TC, KEEP_H, KEEP_C, VALID, P, LNW, LNCW, XH, RH, XC, RC,
        DGX, DGH, DYC, DIRECT, H,
        HAS_DOUT: tl.constexpr, LN: tl.constexpr, HAS_KEEP: tl.constexpr,
        BLEND: tl.constexpr, HAS_VALID: tl.constexpr, BLOCK: tl.constexpr,
        PROJ: tl.constexpr = False,
    ):  # fmt: skip
        # PROJ: DH is the gradient reaching o tanh(c') (W_hr^T of the share that reached
        # the projected h, _projected_backward_step's): no split of it here, no DIRECT.
        # do = dh' tanh(c'); dc = dc' + dh' o (1 - tanh^2 c') (through LN_c with layer
        # norm); da = (dc g i(1-i), dc c f(1-f), dc i (1-g^2), do o(1-o)); dc_prev = dc f.
        i = tl.program_id(0)
        cols = tl.arange(0, BLOCK)
        m = cols < H
        at, row = i * H, i * 4 * H
        dh = tl.load(DH + at + cols, mask=m, other=0.0)
        dc_in = tl.load(DC + at + cols, mask=m, other=0.0)
        dhz = dh
        if HAS_DOUT:
            dhz += tl.load(DOUT + at + cols, mask=m, other=0.0)
        if PROJ:
            dhn, dh_keep = dhz, dhz * 0.0
        else:
            dhn, dh_keep = _zoneout_split(dhz, KEEP_H, P, at, cols, m, HAS_KEEP, BLEND)
        dcn, dc_keep = _zoneout_split(dc_in, KEEP_C, P, at, cols, m, HAS_KEEP, BLEND)
        g_i = tl.load(GATES + row + cols, mask=m, other=0.0)
        g_f = tl.load(GATES + row + H + cols, mask=m, other=0.0)
        g_g = tl.load(GATES + row + 2 * H + cols, mask=m, other=0.0)
        g_o = tl.load(GATES + row + 3 * H + cols, mask=m, other=0.0)
        tc = tl.load(TC + at + cols, mask=m, other=0.0)
        da_o = dhn * tc * g_o * (1.0 - g_o)
        dl = dhn * g_o * (1.0 - tc * tc)  # reaching tanh's argument
        inside = cols >= 0
        if HAS_VALID:
            inside = (tl.load(VALID + i) != 0) & inside
        if LN:  # through LN_c to c': dv = rstd (dx - mean dx - x^ mean(dx x^)), dx = dy w
            tl.store(DYC + at + cols, tl.where(inside, dl, 0.0), mask=m)
            xc = tl.load(XC + at + cols, mask=m, other=0.0)
            dx = dl * tl.load(LNCW + cols, mask=m, other=0.0)
            s1 = tl.sum(dx, 0) / H
            s2 = tl.sum(dx * xc, 0) / H
            dl = tl.load(RC + i) * (dx - s1 - xc * s2)
        d_c = dcn + dl
        da_i = d_c * g_g * g_i * (1.0 - g_i)
        da_f = d_c * tl.load(CP + at + cols, mask=m, other=0.0) * g_f * (1.0 - g_f)
        da_g = d_c * g_i * (1.0 - g_g * g_g)
        da_i = tl.where(inside, da_i, 0.0)
        da_f = tl.where(inside, da_f, 0.0)
        da_g = tl.where(inside, da_g, 0.0)
        da_o = tl.where(inside, da_o, 0.0)
        tl.store(DC + at + cols, tl.where(inside, dc_keep + d_c * g_f, dc_in), mask=m)
        if not PROJ:
            tl.store(DIRECT + at + cols, tl.where(inside, dh_keep, dh), mask=m)
        tl.store(DGX + row + cols, da_i, mask=m)
        tl.store(DGX + row + H + cols, da_f, mask=m)
        tl.store(DGX + row + 2 * H + cols, da_g, mask=m)
        tl.store(DGX + row + 3 * H + cols, da_o, mask=m)
        if LN:  # through LN_hh to the recurrent product W_h (m ∘ h)
            x_i = tl.load(XH + row + cols, mask=m, other=0.0)
            x_f = tl.load(XH + row + H + cols, mask=m, other=0.0)
            x_g = tl.load(XH + row + 2 * H + cols, mask=m, other=0.0)
            x_o = tl.load(XH + row + 3 * H + cols, mask=m, other=0.0)
            e_i = da_i * tl.load(LNW + cols, mask=m, other=0.0)
            e_f = da_f * tl.load(LNW + H + cols, mask=m, other=0.0)
            e_g = da_g * tl.load(LNW + 2 * H + cols, mask=m, other=0.0)
            e_o = da_o * tl.load(LNW + 3 * H + cols, mask=m, other=0.0)
            n4 = 4 * H
            s1 = (tl.sum(e_i, 0) + tl.sum(e_f, 0) + tl.sum(e_g, 0) + tl.sum(e_o, 0)) / n4
            s2 = tl.sum(e_i * x_i + e_f * x_f + e_g * x_g + e_o * x_o, 0) / n4
            r = tl.load(RH + i)
            da_i = r * (e_i - s1 - x_i * s2)
            da_f = r * (e_f - s1 - x_f * s2)
            da_g = r * (e_g - s1 - x_g * s2)
            da_o = r * (e_o - s1 - x_o * s2)
            tl.store(DGH + row + cols, da_i, mask=m)
            tl.store(DGH + row + H + cols, da_f, mask=m)
            tl.store(DGH + row + 2 * H + cols, da_g, mask=m)
            tl.store(DGH + row + 3 * H + cols, da_o, mask=m)

    @triton.jit
    def _scan_kernel(
        A, B, H0, OUT, T, N,
        GRADIENT: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_N: tl.constexpr,
    ):  # fmt: skip
        """h_t = a_t h_{t-1} + b_t over tiles of BLOCK_T steps, an associative scan in
        each tile and the state carried from tile to tile. GRADIENT: the backward's
        g_t = G_t + a_{t+1} g_{t+1}, from t = T - 1 down, with g_T = 0."""
        cols = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
        on = cols < N
        if GRADIENT:
            carry = tl.zeros([BLOCK_N], dtype=OUT.dtype.element_ty)
        else:
            carry = tl.load(H0 + cols, mask=on, other=0.0)
        for start in range(0, T, BLOCK_T):
            k = start + tl.arange(0, BLOCK_T)  # the k-th step in the scan's order
            t = T - 1 - k if GRADIENT else k
            m = (k < T)[:, None] & on[None, :]
            at = t[:, None] * N + cols[None, :]
            if GRADIENT:  # the coefficient of step t is a_{t+1} (none past the end)
                a_m = m & (t < T - 1)[:, None]
                a = tl.load(A + at + N, mask=a_m, other=0.0)
            else:
                a = tl.load(A + at, mask=m, other=1.0)
            b = tl.load(B + at, mask=m, other=0.0)
            pa, pb = tl.associative_scan((a, b), 0, _combine)
            h = pb + pa * carry[None, :]
            tl.store(OUT + at, h, mask=m)
            last = tl.minimum(T - start, BLOCK_T) - 1
            carry = tl.sum(tl.where((tl.arange(0, BLOCK_T) == last)[:, None], h, 0.0), 0)

    @triton.jit
    def _combine(a1, b1, a2, b2):
        # (a2, b2) after (a1, b1): h -> a2 (a1 h + b1) + b2
        return a1 * a2, b1 * a2 + b2


def _step_args(valid: Tensor | None, keep: Tensor | None, zoneout: float) -> dict[str, bool]:
    return {
        "HAS_KEEP": keep is not None,
        "BLEND": keep is None and zoneout > 0,
        "HAS_VALID": valid is not None,
    }


def _order(T: int, reverse: bool) -> range:
    return range(T - 1, -1, -1) if reverse else range(T)


def _recurrent(
    d: Tensor, W: Tensor, direct: Tensor, mask: Tensor | None, zero: Tensor | None, t: int
) -> Tensor:
    """dh^{t-1} = direct + m ∘ (W_h^T dgh), zero where the state was reset before step t."""
    back = torch.mm(d, W)
    dh = direct + back if mask is None else torch.addcmul(direct, mask, back)
    if zero is not None:
        dh.masked_fill_(zero[t][:, None], 0.0)
    return dh


def gru_forward(
    gx: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor | None, valid: Tensor | None,
    zero: Tensor | None, reverse: bool, mask: Tensor | None, keep: Tensor | None,
    zoneout: float,
) -> tuple[Tensor, ...]:  # fmt: skip
    gx = gx.contiguous()
    T, B, H = gx.size(0), gx.size(1), h0.size(1)
    Wt = w_hh.t().contiguous()
    out, h_prev = gx.new_empty(T, B, H), gx.new_empty(T, B, H)
    r, z, n, ghn = (gx.new_empty(T, B, H) for _ in range(4))
    h, gh, P = h0.contiguous().clone(), gx.new_empty(B, 3 * H), _param(zoneout, gx)
    flags = _step_args(valid, keep, zoneout)
    for t in _order(T, reverse):
        if zero is not None:
            h.masked_fill_(zero[t][:, None], 0.0)
        h_prev[t].copy_(h)
        hin = h if mask is None else h * mask
        torch.mm(hin, Wt, out=gh) if b_hh is None else torch.addmm(b_hh, hin, Wt, out=gh)
        _gru_forward_step[(B,)](
            gx[t], gh, h_prev[t], gx if keep is None else keep[t],
            gx if valid is None else valid[t], P, out[t], h, r[t], z[t], n[t], ghn[t], H,
            BLOCK=_block(H), **flags,
        )  # fmt: skip
    return out, h, h_prev, r, z, n, ghn


def gru_backward(
    d_out: Tensor | None, d_h: Tensor | None, w_hh: Tensor, h_prev: Tensor, r: Tensor,
    z: Tensor, n: Tensor, ghn: Tensor, valid: Tensor | None, zero: Tensor | None,
    reverse: bool, mask: Tensor | None, keep: Tensor | None, zoneout: float,
) -> tuple[Tensor, ...]:  # fmt: skip
    T, B, H = r.shape
    W = w_hh.contiguous()
    dout = None if d_out is None else d_out.contiguous()
    dh = r.new_zeros(B, H) if d_h is None else d_h.contiguous().clone()
    dgx, dgh = r.new_empty(T, B, 3 * H), r.new_empty(T, B, 3 * H)
    direct, P = r.new_empty(B, H), _param(zoneout, r)
    flags = _step_args(valid, keep, zoneout)
    for t in _order(T, not reverse):
        _gru_backward_step[(B,)](
            dh, r if dout is None else dout[t], h_prev[t], r[t], z[t], n[t], ghn[t],
            r if keep is None else keep[t], r if valid is None else valid[t], P,
            dgx[t], dgh[t], direct, H, HAS_DOUT=dout is not None, BLOCK=_block(H), **flags,
        )  # fmt: skip
        dh = _recurrent(dgh[t], W, direct, mask, zero, t)
    return (dgx, dh, *_weight_gradients(dgh, dgh, h_prev, mask))


def _weight_gradients(
    dgh: Tensor, dgates: Tensor, h_prev: Tensor, mask: Tensor | None
) -> tuple[Tensor, Tensor]:
    """dW_h = sum_t dgh_t^T (m ∘ h^{t-1}) and db_h = sum_t dgates_t: one product over all T."""
    T, B, G = dgh.shape
    hin = h_prev if mask is None else h_prev * mask
    dw = torch.mm(dgh.reshape(T * B, G).t(), hin.reshape(T * B, -1))
    return dw, dgates.reshape(T * B, G).sum(0)


def rnn_forward(
    gx: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor | None, valid: Tensor | None,
    zero: Tensor | None, reverse: bool, mask: Tensor | None, keep: Tensor | None,
    zoneout: float, relu: bool,
) -> tuple[Tensor, ...]:  # fmt: skip
    gx = gx.contiguous()
    T, B, H = gx.size(0), gx.size(1), h0.size(1)
    Wt = w_hh.t().contiguous()
    out, h_prev, act = (gx.new_empty(T, B, H) for _ in range(3))
    h, gh, P = h0.contiguous().clone(), gx.new_empty(B, H), _param(zoneout, gx)
    flags = _step_args(valid, keep, zoneout)
    for t in _order(T, reverse):
        if zero is not None:
            h.masked_fill_(zero[t][:, None], 0.0)
        h_prev[t].copy_(h)
        hin = h if mask is None else h * mask
        torch.mm(hin, Wt, out=gh) if b_hh is None else torch.addmm(b_hh, hin, Wt, out=gh)
        _rnn_forward_step[(B,)](
            gx[t], gh, h_prev[t], gx if keep is None else keep[t],
            gx if valid is None else valid[t], P, out[t], h, act[t], H,
            RELU=relu, BLOCK=_block(H), **flags,
        )  # fmt: skip
    return out, h, h_prev, act


def rnn_backward(
    d_out: Tensor | None, d_h: Tensor | None, w_hh: Tensor, h_prev: Tensor, act: Tensor,
    valid: Tensor | None, zero: Tensor | None, reverse: bool, mask: Tensor | None,
    keep: Tensor | None, zoneout: float, relu: bool,
) -> tuple[Tensor, ...]:  # fmt: skip
    T, B, H = act.shape
    W = w_hh.contiguous()
    dout = None if d_out is None else d_out.contiguous()
    dh = act.new_zeros(B, H) if d_h is None else d_h.contiguous().clone()
    dgx, direct, P = act.new_empty(T, B, H), act.new_empty(B, H), _param(zoneout, act)
    flags = _step_args(valid, keep, zoneout)
    for t in _order(T, not reverse):
        _rnn_backward_step[(B,)](
            dh, act if dout is None else dout[t], act[t], act if keep is None else keep[t],
            act if valid is None else valid[t], P, dgx[t], direct, H,
            RELU=relu, HAS_DOUT=dout is not None, BLOCK=_block(H), **flags,
        )  # fmt: skip
        dh = _recurrent(dgx[t], W, direct, mask, zero, t)
    return (dgx, dh, *_weight_gradients(dgx, dgx, h_prev, mask))


def lstm_forward(
    gx: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, b_hh: Tensor | None,
    mask: Tensor | None, keep_h: Tensor | None, keep_c: Tensor | None, zoneout: float,
    valid: Tensor | None, zero: Tensor | None, reverse: bool, ln_hh_w: Tensor | None,
    ln_hh_b: Tensor | None, ln_c_w: Tensor | None, ln_c_b: Tensor | None,
    w_hr: Tensor | None = None,
) -> tuple[Tensor, ...]:  # fmt: skip
    gx = gx.contiguous()
    # With a projection (w_hr (P, H)) h is R = P wide and W_hr (o tanh c') per step.
    T, B, H, R = gx.size(0), gx.size(1), c0.size(1), h0.size(1)
    ln, proj = ln_hh_w is not None, w_hr is not None
    Wt = w_hh.t().contiguous()
    out, h_prev = gx.new_empty(T, B, R), gx.new_empty(T, B, R)
    c_prev, tc = gx.new_empty(T, B, H), gx.new_empty(T, B, H)
    gates = gx.new_empty(T, B, 4 * H)
    empty = gx.new_empty(0)
    hpre = gx.new_empty(T, B, H) if proj else empty  # o tanh(c'), before W_hr
    Wr_t = w_hr.t().contiguous() if w_hr is not None else empty
    hq = gx.new_empty(B, R)
    xh, rh = (gx.new_empty(T, B, 4 * H), gx.new_empty(T, B)) if ln else (empty, empty)
    xc, rc = (gx.new_empty(T, B, H), gx.new_empty(T, B)) if ln else (empty, empty)
    h, c = h0.contiguous().clone(), c0.contiguous().clone()
    gh, P = gx.new_empty(B, 4 * H), _param(zoneout, gx)
    flags = _step_args(valid, keep_h, zoneout)
    for t in _order(T, reverse):
        if zero is not None:
            h.masked_fill_(zero[t][:, None], 0.0)
            c.masked_fill_(zero[t][:, None], 0.0)
        h_prev[t].copy_(h)
        c_prev[t].copy_(c)
        hin = h if mask is None else h * mask
        if ln or b_hh is None:
            torch.mm(hin, Wt, out=gh)
        else:
            torch.addmm(b_hh, hin, Wt, out=gh)
        _lstm_forward_step[(B,)](
            gx[t], gh, _opt(b_hh, gx), h_prev[t], c_prev[t],
            gx if keep_h is None else keep_h[t], gx if keep_c is None else keep_c[t],
            gx if valid is None else valid[t], P,
            _opt(ln_hh_w, gx), _opt(ln_hh_b, gx), _opt(ln_c_w, gx), _opt(ln_c_b, gx),
            out[t], hpre[t] if proj else h, c, gates[t], tc[t],
            xh[t] if ln else gx, rh[t] if ln else gx, xc[t] if ln else gx, rc[t] if ln else gx,
            H, HAS_BIAS=b_hh is not None, LN=ln, BLOCK=_block(H), PROJ=proj, **flags,
        )  # fmt: skip
        if proj:  # h = W_hr (o tanh c'), then its zoneout and lengths
            torch.mm(hpre[t], Wr_t, out=hq)
            _projected_step[(B,)](
                hq, h_prev[t], gx if keep_h is None else keep_h[t],
                gx if valid is None else valid[t], P, out[t], h, R,
                BLOCK=_block(R), **flags,
            )  # fmt: skip
    return out, h, c, h_prev, c_prev, gates, tc, xh, rh, xc, rc, hpre


def lstm_backward(
    d_out: Tensor | None, d_h: Tensor | None, d_c: Tensor | None, w_hh: Tensor,
    h_prev: Tensor, c_prev: Tensor, gates: Tensor, tc: Tensor, mask: Tensor | None,
    keep_h: Tensor | None, keep_c: Tensor | None, zoneout: float, valid: Tensor | None,
    zero: Tensor | None, reverse: bool, ln_hh_w: Tensor | None, ln_c_w: Tensor | None,
    xh: Tensor | None, rh: Tensor | None, xc: Tensor | None, rc: Tensor | None,
    w_hr: Tensor | None = None, hpre: Tensor | None = None,
) -> tuple[Tensor, ...]:  # fmt: skip
    T, B, H = tc.shape
    R = h_prev.size(2)  # P with a projection
    ln, proj = ln_hh_w is not None, w_hr is not None
    W = w_hh.contiguous()
    dout = None if d_out is None else d_out.contiguous()
    dh = tc.new_zeros(B, R) if d_h is None else d_h.contiguous().clone()
    dc = tc.new_zeros(B, H) if d_c is None else d_c.contiguous().clone()
    # With a projection: the share of dh' reaching W_hr (o tanh c') per step, and its
    # image through W_hr, the gradient reaching o tanh c'.
    dhn = tc.new_empty(T, B, R) if proj else tc
    dq = tc.new_empty(B, H) if proj else tc
    # The layer-norm intermediates of lstm_forward; without layer norm tc stands in, unread.
    xh_, rh_, xc_, rc_ = (
        (_given(xh), _given(rh), _given(xc), _given(rc)) if ln else (tc, tc, tc, tc)
    )
    # With layer norm the gates' gradient (dgx, and b_h's) differs from the recurrent
    # product's (dgh, before LN_hh); without, they are one tensor.
    dgh = tc.new_empty(T, B, 4 * H)
    dgx = tc.new_empty(T, B, 4 * H) if ln else dgh
    dyc = tc.new_empty(T, B, H) if ln else tc  # the gradient reaching LN_c's output
    direct, P = tc.new_empty(B, R), _param(zoneout, tc)
    flags = _step_args(valid, keep_h, zoneout)
    for t in _order(T, not reverse):
        if proj:
            _projected_backward_step[(B,)](
                dh, tc if dout is None else dout[t], tc if keep_h is None else keep_h[t],
                tc if valid is None else valid[t], P, dhn[t], direct, R,
                HAS_DOUT=dout is not None, BLOCK=_block(R), **flags,
            )  # fmt: skip
            torch.mm(dhn[t], _given(w_hr), out=dq)
        _lstm_backward_step[(B,)](
            dq if proj else dh, dc, tc if dout is None or proj else dout[t], c_prev[t],
            gates[t], tc[t],
            tc if keep_h is None else keep_h[t], tc if keep_c is None else keep_c[t],
            tc if valid is None else valid[t], P, _opt(ln_hh_w, tc), _opt(ln_c_w, tc),
            xh_[t] if ln else tc, rh_[t] if ln else tc, xc_[t] if ln else tc,
            rc_[t] if ln else tc, dgx[t], dgh[t], dyc[t] if ln else tc, direct, H,
            HAS_DOUT=dout is not None and not proj, LN=ln, BLOCK=_block(H), PROJ=proj,
            **flags,
        )  # fmt: skip
        dh = _recurrent(dgh[t], W, direct, mask, zero, t)
        if zero is not None:
            dc.masked_fill_(zero[t][:, None], 0.0)
    dw, db = _weight_gradients(dgh, dgx, h_prev, mask)
    empty = tc.new_empty(0)
    # dW_hr = sum_t (share reaching W_hr (o tanh c'))^T (o tanh c'): one product
    dw_hr = torch.mm(dhn.reshape(T * B, R).t(), _given(hpre).reshape(T * B, H)) if proj else empty
    if not ln:
        return dgx, dh, dc, dw, db, empty, empty, empty, empty, dw_hr
    # LN's weights: dw = sum dy x^, db = sum dy; LN_hh's dy is the gates' gradient.
    d_ln_hh_w = (dgx * xh_).sum((0, 1))
    d_ln_c_w, d_ln_c_b = (dyc * xc_).sum((0, 1)), dyc.sum((0, 1))
    return dgx, dh, dc, dw, db, d_ln_hh_w, db.clone(), d_ln_c_w, d_ln_c_b, dw_hr


@functools.cache
def _scan_blocks(n: int) -> tuple[int, int]:
    return 32, min(64, _block(n))


def scan_forward(a: Tensor, b: Tensor, h0: Tensor, out: Tensor | None = None) -> Tensor:
    """h_t = a_t ∘ h_{t-1} + b_t for a, b (T, N), h0 (N,), into ``out`` (contiguous, may be
    ``b`` itself: each tile is read whole before it is written): as
    :func:`rnnkit.kernels.scan.scan_forward`."""
    a, b, h0 = a.contiguous(), b.contiguous(), h0.contiguous()
    T, N = b.shape
    if out is None:
        out = torch.empty_like(b, memory_format=torch.contiguous_format)
    bt, bn = _scan_blocks(N)
    _scan_kernel[(triton.cdiv(N, bn),)](a, b, h0, out, T, N, GRADIENT=False, BLOCK_T=bt, BLOCK_N=bn)
    return out


def scan_gradient(a: Tensor, grad_h: Tensor) -> Tensor:
    """g_t = G_t + a_{t+1} ∘ g_{t+1} (g_{T-1} = G_{T-1}), the scan's backward."""
    a, grad_h = a.contiguous(), grad_h.contiguous()
    T, N = grad_h.shape
    out = torch.empty_like(grad_h, memory_format=torch.contiguous_format)
    bt, bn = _scan_blocks(N)
    _scan_kernel[(triton.cdiv(N, bn),)](
        a, grad_h, grad_h, out, T, N, GRADIENT=True, BLOCK_T=bt, BLOCK_N=bn
    )
    return out


__all__: list[Any] = [
    "available", "gru_backward", "gru_forward", "lstm_backward", "lstm_forward",
    "rnn_backward", "rnn_forward", "scan_forward", "scan_gradient",
]  # fmt: skip
