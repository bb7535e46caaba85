"""DDP: two CPU processes (gloo) end where one process with the same global batch ends."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.distributed

from rnnkit.cli import main
from rnnkit.train import checkpoint as ckpt

ARGS = [
    "--steps", "6", "--hidden", "16", "--embed", "8", "--layers", "2", "--seq-len", "16",
    "--batch-size", "4", "--eval-every", "3", "--seed", "3", "--threads", "1",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_two_processes_match_one_with_the_same_global_batch(tmp_path: Path, capsys):
    text = tmp_path / "text.txt"
    text.write_text(Path(textwrap.__file__).read_text(encoding="utf-8"), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "rnnkit", "train", "--text", str(text), *ARGS, "--out", str(tmp_path / "two")],
        capture_output=True, text=True, timeout=240, env=env,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-2000:]
    assert two.stdout.count("run saved to") == 1  # only rank 0 reports and writes
    assert main(["train", "--text", str(text), *ARGS, "--out", str(tmp_path / "one")]) == 0
    one_state, one_info = ckpt.load_train_state(tmp_path / "one")
    two_state, two_info = ckpt.load_train_state(tmp_path / "two")
    assert two_info["world_size"] == 2 and one_info["world_size"] == 1
    assert one_info["position"] == two_info["position"] == 6
    floats = [k for k in one_state if one_state[k].is_floating_point()]
    assert any(k.startswith("hidden.") for k in floats)  # the gathered (L, B, H) states
    for k in floats:
        # Same data, same averaged gradients: equal up to the order of float sums.
        torch.testing.assert_close(two_state[k], one_state[k], rtol=1e-4, atol=1e-6)
    assert two_state["rng.cpu"].shape[0] == 2  # each process's dropout stream is kept
