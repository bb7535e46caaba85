"""Multi-process training with PyTorch's DistributedDataParallel.

``torchrun --nproc_per_node=N -m rnnkit train ...`` starts N processes and sets
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in their environment. Each process reads its own
B/N of the B streams; DDP averages the gradients, so the step is the one a single process
would take on all B streams (each process's loss is a mean over equally many targets).
Only rank 0 writes files; the carried hidden states are gathered to it for checkpoints.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class Context:
    """Where this process stands: its rank among ``world_size`` and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str) -> Context:
    """Pick the device and, under torchrun, join the process group (gloo/NCCL)."""
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but this PyTorch sees no CUDA device")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Context(0, 1, torch.device("cuda" if use_cuda else "cpu"))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Context(rank, world_size, dev)


def teardown(ctx: Context) -> None:
    if ctx.distributed and dist.is_initialized():
        gc.collect()  # what still holds the group (DDP's reducer, in module cycles) first
        dist.destroy_process_group()


def rows(ctx: Context, batch_size: int) -> slice:
    """The streams of the global batch this process reads."""
    if batch_size % ctx.world_size:
        raise ValueError(
            f"--batch-size must be divisible by the number of processes; got {batch_size} "
            f"streams for {ctx.world_size} processes"
        )
    per = batch_size // ctx.world_size
    return slice(ctx.rank * per, (ctx.rank + 1) * per)


def gather_batch(ctx: Context, t: Tensor, dim: int) -> Tensor:
    """Concatenate every process's ``t`` along ``dim`` in rank order (all ranks get it)."""
    if not ctx.distributed:
        return t
    parts = [torch.empty_like(t) for _ in range(ctx.world_size)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts, dim=dim)


def agree_max(ctx: Context, values: list[float]) -> list[float]:
    """The element-wise maximum over all processes (stop flags, elapsed time)."""
    if not ctx.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()


def broadcast_str(ctx: Context, text: str) -> str:
    """Rank 0's ``text`` in every process (a run folder named after rank 0's clock)."""
    if not ctx.distributed:
        return text
    data = torch.zeros(4096, dtype=torch.uint8, device=ctx.device)
    raw = torch.frombuffer(bytearray(text.encode("utf-8")[:4096]), dtype=torch.uint8)
    data[: raw.numel()] = raw.to(ctx.device)
    dist.broadcast(data, src=0)
    return bytes(data.cpu().tolist()).rstrip(b"\0").decode("utf-8")


def broadcast_module(ctx: Context, module: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers in every process's ``module``, in place."""
    if not ctx.distributed:
        return
    with torch.no_grad():
        for t in module.state_dict(keep_vars=True).values():
            data = t.data if isinstance(t, torch.nn.Parameter) else t
            if not isinstance(data, Tensor) or not data.numel():
                continue
            if data.is_contiguous():
                dist.broadcast(data, src=0)
            else:
                buf = data.contiguous()
                dist.broadcast(buf, src=0)
                data.copy_(buf)
