"""The numbers task: numbers written in words <-> digits, generated with ``num2words``.

``num2words`` carries the real number-word grammar of dozens of languages ("three hundred
and twelve thousand and four", "quatre-vingt-dix-sept", "dreihundertzwölftausendvier"),
so the task is a small but genuine translation problem that needs nothing downloaded.

The split is by number: a fixed hash of the number (and the split seed) puts every number
of the range in exactly one of train / valid / test, so no test number is ever seen in
training, in either direction. Training pairs are drawn on the fly; the number of digits
is drawn uniformly first, so short and long numbers are equally represented (uniform
numbers would almost all have the largest digit count).

Texts are normalised before use: lower case, commas dropped, runs of spaces collapsed;
"One thousand, two hundred" and "one thousand two hundred" are the same input.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

DIRECTIONS = ("words2digits", "digits2words")
SPLITS = ("train", "valid", "test")

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")


def supported_languages() -> list[str]:
    """The language codes ``num2words`` converts (``en``, ``fr``, ``de``, ``fr_BE``, ...)."""
    from num2words import CONVERTER_CLASSES

    return sorted(CONVERTER_CLASSES)


def check_language(lang: str) -> str:
    langs = supported_languages()
    if lang not in langs:
        raise ValueError(
            f"numbers task: unsupported language {lang!r}; expected one of {', '.join(langs)}"
        )
    return lang


def normalise(text: str) -> str:
    """Lower case, no commas, single spaces: the form both sides of a pair take."""
    return " ".join(text.lower().replace(",", " ").split())


def number_to_words(n: int, lang: str) -> str:
    from num2words import num2words

    return normalise(num2words(n, lang=lang))


def split_of(n: int, seed: int, valid_fraction: float, test_fraction: float) -> str:
    """Which split number ``n`` belongs to: a fixed hash, the same on every machine."""
    # splitmix64 (Steele et al. 2014) mixes n and the seed into 64 well-spread bits, so the
    # buckets do not follow the digits of n.
    z = (n * 0x9E3779B97F4A7C15 + seed * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & (2**64 - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
    u = (z ^ (z >> 31)) / 2**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + valid_fraction:
        return "valid"
    return "train"


class CharVocab:
    """Characters <-> ids, with padding, begin, end and unknown ids 0-3."""

    def __init__(self, chars: Iterable[str]) -> None:
        self.chars = "".join(sorted(set(chars)))
        self.itos = [*SPECIALS, *self.chars]
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def unknown(self, text: str) -> list[str]:
        """Characters of ``text`` the vocabulary does not have, in order of appearance."""
        return sorted({c for c in text if c not in self.stoi}, key=text.index)

    def encode(self, text: str, *, eos: bool = False) -> list[int]:
        ids = [self.stoi.get(c, UNK) for c in text]
        return [*ids, EOS] if eos else ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids`` up to the first end-of-sequence; specials are dropped."""
        out = []
        for i in ids:
            if i == EOS:
                break
            if i >= len(SPECIALS):
                out.append(self.itos[i])
        return "".join(out)


@dataclass(frozen=True)
class NumbersTask:
    """Pairs (source text, target text) for one language, direction and number range."""

    lang: str = "en"
    direction: str = "words2digits"
    min_number: int = 0
    max_number: int = 999_999  # inclusive
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    split_seed: int = 0

    def __post_init__(self) -> None:
        check_language(self.lang)
        if self.direction not in DIRECTIONS:
            raise ValueError(
                f"numbers task: direction must be one of {', '.join(DIRECTIONS)}; "
                f"got {self.direction!r}"
            )
        for name in ("min_number", "max_number", "split_seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                # Compared as they were, a string or float ended in Python's own TypeError
                # (or in range() deep in sampling), naming no field.
                raise TypeError(f"numbers task: {name} must be an integer; got {value!r}")
        if not 0 <= self.min_number <= self.max_number:
            raise ValueError(
                "numbers task: the range must satisfy 0 <= min_number <= max_number; "
                f"got {self.min_number}..{self.max_number}"
            )
        for name in ("valid_fraction", "test_fraction"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not 0 < value < 0.5
            ):
                raise ValueError(f"numbers task: {name} must lie in (0, 0.5); got {value!r}")

    # ---- texts ------------------------------------------------------------------------

    def words(self, n: int) -> str:
        return number_to_words(n, self.lang)

    def pair(self, n: int) -> tuple[str, str]:
        """(source, target) for number ``n`` in this task's direction."""
        w, d = self.words(n), str(n)
        return (w, d) if self.direction == "words2digits" else (d, w)

    def split_of(self, n: int) -> str:
        return split_of(n, self.split_seed, self.valid_fraction, self.test_fraction)

    # ---- numbers of a split -----------------------------------------------------------

    def digit_bands(self) -> list[tuple[int, int]]:
        """The range cut by number of digits: [(lo, hi)] inclusive, shortest first."""
        bands, lo = [], self.min_number
        while lo <= self.max_number:
            hi = min(self.max_number, 10 ** len(str(lo)) - 1)
            bands.append((lo, hi))
            lo = hi + 1
        return bands

    def sample(self, split: str, count: int, generator: torch.Generator) -> list[int]:
        """``count`` numbers of ``split`` (repeats allowed), digit count drawn uniformly."""
        bands = self.digit_bands()
        out: list[int] = []
        tries = 0
        while len(out) < count:
            tries += 1
            if tries > 1000 * count + 10_000:
                raise ValueError(
                    f"numbers task: the range {self.min_number}..{self.max_number} has "
                    f"(almost) no {split} numbers; widen it"
                )
            lo, hi = bands[int(torch.randint(len(bands), (1,), generator=generator))]
            n = lo + int(torch.randint(hi - lo + 1, (1,), generator=generator))
            if self.split_of(n) == split:
                out.append(n)
        return out

    def fixed_set(self, split: str, count: int) -> list[int]:
        """A fixed set of distinct numbers of ``split`` (valid/test), sorted.

        The same share of numbers from each digit band, so that accuracy can be read per
        length; a band with fewer numbers of the split gives all it has.
        """
        if split not in SPLITS:
            raise ValueError(f"numbers task: split must be one of {SPLITS}; got {split!r}")
        bands = self.digit_bands()
        g = torch.Generator().manual_seed(12345 + self.split_seed)
        per_band = max(1, count // len(bands))
        chosen: set[int] = set()
        for lo, hi in bands:
            size = hi - lo + 1
            if size <= 20 * per_band:
                pool = [n for n in range(lo, hi + 1) if self.split_of(n) == split]
                order = torch.randperm(len(pool), generator=g).tolist()
                chosen.update(pool[i] for i in order[:per_band])
                continue
            band: set[int] = set()
            draws = 1000 * per_band + 10_000  # a split this rare in the band gives what it has
            while len(band) < per_band and draws > 0:
                draws -= 1
                n = lo + int(torch.randint(size, (1,), generator=g))
                if self.split_of(n) == split:
                    band.add(n)
            chosen.update(band)
        return sorted(chosen)

    def vocab_texts(self) -> tuple[list[str], list[str]]:
        """Source and target texts of a broad sample of training numbers, for the vocabularies.

        Every number below 1000 of the range and 4000 drawn over all digit bands: every
        character the grammar uses appears in them.
        """
        g = torch.Generator().manual_seed(777 + self.split_seed)
        small = [n for n in range(self.min_number, min(self.max_number, 999) + 1)]
        numbers = [n for n in small if self.split_of(n) == "train"]
        numbers += self.sample("train", 4000, g)
        pairs = [self.pair(n) for n in numbers]
        return [s for s, _ in pairs], [t for _, t in pairs]


def batch_tensors(
    pairs: Sequence[tuple[str, str]], src_vocab: CharVocab, tgt_vocab: CharVocab
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Padded time-major tensors for a list of pairs.

    Returns:
        src (S, B) ids, src_lengths (B,), tgt_in (T, B) = BOS + target, tgt_out (T, B) =
        target + EOS; padding is PAD (0).
    """
    src = [src_vocab.encode(s) for s, _ in pairs]
    tgt = [tgt_vocab.encode(t) for _, t in pairs]
    return (*pad_sources(src), *pad_targets(tgt))


def pad_sources(src: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
    lengths = torch.tensor([len(s) for s in src], dtype=torch.long)
    out = torch.full((int(lengths.max()), len(src)), PAD, dtype=torch.long)  # (S, B)
    for b, s in enumerate(src):
        out[: len(s), b] = torch.tensor(s, dtype=torch.long)
    return out, lengths


def pad_targets(tgt: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
    T = max(len(t) for t in tgt) + 1
    tgt_in = torch.full((T, len(tgt)), PAD, dtype=torch.long)  # (T, B)
    tgt_out = torch.full((T, len(tgt)), PAD, dtype=torch.long)
    for b, t in enumerate(tgt):
        ids = torch.tensor(t, dtype=torch.long)
        tgt_in[0, b] = BOS
        tgt_in[1 : len(t) + 1, b] = ids
        tgt_out[: len(t), b] = ids
        tgt_out[len(t), b] = EOS
    return tgt_in, tgt_out
