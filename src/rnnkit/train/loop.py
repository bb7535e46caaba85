"""The language-model training loop: truncated BPTT, AdamW, clipping, checkpoints, DDP.

One step reads the next window of every stream, runs the model from the carried
(detached) state, and takes an AdamW step on the mean cross-entropy with the gradient
norm clipped. Every ``eval_every`` steps the model is scored on validation text, the best
weights are kept in ``model.safetensors``, the full training state is saved for
``--resume``, and a sample is shown. SIGINT/SIGTERM end the loop after the current step,
with everything saved.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from rnnkit.data.corpus import Corpus, load_corpus
from rnnkit.data.vocab import Vocabulary
from rnnkit.layers.base import LayerState
from rnnkit.models.lm import CharLM, CharLMConfig
from rnnkit.train import checkpoint as ckpt
from rnnkit.train import distributed
from rnnkit.train.config import TrainConfig
from rnnkit.train.evaluate import bits_per_char
from rnnkit.train.report import LN2, Progress, Row, plot_loss, read_metrics, write_metrics
from rnnkit.train.tbptt import StreamWindows, detach_state

SAMPLE_TEMPERATURE = 0.8  # samples shown during training: a little sharper than the model
PLOT_EVERY_S = 30.0  # loss.png is redrawn at a checkpoint at most this often, and at the end


@dataclass
class Summary:
    """How a call to :meth:`Trainer.fit` ended."""

    run_dir: Path
    step: int
    stopped_by: str | None  # "SIGINT" or "SIGTERM" when a signal ended it, else None
    val_bpc: float | None  # the last validation score (rank 0; None elsewhere)
    best_val_bpc: float | None
    chars_per_s: float  # training throughput of this call, evaluations excluded
    sample: str
    is_main: bool = True  # False in the other processes of a distributed run


# ---- preparing a run (checks everything before any file is written) -------------------


def prepare_new_run(
    out_dir: str | Path,
    model_options: dict[str, Any],
    train: TrainConfig,
    source: dict[str, Any] | None = None,
    vocab_min_count: int = 1,
) -> tuple[ckpt.RunConfig, Corpus]:
    """The config and corpus of a new run in ``out_dir``; raises before touching disk.

    Characters seen fewer than ``vocab_min_count`` times in the training split join the
    unknown class.
    """
    CharLMConfig(vocab_size=2, **model_options)  # option errors first, before reading text
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} exists and is not a folder")
    if (out / ckpt.CONFIG).exists() or (out / ckpt.TRAIN_STATE).exists():
        raise FileExistsError(
            f"{out} already holds a run; continue it with --resume {out} or choose another --out"
        )
    corpus = load_corpus(source)
    vocab = Vocabulary.from_text(corpus.train, vocab_min_count)
    model = CharLMConfig(vocab_size=len(vocab), **model_options)
    _check_fits(corpus, train)
    data = {**corpus.source, "vocab_min_count": vocab_min_count}
    return ckpt.RunConfig(model, vocab, train, data), corpus


def prepare_resume(
    run_dir: str | Path, steps: int | None = None, minutes: float | None = None
) -> tuple[ckpt.RunConfig, Corpus]:
    """The config (budget updated) and corpus to continue ``run_dir``; raises before writing."""
    run = Path(run_dir)
    config = ckpt.read_run_config(run)
    tensors, info = ckpt.load_train_state(run)  # fails now, not after reading the corpus
    probe = CharLM(config.model, config.vocab)
    model_tensors = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    ckpt.load_weights(probe, model_tensors, str(run / str(info["tensors"])))
    if steps is not None or minutes is not None:
        budget = config.train.to_dict()
        budget.update(steps=steps, minutes=minutes)
        config.train = TrainConfig(**budget)
    done = _budget_used_up(config.train, int(info.get("step", 0)), float(info.get("elapsed_s", 0)))
    if done is not None:
        raise ValueError(
            f"{run} already reached its budget ({done}); give a larger --steps or --minutes"
        )
    corpus = load_corpus(config.data)
    _check_fits(corpus, config.train)
    return config, corpus


def _check_fits(corpus: Corpus, train: TrainConfig) -> None:
    need = train.batch_size * train.seq_len + 1
    if len(corpus.train) < need:
        raise ValueError(
            f"the training text is too short for one window: {len(corpus.train):,} "
            f"characters cannot fill batch_size {train.batch_size} streams of seq_len "
            f"{train.seq_len} (need at least {need:,}); use a longer text or a smaller "
            "--batch-size/--seq-len"
        )
    if len(corpus.validation) < 2:
        raise ValueError(
            f"the validation split has {len(corpus.validation)} character(s); "
            "use a longer text (5% of it validates)"
        )


def _budget_used_up(train: TrainConfig, step: int, elapsed_s: float) -> str | None:
    """Which limit was reached ("step 300 of 300"), or None while budget remains."""
    if train.steps is not None and step >= train.steps:
        return f"step {step} of {train.steps}"
    if train.minutes is not None and elapsed_s >= train.minutes * 60:
        return f"{elapsed_s / 60:.1f} of {train.minutes:g} minutes"
    return None


# ---- the trainer ------------------------------------------------------------------------


class Trainer:
    """Trains a :class:`CharLM` into a run folder; :meth:`fit` runs to the budget."""

    def __init__(
        self,
        run_dir: str | Path,
        config: ckpt.RunConfig,
        corpus: Corpus,
        *,
        resume: bool = False,
        out: TextIO | None = None,
        ctx: distributed.Context | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.config = config
        self.ctx = ctx or distributed.setup(config.train.device)
        tc = config.train
        torch.manual_seed(tc.seed)  # same initial weights in every process
        self.model = CharLM(config.model, config.vocab).to(self.ctx.device)
        self.net: torch.nn.Module = (
            DistributedDataParallel(self.model) if self.ctx.distributed else self.model
        )
        # Decoupled weight decay on matrices only: decaying biases and gains only hurts.
        matrices = [p for p in self.model.parameters() if p.dim() >= 2]
        vectors = [p for p in self.model.parameters() if p.dim() < 2]
        self.optimizer = torch.optim.AdamW(
            [{"params": matrices}, {"params": vectors, "weight_decay": 0.0}],
            lr=tc.lr,
            weight_decay=tc.weight_decay,
        )
        vocab = config.vocab
        # int32 halves the memory of the 12-million-character default corpus.
        train_ids = vocab.encode(corpus.train, dtype=torch.int32)
        self.windows = StreamWindows(
            train_ids, tc.batch_size, tc.seq_len, distributed.rows(self.ctx, tc.batch_size)
        )
        self.val_ids = vocab.encode(corpus.validation[: tc.eval_chars], dtype=torch.int32)
        torch.manual_seed(tc.seed + 1 + self.ctx.rank)  # each process its own dropout masks
        self.progress = Progress(out) if self.ctx.is_main else None

        self.step_count = 0
        self.chars = 0
        self.lr = tc.lr
        self.elapsed_before = 0.0  # seconds spent in earlier calls of a resumed run
        self.elapsed = 0.0  # agreed by all processes at the end of each step
        self.best_val_bpc: float | None = None
        self.last_val_bpc: float | None = None
        self.rows: list[Row] = []
        self.state: LayerState | None = None
        self._stop: str | None = None
        self._last_saved_step = -1
        self._plotted_at, self._plotted_step = -math.inf, -1
        if resume:
            self._restore()

    # ---- one step -----------------------------------------------------------------------

    def budget_fraction(self) -> float:
        """The fraction of the budget used: steps or wall-clock time, whichever is further."""
        tc = self.config.train
        parts = [0.0]
        if tc.steps is not None:
            parts.append(self.step_count / tc.steps)
        if tc.minutes is not None:
            parts.append(self.elapsed / (tc.minutes * 60))
        return max(parts)

    def step(self) -> float:
        """One truncated-BPTT step on the next window of every stream; the loss in nats."""
        tc = self.config.train
        x, y, new_pass = next(self.windows)
        if new_pass:
            self.state = None  # the streams start over: the old context is not theirs
        x = x.to(self.ctx.device, torch.long, non_blocking=True)  # (T, B)
        y = y.to(self.ctx.device, torch.long, non_blocking=True)  # (T, B)
        lr = tc.lr_at(self.step_count, self.budget_fraction())
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        logits, state = self.net(x, self.state)  # (T, B, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # DDP averages the gradients over processes here
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.clip_norm)
        self.optimizer.step()
        self.state = detach_state(state)  # carried forward, gradients stop here
        self.step_count += 1
        self.chars += tc.batch_size * tc.seq_len
        self.lr = lr
        return loss.item()

    # ---- the loop -----------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        """End :meth:`fit` after the current step, saving everything (what signals do)."""
        self._stop = reason

    def fit(self, on_step: Callable[[Trainer], None] | None = None) -> Summary:
        """Train until the budget is used or a stop is requested; saves before returning."""
        tc = self.config.train
        restore = self._install_signal_handlers()
        start = time.perf_counter()
        train_time, call_chars = 0.0, 0
        window_loss, window_steps, window_chars, window_time = 0.0, 0, 0, 0.0
        self.lr = tc.lr_at(self.step_count, self.budget_fraction())
        try:
            while _budget_used_up(tc, self.step_count, self.elapsed) is None:
                t0 = time.perf_counter()
                loss = self.step()
                dt = time.perf_counter() - t0
                if not math.isfinite(loss):
                    raise ValueError(
                        f"the training loss became {loss} at step {self.step_count}; "
                        "lower --lr (the last checkpoint is kept)"
                    )
                train_time += dt
                call_chars += tc.batch_size * tc.seq_len
                window_loss += loss
                window_steps += 1
                window_chars += tc.batch_size * tc.seq_len
                window_time += dt
                if on_step is not None:
                    on_step(self)
                stop, elapsed = distributed.agree_max(
                    self.ctx,
                    [
                        float(self._stop is not None),
                        self.elapsed_before + time.perf_counter() - start,
                    ],
                )
                self.elapsed = elapsed
                if stop and self._stop is None:
                    self._stop = "a stop in another process"
                if self.step_count % tc.log_every == 0:
                    self._log_row(window_loss / window_steps, window_chars / max(window_time, 1e-9))
                    window_loss, window_steps, window_chars, window_time = 0.0, 0, 0, 0.0
                if self.step_count % tc.eval_every == 0:
                    self.checkpoint()
                if self._stop is not None:
                    break
            if window_steps:
                self._log_row(window_loss / window_steps, window_chars / max(window_time, 1e-9))
            if self._last_saved_step != self.step_count:
                self.checkpoint()
            if self.ctx.is_main and self._plotted_step != self.step_count:
                self._plot()
        finally:
            restore()
            if self.progress is not None:
                self.progress.close()
        sample = ""
        if self.ctx.is_main:
            best = ckpt.load(self.run_dir, self.ctx.device)
            sample = self._sample(best)
        return Summary(
            run_dir=self.run_dir,
            step=self.step_count,
            stopped_by=self._stop,
            val_bpc=self.last_val_bpc,
            best_val_bpc=self.best_val_bpc,
            chars_per_s=call_chars / train_time if train_time > 0 else 0.0,
            sample=sample,
            is_main=self.ctx.is_main,
        )

    def _log_row(self, loss: float, chars_per_s: float) -> None:
        row = Row(
            step=self.step_count,
            chars=self.chars,
            elapsed_s=self.elapsed,
            lr=self.lr,
            train_loss=loss,
            train_bpc=loss / LN2,
            chars_per_s=chars_per_s,
        )
        if self.rows and self.rows[-1].step == row.step:
            return
        self.rows.append(row)
        if self.progress is not None:
            tc = self.config.train
            of = f"/{tc.steps}" if tc.steps is not None else ""
            self.progress.update(
                self.budget_fraction(),
                f"step {self.step_count}{of}  loss {loss:.3f}  bpc {row.train_bpc:.3f}  "
                f"{chars_per_s / 1000:.1f}k chars/s  {_clock(self.elapsed)}",
            )

    # ---- evaluation and checkpoints -------------------------------------------------------

    def checkpoint(self) -> None:
        """Validate, keep the best weights, save the training state, write the curves.

        Every process must call it at the same step (the hidden states are gathered).
        """
        tc = self.config.train
        if self.ctx.is_main:
            bpc, _ = bits_per_char(self.model, self.val_ids, tc.batch_size, tc.seq_len)
            self.last_val_bpc = bpc
            improved = self.best_val_bpc is None or bpc < self.best_val_bpc
            if improved:
                self.best_val_bpc = bpc
                ckpt.save_model(self.run_dir, self.model)
            if self.rows and self.rows[-1].step == self.step_count:
                self.rows[-1].val_bpc = bpc
            assert self.progress is not None
            mark = " (best so far, saved)" if improved else ""
            self.progress.message(f"step {self.step_count}: validation bpc {bpc:.4f}{mark}")
            if tc.sample_chars:
                self.progress.message(_indent(self._sample(self.model)))
        self._save_state()
        if self.ctx.is_main:
            write_metrics(self.run_dir / ckpt.METRICS, self.rows)
            if time.perf_counter() - self._plotted_at > PLOT_EVERY_S:
                self._plot()
        self._last_saved_step = self.step_count

    def _plot(self) -> None:
        plot_loss(self.run_dir / ckpt.LOSS_PLOT, self.rows, self._title())
        self._plotted_at, self._plotted_step = time.perf_counter(), self.step_count

    def _sample(self, model: CharLM) -> str:
        gen = torch.Generator().manual_seed(self.config.train.seed)
        chars = model.sample(
            "", self.config.train.sample_chars, temperature=SAMPLE_TEMPERATURE, generator=gen
        )
        return "".join(chars)

    def _title(self) -> str:
        m = self.config.model
        return (
            f"{m.cell.upper()} {m.num_layers}x{m.hidden_size}, "
            f"{self.model.num_parameters():,} parameters"
        )

    def _save_state(self) -> None:
        tensors: dict[str, Tensor] = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        opt_tensors, opt_info = ckpt.optimizer_to_tensors(self.optimizer)
        tensors.update(opt_tensors)
        if self.state is not None:
            parts = self.state if isinstance(self.state, tuple) else (self.state,)
            for name, part in zip(("h", "c"), parts, strict=False):
                tensors[f"hidden.{name}"] = distributed.gather_batch(self.ctx, part, dim=1)
        rng = torch.get_rng_state().to(self.ctx.device).unsqueeze(0)  # (1, n) uint8
        tensors["rng.cpu"] = distributed.gather_batch(self.ctx, rng, dim=0).cpu()
        if self.ctx.device.type == "cuda":
            cuda_rng = torch.cuda.get_rng_state(self.ctx.device).to(self.ctx.device).unsqueeze(0)
            tensors["rng.cuda"] = distributed.gather_batch(self.ctx, cuda_rng, dim=0).cpu()
        if not self.ctx.is_main:
            return
        info = {
            "position": self.windows.position,
            "chars": self.chars,
            "elapsed_s": self.elapsed,
            "best_val_bpc": self.best_val_bpc,
            "world_size": self.ctx.world_size,
            "optimizer": opt_info,
        }
        ckpt.save_train_state(self.run_dir, self.step_count, tensors, info)

    def _restore(self) -> None:
        tensors, info = ckpt.load_train_state(self.run_dir)
        model_tensors = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        ckpt.load_weights(self.model, model_tensors, str(self.run_dir / info["tensors"]))
        opt_tensors = {
            k: v.to(self.ctx.device) for k, v in tensors.items() if k.startswith("optim.")
        }
        ckpt.optimizer_from_tensors(self.optimizer, opt_tensors, info["optimizer"])
        self.windows.position = int(info["position"])
        rows = distributed.rows(self.ctx, self.config.train.batch_size)
        hidden = [tensors[f"hidden.{n}"][:, rows] for n in ("h", "c") if f"hidden.{n}" in tensors]
        if hidden:
            parts = tuple(h.to(self.ctx.device) for h in hidden)
            self.state = parts if len(parts) > 1 else parts[0]
        rng = tensors["rng.cpu"]
        if rng.size(0) == self.ctx.world_size:
            torch.set_rng_state(rng[self.ctx.rank].contiguous())
            if "rng.cuda" in tensors and self.ctx.device.type == "cuda":
                torch.cuda.set_rng_state(tensors["rng.cuda"][self.ctx.rank].contiguous())
        else:
            # Another number of processes: dropout masks cannot continue exactly; reseed.
            torch.manual_seed(self.config.train.seed + 1 + self.ctx.rank + int(info["step"]))
        self.step_count = int(info["step"])
        self.chars = int(info["chars"])
        self.elapsed_before = self.elapsed = float(info["elapsed_s"])
        self.best_val_bpc = info.get("best_val_bpc")
        self._last_saved_step = self.step_count
        self.rows = read_metrics(self.run_dir / ckpt.METRICS, self.step_count)

    # ---- signals --------------------------------------------------------------------------

    def _install_signal_handlers(self) -> Callable[[], None]:
        """SIGINT/SIGTERM ask the loop to stop after this step; a second SIGINT aborts."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None  # Python delivers signals to the main thread only

        def handler(signum: int, frame: FrameType | None) -> None:
            name = signal.Signals(signum).name
            if self._stop is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt  # asked twice: stop now; the files stay consistent
            self._stop = name
            if self.progress is not None:
                self.progress.message(f"{name}: stopping after this step and saving ...")

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for s, h in old.items():
                signal.signal(s, h)

        return restore


def _print_flushed(text: str) -> None:
    print(text, flush=True)  # before the progress bar, which goes to stderr


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def train(
    out_dir: str | Path | None = None,
    *,
    model_options: dict[str, Any] | None = None,
    train_config: TrainConfig | None = None,
    source: dict[str, Any] | None = None,
    vocab_min_count: int = 1,
    resume: str | Path | None = None,
    steps: int | None = None,
    minutes: float | None = None,
    out: TextIO | None = None,
    log: Callable[[str], None] | None = None,
    on_step: Callable[[Trainer], None] | None = None,
) -> Summary:
    """Train a new run into ``out_dir`` or continue ``resume``; what ``rnnkit train`` does.

    ``model_options`` are :class:`CharLMConfig` fields besides ``vocab_size``; ``source``
    is the corpus (None: the standard library). With ``resume``, only the budget
    (``steps``, ``minutes``) may change. ``on_step(trainer)`` is called after every
    step (e.g. to ``request_stop``). Under torchrun every process calls this.
    """
    train_config = train_config or TrainConfig()
    log = log or _print_flushed
    if resume is not None:
        run_dir = Path(resume)
        config, corpus = prepare_resume(run_dir, steps, minutes)
        ctx = distributed.setup(config.train.device)
    else:
        ctx = distributed.setup(train_config.device)
    try:
        if resume is None:
            cell = (model_options or {}).get("cell", "lstm")
            default = Path("runs") / f"{cell}-{time.strftime('%Y%m%d-%H%M%S')}"
            run_dir = Path(distributed.broadcast_str(ctx, str(out_dir or default)))
            config, corpus = prepare_new_run(
                run_dir, model_options or {}, train_config, source, vocab_min_count
            )
        distributed.barrier(ctx)  # every process has checked before anything is written
        if ctx.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            ckpt.save_run_config(run_dir, config)
            m = config.model
            log(f"corpus: {corpus.describe()}")
            log(
                f"model: {m.cell.upper()}, {m.num_layers} x {m.hidden_size} hidden, "
                f"embedding {m.embed_size}, vocabulary {m.vocab_size}; run folder: {run_dir}"
            )
        distributed.barrier(ctx)
        trainer = Trainer(run_dir, config, corpus, resume=resume is not None, out=out, ctx=ctx)
        if ctx.is_main:
            log(f"parameters: {trainer.model.num_parameters():,}; processes: {ctx.world_size}")
        return trainer.fit(on_step)
    finally:
        distributed.teardown(ctx)
