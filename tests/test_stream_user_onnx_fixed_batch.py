"""OnnxStream with batch_size given: a step of another batch size names the constructor,
not reset(), which keeps a given batch size (its hint sent the caller in a circle)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import rnnkit
from rnnkit.deploy import OnnxStream
from rnnkit.export import export_onnx


@pytest.fixture(scope="module")
def graph(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("graph") / "gru-step.onnx"
    export_onnx(rnnkit.GRU(3, 4).eval(), path, mode="step")
    return path


def test_a_given_batch_size_is_named_where_it_was_given(graph: Path) -> None:
    stream = OnnxStream(graph, batch_size=1, threads=1)
    stream.step(np.zeros((1, 3), np.float32))
    stream.reset()  # keeps the batch size given to the constructor
    message = (
        "OnnxStream.step: x's batch size must equal the stream's; expected 1, got 2 "
        "(batch_size=1 was given to OnnxStream; a new OnnxStream takes another)"
    )
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        stream.step(np.zeros((2, 3), np.float32))


def test_a_free_batch_size_still_points_to_reset(graph: Path) -> None:
    stream = OnnxStream(graph, threads=1)
    stream.step(np.zeros((1, 3), np.float32))
    message = (
        "OnnxStream.step: x's batch size must equal the stream's; expected 1, got 2 "
        "(reset() starts a new stream)"
    )
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        stream.step(np.zeros((2, 3), np.float32))
    stream.reset()
    assert stream.step(np.zeros((2, 3), np.float32)).shape == (2, 4)
