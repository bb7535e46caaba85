"""rnnkit.fit under torchrun (two CPU processes, gloo), as a user's script runs it: a stop
that reaches one process only, the best weights in every process, and a
DistributedSampler told each epoch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed
from safetensors.torch import load_file

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="torch.distributed with gloo is not available",
)

WORKER = r"""
import faulthandler, json, os, sys
faulthandler.dump_traceback_later(60, exit=True)  # a process left waiting ends, not hangs
import torch
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler
import rnnkit
from rnnkit.train import distributed

mode, out, report = sys.argv[1], sys.argv[2], sys.argv[3]
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
x = torch.arange(16, dtype=torch.float32).unsqueeze(1).repeat(1, 3)
data = TensorDataset(x, (torch.arange(16) % 2))
seen = []

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)

    def forward(self, v):
        if self.training:
            seen.append([int(i) for i in v[:, 0]])
        return self.lin(v / 16)

torch.manual_seed(rank)  # DDP starts every process from rank 0's weights
model = Net()
trainers = []
if mode == "stop":
    # A SIGTERM that reaches rank 1 just after the processes agreed to go on at step 3.
    agree = distributed.agree_max

    def late_signal(ctx, values):
        agreed = agree(ctx, values)
        if rank == 1 and len(values) == 2 and trainers and trainers[0].step == 3:
            trainers[0].request_stop("SIGTERM")
        return agreed

    distributed.agree_max = late_signal
    loader = DataLoader(data, batch_size=4)
    kwargs = dict(steps=8, eval_every=3)
else:
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=4, sampler=sampler)
    # The loss ranked upwards: the best checkpoint is the first, not the last weights.
    kwargs = dict(steps=6, eval_every=2, higher_is_better=True, lr=0.1)
summary = rnnkit.fit(
    model, loader, out=out, threads=1, log=lambda line: None,
    on_step=lambda t: trainers.append(t) if not trainers else None, **kwargs,
)
with open(f"{report}-{rank}.json", "w") as f:
    json.dump({"step": summary.step, "stopped_by": summary.stopped_by, "seen": seen,
               "weight": model.lin.weight.flatten().tolist(),
               "bias": model.lin.bias.tolist()}, f)
"""


def _torchrun(tmp_path: Path, mode: str) -> list[dict]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            str(script), mode, str(tmp_path / "run"), str(tmp_path / "report")]  # fmt: skip
    with open(tmp_path / "torchrun.log", "w") as log:
        proc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=120)
    assert proc.returncode == 0, (tmp_path / "torchrun.log").read_text()[-6000:]
    return [json.loads((tmp_path / f"report-{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.slow
def test_a_stop_reaching_one_process_after_the_agreement_ends_both_at_the_next_step(
    tmp_path: Path,
):
    zero, one = _torchrun(tmp_path, "stop")
    assert (zero["step"], one["step"]) == (4, 4)
    assert (zero["stopped_by"], one["stopped_by"]) == ("a stop in another process", "SIGTERM")
    manifest = json.loads((tmp_path / "run" / "train_state.json").read_text())
    assert (manifest["step"], manifest["tensors"]) == (4, "train_state-00000004.safetensors")
    assert zero["weight"] == one["weight"]


@pytest.fixture(scope="module")
def sampled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    tmp = tmp_path_factory.mktemp("ddp_fit")
    return tmp, _torchrun(tmp, "sampler")


@pytest.mark.slow
def test_every_process_ends_with_the_best_weights(sampled):
    tmp, (zero, one) = sampled
    best = load_file(str(tmp / "run" / "model.safetensors"))
    manifest = json.loads((tmp / "run" / "train_state.json").read_text())
    assert manifest["best"]["step"] < manifest["step"]  # the last weights are not the best
    for report in (zero, one):
        assert report["weight"] == best["lin.weight"].flatten().tolist()
        assert report["bias"] == best["lin.bias"].tolist()


@pytest.mark.slow
def test_a_distributed_sampler_is_told_each_epoch(sampled):
    from torch.utils.data.distributed import DistributedSampler

    _, reports = sampled
    data = list(range(16))
    for rank, report in enumerate(reports):
        sampler = DistributedSampler(data, num_replicas=2, rank=rank, shuffle=True, seed=0)
        expected = []
        for epoch in range(3):  # 8 indices a process an epoch, 2 batches of 4: 6 steps
            sampler.set_epoch(epoch)
            order = list(sampler)
            expected += [order[:4], order[4:]]
        assert report["seen"] == expected
        assert expected[0:2] != expected[2:4]  # the epochs are shuffled differently
