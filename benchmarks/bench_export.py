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

Forecasting (``--parts forecast``): a trained forecaster (``--forecast-run``, or one
trained here first with ``rnnkit train forecast``'s defaults: M1 yearly, horizon 6),
scored on its test windows as ``rnnkit eval`` scores it (``ForecastTask.scores``: MASE,
sMAPE, 80 % interval coverage) in the same four forms: the ONNX step graphs run by
``rnnkit.deploy.OnnxForecaster`` over each series up to its forecast origin, PyTorch by
``rnnkit.tasks.forecast.intervals.model_forecasts``. The float graph's forecasts are first checked
against ``rnnkit.tasks.forecast.forecast``'s. Then the time of one update (one new value:
features, step, forecast) at B = 1 of ``OnnxForecaster.update`` and of
``OnlineForecaster.update``.

Classification (``--parts classify``): a trained classifier (``--classify-run``, or one
trained here first with ``rnnkit train classify``'s defaults: JapaneseVowels, a
bidirectional GRU 1x128 with a mean read-out), scored on its official test split as
``rnnkit eval`` scores it (``rnnkit.tasks.classify.scoring.predict``: accuracy,
cross-entropy) in the same four forms: the ONNX sequence graphs (``export_onnx(model,
mode="sequence", lengths=True)``; a classifier has no step graph) run by
``rnnkit.deploy.run_sequence`` on the raw series, time-major, with their lengths. The
float graph's logits are first checked against PyTorch's. Then the time of one batch of
the whole test split and of one series of median length at B = 1.

    python benchmarks/bench_export.py                     # trains a 1x128 LSTM LM first
    python benchmarks/bench_export.py --run /tmp/lmrun    # a run of `rnnkit train lm`
    python benchmarks/bench_export.py --parts forecast    # trains a forecaster first
    python benchmarks/bench_export.py --forecast-run /tmp/fc   # adds the forecast part
    python benchmarks/bench_export.py --parts classify    # trains a classifier first
    python benchmarks/bench_export.py --classify-run /tmp/cl   # adds the classify part
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnxruntime as ort
import torch

import _args
import rnnkit
from _timing import interleaved_medians, machine
from rnnkit import deploy
from rnnkit.data.corpus import load_corpus
from rnnkit.deploy import OnnxForecaster
from rnnkit.export import export_onnx
from rnnkit.export.quantize import quantize_onnx
from rnnkit.models.lm import CharLM
from rnnkit.quantize import QuantizationWarning, quantize_dynamic
from rnnkit.tasks.base import Task
from rnnkit.tasks.classify import ClassifyTask, SequenceClassifier, predict
from rnnkit.tasks.forecast import (
    Forecast,
    ForecastConfig,
    ForecastModel,
    ForecastTask,
    OnlineForecaster,
    Window,
    forecast,
    model_forecasts,
    prepare_series,
    score,
)
from rnnkit.train.config import TrainConfig
from rnnkit.train.distributed import Context
from rnnkit.train.evaluate import bits_per_char, stream_lengths
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
PARTS = ("latency", "lm", "forecast", "classify")


def main() -> None:
    parser = _args.parser(__doc__.split("\n", 1)[0])
    parser.add_argument("--run", help="an lm run folder (default: train a small one first)")
    parser.add_argument("--repeats", type=_args.positive_int, default=21,
                        help="timed rounds (median)")  # fmt: skip
    parser.add_argument("--chars", type=_args.int_in(2), default=None,  # 2: one scored
                        help="score only this many test chars")  # fmt: skip
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=PARTS,
        default=["latency", "lm"],
        help="what to measure (default: latency lm; --forecast-run adds forecast, "
        "--classify-run adds classify)",
    )
    parser.add_argument(
        "--forecast-run", help="a forecast run folder (default: train one with the defaults)"
    )
    parser.add_argument(
        "--classify-run", help="a classify run folder (default: train one with the defaults)"
    )
    args = parser.parse_args()
    _args.each_once(parser, "--parts", args.parts)
    parts = set(args.parts) | ({"forecast"} if args.forecast_run is not None else set())
    parts |= {"classify"} if args.classify_run is not None else set()
    if "lm" not in parts:  # the language model's part alone reads them
        _args.no_effect(parser, "without the lm part", {"--run": args.run, "--chars": args.chars})
    # The runs are checked before the parts timed ahead of theirs.
    for flag, run, task in (
        ("--run", args.run, "lm"),
        ("--forecast-run", args.forecast_run, "forecast"),
        ("--classify-run", args.classify_run, "classify"),
    ):
        if run is not None:
            _args.run_of(parser, flag, run, task)
    torch.set_num_threads(1)
    print(f"machine: {machine()}, onnxruntime {ort.__version__}, 1 intra-op thread")
    print(f"load average at start: {_load()}")
    with tempfile.TemporaryDirectory() as tmp:
        if "latency" in parts:
            latency(Path(tmp), args.repeats)
        if "lm" in parts:
            run = args.run or _train_small(tmp)
            int8_table(Path(tmp), run, args.repeats, args.chars)
        if "forecast" in parts:
            forecast_run = args.forecast_run or _train_default(ForecastTask, tmp)
            forecast_table(Path(tmp), forecast_run, args.repeats)
        if "classify" in parts:
            classify_run = args.classify_run or _train_default(ClassifyTask, tmp)
            classify_table(Path(tmp), classify_run, args.repeats)
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
    _args.stop_if_signalled(
        train("lm", TRAIN_OPTIONS, config, out=out, log=lambda _: None, progress=io.StringIO()),
        saved=False,  # in a temporary folder
    )
    return out


def int8_table(tmp: Path, run: str, repeats: int, chars: int | None) -> None:
    model = load(run)
    assert isinstance(model, CharLM)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error", QuantizationWarning)  # everything must quantize
        torch_int8 = cast(CharLM, quantize_dynamic(model))  # a copy of model, quantized
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
        _speed_row(row, cols)
    print(f"{'weights (KiB)':24}" + "".join(f"{size[c] / 1024:16,.0f}" for c in cols))


def _speed_row(times: dict[str, float], cols: list[str]) -> None:
    """The table's ratio line: PyTorch float's time over each column's (above 1: faster)."""
    ratios = (times["PyTorch float"] / times[c] for c in cols)
    print(
        f"{'  speed vs PyTorch float':24}"
        + "".join(f"{'x' + format(r, '.2f'):>16}" for r in ratios)
    )


def _onnx_bpc(path: Path, ids: np.ndarray) -> float:
    """bits per character over the streams of rnnkit.train.evaluate.bits_per_char: the
    N - 1 predictable characters in ``stream_lengths(N, STREAMS)`` consecutive pieces, each
    stream from a zero state, so that both score the same characters from the same
    context."""
    N = ids.size
    lengths = np.array(stream_lengths(N, STREAMS))
    starts = np.cumsum(lengths) - lengths  # stream b's first input
    stream = deploy.OnnxStream(_session(path), batch_size=lengths.size)
    total = 0.0
    rows = np.arange(lengths.size)
    for t in range(int(lengths.max())):
        # a shorter stream reads past its end at its last step: scored by none, as there
        inputs = ids[np.minimum(starts + t, N - 1)].astype(np.int64)
        targets = ids[np.minimum(starts + t + 1, N - 1)].astype(np.int64)
        logits = stream.step(inputs).astype(np.float64)
        top = logits.max(axis=1, keepdims=True)
        lse = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
        total += float((lse - logits[rows, targets])[t < lengths].sum())
    return total / (N - 1) / math.log(2.0)


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


# ---- int8 on a trained forecaster ---------------------------------------------------

FORECAST_UPDATES = 200  # updates per timed call
FORECAST_TOLERANCE = 1e-4  # ONNX float vs PyTorch, in units d_t of each forecast


def _train_default(task: type[Task], tmp: str) -> str:
    """A run of ``task`` with its default budget, seed 0, one thread, in ``tmp``."""
    out = f"{tmp}/{task.name}"
    config = task.default_train(seed=0, threads=1)
    print(f"\ntraining a {task.name} model (defaults) for {config.steps} steps ...", flush=True)
    _args.stop_if_signalled(
        train(task.name, {}, config, out=out, log=lambda _: None, progress=io.StringIO()),
        saved=False,  # in a temporary folder
    )
    return out


def _prepared(run: str, task_cls: type[Task], flag: str) -> tuple[Any, torch.nn.Module]:
    """The run's task with its data ready, and its trained model (eval mode)."""
    config = RunFolder(run).read_config()
    if config.task != task_cls.name:
        raise ValueError(f"{flag}: expected a {task_cls.name} run; {run} is a {config.task} run")
    task = task_cls(task_cls.parse_options(config.options, where=run), config.derived)
    model = load(run).eval()
    task.prepare(config.train, Context(0, 1, torch.device("cpu")))
    return task, model


def _torch_int8(model: torch.nn.Module) -> tuple[torch.nn.Module, list[str]]:
    """rnnkit.quantize_dynamic of ``model``, and what it kept in float (its warnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", QuantizationWarning)
        int8 = quantize_dynamic(model)
    return int8, [str(w.message) for w in caught if issubclass(w.category, QuantizationWarning)]


def forecast_table(tmp: Path, run: str, repeats: int) -> None:
    task, model = _prepared(run, ForecastTask, "--forecast-run")
    assert isinstance(model, ForecastModel)
    torch_int8, kept_float = _torch_int8(model)
    int8_bytes = _state_dict_bytes(torch_int8)
    path, int8 = tmp / "forecast.onnx", tmp / "forecast-int8.onnx"
    export_onnx(model, path, mode="step")
    quantize_onnx(path, int8)
    h, m = task.derived["horizon"], task.derived["seasonality"]
    values, test = task.values, task.test

    # The float graph must forecast what rnnkit forecasts before int8 is worth measuring.
    onnx_float = _onnx_forecasts(path, values, test)
    histories = [values[w.series][: w.origin] for w in test]
    worst = _gaps(onnx_float, forecast(model, histories), histories, model.config).max()
    if worst > FORECAST_TOLERANCE:
        raise AssertionError(
            f"OnnxForecaster differs from rnnkit.tasks.forecast.forecast by {worst:.2g} d_t "
            f"(tolerance {FORECAST_TOLERANCE:g})"
        )
    # Every column with the factor each path stores (the validated one), so that the
    # coverages differ by the export alone; `rnnkit eval` recalibrates it at the origin.
    _, naive = task.scores(model, "test")
    forecasts = {
        "PyTorch float": model_forecasts(model, values, test),
        "PyTorch int8": model_forecasts(cast(ForecastModel, torch_int8), values, test),
        "ONNX float": onnx_float,
        "ONNX int8": _onnx_forecasts(int8, values, test),
    }
    scores = {k: score(values, test, f, h, m) for k, f in forecasts.items()}
    gaps = {
        k: _gaps(f, forecasts["PyTorch float"], histories, model.config)
        for k, f in forecasts.items()
    }
    size = {
        "PyTorch float": _state_dict_bytes(model),
        "PyTorch int8": int8_bytes,
        "ONNX float": path.stat().st_size,
        "ONNX int8": int8.stat().st_size,
    }
    # Updates at B = 1, the values of the longest series over and over (the scales and
    # the state stay bounded, so each update costs the same however many came before).
    series = max(values, key=len)
    n = FORECAST_UPDATES
    fns = {
        "PyTorch float": _updates(OnlineForecaster(model), series, n),
        "PyTorch int8": _updates(OnlineForecaster(torch_int8), series, n),
        "ONNX float": _updates(OnnxForecaster(_session(path)), series, n),
        "ONNX int8": _updates(OnnxForecaster(_session(int8)), series, n),
    }
    with torch.inference_mode():
        times = interleaved_medians(fns, repeats=repeats)
    update = {k: t / n * 1e6 for k, t in times.items()}

    c = model.config
    print(f"\nforecaster {c.cell.upper()} {c.num_layers}x{c.hidden_size}, {c.head} head ({run})")
    print(
        f"test: {len(test)} forecasts of horizon {h} ({task.data.describe()}); seasonal "
        f"naive: {naive.line()}"
    )
    print(f"ONNX float vs rnnkit.tasks.forecast.forecast: largest gap {worst:.2g} d_t")
    for line in kept_float:
        print(f"PyTorch int8: {line}")
    cols = list(scores)
    print(f"{'':24}" + "".join(f"{col:>16}" for col in cols))
    base = scores["PyTorch float"]
    print(f"{'test MASE':24}" + "".join(f"{scores[k].mase:16.4f}" for k in cols))
    print(
        f"{'  vs PyTorch float':24}"
        + "".join(f"{(scores[k].mase - base.mase) / base.mase:+16.3%}" for k in cols)
    )
    print(f"{'test sMAPE (%)':24}" + "".join(f"{scores[k].smape:16.3f}" for k in cols))
    print(f"{'80% coverage':24}" + "".join(f"{scores[k].coverage:16.1%}" for k in cols))
    # How far single forecasts moved (any band, any step) from PyTorch float's.
    print(f"{'gap, median (d_t)':24}" + "".join(f"{np.median(gaps[k]):16.2g}" for k in cols))
    print(f"{'gap, largest (d_t)':24}" + "".join(f"{gaps[k].max():16.2g}" for k in cols))
    print(f"{'one update B=1 (µs)':24}" + "".join(f"{update[k]:16.1f}" for k in cols))
    _speed_row(update, cols)
    print(f"{'weights (KiB)':24}" + "".join(f"{size[k] / 1024:16,.1f}" for k in cols))


def _onnx_forecasts(path: Path, values: list[np.ndarray], scored: list[Window]) -> list[Forecast]:
    """The step graph's forecast for every window: one OnnxForecaster per series, fed its
    values one at a time up to each origin."""
    session = _session(path)
    origins: dict[int, list[int]] = {}
    for w in scored:
        origins.setdefault(w.series, []).append(w.origin)
    table: dict[tuple[int, int], Forecast] = {}
    for i, wanted in origins.items():
        forecaster = OnnxForecaster(session)
        for t in range(max(wanted)):
            forecaster.update(float(values[i][t]))
            if t + 1 in wanted:
                table[i, t + 1] = forecaster.forecast
    return [table[w.series, w.origin] for w in scored]


def _gaps(
    ours: list[Forecast],
    theirs: list[Forecast],
    histories: list[np.ndarray],
    config: ForecastConfig,
) -> np.ndarray:
    """Per forecast, the largest difference of any band at any step, in units d_t of the
    forecast (the unit of the network's outputs, so float32 rounding shows as ~1e-6 at
    any level of the series)."""
    gaps = []
    for a, b, y in zip(ours, theirs, histories, strict=True):
        unit = float(prepare_series(y, config).unit[-1])
        gap = max(float(np.max(np.abs(p - q))) for p, q in zip(a, b, strict=True))
        gaps.append(gap / unit)
    return np.array(gaps)


def _updates(forecaster: Any, series: np.ndarray, n: int) -> Callable[[], None]:
    values = [float(v) for v in series]
    position = 0

    def run() -> None:
        nonlocal position
        for _ in range(n):
            forecaster.update(values[position % len(values)])
            position += 1

    return run


# ---- int8 on a trained classifier ---------------------------------------------------

CLASSIFY_TOLERANCE = 1e-4  # ONNX float logits vs PyTorch's
CLASSIFY_SERIES = 50  # B = 1 calls per timed call


def classify_table(tmp: Path, run: str, repeats: int) -> None:
    task, model = _prepared(run, ClassifyTask, "--classify-run")
    assert isinstance(model, SequenceClassifier)
    split = task.test_split
    torch_int8, kept_float = _torch_int8(model)
    path, int8 = tmp / "classify.onnx", tmp / "classify-int8.onnx"
    export_onnx(model, path, mode="sequence", lengths=True)
    ops = _op_counts(quantize_onnx(path, int8).graph)

    # The raw series as the graph takes them: time-major, padded, with their lengths (the
    # graph standardises them itself, as the model does).
    x = split.x.float()  # (N, T, D)
    lengths = split.lengths
    x_tm = np.ascontiguousarray(x.transpose(0, 1).numpy())  # (T, N, D)
    lens = lengths.numpy().astype(np.int64)
    sessions = {"ONNX float": _session(path), "ONNX int8": _session(int8)}
    with torch.inference_mode():
        logits = {
            "PyTorch float": model(x, lengths).numpy(),
            "PyTorch int8": torch_int8(x, lengths).numpy(),
        }
    for name, session in sessions.items():
        logits[name] = deploy.run_sequence(session, x_tm, lens)[0]

    # The float graph must classify as PyTorch does before int8 is worth measuring.
    ours, theirs = logits["ONNX float"], logits["PyTorch float"]
    worst = float(np.abs(ours - theirs).max())
    moved = int((ours.argmax(1) != theirs.argmax(1)).sum())
    if worst > CLASSIFY_TOLERANCE or moved:
        raise AssertionError(
            f"the ONNX float graph differs from PyTorch: logits by {worst:.2g} (tolerance "
            f"{CLASSIFY_TOLERANCE:g}), another class for {moved} of {split.n} series"
        )
    # As `rnnkit eval` scores the run (by length, in chunks); one batch must agree with it.
    predicted, eval_loss = predict(model, split)
    if not np.array_equal(predicted.numpy(), theirs.argmax(1)):
        raise AssertionError("one batch of the test split classifies otherwise than predict()")
    y = split.y.numpy()
    right = {k: int((v.argmax(1) == y).sum()) for k, v in logits.items()}
    loss = {
        k: float(torch.nn.functional.cross_entropy(torch.from_numpy(v), split.y))
        for k, v in logits.items()
    }
    loss["PyTorch float"] = eval_loss
    changed = {k: int((v.argmax(1) != theirs.argmax(1)).sum()) for k, v in logits.items()}
    gap = {k: float(np.abs(v - theirs).max()) for k, v in logits.items()}
    size = {
        "PyTorch float": _state_dict_bytes(model),
        "PyTorch int8": _state_dict_bytes(torch_int8),
        "ONNX float": path.stat().st_size,
        "ONNX int8": int8.stat().st_size,
    }

    # One batch of the whole split, then one series of median length at B = 1.
    one = int(np.argsort(lens, kind="stable")[split.n // 2])
    T1 = int(lens[one])
    x1, l1 = x[one : one + 1, :T1], lengths[one : one + 1]
    x1_tm, l1_np = np.ascontiguousarray(x_tm[:T1, one : one + 1]), lens[one : one + 1]
    n = CLASSIFY_SERIES
    batch_fns: dict[str, Callable[[], object]] = {
        "PyTorch float": lambda: model(x, lengths),
        "PyTorch int8": lambda: torch_int8(x, lengths),
        "ONNX float": lambda: deploy.run_sequence(sessions["ONNX float"], x_tm, lens),
        "ONNX int8": lambda: deploy.run_sequence(sessions["ONNX int8"], x_tm, lens),
    }
    single_fns = {
        "PyTorch float": _repeat(n, lambda m: m(x1, l1), model),
        "PyTorch int8": _repeat(n, lambda m: m(x1, l1), torch_int8),
        "ONNX float": _repeat(
            n, lambda s: deploy.run_sequence(s, x1_tm, l1_np), sessions["ONNX float"]
        ),
        "ONNX int8": _repeat(
            n, lambda s: deploy.run_sequence(s, x1_tm, l1_np), sessions["ONNX int8"]
        ),
    }
    with torch.inference_mode():
        batch = {k: t * 1e3 for k, t in interleaved_medians(batch_fns, repeats=repeats).items()}
        single = {
            k: t / n * 1e6 for k, t in interleaved_medians(single_fns, repeats=repeats).items()
        }

    N = split.n
    majority = int((split.y == task.derived["majority"]).sum())
    print(f"\n{task.title(model)} ({run})")
    print(
        f"test: {N} series of {task.test_name} (lengths {int(lens.min())}-{int(lens.max())}, "
        f"{x.shape[2]} channels); majority-class baseline {majority / N:.2%}"
    )
    print(
        f"ONNX float vs PyTorch: the same class for all {N} series, logits differ by at most "
        f"{worst:.2g}"
    )
    print(
        "ONNX int8 graph (quantize_onnx): "
        f"{ops['MatMulInteger', False]} MatMulInteger + {ops['MatMulInteger', True]} in Scan "
        f"bodies; float MatMul left: {ops['MatMul', False]} + {ops['MatMul', True]} in Scan "
        "bodies"
    )
    for line in kept_float:
        print(f"PyTorch int8: {line}")
    cols = list(logits)
    print(f"{'':24}" + "".join(f"{c:>16}" for c in cols))
    base = right["PyTorch float"]
    print(f"{'test accuracy':24}" + "".join(f"{right[c] / N:16.2%}" for c in cols))
    print(f"{'  series right':24}" + "".join(f"{f'{right[c]}/{N}':>16}" for c in cols))
    print(
        f"{'  vs PyTorch float':24}" + "".join(f"{(right[c] - base) / base:+16.3%}" for c in cols)
    )
    print(f"{'test loss':24}" + "".join(f"{loss[c]:16.4f}" for c in cols))
    print(f"{'class changed':24}" + "".join(f"{changed[c]:16d}" for c in cols))
    print(f"{'logit gap, largest':24}" + "".join(f"{gap[c]:16.2g}" for c in cols))
    for label, row, unit in (
        (f"batch of {N} (ms)", batch, ".1f"),
        (f"one series T={T1} (µs)", single, ".0f"),
    ):
        print(f"{label:24}" + "".join(f"{row[c]:16{unit}}" for c in cols))
        _speed_row(row, cols)
    print(f"{'weights (KiB)':24}" + "".join(f"{size[c] / 1024:16,.0f}" for c in cols))


def _op_counts(graph: Any, nested: bool = False) -> Counter[tuple[str, bool]]:
    """How often each operator occurs: (op_type, inside a nested graph) -> count."""
    counts: Counter[tuple[str, bool]] = Counter()
    for node in graph.node:
        counts[node.op_type, nested] += 1
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == attr.GRAPH else list(attr.graphs):
                counts += _op_counts(sub, True)
    return counts


if __name__ == "__main__":
    main()
