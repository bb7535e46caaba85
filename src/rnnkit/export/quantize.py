"""int8 weights for exported graphs: onnxruntime's dynamic quantization, made to reach them.

:func:`quantize_onnx` stores the weight matrices of an rnnkit ONNX graph (step or sequence,
layer or character language model) as int8 with onnxruntime's ``quantize_dynamic``:
``MatMul`` becomes ``MatMulInteger`` (int8 weights, the activations quantized on the fly
at every call, as ``rnnkit.quantize_dynamic`` does in PyTorch) and the embedding's
``Gather`` reads int8 rows. The graph's inputs, outputs and ``rnnkit`` metadata stay as
they are, so ``rnnkit.deploy`` runs the result unchanged.

torch's exporter writes each linear map of a step as ``Gemm``, which onnxruntime does not
quantize dynamically; every ``Gemm`` with a constant weight is first rewritten as the
``MatMul`` (+ ``Add``) it computes, in Scan bodies too.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

OP_TYPES = ("MatMul", "Gather")


def quantize_onnx(
    src: str | Path | Any,
    dst: str | Path,
    *,
    op_types: Sequence[str] = OP_TYPES,
    per_channel: bool = False,
    overwrite: bool = False,
) -> Any:
    """Write an int8-weight copy of the rnnkit graph ``src`` (a path or ModelProto) to ``dst``.

    ``op_types`` are the operators whose constant weights become int8 (onnxruntime's
    names; ``"LSTM"`` also quantizes the ONNX LSTM operator of a sequence graph);
    ``per_channel`` gives every output row its own scale. Returns the written ModelProto.
    An existing ``dst`` is refused unless ``overwrite``.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from rnnkit.export.onnx import (
        _load_graph,
        _set_metadata,
        _target_path,
        read_metadata,
        writing,
    )
    from rnnkit.train.files import atomic_write

    if isinstance(src, bytes) or not isinstance(src, (str, os.PathLike, onnx.ModelProto)):
        raise TypeError(
            f"quantize_onnx: src must be a path or an onnx.ModelProto; got {type(src).__name__}"
        )
    # A missing file was os's "[Errno 2]", a file that is not ONNX protobuf's DecodeError.
    model = _load_graph("quantize_onnx", "src", src)
    meta = read_metadata(model)  # refuses a graph that is not rnnkit's
    if "quantization" in meta:
        raise ValueError("quantize_onnx: src is already quantized; expected a float graph")
    if not isinstance(dst, (str, os.PathLike)):
        # Path(None) said "expected str, bytes or os.PathLike object", naming no argument.
        raise TypeError(f"quantize_onnx: dst must be a path; got {type(dst).__name__}")
    # The checks export_onnx makes: overwrite a bool, a directory never replaced.
    target = _target_path("quantize_onnx", "dst", dst, overwrite)
    assert target is not None  # dst is a path
    if isinstance(src, (str, os.PathLike)) and _same_file(src, target):
        # overwrite=True replaced the float graph by its int8 copy: the source was lost.
        raise ValueError(
            f"quantize_onnx: dst must be another file than src; got {os.fspath(dst)!r} for "
            "both (the float graph would be lost)"
        )
    if not isinstance(per_channel, bool):  # "no" would read as True
        raise TypeError(f"quantize_onnx: per_channel must be True or False; got {per_channel!r}")
    # A string was read letter by letter ("MatMul" as M, a, t, ...), quantizing nothing.
    # One that is no collection (3, None) failed in Python's words, "'int' object is not
    # iterable".
    iterable = isinstance(op_types, Iterable) and not isinstance(op_types, str)
    types = list(op_types) if iterable else []
    if not types or not all(isinstance(t, str) for t in types):
        raise ValueError(f"quantize_onnx: op_types must name operators; got {op_types!r}")

    model = onnx.ModelProto.FromString(model.SerializeToString())  # the caller's stays float
    if "MatMul" in types:
        _gemm_to_matmul(model.graph)
    meta["quantization"] = {
        "method": "onnxruntime.quantize_dynamic",
        "weights": "int8",
        "op_types": types,
        "per_channel": per_channel,
    }
    # Staged in the system's temporary folder, not next to dst: a kill there would leave
    # a folder in the run folder, which then refuses --resume. The result is written with
    # atomic_write, whose temporary file a run folder owns: no half-written graph either.
    with tempfile.TemporaryDirectory(prefix="rnnkit-int8-") as tmp:
        staged = Path(tmp) / "float.onnx"
        out = Path(tmp) / "int8.onnx"
        onnx.save(model, staged)
        # The quantizer advises its shape pre-pass on the root logger at every call; the
        # graphs here have static weight shapes, so the advice does not apply.
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            quantize_dynamic(
                staged,
                out,
                op_types_to_quantize=types,
                per_channel=per_channel,
                weight_type=QuantType.QInt8,
                # Into Scan bodies too: there the recurrent products of every Scan-based
                # sequence graph live (layer norm, zoneout, minGRU, every task model).
                extra_options={"EnableSubgraph": True},
            )
        finally:
            logging.disable(previous)
        result = onnx.load(out)
    if _eight_bit_weights(result.graph) <= _eight_bit_weights(model.graph):
        # The quantizer leaves what it cannot reach as it is: the "int8" copy would be the
        # float graph under another name (a native GRU or RNN operator, an op type the
        # graph does not use).
        raise ValueError(
            f"quantize_onnx: no weight of src is read by an operator of op_types {types}; "
            "expected op types the graph uses with constant weights (MatMul, Gather; LSTM "
            "for a native LSTM operator); nothing was written"
        )
    _set_metadata(result, meta)  # whatever the quantizer kept, the contract's JSON
    with writing("quantize_onnx", target):
        atomic_write(target, result.SerializeToString())
    return result


def _same_file(a: str | os.PathLike[str], b: Path) -> bool:
    """Whether ``b`` names the existing file ``a`` (through links and other spellings)."""
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _eight_bit_weights(graph: Any) -> int:
    """How many 8-bit weights ``graph`` and the graphs nested in it (Scan bodies) store."""
    from onnx import TensorProto

    eight_bit = (TensorProto.INT8, TensorProto.UINT8)
    count = sum(t.data_type in eight_bit for t in graph.initializer)
    for node in graph.node:
        for attr in node.attribute:
            subs = [attr.g] if attr.type == attr.GRAPH else list(attr.graphs)
            count += sum(_eight_bit_weights(sub) for sub in subs)
    return count


def _gemm_to_matmul(graph: Any) -> None:
    """Rewrite ``Gemm(A, W, C)`` with a constant W as ``MatMul(A, W') + beta·C``, in place."""
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in graph.initializer}
    nodes = []
    for node in graph.node:
        for attr in node.attribute:  # Scan/Loop/If bodies
            if attr.type == attr.GRAPH:
                _gemm_to_matmul(attr.g)
            for sub in attr.graphs:
                _gemm_to_matmul(sub)
        if node.op_type != "Gemm" or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        a = {x.name: helper.get_attribute_value(x) for x in node.attribute}
        weight = inits.get(node.input[1])
        if weight is None or a.get("transA", 0):
            nodes.append(node)  # not a linear map by a stored matrix: left as it is
            continue
        w = numpy_helper.to_array(weight)
        w = (w.T if a.get("transB", 0) else w) * np.float32(a.get("alpha", 1.0))
        tag = node.name or node.output[0]
        w_name = f"{tag}_matmul_weight"
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(w), w_name))
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        if bias is None:
            nodes.append(helper.make_node("MatMul", [node.input[0], w_name], [node.output[0]]))
            continue
        beta = float(a.get("beta", 1.0))
        if beta != 1.0:
            scaled = f"{tag}_beta_bias"
            b_name = f"{tag}_beta"
            graph.initializer.append(numpy_helper.from_array(np.array(beta, np.float32), b_name))
            nodes.append(helper.make_node("Mul", [bias, b_name], [scaled]))
            bias = scaled
        product = f"{tag}_matmul"
        nodes.append(helper.make_node("MatMul", [node.input[0], w_name], [product]))
        nodes.append(helper.make_node("Add", [product, bias], [node.output[0]]))
    del graph.node[:]
    graph.node.extend(nodes)
    # Weights only a Gemm read are now unused: drop them so the file does not keep both.
    used = {name for n in graph.node for name in n.input}
    used |= _outer_references(graph) | {o.name for o in graph.output}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def _outer_references(graph: Any) -> set[str]:
    """Names that nested graphs (Scan bodies) read from ``graph``."""
    names: set[str] = set()
    for node in graph.node:
        for attr in node.attribute:
            subs = [attr.g] if attr.type == attr.GRAPH else list(attr.graphs)
            for sub in subs:
                names |= {name for n in sub.node for name in n.input}
                names |= _outer_references(sub)
    return names


__all__ = ["OP_TYPES", "quantize_onnx"]
