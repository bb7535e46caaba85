"""The long-memory table: each cell on the adding problem, copy memory and selective copying.

Each row trains one configuration from scratch (fresh data every step, a fixed held-out
batch for evaluation) within a step and time budget, and reports the result against the
task's memoryless baseline. Rows run one after another; the table is printed as markdown
and, with --out, written to a file.

    python benchmarks/long_memory.py --preset quick          # minutes: short sequences
    python benchmarks/long_memory.py --preset issue --out docs/long-memory-table.md
    python benchmarks/long_memory.py --task adding --length 200 --cells lstm,gru,mingru,rnn
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from _timing import machine
from rnnkit.models.memory import MemoryTaskConfig, train_memory_task

PRESETS = {
    # Short sequences that finish in a few minutes on 2 CPU cores.
    "quick": [
        dict(task="adding", length=100, cell=c, steps=1500, lr=3e-3, minutes=3)
        for c in ("lstm", "gru", "mingru", "rnn")
    ],
    # The goals: adding at T = 1000, copy memory at T = 200, selective copying
    # with a 3-layer MinGRU.
    "issue": [
        *(
            dict(task="adding", length=1000, cell=c, steps=3000, lr=3e-3, minutes=20)
            for c in ("lstm", "gru", "mingru", "rnn")
        ),
        *(
            dict(task="copy", length=200, cell=c, steps=4000, lr=3e-3, minutes=20)
            for c in ("lstm", "gru", "mingru")
        ),
        dict(
            task="selective-copy",
            length=256,
            cell="mingru",
            num_layers=3,
            steps=4000,
            lr=3e-3,
            minutes=30,
        ),
    ],
}


def verdict(result: dict) -> str:
    base, final = result["baseline"], result["final"]
    if result["metric"] == "accuracy":
        return f"{final:.1%} (chance {base:.1%})"
    ratio = base / max(final, 1e-12)
    if ratio < 2:
        return f"{final:.4g}: not solved (baseline {base:.4g})"
    return f"{final:.4g} ({ratio:.0f}x below the baseline {base:.4g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS))
    parser.add_argument("--task", default="adding")
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--cells", default="lstm,gru,mingru,rnn")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--out", type=Path, help="also write the markdown table here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = (
        PRESETS[args.preset]
        if args.preset
        else [
            dict(task=args.task, length=args.length, cell=c, steps=args.steps, minutes=args.minutes)
            for c in args.cells.split(",")
        ]
    )
    lines = [
        f"machine: {machine()}",
        "",
        "| task | T | cell | layers × H | params | steps | time | result vs baseline |",
        "|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for row in rows:
        config = MemoryTaskConfig(**row)
        result = train_memory_task(config, log=lambda _: None)
        line = (
            f"| {config.task} | {config.length} | {config.cell} | {config.num_layers} × "
            f"{config.hidden_size} | {result['parameters']:,} | {result['steps']} | "
            f"{result['seconds'] / 60:.1f} min | {verdict(result)} |"
        )
        lines.append(line)
        print(line, flush=True)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
