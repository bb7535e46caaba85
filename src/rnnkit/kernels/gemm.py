"""Large float32 matrix products on the CPU through oneDNN, where that is the faster.

torch runs ``F.linear`` and ``torch.mm`` on the CPU through its BLAS (MKL in the x86
wheels), and its fused LSTM through oneDNN. Which GEMM is the faster depends on the CPU
(docs/layers.md, "The GRU's fused kernel", has the measurements): on an AMD EPYC
oneDNN's is 1.5-2.4 times MKL's at the products of a training step from 2^20
multiply-adds up; on an Intel Xeon (Sapphire Rapids) MKL's is the faster, by 1.2-2 times
at the per-step products of a batch of 8-64 rows and level at the large ones. So the
fused backend (:mod:`rnnkit.backends.fused`) routes its large float32 products to oneDNN
on AMD CPUs (:func:`enabled`): the input projection and its gradients here, the per-step
recurrent products and dW_h in ``fused_cpu.cpp``; the scan backend (minGRU, minLSTM) its
projections. Everywhere else, and for smaller products, float64, autocast, torch.compile
and torch builds without oneDNN, torch's own path. ``RNNKIT_ONEDNN=1`` routes them to
oneDNN on any CPU, ``RNNKIT_ONEDNN=0`` on none.

oneDNN's product is ``mkldnn::_linear_pointwise`` (y = x w^T + b), an operator of torch's
own oneDNN integration (inductor's CPU backend emits it for linear layers); it has no
gradient of its own, so :func:`linear` writes one, with the same operator.
"""

from __future__ import annotations

import functools
import os
import platform
from typing import Any

import torch
from torch import Tensor

# From this many multiply-adds oneDNN's product is faster than MKL's on an AMD CPU; below,
# the call costs more than it saves (fused_cpu.cpp's kOneDNNProduct is the same).
MIN_MACS = 1 << 20


@functools.cache
def _operator() -> Any:
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._linear_pointwise.default
    except (AttributeError, RuntimeError):  # a build without the operator
        return None


@functools.cache
def cpu_vendor() -> str:
    """The CPU's vendor string as the CPU reports it ("AuthenticAMD", "GenuineIntel"), or
    "" where it cannot be read: Linux's /proc/cpuinfo, else what Python's platform module
    gives (Windows names the vendor there)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    name = platform.processor()
    return next((v for v in ("AuthenticAMD", "GenuineIntel") if v in name), "")


def enabled() -> bool:
    """Whether large float32 products go to oneDNN: ``RNNKIT_ONEDNN`` "1" or "0" if set,
    else on AMD CPUs only, where oneDNN's GEMM was measured the faster (module docstring)."""
    setting = os.environ.get("RNNKIT_ONEDNN", "")
    if setting == "0" or _operator() is None:
        return False
    return setting == "1" or cpu_vendor() == "AuthenticAMD"


def pays(x: Tensor, macs: int) -> bool:
    """Whether a product of ``macs`` multiply-adds on ``x``'s data goes to oneDNN."""
    return (
        macs >= MIN_MACS
        and x.dtype == torch.float32
        and x.device.type == "cpu"
        and enabled()
        # torch's own path where autocast casts F.linear, or torch.compile traces it
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
        # and where torch.jit.trace records the call: the choice by size would be kept for
        # the example's, and oneDNN's product has no gradient formula
        and not torch.jit.is_tracing()
    )


def _product(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """x (M, K) w^T (K, N) + b, 2-D, through oneDNN."""
    return _operator()(x, w, b, "none", [], None)


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, w)
        ctx.has_bias = b is not None
        return _product(x, w, b)

    @staticmethod
    def backward(ctx: Any, dy: Tensor) -> tuple[Tensor | None, ...]:
        x, w = ctx.saved_tensors
        # dx = dy w, dw = dy^T x, db = the sum of dy over rows; each product through
        # linear() again, so that a double backward differentiates them too.
        dx = linear(dy, w.t()) if ctx.needs_input_grad[0] else None
        dw = gradient(dy, x) if ctx.needs_input_grad[1] else None
        db = dy.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dx, dw, db


def gradient(a: Tensor, b: Tensor) -> Tensor:
    """a^T b for a (M, P), b (M, Q): a weight's gradient, summed over M rows. oneDNN copies
    the first operand of its product to rows and takes the second as it is, so the
    narrower of the two goes first (fused_cpu.cpp's gradient_mm, the same rule)."""
    if a.size(1) <= b.size(1):
        return linear(a.t(), b.t())
    return linear(b.t(), a.t()).t().contiguous()


def linear(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """``F.linear(x, w, b)``, through oneDNN where that :func:`pays`."""
    M = x.numel() // max(x.size(-1), 1)
    if not pays(x, M * w.size(0) * w.size(1)) or w.dtype != x.dtype:
        return torch.nn.functional.linear(x, w, b)
    flat = x.reshape(M, x.size(-1))
    return _Linear.apply(flat, w, b).view(*x.shape[:-1], w.size(0))
