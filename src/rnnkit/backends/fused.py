"""The fused backend: each direction's step loop in C++ (on CUDA: a Triton kernel per
step), the backward written out.

Where torch has no fused kernel on the CPU: the GRU (torch's own runs its step loop
through autograd, 3-20 times its LSTM's time at small batch), and every cell with the
options torch lacks - zoneout and recurrent dropout, the LSTM's layer norm - and with
per-sample resets, which otherwise run on the reference loop. The input projection of
every direction stays one GEMM over all T steps (``cell.project``) and the recurrence
runs in :mod:`rnnkit.kernels.fused`, with lengths and resets as masks; stacking,
directions and dropout between layers are :func:`rnnkit.backends.stack.run_stack`'s, as
for the reference backend. Zoneout's training masks are drawn for all steps up front
(``cell.sample_zoneout``, as under ``torch.compile``), the recurrent-dropout mask once
per sequence as the reference does.

On CUDA (:mod:`rnnkit.kernels.fused_cuda`, where Triton is installed) it runs the options
and resets that cuDNN lacks; the plain GRU stays on cuDNN, which is fused there.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnkit._checks import ShapeError
from rnnkit.backends.plan import Plan, Weights
from rnnkit.backends.stack import masks, run_stack, without_padding
from rnnkit.cells.base import Params, State
from rnnkit.kernels import fused, gemm

KINDS = ("GRU", "LSTM", "RNN_TANH", "RNN_RELU")
DTYPES = (torch.float32, torch.float64)
# Where the fused GRU is faster than torch's, which runs its step loop through autograd on
# the CPU and its products on its BLAS (MKL). Training step, fused / torch.nn.GRU at
# T = 100 (I = H), B x H, 2 threads: on an Intel Xeon (products on MKL) 1 x 1024 0.42,
# 8 x 1024 0.63, 32 x 1024 0.90, 64 x 512 1.00, 64 x 128 0.75, 128 x 128 0.84; but
# 128 x 256 1.11, 256 x 128 1.08, 256 x 256 1.20 (5 December 2026); on an AMD EPYC
# (products on oneDNN) 8 x 2048 0.18, 32 x 1024 0.57, 64 x 512 0.72, 128 x 128 0.81; but
# 128 x 256 1.00, 256 x 64 1.18, 256 x 256 1.21 (3 December 2026). So at batches up to 64
# whatever the width, and up to 128 for at most 16,384 units per step.
MAX_BATCH, MAX_UNITS = 64, 16384
# Without autograd torch's GRU records no graph, which is most of what the fused kernel
# saves it, so where torch's products run on the faster BLAS (MKL on Intel) the fused
# kernel wins at small steps alone. Inference, fused / torch.nn.GRU at T = 100 on the
# Intel Xeon, full and ragged batches: 1 x 256 0.70-0.77, 4 x 256 0.91-0.93, 16 x 128
# 0.85-0.86, 32 x 64 0.84-0.95; but 8 x 256 1.04-1.07, 32 x 128 1.05-1.10, 64 x 64
# 0.98-1.04, 64 x 256 1.17-1.20, 1 x 512 1.14. On the AMD EPYC, whose products go to
# oneDNN, the training rule held for inference too (64 x 512 0.58, 8 x 128 0.61, 1 x 64
# 0.11 at one thread).
MAX_INFERENCE_UNITS = 2048


def faster_than_torchs_gru(
    batch: int, hidden: int, grad: bool = True, onednn: bool | None = None
) -> str | None:
    """Why the fused GRU is the faster on the CPU for this batch and width, or None.

    ``grad``: whether autograd records the call (``torch.is_grad_enabled()``); ``onednn``:
    whether the fused kernel's large products go to oneDNN (default:
    :func:`rnnkit.kernels.gemm.enabled`, which decides by the CPU)."""
    if grad or (gemm.enabled() if onednn is None else onednn):
        if 0 < batch <= MAX_BATCH:
            return f"B = {batch} <= {MAX_BATCH}: faster than torch's"
        if 0 < batch <= 2 * MAX_BATCH and batch * hidden <= MAX_UNITS:
            return f"B x H = {batch * hidden} <= {MAX_UNITS}: faster than torch's"
        return None
    if batch > 0 and hidden <= 128 and batch * hidden <= MAX_INFERENCE_UNITS:
        return (
            f"B x H = {batch * hidden} <= {MAX_INFERENCE_UNITS}, H <= 128, without autograd: "
            "faster than torch's"
        )
    if 0 < batch <= 4 and hidden <= 256:
        return f"B = {batch} <= 4, H <= 256, without autograd: faster than torch's"
    return None


def supports(plan: Plan, x: Tensor | None) -> str | None:
    """None if the fused kernels can run this call exactly, else the reason they can't."""
    if plan.kind not in KINDS:
        return f"rnnkit's fused kernels have no {plan.kind}"
    device = "cpu" if x is None else x.device.type  # every option of every cell has its kernel
    if x is not None and (device not in ("cpu", "cuda") or x.dtype not in DTYPES):
        return (
            "rnnkit's fused kernels run float32 and float64 on the CPU and on CUDA; got "
            f"{x.dtype} on {device}"
        )
    if torch.compiler.is_compiling():
        return "under torch.compile (its graph takes torch's kernel as one operator)"
    if torch.is_autocast_enabled(device):
        return "under autocast (torch's kernel casts as torch.nn does)"
    if not fused.enabled():
        return "turned off by RNNKIT_FUSED=0"
    if device == "cuda":
        from rnnkit.kernels import fused_cuda  # imports Triton: only for CUDA tensors

        if not fused_cuda.available():
            return "rnnkit's CUDA kernels need Triton, which is not installed"
    elif not fused.available():
        return "rnnkit's fused kernels could not be built here"
    return None


def check_shapes(plan: Plan, k: int, d: int, p: Params) -> None:
    """Refuse a weight of another shape than the cell's (ShapeError, a RuntimeError as
    torch's).

    The kernels index the recurrent weights by the sizes the cell expects and check
    nothing themselves, so a weight swapped for one of another shape (by assignment,
    ``functional_call`` or a parametrization) would be read, and written, out of bounds.
    """
    for name, shape in plan.cells[k].parameter_shapes().items():
        weight = p.get(name)
        if weight is not None and tuple(weight.shape) != shape:
            full = f"{name}_l{k}{'_reverse' if d else ''}"
            raise ShapeError(
                f"{plan.owner}: {full} must have shape {shape}; got {tuple(weight.shape)}"
            )


def run(
    plan: Plan,
    weights: Weights,
    x: Tensor,
    state: State,
    lengths: Tensor | None,
    reset: Tensor | None,
) -> tuple[Tensor, State]:
    """Run the whole stack on x (T, B, I); state is a tuple of (L*D, B, H) tensors."""
    m = masks(x, lengths, reset)
    x = without_padding(x, m.valid)

    def direction(k: int, d: int, inp: Tensor, s0: State) -> tuple[Tensor, State]:
        cell, p = plan.cells[k], weights[k][d]
        check_shapes(plan, k, d, p)
        gx = cell.project(p, inp, gemm.linear)  # (T, B, G*H): every gate's input half, 1 GEMM
        zero = m.zero_rev if d else m.zero_fwd
        mask = cell.sample_recurrent_mask(x.size(1), inp)
        keep = cell.sample_zoneout(x.size(0), s0)
        if plan.kind == "GRU":
            out, h = fused.gru(
                gx, s0[0], p["weight_hh"], p.get("bias_hh"), m.valid, zero, bool(d), mask,
                None if keep is None else keep[0], cell.zoneout,
            )  # fmt: skip
            return out, (h,)
        if plan.kind in ("RNN_TANH", "RNN_RELU"):
            out, h = fused.rnn(
                gx, s0[0], p["weight_hh"], p.get("bias_hh"), m.valid, zero, bool(d), mask,
                None if keep is None else keep[0], cell.zoneout, plan.kind == "RNN_RELU",
            )  # fmt: skip
            return out, (h,)
        ln = (
            (p["ln_hh_weight"], p["ln_hh_bias"], p["ln_c_weight"], p["ln_c_bias"])
            if cell.layer_norm
            else None
        )
        out, h, c = fused.lstm(
            gx, s0[0], s0[1], p["weight_hh"], p.get("bias_hh"), mask,
            None if keep is None else (keep[0], keep[1]), cell.zoneout, m.valid, zero, bool(d),
            ln, p.get("weight_hr"),
        )  # fmt: skip
        return out, (h, c)

    return run_stack(plan, x, state, direction)
