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
outputs ``y``, ``h_out`` (, ``c_out``). A sequence graph is time-major whatever the
layer's ``batch_first`` (metadata ``layout``: ``"time_major"``; ``batch_first``: the
layer's own flag). Models are exported in evaluation mode: dropout does nothing, zoneout
keeps its expected value.

Every export checks itself: it runs the graph in onnxruntime on random input and refuses
(``ValueError``, nothing written) when the result differs from PyTorch's by more than
``tolerance`` in |difference| / (1 + |PyTorch's value|).
"""

from __future__ import annotations

import copy
import io
import json
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from rnnkit.backends import reference
from rnnkit.cells.base import RecurrentCell
from rnnkit.export.parts import Embed, Parts, parts_of

MODES = ("step", "sequence")
FORMAT = "rnnkit.onnx"
LAYOUT = "time_major"  # a sequence graph's axis order (metadata "layout"): x (T, B, ...)
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
    and raises ``ValueError`` if it differs from PyTorch's output by more than ``tolerance``
    in |difference| / (1 + |PyTorch's value|).
    """
    if mode not in MODES:
        raise ValueError(f"export_onnx: mode must be 'step' or 'sequence'; got {mode!r}")
    if not isinstance(lengths, bool):
        raise TypeError(f"export_onnx: lengths must be a bool; got {lengths!r}")
    if not isinstance(check, bool):
        raise TypeError(f"export_onnx: check must be a bool; got {check!r}")
    # A negative tolerance refused every graph as "differs by 6e-08 (tolerance -1)".
    number = isinstance(tolerance, (int, float)) and not isinstance(tolerance, bool)
    if not number or not tolerance >= 0:
        raise ValueError(f"export_onnx: tolerance must be a number >= 0; got {tolerance!r}")
    target = _target_path("export_onnx", "path", path, overwrite)
    subject = _Subject.of(model)
    if subject.kind == "seq2seq":
        proto = _seq2seq_graph(subject, mode, lengths, check, tolerance)
    else:
        proto = _graph(subject, mode, lengths, check, tolerance)
    if target is not None:
        from rnnkit.train.files import atomic_write

        with writing("export_onnx", target):
            atomic_write(target, proto.SerializeToString())
    return proto


@contextmanager
def writing(where: str, path: Path) -> Iterator[None]:
    """The system's refusal to write ``path`` (permissions, a file system that takes no
    files, a full disk) said in one line naming ``where`` and ``path``, not the temporary
    file the atomic write makes first."""
    try:
        yield
    except OSError as err:
        raise type(err)(
            f"{where}: cannot write {path} ({err.strerror or err}); expected a file in a "
            "folder you may write to"
        ) from None


def _graph(subject: _Subject, mode: str, lengths: bool, check: bool, tolerance: float) -> Any:
    if mode == "step":
        if lengths:
            raise ValueError("export_onnx: lengths applies to mode='sequence'; got mode='step'")
        if subject.parts.pooled is not None:
            raise ValueError(
                f"export_onnx: mode='step' needs an output at every step; a {subject.kind} "
                "answers after the whole sequence - export mode='sequence' instead (rnnkit export "
                "--mode sequence)"
            )
        if subject.layer.bidirectional:
            raise ValueError(
                "export_onnx: mode='step' needs a unidirectional model (a step cannot see the "
                "future); got bidirectional=True - export mode='sequence' instead (rnnkit export "
                "--mode sequence)"
            )
    proto = _step_graph(subject) if mode == "step" else _sequence_graph(subject, lengths)
    _set_metadata(proto, subject.metadata(mode, lengths))
    if check:
        _check(proto, subject, mode, lengths, tolerance)
    return proto


def _seq2seq_graph(
    subject: _Subject, mode: str, lengths: bool, check: bool, tolerance: float
) -> Any:
    """The encoder (sequence mode, always with lengths) or the decoder's step."""
    from rnnkit.export import seq2seq
    from rnnkit.seq2seq.model import Seq2Seq

    model = cast(Seq2Seq, subject.model)  # _Subject.of took a Seq2Seq apart for this
    if mode == "sequence":
        # Source lengths are part of the encoder's meaning (attention masks padding).
        proto = _scan_graph(subject, lengths=True)
        _set_metadata(proto, subject.metadata(mode, True))
        if check:
            _check(proto, subject, mode, True, tolerance)
        return proto
    del lengths  # a decoder step has none
    g = torch.Generator().manual_seed(0)
    example = seq2seq.step_example(model, 3, 5, g)
    batch, steps = torch.export.Dim("B"), torch.export.Dim("S")
    dims: list[dict[int, Any]] = [{0: batch}, {0: batch, 1: steps}, {0: batch, 1: steps},
                                  {0: batch, 1: steps}, {0: batch}, {0: batch}]  # fmt: skip
    dims += [{1: batch} for _ in example[6:]]
    step = seq2seq.DecoderStep(model)
    proto = _torch_export(
        step,
        tuple(example),
        input_names=seq2seq.step_inputs(model),
        output_names=seq2seq.step_outputs(model),
        dynamic=(tuple(dims),),  # forward(*args)
    )
    meta = {
        "format": FORMAT,
        "version": 1,
        "mode": "step",
        "model": "seq2seq",
        "kind": cast(RecurrentCell, model.cells[0]).kind,
        "lengths": False,
        "inputs": seq2seq.step_inputs(model),
        "outputs": seq2seq.step_outputs(model),
        "states": [],
        "input_size": None,
        "output_size": model.config.tgt_vocab_size,
        **seq2seq.metadata(model, "decoder"),
    }
    _set_metadata(proto, meta)
    if check:
        import onnxruntime as ort

        session = ort.InferenceSession(
            proto.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        trial = seq2seq.step_example(model, 2, 7, torch.Generator().manual_seed(1))
        got = session.run(None, {n: t.numpy() for n, t in zip(meta["inputs"], trial, strict=True)})
        with torch.no_grad():
            want = step(*trial)
        _compare(got, want, tolerance)
    return proto


def _compare(got: Sequence[Any], expected: Sequence[Tensor], tolerance: float) -> None:
    """Refuse a graph whose outputs differ from PyTorch's by more than ``tolerance`` in
    |difference| / (1 + |PyTorch's value|): absolute for values up to about 1, relative
    above, as float32 rounding grows with the value (a minLSTM's unbounded state, logits)."""
    worst = 0.0
    for e, o in zip(expected, got, strict=True):
        if e.numel():
            ref = e.double().numpy()
            gap = np.abs(ref - o.astype(np.float64)) / (1 + np.abs(ref))
            worst = max(worst, float(gap.max()))
    if not worst <= tolerance:
        raise ValueError(
            f"export_onnx: onnxruntime's output differs from PyTorch's by {worst:.3g} "
            f"(|difference| / (1 + |PyTorch's|), tolerance {tolerance:g}); nothing was written"
        )


def read_metadata(model: Any) -> dict[str, Any]:
    """The ``rnnkit`` JSON of an exported graph: a ModelProto, the path of its file or
    its bytes."""
    model = _load_graph("read_metadata", "model", model)
    for prop in model.metadata_props:
        if prop.key == "rnnkit":
            data: dict[str, Any] = json.loads(prop.value)
            return data
    raise ValueError("this ONNX graph was not exported by rnnkit (no 'rnnkit' metadata)")


def _load_graph(where: str, name: str, graph: Any) -> Any:
    """The ModelProto of ``graph`` (a ModelProto, a file's path or its bytes), or a
    one-line refusal naming argument ``name`` of ``where``."""
    import onnx

    if isinstance(graph, onnx.ModelProto):
        return graph
    if not isinstance(graph, (str, os.PathLike, bytes)):
        # A path was read as a ModelProto: "'str' object has no attribute 'metadata_props'".
        raise TypeError(
            f"{where}: {name} must be an onnx.ModelProto, the path of an ONNX file or its "
            f"bytes; got {type(graph).__name__}"
        )
    if not isinstance(graph, bytes) and not os.path.isfile(graph):
        what = "a directory" if os.path.isdir(graph) else "no such file"
        raise ValueError(f"{where}: {name} must be an ONNX file; got {os.fspath(graph)!r}, {what}")
    try:
        return onnx.load_from_string(graph) if isinstance(graph, bytes) else onnx.load(graph)
    except Exception:  # protobuf's DecodeError (untyped): its words name no file nor call
        shown = "the given bytes" if isinstance(graph, bytes) else repr(os.fspath(graph))
        raise ValueError(
            f"{where}: {name} must be an ONNX graph; {shown} does not parse as one"
        ) from None


# ---- what is exported ---------------------------------------------------------------


class _Subject:
    """The model in parts (:mod:`rnnkit.export.parts`) and how the graph's ends look."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.model = parts.model
        self.layer = parts.layer
        self.kind = parts.kind

    @classmethod
    def of(cls, model: object) -> _Subject:
        if not isinstance(model, nn.Module):
            parts_of(model)  # raises the one-line TypeError naming what was given
        from rnnkit.export.seq2seq import encoder_parts
        from rnnkit.seq2seq.model import Seq2Seq

        # parts_of refused anything but a module above; the user's module stays as it is.
        own = copy.deepcopy(cast(nn.Module, model)).eval().float()
        return cls(encoder_parts(own) if isinstance(own, Seq2Seq) else parts_of(own))

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
        if self.parts.ids:
            assert self.parts.pre is not None
            vocab = cast(Embed, self.parts.pre).embedding.num_embeddings  # ids: an Embed
            return torch.randint(0, vocab, shape, generator=generator)
        return torch.randn(*shape, self.parts.features, generator=generator)

    def example_states(self, batch: int, generator: torch.Generator) -> list[Tensor]:
        return [torch.randn(self.rows, batch, s, generator=generator) for s in self.state_sizes]

    def output_shape(self) -> list[int]:
        """The trailing dimensions of y."""
        return list(self.parts.output_shape)

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
            "input_size": None if self.parts.ids else self.parts.features,
            "output_size": self.output_size(),
        }
        if self.parts.ids:
            assert self.parts.pre is not None
            pre = cast(Embed, self.parts.pre)  # ids: an Embed reads them
            data["vocab_size"] = int(pre.embedding.num_embeddings)  # ids in [0, V)
        if self.parts.outputs is not None:
            data["outputs"] = [name for name, _, _ in self.parts.outputs]
            data["output_size"] = None
        if mode == "sequence":
            # The graph's axis order, whatever the layer's: x is (T, B, ...), and so is y
            # where it has a step axis. A batch_first layer's own (B, T, ...) is transposed
            # by the caller (deploy.run_sequence(batch_first=True)).
            data["layout"] = LAYOUT
            data["batch_first"] = bool(self.layer.batch_first)
        data.update(self.parts.extra)
        return data

    def run_torch(self, x: Tensor, states: list[Tensor], lengths: Tensor | None) -> list[Tensor]:
        """What the graph must compute, by PyTorch: y and the final states."""
        state: Any = tuple(states) if len(states) > 1 else states[0]
        with torch.no_grad():
            y, final = self.parts.run(x, state, lengths)
        if isinstance(y, tuple):  # several named outputs replace y and the states
            return list(y)
        finals = final if isinstance(final, tuple) else (final,)
        return [y, *finals]


# ---- step mode ----------------------------------------------------------------------


class _StepModule(nn.Module):
    """One step of the whole model: (x_t, *states) -> (y_t, *states'), states (L, B, S)."""

    def __init__(self, subject: _Subject) -> None:
        super().__init__()
        # Registered as submodules, so the graph's weights keep their module names
        # (pre.embedding.weight, post.linear.weight, layer.weight_hh_l0, ...).
        self.pre = subject.parts.pre
        self.post = subject.parts.post
        self.layer = subject.layer
        # The reference backend's one-step function: plain tensor code for every cell and
        # option, which the exporter turns into ONNX operators one to one.
        self.step = reference.stepper(subject.layer.plan())

    def forward(self, x: Tensor, *states: Tensor) -> tuple[Tensor, ...]:
        inp = x if self.pre is None else self.pre(x)
        L = self.layer.num_layers
        per_layer = [tuple(s[k] for s in states) for k in range(L)]
        h, new = self.step(self.layer.read_weights(), inp, per_layer)
        y = h if self.post is None else self.post(h, x)
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
    assert program is not None  # dynamo=True always returns an ONNXProgram
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


class _GraphBuilder:
    """Nodes, initializers, local functions and opsets of the graph being assembled."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.functions: dict[tuple[str, str], Any] = {}
        self.opsets: dict[str, int] = {"": OPSET}

    def node(self, op: str, inputs: list[str], outputs: list[str], **attrs: Any) -> None:
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, outputs, **attrs))

    def const(self, name: str, value: np.ndarray) -> str:
        import onnx

        self.inits.append(onnx.numpy_helper.from_array(value, name))
        return name

    def absorb(self, proto: Any) -> None:
        """Take in a sub-model's local functions and opsets (its graph goes elsewhere)."""
        for fn in proto.functions:
            self.functions[(fn.domain, fn.name)] = fn
        for op in proto.opset_import:
            self.opsets[op.domain] = max(self.opsets.get(op.domain, 0), op.version)

    def inline(
        self,
        module: nn.Module,
        args: tuple[Tensor, ...],
        dynamic: tuple[dict[int, Any], ...],
        tag: str,
        feeds: list[str],
        results: list[str],
    ) -> None:
        """Export ``module`` with torch's exporter and wire it in: feeds -> it -> results."""
        from onnx import helper

        proto = _torch_export(
            module,
            args,
            input_names=[f"arg{i}" for i in range(len(args))],
            output_names=[f"res{j}" for j in range(len(results))],
            dynamic=dynamic,
        )
        graph = proto.graph
        _prefix_names(graph, tag)
        for value in graph.input:  # the exporter may drop an input the module never reads
            i = int(value.name[len(tag) + 3 :])
            self.nodes.append(helper.make_node("Identity", [feeds[i]], [value.name]))
        self.nodes.extend(graph.node)
        self.inits.extend(graph.initializer)
        for value, name in zip(graph.output, results, strict=True):
            self.nodes.append(helper.make_node("Identity", [value.name], [name]))
        self.absorb(proto)


def _scan_graph(subject: _Subject, lengths: bool) -> Any:
    """The stack as one ONNX Scan per layer and direction around the cell's step, with the
    model's own ends (:mod:`rnnkit.export.parts`) exported around it."""
    import onnx
    from onnx import TensorProto, helper

    parts, layer = subject.parts, subject.layer
    D = 2 if layer.bidirectional else 1
    names = subject.state_names
    g = _GraphBuilder()
    gen = torch.Generator().manual_seed(0)
    T_dim, B_dim = torch.export.Dim("T"), torch.export.Dim("B")

    x_type = TensorProto.INT64 if parts.ids else TensorProto.FLOAT
    x_shape: list[Any] = ["T", "B"] if parts.ids else ["T", "B", parts.features]
    inputs = [helper.make_tensor_value_info("x", x_type, x_shape)]
    if lengths:
        inputs.append(helper.make_tensor_value_info("lengths", TensorProto.INT64, ["B"]))
    for n, size in zip(names, subject.state_sizes, strict=True):
        inputs.append(
            helper.make_tensor_value_info(n, TensorProto.FLOAT, [subject.rows, "B", size])
        )

    x_example = subject.example_x(5, 3, gen)
    x_dyn = {0: T_dim, 1: B_dim}
    x = "x"
    if parts.pre is not None:
        g.inline(parts.pre, (x_example,), (x_dyn,), "pre_", ["x"], ["layer_in"])
        x = "layer_in"

    # valid (T, B, 1): step t lies inside sequence b (all True without lengths).
    g.const("axis0", np.array([0]))
    g.node("Shape", ["x"], ["x_shape"])
    g.node("Slice", ["x_shape", g.const("zero1", np.array([0])), g.const("two1", np.array([2]))],
           ["tb"])  # fmt: skip
    g.node("Gather", ["x_shape", g.const("zero", np.array(0))], ["t_len"])
    if lengths:
        g.node("Range", [g.const("zero_i", np.array(0)), "t_len", g.const("one_i", np.array(1))],
               ["steps"])  # fmt: skip
        g.node("Unsqueeze", ["steps", g.const("axis1", np.array([1]))], ["steps_col"])
        g.node("Unsqueeze", ["lengths", "axis0"], ["len_row"])
        g.node("Less", ["steps_col", "len_row"], ["valid_tb"])
    else:
        true = helper.make_tensor("true", TensorProto.BOOL, [1], [True])
        g.node("ConstantOfShape", ["tb"], ["valid_tb"], value=true)
    g.node("Unsqueeze", ["valid_tb", g.const("axis2", np.array([2]))], ["valid"])

    finals: dict[str, list[str]] = {n: [] for n in names}
    weights = layer.read_weights()
    for k, cell in enumerate(layer.cells):
        outs = []
        for d in range(D):
            tag = f"l{k}d{d}_"
            body = _body_graph(cast(RecurrentCell, cell), dict(weights[k][d]), tag, gen)
            g.absorb(body)
            row = g.const(f"{tag}row", np.array(k * D + d))
            init = []
            for n in names:
                g.node("Gather", [n, row], [f"{tag}{n}0"], axis=0)
                init.append(f"{tag}{n}0")
            g.node(
                "Scan",
                [*init, x, "valid"],
                [*(f"{tag}{n}_final" for n in names), f"{tag}y"],
                body=body.graph,
                num_scan_inputs=2,
                scan_input_directions=[d, d],
                scan_output_directions=[d],
                name=f"{tag}scan",
            )
            for n in names:
                g.node("Unsqueeze", [f"{tag}{n}_final", "axis0"], [f"{tag}{n}_row"])
                finals[n].append(f"{tag}{n}_row")
            outs.append(f"{tag}y")
        if D == 2:
            g.node("Concat", outs, [f"l{k}_out"], axis=-1)
            x = f"l{k}_out"
        else:
            x = outs[0]
    for n in names:
        g.node("Concat", finals[n], [f"{n}_out"], axis=0)

    out_example = torch.randn(5, 3, layer.output_size, generator=gen)
    if parts.pooled is not None:
        if not lengths:  # every sequence runs all T steps
            g.node("Gather", ["x_shape", g.const("one", np.array(1))], ["b_len"])
            g.node("Unsqueeze", ["b_len", "axis0"], ["b_shape"])
            g.node("Expand", ["t_len", "b_shape"], ["lengths_all"])
        h_example = torch.randn(subject.rows, 3, subject.state_sizes[0], generator=gen)
        results = ["y"] if parts.outputs is None else [name for name, _, _ in parts.outputs]
        g.inline(
            parts.pooled,
            (out_example, torch.tensor([5, 2, 1]), h_example),
            (x_dyn, {0: B_dim}, {1: B_dim}),
            "pool_",
            [x, "lengths" if lengths else "lengths_all", f"{names[0]}_out"],
            results,
        )
    elif parts.post is not None:
        g.inline(parts.post, (out_example, x_example), (x_dyn, x_dyn), "post_", [x, "x"], ["y"])
    else:
        g.node("Identity", [x], ["y"])

    if parts.outputs is not None:
        outputs = [helper.make_tensor_value_info(n, t, shape) for n, t, shape in parts.outputs]
    else:
        y_shape = (["B"] if parts.pooled is not None else ["T", "B"]) + subject.output_shape()
        outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)]
        for n, size in zip(names, subject.state_sizes, strict=True):
            outputs.append(
                helper.make_tensor_value_info(
                    f"{n}_out", TensorProto.FLOAT, [subject.rows, "B", size]
                )
            )
    graph = helper.make_graph(g.nodes, "rnnkit_sequence", inputs, outputs, initializer=g.inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in g.opsets.items()],
        functions=list(g.functions.values()),
        producer_name="rnnkit",
    )
    model.ir_version = min(model.ir_version, 10)  # what onnxruntime releases of 2024+ read
    onnx.checker.check_model(model)
    return model


def _body_graph(
    cell: RecurrentCell,
    params: dict[str, Tensor],
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
    trials: list[tuple[int | None, Tensor | None]]  # (steps, lengths) per trial
    if mode == "step":
        trials = [(None, None)]
    else:
        trials = [(1, None), (7, torch.tensor([7, 3, 0]) if lengths else None)]
    pairs: list[tuple[Tensor, Any]] = []
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
        pairs += list(zip(expected, got, strict=True))
    _compare([o for _, o in pairs], [e for e, _ in pairs], tolerance)


def _target_path(where: str, name: str, path: str | Path | None, overwrite: object) -> Path | None:
    """The file ``path`` (argument ``name`` of ``where``) may be written to, or a one-line
    refusal before anything is: a writer that takes a path checks it here, once."""
    # "no" would read as True and replace the user's file.
    if not isinstance(overwrite, bool):
        raise TypeError(f"{where}: overwrite must be True or False; got {overwrite!r}")
    if path is None:
        return None
    if not isinstance(path, (str, os.PathLike)):
        # Path(5) said "expected str, bytes or os.PathLike object", naming no argument.
        raise TypeError(f"{where}: {name} must be a file path or None; got {type(path).__name__}")
    from rnnkit.train.files import writable_file

    return writable_file(where, name, path, overwrite)
