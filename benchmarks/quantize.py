"""Dynamic int8 quantization of a character LSTM language model: quality and speed.

Trains (or loads) an LSTM language model of ``rnnkit train lm``, quantizes it with
:func:`rnnkit.quantize.quantize_dynamic` (the LSTM and the output head become int8; the
embedding stays float), and compares the float and int8 models on

- test bits per character, scored as ``rnnkit eval`` scores it
  (:func:`rnnkit.train.evaluate.bits_per_char` on the test split of the run's corpus);
- speed at batch 1 (and 32): a forward pass over a window of characters, and generation
  (:meth:`rnnkit.models.CharLM.sample`, one character per call), both in characters per
  second, timed interleaved in the same process (the float model is the baseline);
- the size of the saved weights;
- then one LSTM layer alone at growing widths H (batch 1): where int8 starts to pay.

    python benchmarks/quantize.py                   # trains a 1x128 LSTM for 600 steps first
    python benchmarks/quantize.py --run runs/lstm   # an existing lm run folder
"""

from __future__ import annotations

import io
import tempfile
import warnings
from collections.abc import Callable

import torch
from torch import nn

import _args
import rnnkit
from _timing import interleaved_medians, machine
from rnnkit.data.corpus import load_corpus
from rnnkit.models.lm import CharLM
from rnnkit.quantize import QuantizationWarning, quantize_dynamic
from rnnkit.train.config import TrainConfig
from rnnkit.train.evaluate import bits_per_char
from rnnkit.train.run import load, train
from rnnkit.train.runfolder import RunFolder

TRAIN_OPTIONS = {"num_layers": 1, "hidden_size": 128}  # the small LM of the brief
TRAIN_STEPS = 600
FORWARD_CHARS = 256  # one window of `rnnkit eval`'s default --seq-len
GENERATE_CHARS = 200
LAYER_WIDTHS = (128, 512, 1024)  # H of the layer-alone table: the LM's width, then wider
LAYER_STEPS = 64


def main() -> None:
    parser = _args.parser(__doc__.split("\n", 1)[0])
    parser.add_argument("--run", help="an lm run folder (default: train a small one first)")
    parser.add_argument("--repeats", type=_args.positive_int, default=21,
                        help="timed rounds (median)")  # fmt: skip
    parser.add_argument("--threads", type=_args.threads, default=1, help="torch threads")
    args = parser.parse_args()
    if args.run is not None:
        _args.run_of(parser, "--run", args.run, "lm")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or _train_small(tmp)
        model = load(run)
        with warnings.catch_warnings():
            warnings.simplefilter("error", QuantizationWarning)  # everything must quantize
            int8 = quantize_dynamic(model)
        assert isinstance(model, CharLM) and isinstance(int8, CharLM)  # a copy, same class
        test_ids = model.vocab.encode(_test_text(run))
        rows = _quality(model, int8, test_ids) + _speed(model, int8, args.repeats)
    print(f"machine: {machine()}")
    print(f"run: {run if args.run else f'lm {TRAIN_OPTIONS}, {TRAIN_STEPS} steps, seed 0'}")
    print(f"test split: {test_ids.numel():,} characters")
    _print_table(rows)
    print(f"\nrnnkit.LSTM(H, H) alone, batch 1, {LAYER_STEPS} steps per call:")
    _print_table(_layer_speed(args.repeats))


def _train_small(tmp: str) -> str:
    out = f"{tmp}/lm"
    config = TrainConfig(steps=TRAIN_STEPS, seed=0, threads=1)
    _args.stop_if_signalled(
        train("lm", TRAIN_OPTIONS, config, out=out, log=lambda _: None, progress=io.StringIO()),
        saved=False,  # in a temporary folder
    )
    return out


def _test_text(run: str) -> str:
    """The test split of the run's own corpus, as ``rnnkit eval RUN`` reads it."""
    config = RunFolder(run).read_config()
    return load_corpus(config.derived.get("corpus")).split("test")


Row = tuple[str, str, str, str]  # metric, float, int8, int8 against float


def _quality(model: CharLM, int8: CharLM, ids: torch.Tensor) -> list[Row]:
    # `rnnkit eval`'s defaults: 32 streams, windows of 256 characters, state carried.
    bpc_float, _ = bits_per_char(model, ids, 32, 256)
    bpc_int8, _ = bits_per_char(int8, ids, 32, 256)
    change = f"{(bpc_int8 - bpc_float) / bpc_float:+.2%}"
    kib_float, kib_int8 = _saved_bytes(model) / 1024, _saved_bytes(int8) / 1024
    return [
        ("test bpc", f"{bpc_float:.4f}", f"{bpc_int8:.4f}", change),
        ("weights (KiB)", f"{kib_float:,.0f}", f"{kib_int8:,.0f}", f"x{kib_int8 / kib_float:.2f}"),
    ]


def _speed(model: CharLM, int8: CharLM, repeats: int) -> list[Row]:
    windows = {B: torch.randint(1, len(model.vocab), (FORWARD_CHARS, B)) for B in (1, 32)}
    timed: dict[str, Callable[[], object]] = {}
    for name, net in (("float", model), ("int8", int8)):
        for B, window in windows.items():  # (T, B)
            timed[f"forward B={B} {name}"] = _forward(net, window)
        timed[f"generate B=1 {name}"] = _generate(net)
    seconds = interleaved_medians(timed, repeats=repeats)
    rows: list[Row] = []
    for what, chars in (
        ("forward B=1", FORWARD_CHARS),
        ("forward B=32", FORWARD_CHARS * 32),
        ("generate B=1", GENERATE_CHARS),
    ):
        f, q = chars / seconds[f"{what} float"], chars / seconds[f"{what} int8"]
        rows.append((f"{what} chars/s", f"{f:,.0f}", f"{q:,.0f}", f"x{q / f:.2f}"))
    return rows


def _layer_speed(repeats: int) -> list[Row]:
    """Time steps per second of one float and one int8 LSTM layer, per width H."""
    rows: list[Row] = []
    for H in LAYER_WIDTHS:
        layer = rnnkit.LSTM(H, H).eval()
        int8 = quantize_dynamic(layer)
        x = torch.randn(LAYER_STEPS, 1, H)  # (T, B=1, I)
        fns = {"float": _forward(layer, x), "int8": _forward(int8, x)}
        seconds = interleaved_medians(fns, repeats=repeats)
        f, q = LAYER_STEPS / seconds["float"], LAYER_STEPS / seconds["int8"]
        rows.append((f"H={H} steps/s", f"{f:,.0f}", f"{q:,.0f}", f"x{q / f:.2f}"))
    return rows


def _forward(net: nn.Module, window: torch.Tensor) -> Callable[[], object]:
    @torch.no_grad()
    def run() -> object:
        return net(window)

    return run


def _generate(net: CharLM) -> Callable[[], object]:
    def run() -> object:
        gen = torch.Generator().manual_seed(0)
        return "".join(net.sample("def ", GENERATE_CHARS, generator=gen))

    return run


def _saved_bytes(net: nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    return buffer.tell()


def _print_table(rows: list[Row]) -> None:
    print(f"{'':24} {'float':>12} {'int8':>12} {'int8 vs float':>14}")
    for name, f, q, change in rows:
        print(f"{name:24} {f:>12} {q:>12} {change:>14}")


if __name__ == "__main__":
    main()
