"""A run of two processes resumed with two processes, and with one: both continue it
(torch.set_rng_state reads a row of the saved (N, n) RNG tensor as a whole tensor only)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed
from safetensors.torch import load_file

from rnnkit.cli import main

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
        reason="torch.distributed with gloo is not available",
    ),
]

ARGS = ["classify", "--dataset", "UnitTest", "--hidden", "8", "--batch-size", "8",
        "--dropout", "0", "--noise", "0", "--steps", "4", "--eval-every", "2",
        "--threads", "1"]  # fmt: skip


def _torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RNNKIT_FUSED": "0"}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "rnnkit", "train", *args],
        capture_output=True, text=True, timeout=240, env=env,
    )  # fmt: skip


def _state(run: Path) -> dict[str, torch.Tensor]:
    info = json.loads((run / "train_state.json").read_text())
    assert info["step"] == 6
    return load_file(str(run / info["tensors"]))


def test_a_two_process_run_resumes_with_two_and_with_one(tmp_path: Path, monkeypatch) -> None:
    first = _torchrun(*ARGS, "--out", str(tmp_path / "two"))
    assert first.returncode == 0, first.stderr[-6000:]
    shutil.copytree(tmp_path / "two", tmp_path / "one")
    again = _torchrun("--resume", str(tmp_path / "two"), "--steps", "6")
    assert again.returncode == 0, again.stderr[-6000:]
    monkeypatch.setenv("RNNKIT_FUSED", "0")
    assert main(["train", "--resume", str(tmp_path / "one"), "--steps", "6"]) == 0
    two, one = _state(tmp_path / "two"), _state(tmp_path / "one")
    for k in one:
        if k.startswith(("model.", "optim.")) and one[k].is_floating_point():
            torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=1e-6, msg=k)
