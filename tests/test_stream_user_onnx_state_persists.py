"""docs/deploy.md: an OnnxStream's state saved with np.savez and assigned to a new stream
after a restart continues it exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import rnnkit
from rnnkit.deploy import OnnxStream
from rnnkit.export import export_onnx


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_a_saved_onnx_state_continues_the_stream_exactly(kind, tmp_path: Path) -> None:
    graph = tmp_path / "step.onnx"
    export_onnx(getattr(rnnkit, kind)(3, 5, num_layers=2).eval(), graph, mode="step")
    xs = np.random.default_rng(0).standard_normal((30, 2, 3)).astype(np.float32)
    stream = OnnxStream(graph, threads=1)
    for x in xs[:15]:
        stream.step(x)
    state = stream.state
    np.savez(tmp_path / "state.npz", *(state if isinstance(state, tuple) else (state,)))
    resumed = OnnxStream(graph, threads=1)  # as after a restart
    loaded = tuple(np.load(tmp_path / "state.npz").values())
    resumed.state = loaded if len(loaded) > 1 else loaded[0]
    for x in xs[15:]:
        assert np.array_equal(resumed.step(x), stream.step(x))
