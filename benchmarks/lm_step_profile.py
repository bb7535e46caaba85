"""Where one training step of `rnnkit train`'s language model spends its time.

Runs the default language model (the lm task's own options and training defaults, the
standard library) through `rnnkit.train.Trainer`'s step under `torch.profiler`, after
warm-up steps, and sums the operators' own CPU time into the parts of the step: reading
the batch, the embedding, the recurrent layer (forward and backward), the head and its
loss, clipping, the optimiser, and the rest. Prints one table, shares of the step:

    python benchmarks/lm_step_profile.py                # 2 threads, as rnnkit train
    python benchmarks/lm_step_profile.py --threads 1 --steps 40
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

import _args
from rnnkit.tasks.lm import LanguageModelTask, LMOptions
from rnnkit.train import RunFolder, Trainer
from rnnkit.train.distributed import Context

CPU = Context(0, 1, torch.device("cpu"))

# Operator name fragments -> part of the step, first match wins. The recurrent layer's
# kernels are oneDNN's (mkldnn_rnn_layer*) for the default LSTM.
PARTS = [
    ("recurrent layer", ("rnn", "lstm", "gru", "mkldnn")),
    ("embedding", ("embedding",)),
    ("head and loss", ("addmm", "linear", "mm", "log_softmax", "nll_loss", "cross_entropy")),
    ("clipping", ("norm", "clip", "_foreach_mul_", "stack")),
    ("optimiser", ("adam", "_foreach", "lerp", "addcdiv", "sqrt")),
    ("reading the batch", ("next", "index", "select", "slice", "copy_", "to", "cat")),
]


def part(name: str) -> str:
    low = name.lower()
    for label, keys in PARTS:
        if any(k in low for k in keys):
            return label
    return "other"


def main() -> None:
    ap = _args.parser(__doc__.splitlines()[0])
    ap.add_argument(
        "--threads", type=_args.threads, default=LanguageModelTask.train_defaults["threads"]
    )
    ap.add_argument("--steps", type=_args.positive_int, default=30, help="steps profiled")
    ap.add_argument("--warmup", type=_args.nonnegative_int, default=10,
                    help="steps run first, not profiled")  # fmt: skip
    args = ap.parse_args()
    torch.manual_seed(0)
    task = LanguageModelTask(LMOptions(sample_chars=0))
    train = LanguageModelTask.default_train(threads=args.threads, eval_every=10**9)
    task.prepare(train, CPU)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(task, train, RunFolder(run_dir), CPU)
        for _ in range(args.warmup):
            trainer._one_step()
        start = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                trainer._one_step()
        wall = (time.perf_counter() - start) / args.steps
    shares: dict[str, float] = defaultdict(float)
    top: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        if event.key.startswith("ProfilerStep") or event.self_cpu_time_total <= 0:
            continue
        shares[part(event.key)] += event.self_cpu_time_total
        top[event.key] += event.self_cpu_time_total
    total = sum(shares.values())
    o = task.options
    print(
        f"lm step: LSTM {o.num_layers} x {o.hidden_size}, B {o.batch_size} x T {o.seq_len}, "
        f"{args.threads} thread(s); {args.steps} steps profiled after {args.warmup}; "
        f"{wall * 1e3:.1f} ms per step (under the profiler)"
    )
    print(f"{'part of the step':<20} {'ms/step':>8} {'share':>6}")
    for label, us in sorted(shares.items(), key=lambda kv: -kv[1]):
        print(f"{label:<20} {us / args.steps / 1e3:>8.2f} {us / total:>6.1%}")
    print("\nthe ten largest operators (own CPU time):")
    for key, us in sorted(top.items(), key=lambda kv: -kv[1])[:10]:
        print(f"  {key:<48} {us / args.steps / 1e3:>7.2f} ms  {us / total:>6.1%}")


if __name__ == "__main__":
    main()
