"""The encoder-decoder (10.19) as two graphs: the encoder over the source, the decoder's step.

Decoding is a loop the caller runs, one target token per step, as with every step graph:

- ``mode="sequence"``: the **encoder**. Inputs ``x`` (S, B) source ids and ``lengths`` (B,)
  (>= 1); outputs what every decoder step reads - ``values`` (B, S, E), ``keys`` (B, S, A),
  ``mask`` (B, S) - and the decoder's initial state: ``summary`` (B, E), ``dec_h``
  (Ld, B, Hd) (and ``dec_c`` for an LSTM decoder), ``feed`` (B, Hd), h̃_0 = 0. The encoder
  layer runs as the other sequence graphs do (a Scan per layer and direction), its ends -
  the source embedding, the summary, the attention keys and the bridge - exported by
  torch's exporter around it.
- ``mode="step"``: one **decoder** step, :meth:`Seq2Seq.step` whole. Inputs ``y_prev`` (B,)
  target ids, the encoder's ``values``, ``keys``, ``mask``, ``summary``, and the state
  ``feed``, ``dec_h`` (, ``dec_c``); outputs ``logits`` (B, V), the next ``feed_out``,
  ``dec_h_out`` (, ``dec_c_out``) and the attention ``weights`` (B, S) (zeros without
  attention). B and S are dynamic; nothing in it loops.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import Tensor, nn

from rnnkit.cells.base import RecurrentCell
from rnnkit.export.parts import Embed, Parts
from rnnkit.seq2seq.attention import Memory
from rnnkit.seq2seq.data import BOS, EOS, PAD, SPECIALS, UNK
from rnnkit.seq2seq.model import DecoderState, Seq2Seq


def _state_names(model: Seq2Seq) -> list[str]:
    first = cast(RecurrentCell, model.cells[0])  # the decoder's cells are rnnkit cells
    lstm = len(first.state_names) == 2
    return ["dec_h", "dec_c"] if lstm else ["dec_h"]


class EncoderTail(nn.Module):
    """From the encoder's outputs to what the decoder reads (``Seq2Seq.encode`` and
    ``init_state`` after the layer)."""

    def __init__(self, model: Seq2Seq) -> None:
        super().__init__()
        self.model = model

    def forward(self, out: Tensor, lengths: Tensor, h_n: Tensor) -> tuple[Tensor, ...]:
        model = self.model
        D = 2 if model.config.bidirectional else 1
        summary = torch.cat(list(h_n[-D:]), dim=-1)  # (B, D*He)
        values = out.transpose(0, 1)  # (B, S, D*He)
        mask = torch.arange(out.size(0))[None, :] < lengths[:, None]  # (B, S)
        memory = Memory(values, model.attention.keys(values), mask, summary)
        state = model.init_state(memory)
        layers = [
            torch.stack([layer[j] for layer in state.layers]) for j in range(len(state.layers[0]))
        ]
        return (values, memory.keys, mask, summary, *layers, state.feed)


class DecoderStep(nn.Module):
    """``Seq2Seq.step`` with the memory and the state as plain tensors."""

    def __init__(self, model: Seq2Seq) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: Tensor) -> tuple[Tensor, ...]:
        y_prev, values, keys, mask, summary, feed, *layers = args
        per_layer = tuple(tuple(s[k] for s in layers) for k in range(layers[0].size(0)))
        memory = Memory(values, keys, mask, summary)
        logits, state, weights = self.model.step(y_prev, DecoderState(per_layer, feed), memory)
        stacked = [torch.stack([layer[j] for layer in state.layers]) for j in range(len(layers))]
        if weights is None:  # no attention: the graph still has its weights output
            weights = torch.zeros_like(mask, dtype=logits.dtype)
        return (logits, state.feed, *stacked, weights)


def encoder_parts(model: Seq2Seq) -> Parts:
    from onnx import TensorProto

    c = model.config
    D = 2 if c.bidirectional else 1
    E = D * c.encoder_hidden
    A = model.attention.keys(torch.zeros(1, 1, E)).size(-1)
    names = _state_names(model)
    outputs: list[tuple[str, int, list[Any]]] = [
        ("values", TensorProto.FLOAT, ["B", "T", E]),
        ("keys", TensorProto.FLOAT, ["B", "T", A]),
        ("mask", TensorProto.BOOL, ["B", "T"]),
        ("summary", TensorProto.FLOAT, ["B", E]),
        *((n, TensorProto.FLOAT, [c.decoder_layers, "B", c.decoder_hidden]) for n in names),
        ("feed", TensorProto.FLOAT, ["B", c.decoder_hidden]),
    ]
    return Parts(
        "seq2seq", model, model.encoder, True, 0, [], Embed(model.src_embed),
        pooled=EncoderTail(model), outputs=outputs, extra=metadata(model, "encoder"),
    )  # fmt: skip


def metadata(model: Seq2Seq, part: str) -> dict[str, Any]:
    c = model.config
    data: dict[str, Any] = {
        "part": part,
        "attention": c.attention,
        "decoder_states": _state_names(model),
        "decoder_layers": c.decoder_layers,
        "decoder_hidden": c.decoder_hidden,
        "specials": {"pad": PAD, "bos": BOS, "eos": EOS, "unk": UNK},
        "src_vocab_size": c.src_vocab_size,
        "tgt_vocab_size": c.tgt_vocab_size,
    }
    run = getattr(model, "rnnkit_config", None)  # set by rnnkit.load: the run's vocabularies
    derived = getattr(run, "derived", None) or {}
    if "source_chars" in derived and "target_chars" in derived:
        data["src_vocab"] = [*SPECIALS, *sorted(set(derived["source_chars"]))]
        data["tgt_vocab"] = [*SPECIALS, *sorted(set(derived["target_chars"]))]
        data["max_target_length"] = derived.get("max_target_length")
    return data


def step_inputs(model: Seq2Seq) -> list[str]:
    return ["y_prev", "values", "keys", "mask", "summary", "feed", *_state_names(model)]


def step_outputs(model: Seq2Seq) -> list[str]:
    return ["logits", "feed_out", *(f"{n}_out" for n in _state_names(model)), "weights"]


def step_example(model: Seq2Seq, batch: int, steps: int, g: torch.Generator) -> list[Tensor]:
    """Random decoder-step inputs: B = batch, S = steps, the last sources shorter."""
    c = model.config
    E = (2 if c.bidirectional else 1) * c.encoder_hidden
    values = torch.randn(batch, steps, E, generator=g)
    keys = model.attention.keys(values).detach()
    lengths = torch.tensor([max(steps - b, 1) for b in range(batch)])
    mask = torch.arange(steps)[None, :] < lengths[:, None]
    layers = [
        torch.randn(c.decoder_layers, batch, c.decoder_hidden, generator=g)
        for _ in _state_names(model)
    ]
    y_prev = torch.randint(0, c.tgt_vocab_size, (batch,), generator=g)
    feed = torch.randn(batch, c.decoder_hidden, generator=g)
    summary = torch.randn(batch, E, generator=g)
    return [y_prev, values, keys, mask, summary, feed, *layers]
