"""Error messages of rnnkit.export (export_onnx, quantize_onnx) not asserted elsewhere."""

from __future__ import annotations

import re

import pytest

import rnnkit

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from rnnkit.export import export_onnx, quantize_onnx


def _raises(exc, message, fn, *args, **kwargs):
    with pytest.raises(exc, match=re.escape(message)):
        fn(*args, **kwargs)


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
