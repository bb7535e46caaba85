"""Exported graphs in onnxruntime against rnnkit in PyTorch: step latency, and int8.

Latency: one step at B = 1 of a step graph (``rnnkit.export.export_onnx(layer,
mode="step")``) run by ``rnnkit.deploy.OnnxStream.step``, by a bare ``session.run`` loop
that feeds the state back itself, and by its int8 copy
(``rnnkit.export.quantize.quantize_onnx``), against ``rnnkit.Stream(layer).step`` - for
LSTM H = 64, 256, 1024 and GRU, MinGRU at H = 256 (input size H). All in one process,
timed interleaved round by round; medians in µs per step and the ratio to
``rnnkit.Stream.step``. For fairness both run one thread: ``torch.set_num_threads(1)``
and onnxruntime's ``intra_op_num_threads = inter_op_num_threads = 1``.

int8: a trained character LM (``--run``, or one trained here first), scored on the test
split of its corpus as ``rnnkit eval`` scores it (32 contiguous streams, the state
carried) in four forms: PyTorch float, PyTorch int8 (``rnnkit.quantize_dynamic``), ONNX
float and ONNX int8 step graphs (run by ``OnnxStream`` at B = 32); then the time of one
step of each at B = 1 and B = 32, and the size of the weights.

    python benchmarks/bench_export.py                     # trains a 1x128 LSTM LM first
    python benchmarks/bench_export.py --run /tmp/lmrun    # a run of `rnnkit train lm`
"""

from __future__ import annotations

import argparse
import io
import math
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

import rnnkit
from _timing import interleaved_medians, machine
from rnnkit import deploy
from rnnkit.data.corpus import load_corpus
from rnnkit.export import export_onnx
from rnnkit.export.quantize import quantize_onnx
from rnnkit.models.lm import CharLM
from rnnkit.quantize import QuantizationWarning, quantize_dynamic
from rnnkit.train.config import TrainConfig
from rnnkit.train.evaluate import bits_per_char
from rnnkit.train.run import load, train
from rnnkit.train.runfolder import RunFolder

LAYERS: list[tuple[str, Callable[[int], torch.nn.Module], int]] = [
    ("LSTM", lambda h: rnnkit.LSTM(h, h), 64),
    ("LSTM", lambda h: rnnkit.LSTM(h, h), 256),
    ("LSTM", lambda h: rnnkit.LSTM(h, h), 1024),
    ("GRU", lambda h: rnnkit.GRU(h, h), 256),
    ("MinGRU", lambda h: rnnkit.MinGRU(h, h), 256),
]
TRAIN_OPTIONS = {"num_layers": 1, "hidden_size": 128}
TRAIN_STEPS = 600
STREAMS = 32  # `rnnkit eval`'s default batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--run", help="an lm run folder (default: train a small one first)")
    parser.add_argument("--repeats", type=int, default=21, help="timed rounds (median)")
    parser.add_argument("--chars", type=int, default=None, help="score only this many test chars")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {machine()}, onnxruntime {ort.__version__}, 1 intra-op thread")
    print(f"load average at start: {_load()}")
    with tempfile.TemporaryDirectory() as tmp:
        latency(Path(tmp), args.repeats)
        run = args.run or _train_small(tmp)
        int8_table(Path(tmp), run, args.repeats, args.chars)
    print(f"\nload average at end: {_load()}")


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg()) + f" ({os.cpu_count()} CPUs)"


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _repeat(n: int, fn: Callable[[Any], object], x: Any) -> Callable[[], None]:
    def run() -> None:
        for _ in range(n):
            fn(x)

    return run


# ---- step latency -------------------------------------------------------------------


def latency(tmp: Path, repeats: int) -> None:
    print("\none step at B = 1: median µs per step (time / rnnkit.Stream.step's time)")
    header = ["layer", "rnnkit.Stream.step", "OnnxStream.step", "session.run", "OnnxStream int8"]
    widths = [12, 20, 20, 20, 20]
    print(
        "  ".join(
            h.rjust(w) if i else h.ljust(w)
            for i, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    )
    for kind, make, H in LAYERS:
        layer = make(H).eval()
        path, int8 = tmp / f"{kind}{H}.onnx", tmp / f"{kind}{H}-int8.onnx"
        export_onnx(layer, path, mode="step")
        quantize_onnx(path, int8)
        n = 20 if H >= 1024 else 200  # steps per timed call
        x = torch.randn(1, H)
        xn = x.numpy()
        stream = rnnkit.Stream(layer)
        ours = deploy.OnnxStream(_session(path))
        ours_int8 = deploy.OnnxStream(_session(int8))
        fns = {
            "rnnkit.Stream.step": _repeat(n, stream.step, x),
            "OnnxStream.step": _repeat(n, ours.step, xn),
            "session.run": _bare(_session(path), xn, n),
            "OnnxStream int8": _repeat(n, ours_int8.step, xn),
        }
        with torch.inference_mode():
            times = interleaved_medians(fns, repeats=repeats)
        base = times["rnnkit.Stream.step"]
        cells = [f"{kind} {H}".ljust(widths[0])]
        for name, w in zip(header[1:], widths[1:], strict=True):
            cells.append(f"{times[name] / n * 1e6:9.1f} ({times[name] / base:4.2f})".rjust(w))
        print("  ".join(cells), flush=True)


def _bare(session: ort.InferenceSession, x: np.ndarray, n: int) -> Callable[[], None]:
    """The least a caller can do: one session.run per step, the outputs fed back."""
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    shapes = {i.name: i.shape for i in session.get_inputs()[1:]}
    state = [np.zeros((s[0], 1, s[2]), np.float32) for s in shapes.values()]

    def run() -> None:
        nonlocal state
        for _ in range(n):
            feed = dict(zip(inputs, (x, *state), strict=True))
            _, *state = session.run(outputs, feed)

    return run


# ---- int8 on a trained language model -----------------------------------------------


def _train_small(tmp: str) -> str:
    out = f"{tmp}/lm"
    config = TrainConfig(steps=TRAIN_STEPS, seed=0, threads=1)
    print(f"\ntraining an lm {TRAIN_OPTIONS} for {TRAIN_STEPS} steps ...", flush=True)
    train("lm", TRAIN_OPTIONS, config, out=out, log=lambda _: None, progress=io.StringIO())
    return out


def int8_table(tmp: Path, run: str, repeats: int, chars: int | None) -> None:
    model = load(run)
    assert isinstance(model, CharLM)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error", QuantizationWarning)  # everything must quantize
        torch_int8 = quantize_dynamic(model)
    path, int8 = tmp / "lm.onnx", tmp / "lm-int8.onnx"
    export_onnx(model, path, mode="step")
    quantize_onnx(path, int8)
    config = RunFolder(run).read_config()
    text = load_corpus(config.derived.get("corpus")).split("test")
    ids = model.vocab.encode(text[:chars] if chars else text)

    bpc = {
        "PyTorch float": bits_per_char(model, ids, STREAMS, 256)[0],
        "PyTorch int8": bits_per_char(torch_int8, ids, STREAMS, 256)[0],
        "ONNX float": _onnx_bpc(path, ids.numpy()),
        "ONNX int8": _onnx_bpc(int8, ids.numpy()),
    }
    size = {
        "PyTorch float": _state_dict_bytes(model),
        "PyTorch int8": _state_dict_bytes(torch_int8),
        "ONNX float": path.stat().st_size,
        "ONNX int8": int8.stat().st_size,
    }
    steps = {}
    for B in (1, STREAMS):
        n = 200 if B == 1 else 50
        token = torch.randint(1, len(model.vocab), (1, B))
        fns = {
            "PyTorch float": _torch_steps(model, token, n),
            "PyTorch int8": _torch_steps(torch_int8, token, n),
            "ONNX float": _onnx_steps(path, token[0].numpy(), n),
            "ONNX int8": _onnx_steps(int8, token[0].numpy(), n),
        }
        times = interleaved_medians(fns, repeats=repeats)
        steps[B] = {k: t / n * 1e6 for k, t in times.items()}

    where = run if chars is None else f"{run}, first {chars:,} characters"
    print(
        f"\ncharacter LM {model.config.cell} {model.config.num_layers}x{model.config.hidden_size}"
    )
    print(f"({where}); test split {ids.numel():,} characters, {STREAMS} streams, state carried")
    cols = list(bpc)
    print(f"{'':24}" + "".join(f"{c:>16}" for c in cols))
    base = bpc["PyTorch float"]
    print(f"{'test bpc':24}" + "".join(f"{bpc[c]:16.4f}" for c in cols))
    print(f"{'  vs PyTorch float':24}" + "".join(f"{(bpc[c] - base) / base:+16.3%}" for c in cols))
    for B in (1, STREAMS):
        row = steps[B]
        print(f"{f'one step B={B} (µs)':24}" + "".join(f"{row[c]:16.1f}" for c in cols))
        ratio = [row["PyTorch float"] / row[c] for c in cols]
        print(
            f"{'  speed vs PyTorch float':24}"
            + "".join(f"{'x' + format(r, '.2f'):>16}" for r in ratio)
        )
    print(f"{'weights (KiB)':24}" + "".join(f"{size[c] / 1024:16,.0f}" for c in cols))


def _onnx_bpc(path: Path, ids: np.ndarray) -> float:
    """bits per character as rnnkit.train.evaluate.bits_per_char lays the text out."""
    N = ids.size
    B = min(STREAMS, N - 1)
    n = (N - 1) // B
    streams = np.lib.stride_tricks.as_strided(ids, (B, n + 1), (n * ids.itemsize, ids.itemsize))
    streams = streams.T.astype(np.int64)  # (n + 1, B)
    stream = deploy.OnnxStream(_session(path), batch_size=B)
    total = 0.0
    rows = np.arange(B)
    for t in range(n):
        logits = stream.step(streams[t]).astype(np.float64)
        top = logits.max(axis=1, keepdims=True)
        lse = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
        total += float((lse - logits[rows, streams[t + 1]]).sum())
    return total / (B * n) / math.log(2.0)


def _torch_steps(model: torch.nn.Module, token: torch.Tensor, n: int) -> Callable[[], None]:
    def run() -> None:
        state = None
        with torch.inference_mode():
            for _ in range(n):
                _, state = model(token, state)

    return run


def _onnx_steps(path: Path, token: np.ndarray, n: int) -> Callable[[], None]:
    stream = deploy.OnnxStream(_session(path))

    def run() -> None:
        stream.reset()
        for _ in range(n):
            stream.step(token)

    return run


def _state_dict_bytes(model: torch.nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


if __name__ == "__main__":
    main()
