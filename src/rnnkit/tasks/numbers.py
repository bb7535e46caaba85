"""`rnnkit train numbers`: numbers in words <-> digits with an encoder-decoder (chapter 10.19).

Pairs are generated on the fly with ``num2words`` (see :mod:`rnnkit.seq2seq.data`): each
step draws a batch of training numbers from a generator seeded with ``--seed``, and the
decoder reads the true previous character (teacher forcing) or, with
``--scheduled-sampling``, its own previous prediction with a probability that rises
linearly from 0 over the step budget (Bengio et al. 2015). Scored by greedy exact match
on a fixed set of held-out validation numbers; ``rnnkit translate`` and ``rnnkit eval``
use the trained run.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from rnnkit import _options
from rnnkit._options import option
from rnnkit.seq2seq.attention import KINDS
from rnnkit.seq2seq.data import DIRECTIONS, CharVocab, batch_tensors
from rnnkit.seq2seq.data import NumbersTask as NumberPairs
from rnnkit.seq2seq.decode import greedy
from rnnkit.seq2seq.evaluate import edit_distance
from rnnkit.seq2seq.model import DECODER_CELLS, ENCODERS, Seq2Seq, Seq2SeqConfig, sequence_loss
from rnnkit.tasks.base import DerivedError, SeededBatches, Task, model_device
from rnnkit.train import distributed
from rnnkit.train.config import TrainConfig

DERIVED_KEYS = ("source_chars", "target_chars", "max_source_length", "max_target_length")
EVAL_BATCH = 500  # validation numbers decoded at once
SHOWN = 3  # validation translations printed after each evaluation
LENGTH_SAMPLE = 16_000  # numbers whose lengths bound the inputs a run accepts


def decode_limit(max_target_length: int) -> int:
    """Decoding steps allowed: twice the longest target of the range, and some."""
    return 2 * max_target_length + 8


@dataclass
class NumbersOptions:
    """The numbers task's data and model options (the training loop's are TrainConfig's)."""

    # -- the task
    lang: str = option(
        "en", "num2words language code: en, fr, de, es, fr_BE, ... (checked when the data is read)"
    )
    direction: str = option("words2digits", "what is translated into what", choices=DIRECTIONS)
    min_number: int = option(0, "smallest number of the range", low=0, high=10**15)
    max_number: int = option(999_999, "largest number of the range (inclusive)", low=0, high=10**15)
    valid_fraction: float = option(
        0.05,
        "share of the numbers held out for validation, in (0, 0.5)",
        low=0,
        high=0.5,
        open_high=True,
    )
    test_fraction: float = option(
        0.05,
        "share of the numbers held out for the test, in (0, 0.5)",
        low=0,
        high=0.5,
        open_high=True,
    )
    split_seed: int = option(
        0,
        "which numbers fall in train / valid / test (the same for every direction)",
        low=0,
        high=2**63 - 1,
    )
    n_valid: int = option(
        300,
        "validation numbers scored at each evaluation: N / (digit counts of the range) of "
        "each digit count, all it has where one has fewer (300 gives 200 for 0..999999)",
        low=1,
        high=10**6,
    )
    n_test: int = option(
        2000,
        "test numbers scored by rnnkit eval, drawn as --n-valid's (2000 gives 1058 for 0..999999)",
        low=1,
        high=10**6,
    )
    # -- the model (see Seq2SeqConfig)
    embed_size: int = option(32, "character embedding size", flag="--embed", low=1, high=65536)
    encoder: str = option("gru", "encoder: any rnnkit layer", choices=tuple(ENCODERS))
    encoder_hidden: int = option(64, "encoder hidden size per direction", low=1, high=65536)
    encoder_layers: int = option(1, "stacked encoder layers", low=1, high=64)
    bidirectional: bool = option(True, "run the encoder in both directions")
    decoder: str = option("gru", "decoder: any rnnkit cell", choices=tuple(DECODER_CELLS))
    decoder_hidden: int = option(128, "decoder hidden size", low=1, high=65536)
    decoder_layers: int = option(1, "stacked decoder cells", low=1, high=64)
    attention: str = option(
        "general",
        "attention over the encoder's outputs (none: the fixed vector only)",
        choices=KINDS,
    )
    input_feeding: bool = option(
        True, "feed the attentional state h̃_{t-1} back into the decoder (Luong et al. 2015)"
    )
    dropout: float = option(
        0.0,
        "dropout between stacked layers and before the output layer",
        low=0,
        high=1,
        open_high=True,
    )
    # -- training data
    batch_size: int = option(
        64, "pairs per optimiser step, summed over all processes", low=1, high=10**6
    )
    label_smoothing: float = option(
        0.0, "label smoothing of the training loss", low=0, high=1, open_high=True
    )
    scheduled_sampling: float = option(
        0.0,
        "final probability of reading the model's own previous token (rises linearly from "
        "0 over --steps)",
        low=0,
        high=1,
        open_high=True,
    )

    def __post_init__(self) -> None:
        _options.check(self)
        fields = {f.name: f for f in dataclasses.fields(self)}
        for name in ("valid_fraction", "test_fraction"):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"{_options.label(fields[name])} must be a finite number in (0, 0.5); "
                    f"got {getattr(self, name)!r}"
                )
        if self.min_number > self.max_number:
            raise ValueError(
                f"--min-number must be <= --max-number; got {self.min_number} > {self.max_number}"
            )
        out = self.encoder_hidden * (2 if self.bidirectional else 1)
        if self.attention == "dot" and self.decoder_hidden != out:
            # Said by Seq2SeqConfig in its field names, which a command line does not have.
            directions = "2 directions" if self.bidirectional else "1 direction, --no-bidirectional"
            raise ValueError(
                f"--decoder-hidden must equal the encoder output size {out} (--encoder-hidden "
                f"{self.encoder_hidden} x {directions}) with --attention dot; got "
                f"{self.decoder_hidden} (or use --attention general)"
            )
        self.model_config(5, 5)  # the model's own checks

    def pairs(self) -> NumberPairs:
        """The pairs of this language, direction and range (checks the language: this
        imports num2words)."""
        return NumberPairs(
            lang=self.lang,
            direction=self.direction,
            min_number=self.min_number,
            max_number=self.max_number,
            valid_fraction=self.valid_fraction,
            test_fraction=self.test_fraction,
            split_seed=self.split_seed,
        )

    def model_config(self, src_vocab_size: int, tgt_vocab_size: int) -> Seq2SeqConfig:
        return Seq2SeqConfig(
            src_vocab_size=src_vocab_size,
            tgt_vocab_size=tgt_vocab_size,
            embed_size=self.embed_size,
            encoder=self.encoder,
            encoder_hidden=self.encoder_hidden,
            encoder_layers=self.encoder_layers,
            bidirectional=self.bidirectional,
            decoder=self.decoder,
            decoder_hidden=self.decoder_hidden,
            decoder_layers=self.decoder_layers,
            attention=self.attention,
            input_feeding=self.input_feeding,
            dropout=self.dropout,
        )


class Batch(NamedTuple):
    """One step's pairs as padded time-major ids, and the scheduled-sampling probability."""

    src: Tensor  # (S, B)
    lengths: Tensor  # (B,)
    tgt_in: Tensor  # (T, B): BOS + target
    tgt_out: Tensor  # (T, B): target + EOS
    sampling: float  # probability of reading the model's own previous token


class NumberBatches(SeededBatches):
    """Training pairs drawn on the fly: every process draws the same global batch of
    numbers from one generator and keeps its rows; the step count sets the scheduled
    sampling probability. Both are restored by a resume, so it continues bitwise."""

    def __init__(
        self,
        pairs: NumberPairs,
        vocabs: tuple[CharVocab, CharVocab],
        batch_size: int,
        rows: slice,
        seed: int,
        sampling: float,
        sampling_steps: int | None,
    ) -> None:
        self.pairs, self.vocabs, self.batch_size, self.rows = pairs, vocabs, batch_size, rows
        self.sampling, self.sampling_steps = sampling, sampling_steps
        super().__init__(seed)
        self.step = 0

    def __next__(self) -> Batch:
        numbers = self.pairs.sample("train", self.batch_size, self.generator)[self.rows]
        src, lengths, tgt_in, tgt_out = batch_tensors(
            [self.pairs.pair(n) for n in numbers], *self.vocabs
        )
        p = 0.0
        if self.sampling > 0 and self.sampling_steps:
            p = self.sampling * min(1.0, self.step / self.sampling_steps)
        self.step += 1
        return Batch(src, lengths, tgt_in, tgt_out, p)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.step = int(state["step"])


class NumbersTask(Task):
    name = "numbers"
    summary = "numbers in words <-> digits: an encoder-decoder with attention (seq2seq)"
    Options = NumbersOptions
    # Adam (AdamW without decay), cosine decay to 5 % of the rate, no warm-up, clipping at 1.
    train_defaults: ClassVar[dict[str, Any]] = {
        "steps": 1000,
        "lr": 3e-3,
        "weight_decay": 0.0,
        "warmup_steps": 0,
        "min_lr_ratio": 0.05,
        "clip_norm": 1.0,
        "eval_every": 200,
    }
    metric = "exact"
    higher_is_better = True
    item_name = "pairs"

    pairs: NumberPairs
    valid: list[tuple[str, str]]
    options: NumbersOptions

    # ---- data -------------------------------------------------------------------------

    def prepare(self, train: TrainConfig, ctx: distributed.Context) -> None:
        o = self.options
        if o.scheduled_sampling > 0 and train.steps is None:
            raise ValueError(
                "--scheduled-sampling rises over the step budget: give --steps (alone or "
                "with --minutes)"
            )
        distributed.rows(ctx, o.batch_size)  # divisible by the number of processes
        self.pairs = o.pairs()  # checks the language
        numbers = self.pairs.fixed_set("valid", o.n_valid)
        if not numbers:
            raise ValueError(
                f"the range {o.min_number}..{o.max_number} has no validation numbers "
                f"(--valid-fraction {o.valid_fraction:g}); widen it"
            )
        self.valid = [self.pairs.pair(n) for n in numbers]
        if not self.derived:
            self.derived = derive(self.pairs, o.n_test, self.valid)
        self.vocabs()  # a hand-edited config.json is refused here, not in the middle of a run

    def describe(self) -> str:
        o = self.options
        src, tgt = self.vocabs()
        return (
            f"{o.lang} {o.direction}, {o.min_number}..{o.max_number} (train / valid "
            f"/ test split by number), vocabulary {len(src)} -> {len(tgt)}, "
            f"{len(self.valid)} validation numbers"
        )

    def vocabs(self) -> tuple[CharVocab, CharVocab]:
        check_derived(self.derived, "derived")
        return CharVocab(self.derived["source_chars"]), CharVocab(self.derived["target_chars"])

    # ---- model ------------------------------------------------------------------------

    def build_model(self) -> Seq2Seq:
        src, tgt = self.vocabs()
        return Seq2Seq(self.options.model_config(len(src), len(tgt)))

    def title(self, model: nn.Module) -> str:
        o = self.options
        enc = f"{'bidirectional ' if o.bidirectional else ''}{o.encoder.upper()} {o.encoder_hidden}"
        return (
            f"numbers {o.lang} {o.direction}: {enc} -> {o.decoder.upper()} "
            f"{o.decoder_hidden}, attention {o.attention}"
        )

    # ---- training ---------------------------------------------------------------------

    def batches(self, train: TrainConfig, ctx: distributed.Context) -> NumberBatches:
        o = self.options
        return NumberBatches(
            self.pairs,
            self.vocabs(),
            o.batch_size,
            distributed.rows(ctx, o.batch_size),
            train.seed,
            o.scheduled_sampling,
            train.steps,
        )

    def loss(self, net: nn.Module, batch: Any, device: Any) -> Tensor:
        b: Batch = batch
        # Scheduled sampling's coin flips come from the global generator of the device,
        # which the trainer seeds per process and restores on resume (as dropout's).
        logits = net(
            b.src.to(device), b.lengths, b.tgt_in.to(device), sampling_probability=b.sampling
        )  # (T, B, V)
        return sequence_loss(logits.float(), b.tgt_out.to(device), self.options.label_smoothing)

    def items(self, batch: Any) -> int:
        return int(batch.lengths.numel())

    # ---- evaluation -------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Greedy exact match and character error rate on the validation numbers, and the
        teacher-forced loss per target character (no label smoothing)."""
        assert isinstance(model, Seq2Seq)
        was_training = model.training
        device = model_device(model)
        src_vocab, tgt_vocab = self.vocabs()
        limit = decode_limit(int(self.derived["max_target_length"]))
        loss_sum, tokens, exact, edits, chars = 0.0, 0, 0, 0, 0
        outputs: list[str] = []
        model.eval()
        try:
            for i in range(0, len(self.valid), EVAL_BATCH):
                chunk = self.valid[i : i + EVAL_BATCH]
                src, lengths, tgt_in, tgt_out = batch_tensors(chunk, src_vocab, tgt_vocab)
                src, tgt_out = src.to(device), tgt_out.to(device)
                logits = model(src, lengths, tgt_in.to(device)).float()
                n = int((tgt_out != 0).sum())
                loss_sum += float(sequence_loss(logits, tgt_out)) * n
                tokens += n
                for d, (_, target) in zip(greedy(model, src, lengths, limit), chunk, strict=True):
                    output = tgt_vocab.decode(d.tokens)
                    outputs.append(output)
                    exact += output == target
                    edits += edit_distance(output, target)
                    chars += len(target)
        finally:
            model.train(was_training)
        self._outputs = outputs
        return {
            "exact": exact / len(self.valid),
            "cer": edits / max(chars, 1),
            "loss": loss_sum / max(tokens, 1),
        }

    def show(self, model: nn.Module, metrics: dict[str, float]) -> list[str]:
        """A few validation translations: the wrong ones first, else the longest inputs."""
        outputs = getattr(self, "_outputs", [])
        order = sorted(
            range(len(outputs)),
            key=lambda i: (outputs[i] == self.valid[i][1], -len(self.valid[i][0])),
        )
        lines = []
        for i in order[:SHOWN]:
            (source, target), output = self.valid[i], outputs[i]
            verdict = "ok" if output == target else f"want {target!r}"
            lines.append(f"{source!r} -> {output!r} ({verdict})")
        return lines

    def finish(self, model: nn.Module, run_dir: Any) -> list[str]:
        metrics = self.evaluate(model)
        run = shlex.quote(str(run_dir))
        example = shlex.quote(example_input(self.pairs))
        return [
            f"valid exact match {metrics['exact']:.2%}, character error rate "
            f"{metrics['cer']:.2%} ({len(self.valid)} held-out numbers, greedy)",
            f"  translate: rnnkit translate {run} {example}",
            f"  evaluate:  rnnkit eval {run}",
        ]


def derive(pairs: NumberPairs, n_test: int, valid: list[tuple[str, str]]) -> dict[str, Any]:
    """What a numbers run derives from its data, known before training: the vocabularies
    (of a broad sample of training numbers, :meth:`~rnnkit.seq2seq.NumbersTask.vocab_texts`)
    and the longest source and target of the range - every number of a small range, else
    that sample, ``LENGTH_SAMPLE`` more training numbers and the held-out sets. Longer
    inputs are refused; outputs are decoded up to twice the longest target."""
    src_texts, tgt_texts = pairs.vocab_texts()
    size = pairs.max_number - pairs.min_number + 1
    if size <= LENGTH_SAMPLE:
        numbers = list(range(pairs.min_number, pairs.max_number + 1))
    else:
        g = torch.Generator().manual_seed(778 + pairs.split_seed)
        numbers = pairs.sample("train", LENGTH_SAMPLE, g) + pairs.fixed_set("test", n_test)
    more = valid + [pairs.pair(n) for n in numbers]
    return {
        "source_chars": CharVocab("".join(src_texts)).chars,
        "target_chars": CharVocab("".join(tgt_texts)).chars,
        "max_source_length": max(len(s) for s in [*src_texts, *(s for s, _ in more)]),
        "max_target_length": max(len(t) for t in [*tgt_texts, *(t for _, t in more)]),
    }


def check_derived(derived: dict[str, Any], where: str) -> None:
    """Refuse ``derived`` without the vocabularies and lengths a numbers run needs."""
    missing = [k for k in DERIVED_KEYS if k not in derived]
    if missing:
        raise DerivedError(f"{where}: missing key(s) {', '.join(missing)} of a numbers run")
    for key in ("source_chars", "target_chars"):
        if not isinstance(derived[key], str) or not derived[key]:
            raise DerivedError(f"{where}: {key} must be a non-empty string")
    for key in ("max_source_length", "max_target_length"):
        value = derived[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DerivedError(f"{where}: {key} must be a positive integer; got {value!r}")


def example_input(pairs: NumberPairs) -> str:
    """An input to try a run with: 312 (or the nearest number of the range), as it reads."""
    n = min(max(312, pairs.min_number), pairs.max_number)
    return pairs.pair(n)[0]
