"""The native backend: torch's own fused kernels (oneDNN on CPU, cuDNN on GPU).

It runs the configurations those kernels compute exactly - the plain cells, no reset, no
cell options - through the same entry points ``torch.nn.LSTM`` uses, so a standard layer
costs what ``torch.nn`` costs. Ragged batches go through torch's packed-sequence path;
sequences of length 0, which packing refuses, are taken out of the batch and keep their
state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnkit.cells.base import State

if TYPE_CHECKING:
    from rnnkit.layers.base import RecurrentLayer

_KERNELS = {
    "LSTM": torch.lstm,
    "GRU": torch.gru,
    "RNN_TANH": torch.rnn_tanh,
    "RNN_RELU": torch.rnn_relu,
}


def supports(layer: RecurrentLayer, reset: Tensor | None) -> str | None:
    """None if the native kernels compute this call exactly, else the reason they don't."""
    if layer.kind not in _KERNELS:
        return f"torch has no fused kernel for {layer.kind}"
    options = layer.first_cell.uses_cell_options
    if options:
        return f"torch's fused kernels have no {', '.join(options)}"
    if reset is not None:
        return "torch's fused kernels have no per-sample reset"
    return None


def run(
    layer: RecurrentLayer,
    x: Tensor,
    state: State,
    lengths: Tensor | None,
    reset: Tensor | None,
) -> tuple[Tensor, State]:
    """Run the whole stack on x (T, B, I); state is a tuple of (L*D, B, H) tensors."""
    del reset  # supports() has ruled it out
    T, B, _ = x.shape
    if T == 0:  # only reachable with lengths all 0: nothing runs, the state passes through
        return x.new_zeros(T, B, layer.output_size), tuple(s.clone() for s in state)
    if lengths is not None:
        lengths = lengths.cpu()
        if bool((lengths == T).all()):
            lengths = None  # nothing is padded: the plain kernel is faster than packing
    if lengths is None:
        return _call(layer, x, state, None)
    nonempty = lengths > 0
    if bool(nonempty.all()):
        return _call(layer, x, state, lengths)
    # Length 0 (which packing refuses): run the others; these keep their state, output 0.
    keep = nonempty.nonzero().squeeze(1).to(x.device)
    out = x.new_zeros(T, B, layer.output_size)
    finals = tuple(s.clone() for s in state)
    if keep.numel():
        sub_state = tuple(s.index_select(1, keep) for s in state)
        sub_out, sub_final = _call(layer, x.index_select(1, keep), sub_state, lengths[nonempty])
        out = out.index_copy(1, keep, sub_out)
        finals = tuple(f.index_copy(1, keep, s) for f, s in zip(finals, sub_final, strict=True))
    return out, finals


def _call(
    layer: RecurrentLayer, x: Tensor, state: State, lengths: Tensor | None
) -> tuple[Tensor, State]:
    kernel = _KERNELS[layer.kind]
    hx = state if len(state) > 1 else state[0]
    args = (layer.flat_weights(), layer.bias, layer.num_layers, layer.dropout, layer.training)
    if lengths is None:
        result = kernel(x, hx, *args, layer.bidirectional, False)
        return result[0], tuple(result[1:])
    T = x.size(0)
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    order, unorder = packed.sorted_indices, packed.unsorted_indices
    if isinstance(hx, tuple):
        hx = tuple(h.index_select(1, order) for h in hx)
    else:
        hx = hx.index_select(1, order)
    result = kernel(packed.data, packed.batch_sizes, hx, *args, layer.bidirectional)
    out_packed = PackedSequence(result[0], packed.batch_sizes, order, unorder)
    out, _ = pad_packed_sequence(out_packed, total_length=T)
    return out, tuple(s.index_select(1, unorder) for s in result[1:])
