"""`rnnkit train --task adding|copy|selective-copy`: the long-memory tasks (10.21)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnkit.models.memory import TASKS, MemoryTaskConfig, train_memory_task
from rnnkit.train.checkpoint import write_json

# The options of `rnnkit train` a long-memory task reads, as config field names.
_SHARED = {
    "cell": "cell",
    "layers": "num_layers",
    "hidden": "hidden_size",
    "batch_size": "batch_size",
    "lr": "lr",
    "steps": "steps",
    "minutes": "minutes",
    "eval_every": "eval_every",
    "seed": "seed",
}
# Options of `rnnkit train` that mean nothing for a long-memory task.
_FOREIGN = ("text", "min_count", "embed", "dropout", "forget_bias", "seq_len", "resume")


def add_memory_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "long-memory tasks (--task adding|copy|selective-copy)",
        "Generated on the fly from --seed; the result is reported against the task's "
        "memoryless baseline. --cell, --layers, --hidden, --batch-size, --lr, --steps, "
        "--minutes, --eval-every, --seed and --out apply too.",
    )
    group.add_argument(
        "--length",
        type=int,
        help="T, the span to remember: the adding problem's sequence length, copy memory's "
        "delay, selective copying's noise length (default: 100)",
    )
    group.add_argument(
        "--cosine",
        action="store_true",
        help="decay the learning rate to 0 over --steps along half a cosine",
    )
    group.add_argument(
        "--until-goal",
        action="store_true",
        help="stop at the first evaluation that reaches the task's goal (adding: MSE < 0.01; "
        "copy: 100x below the baseline; selective-copy: 99%% right)",
    )
    group.add_argument(
        "--no-chrono",
        action="store_true",
        help="PyTorch's initialisation instead of chrono initialisation with T_max = T",
    )


def is_memory_task(args: argparse.Namespace) -> bool:
    return args.task in TASKS


def run_memory_train(args: argparse.Namespace) -> int:
    given = [name for name in _FOREIGN if getattr(args, name, None) is not None]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ValueError(f"{flags}: not an option of --task {args.task}")
    options = {
        field: getattr(args, name)
        for name, field in _SHARED.items()
        if getattr(args, name, None) is not None
    }
    if args.length is not None:
        options["length"] = args.length
    config = MemoryTaskConfig(
        task=args.task,
        chrono=not args.no_chrono,
        until_goal=args.until_goal,
        cosine=args.cosine,
        **options,
    )
    out = Path(args.out) if args.out else None
    if out is not None:
        if out.exists() and any(out.iterdir()):
            raise ValueError(f"--out {out} exists and is not empty; choose a new folder")
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", {"task": config.task, "memory": config.to_dict()})
    result = train_memory_task(config, log=lambda line: print(line, flush=True))
    better = "above" if result["metric"] == "accuracy" else "below"
    print(
        f"{config.task}, T = {config.length}, {config.cell} {config.num_layers} x "
        f"{config.hidden_size}: {result['metric']} {result['final']:.4g} after "
        f"{result['steps']} steps ({result['seconds']:.0f} s); memoryless baseline "
        f"{result['baseline']:.4g} ({better} is better)"
    )
    if result["goal_step"] is not None:
        print(
            f"goal {result['goal']:.4g} first reached at step {result['goal_step']} "
            f"({result['goal_seconds']:.0f} s)"
        )
    if out is not None:
        write_json(out / "result.json", result)
        print(f"results saved to {out / 'result.json'}")
    return 0
