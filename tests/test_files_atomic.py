"""A killed atomic write leaves no stray file for good: the next write of the same file
removes the temporary its killed writer left (rnnkit.train.files.atomic_write).

The temporary's name says it is rnnkit's and which process wrote it, so that only a dead
writer's leftover is removed, never a live writer's file or a user's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rnnkit.train import files

# Writes argv[2] to argv[1] with atomic_write and is killed (SIGKILL: no cleanup can run)
# once the bytes are on disk, just before the rename.
KILLER = """
import os, signal, sys
from pathlib import Path
from rnnkit.train import files

def killed(fd):
    os.kill(os.getpid(), signal.SIGKILL)

os.fsync = killed
files.atomic_write(Path(sys.argv[1]), sys.argv[2].encode())
"""


def _killed_write(target: Path, text: str) -> int:
    """Run a write of ``target`` killed mid-way; returns the killed process's pid."""
    proc = subprocess.Popen([sys.executable, "-c", KILLER, str(target), text])
    assert proc.wait(timeout=120) == -signal.SIGKILL
    return proc.pid


def test_the_next_write_removes_a_killed_writes_temporary(tmp_path: Path) -> None:
    target = tmp_path / "metrics.csv"
    target.write_text("old\n")
    pid = _killed_write(target, "half")
    (left,) = [p.name for p in tmp_path.iterdir() if p != target]
    # Hidden, rnnkit's, and named by the killed process; the old file is whole.
    assert left.startswith(f".metrics.csv.rnnkit_{pid}_") and left.endswith(".tmp")
    assert target.read_text() == "old\n"
    files.atomic_write(target, b"new\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]
    assert target.read_text() == "new\n"


def test_only_a_dead_writers_temporaries_of_the_same_file_are_removed(tmp_path: Path) -> None:
    target, other = tmp_path / "model.safetensors", tmp_path / "config.json"
    dead = _killed_write(target, "half")
    _killed_write(other, "half")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = files._host()
        kept = [
            f".model.safetensors.rnnkit_{live.pid}_{host}_abc123.tmp",  # a write in progress
            f".model.safetensors.rnnkit_{os.getpid()}_{host}_abc123.tmp",  # this process's
            f".model.safetensors.rnnkit_{dead}_{'0' * 8 if host != '0' * 8 else '1' * 8}_x.tmp",
            ".model.safetensors.abc123.tmp",  # an older rnnkit's: whose, nobody knows
            "model.safetensors.rnnkit_1_00000000_x.tmp",  # not hidden: not our name
        ]
        for name in kept:
            (tmp_path / name).write_text("keep")
        files.atomic_write(target, b"new")
        names = sorted(p.name for p in tmp_path.iterdir())
        assert not [n for n in names if n.startswith(f".model.safetensors.rnnkit_{dead}_{host}")]
        ours = [n for n in names if n.startswith((".model", "model.")) and n != target.name]
        assert sorted(ours) == sorted(kept)
        (stale,) = [n for n in names if n.startswith(".config.json.")]  # another file's
        files.atomic_write(other, b"{}")
        assert not (tmp_path / stale).exists()
    finally:
        live.kill()
        live.wait()


def test_a_temporary_that_cannot_be_removed_does_not_fail_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "a.txt"
    _killed_write(target, "half")

    def refused(path: object) -> None:
        raise PermissionError("not allowed")

    monkeypatch.setattr(files.os, "unlink", refused)
    files.atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    monkeypatch.undo()
    assert len(files.remove_stale_temps(target)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_a_dead_savers_folder_is_removed_only_when_folders_are_asked_for(tmp_path: Path) -> None:
    target = tmp_path / "pub"
    dead = _killed_write(tmp_path / "x", "half")  # a pid that no longer runs
    host = files._host()
    folder = tmp_path / f".pub.rnnkit_{dead}_{host}_abc.tmp"
    (folder / "inner").mkdir(parents=True)
    (folder / "inner" / "model.safetensors").write_bytes(b"half")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "mine.txt").write_text("mine")
    link = tmp_path / f".pub.rnnkit_{dead}_{host}_lnk.tmp"
    link.symlink_to(elsewhere, target_is_directory=True)
    assert files.remove_stale_temps(target) == []  # atomic_write's cleanup: files only
    assert files.remove_stale_temps(target, folders=True) == [folder]
    assert not folder.exists() and link.is_symlink()  # a link is never followed or removed
    assert (elsewhere / "mine.txt").read_text() == "mine"
    made = files.temp_folder(target)
    assert made.is_dir() and made.name.startswith(files.temp_prefix(target))
    assert files.remove_stale_temps(target, folders=True) == []  # this process's: in use
