"""Timing helpers shared by the benchmark scripts: warm-up, interleaved repeats, medians.

The machines are shared and absolute times drift, so every benchmark times its baseline
and its candidates in the same process, interleaved round by round, and reports ratios.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping


def interleaved_medians(
    fns: Mapping[str, Callable[[], object]],
    *,
    repeats: int,
    warmup: int = 2,
    synchronize: Callable[[], object] | None = None,
) -> dict[str, float]:
    """Median seconds per call of each function, timed in alternation, after a warm-up.

    ``synchronize`` (``torch.cuda.synchronize`` for GPU work) runs before the clock starts
    and before it stops, so that a call is timed to the end of the work it queued."""
    sync = synchronize or (lambda: None)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync()
            start = time.perf_counter()
            fn()
            sync()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def cpu_name() -> str:
    """The processor's model name where Linux gives it (timings differ by vendor: which
    GEMM rnnkit's fused kernels use depends on it, rnnkit.kernels.gemm), else what
    Python's platform module says."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return " ".join(line.partition(":")[2].split())
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device: str = "cpu", *, threads: str | None = None) -> str:
    """The processor, CPUs, torch and its threads (``threads``: what to say instead of
    this process's count, for work done in other processes)."""
    import os

    import torch

    where = (
        f"{cpu_name()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, {threads or f'{torch.get_num_threads()} threads'}"
    )
    if device.startswith("cuda"):
        where += f", GPU {torch.cuda.get_device_name(device)}"
    return where


def synchronizer(device: str) -> Callable[[], object] | None:
    """What to pass as ``interleaved_medians(synchronize=...)`` for work on ``device``."""
    import torch

    return torch.cuda.synchronize if device.startswith("cuda") else None
