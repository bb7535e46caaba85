"""Training the encoder-decoder on the numbers task.

Teacher forcing (the decoder reads the true previous character), with optional scheduled
sampling (Bengio et al. 2015: the share of the model's own predictions it reads rises
linearly from 0 to ``scheduled_sampling`` over the run) and label smoothing. Adam with a
cosine learning-rate decay and gradient-norm clipping. Every ``eval_every`` steps: the
validation loss and greedy exact-match accuracy go to ``metrics.csv`` and the log, and the
checkpoint is written (see :mod:`rnnkit.seq2seq.checkpoint`); ``resume=True`` continues a
run from its folder exactly where the last checkpoint left it.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor

from rnnkit.seq2seq import checkpoint as ckpt
from rnnkit.seq2seq.data import CharVocab, NumbersTask, batch_tensors
from rnnkit.seq2seq.decode import greedy
from rnnkit.seq2seq.model import Seq2Seq, Seq2SeqConfig, sequence_loss

METRICS = ("step", "train_loss", "valid_loss", "valid_exact", "lr", "seconds")
# Keys of the config a resumed run may change: how long it trains, not what it trains.
RESUMABLE = ("steps", "max_seconds", "eval_every", "threads")


@dataclass
class NumbersConfig:
    """Everything a numbers run needs; stored under "config" in ``config.json``."""

    # -- the task
    lang: str = "en"  # any language num2words supports
    direction: str = "words2digits"  # or digits2words
    min_number: int = 0
    max_number: int = 999_999  # inclusive
    valid_fraction: float = 0.05  # share of the numbers held out for validation
    test_fraction: float = 0.05  # share of the numbers held out for the test
    split_seed: int = 0  # which numbers fall in which split
    n_valid: int = 300  # numbers evaluated at each evaluation
    n_test: int = 2000  # numbers of the test set (rnnkit eval)
    # -- the model (see Seq2SeqConfig)
    embed_size: int = 32
    encoder: str = "gru"
    encoder_hidden: int = 64  # per direction
    encoder_layers: int = 1
    bidirectional: bool = True
    decoder: str = "gru"
    decoder_hidden: int = 128
    decoder_layers: int = 1
    attention: str = "general"
    input_feeding: bool = True
    dropout: float = 0.0
    # -- training
    steps: int = 1000  # optimiser steps: 5-10 minutes on 2 CPU cores for 0..999999
    batch_size: int = 64
    lr: float = 3e-3  # Adam; decays to 5 % of this along a cosine
    clip: float = 1.0  # maximum gradient norm
    label_smoothing: float = 0.0
    scheduled_sampling: float = 0.0  # final probability of reading the model's own token
    eval_every: int = 200
    seed: int = 0
    threads: int = 1  # torch CPU threads; 1 is fastest for these small matrices
    max_seconds: float | None = None  # stop (and checkpoint) after this much training time

    def __post_init__(self) -> None:
        for name in ("n_valid", "n_test", "steps", "batch_size", "eval_every", "threads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(
                    f"numbers config: {name} must be a positive integer; got {value!r}"
                )
        if not self.lr > 0:
            raise ValueError(f"numbers config: lr must be > 0; got {self.lr}")
        if not self.clip > 0:
            raise ValueError(f"numbers config: clip must be > 0; got {self.clip}")
        for name in ("label_smoothing", "scheduled_sampling"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(
                    f"numbers config: {name} must lie in [0, 1); got {getattr(self, name)}"
                )
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"numbers config: max_seconds must be > 0; got {self.max_seconds}")
        self.task()  # checks language, direction and range

    def task(self) -> NumbersTask:
        return NumbersTask(
            lang=self.lang,
            direction=self.direction,
            min_number=self.min_number,
            max_number=self.max_number,
            valid_fraction=self.valid_fraction,
            test_fraction=self.test_fraction,
            split_seed=self.split_seed,
        )

    def model_config(self, src_vocab_size: int, tgt_vocab_size: int) -> Seq2SeqConfig:
        names = {f.name for f in fields(Seq2SeqConfig)}
        own = {k: v for k, v in asdict(self).items() if k in names}
        return Seq2SeqConfig(src_vocab_size=src_vocab_size, tgt_vocab_size=tgt_vocab_size, **own)


def _lr_at(config: NumbersConfig, step: int) -> float:
    """Cosine decay from lr to 5 % of it (Loshchilov & Hutter 2017, without restarts)."""
    progress = min(1.0, step / config.steps)
    return config.lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress)))


@torch.no_grad()
def _validate(
    model: Seq2Seq,
    task: NumbersTask,
    numbers: list[int],
    vocabs: tuple[CharVocab, CharVocab],
    max_len: int,
) -> tuple[float, float]:
    """(mean token loss, greedy exact-match accuracy) on ``numbers``."""
    src_vocab, tgt_vocab = vocabs
    pairs = [task.pair(n) for n in numbers]
    src, lengths, tgt_in, tgt_out = batch_tensors(pairs, src_vocab, tgt_vocab)
    model.eval()
    loss = float(sequence_loss(model(src, lengths, tgt_in), tgt_out))
    decoded = greedy(model, src, lengths, max_len)
    exact = sum(tgt_vocab.decode(d.tokens) == t for d, (_, t) in zip(decoded, pairs, strict=True))
    model.train()
    return loss, exact / len(pairs)


@contextlib.contextmanager
def _stop_on_signals(log: Callable[[str], None]) -> Iterator[list[str]]:
    """SIGINT/SIGTERM ask the loop to stop after the current step (it then saves); a
    second SIGINT stops at once. Yields a list that holds the signal's name once asked."""
    asked: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield asked  # Python delivers signals to the main thread only
        return

    def handler(signum: int, frame: object) -> None:
        if asked and signum == signal.SIGINT:
            raise KeyboardInterrupt
        asked.append(signal.Signals(signum).name)
        log(f"{asked[0]}: stopping after this step and saving ...")

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield asked
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def train_numbers(
    config: NumbersConfig,
    out_dir: str | Path,
    log: Callable[[str], None] = print,
    *,
    resume: bool = False,
) -> Path:
    """Train on the numbers task into ``out_dir``; returns the run folder.

    A folder that already holds a run is refused unless ``resume`` is set; then training
    continues from its checkpoint (the stored config is used; only the keys in
    ``RESUMABLE`` may differ in ``config``).
    """
    out = Path(out_dir)
    has_run = (out / "config.json").exists()
    if has_run and not resume:
        raise ValueError(f"{out} already holds a run; pass resume to continue it")
    if resume and not has_run:
        raise ValueError(f"cannot resume: {out} holds no run (no config.json)")
    torch.set_num_threads(config.threads)
    task = config.task()

    if resume:
        meta = ckpt.read_config(out)
        stored = ckpt.dataclass_from_dict(NumbersConfig, meta["config"], "config.json: config")
        changed = [
            f.name
            for f in fields(NumbersConfig)
            if f.name not in RESUMABLE and getattr(stored, f.name) != getattr(config, f.name)
        ]
        if changed:
            raise ValueError(
                f"cannot resume {out} with a different configuration: {', '.join(changed)} "
                f"differ (only {', '.join(RESUMABLE)} may change)"
            )
        src_vocab, tgt_vocab = CharVocab(meta["source_chars"]), CharVocab(meta["target_chars"])
        max_src, max_tgt = int(meta["max_source_length"]), int(meta["max_target_length"])
    else:
        src_texts, tgt_texts = task.vocab_texts()
        src_vocab, tgt_vocab = CharVocab("".join(src_texts)), CharVocab("".join(tgt_texts))
        max_src, max_tgt = 0, 0

    torch.manual_seed(config.seed)
    model_config = config.model_config(len(src_vocab), len(tgt_vocab))
    model = Seq2Seq(model_config)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed)
    start = 0
    if resume:
        model.load_state_dict(load_file(str(out / "model.safetensors")))
        tensors = load_file(str(out / "optimizer.safetensors"))
        opt_meta = json.loads((out / "optimizer.json").read_text(encoding="utf-8"))
        ckpt.optimizer_from_files(opt, tensors, opt_meta["optimizer"])
        gen.set_state(tensors["rng.data"])
        torch.set_rng_state(tensors["rng.torch"])
        start = int(opt_meta["step"])
        log(f"resuming {out} at step {start}")
    out.mkdir(parents=True, exist_ok=True)
    valid = task.fixed_set("valid", config.n_valid)

    def save(step: int) -> None:
        meta = {
            "format": ckpt.FORMAT,
            "format_version": ckpt.FORMAT_VERSION,
            "task": ckpt.TASK,
            "config": asdict(config),
            "model": model_config.to_dict(),
            "source_chars": src_vocab.chars,
            "target_chars": tgt_vocab.chars,
            "max_source_length": max_src,
            "max_target_length": max_tgt,
        }
        tensors, opt_json = ckpt.optimizer_to_files(opt)
        tensors["rng.data"] = gen.get_state()
        tensors["rng.torch"] = torch.get_rng_state()
        ckpt.write_tensors(out / "model.safetensors", model.state_dict())
        ckpt.write_tensors(out / "optimizer.safetensors", tensors)
        ckpt.write_text(out / "optimizer.json", json.dumps({"step": step, "optimizer": opt_json}))
        ckpt.write_text(out / "config.json", json.dumps(meta, indent=2) + "\n")

    metrics_path = out / "metrics.csv"
    if not resume or not metrics_path.exists():
        with metrics_path.open("w", newline="") as f:
            csv.writer(f).writerow(METRICS)
    n_params = sum(p.numel() for p in model.parameters())
    log(
        f"numbers {config.lang} {config.direction} {config.min_number}..{config.max_number}: "
        f"{n_params:,} parameters, attention {config.attention}, "
        f"vocab {len(src_vocab)} -> {len(tgt_vocab)}"
    )
    model.train()
    t0 = time.perf_counter()
    losses: list[float] = []
    step = start
    with _stop_on_signals(log) as asked:
        while step < config.steps:
            lr = _lr_at(config, step)
            for group in opt.param_groups:
                group["lr"] = lr
            pairs = [task.pair(n) for n in task.sample("train", config.batch_size, gen)]
            max_src = max(max_src, *(len(s) for s, _ in pairs))
            max_tgt = max(max_tgt, *(len(t) for _, t in pairs))
            src, lengths, tgt_in, tgt_out = batch_tensors(pairs, src_vocab, tgt_vocab)
            ss = config.scheduled_sampling * step / config.steps
            logits = model(src, lengths, tgt_in, sampling_probability=ss, generator=gen)
            loss: Tensor = sequence_loss(logits, tgt_out, config.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            opt.step()
            losses.append(loss.item())
            step += 1
            elapsed = time.perf_counter() - t0
            out_of_time = config.max_seconds is not None and elapsed >= config.max_seconds
            stop = out_of_time or bool(asked)
            if step % config.eval_every == 0 or step == config.steps or stop:
                v_loss, v_exact = _validate(
                    model, task, valid, (src_vocab, tgt_vocab), 2 * max_tgt + 8
                )
                train_loss = sum(losses) / len(losses)
                losses.clear()
                with metrics_path.open("a", newline="") as f:
                    row = (
                        step,
                        f"{train_loss:.4f}",
                        f"{v_loss:.4f}",
                        f"{v_exact:.4f}",
                        f"{lr:.6f}",
                    )
                    csv.writer(f).writerow([*row, f"{elapsed:.1f}"])
                save(step)
                log(
                    f"step {step}/{config.steps}  train loss {train_loss:.4f}  valid loss "
                    f"{v_loss:.4f}  valid exact {v_exact:.1%}  {elapsed:.0f}s"
                )
            if stop:
                why = asked[0] if asked else "max_seconds"
                log(f"stopped by {why} after {elapsed:.0f}s at step {step}; resume to continue")
                break
    return out
