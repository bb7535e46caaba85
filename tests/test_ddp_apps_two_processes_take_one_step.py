"""`torchrun --nproc_per_node 2 -m rnnkit train TASK` for the applications (tag, forecast,
classify) on small files of a user's: each process takes its rows of the global batch and
the two processes end where one process ends (without dropout or noise, whose draws are
each process's own), even where the windows of a batch hold different numbers of
scored steps."""

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

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
        reason="torch.distributed with gloo is not available",
    ),
]

COMMON = ["--steps", "4", "--eval-every", "2", "--seed", "3", "--threads", "1",
          "--dropout", "0"]  # fmt: skip


def _tag_data(folder: Path) -> Path:
    """Lines of different lengths: a batch's windows hold different numbers of tags."""
    path = folder / "tags.jsonl"
    lines = []
    for i in range(40):
        x = "ab1 " * (1 + i % 7) + "c" * (i % 5)
        y = ["N" if c in "ab" else "D" if c == "1" else "S" if c == " " else "C" for c in x]
        lines.append(json.dumps({"x": x, "y": y}))
    path.write_text("\n".join(lines) + "\n")
    return path


def _forecast_data(folder: Path) -> Path:
    """Series of different lengths: windows with different numbers of targets."""
    path = folder / "sales.csv"
    rows = ["series,value"]
    for s in range(8):
        for t in range(12 + 5 * s):
            rows.append(f"s{s},{100 + 10 * s + (t * 7 % 11) + t}")
    path.write_text("\n".join(rows) + "\n")
    return path


def _classify_data(folder: Path) -> Path:
    """A UEA/UCR .ts file of series of different lengths, two classes."""
    path = folder / "shapes.ts"
    rows = [
        "@problemName shapes",
        "@timeStamps false",
        "@missing false",
        "@univariate true",
        "@equalLength false",
        "@classLabel true up down",
        "@data",
    ]
    for i in range(24):
        values = [float((t * (i % 3 + 1)) % 7) for t in range(5 + i % 6)]
        if i % 2:
            values = values[::-1]
        rows.append(",".join(f"{v:g}" for v in values) + (":down" if i % 2 else ":up"))
    path.write_text("\n".join(rows) + "\n")
    return path


def _state(run: Path) -> dict[str, torch.Tensor]:
    info = json.loads((run / "train_state.json").read_text())
    assert info["step"] == 4
    return load_file(str(run / info["tensors"]))


def _two_processes(args: list[str], out: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RNNKIT_FUSED": "0"}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "rnnkit", "train", *args, "--out", str(out)],
        capture_output=True, text=True, timeout=240, env=env,
    )  # fmt: skip


@pytest.mark.parametrize("task", ["classify", "tag", "forecast", "forecast-members"])
def test_two_processes_end_where_one_ends(task: str, tmp_path: Path, monkeypatch) -> None:
    if task == "classify":
        args = ["classify", "--data", str(_classify_data(tmp_path)), "--hidden", "8",
                "--batch-size", "8", "--noise", "0"]  # fmt: skip
    elif task == "tag":
        args = ["tag", "--data", str(_tag_data(tmp_path)), "--hidden", "8", "--seq-len", "6",
                "--batch-size", "8", "--eval-context", "2"]  # fmt: skip
    else:
        args = ["forecast", "--data", str(_forecast_data(tmp_path)), "--horizon", "2",
                "--hidden", "8", "--batch-size", "8", "--context", "9"]  # fmt: skip
        if task == "forecast-members":  # each member's windows hold their own targets
            args += ["--members", "2"]
    args += COMMON
    two = _two_processes(args, tmp_path / "two")
    assert two.returncode == 0, two.stderr[-6000:]
    assert two.stdout.count("run saved to") == 1  # one process reports
    monkeypatch.setenv("RNNKIT_FUSED", "0")
    assert main(["train", *args, "--out", str(tmp_path / "one")]) == 0
    one, both = _state(tmp_path / "one"), _state(tmp_path / "two")
    keys = [k for k in one if k.startswith(("model.", "optim.")) and one[k].is_floating_point()]
    assert keys
    for k in keys:
        torch.testing.assert_close(both[k], one[k], rtol=1e-4, atol=1e-6, msg=k)
