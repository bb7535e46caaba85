"""Training throughput of `rnnkit train` against a minimal hand-written torch.nn.LSTM loop.

Both sides train the same character-level model (embedding -> 2-layer LSTM -> linear head)
with the same configuration on the same windows of the default corpus: truncated BPTT
with the state carried and detached, AdamW, gradient-norm clipping. The rnnkit side is
the library's own training step (``rnnkit.train.Trainer._one_step`` on the ``lm`` task:
stream batching, LR schedule, rnnkit.LSTM); the baseline is the loop one would write by
hand around ``torch.nn.LSTM``. Steps are timed in alternation, in the same process, and the medians
give characters per second and their ratio (goal: >= 0.9, the toolkit adds no overhead).

    python benchmarks/bench_lm_throughput.py                 # the `rnnkit train` defaults
    python benchmarks/bench_lm_throughput.py --quick         # fewer repeats
    python benchmarks/bench_lm_throughput.py --cells         # RNN/GRU/LSTM at equal size

``--cells`` instead times `rnnkit train`'s step for the three cells at an equal
parameter budget (the hidden sizes of docs/language-model.md), interleaved the same way:
on a shared machine this, not the wall-clock of separate runs, is how fast each cell is.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

import _args
from _timing import interleaved_medians, machine
from rnnkit.tasks.lm import LanguageModelTask, LMOptions
from rnnkit.train import RunFolder, TrainConfig, Trainer
from rnnkit.train.distributed import Context

CPU = Context(0, 1, torch.device("cpu"))
TRAIN_CHARS = 2_000_000  # the same windows for both sides: the first 2 M training characters


class HandLM(nn.Module):
    """The baseline model: what one writes by hand with torch.nn."""

    def __init__(self, V: int, E: int, H: int, L: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(V, E)
        self.lstm = nn.LSTM(E, H, L)
        self.head = nn.Linear(H, V)

    def forward(self, x: torch.Tensor, state: tuple | None) -> tuple[torch.Tensor, tuple]:
        out, state = self.lstm(self.embedding(x), state)  # (T, B, H)
        return self.head(out), state


def hand_loop(ids: torch.Tensor, V: int, o: LMOptions, t: TrainConfig) -> Callable[[], None]:
    """One step of the minimal loop per call: next window, forward, backward, AdamW."""
    B, T = o.batch_size, o.seq_len
    n = (ids.numel() - 1) // B
    data = ids[: B * n + 1].long()
    x_all, y_all = data[:-1].view(B, n).t(), data[1:].view(B, n).t()  # (n, B)
    model = HandLM(V, o.embed_size, o.hidden_size, o.num_layers)
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    box: dict = {"k": 0, "state": None}

    def step() -> None:
        k = box["k"] % (n // T)
        box["k"] += 1
        x, y = x_all[k * T : (k + 1) * T], y_all[k * T : (k + 1) * T]
        state = None if box["state"] is None else tuple(s.detach() for s in box["state"])
        logits, box["state"] = model(x, state)
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), t.clip_norm)
        opt.step()

    return step


def lm_task(options: LMOptions, t: TrainConfig) -> LanguageModelTask:
    """The ``lm`` task prepared on the default corpus (the vocabulary of all of it), reading
    only the first TRAIN_CHARS training characters."""
    task = LanguageModelTask(options)
    task.prepare(t, CPU)
    task.corpus = dataclasses.replace(task.corpus, train=task.corpus.train[:TRAIN_CHARS])
    return task


def trainer_of(task: LanguageModelTask, t: TrainConfig, run_dir: str) -> Trainer:
    """The loop of `rnnkit train` on ``task``. Its ``_one_step`` is what is timed: the next
    window, the LR schedule, forward, backward, clipping, AdamW; no evaluation, no file."""
    return Trainer(task, t, RunFolder(run_dir), CPU)


EQUAL_PARAMETERS = {"lstm": 128, "gru": 148, "rnn": 254}  # ~263 k parameters each, V = 166


def cell_rates(o: LMOptions, t: TrainConfig, k: int, repeats: int) -> dict[str, float]:
    """Characters per second of the training step of each cell, timed interleaved."""
    steps = {}
    with tempfile.TemporaryDirectory() as run_dir:
        for cell, H in EQUAL_PARAMETERS.items():
            task = lm_task(dataclasses.replace(o, cell=cell, hidden_size=H), t)
            trainer = trainer_of(task, t, run_dir)
            n = sum(p.numel() for p in trainer.model.parameters())
            steps[f"{cell} H={H} ({n:,} parameters)"] = lambda tr=trainer: [
                tr._one_step() for _ in range(k)
            ]
        medians = interleaved_medians(steps, repeats=repeats, warmup=1)
    chars = k * o.batch_size * o.seq_len
    return {name: chars / sec for name, sec in medians.items()}


def main() -> None:
    parser = _args.parser(__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument(
        "--threads", type=_args.threads, default=1, help="torch threads (default: 1)"
    )
    parser.add_argument(
        "--steps-per-sample", type=_args.positive_int, default=5, help="steps per timing"
    )
    parser.add_argument("--cells", action="store_true", help="RNN/GRU/LSTM at equal size")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    o = LMOptions()  # the `rnnkit train` defaults
    # A budget that never ends and no evaluation: only the training step is timed.
    t = LanguageModelTask.default_train(steps=10**9, eval_every=10**9, threads=args.threads)
    repeats = 3 if args.quick else 9
    k = args.steps_per_sample
    if args.cells:
        rates = cell_rates(o, t, k, repeats)
        print(f"machine: {machine()}")
        print(f"batch {o.batch_size} streams x seq_len {o.seq_len}; median of {repeats} samples")
        first = rates[next(iter(rates))]
        print(f"{'cell':<40}{'chars/s':>12}{'vs lstm':>9}")
        for name, rate in rates.items():
            print(f"{name:<40}{rate:>12,.0f}{rate / first:>9.2f}")
        return
    base = lm_task(o, t)
    V = len(base.vocab)
    ids = base.vocab.encode(base.corpus.train, dtype=torch.int32)

    with tempfile.TemporaryDirectory() as run_dir:
        trainer = trainer_of(base, t, run_dir)
        hand = hand_loop(ids, V, o, t)

        def rnnkit_steps() -> None:
            for _ in range(k):
                trainer._one_step()

        def hand_steps() -> None:
            for _ in range(k):
                hand()

        medians = interleaved_medians(
            {"torch.nn.LSTM hand-written": hand_steps, "rnnkit train": rnnkit_steps},
            repeats=repeats,
            warmup=1,
        )
    chars = k * o.batch_size * o.seq_len
    rate0 = chars / medians["torch.nn.LSTM hand-written"]
    print(f"machine: {machine()}")
    print(
        f"model: {o.cell.upper()} {o.num_layers} x {o.hidden_size}, embedding {o.embed_size}, "
        f"vocabulary {V}; batch {o.batch_size} streams x seq_len {o.seq_len}; "
        f"median of {repeats} samples of {k} steps"
    )
    print(f"{'loop':<28}{'chars/s':>12}{'ratio':>8}")
    for name, sec in medians.items():
        rate = chars / sec
        print(f"{name:<28}{rate:>12,.0f}{rate / rate0:>8.3f}")
    ratio = chars / medians["rnnkit train"] / rate0
    print(f"ratio rnnkit / hand-written: {ratio:.3f} (goal >= 0.9)")


if __name__ == "__main__":
    main()
