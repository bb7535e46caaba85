"""The encoder-decoder of chapter 10.19, with attention and input feeding.

"The encoder reads the input sequence and outputs a vector. The decoder reads the vector
and produces the output sequence." Here:

- the encoder is any rnnkit layer (RNN, LSTM, GRU, MinGRU, MinLSTM; stacked, uni- or
  bidirectional) run with ``lengths``, so padding never enters its state;
- its final state (both directions of the top layer) is the chapter's vector; a linear
  bridge with tanh turns it into the decoder's initial hidden state;
- the decoder is a stack of rnnkit cells (any of them) stepped one token at a time, in
  the global attention model of Luong et al. 2015 (sec. 3):

      x_t  = [emb(y_{t-1}); h̃_{t-1}]          (input feeding, sec. 3.3)
      h_t  = cells(x_t, h_{t-1})
      c_t  = attention(h_t, h̄_1..h̄_S)         (eq. 7-8)
      h̃_t = tanh(W_c [c_t; h_t])               (eq. 5)
      p(y_t | y_<t, x) = softmax(W_s h̃_t)      (eq. 6)

  With ``attention="none"`` c_t is the fixed vector at every step (the bottleneck).

Decoding never re-runs the prefix: :meth:`Seq2Seq.step` takes the previous token and the
decoder state and returns the next logits and state. The teacher-forced :meth:`forward`
runs the very same step, so both compute the same numbers.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import rnnkit
from rnnkit.cells.base import RecurrentCell
from rnnkit.seq2seq.attention import KINDS, Attention, Memory
from rnnkit.seq2seq.data import PAD, SPECIALS, UNK


def _exported(base: type) -> dict[str, type]:
    """rnnkit's public subclasses of ``base`` by lower-case name ("lstm", "gru", ...), so
    that every layer and cell rnnkit exports can be an encoder or a decoder."""
    found = {}
    for value in vars(rnnkit).values():
        if isinstance(value, type) and issubclass(value, base) and value is not base:
            found[value.__name__.lower().removesuffix("cell")] = value
    return dict(sorted(found.items()))


ENCODERS: dict[str, type[rnnkit.RecurrentLayer]] = _exported(rnnkit.RecurrentLayer)
DECODER_CELLS: dict[str, type[RecurrentCell]] = _exported(RecurrentCell)


@dataclass
class Seq2SeqConfig:
    """Sizes and kinds of the encoder-decoder; stored in a run's ``config.json``."""

    src_vocab_size: int  # source characters + 4 specials
    tgt_vocab_size: int  # target characters + 4 specials
    embed_size: int = 32  # characters need few dimensions
    encoder: str = "gru"  # any rnnkit layer by name: rnn | lstm | gru | ...
    encoder_hidden: int = 128  # per direction
    encoder_layers: int = 1
    bidirectional: bool = True  # h̄_s sees the whole input, as in Bahdanau et al. 2015
    decoder: str = "gru"  # any rnnkit cell by name: rnn | lstm | gru | ...
    decoder_hidden: int = 128
    decoder_layers: int = 1
    attention: str = "general"  # none | additive | dot | general
    input_feeding: bool = True  # Luong et al. 2015, sec. 3.3
    dropout: float = 0.0  # between stacked layers and before the output layer

    def __post_init__(self) -> None:
        for name, known in (("encoder", ENCODERS), ("decoder", DECODER_CELLS)):
            if getattr(self, name) not in known:
                raise ValueError(
                    f"Seq2SeqConfig: {name} must be one of {', '.join(known)}; "
                    f"got {getattr(self, name)!r}"
                )
        if self.attention not in KINDS:
            raise ValueError(
                f"Seq2SeqConfig: attention must be one of {', '.join(KINDS)}; "
                f"got {self.attention!r}"
            )
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                # Any integer type is one (NumPy's np.int64 from a vocabulary's len or a
                # config), stored as a plain int.
                if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                    raise TypeError(f"Seq2SeqConfig: {f.name} must be an integer; got {value!r}")
                if value <= 0:
                    raise ValueError(f"Seq2SeqConfig: {f.name} must be positive; got {value}")
                setattr(self, f.name, int(value))
            if f.type == "bool" and not isinstance(value, bool):
                # bidirectional="no" was read as True (a non-empty string), 0 as False.
                raise TypeError(f"Seq2SeqConfig: {f.name} must be True or False; got {value!r}")
        if self.tgt_vocab_size < 3:
            # The decoders rule out padding (0) and begin (1) and stop at end (2): with fewer
            # ids they failed with "index out of range in self" or scored every output -inf.
            raise ValueError(
                "Seq2SeqConfig: tgt_vocab_size must be at least 3 (ids 0, 1, 2 are padding, "
                f"begin and end of sequence); got {self.tgt_vocab_size}"
            )
        out = self.encoder_hidden * (2 if self.bidirectional else 1)
        if self.attention == "dot" and self.decoder_hidden != out:
            directions = "2 directions" if self.bidirectional else "1 direction"
            raise ValueError(
                "Seq2SeqConfig: attention 'dot' needs the decoder hidden size to equal the "
                f"encoder output size: decoder_hidden must be {out} (encoder_hidden "
                f"{self.encoder_hidden} x {directions}); got {self.decoder_hidden} "
                "(use 'general')"
            )
        number = isinstance(self.dropout, (int, float)) and not isinstance(self.dropout, bool)
        if not number or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"Seq2SeqConfig: dropout must lie in [0, 1); got {self.dropout!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Seq2SeqConfig:
        if not isinstance(data, dict):
            raise TypeError(f"Seq2SeqConfig: expected a JSON object; got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"Seq2SeqConfig: unknown keys {unknown}; expected some of {sorted(known)}"
            )
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DecoderState(NamedTuple):
    """Everything the next decoder step needs: per-layer cell states and h̃_{t-1}."""

    layers: tuple[tuple[Tensor, ...], ...]  # per layer (h,) or (h, c), each (B, Hd)
    feed: Tensor  # (B, Hd) the previous attentional state h̃_{t-1}

    def index_select(self, index: Tensor) -> DecoderState:
        """The state of the rows ``index`` (beam search reorders hypotheses)."""
        layers = tuple(tuple(s.index_select(0, index) for s in layer) for layer in self.layers)
        return DecoderState(layers, self.feed.index_select(0, index))


class Seq2Seq(nn.Module):
    """Encoder-decoder with optional attention (see the module docstring).

    Shape:
        src (S, B) token ids, right-padded; src_lengths (B,) >= 1; tgt_in (T, B) starting
        with BOS; returns logits (T, B, V_tgt).
    """

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        self.config = c = config
        D = 2 if c.bidirectional else 1
        E = D * c.encoder_hidden  # size of h̄_s and of the summary vector
        self.src_embed = nn.Embedding(c.src_vocab_size, c.embed_size, padding_idx=0)
        self.encoder = ENCODERS[c.encoder](
            c.embed_size,
            c.encoder_hidden,
            num_layers=c.encoder_layers,
            dropout=c.dropout if c.encoder_layers > 1 else 0.0,
            bidirectional=c.bidirectional,
        )
        self.bridge = nn.Linear(E, c.decoder_layers * c.decoder_hidden)
        self.tgt_embed = nn.Embedding(c.tgt_vocab_size, c.embed_size, padding_idx=0)
        feed = c.decoder_hidden if c.input_feeding else 0
        cell = DECODER_CELLS[c.decoder]
        self.cells = nn.ModuleList(
            cell(c.embed_size + feed if k == 0 else c.decoder_hidden, c.decoder_hidden)
            for k in range(c.decoder_layers)
        )
        self.attention = Attention(c.attention, c.decoder_hidden, E)
        self.combine = nn.Linear(E + c.decoder_hidden, c.decoder_hidden)  # W_c, eq. 5
        self.head = nn.Linear(c.decoder_hidden, c.tgt_vocab_size)  # W_s, eq. 6
        self.drop = nn.Dropout(c.dropout)

    def _cells(self) -> Sequence[RecurrentCell]:
        """The decoder's cells: ``self.cells`` (an nn.ModuleList, which types its items
        as plain Modules) holds only cells of :data:`DECODER_CELLS`."""
        return cast(Sequence[RecurrentCell], self.cells)

    # ---- encoder ----------------------------------------------------------------------

    def encode(self, src: Tensor, src_lengths: Tensor) -> Memory:
        """Run the encoder; returns what every decoder step reads."""
        _check_ids("src", "(S, B)", src, self.config.src_vocab_size)
        S, B = src.shape
        if S == 0:  # the layer said "lengths must lie in [0, T] = [0, 0]"
            raise ValueError(f"Seq2Seq: src must have S >= 1 steps; got shape {tuple(src.shape)}")
        if B == 0:  # src_lengths.min() said "Expected reduction dim to be specified ..."
            raise ValueError(f"Seq2Seq: src must have B >= 1 columns; got shape {tuple(src.shape)}")
        # A list or an int ended in "'list' object has no attribute 'numel'", a float or 2-D
        # tensor in the encoder's own words ("GRU: lengths must ...").
        if not isinstance(src_lengths, Tensor):
            raise TypeError(
                "Seq2Seq: src_lengths must be an integer tensor (B,) of lengths; got "
                f"{type(src_lengths).__name__}"
            )
        kind = src_lengths.dtype
        if (
            kind.is_floating_point
            or kind.is_complex
            or kind == torch.bool
            or src_lengths.dim() != 1
        ):
            raise TypeError(
                "Seq2Seq: src_lengths must be an integer tensor (B,) of lengths; got "
                f"{kind} tensor of shape {tuple(src_lengths.shape)}"
            )
        if src_lengths.numel() != B or int(src_lengths.min()) < 1:
            raise ValueError(
                f"Seq2Seq: src_lengths must have B = {B} entries, each >= 1; got "
                f"{src_lengths.tolist()}"
            )
        # <pad> inside a length reads as the zero embedding, a silent hole in the source: ids
        # built by the caller's own vocabulary can collide with rnnkit's specials.
        valid = torch.arange(S, device=src.device)[:, None] < src_lengths.to(src.device)[None, :]
        holes = (src == PAD) & valid
        if bool(holes.any()):
            t, b = holes.nonzero()[0].tolist()
            raise ValueError(
                f"Seq2Seq: src must not hold the padding id {PAD} within src_lengths (ids "
                f"{PAD}-{UNK} are {', '.join(SPECIALS)}); got it at step {t} of column {b}, "
                f"whose length is {int(src_lengths[b])}"
            )
        x = self.src_embed(src)  # (S, B, emb)
        out, state = self.encoder(x, lengths=src_lengths)  # out (S, B, D*He), zero past end
        h = state[0] if isinstance(state, tuple) else state  # (L*D, B, He)
        D = 2 if self.config.bidirectional else 1
        summary = torch.cat(list(h[-D:]), dim=-1)  # (B, D*He): top layer, both directions
        values = out.transpose(0, 1)  # (B, S, D*He)
        mask = torch.arange(S, device=src.device)[None, :] < src_lengths.to(src.device)[:, None]
        return Memory(values, self.attention.keys(values), mask, summary)

    def init_state(self, memory: Memory) -> DecoderState:
        """Decoder state before the first step: the bridged summary vector, h̃_0 = 0."""
        c = self.config
        B = memory.summary.size(0)
        h0 = torch.tanh(self.bridge(memory.summary)).view(B, c.decoder_layers, -1)
        extra = len(self._cells()[0].state_names) - 1  # the LSTM's c starts at zero
        layers = tuple(
            (h0[:, k], *(torch.zeros_like(h0[:, k]) for _ in range(extra)))
            for k in range(c.decoder_layers)
        )
        return DecoderState(layers, memory.summary.new_zeros(B, c.decoder_hidden))

    # ---- decoder ----------------------------------------------------------------------

    def step(
        self, y_prev: Tensor, state: DecoderState, memory: Memory
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """One decoder step: previous tokens (B,) -> logits (B, V), new state, weights (B, S)."""
        x = self.tgt_embed(y_prev)  # (B, emb)
        if self.config.input_feeding:
            x = torch.cat([x, state.feed], dim=-1)  # (B, emb + Hd)
        layers = []
        for k, cell in enumerate(self._cells()):
            p = cell.own_parameters()
            s = cell.step(p, cell.project(p, x), state.layers[k], None)
            layers.append(s)
            x = self.drop(s[0]) if k + 1 < len(self.cells) else s[0]
        context, weights = self.attention(x, memory)  # c_t (B, E), a_t (B, S)
        h_tilde = torch.tanh(self.combine(torch.cat([context, x], dim=-1)))  # eq. 5
        logits = self.head(self.drop(h_tilde))  # eq. 6
        return logits, DecoderState(tuple(layers), h_tilde), weights

    def forward(
        self,
        src: Tensor,
        src_lengths: Tensor,
        tgt_in: Tensor,
        *,
        sampling_probability: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Teacher-forced logits (T, B, V) for ``tgt_in`` (T, B).

        ``sampling_probability`` > 0 is scheduled sampling (Bengio et al. 2015): at each
        step after the first, each sample reads the model's own previous prediction
        instead of the true token with this probability.
        """
        _check_ids("tgt_in", "(T, B)", tgt_in, self.config.tgt_vocab_size)
        memory = self.encode(src, src_lengths)
        T, B = tgt_in.shape
        # No steps ended in "index 0 is out of bounds", another batch size in torch.cat's
        # "Sizes of tensors must match".
        if T == 0 or src.size(1) != B:
            raise ValueError(
                f"Seq2Seq: tgt_in must have T >= 1 steps and B = {src.size(1)} columns as src; "
                f"got shape {tuple(tgt_in.shape)}"
            )
        state = self.init_state(memory)
        logits_t: list[Tensor] = []
        y = tgt_in[0]
        for t in range(tgt_in.size(0)):
            if t > 0:
                y = tgt_in[t]
                if sampling_probability > 0:
                    own = logits_t[-1].detach().argmax(-1)  # (B,)
                    u = torch.rand(y.shape, generator=generator, device=y.device)
                    y = torch.where((u < sampling_probability) & (y != 0), own, y)
            logits, state, _ = self.step(y, state, memory)
            logits_t.append(logits)
        return torch.stack(logits_t)  # (T, B, V)


def _check_ids(name: str, shape: str, ids: object, vocab: int) -> None:
    """Refuse what the embedding would refuse in its own words ("index out of range in
    self", "Expected tensor for argument #1 'indices' ..."), naming the argument: the
    exported graphs' runner (``deploy``) refuses the same inputs."""
    expected = f"Seq2Seq: {name} must be an integer tensor {shape} of ids; got"
    if not isinstance(ids, Tensor):
        raise TypeError(f"{expected} {type(ids).__name__}")
    kind = ids.dtype
    if kind.is_floating_point or kind.is_complex or kind == torch.bool or ids.dim() != 2:
        raise TypeError(f"{expected} {kind} tensor of shape {tuple(ids.shape)}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
        raise ValueError(
            f"Seq2Seq: {name} must hold ids in [0, {vocab}); got values in "
            f"[{int(ids.min())}, {int(ids.max())}]"
        )


def sequence_loss(logits: Tensor, tgt_out: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy per target token, padding ignored; optional label smoothing
    (Szegedy et al. 2016, sec. 7)."""
    V = logits.size(-1)
    return F.cross_entropy(
        logits.reshape(-1, V),  # (T*B, V)
        tgt_out.reshape(-1),
        ignore_index=0,
        label_smoothing=label_smoothing,
    )
