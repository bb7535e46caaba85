"""Error messages of rnnkit.export (export_onnx, quantize_onnx) not asserted elsewhere."""

from __future__ import annotations

import re

import pytest

import rnnkit

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import _refusals
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


def _snapshot(root):
    """Every path under ``root`` with its bytes (None for a folder)."""
    return {p: (None if p.is_dir() else p.read_bytes()) for p in sorted(root.rglob("*"))}


def test_a_destination_that_is_not_a_file_path_is_refused_before_anything_is_written(tmp_path):
    # overwrite="no" read as True and replaced the user's file; path=5 failed in pathlib's
    # words; a folder given with overwrite=True failed in the OS's after the hint to pass
    # it. A directory is refused whatever overwrite says: it is never replaced.
    mine = tmp_path / "mine.onnx"
    mine.write_bytes(b"the user's own file")
    folder = tmp_path / "graphs"
    (folder / "kept").mkdir(parents=True)
    (folder / "kept" / "a.onnx").write_bytes(b"kept")
    layer = rnnkit.GRU(2, 3)
    before = _snapshot(tmp_path)
    exact = _refusals.raises_exactly
    for value in ("no", 1, None):
        exact(TypeError, f"export_onnx: overwrite must be True or False; got {value!r}",
              export_onnx, layer, mine, overwrite=value)  # fmt: skip
    exact(TypeError, "export_onnx: path must be a file path or None; got int", export_onnx,
          layer, 5)  # fmt: skip
    for overwrite in (True, False):
        exact(ValueError, f"export_onnx: path must be the path of a file; {folder} is a "
              "directory (a directory is never replaced)", export_onnx, layer, folder,
              overwrite=overwrite)  # fmt: skip
    proto = export_onnx(layer, check=False)
    exact(TypeError, "quantize_onnx: overwrite must be True or False; got 'no'", quantize_onnx,
          proto, mine, overwrite="no")  # fmt: skip
    exact(TypeError, "quantize_onnx: dst must be a path; got int", quantize_onnx, proto, 5)
    for overwrite in (True, False):
        exact(ValueError, f"quantize_onnx: dst must be the path of a file; {folder} is a "
              "directory (a directory is never replaced)", quantize_onnx, proto, folder,
              overwrite=overwrite)  # fmt: skip
    # per_channel="no" quantized per channel, as True does.
    exact(TypeError, "quantize_onnx: per_channel must be True or False; got 'no'",
          quantize_onnx, proto, tmp_path / "q.onnx", per_channel="no")  # fmt: skip
    assert _snapshot(tmp_path) == before
    # The bools still do what they say.
    export_onnx(layer, mine, overwrite=True)
    assert mine.read_bytes() == export_onnx(layer).SerializeToString()
