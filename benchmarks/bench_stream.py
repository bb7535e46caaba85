"""Streaming: the latency of one step at batch 1, and memory over a 10^6-step stream.

Latency: one step of ``rnnkit.Stream(rnnkit.LSTM(H, H)).step(x)`` against
``torch.nn.LSTMCell(H, H)(x, (h, c))`` (and, for reference, ``torch.nn.LSTM`` on a
one-step sequence), at B = 1 and H = 64, 256, 1024, timed interleaved in the same run,
inference mode.

Memory: streams 10^6 steps through an LSTM in chunks and prints the process's peak
resident memory after 10^4, 10^5 and 10^6 steps; it must not grow with the stream.

    python benchmarks/bench_stream.py
    python benchmarks/bench_stream.py --steps 100000   # a shorter memory run
"""

from __future__ import annotations

import resource
from collections.abc import Callable

import torch

import _args
import rnnkit
from _timing import interleaved_medians, machine


def _repeat(n: int, fn: Callable[..., object], *args: object) -> Callable[[], None]:
    def run() -> None:
        for _ in range(n):
            fn(*args)

    return run


def latency(repeats: int) -> None:
    print("one step at B = 1, inference (median µs per step; ratio to torch.nn.LSTMCell)")
    for H in (64, 256, 1024):
        n = 20 if H == 1024 else 200
        cell, seq = torch.nn.LSTMCell(H, H), torch.nn.LSTM(H, H)
        stream = rnnkit.Stream(rnnkit.LSTM(H, H))
        x = torch.randn(1, H)
        h, c = torch.zeros(1, H), torch.zeros(1, H)
        x3, h3, c3 = x[None], h[None], c[None]

        fns = {
            "torch.nn.LSTMCell": _repeat(n, cell, x, (h, c)),
            "rnnkit.Stream.step": _repeat(n, stream.step, x),
            "torch.nn.LSTM (T=1)": _repeat(n, seq, x3, (h3, c3)),
        }
        with torch.no_grad():
            times = interleaved_medians(fns, repeats=repeats, warmup=1)
        base = times["torch.nn.LSTMCell"]
        row = "  ".join(f"{k} {t / n * 1e6:8.1f} µs ({t / base:.2f})" for k, t in times.items())
        print(f"H = {H:4d}: {row}", flush=True)


def memory(steps: int, chunk: int) -> None:
    print(f"\nstreaming {steps:,} steps through LSTM(32, 256), chunks of {chunk} steps")
    stream = rnnkit.Stream(rnnkit.LSTM(32, 256))
    x = torch.randn(chunk, 1, 32)
    # The marks up to the stream's end; a chunk is cut short to land on each, so that
    # exactly ``steps`` steps are streamed and every mark is printed, whatever the chunk.
    marks = sorted({m for m in (10**4, 10**5, 10**6) if m < steps} | {steps})
    done = 0
    with torch.no_grad():
        for mark in marks:
            while done < mark:
                n = min(chunk, mark - done)
                stream(x[:n])
                done += n
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"after {done:>9,} steps: peak resident memory {peak:7.1f} MiB", flush=True)


def main() -> None:
    parser = _args.parser(__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=_args.positive_int, default=7,
                        help="timed rounds (default 7)")  # fmt: skip
    parser.add_argument("--steps", type=_args.positive_int, default=10**6,
                        help="memory run length")  # fmt: skip
    parser.add_argument("--chunk", type=_args.positive_int, default=100,
                        help="steps per chunk (memory run)")  # fmt: skip
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"machine: {machine()}")
    latency(args.repeats)
    memory(args.steps, args.chunk)


if __name__ == "__main__":
    main()
