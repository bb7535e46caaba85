"""Deployment formats: ONNX graphs with the recurrent state as explicit inputs and outputs.

Needs the ``export`` extra (onnx, onnxruntime, onnxscript); ``import rnnkit`` does not.
"""

from __future__ import annotations

from rnnkit.export.onnx import MODES, export_onnx, read_metadata
from rnnkit.export.quantize import quantize_onnx

__all__ = ["MODES", "export_onnx", "quantize_onnx", "read_metadata"]
