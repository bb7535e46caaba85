"""Truncated backpropagation through time over streams (chapter 10.7; Williams & Peng 1990).

Full BPTT through a long text is impossible: the graph would hold every step. Truncated
BPTT cuts the stream into windows of T steps, backpropagates inside each window only, and
carries the hidden state from one window to the next *detached*: the forward pass still
sees the whole past (the model can learn to use context older than T), while gradients
stop at the window's edge (Sutskever 2013, sec. 2.8.6; Karpathy's char-rnn).

- :func:`detach_state` cuts the graph behind a state of any structure.
- :func:`windows` turns any (possibly unbounded) stream of time-major chunks into
  (input, target) windows of T steps.
- :func:`truncated_bptt` runs any ``model(x, state) -> (out, state)`` over windows,
  carrying the detached state.
- :class:`StreamWindows` lays a corpus out as B contiguous streams (char-rnn's batching)
  and reads them window after window, pass after pass, with a position that a checkpoint
  can save and restore exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import torch
from torch import Tensor

from rnnkit import _checks

S = TypeVar("S")


def detach_state(state: S) -> S:
    """``state`` with every tensor detached (tensors, tuples and lists of them, or None)."""
    if state is None:
        return state
    if isinstance(state, Tensor):
        return state.detach()  # type: ignore[return-value]
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    raise TypeError(f"detach_state: expected a tensor or a tuple of them; got {type(state)}")


def windows(chunks: Iterable[Tensor], seq_len: int) -> Iterator[tuple[Tensor, Tensor]]:
    """Cut a stream of (n_i, B, ...) chunks into windows ``(x, y)`` of ``seq_len`` steps.

    ``y`` is ``x`` shifted one step ahead (next-token targets), so consecutive windows
    overlap by one step. The stream may be unbounded; a short tail is dropped.
    """
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len <= 0:
        raise ValueError(f"windows: seq_len must be a positive integer; got {seq_len!r}")
    buffer: Tensor | None = None
    for chunk in chunks:
        buffer = chunk if buffer is None else torch.cat([buffer, chunk])  # (n, B, ...)
        while buffer.size(0) >= seq_len + 1:
            yield buffer[:seq_len], buffer[1 : seq_len + 1]
            buffer = buffer[seq_len:]  # the last target is the next window's first input


def truncated_bptt(
    model: Callable[[Tensor, Any], tuple[Tensor, Any]],
    batches: Iterable[tuple[Tensor, Tensor]],
    state: Any = None,
) -> Iterator[tuple[Tensor, Tensor, Any]]:
    """Run ``model`` over ``batches`` of ``(x, y)``, carrying the state detached.

    Yields ``(out, y, state)`` per window; a loss on ``out`` backpropagates through this
    window only. Works for any model with the ``(x, state) -> (out, state)`` contract.
    """
    for x, y in batches:
        out, state = model(x, detach_state(state))
        yield out, y, state


class StreamWindows:
    """A corpus as B contiguous streams, read T steps at a time (char-rnn's batching).

    The ids are cut into B equal streams; stream b is the b-th slice of the text, so
    consecutive windows of a stream are consecutive text and a carried state stays
    meaningful. After the last window of a pass the streams start again from their
    beginning (``new_pass`` is then True and the carried state must be reset).

    ``rows`` selects the streams this process reads (distributed training: each process
    its own slice of the B streams, so N processes read what one process would).

    Shape:
        ids (N,); each window is x, y of shape (T, len(rows)).
    """

    def __init__(
        self, ids: Tensor, batch_size: int, seq_len: int, rows: slice | None = None
    ) -> None:
        if ids.dim() != 1:
            raise ValueError(f"StreamWindows: ids must be 1-D; got shape {tuple(ids.shape)}")
        # A batch_size or seq_len of 0 ended in a ZeroDivisionError naming neither.
        batch_size = _checks.positive_int("StreamWindows", "batch_size", batch_size)
        seq_len = _checks.positive_int("StreamWindows", "seq_len", seq_len)
        N, B, T = ids.numel(), batch_size, seq_len
        n = (N - 1) // B  # steps per stream; +1 below for the last target
        if n < T:
            raise ValueError(
                f"the text is too short for one window: its {N:,} character(s) cannot fill "
                f"batch_size {B} streams of seq_len {T} (need at least {B * T + 1:,}); "
                "use a longer text or a smaller --batch-size/--seq-len"
            )
        self.seq_len = T
        self.batch_size = B
        # Stream b is ids[b*n : b*n + n + 1]: a strided view, neighbours share one id.
        streams = ids.contiguous().as_strided((B, n + 1), (n, 1))  # (B, n+1)
        self.streams = streams.t()[:, rows or slice(None)].contiguous()  # (n+1, B_rows)
        self.windows_per_pass = n // T
        self.position = 0  # windows read so far, over all passes

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, bool]]:
        return self

    def __next__(self) -> tuple[Tensor, Tensor, bool]:
        """The next ``(x, y, new_pass)``; ids as stored (cast them to long to embed)."""
        k = self.position % self.windows_per_pass
        self.position += 1
        t = k * self.seq_len
        return (
            self.streams[t : t + self.seq_len],
            self.streams[t + 1 : t + self.seq_len + 1],
            k == 0,
        )

    def state_dict(self) -> dict[str, int]:
        return {"position": self.position}

    def load_state_dict(self, data: dict[str, int]) -> None:
        self.position = int(data["position"])
