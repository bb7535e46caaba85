"""`rnnkit train lm`: a character-level language model (the chapter's section 10.1).

The text is read as ``batch_size`` parallel streams, ``seq_len`` characters at a time,
with the hidden state carried (detached) from window to window: truncated BPTT
(:mod:`rnnkit.train.tbptt`). Scored in bits per character on the validation split.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit import _options
from rnnkit._options import option
from rnnkit.data.corpus import NAMED, Corpus, load_corpus
from rnnkit.data.vocab import Vocabulary
from rnnkit.layers.base import LayerState
from rnnkit.models.lm import CELLS, CharLM, CharLMConfig
from rnnkit.tasks.base import BatchSource, Task
from rnnkit.train import distributed
from rnnkit.train.config import TrainConfig
from rnnkit.train.evaluate import bits_per_char
from rnnkit.train.tbptt import StreamWindows, detach_state

SAMPLE_TEMPERATURE = 0.8  # samples shown during training: a little sharper than the model
LN2 = math.log(2.0)
# --dropout's default. Measured with benchmarks/lm_vs_transformer.py (docs/language-model.md,
# "How the defaults were chosen"): on a 2.0 M-character text, which 3 minutes read about
# ten times over, dropout 0.1 took 0.13 bits off the 10-minute test bpc; on the 11 M
# characters of the standard library, read about twice in the default 3 minutes, it cost
# 0.08. The threshold between the two is a judgement, not a measurement.
AUTO_DROPOUT = 0.1
AUTO_DROPOUT_BELOW = 5_000_000  # training characters


def auto_dropout(given: float | None, train_chars: int) -> float:
    """--dropout as given, or its default for a training text of ``train_chars``."""
    if given is not None:
        return given
    return AUTO_DROPOUT if train_chars < AUTO_DROPOUT_BELOW else 0.0


@dataclass
class LMOptions:
    """The language model's data and model options."""

    text: str | None = option(
        None,
        "a UTF-8 text file, or a folder of them (default: the --corpus named)",
        metavar="PATH",
    )
    corpus: str = option(
        "stdlib",
        "the corpus every Python install holds, when no --text is given: stdlib (the "
        "standard library's source) or docs (its docstrings and help topics: English prose)",
        choices=tuple(NAMED),
    )
    min_count: int = option(
        1,
        "characters seen fewer times in the training text join the unknown class",
        low=1,
        high=10**9,
    )
    cell: str = option("lstm", "recurrent cell", choices=tuple(CELLS))
    num_layers: int = option(2, "stacked recurrent layers", flag="--layers", low=1, high=64)
    hidden_size: int = option(128, "hidden units per layer H", flag="--hidden", low=1, high=65536)
    embed_size: int = option(64, "character embedding size E", flag="--embed", low=1, high=65536)
    dropout: float | None = option(
        None,
        "dropout on embeddings, between layers and before the output (default: "
        f"{AUTO_DROPOUT} for a training text under {AUTO_DROPOUT_BELOW:,} characters, which "
        "a run reads many times over, else 0)",
        low=0,
        high=1,
        open_high=True,
    )
    forget_bias: float | None = option(
        None,
        "initial forget-gate bias of lstm (update-gate bias of gru) (default: torch's)",
        low=-100,
        high=100,
    )
    seq_len: int = option(64, "truncated-BPTT window in characters", low=1, high=10**6)
    batch_size: int = option(32, "parallel streams, summed over all processes", low=1, high=10**6)
    eval_chars: int = option(
        100_000, "validation characters scored per evaluation", low=2, high=10**10
    )
    sample_chars: int = option(
        200, "characters of the sample shown at each evaluation", low=0, high=10**6
    )

    def __post_init__(self) -> None:
        _options.check(self)
        if self.text is not None and self.corpus != "stdlib":
            raise ValueError(
                f"--text and --corpus name two corpora; give one (got --text {self.text!r} "
                f"and --corpus {self.corpus})"
            )
        self.model_config(vocab_size=2)  # the model's own checks (forget_bias needs a gate)

    def model_config(self, vocab_size: int, dropout: float | None = None) -> CharLMConfig:
        """The model's config; ``dropout`` is the run's (its default resolved), if known."""
        return CharLMConfig(
            vocab_size=vocab_size,
            cell=self.cell,
            num_layers=self.num_layers,
            hidden_size=self.hidden_size,
            embed_size=self.embed_size,
            dropout=dropout if dropout is not None else (self.dropout or 0.0),
            forget_bias=self.forget_bias,
        )


class Windows(BatchSource):
    """:class:`StreamWindows` with the position a checkpoint restores."""

    def __init__(self, windows: StreamWindows) -> None:
        self.windows = windows

    def __next__(self) -> tuple[Tensor, Tensor, bool]:
        return next(self.windows)

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.windows.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.windows.position = int(state["position"])


class LanguageModelTask(Task):
    name = "lm"
    summary = "a character-level language model (by default an LSTM on Python's own sources)"
    Options = LMOptions
    # Chosen by benchmarks/lm_vs_transformer.py --variants: the best validation bpc after
    # 3 minutes on a 2-core CPU, where two threads train 1.45x as fast as one
    # (docs/language-model.md, "How the defaults were chosen").
    train_defaults: ClassVar[dict[str, Any]] = {
        "minutes": 3.0,
        "lr": 6e-3,
        "warmup_steps": 200,
        "threads": min(2, os.cpu_count() or 1),
    }
    metric = "bpc"
    item_name = "chars"

    corpus: Corpus
    vocab: Vocabulary

    def prepare(self, train: TrainConfig, ctx: distributed.Context) -> None:
        o = self.options
        # A resumed run reads the corpus it recorded (an absolute path), wherever it runs.
        source = self.derived.get("corpus")
        if source is None:
            has_text = o.text is not None  # an empty --text is a path to refuse, not "none"
            source = {"kind": "text", "path": o.text} if has_text else {"kind": o.corpus}
        try:
            self.corpus = load_corpus(source)
        except FileNotFoundError as err:
            if "corpus" not in self.derived:
                raise
            raise FileNotFoundError(
                f"the run's text is gone ({err}); resume needs the data the run started with"
            ) from None
        digest = self.corpus.digest()
        if "vocab" in self.derived:
            check_same_corpus(self.corpus, self.derived.get("corpus_sha256"), digest)
            self.vocab = Vocabulary.from_dict(self.derived["vocab"])
        else:
            try:
                self.vocab = Vocabulary.from_text(self.corpus.train, o.min_count)
            except ValueError as err:  # the run was given --min-count, not from_text's argument
                message = str(err).replace("Vocabulary.from_text: min_count", "--min-count")
                raise ValueError(
                    message.replace("no character;", "no character of the training text;")
                ) from None
            self.derived = {
                "vocab": self.vocab.to_dict(),
                "corpus": self.corpus.source,
                "corpus_sha256": digest,
                "dropout": auto_dropout(o.dropout, len(self.corpus.train)),
            }
        need = o.batch_size * o.seq_len + 1
        if len(self.corpus.train) < need:
            raise ValueError(
                f"the training text is too short for one window: its "
                f"{len(self.corpus.train):,} character(s) cannot fill "
                f"--batch-size {o.batch_size} streams of --seq-len "
                f"{o.seq_len} (need at least {need:,}); use a longer text or smaller values"
            )
        if len(self.corpus.validation) < 2:
            raise ValueError(
                f"the validation split has {len(self.corpus.validation)} character(s); "
                "use a longer text (5% of it validates)"
            )
        distributed.rows(ctx, o.batch_size)  # divisible by the number of processes
        self.val_ids = self.vocab.encode(self.corpus.validation[: o.eval_chars], torch.int32)
        self.state: LayerState | None = None

    def describe(self) -> str:
        return self.corpus.describe()

    def build_model(self) -> nn.Module:
        vocab = Vocabulary.from_dict(self.derived["vocab"])
        # A run folder from before the default was resolved records its dropout in options.
        return CharLM(self.options.model_config(len(vocab), self.derived.get("dropout")), vocab)

    def title(self, model: nn.Module) -> str:
        o = self.options
        title = f"{o.cell.upper()} {o.num_layers}x{o.hidden_size}, vocabulary {len(self.vocab)}"
        dropout = getattr(getattr(model, "config", None), "dropout", 0.0)
        return f"{title}, dropout {dropout:g}" if dropout else title

    def batches(self, train: TrainConfig, ctx: distributed.Context) -> Windows:
        o = self.options
        # int32 halves the memory of the 12-million-character default corpus.
        ids = self.vocab.encode(self.corpus.train, dtype=torch.int32)
        rows = distributed.rows(ctx, o.batch_size)
        return Windows(StreamWindows(ids, o.batch_size, o.seq_len, rows))

    def loss(self, net: nn.Module, batch: Any, device: Any) -> Tensor:
        x, y, new_pass = batch
        if new_pass:
            self.state = None  # the streams start over: the old context is not theirs
        x = x.to(device, torch.long, non_blocking=True)  # (T, B)
        y = y.to(device, torch.long, non_blocking=True)  # (T, B)
        logits, state = net(x, self.state)  # (T, B, V)
        # Carried forward with gradients cut here, in float32 (autocast may give bf16).
        self.state = _float32(detach_state(state))
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1))

    def items(self, batch: Any) -> int:
        return batch[0].numel()

    def carried(self, ctx: distributed.Context) -> dict[str, Tensor]:
        if self.state is None:
            return {}
        parts = self.state if isinstance(self.state, tuple) else (self.state,)
        return {
            name: distributed.gather_batch(ctx, part, dim=1)
            for name, part in zip(("h", "c"), parts, strict=False)
        }

    def load_carried(self, tensors: dict[str, Tensor], ctx: distributed.Context) -> None:
        rows = distributed.rows(ctx, self.options.batch_size)
        parts = [tensors[n][:, rows].to(ctx.device) for n in ("h", "c") if n in tensors]
        state: LayerState | None = None
        if len(parts) == 2:  # an LSTM's (h, c)
            state = (parts[0], parts[1])
        elif parts:
            state = parts[0]
        self.state = state

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        o = self.options
        assert isinstance(model, CharLM)
        bpc, _ = bits_per_char(model, self.val_ids, o.batch_size, o.seq_len)
        return {"bpc": bpc, "loss": bpc * LN2}

    def show(self, model: nn.Module, metrics: dict[str, float]) -> list[str]:
        return self.sample(model).splitlines() if self.options.sample_chars else []

    def finish(self, model: nn.Module, run_dir: Any) -> list[str]:
        if not self.options.sample_chars:  # --sample-chars 0: no sample, so no heading
            return []
        return ["sample from the best model:", *self.sample(model).splitlines()]

    def sample(self, model: nn.Module) -> str:
        assert isinstance(model, CharLM)
        gen = torch.Generator().manual_seed(0)
        chars = model.sample(
            "", self.options.sample_chars, temperature=SAMPLE_TEMPERATURE, generator=gen
        )
        return "".join(chars)


def _float32(state: LayerState) -> LayerState:
    if isinstance(state, tuple):
        return tuple(s.float() for s in state)  # type: ignore[return-value]
    return state.float()


def check_same_corpus(corpus: Corpus, recorded: object, digest: str) -> None:
    """Refuse to resume on a text that changed since the run started (an edited --text, or
    another Python's standard library): its windows and vocabulary would no longer be the
    run's. Runs saved before the checksum was recorded have none to compare."""
    if recorded is None or recorded == digest:
        return
    source = corpus.source
    if source.get("kind") == "text":
        what = f"the run's text {source.get('path')}"
    else:
        what = f"the {source.get('kind')} corpus of Python {source.get('python')}"
    raise ValueError(
        f"{what} changed since the run started: its SHA-256 is {digest[:12]}..., the run "
        f"recorded {str(recorded)[:12]}...; resume with the data as it was, or start a new "
        "run"
    )
