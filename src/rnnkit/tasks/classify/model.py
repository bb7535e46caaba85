"""The network: :class:`SequenceClassifier` - the inputs standardised with the training
split's channel statistics, averaged every ``downsample`` steps (:func:`aggregate`) and
noisy in training, a recurrent layer over the valid steps, a read-out (``POOLS``) and a
linear layer to the classes, or a deep ensemble of such networks - with its checks of
what it is built with and given.

Apart because it is the one module that holds weights: what reads the model's outputs -
the scoring, the task - imports it, never the other way, and a user's code builds it
with no run's data or options.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit import _checks
from rnnkit.layers.base import RecurrentLayer
from rnnkit.layers.members import AverageProbabilities, Members
from rnnkit.models.lm import CELLS

POOLS = ("last", "mean", "max")


class SequenceClassifier(nn.Module):
    """Normalise -> recurrent layer over the valid steps -> read-out -> linear -> logits.

    ``forward(x, lengths=None)``: x is (B, T, D) raw values, right-padded, ``lengths`` (B,)
    the true lengths (None: all T); returns (B, classes) logits. The channel statistics
    are buffers set from the training split, so a loaded model takes raw series.
    """

    # Buffers (register_buffer in __init__): declared so that they read as tensors.
    mean: Tensor
    std: Tensor

    def __init__(
        self,
        input_size: int,
        num_classes: int,
        cell: str = "gru",
        hidden_size: int = 64,
        num_layers: int = 1,
        bidirectional: bool = True,
        pool: str = "mean",
        dropout: float = 0.0,
        noise: float = 0.0,
        downsample: int = 1,
        mean: Tensor | list[float] | None = None,
        std: Tensor | list[float] | None = None,
        members: int = 1,
    ) -> None:
        super().__init__()
        # isinstance first: a list is unhashable, and `in` a dict failed in Python's words.
        if not isinstance(cell, str) or cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}; got {cell!r}")
        if not isinstance(pool, str) or pool not in POOLS:
            raise ValueError(f"pool must be one of {', '.join(POOLS)}; got {pool!r}")
        # numbers.Integral: a NumPy integer (len(np.unique(y)), y.max() + 1) is one too.
        if not _integer(downsample) or downsample < 1:
            raise ValueError(f"downsample must be a positive integer; got {downsample!r}")
        if not _integer(members) or members < 1:
            raise ValueError(f"members must be a positive integer; got {members!r}")
        if not _integer(num_classes) or num_classes < 2:
            raise ValueError(
                "SequenceClassifier: num_classes must be an integer >= 2 (a classifier "
                f"chooses among classes); got {num_classes!r}"
            )
        downsample, members, num_classes = int(downsample), int(members), int(num_classes)
        # The layers take Python integers; a NumPy one (D = X.shape[1]) is the same number.
        input_size, hidden_size, num_layers = (
            int(v) if _integer(v) else v for v in (input_size, hidden_size, num_layers)
        )
        _checks.probability("SequenceClassifier", "dropout", dropout, upper_open=True)
        finite = isinstance(noise, (int, float)) and not isinstance(noise, bool)
        if not finite or not 0 <= noise < math.inf:
            raise ValueError(
                f"SequenceClassifier: noise must be a finite number >= 0; got {noise!r}"
            )
        self.pool, self.noise, self.downsample = pool, float(noise), downsample
        self.members = members

        def layer() -> RecurrentLayer:
            return CELLS[cell](
                input_size,
                hidden_size,
                num_layers,
                batch_first=True,
                bidirectional=bidirectional,
                dropout=dropout if num_layers > 1 else 0.0,
            )

        self.drop = nn.Dropout(dropout)
        self.rnn: RecurrentLayer | Members
        self.head: nn.Linear | AverageProbabilities
        if members == 1:
            self.rnn = layer()
            self.head = nn.Linear(self.rnn.output_size, num_classes)
        else:  # a deep ensemble: independent members side by side, probabilities averaged
            self.rnn = Members([layer() for _ in range(members)])
            self.head = AverageProbabilities(self.rnn, num_classes)
        mean_t = torch.zeros(input_size) if mean is None else channel_values("mean", mean)
        std_t = torch.ones(input_size) if std is None else channel_values("std", std)
        for name, value in (("mean", mean_t), ("std", std_t)):
            if value.shape != (input_size,):
                raise ValueError(
                    f"SequenceClassifier: {name} must hold one value per channel "
                    f"(input_size = {input_size}); got shape {tuple(value.shape)}"
                )
        if not bool((std_t > 0).all()):
            raise ValueError(
                f"SequenceClassifier: std must be > 0 in every channel (the inputs are "
                f"divided by it); got {std_t.tolist()}"
            )
        # Not in the state dict: config.json's derived statistics rebuild them.
        self.register_buffer("mean", mean_t.float().reshape(input_size), persistent=False)
        self.register_buffer("std", std_t.float().reshape(input_size), persistent=False)

    def features(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """(B, D*H): the read-out of each series before the linear layer (an ensemble's:
        (B, D*K*H), its members' side by side)."""
        z, lengths = self._inputs(x, self._checked(x, lengths))
        out, state = self.rnn(z, lengths=lengths)  # out (B, T, D*H), zero past each end
        return self._pool(out, state, lengths)

    def _checked(self, x: object, lengths: object) -> Tensor:
        """``lengths`` as a CPU long tensor once ``x`` and ``lengths`` are what forward
        takes: a mistake here would otherwise surface deep inside the layer, or not at
        all (a float length truncated, an empty series classified from its bias alone)."""
        owner, size = "SequenceClassifier", self.mean.numel()
        x = _checks.tensor_input(owner, "x", x, f"(B, T, {size}) of raw values")
        if x.dim() != 3 or x.size(-1) != size:
            raise ValueError(
                f"{owner}: x must be (B, T, {size}) raw values (input_size = {size}); got "
                f"shape {tuple(x.shape)}"
            )
        if x.is_complex():  # its imaginary part would be dropped with only a warning
            raise TypeError(f"{owner}: x must hold real values; got {x.dtype}")
        B, T = x.shape[:2]
        # No lengths means every series is T steps long: the same checks apply (returned
        # early, a NaN step made the logits NaN and T = 0 was classified from the bias).
        if lengths is None:
            if B and T == 0:
                raise ValueError(
                    f"{owner}: x must have at least one step (a series of no steps has "
                    f"nothing to classify); got shape {tuple(x.shape)}"
                )
            checked = torch.full((B,), T, dtype=torch.long)
        else:
            checked = _checks.lengths(owner, lengths, T, B)
        if B and not torch.compiler.is_compiling() and int(checked.min()) < 1:
            raise ValueError(
                f"{owner}: lengths must be >= 1 (a series of no steps has nothing to "
                f"classify); got {checked.tolist()}"
            )
        _checks.finite_steps(owner, "x", x, checked)
        return checked

    def _inputs(self, x: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor]:
        """Standardised (averaged, and noisy in training) inputs and their lengths."""
        B, T, _ = x.shape
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long)
        lengths = lengths.to("cpu", torch.long)
        # In the model's dtype: float64 or integer values would reach the layer as such.
        z = (x.to(self.mean.dtype) - self.mean) / self.std
        if self.downsample > 1:
            z, lengths = aggregate(z, lengths, self.downsample)
        if self.training and self.noise > 0:
            z = z + self.noise * torch.randn_like(z)
        return z, lengths

    def _pool(self, out: Tensor, state: Any, lengths: Tensor) -> Tensor:
        B, T, _ = out.shape
        if self.pool == "last":
            h = state[0] if isinstance(state, tuple) else state  # (L*D, B, H)
            D = self.rnn.num_directions
            return h[-D:].transpose(0, 1).reshape(B, -1)
        if self.pool == "mean":
            n = lengths.clamp(min=1).to(out.device, out.dtype).unsqueeze(1)
            return out.sum(1) / n
        valid = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
        masked = out.masked_fill(~valid.to(out.device).unsqueeze(-1), float("-inf"))
        return masked.max(1).values

    def forward(self, x: Tensor, lengths: Tensor | None = None, members: bool = False) -> Tensor:
        """(B, classes) logits; an ensemble's are the log of its mean probabilities.

        ``members=True`` trains an ensemble: the batch holds one batch per member, one after
        the other (K*b series), each member reads its own with its own noise, and the
        result is each member's logits, (K, b, classes).
        """
        if not members:
            return self.head(self.drop(self.features(x, lengths)))
        lengths = self._checked(x, lengths)
        if isinstance(self.rnn, Members):
            assert isinstance(self.head, AverageProbabilities)
            pairs = list(zip(self.rnn.layers, self.head.linear.linears, strict=True))
        else:
            pairs = [(self.rnn, self.head)]
        K = len(pairs)
        logits = []
        for (layer, head), xk, nk in zip(pairs, x.chunk(K), lengths.chunk(K), strict=True):
            z, nk = self._inputs(xk[:, : int(nk.max())], nk)
            out, state = layer(z, lengths=nk)
            logits.append(head(self.drop(self._pool(out, state, nk))))
        return torch.stack(logits)


def _integer(value: object) -> bool:
    """Whether ``value`` is an integer (a Python or NumPy one), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def channel_values(name: str, values: Tensor | list[float]) -> Tensor:
    """``values`` (one number per channel) as a float tensor, refused unless finite."""
    try:
        t = torch.as_tensor(values, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(
            f"SequenceClassifier: {name} must be a list or tensor of numbers, one per "
            f"channel; got {type(values).__name__}"
        ) from None
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"SequenceClassifier: {name} must be finite; got {t.tolist()}")
    return t


def aggregate(x: Tensor, lengths: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Each window of ``k`` steps averaged into one (the last window of a series over its
    valid steps only): (B, ceil(T / k), D) and the new lengths ceil(length / k)."""
    if not _integer(k) or k < 1:
        raise ValueError(f"aggregate: k must be a positive integer (steps per window); got {k!r}")
    B, T, D = x.shape
    windows = -(-T // k)
    valid = (torch.arange(windows * k).unsqueeze(0) < lengths.unsqueeze(1)).to(x.device)
    x = F.pad(x, (0, 0, 0, windows * k - T)).masked_fill(~valid.unsqueeze(-1), 0.0)
    total = x.reshape(B, windows, k, D).sum(2)
    count = valid.reshape(B, windows, k).sum(2, keepdim=True).clamp(min=1).to(x.dtype)
    return total / count, torch.div(lengths + k - 1, k, rounding_mode="floor")
