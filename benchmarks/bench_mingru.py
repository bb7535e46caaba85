"""MinGRU's scan against torch.nn.GRU: a training step (forward + backward), CPU or GPU.

torch.nn.LSTM and rnnkit.GRU (on its fused kernel at these sizes) are timed in the same
rounds too, and the MinGRU's speed-up over each printed beside.

Both are timed in the same run, interleaved, after a warm-up; the script prints the
median times, the speed-up, peak memory of each (measured in a fresh subprocess each, as
the growth of the process's peak resident memory over the set-up), and the fraction of
the machine's matrix-multiply peak that the MinGRU step reaches (its GEMM FLOPs over its
time, against a large square matmul measured in the same run).

    python benchmarks/bench_mingru.py            # the two shapes of the issue
    python benchmarks/bench_mingru.py --quick    # fewer repeats
    python benchmarks/bench_mingru.py --device cuda   # on the GPU (the Triton scan)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import _args
import rnnkit
from _timing import interleaved_medians, machine, synchronizer

SHAPES = [(4096, 8, 256, 256), (16384, 1, 64, 64)]  # (T, B, I, H)


def make(kind: str, T: int, B: int, I: int, H: int, device: str = "cpu") -> Callable[[], None]:
    layer = {
        "gru": lambda: nn.GRU(I, H),
        "lstm": lambda: nn.LSTM(I, H),
        "rnnkit-gru": lambda: rnnkit.GRU(I, H),  # on its fused CPU kernel at these sizes
        "mingru": lambda: rnnkit.MinGRU(I, H),
    }[kind]().to(device)
    x = torch.randn(T, B, I, device=device, requires_grad=True)

    def step() -> None:
        out, _ = layer(x)
        out.sum().backward()

    return step


def peak_memory_mib(kind: str, T: int, B: int, I: int, H: int, device: str = "cpu") -> float:
    """Peak RSS growth of one training step, in a fresh process (on CUDA: the growth of
    the peak of torch's allocator over one step, in this process).

    Read from VmHWM, the high-water mark of the process's own memory: getrusage's
    ru_maxrss would carry over this (larger) parent's peak through exec on Linux.
    """
    if device.startswith("cuda"):
        step = make(kind, T, B, I, H, device)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    here = str(Path(__file__).resolve().parent)
    code = (
        f"import sys, torch; sys.path.insert(0, {here!r});"
        "from bench_mingru import make, vm_hwm_kib;"
        f"step = make({kind!r}, {T}, {B}, {I}, {H});"
        "before = vm_hwm_kib(); step(); print((vm_hwm_kib() - before) / 1024)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


def vm_hwm_kib() -> int:
    """The peak resident memory of this process so far, in KiB (Linux)."""
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def gemm_peak_flops(n: int = 2048, repeats: int = 5, device: str = "cpu") -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    sync = synchronizer(device) or (lambda: None)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def main() -> None:
    parser = _args.parser(__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 7")
    parser.add_argument("--json", type=_args.new_file, help="also write the results to this file")
    parser.add_argument("--device", type=_args.device, default="cpu",
                        help="cpu or cuda (default: cpu)")  # fmt: skip
    args = parser.parse_args()
    _args.cuda_device(parser, "--device", args.device)
    device = args.device
    torch.manual_seed(0)
    print(f"machine: {machine(device)}")
    peak = gemm_peak_flops(device=device)
    print(f"matrix-multiply peak (2048^3 matmul, best of 5): {peak / 1e9:.1f} GFLOP/s")
    rows = []
    for T, B, I, H in SHAPES:
        fns = {
            "torch.nn.GRU": make("gru", T, B, I, H, device),
            "torch.nn.LSTM": make("lstm", T, B, I, H, device),
            "rnnkit.GRU": make("rnnkit-gru", T, B, I, H, device),
            "rnnkit.MinGRU": make("mingru", T, B, I, H, device),
        }
        sync = synchronizer(device)
        times = interleaved_medians(fns, repeats=3 if args.quick else 7, warmup=1, synchronize=sync)
        gru_t, min_t = times["torch.nn.GRU"], times["rnnkit.MinGRU"]
        lstm_t, ours_t = times["torch.nn.LSTM"], times["rnnkit.GRU"]
        # MinGRU's GEMMs: forward x W^T (2H outputs), backward grad_x and grad_W: 3 products.
        flops = 3 * 2 * T * B * I * 2 * H
        mem = {k: peak_memory_mib(k, T, B, I, H, device) for k in ("gru", "mingru")}
        row = dict(
            T=T,
            B=B,
            I=I,
            H=H,
            gru_ms=gru_t * 1e3,
            mingru_ms=min_t * 1e3,
            speedup=gru_t / min_t,
            lstm_ms=lstm_t * 1e3,
            speedup_vs_lstm=lstm_t / min_t,
            rnnkit_gru_ms=ours_t * 1e3,
            speedup_vs_rnnkit_gru=ours_t / min_t,
            gru_mib=mem["gru"],
            mingru_mib=mem["mingru"],
            peak_fraction=flops / min_t / peak,
        )
        rows.append(row)
        print(
            f"T={T:6d} B={B} I=H={H}: GRU {row['gru_ms']:9.1f} ms  "
            f"MinGRU {row['mingru_ms']:8.1f} ms"
            f"  speed-up {row['speedup']:5.1f}x  peak memory GRU {mem['gru']:.0f} MiB, "
            f"MinGRU {mem['mingru']:.0f} MiB  MinGRU at {row['peak_fraction']:.0%} of GEMM peak",
            flush=True,
        )
        print(
            f"{'':22s} torch.nn.LSTM {row['lstm_ms']:9.1f} ms (MinGRU "
            f"{row['speedup_vs_lstm']:.1f}x faster)  rnnkit.GRU {row['rnnkit_gru_ms']:9.1f} ms "
            f"(MinGRU {row['speedup_vs_rnnkit_gru']:.1f}x faster)",
            flush=True,
        )
    if args.json:
        _args.write_file(parser, "--json", args.json, json.dumps(rows, indent=1), args.overwrite)


if __name__ == "__main__":
    main()
