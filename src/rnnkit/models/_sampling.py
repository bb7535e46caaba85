"""Picking a language model's next character, and its whole sampling loop in C++.

:func:`pick_index` is the rule: the inverse of the cumulative distribution of
softmax(logits / temperature) (10.2) at a uniform u, with the unknown class never picked
and, with ``top_k``, only the logits at least as large as the k-th largest kept (all of
those tied with it too, as ``lm_generate`` keeps them). Temperature 0 picks the first of
the largest. The uniforms come from the caller's
``torch.Generator`` in blocks of :data:`BLOCK`, so a seed gives one text whichever loop
runs.

:class:`FusedLoop` runs :meth:`CharLM.sample`'s loop after the prompt - pick, embed, one
step of every stacked layer, head - in ``lm_generate`` of ``rnnkit/kernels/fused_cpu.cpp``.
At batch 1 every product is a matrix-vector one; from Python each costs its dispatch,
several times its arithmetic. The embedding and the first layer's input product are one
table lookup: row v of ``E W_ih^T + b_ih`` is what character v feeds the first layer.
It runs for the plain LSTM, GRU and Elman RNN on the CPU (what torch's one-step kernels
compute); anything else samples through :class:`rnnkit.Stream` in Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.data.vocab import UNK_ID
from rnnkit.layers.base import LayerState, RecurrentLayer

BLOCK = 64  # characters per block of uniforms, and per call of the fused loop
KINDS = {"RNN_TANH": 0, "RNN_RELU": 1, "LSTM": 2, "GRU": 3}  # lm_generate's numbering


def uniforms(generator: torch.Generator | None) -> Tensor:
    """The next :data:`BLOCK` uniforms in [0, 1), float64, from ``generator``."""
    return torch.rand(BLOCK, dtype=torch.float64, generator=generator)


def pick_index(logits: Tensor, u: float, temperature: float, top_k: int | None) -> int:
    """The character sampled from ``logits`` (V,) at the uniform ``u`` (see the module)."""
    z = logits.detach().to("cpu", torch.float64).clone()
    z[UNK_ID] = float("-inf")  # the unknown class is never written
    if temperature == 0:
        return int(z.argmax())  # the first of equal largest, as the fused loop takes
    if top_k is not None and top_k < z.numel():
        kth = torch.topk(z, top_k).values[-1]
        z[z < kth] = float("-inf")
    w = torch.exp((z - z.max()) / temperature)
    total = torch.cumsum(w, 0)
    i = int(torch.searchsorted(total, u * float(total[-1]), right=True))
    return i if i < w.numel() else int(torch.nonzero(w).max())  # u * total rounded up


class FusedLoop:
    """``CharLM.sample``'s loop in C++ for one model, its weights read once (see module)."""

    def __init__(self, model: Any) -> None:  # a CharLM (not imported: it imports this)
        from rnnkit.kernels import fused

        layer = model.rnn
        assert isinstance(layer, RecurrentLayer)
        self.ext = fused.extension()
        self.kind = KINDS[layer.plan().kind]
        weights = [w[0] for w in layer.read_weights()]  # per stacked layer, one direction
        G = weights[0]["weight_hh"].shape[0]  # gate rows: 4H, 3H or H
        zeros = model.head.weight.new_zeros(G)

        def bias(w: Mapping[str, Tensor], name: str) -> Tensor:
            return w[name].detach().contiguous() if name in w else zeros

        first = weights[0]
        self.table = torch.addmm(
            bias(first, "bias_ih"), model.embedding.weight.detach(), first["weight_ih"].detach().t()
        ).contiguous()  # (V, G)
        self.w_ih_t = [w["weight_ih"].detach().t().contiguous() for w in weights[1:]]
        self.b_ih = [bias(w, "bias_ih") for w in weights[1:]]
        self.w_hh_t = [w["weight_hh"].detach().t().contiguous() for w in weights]
        self.b_hh = [bias(w, "bias_hh") for w in weights]
        self.head_t = model.head.weight.detach().t().contiguous()  # (H, V)
        head_b = model.head.bias
        self.head_b = (
            head_b.detach().contiguous()
            if head_b is not None
            else model.head.weight.new_zeros(model.head.out_features)
        )

    @staticmethod
    def for_model(model: Any) -> FusedLoop | None:
        """The fused loop for ``model``, or None where it does not compute the same thing."""
        from rnnkit.backends import native
        from rnnkit.kernels import fused

        layer, head, embedding = model.rnn, model.head, model.embedding
        if not (
            isinstance(layer, RecurrentLayer)
            and type(head) is nn.Linear
            and type(embedding) is nn.Embedding
            and embedding.weight.device.type == "cpu"
            and embedding.weight.dtype in (torch.float32, torch.float64)
            and not torch.is_autocast_enabled("cpu")
        ):
            return None
        plan = layer.plan()
        if plan.kind not in KINDS or native.stepper(plan) is None:  # options torch lacks
            return None
        dtypes = {p.dtype for p in model.parameters()} | {head.weight.dtype}
        if len(dtypes) != 1 or not fused.available():
            return None
        return FusedLoop(model)

    def start(self, state: LayerState) -> tuple[Tensor, Tensor]:
        """h and c, each (L, H) and contiguous, from the layer's state at batch 1."""
        if isinstance(state, tuple):
            h, c = state
            return h[:, 0].contiguous(), c[:, 0].contiguous()
        return state[:, 0].contiguous(), state.new_empty(0)

    def run(
        self,
        logits: Tensor,
        h: Tensor,
        c: Tensor,
        u: Tensor,
        temperature: float,
        top_k: int | None,
    ) -> list[int]:
        """Pick len(u) characters; ``logits`` (V,), ``h`` and ``c`` advance in place."""
        # A top_k of the vocabulary or more keeps every character, as pick_index does; the
        # kernel takes a C int, and 0 for "all" (a larger Python int was a TypeError).
        k = top_k if top_k is not None and top_k < logits.numel() else 0
        return self.ext.lm_generate(
            self.kind, self.table, self.w_ih_t, self.b_ih, self.w_hh_t, self.b_hh,
            self.head_t, self.head_b, h, c, logits, u, float(temperature), k, UNK_ID,
        ).tolist()  # fmt: skip
