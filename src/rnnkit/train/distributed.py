"""Multi-process training with PyTorch's DistributedDataParallel.

``torchrun --nproc_per_node=N -m rnnkit train ...`` starts N processes and sets
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in their environment. Each process reads its own
B/N of the B streams; DDP averages the gradients, so the step is the one a single process
would take on all B streams (each process's loss is a mean over equally many targets).
Only rank 0 writes files; the carried hidden states are gathered to it for checkpoints.

A run ends on an error in one line (:func:`prints_error` says which process prints it), and
a collective that fails because another process is gone becomes a
:class:`PeerLostError` (:func:`peer_lost` recognises it).
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

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


def launched_rank() -> int:
    """This process's rank as torchrun set it (``RANK``), before any process group is
    joined; 0 alone, or where RANK is no number."""
    try:
        return int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0
    except ValueError:
        return 0


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


# ---- a process that is gone --------------------------------------------------------------


class PeerLostError(RuntimeError):
    """A collective failed because another process of the run is gone (killed, crashed, or
    no longer answering): the run cannot go on. The message says what happened and how to
    continue; ``lost`` is the rank of the process gone, where it is known.

    SIGTERM is ignored while the process group is torn down (see :func:`sigterm_held`):
    torchrun sends one the moment a process dies, and it must not cut this process's
    last message short. The error leaves :func:`rnnkit.train.run.launch` with SIGTERM as
    it was before: a program that catches it and goes on can still be stopped so. The
    command line, which ends on it, ignores SIGTERM from then on (:func:`hold_sigterm`).
    """

    def __init__(self, message: str, lost: int | None = None) -> None:
        super().__init__(message)
        self.lost = lost


# What gloo's TCP transport says when the connection to a peer broke, after its
# "[.../gloo/transport/tcp/pair.cc:553] " prefix: the peer closed it or it was reset (the
# process exited or was killed), or the peer did not answer within the group's timeout.
# Only these: any other error of a collective (a size mismatch, a wrong argument) is a bug
# and keeps its traceback.
_GLOO = re.compile(
    r"gloo/transport/tcp/[\w.]+:\d+\] (?:"
    r"(?P<closed>Connection closed by peer|Socket unexpectedly closed)"
    r"|(?:Read error|writev) \S+: (?P<error>[A-Za-z][A-Za-z ]*[a-z])"
    r"|(?P<timeout>Read timeout|Write timeout|Timed out waiting \d+ms for \w+ operation "
    r"to complete))"
)
# NCCL's words for ncclRemoteError: a peer exited or its network link failed.
_NCCL = re.compile(r"(?P<error>remote process exited or there was a network error)")


def peer_lost(ctx: Context, err: BaseException) -> tuple[str, int | None] | None:
    """What happened, in words ("process 1 of 2 left the process group (Connection closed
    by peer)"), and the rank gone where known, when ``err`` is a collective that failed
    because another process is gone; None for any other error."""
    if not ctx.distributed or not isinstance(err, RuntimeError):
        return None
    text = " ".join(str(err).split())
    found = _GLOO.search(text) or _NCCL.search(text)
    if found is None:
        return None
    # Two processes: the one gone is the other. More: gloo names an address, not a rank.
    lost = 1 - ctx.rank if ctx.world_size == 2 else None
    who = (
        f"process {lost} of {ctx.world_size}"
        if lost is not None
        else f"another of the {ctx.world_size} processes"
    )
    groups = found.groupdict()
    if groups.get("timeout"):
        return f"{who} stopped answering ({groups['timeout']})", lost
    return f"{who} left the process group ({groups.get('closed') or groups['error']})", lost


def hold_sigterm() -> None:
    """Ignore SIGTERM for what is left of a process that is ending: torchrun sends it to
    every process as soon as one has ended, and its default action would kill this one
    before it has said why it stops (or, during Python's exit, which restores the default
    action of a signal that has a Python handler, turn its exit status into a death by
    signal). torchrun sends SIGKILL 30 s later to a process that has not ended. Only for a
    process that ends: one that goes on holds it for a while (:func:`sigterm_held`)."""
    if threading.current_thread() is threading.main_thread():  # signal.signal's rule
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


# ---- one line per error -------------------------------------------------------------------

# How long a process other than rank 0 waits for rank 0 to reach the same error.
WAIT_FOR_RANK_0_S = 10.0


def prints_error(line: str, *, peer_loss: bool = False, lost: int | None = None) -> bool:
    """Whether this process prints ``line``, the one line of an error that ends it.

    Alone, always. Under torchrun every process of the run reaches most errors, and each
    would print the same line: every process parses the same arguments and checks the
    same options, folder and budget. Some can differ from one process to another: a file
    read on each machine (a node that lacks it), memory (one GPU fuller than another),
    the rows of the batch a process reads, a process killed. So a process cannot know on
    its own whether the others print its line. The rule:

    - every process that ends on an error writes its line in torchrun's key-value store
      (its agent's, which outlives the processes) before it prints anything;
    - rank 0 prints its line;
    - another rank prints its line unless rank 0 wrote the same one: it waits for rank
      0's for at most :data:`WAIT_FOR_RANK_0_S` seconds, so that an error only it met (a
      file missing on its machine, memory its GPU lacks) is printed after that wait, and
      it never waits for a rank 0 that is busy elsewhere or gone (``lost=0``: no wait);
    - a process that saw another leave (``peer_loss``) prints nothing when one that left
      wrote a line of its own: that line says why it left, and it was written before the
      process ended, hence before this one saw it leave.

    Where there is no such store (the processes were not started by torchrun, or it does
    not answer), every process prints its line, as it would alone.
    """
    try:  # WORLD_SIZE or RANK set to no number: not torchrun's, so printed here
        world, rank = (int(os.environ.get(k, d)) for k, d in (("WORLD_SIZE", "1"), ("RANK", "0")))
    except ValueError:
        return True
    if world <= 1:
        return True
    store = _store()
    if store is None:
        return True
    run, attempt = (
        os.environ.get(k, "") for k in ("TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT")
    )
    prefix = f"rnnkit/{run}/{attempt}/last-words/"  # this run's, this attempt's
    kind = "lost" if peer_loss else "error"
    try:
        store.set(f"{prefix}{rank}", f"{kind}\n{line}")
        if peer_loss:
            others = [f"{prefix}{r}" for r in range(world) if r != rank]
            told = [store.get(k).decode("utf-8") for k in others if store.check([k])]
            if any(words.startswith("error\n") for words in told):
                return False
        if rank == 0 or lost == 0:
            return True
        # Polled: the store's own wait logs a warning on stderr when it times out.
        deadline = time.monotonic() + WAIT_FOR_RANK_0_S
        with sigterm_held():
            while not store.check([f"{prefix}0"]):
                if time.monotonic() >= deadline:
                    return True
                time.sleep(0.05)
            return store.get(f"{prefix}0").decode("utf-8") != f"{kind}\n{line}"
    except (RuntimeError, ValueError, UnicodeDecodeError, KeyboardInterrupt):
        return True  # the store is gone (or the wait was interrupted): say it here


# How long a process waits to reach torchrun's store before it prints its line itself.
STORE_CONNECT_S = 2.0


def _store() -> Any | None:
    """A client of torchrun's key-value store, or None where this process has none.

    The store's address is tried first with a plain socket: where nothing answers there
    (torchrun itself was killed), a store client would retry for its whole timeout,
    logging each try with a C++ stack on stderr, before the one line is printed."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    try:
        host, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
        with socket.create_connection((host, port), timeout=STORE_CONNECT_S):
            pass
        return dist.TCPStore(host, port, is_master=False, timeout=timedelta(seconds=10))
    except (KeyError, ValueError, OSError, RuntimeError):
        return None


@contextlib.contextmanager
def sigterm_held() -> Iterator[None]:
    """SIGTERM ignored for a while (as :func:`hold_sigterm`: while waiting to print, while
    the process group is torn down), then as before."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.getsignal(signal.SIGTERM)
    if old is None:  # a handler not installed from Python
        old = signal.SIG_DFL
    hold_sigterm()
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
