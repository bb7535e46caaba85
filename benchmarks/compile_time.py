"""Compile time of rnnkit layers under torch.compile against sequence length T.

One training step (forward and backward) of a fresh ``torch.compile`` per layer and T,
with ``torch._dynamo.reset()`` in between; the first call's time is almost all
compilation. The ratio T = 500 / T = 50 shows whether the graph grows with T: the native
kernels (ragged or not, with dropout or not), the reference backend's loop and the
minGRU/minLSTM scan each run as one opaque custom operator per layer call
(rnnkit.kernels.native_rnn, rnnkit.backends.opaque, rnnkit.kernels.scan).

    python benchmarks/compile_time.py [--backend inductor] [--layers LSTM GRU MinGRU]
"""

from __future__ import annotations

import time
import warnings

import torch
import torch._dynamo
import torch._inductor.config

import _args
import rnnkit

LAYERS = {
    "LSTM": lambda: rnnkit.LSTM(8, 16),
    "GRU": lambda: rnnkit.GRU(8, 16),
    "RNN": lambda: rnnkit.RNN(8, 16),
    "MinGRU": lambda: rnnkit.MinGRU(8, 16),
    "LSTM-reference": lambda: rnnkit.LSTM(8, 16, backend="reference"),
    "LSTM-layer_norm": lambda: rnnkit.LSTM(8, 16, layer_norm=True),
    "GRU-zoneout": lambda: rnnkit.GRU(8, 16, zoneout=0.1),
    "LSTM-ragged": lambda: rnnkit.LSTM(8, 16),
    "GRU-dropout": lambda: rnnkit.GRU(8, 16, num_layers=2, dropout=0.3),
}


def compile_seconds(name: str, T: int, backend: str) -> float:
    """Seconds of the first compiled training step on x (T, B=4, I=8), H = 16."""
    torch._dynamo.reset()
    layer = LAYERS[name]()
    x = torch.randn(T, 4, 8, requires_grad=True)
    # Ragged lengths within [0, T] at any T (T = 1 and 2 included).
    lengths = torch.tensor([T, T // 2, min(3, T), 1])
    kwargs = {"lengths": lengths} if name.endswith("ragged") else {}
    start = time.perf_counter()
    out, state = torch.compile(layer, backend=backend)(x, **kwargs)
    states = state if isinstance(state, tuple) else (state,)
    loss = out.square().sum() + sum(s.square().sum() for s in states)
    loss.backward()
    return time.perf_counter() - start


def main() -> None:
    parser = _args.parser(__doc__.splitlines()[0])
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--layers", nargs="+", default=list(LAYERS), choices=list(LAYERS))
    parser.add_argument("--steps", nargs="+", type=_args.positive_int, default=[50, 500])
    args = parser.parse_args()
    _args.each_once(parser, "--layers", args.layers)
    _args.each_once(parser, "--steps", args.steps)
    backends = torch._dynamo.list_backends(exclude_tags=())
    if args.backend not in backends:  # else refused by the first compile, in a traceback
        _args.refuse(
            parser, "--backend", f"expected one of {', '.join(backends)}; got {args.backend!r}"
        )
    # Compile from scratch every time: inductor's on-disk caches would otherwise serve a
    # graph compiled earlier (any run with the same shapes), hiding the compile time.
    torch._inductor.config.force_disable_caches = True
    # which torch then says at every compile, between the table's rows
    warnings.filterwarnings("ignore", message="dynamo_pgo force disabled")
    compile_seconds("RNN", 5, args.backend)  # the compiler's one-off imports and warm-up
    print(f"torch {torch.__version__}, backend={args.backend}, threads={torch.get_num_threads()}")
    for name in args.layers:
        times = [compile_seconds(name, T, args.backend) for T in args.steps]
        cells = "  ".join(f"T={T}: {s:6.1f} s" for T, s in zip(args.steps, times, strict=True))
        print(f"{name:15s} {cells}  ratio {times[-1] / times[0]:.2f}")


if __name__ == "__main__":
    main()
