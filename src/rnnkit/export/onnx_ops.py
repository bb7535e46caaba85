"""A layer's sequence mode written with ONNX's own LSTM, GRU and RNN operators.

ONNX's recurrent operators compute torch's plain cells exactly once the gate blocks are
put in ONNX's order and the two biases side by side:

- LSTM: torch stacks the gates i, f, g, o; ONNX wants i, o, f, c (c is torch's g).
  No peepholes, no clipping, no input-forget coupling.
- GRU: torch stacks r, z, n; ONNX wants z, r, h. ``linear_before_reset=1`` is torch's
  variant, where the reset gate multiplies W_hn h + b_hn after the product.
- RNN: one block; the nonlinearity goes in the ``activations`` attribute.

A stacked layer is one operator per layer; each returns Y (T, D, B, H), which becomes
the (T, B, D*H) input of the next. A runtime then runs each layer as one fused kernel,
where a graph that unrolls the steps, or loops over them, pays per step.

What rnnkit adds to the cells - ``layer_norm``, ``zoneout`` (at evaluation the state is
p * s^{t-1} + (1 - p) * s^t, a blend these operators lack), ``proj_size`` (ONNX's LSTM has
no projection) and the minimal cells - has no place in these operators:
:func:`native_sequence_graph` returns None for them, and :func:`unsupported_reason` says
why. ``recurrent_dropout`` and the dropout between layers act only while training, so
they change nothing here.

With ``lengths`` the operators get ``sequence_lens``: they stop each sequence at its end,
write zeros past it in Y and return the state at its last step in Y_h / Y_c, as rnnkit
does. A sequence of length 0 is the exception: onnxruntime returns a zero state for it,
where rnnkit keeps the initial state, so the graph picks the initial state back for those
sequences (Where on lengths == 0).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, TypedDict

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

if TYPE_CHECKING:
    from rnnkit.layers.base import RecurrentLayer

# rnnkit's kind -> the ONNX operator that computes it.
_OPERATORS = {"LSTM": "LSTM", "GRU": "GRU", "RNN_TANH": "RNN", "RNN_RELU": "RNN"}

# For each operator, torch's gate block that goes in each of ONNX's places.
_GATE_ORDER = {
    "LSTM": (0, 3, 1, 2),  # ONNX i, o, f, c <- torch i, f, g, o
    "GRU": (1, 0, 2),  # ONNX z, r, h <- torch r, z, n
    "RNN": (0,),
}

# The weights the operators take; anything else (layer-norm gains, W_hr) is math they lack.
_PLAIN_WEIGHTS = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"}

# The oldest opset whose recurrent operators, Slice, Squeeze and Where this graph uses as
# written (Squeeze takes its axes as an input from opset 13 on).
MIN_OPSET = 14

METADATA_KEY = "rnnkit"


class _Attributes(TypedDict, total=False):
    """The attributes of ONNX's LSTM/GRU/RNN node that the graph sets."""

    hidden_size: int
    direction: str
    linear_before_reset: int
    activations: list[str]


def unsupported_reason(layer: RecurrentLayer) -> str | None:
    """None if ONNX's recurrent operators compute ``layer`` exactly, else the reason not."""
    kind = layer.kind
    if kind not in _OPERATORS:
        return f"ONNX has no recurrent operator for {kind}"
    cell = layer.first_cell
    if getattr(cell, "layer_norm", False):
        return f"ONNX's {_OPERATORS[kind]} operator has no layer_norm"
    if cell.zoneout > 0:
        return f"ONNX's {_OPERATORS[kind]} operator has no zoneout"
    if getattr(cell, "proj_size", 0):
        return "ONNX's LSTM operator has no projection (proj_size)"
    for k in range(layer.num_layers):
        for d in range(layer.num_directions):
            extra = sorted(set(layer.cell_parameters(k, d)) - _PLAIN_WEIGHTS)
            if extra:
                return f"ONNX's {_OPERATORS[kind]} operator has no {', '.join(extra)}"
    return None


def native_sequence_graph(
    layer: RecurrentLayer, *, lengths: bool, opset: int = 20
) -> onnx.ModelProto | None:
    """The layer's sequence mode as ONNX's recurrent operators; None where they differ.

    Inputs ``x`` (T, B, I) float32, ``lengths`` (B,) int64 when ``lengths`` is true, then
    the states ``h`` (and ``c`` for an LSTM), each (L*D, B, H); outputs ``y`` (T, B, D*H),
    zero past each length, then ``h_out`` (and ``c_out``). T and B are dynamic. The layer's
    weights, read now and cast to float32, are the graph's initializers; the graph computes
    the layer in evaluation mode.
    """
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < MIN_OPSET:
        raise ValueError(
            f"native_sequence_graph: opset must be an int >= {MIN_OPSET}; got {opset!r}"
        )
    if unsupported_reason(layer) is not None:
        return None
    op = _OPERATORS[layer.kind]
    L, D, H, I = layer.num_layers, layer.num_directions, layer.hidden_size, layer.input_size
    state_names = list(layer.first_cell.state_names)  # ["h"] or ["h", "c"]
    out_states = [f"{name}_out" for name in state_names]

    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def const(name: str, value: np.ndarray) -> str:
        if name not in {t.name for t in inits}:
            inits.append(numpy_helper.from_array(value, name))
        return name

    seq_lens = ""
    if lengths:
        seq_lens = "sequence_lens"
        nodes.append(helper.make_node("Cast", ["lengths"], [seq_lens], to=TensorProto.INT32))

    attributes: _Attributes = {"hidden_size": H}
    if D == 2:
        attributes["direction"] = "bidirectional"
    if op == "GRU":
        attributes["linear_before_reset"] = 1
    elif op == "RNN":
        nonlinearity = "Tanh" if layer.kind == "RNN_TANH" else "Relu"
        attributes["activations"] = [nonlinearity] * D

    with torch.no_grad():
        weights = layer.read_weights()
    layer_input = "x"
    finals: dict[str, list[str]] = {name: [] for name in state_names}
    for k in range(L):
        per_direction = [_onnx_weights(op, weights[k][d]) for d in range(D)]
        w = const(f"W_l{k}", np.stack([p[0] for p in per_direction]))
        r = const(f"R_l{k}", np.stack([p[1] for p in per_direction]))
        # With bias every direction has its B (the filter only tells the type checker so).
        biases = [p[2] for p in per_direction if p[2] is not None]
        b = const(f"B_l{k}", np.stack(biases)) if layer.bias else ""
        initial = []
        for name in state_names:
            if L == 1:
                initial.append(name)
                continue
            # States of layer k: rows k*D .. k*D + D - 1 of the (L*D, B, H) state.
            start = const(f"start_l{k}", np.array([k * D], dtype=np.int64))
            end = const(f"end_l{k}", np.array([(k + 1) * D], dtype=np.int64))
            part = f"{name}_l{k}"
            axis0 = const("axis0", np.array([0], dtype=np.int64))
            nodes.append(helper.make_node("Slice", [name, start, end, axis0], [part]))
            initial.append(part)
        y, outs = f"Y_l{k}", [f"{name}_l{k}_last" for name in state_names]
        inputs = [layer_input, w, r, b, seq_lens, *initial]
        nodes.append(helper.make_node(op, inputs, [y, *outs], name=f"{op}_l{k}", **attributes))
        for name, out in zip(state_names, outs, strict=True):
            finals[name].append(out)
        # Y (T, D, B, H) -> (T, B, D*H): directions side by side, as the next layer reads them.
        layer_output = "y" if k == L - 1 else f"y_l{k}"
        if D == 1:
            axis1 = const("axis1", np.array([1], dtype=np.int64))
            nodes.append(helper.make_node("Squeeze", [y, axis1], [layer_output]))
        else:
            moved = f"Y_l{k}_tbdh"
            shape = const(f"shape_l{k}", np.array([0, 0, D * H], dtype=np.int64))
            nodes.append(helper.make_node("Transpose", [y], [moved], perm=[0, 2, 1, 3]))
            nodes.append(helper.make_node("Reshape", [moved, shape], [layer_output]))
        layer_input = layer_output

    if lengths:
        # onnxruntime zeroes the state of a sequence of length 0; rnnkit keeps the initial
        # state, so the graph takes it back where lengths == 0 ((1, B, 1) broadcasts over
        # the L*D rows and the units).
        zero = const("zero_length", np.array(0, dtype=np.int64))
        mask_shape = const("mask_shape", np.array([1, -1, 1], dtype=np.int64))
        nodes.append(helper.make_node("Equal", ["lengths", zero], ["is_empty"]))
        nodes.append(helper.make_node("Reshape", ["is_empty", mask_shape], ["empty"]))
    for name, out_name in zip(state_names, out_states, strict=True):
        last = finals[name]
        stacked = last[0] if L == 1 else f"{name}_stacked"
        if L > 1:
            nodes.append(helper.make_node("Concat", last, [stacked], axis=0))
        if lengths:
            nodes.append(helper.make_node("Where", ["empty", name, stacked], [out_name]))
        else:
            nodes.append(helper.make_node("Identity", [stacked], [out_name]))

    sizes = dict(zip(state_names, layer.first_cell.state_sizes, strict=True))
    graph_inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", "B", I])]
    if lengths:
        graph_inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT64, ["B"]))
    graph_inputs += [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, [L * D, "B", sizes[name]])
        for name in state_names
    ]
    graph_outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["T", "B", D * H])]
    graph_outputs += [
        helper.make_tensor_value_info(out, TensorProto.FLOAT, [L * D, "B", sizes[name]])
        for name, out in zip(state_names, out_states, strict=True)
    ]
    graph = helper.make_graph(
        nodes, f"rnnkit_{layer.kind.lower()}_sequence", graph_inputs, graph_outputs, inits
    )
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(
        graph,
        opset_imports=opsets,
        ir_version=helper.find_min_ir_version_for(opsets),
        producer_name="rnnkit",
    )
    metadata = {
        "format": "rnnkit.onnx",
        "version": 1,
        "mode": "sequence",
        "model": "layer",
        "kind": layer.kind,
        "lengths": bool(lengths),
        "inputs": [i.name for i in graph_inputs],
        "outputs": [o.name for o in graph_outputs],
        "states": [{"name": n, "shape": [L * D, "B", sizes[n]]} for n in state_names],
        "input_size": I,
        "output_size": layer.output_size,
    }
    helper.set_model_props(model, {METADATA_KEY: json.dumps(metadata)})
    return model


def _onnx_weights(
    op: str, p: Mapping[str, torch.Tensor]
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One direction's W (G*H, I), R (G*H, H) and B (2*G*H,) in ONNX's gate order."""
    order = _GATE_ORDER[op]

    def blocks(t: torch.Tensor) -> np.ndarray:
        a = t.detach().to(device="cpu", dtype=torch.float32).numpy()
        parts = np.split(a, len(order), axis=0)
        return np.ascontiguousarray(np.concatenate([parts[g] for g in order], axis=0))

    bias = None
    if "bias_ih" in p:
        bias = np.concatenate([blocks(p["bias_ih"]), blocks(p["bias_hh"])])
    return blocks(p["weight_ih"]), blocks(p["weight_hh"]), bias
