"""ONNX graphs of rnnkit models with the recurrent state as explicit inputs and outputs.

A recurrent model earns its keep in deployment by streaming: one step per new input, the
state carried by the caller. Two graphs serve that:

- ``step``: ``(x_t, state) -> (y_t, state')`` - one step of a unidirectional stack, the
  chapter's recurrence (10.1) with the loop left to the caller. Exported with torch's
  exporter from the reference backend's one-step function, dynamic batch.
- ``sequence``: ``(x, [lengths], state) -> (y, state')`` over a whole (T, B) batch, T and B
  dynamic. Where ONNX's own LSTM/GRU/RNN operators compute the layer exactly
  (:mod:`rnnkit.export.onnx_ops`) they are used; otherwise each layer and direction is an
  ONNX ``Scan`` whose body is the cell's step, exported by torch's exporter. A Scan keeps
  T dynamic (the exporter alone would freeze it) and runs any cell and option.

Graph inputs and outputs follow one contract, also written into the file as JSON under the
metadata key ``rnnkit`` (:func:`read_metadata`): inputs ``x``, ``lengths`` (sequence mode,
when asked for), then one per state (``h``, and ``c`` for an LSTM), each (L·D, B, S);
outputs ``y``, ``h_out`` (, ``c_out``). Models are exported in evaluation mode: dropout
does nothing, zoneout keeps its expected value.

Every export checks itself: it runs the graph in onnxruntime on random input and refuses
(``ValueError``, nothing written) when the result differs from PyTorch's by more than
``tolerance``.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import warnings
from collections.abc import Sequence
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.backends import reference
from rnnkit.cells.base import RecurrentCell
from rnnkit.layers.base import RecurrentLayer

MODES = ("step", "sequence")
FORMAT = "rnnkit.onnx"
OPSET = 20


def export_onnx(
    model: nn.Module,
    path: str | Path | None = None,
    *,
    mode: str = "step",
    lengths: bool = False,
    check: bool = True,
    tolerance: float = 1e-5,
    overwrite: bool = False,
) -> Any:
    """Export ``model`` (an rnnkit layer or a ``CharLM``) as an ONNX graph; returns the ModelProto.

    ``mode="step"`` gives one step with the state as inputs and outputs (unidirectional
    models); ``mode="sequence"`` a whole sequence with dynamic T, and a ``lengths`` input if
    ``lengths=True``. With ``path`` the graph is written there (atomically; an existing
    file is refused unless ``overwrite``). ``check`` runs the graph in onnxruntime first
    and raises ``ValueError`` if it differs from PyTorch's output by more than ``tolerance``.
    """
    if mode not in MODES:
        raise ValueError(f"export_onnx: mode must be 'step' or 'sequence'; got {mode!r}")
    if not isinstance(lengths, bool):
        raise TypeError(f"export_onnx: lengths must be a bool; got {lengths!r}")
    target = _target_path(path, overwrite)
    subject = _Subject.of(model)
    if mode == "step":
        if lengths:
            raise ValueError("export_onnx: lengths applies to mode='sequence'; got mode='step'")
        if subject.layer.bidirectional:
            raise ValueError(
                "export_onnx: mode='step' needs a unidirectional model (a step cannot see the "
                "future); got bidirectional=True - export mode='sequence' instead"
            )
    proto = _step_graph(subject) if mode == "step" else _sequence_graph(subject, lengths)
    _set_metadata(proto, subject.metadata(mode, lengths))
    if check:
        _check(proto, subject, mode, lengths, tolerance)
    if target is not None:
        from rnnkit.train.files import atomic_write

        atomic_write(target, proto.SerializeToString())
    return proto


def read_metadata(model: Any) -> dict[str, Any]:
    """The ``rnnkit`` JSON of an exported ModelProto (or of a file's bytes, read with onnx)."""
    for prop in model.metadata_props:
        if prop.key == "rnnkit":
            data: dict[str, Any] = json.loads(prop.value)
            return data
    raise ValueError("this ONNX graph was not exported by rnnkit (no 'rnnkit' metadata)")


# ---- what is exported ---------------------------------------------------------------


class _Subject:
    """The model, its recurrent layer, and how the graph's ends look for it."""

    def __init__(self, model: nn.Module, layer: RecurrentLayer, kind: str) -> None:
        self.model = copy.deepcopy(model).eval().float()  # the user's module stays as it is
        self.layer: RecurrentLayer = self.model if kind == "layer" else self.model.rnn  # type: ignore[assignment]
        self.kind = kind  # "layer", "char_lm" or "forecast"

    @classmethod
    def of(cls, model: object) -> _Subject:
        from rnnkit.models.lm import CharLM
        from rnnkit.tasks.forecast import ForecastModel

        if isinstance(model, RecurrentLayer):
            return cls(model, model, "layer")
        if isinstance(model, CharLM):
            return cls(model, model.rnn, "char_lm")
        if isinstance(model, ForecastModel):
            return cls(model, model.rnn, "forecast")
        raise TypeError(
            "export_onnx: model must be an rnnkit layer (RNN, LSTM, GRU, MinGRU, MinLSTM), a "
            "CharLM language model or a ForecastModel; got "
            f"{type(model).__name__} (export its recurrent layer, model.rnn, instead)"
        )

    @property
    def state_names(self) -> tuple[str, ...]:
        return self.layer.first_cell.state_names

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return self.layer.first_cell.state_sizes

    @property
    def rows(self) -> int:
        """L·D: rows of each state tensor."""
        return self.layer.num_layers * (2 if self.layer.bidirectional else 1)

    def example_x(self, steps: int | None, batch: int, generator: torch.Generator) -> Tensor:
        shape = (batch,) if steps is None else (steps, batch)
        if self.kind == "char_lm":
            vocab = self.model.head.out_features
            return torch.randint(0, vocab, shape, generator=generator)
        return torch.randn(*shape, self.layer.input_size, generator=generator)

    def example_states(self, batch: int, generator: torch.Generator) -> list[Tensor]:
        return [torch.randn(self.rows, batch, s, generator=generator) for s in self.state_sizes]

    def output_shape(self) -> list[int]:
        """The trailing dimensions of y."""
        if self.kind == "char_lm":
            return [int(self.model.head.out_features)]
        if self.kind == "forecast":
            return [self.model.config.horizon, self.model.outputs]
        return [int(self.layer.output_size)]

    def output_size(self) -> int:
        return int(np.prod(self.output_shape()))

    def metadata(self, mode: str, lengths: bool) -> dict[str, Any]:
        inputs = ["x", *(["lengths"] if lengths else []), *self.state_names]
        data: dict[str, Any] = {
            "format": FORMAT,
            "version": 1,
            "mode": mode,
            "model": self.kind,
            "kind": self.layer.kind,
            "lengths": lengths,
            "inputs": inputs,
            "outputs": ["y", *(f"{n}_out" for n in self.state_names)],
            "states": [
                {"name": n, "shape": [self.rows, "B", s]}
                for n, s in zip(self.state_names, self.state_sizes, strict=True)
            ],
            "input_size": None if self.kind == "char_lm" else self.layer.input_size,
            "output_size": self.output_size(),
        }
        if self.kind == "char_lm":
            data["vocab"] = ["", *self.model.vocab.chars]
            data["unk_id"] = 0
        if self.kind == "forecast":
            # y is raw (..., horizon, outputs): rnnkit.tasks.forecast.ForecastModel.bands
            # turns it into the point forecast and the 80 % interval, in units of the step.
            c = self.model.config
            data["output_shape"] = self.output_shape()
            data["forecast"] = {
                "horizon": c.horizon,
                "seasonality": c.seasonality,
                "scale_window": c.scale_window,
                "head": c.head,
                "interval_scale": float(self.model.interval_scale),
                "features": self.model.features,
            }
        return data

    def run_torch(self, x: Tensor, states: list[Tensor], lengths: Tensor | None) -> list[Tensor]:
        """What the graph must compute, by PyTorch: y and the final states."""
        state: Any = tuple(states) if len(states) > 1 else states[0]
        with torch.no_grad():
            if self.kind == "char_lm":
                e = self.model.embedding(x)
                out, final = self.layer(e, state, lengths=lengths)
                y = self.model.head(out)
            elif self.kind == "forecast":
                y, final = self.model(x, state, lengths=lengths)
            else:
                y, final = self.layer(x, state, lengths=lengths)
        finals = final if isinstance(final, tuple) else (final,)
        return [y, *finals]


# ---- step mode ----------------------------------------------------------------------


class _StepModule(nn.Module):
    """One step of the whole model: (x_t, *states) -> (y_t, *states'), states (L, B, S)."""

    def __init__(self, subject: _Subject) -> None:
        super().__init__()
        self.subject_model = subject.model
        self.layer = subject.layer
        self.kind = subject.kind
        # The reference backend's one-step function: plain tensor code for every cell and
        # option, which the exporter turns into ONNX operators one to one.
        self.step = reference.stepper(subject.layer.plan())

    def forward(self, x: Tensor, *states: Tensor) -> tuple[Tensor, ...]:
        model = self.subject_model
        inp = model.embedding(x) if self.kind == "char_lm" else x
        L = self.layer.num_layers
        per_layer = [tuple(s[k] for s in states) for k in range(L)]
        h, new = self.step(self.layer.read_weights(), inp, per_layer)
        if self.kind == "char_lm":
            y = model.head(h)
        elif self.kind == "forecast":
            shape = (model.config.horizon, model.outputs)
            y = model.head(torch.cat([h, x], dim=-1)).unflatten(-1, shape)
        else:
            y = h
        return (y, *(torch.stack([n[j] for n in new]) for j in range(len(states))))


def _step_graph(subject: _Subject) -> Any:
    g = torch.Generator().manual_seed(0)
    x = subject.example_x(None, 2, g)
    states = [s[: subject.rows] for s in subject.example_states(2, g)]
    batch = torch.export.Dim("B")
    dynamic: dict[str, dict[int, Any]] = {"x": {0: batch}}
    return _torch_export(
        _StepModule(subject),
        (x, *states),
        input_names=["x", *subject.state_names],
        output_names=["y", *(f"{n}_out" for n in subject.state_names)],
        dynamic=(dynamic["x"], tuple({1: batch} for _ in states)),  # forward(x, *states)
    )


def _torch_export(
    module: nn.Module,
    args: tuple[Tensor, ...],
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic: tuple[Any, ...],
) -> Any:
    """torch's exporter, quietly: its progress lines and warnings are not the user's."""
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module.eval(),
                args,
                dynamo=True,
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_shapes=dynamic,
                opset_version=OPSET,
                verbose=False,
            )
    finally:
        quiet.setLevel(level)
    return program.model_proto


# ---- sequence mode ------------------------------------------------------------------


class _CellBody(nn.Module):
    """One step of one cell, as a Scan body: (*states, x_t, valid_t) -> (*states', y_t).

    Where ``valid_t`` is False (past a sequence's end) the state holds and y_t is zero:
    the packed-sequence semantics of the layers' ``lengths``.
    """

    def __init__(self, cell: RecurrentCell, params: dict[str, Tensor]) -> None:
        super().__init__()
        self.cell = cell
        self.names = tuple(params)
        for name, value in params.items():
            self.register_buffer(name, value.detach().clone())

    def forward(self, *args: Tensor) -> tuple[Tensor, ...]:
        *states, x, valid = args
        p = {name: getattr(self, name) for name in self.names}
        new = self.cell.step(p, self.cell.project(p, x), tuple(states), None)
        new = tuple(torch.where(valid, n, s) for n, s in zip(new, states, strict=True))
        y = torch.where(valid, new[0], torch.zeros_like(new[0]))
        return (*new, y)


def _sequence_graph(subject: _Subject, lengths: bool) -> Any:
    from rnnkit.export import onnx_ops

    if subject.kind == "layer":
        native = onnx_ops.native_sequence_graph(subject.layer, lengths=lengths, opset=OPSET)
        if native is not None:
            return native
    return _scan_graph(subject, lengths)


def _scan_graph(subject: _Subject, lengths: bool) -> Any:
    """The stack as one ONNX Scan per layer and direction around the cell's step."""
    import onnx
    from onnx import TensorProto, helper

    layer = subject.layer
    D = 2 if layer.bidirectional else 1
    names = subject.state_names
    nodes: list[Any] = []
    inits: list[Any] = []
    functions: dict[tuple[str, str], Any] = {}
    opsets: dict[str, int] = {"": OPSET}

    def const(name: str, value: np.ndarray) -> str:
        inits.append(onnx.numpy_helper.from_array(value, name))
        return name

    x_type = TensorProto.INT64 if subject.kind == "char_lm" else TensorProto.FLOAT
    x_shape: list[Any] = ["T", "B"] if subject.kind == "char_lm" else ["T", "B", layer.input_size]
    inputs = [helper.make_tensor_value_info("x", x_type, x_shape)]
    if lengths:
        inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT64, ["B"]))
    for n, s in zip(names, subject.state_sizes, strict=True):
        inputs.append(helper.make_tensor_value_info(n, TensorProto.FLOAT, [subject.rows, "B", s]))

    x = "x"
    if subject.kind == "char_lm":
        emb = subject.model.embedding.weight.detach().numpy()
        nodes.append(helper.make_node("Gather", [const("embedding", emb), "x"], ["x_embedded"]))
        x = "x_embedded"

    # valid (T, B, 1): step t lies inside sequence b (all True without lengths).
    const("axis0", np.array([0]))
    nodes.append(helper.make_node("Shape", [x], ["x_shape"]))
    nodes.append(
        helper.make_node("Slice", ["x_shape", const("zero1", np.array([0])),
                                   const("two1", np.array([2]))], ["tb"])
    )  # fmt: skip
    if lengths:
        nodes += [
            helper.make_node("Gather", ["x_shape", const("zero", np.array(0))], ["t_len"]),
            helper.make_node("Range", [const("zero_i", np.array(0)), "t_len",
                                       const("one_i", np.array(1))], ["steps"]),
            helper.make_node("Unsqueeze", ["steps", const("axis1", np.array([1]))], ["steps_col"]),
            helper.make_node("Unsqueeze", ["lengths", "axis0"], ["len_row"]),
            helper.make_node("Less", ["steps_col", "len_row"], ["valid_tb"]),
        ]  # fmt: skip
    else:
        true = helper.make_tensor("true", TensorProto.BOOL, [1], [True])
        nodes.append(helper.make_node("ConstantOfShape", ["tb"], ["valid_tb"], value=true))
    nodes.append(
        helper.make_node("Unsqueeze", ["valid_tb", const("axis2", np.array([2]))], ["valid"])
    )

    finals: dict[str, list[str]] = {n: [] for n in names}
    weights = layer.read_weights()
    g = torch.Generator().manual_seed(0)
    for k, cell in enumerate(layer.cells):
        outs = []
        for d in range(D):
            tag = f"l{k}d{d}_"
            params = dict(weights[k][d])
            body = _body_graph(cell, params, subject, tag, g)
            for fn in body.functions:
                functions[(fn.domain, fn.name)] = fn
            for op in body.opset_import:
                opsets[op.domain] = max(opsets.get(op.domain, 0), op.version)
            row = const(f"{tag}row", np.array(k * D + d))
            init = []
            for n in names:
                nodes.append(helper.make_node("Gather", [n, row], [f"{tag}{n}0"], axis=0))
                init.append(f"{tag}{n}0")
            scan_out = [f"{tag}{n}_final" for n in names] + [f"{tag}y"]
            nodes.append(
                helper.make_node(
                    "Scan",
                    [*init, x, "valid"],
                    scan_out,
                    body=body.graph,
                    num_scan_inputs=2,
                    scan_input_directions=[d, d],
                    scan_output_directions=[d],
                    name=f"{tag}scan",
                )
            )
            for n in names:
                nodes.append(
                    helper.make_node("Unsqueeze", [f"{tag}{n}_final", "axis0"], [f"{tag}{n}_row"])
                )
                finals[n].append(f"{tag}{n}_row")
            outs.append(f"{tag}y")
        if D == 2:
            nodes.append(helper.make_node("Concat", outs, [f"l{k}_out"], axis=-1))
            x = f"l{k}_out"
        else:
            x = outs[0]

    if subject.kind in ("char_lm", "forecast"):
        head = subject.model.head
        w = const("head_weight_t", head.weight.detach().numpy().T.copy())
        b = const("head_bias", head.bias.detach().numpy())
        if subject.kind == "forecast":  # the head reads the features next to h^t
            nodes.append(helper.make_node("Concat", [x, "x"], ["head_in"], axis=-1))
            x = "head_in"
        flat = "y" if subject.kind == "char_lm" else "y_flat"
        nodes += [
            helper.make_node("MatMul", [x, w], ["head_nobias"]),
            helper.make_node("Add", ["head_nobias", b], [flat]),
        ]
        if subject.kind == "forecast":
            shape = const("y_shape", np.array([0, 0, *subject.output_shape()]))
            nodes.append(helper.make_node("Reshape", [flat, shape], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", [x], ["y"]))
    for n in names:
        nodes.append(helper.make_node("Concat", finals[n], [f"{n}_out"], axis=0))

    y_shape = ["T", "B", *subject.output_shape()]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)]
    for n, s in zip(names, subject.state_sizes, strict=True):
        outputs.append(
            helper.make_tensor_value_info(f"{n}_out", TensorProto.FLOAT, [subject.rows, "B", s])
        )
    graph = helper.make_graph(nodes, "rnnkit_sequence", inputs, outputs, initializer=inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
        functions=list(functions.values()),
        producer_name="rnnkit",
    )
    model.ir_version = min(model.ir_version, 10)  # what onnxruntime releases of 2024+ read
    onnx.checker.check_model(model)
    return model


def _body_graph(
    cell: RecurrentCell,
    params: dict[str, Tensor],
    subject: _Subject,
    tag: str,
    g: torch.Generator,
) -> Any:
    """The cell's step exported by torch's exporter, every name prefixed with ``tag``.

    A Scan body may not reuse a name of the graph around it, and each layer and direction
    has a body of its own.
    """
    batch = torch.export.Dim("B")
    size = cell.input_size
    states = [torch.randn(2, s, generator=g) for s in cell.state_sizes]
    x = torch.randn(2, size, generator=g)
    valid = torch.ones(2, 1, dtype=torch.bool)
    names = [f"{n}_in" for n in cell.state_names]
    proto = _torch_export(
        _CellBody(cell, params).eval(),
        (*states, x, valid),
        input_names=[*names, "x_t", "valid_t"],
        output_names=[*(f"{n}_next" for n in cell.state_names), "y_t"],
        dynamic=(tuple({0: batch} for _ in range(len(states) + 2)),),  # forward(*args)
    )
    _prefix_names(proto.graph, tag)
    return proto


def _prefix_names(graph: Any, tag: str) -> None:
    """Rename every value of ``graph`` (not of nested graphs' outer references) to tag+name."""
    rename = {}
    for v in [*graph.input, *graph.output, *graph.value_info]:
        rename[v.name] = tag + v.name
    for init in graph.initializer:
        rename[init.name] = tag + init.name
    for node in graph.node:
        for name in [*node.input, *node.output]:
            if name:
                rename.setdefault(name, tag + name)
        node.name = tag + node.name if node.name else node.name
    for v in [*graph.input, *graph.output, *graph.value_info]:
        v.name = rename[v.name]
    for init in graph.initializer:
        init.name = rename[init.name]
    for node in graph.node:
        node.input[:] = [rename.get(n, n) if n else n for n in node.input]
        node.output[:] = [rename.get(n, n) if n else n for n in node.output]


# ---- metadata, check, file ----------------------------------------------------------


def _set_metadata(proto: Any, data: dict[str, Any]) -> None:
    for prop in list(proto.metadata_props):
        if prop.key == "rnnkit":
            proto.metadata_props.remove(prop)
    entry = proto.metadata_props.add()
    entry.key, entry.value = "rnnkit", json.dumps(data)


def _check(proto: Any, subject: _Subject, mode: str, lengths: bool, tolerance: float) -> None:
    """Run the graph in onnxruntime against PyTorch; ValueError if they differ."""
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(1)
    B = 3
    if mode == "step":
        trials = [(None, None)]
    else:
        trials = [(1, None), (7, torch.tensor([7, 3, 0]) if lengths else None)]
    worst = 0.0
    for steps, lens in trials:
        x = subject.example_x(steps, B, g)
        states = [0.5 * s for s in subject.example_states(B, g)]
        feed = {"x": x.numpy()}
        if lengths:
            lens = lens if lens is not None else torch.full((B,), int(steps or 1))
            feed["lengths"] = lens.numpy()
        feed.update({n: s.numpy() for n, s in zip(subject.state_names, states, strict=True)})
        got = session.run(None, feed)
        if mode == "step":
            expected = _StepModule(subject)(x, *states)
            expected = [t.detach() for t in expected]
        else:
            expected = subject.run_torch(x, states, lens)
        for e, o in zip(expected, got, strict=True):
            worst = max(worst, float(np.abs(e.numpy() - o).max()) if e.numel() else 0.0)
    if not worst <= tolerance:
        raise ValueError(
            f"export_onnx: onnxruntime's output differs from PyTorch's by {worst:.3g} "
            f"(tolerance {tolerance:g}); nothing was written"
        )


def _target_path(path: str | Path | None, overwrite: bool) -> Path | None:
    if path is None:
        return None
    target = Path(path)
    if target.exists() and not overwrite:
        raise ValueError(f"export_onnx: {target} exists; pass overwrite=True to replace it")
    if not target.parent.is_dir():
        raise ValueError(f"export_onnx: the folder of {target} does not exist")
    return target
