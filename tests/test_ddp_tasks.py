"""DDP for the tasks other than the language model: each process takes its rows of the
global batch, so two processes end where one process ends (up to float sums' order)."""

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

from rnnkit.cli import main

ARGS = ["adding", "--length", "10", "--hidden", "8", "--batch-size", "8", "--n-val", "16",
        "--steps", "6", "--eval-every", "3", "--seed", "5", "--threads", "1"]  # fmt: skip


def _state(run: Path) -> tuple[dict[str, torch.Tensor], dict]:
    info = json.loads((run / "train_state.json").read_text())
    return load_file(str(run / info["tensors"])), info


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_two_processes_match_one_on_the_adding_task(tmp_path: Path, capsys):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "rnnkit", "train", *ARGS, "--out", str(tmp_path / "two")],
        capture_output=True, text=True, timeout=240, env=env,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-8000:]  # the ranks' own errors come before the summary
    assert two.stdout.count("run saved to") == 1  # only rank 0 reports and writes
    assert main(["train", *ARGS, "--out", str(tmp_path / "one")]) == 0
    one_state, one_info = _state(tmp_path / "one")
    two_state, two_info = _state(tmp_path / "two")
    assert (one_info["world_size"], two_info["world_size"]) == (1, 2)
    assert one_info["step"] == two_info["step"] == 6
    for k in one_state:
        if k.startswith(("model.", "optim.")) and one_state[k].is_floating_point():
            torch.testing.assert_close(two_state[k], one_state[k], rtol=1e-4, atol=1e-6)
    assert two_state["rng.cpu"].shape[0] == 2  # each process's own RNG stream is kept
