"""Where a fused layer's training step spends its time, against torch.nn.LSTM's whole step.

The fused backend (rnnkit.kernels.fused) does, per direction: one GEMM for the input
projection over all T steps, T recurrent products with W_h in its C++ loop and the gate
math between them; backward, T products with W_h^T, then the weight and input gradients
as GEMMs over all steps. This script times each product on its own with the same shapes
(oneDNN's GEMM or torch.mm's, as rnnkit.kernels.gemm routes them), the whole fused step,
and torch.nn.LSTM's step, interleaved in one run, and prints every part as a share of the
fused step and as a ratio to torch.nn.LSTM; what the products do not account for is the
loop's own work (the gate math, the layer norms, zoneout's masks, copies, autograd glue).

    python benchmarks/fused_profile.py --threads 1
    python benchmarks/fused_profile.py --variant gru --shapes 256,8,128
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import _args
import rnnkit
from _timing import interleaved_medians, machine
from rnnkit.kernels import gemm

# fused_cpu.cpp's kSmallProduct: per-step products up to this many multiply-adds run in
# the loop's own code (a call from Python would cost more than the product itself).
SMALL_PRODUCT = 1 << 15

VARIANTS: dict[str, tuple[type[rnnkit.LSTM] | type[rnnkit.GRU], int, dict[str, Any]]] = {
    "lstm-zoneout": (rnnkit.LSTM, 4, {"zoneout": 0.1}),
    "lstm-layer-norm": (rnnkit.LSTM, 4, {"layer_norm": True}),
    "lstm-recurrent-dropout": (rnnkit.LSTM, 4, {"recurrent_dropout": 0.25}),
    "gru": (rnnkit.GRU, 3, {}),
    "gru-zoneout": (rnnkit.GRU, 3, {"zoneout": 0.1}),
}


def step(module: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        out, _ = module(x)
        out.sum().backward()

    return run


def parts(T: int, B: int, H: int, G: int) -> dict[str, Callable[[], None]]:
    """The fused step's matrix products alone, each with the shapes and on the path the
    backend takes (oneDNN's GEMM where rnnkit.kernels.gemm.pays, else torch.mm's)."""
    x, W_ih, b = torch.randn(T * B, H), torch.randn(G * H, H), torch.randn(G * H)
    h, W_hh = torch.randn(B, H), torch.randn(G * H, H)
    d, W_hh_t = torch.randn(B, G * H), W_hh.t().contiguous()
    dg_all = torch.randn(T * B, G * H)

    def projection() -> None:  # gx = x W_ih^T + b over all steps
        gemm.linear(x, W_ih, b)

    def recurrent_forward() -> None:  # T x (gh = h W_h^T + b_h)
        for _ in range(T):
            gemm.linear(h, W_hh, b)

    def recurrent_backward() -> None:  # T x (dh = dgh W_h)
        for _ in range(T):
            gemm.linear(d, W_hh_t)

    def weight_and_input_gradients() -> None:  # dW_h, dW_ih, dx: three GEMMs over all steps
        gemm.gradient(dg_all, x)
        gemm.gradient(dg_all, x)
        gemm.linear(dg_all, W_ih.t())

    timed = {
        "input projection (1 GEMM)": projection,
        "recurrent products, forward (T mm)": recurrent_forward,
        "recurrent products, backward (T mm)": recurrent_backward,
        "weight and input gradients (3 GEMMs)": weight_and_input_gradients,
    }
    if B * H * G * H <= SMALL_PRODUCT:  # the loop's own code: no call to time from here
        del timed["recurrent products, forward (T mm)"]
        del timed["recurrent products, backward (T mm)"]
    return timed


def shapes(text: str) -> list[tuple[int, ...]]:
    """--shapes: "T,B,H;T,B,H;...", each a positive integer."""
    out = []
    for shape in text.split(";"):
        parts = shape.split(",")
        if len(parts) != 3:
            raise argparse.ArgumentTypeError(f"expected T,B,H;T,B,H;...; got {text!r}")
        try:
            out.append(tuple(_args.positive_int(v.strip()) for v in parts))
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentTypeError(f"{e} (in {text!r})") from None
    return out


def main() -> None:
    ap = _args.parser(__doc__.splitlines()[0])
    ap.add_argument("--variant", choices=sorted(VARIANTS), default="lstm-zoneout")
    ap.add_argument("--shapes", type=shapes, default="100,64,512;256,8,128;1000,1,64",
                    help="T,B,H;...")  # fmt: skip
    ap.add_argument("--repeats", type=_args.positive_int, default=7)
    ap.add_argument("--threads", type=_args.threads, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", rnnkit.PerformanceWarning)
    torch.manual_seed(0)
    cls, G, options = VARIANTS[args.variant]
    print(f"machine: {machine()}")
    print(f"variant: {args.variant} (rnnkit.{cls.__name__}, {options or 'no options'})")
    for T, B, H in args.shapes:
        x = torch.randn(T, B, H)
        lstm = nn.LSTM(H, H)
        layer = cls(H, H, **options)
        chosen = layer.backend_for(x).name
        fns = {"torch.nn.LSTM step": step(lstm, x), "fused step": step(layer, x)}
        fns.update(parts(T, B, H, G))
        times = interleaved_medians(fns, repeats=args.repeats)
        base, total = times["torch.nn.LSTM step"], times["fused step"]
        products = sum(v for k, v in times.items() if k not in ("torch.nn.LSTM step", "fused step"))
        print(f"\nT, B, I=H = {T}, {B}, {H}  [backend: {chosen}]")
        print(f"  {'part':40s} {'ms':>8s} {'share':>6s} {'/ LSTM':>7s}")
        rows = [(k, v) for k, v in times.items() if k != "torch.nn.LSTM step"]
        rest = "rest: the loop's gate math and glue"
        if "recurrent products, forward (T mm)" not in times:
            rest = "rest: the loop (gates, its own products)"
        rows.append((rest, total - products))
        for name, t in rows:
            print(f"  {name:40s} {t * 1e3:8.2f} {t / total:6.0%} {t / base:7.2f}")
        name = "torch.nn.LSTM step (oneDNN)"
        print(f"  {name:40s} {base * 1e3:8.2f} {base / total:6.0%} {1:7.2f}")


if __name__ == "__main__":
    main()
