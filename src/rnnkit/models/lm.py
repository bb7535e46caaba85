"""A character-level language model: the chapter's motivating example (section 10.1).

The model reads text one character at a time and predicts the next one; its recurrent
state is what "remembers" what was already read or generated:

    e^t       = Embed(x^t)                      (B, E)
    h^t, s^t  = RNN(e^t, s^{t-1})               any rnnkit layer: RNN, LSTM, GRU, ...
    p(x^{t+1}) = softmax(W_hy h^t + b_y)        (10.2), y^t = g(w_hy h^t)

Generation samples x^{t+1} from p and feeds it back as the next input, carrying the
state (Karpathy's char-rnn, 2015; Graves 2013, "Generating sequences with RNNs").
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit import _checks
from rnnkit.data.vocab import Vocabulary
from rnnkit.layers import GRU, LSTM, RNN, MinGRU, MinLSTM
from rnnkit.layers.base import LayerState, RecurrentLayer
from rnnkit.models._config import config_from_dict
from rnnkit.models._sampling import BLOCK, FusedLoop, pick_index, uniforms

# The recurrent layers a language model can be built from, by the name the CLI takes.
# A new cell joins by adding its layer class here.
CELLS: dict[str, type[RecurrentLayer]] = {
    "rnn": RNN,
    "lstm": LSTM,
    "gru": GRU,
    "mingru": MinGRU,
    "minlstm": MinLSTM,
}


@dataclass
class CharLMConfig:
    """Everything needed to rebuild a :class:`CharLM` besides its vocabulary."""

    vocab_size: int  # characters + 1 unknown class; taken from the vocabulary
    cell: str = "lstm"  # the recurrent layer, a key of CELLS; LSTM as in the chapter
    num_layers: int = 2  # stacked layers; 2 is char-rnn's default
    hidden_size: int = (
        128  # H of every layer: ~0.26 M parameters as an LSTM, learns in minutes on a CPU
    )
    embed_size: int = 64  # E; one-hot inputs would waste an H x V matmul per step
    dropout: float = 0.0  # on the embeddings, between layers and before the head
    forget_bias: float | None = None  # gated cells' forget/update-gate bias (None: torch's init)

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}; got {self.cell!r}")
        for name in ("vocab_size", "num_layers", "hidden_size", "embed_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size must be at least 2; got {self.vocab_size}")
        if not _is_number(self.dropout) or not 0.0 <= float(self.dropout) < 1.0:
            raise ValueError(f"dropout must lie in [0, 1); got {self.dropout!r}")
        self.dropout = float(self.dropout)
        if self.forget_bias is not None:
            if self.cell == "rnn":
                raise ValueError("forget_bias needs a gated cell (lstm or gru); got cell 'rnn'")
            if not _is_number(self.forget_bias):
                raise ValueError(f"forget_bias must be a number; got {self.forget_bias!r}")
            self.forget_bias = float(self.forget_bias)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: object, where: str = "model config") -> CharLMConfig:
        return config_from_dict(cls, data, where=where)


class CharLM(nn.Module):
    """Embedding -> rnnkit recurrent layer -> linear head over the vocabulary.

    Shape:
        ids (T, B) long; logits (T, B, V); state as the layer's: (L, B, H), or (h, c).

    Example:
        >>> vocab = Vocabulary.from_text("hello world")
        >>> model = CharLM(CharLMConfig(vocab_size=len(vocab), hidden_size=16), vocab)
        >>> logits, state = model(vocab.encode("hello").unsqueeze(1))
        >>> tuple(logits.shape)
        (5, 1, 9)
    """

    def __init__(self, config: CharLMConfig, vocab: Vocabulary) -> None:
        super().__init__()
        if len(vocab) != config.vocab_size:
            raise ValueError(
                f"CharLM: config.vocab_size must equal len(vocab); "
                f"expected {len(vocab)}, got {config.vocab_size}"
            )
        self.config = config
        self.vocab = vocab
        V, E, H, L = config.vocab_size, config.embed_size, config.hidden_size, config.num_layers
        self.embedding = nn.Embedding(V, E)
        self.drop = nn.Dropout(config.dropout)
        # Between-layer dropout is the layer's own (Zaremba et al. 2014: non-recurrent
        # connections only), so the fused kernel still runs.
        # Jozefowicz et al. 2015: a forget-gate bias of 1 lets gradients flow from the start.
        options: dict[str, Any] = (
            {} if config.forget_bias is None else {"forget_bias": config.forget_bias}
        )
        self.rnn = CELLS[config.cell](E, H, L, dropout=config.dropout if L > 1 else 0.0, **options)
        self.head = nn.Linear(H, V)

    def forward(self, ids: Tensor, state: LayerState | None = None) -> tuple[Tensor, LayerState]:
        """Logits for the character after each of ``ids`` (T, B), and the final state."""
        if not isinstance(ids, Tensor) or ids.dim() != 2 or ids.dtype != torch.long:
            got = (
                f"{ids.dtype} tensor of shape {tuple(ids.shape)}"
                if isinstance(ids, Tensor)
                else type(ids).__name__
            )
            raise ValueError(f"CharLM: ids must be a (T, B) long tensor; got {got}")
        e = self.drop(self.embedding(ids))  # (T, B, E)
        out, state = self.rnn(e, state)  # (T, B, H)
        return self.head(self.drop(out)), state  # (T, B, V)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def sample(
        self,
        prompt: str = "",
        length: int = 200,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Iterator[str]:
        """Yield ``length`` sampled characters, one at a time, after priming on ``prompt``.

        ``temperature`` divides the logits (0 picks the most likely character, the first
        of equal ones); ``top_k`` keeps only the k most likely characters (every one whose
        logit is at least the k-th largest: more than k on a tie). The unknown class is never
        sampled; a character of ``prompt`` outside the vocabulary is read as that class.
        Same ``generator`` seed, same text.

        On the CPU a plain LSTM, GRU or Elman RNN samples in one C++ loop
        (:class:`rnnkit.models._sampling.FusedLoop`), any other model one
        :class:`rnnkit.Stream` step per character; both pick by the same rule
        (:func:`rnnkit.models._sampling.pick_index`) from the same uniforms.
        """
        # Checked before the loop: a float length, a string temperature or a float top_k
        # ended in Python's or the fused loop's own TypeError, naming no argument.
        if not isinstance(prompt, str):
            raise TypeError(f"CharLM.sample: prompt must be a str; got {type(prompt).__name__}")
        _checks.non_negative_int("CharLM.sample", "length", length)
        # Infinity too is refused: the two loops disagreed on it (uniform text from the
        # fused one, one repeated character from the other), and the CLI takes no infinity.
        # An int past float's range is refused as infinity is (float() would overflow).
        if not _is_number(temperature) or not 0 <= _as_float(temperature) < math.inf:
            raise ValueError(
                f"CharLM.sample: temperature must be a finite number >= 0; got {temperature!r}"
            )
        temperature = float(temperature)
        if top_k is not None:
            _checks.positive_int("CharLM.sample", "top_k", top_k)
        was_training = self.training
        self.eval()
        try:
            # The embedding tells the device: a quantized head (rnnkit.quantize) has no
            # weight tensor, only a weight() method.
            device = self.embedding.weight.device
            # With no prompt, start as at the top of a file: after a newline.
            start = "\n" if "\n" in self.vocab else self.vocab.chars[0]
            ids = self.vocab.encode(prompt or start).to(device)
            logits, state = self(ids.unsqueeze(1))  # primes the state on the whole prompt
            last = logits[-1, 0]  # (V,)
            fused = FusedLoop.for_model(self)
            if fused is not None:  # the whole loop in C++: docs/language-model.md, generation
                h, c = fused.start(state)
                last = last.contiguous()
                for done in range(0, length, BLOCK):
                    u = uniforms(generator)[: length - done]
                    for nxt in fused.run(last, h, c, u, temperature, top_k):
                        yield self.vocab.decode([nxt])
                return
            # Otherwise one character at a time through a Stream's one-step path: half the
            # cost of a whole-sequence call of length 1.
            # (Imported here: rnnkit.stream imports rnnkit.train, which imports this module.)
            from rnnkit.stream import Stream

            stream = Stream(self.rnn)
            stream.state = state
            for done in range(0, length, BLOCK):
                for u in uniforms(generator)[: length - done].tolist():
                    nxt = pick_index(last, u, temperature, top_k)
                    yield self.vocab.decode([nxt])
                    e = self.embedding(torch.tensor([nxt], device=device))  # (1, E)
                    last = self.head(stream.step(e))[0]  # (V,)
        finally:
            self.train(was_training)


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _is_number(value: object) -> bool:
    # Any real number type is one: NumPy's np.float32, a value read from an array, is
    # no Python float.
    return isinstance(value, numbers.Real) and not isinstance(value, bool)
