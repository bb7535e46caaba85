"""Each exportable model as three parts: what feeds its recurrent layer, the layer, the read-out.

Every rnnkit task model is "input encoding -> a stack of rnnkit layers -> read-out". The
export runs the layer as the recurrence (a step function, or a Scan per layer and
direction) and the two ends as ordinary per-step modules, so one export serves them all:

- ``pre(x)``: what the layer reads at each step (an embedding, standardisation, nothing);
- ``post(out, x)``: the output at each step from the layer's output (a linear read-out,
  the forecaster's head that also reads the step's features, nothing);
- ``pooled(out, lengths, h_n)``: instead of ``post``, a read-out after the whole sequence
  (the classifier's last/mean/max pooling then its linear layer), which has no step form.

:func:`parts_of` builds them for a model and checks, once, that ``post(layer(pre(x)))`` is
the model's own forward - the tests hold every kind to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor, nn

from rnnkit.layers.base import RecurrentLayer


@dataclass
class Parts:
    """A model taken apart for export; ``kind`` names it in the graph's metadata."""

    kind: str  # "layer", "char_lm", "forecast", "tagger", "classifier", "memory"
    model: nn.Module
    layer: RecurrentLayer
    ids: bool  # x holds integer ids (an embedding reads them) rather than features
    features: int  # trailing size of x when not ids
    output_shape: list[int]  # trailing dimensions of y
    pre: nn.Module | None = None
    post: nn.Module | None = None
    pooled: nn.Module | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # kind-specific metadata
    # When ``pooled`` returns several tensors: (name, ONNX element type, shape) of each,
    # which replace the graph's outputs (the seq2seq encoder's memory and decoder state).
    outputs: list[tuple[str, int, list[Any]]] | None = None

    @property
    def stepwise(self) -> bool:
        """Whether the model has a step form (an output per step, no future needed)."""
        return self.pooled is None and not self.layer.bidirectional

    def run(self, x: Tensor, state: Any, lengths: Tensor | None) -> tuple[Tensor, Any]:
        """The model in parts on time-major x (T, B, ...): (y, final state)."""
        e = x if self.pre is None else self.pre(x)
        bf = self.layer.batch_first
        out, final = self.layer(e.transpose(0, 1) if bf else e, state, lengths=lengths)
        out = out.transpose(0, 1) if bf else out
        if self.pooled is not None:
            h_n = final[0] if isinstance(final, tuple) else final
            T, B = x.shape[:2]
            n = torch.full((B,), T) if lengths is None else lengths
            return self.pooled(out, n, h_n), final
        return (out if self.post is None else self.post(out, x)), final


class Embed(nn.Module):
    def __init__(self, embedding: nn.Embedding) -> None:
        super().__init__()
        self.embedding = embedding

    def forward(self, x: Tensor) -> Tensor:
        return self.embedding(x)


class Standardize(nn.Module):
    """(x - mean) / std with the training split's statistics, as the model does."""

    # Buffers (register_buffer in __init__): declared so that they read as tensors.
    mean: Tensor
    std: Tensor

    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.detach().clone().float())
        self.register_buffer("std", std.detach().clone().float())

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class Head(nn.Module):
    """A linear read-out of the layer's output (and of the step's input, for a forecaster):
    an ``nn.Linear``, or an ensemble's head over its members' units (``AverageBands``)."""

    def __init__(
        self, linear: nn.Module, reads_input: bool = False, shape: tuple[int, ...] = ()
    ) -> None:
        super().__init__()
        self.linear = linear
        self.reads_input = reads_input
        self.shape = shape

    def forward(self, out: Tensor, x: Tensor) -> Tensor:
        y = self.linear(torch.cat([out, x], dim=-1) if self.reads_input else out)
        return y.unflatten(-1, self.shape) if self.shape else y


class PoolHead(nn.Module):
    """The classifier's read-out after the whole sequence: pool the steps, then a linear
    (an ``nn.Linear``, or an ensemble's ``AverageProbabilities``)."""

    def __init__(self, linear: nn.Module, pool: str, directions: int) -> None:
        super().__init__()
        self.linear = linear
        self.pool = pool
        self.directions = directions

    def forward(self, out: Tensor, lengths: Tensor, h_n: Tensor) -> Tensor:
        # out (T, B, D*H), zero past each end; lengths (B,); h_n (L*D, B, H)
        if self.pool == "last":
            B = out.size(1)
            feats = h_n[-self.directions :].transpose(0, 1).reshape(B, -1)
        elif self.pool == "mean":
            n = lengths.clamp(min=1).to(out.dtype).unsqueeze(1)
            feats = out.sum(0) / n
        else:
            steps = torch.arange(out.size(0)).unsqueeze(1)
            valid = (steps < lengths.unsqueeze(0)).unsqueeze(-1)  # (T, B, 1)
            feats = out.masked_fill(~valid, float("-inf")).amax(0)
        return self.linear(feats)


def _layer(rnn: nn.Module) -> RecurrentLayer:
    """The model's recurrent layer; an ensemble's members as one block-diagonal layer."""
    from rnnkit.layers.members import Members

    return rnn.block_diagonal() if isinstance(rnn, Members) else cast(RecurrentLayer, rnn)


def parts_of(model: object) -> Parts:
    """The parts of an exportable model, or TypeError/ValueError naming what is not.

    The encoder-decoder's encoder is taken apart by :func:`rnnkit.export.seq2seq.encoder_parts`.
    """
    from rnnkit.models.lm import CharLM
    from rnnkit.models.memory import MemoryModel
    from rnnkit.tasks.classify import SequenceClassifier
    from rnnkit.tasks.forecast import ForecastModel
    from rnnkit.tasks.tag import Tagger

    if isinstance(model, RecurrentLayer):
        return Parts("layer", model, model, False, model.input_size, [model.output_size])
    if isinstance(model, CharLM):
        V = model.head.out_features
        return Parts(
            "char_lm", model, model.rnn, True, 0, [V], Embed(model.embedding), _head(model.head),
            extra={"vocab": ["", *model.vocab.chars], "unk_id": 0},
        )  # fmt: skip
    if isinstance(model, ForecastModel):
        c = model.config
        shape = (c.horizon, model.outputs)
        return Parts(
            "forecast", model, _layer(model.rnn), False, model.features, list(shape), None,
            Head(model.head, reads_input=True, shape=shape),
            extra={
                "output_shape": list(shape),
                "forecast": {
                    "horizon": c.horizon,
                    "seasonality": c.seasonality,
                    "scale_window": c.scale_window,
                    "anchor": c.anchor,
                    "head": c.head,
                    "interval_scale": float(model.interval_scale),
                    "correction": float(model.correction),
                    "features": model.features,
                },
            },
        )  # fmt: skip
    if isinstance(model, Tagger):
        tc = model.config
        pre = (
            Embed(model.embedding)
            if model.embedding is not None
            else Standardize(model.mean, model.std)
        )
        return Parts(
            "tagger", model, model.rnn, model.embedding is not None, tc.num_features,
            [tc.num_tags], pre, _head(model.head), extra={"num_tags": tc.num_tags, **_names(model)},
        )  # fmt: skip
    if isinstance(model, SequenceClassifier):
        if model.downsample > 1:
            raise ValueError(
                "export_onnx: a classifier that averages windows of steps (downsample="
                f"{model.downsample}) has no exact graph here; expected downsample=1"
            )
        classes = model.head.out_features
        return Parts(
            "classifier", model, _layer(model.rnn), False, model.rnn.input_size, [classes],
            Standardize(model.mean, model.std),
            pooled=PoolHead(model.head, model.pool, model.rnn.num_directions),
            extra={"classes": classes, "pool": model.pool, **_names(model)},
        )  # fmt: skip
    if isinstance(model, MemoryModel):
        embedding = model.embed if isinstance(model.embed, nn.Embedding) else None
        ids = embedding is not None
        outputs = model.head.out_features
        return Parts(
            "memory", model, model.rnn, ids, 0 if ids else model.rnn.input_size, [outputs],
            None if embedding is None else Embed(embedding), _head(model.head),
        )  # fmt: skip
    raise TypeError(
        "export_onnx: model must be an rnnkit layer or the model of an rnnkit task (CharLM, "
        "ForecastModel, Tagger, SequenceClassifier, MemoryModel, Seq2Seq); got "
        f"{type(model).__name__} (export one of its rnnkit layers instead)"
    )


def _names(model: nn.Module) -> dict[str, Any]:
    """What a runner needs to read a tagger's or classifier's graph without its run
    folder, from the run :func:`rnnkit.load` read it from: the characters of the ids
    (``vocab[id]``; id 0, ``""``, the unknown class), the tag or class name of each output."""
    run = getattr(model, "rnnkit_config", None)
    derived = getattr(run, "derived", None) or {}
    names: dict[str, Any] = {}
    if isinstance(derived.get("vocab"), dict) and isinstance(derived["vocab"].get("chars"), str):
        names.update(vocab=["", *derived["vocab"]["chars"]], unk_id=0)
    if isinstance(derived.get("tags"), list):
        names["tag_names"] = [str(t) for t in derived["tags"]]
    if isinstance(derived.get("classes"), list):
        names["class_names"] = [str(c) for c in derived["classes"]]
    return names


def _head(linear: nn.Linear) -> Head:
    return Head(linear)
