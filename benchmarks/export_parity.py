"""How close exported ONNX graphs run to PyTorch, per cell and option, in onnxruntime.

For each configuration: a step graph streamed for ``--steps`` steps by onnxruntime next to
``rnnkit.Stream`` over the same layer (max |Δ| over every output and the final state), and
one sequence graph run at T = 1, 7 and 1000 with ragged lengths (max |Δ| against the layer's
own call). The "fp32 floor" columns are PyTorch's own float32 error against float64 over
the same stream and at T = 1000: no float32 graph can be held to less than that (a randomly
initialised layer-norm LSTM is chaotic: its float32 and float64 runs part ways).

    python benchmarks/export_parity.py [--steps 100000]
"""

from __future__ import annotations

import copy
import time
import warnings
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort
import torch

import _args
import rnnkit
from rnnkit.export import export_onnx

if TYPE_CHECKING:
    import onnx

I, H, B = 8, 32, 1

CONFIGS = {
    "RNN tanh": lambda: rnnkit.RNN(I, H),
    "RNN relu ×2": lambda: rnnkit.RNN(I, H, num_layers=2, nonlinearity="relu"),
    "LSTM ×2": lambda: rnnkit.LSTM(I, H, num_layers=2),
    "LSTM proj_size=16": lambda: rnnkit.LSTM(I, H, proj_size=16),
    "LSTM layer_norm": lambda: rnnkit.LSTM(I, H, layer_norm=True),
    "LSTM zoneout 0.1": lambda: rnnkit.LSTM(I, H, zoneout=0.1),
    "GRU": lambda: rnnkit.GRU(I, H),
    "GRU zoneout 0.1": lambda: rnnkit.GRU(I, H, zoneout=0.1),
    "MinGRU ×2": lambda: rnnkit.MinGRU(I, H, num_layers=2),
    "MinLSTM": lambda: rnnkit.MinLSTM(I, H),
}


def _session(proto: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), options)


def stream_error(layer: rnnkit.RecurrentLayer, steps: int) -> tuple[float, float]:
    """Max |Δ| of the streamed step graph against rnnkit.Stream, and of float32 PyTorch
    against float64 PyTorch over the same stream (the floor)."""
    session = _session(export_onnx(layer, mode="step"))
    names = list(layer.first_cell.state_names)
    sizes = layer.first_cell.state_sizes
    carried = [np.zeros((layer.num_layers, B, s), np.float32) for s in sizes]
    stream, wide = rnnkit.Stream(layer), rnnkit.Stream(copy.deepcopy(layer).double())
    g = torch.Generator().manual_seed(0)
    worst = floor = 0.0
    with torch.no_grad():
        for _ in range(steps):
            x = torch.randn(B, I, generator=g)
            feed = {"x": x.numpy(), **dict(zip(names, carried, strict=True))}
            y, *carried = session.run(None, feed)
            y32 = stream.step(x)
            worst = max(worst, float(np.abs(y - y32.numpy()).max()))
            floor = max(floor, float((y32.double() - wide.step(x.double())).abs().max()))
    state = stream.state if isinstance(stream.state, tuple) else (stream.state,)
    for got, want in zip(carried, state, strict=True):
        worst = max(worst, float(np.abs(got - want.numpy()).max()))
    return worst, floor


def sequence_errors(layer: rnnkit.RecurrentLayer) -> tuple[list[float], float]:
    session = _session(export_onnx(layer, mode="sequence", lengths=True))
    names = list(layer.first_cell.state_names)
    g = torch.Generator().manual_seed(1)
    errors, floor = [], 0.0
    with torch.no_grad():
        for T in (1, 7, 1000):
            x = torch.randn(T, 3, I, generator=g)
            lengths = torch.tensor([T, max(T // 2, 1), 0])
            states = [
                torch.randn(layer.num_layers, 3, s, generator=g)
                for s in layer.first_cell.state_sizes
            ]
            state = tuple(states) if len(states) > 1 else states[0]
            feed = {"x": x.numpy(), "lengths": lengths.numpy()}
            feed.update({n: s.numpy() for n, s in zip(names, states, strict=True)})
            got = session.run(None, feed)
            y, final = layer(x, state, lengths=lengths)
            finals = final if isinstance(final, tuple) else (final,)
            errors.append(
                max(
                    float(np.abs(a - b.numpy()).max())
                    for a, b in zip(got, [y, *finals], strict=True)
                )
            )
            if T == 1000:
                wide = copy.deepcopy(layer).double()
                s64 = tuple(s.double() for s in states)
                y64, _ = wide(x.double(), s64 if len(s64) > 1 else s64[0], lengths=lengths)
                floor = float((y.double() - y64).abs().max())
    return errors, floor


def main() -> None:
    parser = _args.parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=_args.positive_int, default=100_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, I={I}, H={H}, float32")
    print(f"{'configuration':20s} {'stream ' + str(args.steps):>14s} {'fp32 floor':>10s} "
          f"{'T=1':>9s} {'T=7':>9s} {'T=1000':>9s} {'fp32 floor':>10s} {'time':>6s}")  # fmt: skip
    for name, make in CONFIGS.items():
        torch.manual_seed(0)
        layer = make().eval()
        start = time.perf_counter()
        streamed, stream_floor = stream_error(layer, args.steps)
        seq, floor = sequence_errors(layer)
        took = time.perf_counter() - start
        cells = " ".join(f"{e:9.1e}" for e in seq)
        print(
            f"{name:20s} {streamed:14.1e} {stream_floor:10.1e} {cells} {floor:10.1e} {took:5.0f}s",
            flush=True,
        )


if __name__ == "__main__":
    main()
