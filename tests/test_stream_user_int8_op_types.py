"""quantize_onnx's op_types that is not a collection of names (an int, None) was refused in
Python's words ("'int' object is not iterable"), naming no argument."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import rnnkit
from rnnkit.export import export_onnx, quantize_onnx


@pytest.mark.parametrize("bad", [3, None])
def test_op_types_that_is_not_a_collection_of_names_is_refused_in_one_line(
    bad, tmp_path: Path
) -> None:
    src = tmp_path / "step.onnx"
    export_onnx(rnnkit.GRU(3, 4).eval(), src, mode="step")
    message = f"quantize_onnx: op_types must name operators; got {bad!r}"
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        quantize_onnx(src, tmp_path / "step.int8.onnx", op_types=bad)
    assert not (tmp_path / "step.int8.onnx").exists()
