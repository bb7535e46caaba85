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
from rnnkit.train import RunFolder

ARGS = [
    "--steps", "6", "--hidden", "16", "--embed", "8", "--layers", "2", "--seq-len", "16",
    "--batch-size", "4", "--eval-every", "3", "--eval-chars", "2000", "--seed", "3",
    "--threads", "1", "--dropout", "0",  # dropout's streams differ with the process count
]  # fmt: skip


def _state(run: Path) -> tuple[dict[str, torch.Tensor], dict]:
    ckpt = RunFolder(run).read_checkpoint()
    assert ckpt is not None
    return ckpt.tensors, ckpt.info


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_two_processes_match_one_with_the_same_global_batch(tmp_path: Path, capsys):
    text = tmp_path / "text.txt"
    text.write_text(Path(textwrap.__file__).read_text(encoding="utf-8"), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "rnnkit", "train", "lm", "--text", str(text), *ARGS,
         "--out", str(tmp_path / "two")],
        capture_output=True, text=True, timeout=240, env=env,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-8000:]  # the ranks' own errors come before the summary
    assert two.stdout.count("run saved to") == 1  # only rank 0 reports and writes
    assert main(["train", "lm", "--text", str(text), *ARGS, "--out", str(tmp_path / "one")]) == 0
    one_state, one_info = _state(tmp_path / "one")
    two_state, two_info = _state(tmp_path / "two")
    assert two_info["world_size"] == 2 and one_info["world_size"] == 1
    assert one_info["data"] == two_info["data"] == {"position": 6}
    assert one_info["items"] == two_info["items"] == 6 * 16 * 4
    assert one_state.keys() == two_state.keys()
    floats = [k for k in one_state if one_state[k].is_floating_point()]
    assert {"task.h", "task.c"} <= set(floats)  # the gathered (L, B, H) states
    assert two_state["task.h"].shape == (2, 4, 16)
    for k in floats:
        # Same data, same averaged gradients: equal up to the order of float sums.
        torch.testing.assert_close(two_state[k], one_state[k], rtol=1e-4, atol=1e-6)
    assert two_state["rng.cpu"].shape[0] == 2  # each process's dropout stream is kept
    assert one_state["rng.cpu"].shape[0] == 1
