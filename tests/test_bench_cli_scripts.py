"""The benchmark scripts measure what they say: the ONNX columns of bench_export.py score
the characters the PyTorch columns score, bench_stream.py streams the steps asked for and
prints every mark, compile_time.py's ragged layer runs at any T, and a stop in a run of a
temporary folder does not claim the run is saved."""

from __future__ import annotations

import contextlib
import io
import signal
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import _args  # noqa: E402


@pytest.mark.parametrize("n", [101, 64, 33, 2])
def test_bench_export_scores_the_onnx_graph_on_the_characters_bits_per_char_scores(
    tmp_path: Path, n: int
) -> None:
    # _onnx_bpc cut the text into 32 streams of (N - 1) // 32 characters and dropped the
    # rest, where bits_per_char scores all N - 1 in streams of unequal length: at
    # --chars 20000 the ONNX float column read +0.079 % "vs PyTorch float", the layout's
    # difference, not the export's.
    pytest.importorskip("onnxruntime")
    import bench_export
    from rnnkit.data.vocab import Vocabulary
    from rnnkit.export import export_onnx
    from rnnkit.models.lm import CharLM, CharLMConfig
    from rnnkit.train.evaluate import bits_per_char

    vocab = Vocabulary(list("abcdefgh \n"))
    model = CharLM(CharLMConfig(vocab_size=len(vocab), hidden_size=16), vocab).eval()
    ids = torch.randint(1, len(vocab), (n,), generator=torch.Generator().manual_seed(n))
    path = tmp_path / "lm.onnx"
    export_onnx(model, path, mode="step")
    want, scored = bits_per_char(model, ids, bench_export.STREAMS, 256)
    assert scored == n - 1
    got = bench_export._onnx_bpc(path, ids.numpy())
    assert abs(got - want) <= 1e-5 * want


def _memory_lines(steps: int, chunk: int) -> list[str]:
    import bench_stream

    out = io.StringIO()
    streamed = []
    real = bench_stream.rnnkit.Stream

    class Counted(real):  # type: ignore[misc, valid-type]
        def __call__(self, x: torch.Tensor, *args: object, **kwargs: object) -> object:
            streamed.append(x.shape[0])
            return super().__call__(x, *args, **kwargs)

    bench_stream.rnnkit.Stream = Counted
    try:
        with contextlib.redirect_stdout(out):
            bench_stream.memory(steps, chunk)
    finally:
        bench_stream.rnnkit.Stream = real
    assert sum(streamed) == steps and max(streamed) <= chunk
    return [line.split(":")[0] for line in out.getvalue().splitlines() if line]


def test_bench_stream_streams_the_steps_asked_and_prints_every_mark() -> None:
    # With --steps not a multiple of --chunk it streamed past --steps and printed no line
    # at all (`--steps 150 --chunk 100`: 200 steps, nothing after the header).
    assert _memory_lines(150, 100) == [
        "streaming 150 steps through LSTM(32, 256), chunks of 100 steps",
        "after       150 steps",
    ]
    assert _memory_lines(12_345, 1000) == [
        "streaming 12,345 steps through LSTM(32, 256), chunks of 1000 steps",
        "after    10,000 steps",
        "after    12,345 steps",
    ]
    assert _memory_lines(10_000, 100)[1:] == ["after    10,000 steps"]


@pytest.mark.parametrize("T", [1, 2])
def test_compile_time_runs_the_ragged_layer_at_a_short_length(T: int) -> None:
    # --steps 1 or 2 gave the ragged LSTM a length of 3 > T: a RuntimeError traceback.
    import compile_time

    assert compile_time.compile_seconds("LSTM-ragged", T, "eager") > 0


def test_a_stop_in_a_temporary_run_does_not_say_the_run_is_saved() -> None:
    # classify.py, bench_export.py, quantize.py and tag.py train in temporary folders,
    # removed as the script stops; the line said "the run is saved" all the same.
    summary = SimpleNamespace(stopped_by="SIGINT")
    for saved, line in ((False, "stopped by SIGINT\n"),
                        (True, "stopped by SIGINT; the run is saved\n")):  # fmt: skip
        err = io.StringIO()
        with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as stop:
            _args.stop_if_signalled(summary, saved=saved)
        assert (stop.value.code, err.getvalue()) == (128 + signal.SIGINT, line)
    done = SimpleNamespace(stopped_by=None)
    assert _args.stop_if_signalled(done, saved=False) is done
