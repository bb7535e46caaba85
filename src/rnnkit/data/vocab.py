"""A character vocabulary with an unknown-character class.

Id 0 is reserved for characters the vocabulary does not hold, so a model trained on one
text can score any other text: an unseen character costs what the model gives the
unknown class instead of a crash. The other ids follow the sorted characters of the
training text, which makes the vocabulary a pure function of that text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

UNK_ID = 0
UNK_TEXT = "\ufffd"  # how decode() shows the unknown class: U+FFFD REPLACEMENT CHARACTER


class Vocabulary:
    """Characters to ids and back; ``len(vocab)`` counts the unknown class.

    Example:
        >>> vocab = Vocabulary.from_text("hello")
        >>> vocab.decode(vocab.encode("hole!"))
        'hole\ufffd'
    """

    def __init__(self, chars: Sequence[str]) -> None:
        chars = list(chars)
        for ch in chars:
            if not isinstance(ch, str) or len(ch) != 1:
                raise ValueError(f"Vocabulary: each entry must be one character; got {ch!r}")
        if len(set(chars)) != len(chars):
            twice = next(ch for k, ch in enumerate(chars) if ch in chars[:k])
            raise ValueError(f"Vocabulary: characters must be unique; got {twice!r} twice")
        self.chars: list[str] = chars
        self._ids = {ch: i + 1 for i, ch in enumerate(chars)}  # 0 is the unknown class
        # A code-point lookup table makes encoding a vectorised gather: the default
        # corpus has ~12 million characters, too many for a Python loop.
        top = max((ord(ch) for ch in chars), default=0) + 1
        self._table = np.zeros(top, dtype=np.int32)
        for ch, i in self._ids.items():
            self._table[ord(ch)] = i

    @classmethod
    def from_text(cls, text: str | Iterable[str], min_count: int = 1) -> Vocabulary:
        """The sorted distinct characters of ``text`` (a string or several).

        Characters seen fewer than ``min_count`` times are left to the unknown class: a
        few stray symbols would otherwise each cost a row of the embedding and the head.
        A ``min_count`` that would leave no character at all is refused.
        """
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"Vocabulary: min_count must be a positive integer; got {min_count!r}")
        # Read as given, an int ended in "'int' object is not iterable" and a list of
        # numbers in an AttributeError from inside the encoder.
        expected = "Vocabulary.from_text: text must be a str or an iterable of str; got"
        if not isinstance(text, (str, Iterable)):
            raise TypeError(f"{expected} {type(text).__name__}")
        parts = [text] if isinstance(text, str) else list(text)
        for k, part in enumerate(parts):
            if not isinstance(part, str):
                raise TypeError(f"{expected} item {k} of type {type(part).__name__}")
        counts: dict[int, int] = {}
        for part in parts:
            codes, n = np.unique(_code_points(part), return_counts=True)
            for c, k in zip(codes.tolist(), n.tolist(), strict=True):
                counts[c] = counts.get(c, 0) + k
        top = max(counts.values(), default=min_count)
        if top < min_count:  # a vocabulary of the unknown class alone: nothing to learn
            raise ValueError(
                f"Vocabulary.from_text: min_count {min_count} leaves no character; the most "
                f"frequent one is seen {top:,} time(s)"
            )
        return cls([chr(c) for c in sorted(counts) if counts[c] >= min_count])

    def __len__(self) -> int:
        return len(self.chars) + 1

    def __contains__(self, ch: object) -> bool:
        return ch in self._ids

    def encode(self, text: str, dtype: torch.dtype = torch.long) -> Tensor:
        """Ids (N,) of the N characters of ``text``; unknown characters give ``UNK_ID``."""
        if not isinstance(text, str):
            raise TypeError(f"Vocabulary.encode: text must be a str; got {type(text).__name__}")
        codes = _code_points(text)
        ids = np.zeros(codes.shape, dtype=np.int32)
        known = codes < len(self._table)
        ids[known] = self._table[codes[known]]
        return torch.from_numpy(ids).to(dtype)

    def decode(self, ids: Tensor | Iterable[int]) -> str:
        """The text of ``ids``; the unknown class shows as U+FFFD."""
        if isinstance(ids, Tensor):
            ids = ids.reshape(-1).tolist()
        out = []
        for i in ids:
            if not 0 <= int(i) < len(self):
                raise ValueError(f"Vocabulary.decode: id must lie in [0, {len(self)}); got {i}")
            out.append(UNK_TEXT if i == UNK_ID else self.chars[int(i) - 1])
        return "".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {"chars": "".join(self.chars)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocabulary:
        if (
            not isinstance(data, dict)
            or set(data) != {"chars"}
            or not isinstance(data["chars"], str)
        ):
            raise ValueError("vocabulary must be an object with one string entry 'chars'")
        return cls(list(data["chars"]))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and other.chars == self.chars

    def __repr__(self) -> str:
        return f"Vocabulary({len(self.chars)} characters + unknown)"


def _code_points(text: str) -> np.ndarray:
    """The Unicode code points of ``text`` as an int64 array (vectorised via UTF-32)."""
    # surrogatepass: a lone surrogate is a valid str element, and must not raise here.
    raw = text.encode("utf-32-le", errors="surrogatepass")
    return np.frombuffer(raw, dtype=np.uint32).astype(np.int64)
