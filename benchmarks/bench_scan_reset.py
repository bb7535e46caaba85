"""What per-sample resets cost MinGRU and MinLSTM on the scan: a training step, CPU or GPU.

A reset (``layer(x, reset=...)``) cuts the scan into segments (``rnnkit.kernels.scan``,
the segmented scan: h_t = b_t is selected at a reset, never computed as 0 · h_{t-1}).
Timed in the same run, interleaved, after a warm-up, one training step (forward and
backward) of each:

- the layer without resets (the plain scan; on CUDA the Triton kernel),
- the same layer with resets (the segmented scan, torch operations on every device),
- the same layer with resets on ``backend="reference"`` (the step-by-step loop).

The script prints the median times and the two ratios: what the resets add to the scan,
and how much faster the segmented scan is than the loop with the same resets.

    python benchmarks/bench_scan_reset.py            # 7 repeats
    python benchmarks/bench_scan_reset.py --quick    # 3 repeats
"""

from __future__ import annotations

from collections.abc import Callable

import torch

import _args
import rnnkit
from _timing import interleaved_medians, machine, synchronizer

SHAPES = [(256, 16, 128, 128), (2048, 8, 128, 128)]  # (T, B, I, H)
RESET_EVERY = 256  # mean steps between two resets of a sample (documents of ~256 steps)


def make(kind: str, T: int, B: int, I: int, H: int, reset: torch.Tensor | None, backend: str,
         device: str) -> Callable[[], None]:  # fmt: skip
    layer = {"MinGRU": rnnkit.MinGRU, "MinLSTM": rnnkit.MinLSTM}[kind](I, H, backend=backend).to(
        device
    )
    x = torch.randn(T, B, I, device=device, requires_grad=True)

    def step() -> None:
        out, _ = layer(x, reset=reset)
        out.sum().backward()

    return step


def main() -> None:
    parser = _args.parser(__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 7")
    parser.add_argument("--device", type=_args.device, default="cpu",
                        help="cpu or cuda (default: cpu)")  # fmt: skip
    args = parser.parse_args()
    _args.cuda_device(parser, "--device", args.device)
    device = args.device
    torch.manual_seed(0)
    print(f"machine: {machine(device)}")
    print(f"resets: each sample, each step, with probability 1/{RESET_EVERY}")
    for kind in ("MinGRU", "MinLSTM"):
        for T, B, I, H in SHAPES:
            reset = torch.rand(T, B, device=device) < 1 / RESET_EVERY
            fns = {
                "scan": make(kind, T, B, I, H, None, "scan", device),
                "scan, resets": make(kind, T, B, I, H, reset, "scan", device),
                "reference, resets": make(kind, T, B, I, H, reset, "reference", device),
            }
            repeats = 3 if args.quick else 7
            t = interleaved_medians(
                fns, repeats=repeats, warmup=1, synchronize=synchronizer(device)
            )
            print(
                f"{kind:7s} T={T:5d} B={B:2d} I=H={H}: scan {t['scan'] * 1e3:8.2f} ms  "
                f"with resets {t['scan, resets'] * 1e3:8.2f} ms "
                f"({t['scan, resets'] / t['scan']:.2f}x)  reference with resets "
                f"{t['reference, resets'] * 1e3:9.1f} ms (the segmented scan "
                f"{t['reference, resets'] / t['scan, resets']:.1f}x faster)",
                flush=True,
            )


if __name__ == "__main__":
    main()
