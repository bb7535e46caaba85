"""Error messages of rnnkit.export (export_onnx, quantize_onnx) not asserted elsewhere."""

from __future__ import annotations

import re

import pytest

import rnnkit

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from _refusals import raises as _raises
from rnnkit.export import export_onnx, quantize_onnx


def test_export_onnx_path_messages(tmp_path):
    target = tmp_path / "none" / "m.onnx"
    _raises(ValueError, f"export_onnx: the folder of {target} does not exist", export_onnx,
            rnnkit.GRU(2, 3), target)  # fmt: skip


def test_quantize_onnx_messages(tmp_path):
    _raises(TypeError, "quantize_onnx: src must be a path or an onnx.ModelProto; got int",
            quantize_onnx, 3, tmp_path / "q.onnx")  # fmt: skip
    proto = export_onnx(rnnkit.GRU(2, 3), check=False)
    target = tmp_path / "none" / "q.onnx"
    _raises(ValueError, f"quantize_onnx: the folder of {target} does not exist", quantize_onnx,
            proto, target)  # fmt: skip
    _raises(ValueError, "quantize_onnx: op_types must name operators; got []", quantize_onnx,
            proto, tmp_path / "q.onnx", op_types=[])  # fmt: skip
    quantized = quantize_onnx(proto, tmp_path / "q.onnx")
    _raises(ValueError, "quantize_onnx: src is already quantized; expected a float graph",
            quantize_onnx, quantized, tmp_path / "q2.onnx")  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.onnx"]


def test_native_sequence_graph_needs_an_opset_with_its_operators():
    from rnnkit.export.onnx_ops import MIN_OPSET, native_sequence_graph

    _raises(ValueError, f"native_sequence_graph: opset must be an int >= {MIN_OPSET}; got 1",
            native_sequence_graph, rnnkit.GRU(2, 3), lengths=False, opset=1)  # fmt: skip


def test_step_mode_of_a_model_that_answers_after_the_sequence():
    from rnnkit.tasks.classify import SequenceClassifier

    _raises(ValueError, "export_onnx: mode='step' needs an output at every step; a classifier "
            "answers after the whole sequence - export mode='sequence' instead (rnnkit export "
            "--mode sequence)", export_onnx, SequenceClassifier(3, 4), mode="step")  # fmt: skip


def test_export_and_quantize_check_their_arguments(tmp_path):
    # A negative tolerance refused every graph ("differs by 6e-08 (tolerance -1)"), a check
    # of "no" ran the check, and quantize_onnx's dst=None failed inside pathlib.
    layer = rnnkit.GRU(2, 3)
    _raises(ValueError, "export_onnx: tolerance must be a number >= 0; got -1", export_onnx,
            layer, tolerance=-1)  # fmt: skip
    _raises(TypeError, "export_onnx: check must be a bool; got 'no'", export_onnx, layer,
            check="no")  # fmt: skip
    proto = export_onnx(layer, check=False)
    _raises(TypeError, "quantize_onnx: dst must be a path; got NoneType", quantize_onnx, proto,
            None)  # fmt: skip


def test_lengths_of_a_step_graph():
    # A step has no sequence to cut: lengths=True was meant for mode='sequence'.
    message = "export_onnx: lengths applies to mode='sequence'; got mode='step'"
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        export_onnx(rnnkit.GRU(2, 3), mode="step", lengths=True)
