"""rnnkit's RNN/LSTM/GRU against torch.nn on the same machine, in the same run.

For each shape, times a training step (forward + backward) and inference (no_grad
forward) of torch.nn's layer, of rnnkit's layer on the native and on the reference
backend, and of the layer-norm and zoneout variants (reference backend only), and prints
each as a ratio to torch.nn (lower is faster; 1.00 is parity).

    python benchmarks/bench_layers.py              # both shapes, all cells
    python benchmarks/bench_layers.py --quick      # fewer repeats
    python benchmarks/bench_layers.py --gru        # the GRU's table (below)

Shapes: T=100, B=64, I=H=512 (PyTorch's fastrnns defaults) and T=1000, B=1, I=32, H=64.

``--gru`` times rnnkit's GRU - its automatic choice, and its fused kernel forced - against
torch.nn.GRU and torch.nn.LSTM of the same size at (T, B, I=H) = (100, 64, 512),
(256, 8, 128) and (1000, 1, 64), and prints both ratios: torch has no fused GRU kernel on
the CPU, so its GRU is the slow one of the two there. ``--options`` times the LSTM with
zoneout, with recurrent dropout and with layer norm, the GRU and the Elman RNN with zoneout
(each on the backend auto picks, and on the reference loop), beside rnnkit.LSTM on torch's
kernel, torch.nn.GRU, rnnkit.GRU and MinGRU, all as ratios to torch.nn.LSTM, at the same
shapes: one table of everything the fused kernels are measured by. ``--device cuda`` runs
``--gru`` and ``--options`` on the GPU (the options on rnnkit's Triton kernels; the GRU
stays on cuDNN there), timed to the end of the queued work. ``--projection`` times the
LSTM with a projection and zoneout (fused, and on the reference loop) against
torch.nn.LSTM(proj_size=P). ``--ragged`` times a batch of unequal lengths: rnnkit's layer
called with ``lengths=`` (native backend, and the backend auto picks) against torch.nn's
layer fed what a user writes by hand, ``pack_padded_sequence(enforce_sorted=False)`` and
``pad_packed_sequence`` back, for --cells at (T, B, I=H) = (100, 64, 256) and (1000, 8, 128),
lengths drawn uniformly from [T/2, T].
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import cast

import torch
from torch import nn

import _args
import rnnkit
from _timing import interleaved_medians, machine, synchronizer

SHAPES = {
    "fastrnns T=100 B=64 I=H=512": (100, 64, 512, 512),
    "long T=1000 B=1 I=32 H=64": (1000, 1, 32, 64),
}
CELLS: dict[
    str, tuple[type[nn.LSTM] | type[nn.GRU] | type[nn.RNN], type[rnnkit.RecurrentLayer]]
] = {"LSTM": (nn.LSTM, rnnkit.LSTM), "GRU": (nn.GRU, rnnkit.GRU), "RNN": (nn.RNN, rnnkit.RNN)}


def variants(name: str, ref: nn.Module) -> dict[str, rnnkit.RecurrentLayer]:
    ours_cls = CELLS[name][1]
    out: dict[str, rnnkit.RecurrentLayer] = {
        "native": ours_cls.from_torch(ref),
        "reference": ours_cls.from_torch(ref),
        "zoneout 0.1": ours_cls.from_torch(ref, zoneout=0.1, backend="reference"),
    }
    out["native"].backend = "native"
    out["reference"].backend = "reference"
    if name == "LSTM":
        out["layer_norm"] = ours_cls.from_torch(ref, layer_norm=True, backend="reference")
    return out


def train_step(module: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        out, _ = module(x)
        out.sum().backward()

    return run


def infer(module: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            module(x)

    return run


GRU_SHAPES = ((100, 64, 512), (256, 8, 128), (1000, 1, 64))


def gru_table(repeats: int, device: str = "cpu") -> None:
    """rnnkit.GRU (auto, fused) against torch.nn.GRU and torch.nn.LSTM, train and inference."""
    print(f"{'T, B, I=H':14s} {'mode':9s} {'LSTM ms':>8s} {'GRU ms':>8s}  "
          "rnnkit.GRU / torch.nn.LSTM (/ torch.nn.GRU)")  # fmt: skip
    for T, B, H in GRU_SHAPES:
        x = torch.randn(T, B, H, device=device)
        ref = nn.GRU(H, H).to(device)
        mods = {
            "torch.nn.LSTM": nn.LSTM(H, H).to(device),
            "torch.nn.GRU": ref,
            "auto": rnnkit.GRU.from_torch(ref),
            "fused": rnnkit.GRU.from_torch(ref, backend="fused"),
        }
        for mode, make in (("train", train_step), ("inference", infer)):
            with torch.set_grad_enabled(mode == "train"):  # the choice reads the grad mode
                chosen = cast(rnnkit.RecurrentLayer, mods["auto"]).backend_for(x).name
            fns = {k: make(m, x) for k, m in mods.items()}
            times = interleaved_medians(fns, repeats=repeats, synchronize=synchronizer(device))
            lstm, gru = times["torch.nn.LSTM"], times["torch.nn.GRU"]
            ratios = "  ".join(
                f"{k} {times[k] / lstm:.2f} ({times[k] / gru:.2f})" for k in ("auto", "fused")
            )
            print(f"{f'{T}, {B}, {H}':14s} {mode:9s} {lstm * 1e3:8.2f} {gru * 1e3:8.2f}  "
                  f"{ratios}  [auto: {chosen}]", flush=True)  # fmt: skip


def options_table(repeats: int, device: str = "cpu") -> None:
    """Every layer the fused kernels are measured by - the options torch lacks on the
    backend auto picks and on the reference loop, the GRU, MinGRU, rnnkit.LSTM on torch's
    kernel - as ratios to torch.nn.LSTM of the same size (training step)."""
    print(f"{'T, B, I=H':14s} {'LSTM ms':>8s}  ratio to torch.nn.LSTM (training step)")
    for T, B, H in GRU_SHAPES:
        x = torch.randn(T, B, H, device=device)
        ref = nn.LSTM(H, H).to(device)
        mods: dict[str, nn.Module] = {"torch.nn.LSTM": ref}
        native = rnnkit.LSTM.from_torch(ref)
        native.backend = "native"
        mods["rnnkit.LSTM (native)"] = native
        gru = nn.GRU(H, H).to(device)
        mods["torch.nn.GRU"] = gru
        mods["rnnkit.GRU (auto)"] = rnnkit.GRU.from_torch(gru)
        mods["MinGRU"] = rnnkit.MinGRU(H, H, device=device)
        for label, kw in (("zoneout 0.1", {"zoneout": 0.1}),
                          ("recurrent_dropout 0.25", {"recurrent_dropout": 0.25}),
                          ("layer_norm", {"layer_norm": True})):  # fmt: skip
            mods[label] = rnnkit.LSTM.from_torch(ref, **kw)
            mods[f"{label} (reference)"] = rnnkit.LSTM.from_torch(ref, backend="reference", **kw)
        mods["GRU zoneout 0.1"] = rnnkit.GRU.from_torch(gru, zoneout=0.1)
        mods["GRU zoneout 0.1 (reference)"] = rnnkit.GRU.from_torch(
            gru, zoneout=0.1, backend="reference"
        )
        elman = nn.RNN(H, H).to(device)
        mods["RNN zoneout 0.1"] = rnnkit.RNN.from_torch(elman, zoneout=0.1)
        mods["RNN zoneout 0.1 (reference)"] = rnnkit.RNN.from_torch(
            elman, zoneout=0.1, backend="reference"
        )
        chosen = cast(rnnkit.RecurrentLayer, mods["zoneout 0.1"]).backend_for(x).name
        fns = {k: train_step(m, x) for k, m in mods.items()}
        times = interleaved_medians(fns, repeats=repeats, synchronize=synchronizer(device))
        base = times["torch.nn.LSTM"]
        ratios = "  ".join(f"{k} {times[k] / base:.2f}" for k in mods if k != "torch.nn.LSTM")
        print(f"{f'{T}, {B}, {H}':14s} {base * 1e3:8.2f}  {ratios}  [auto: {chosen}]", flush=True)


PROJ_SHAPES = ((100, 64, 512, 256), (256, 8, 128, 64))


def projection_table(repeats: int) -> None:
    """The LSTM with a projection and zoneout on the fused kernel and on the reference loop,
    against torch.nn.LSTM(proj_size=P) without options (training step)."""
    print(f"{'T, B, I=H, P':18s} {'torch ms':>9s}  ratio to torch.nn.LSTM(proj_size=P)")
    # torch says, once, that its projected LSTM runs without oneDNN: the point of the table
    warnings.filterwarnings("ignore", message="LSTM with projections is not supported")
    for T, B, H, P in PROJ_SHAPES:
        x = torch.randn(T, B, H)
        ref = nn.LSTM(H, H, proj_size=P)
        mods = {
            "torch.nn.LSTM": ref,
            "zoneout 0.1 (fused)": rnnkit.LSTM.from_torch(ref, zoneout=0.1),
            "zoneout 0.1 (reference)": rnnkit.LSTM.from_torch(
                ref, zoneout=0.1, backend="reference"
            ),
        }
        chosen = cast(rnnkit.RecurrentLayer, mods["zoneout 0.1 (fused)"]).backend_for(x).name
        times = interleaved_medians({k: train_step(m, x) for k, m in mods.items()}, repeats=repeats)
        base = times["torch.nn.LSTM"]
        ratios = "  ".join(f"{k} {times[k] / base:.2f}" for k in mods if k != "torch.nn.LSTM")
        print(f"{f'{T}, {B}, {H}, {P}':18s} {base * 1e3:9.2f}  {ratios}  [auto: {chosen}]")


RAGGED_SHAPES = ((100, 64, 256), (1000, 8, 128))


def ragged_table(cells: list[str], repeats: int) -> None:
    """rnnkit's ``lengths=`` against torch.nn with a pack/pad round trip (train, inference)."""
    print(f"{'T, B, I=H':14s} {'cell':5s} {'mode':9s} {'torch.nn ms':>11s}  "
          "ratios to torch.nn with pack_padded_sequence")  # fmt: skip
    for T, B, H in RAGGED_SHAPES:
        x = torch.randn(T, B, H)
        lengths = torch.randint(T // 2, T + 1, (B,))
        for name in cells:
            calls, auto = _ragged_calls(name, x, lengths)
            for mode in ("train", "inference"):
                with torch.set_grad_enabled(mode == "train"):  # the choice reads the grad mode
                    chosen = auto.backend_for(x, lengths=lengths).name
                fns = {k: _ragged_run(call, mode == "train") for k, call in calls.items()}
                times = interleaved_medians(fns, repeats=repeats)
                base = times["torch.nn"]
                ratios = "  ".join(f"{k} {times[k] / base:.2f}" for k in calls if k != "torch.nn")
                print(f"{f'{T}, {B}, {H}':14s} {name:5s} {mode:9s} {base * 1e3:11.2f}  "
                      f"{ratios}  [auto: {chosen}]", flush=True)  # fmt: skip


def _ragged_calls(
    name: str, x: torch.Tensor, lengths: torch.Tensor
) -> tuple[dict[str, Callable[[], torch.Tensor]], rnnkit.RecurrentLayer]:
    """The three calls of one ragged row (outputs padded to T), and rnnkit's auto layer."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    ref = CELLS[name][0](x.size(-1), x.size(-1))
    native, auto = CELLS[name][1].from_torch(ref), CELLS[name][1].from_torch(ref)
    native.backend = "native"

    def by_hand() -> torch.Tensor:  # what a torch.nn user writes for a ragged batch
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        return pad_packed_sequence(ref(packed)[0], total_length=x.size(0))[0]

    return {
        "torch.nn": by_hand,
        "native": lambda: native(x, lengths=lengths)[0],
        "auto": lambda: auto(x, lengths=lengths)[0],
    }, auto


def _ragged_run(call: Callable[[], torch.Tensor], train: bool) -> Callable[[], None]:
    def run() -> None:
        if train:
            call().sum().backward()
        else:
            with torch.no_grad():
                call()

    return run


def main() -> None:
    parser = _args.parser(__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats instead of 7")
    parser.add_argument("--cells", type=_args.listed(_args.one_of(CELLS, "cells"), "cells"),
                        help="comma-separated subset (default: LSTM,GRU,RNN)")  # fmt: skip
    parser.add_argument(
        "--native-only", action="store_true", help="time torch.nn against the native backend only"
    )
    parser.add_argument("--repeats", type=_args.positive_int,
                        help="timed rounds (default: 7, --quick: 3)")  # fmt: skip
    parser.add_argument("--gru", action="store_true", help="the GRU's table only (see above)")
    parser.add_argument("--threads", type=_args.threads,
                        help="torch threads (default: torch's)")  # fmt: skip
    parser.add_argument(
        "--options", action="store_true", help="the LSTM options' table only (see above)"
    )
    parser.add_argument(
        "--device",
        type=_args.device,
        default=None,
        help="cpu or cuda: where --gru and --options run (cpu)",
    )
    parser.add_argument(
        "--projection", action="store_true", help="the projected LSTM's table only (above)"
    )
    parser.add_argument(
        "--ragged", action="store_true", help="the table of unequal lengths only (above)"
    )
    args = parser.parse_args()
    # One table per call: --gru, --options and --projection each print theirs alone, and
    # the options of the others would have no effect.
    table = [f for f, on in (("--gru", args.gru), ("--options", args.options),
                              ("--projection", args.projection),
                              ("--ragged", args.ragged)) if on]  # fmt: skip
    if len(table) > 1:
        _args.refuse(parser, table[1], f"expected one table per call; got {' and '.join(table)}")
    if table:
        _args.no_effect(parser, f"with {table[0]}", {
            "--cells": None if args.ragged else args.cells,
            "--native-only": args.native_only or None})  # fmt: skip
    if not (args.gru or args.options):
        _args.no_effect(parser, "without --gru or --options", {"--device": args.device})
    if args.quick:
        _args.no_effect(parser, "with --quick", {"--repeats": args.repeats})
    args.cells = args.cells or list(CELLS)
    args.device = args.device or "cpu"
    _args.cuda_device(parser, "--device", args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else 7)
    warnings.simplefilter("ignore", rnnkit.PerformanceWarning)
    torch.manual_seed(0)
    print(f"machine: {machine(args.device)}")
    if args.gru:
        gru_table(repeats, args.device)
        return
    if args.options:
        options_table(repeats, args.device)
        return
    if args.projection:
        projection_table(repeats)
        return
    if args.ragged:
        ragged_table(args.cells, repeats)
        return
    print(f"{'shape':28s} {'cell':5s} {'mode':9s} {'torch.nn ms':>11s}  ratios to torch.nn")
    for shape_name, (T, B, I, H) in SHAPES.items():
        x = torch.randn(T, B, I)
        for name in args.cells:
            ref = CELLS[name][0](I, H)
            mods = {"torch.nn": ref, **variants(name, ref)}
            if args.native_only:
                mods = {"torch.nn": ref, "native": mods["native"]}
            for mode, make in (("train", train_step), ("inference", infer)):
                fns = {k: make(m, x) for k, m in mods.items()}
                times = interleaved_medians(fns, repeats=repeats)
                base = times["torch.nn"]
                ratios = "  ".join(f"{k} {times[k] / base:.2f}" for k in mods if k != "torch.nn")
                print(
                    f"{shape_name:28s} {name:5s} {mode:9s} {base * 1e3:11.2f}  {ratios}", flush=True
                )


if __name__ == "__main__":
    main()
