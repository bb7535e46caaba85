"""Processes of a script under test: its process group, and a file it is to write."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def group(pgid: int) -> dict[int, str]:
    """The live processes of group ``pgid`` (zombies left out): pid -> command line."""
    alive = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            alive[int(entry.name)] = command
    return alive


def wait_for(path: Path, proc: subprocess.Popen[str], seconds: float = 240) -> None:
    """Until ``path`` exists; fails if ``proc`` exits first or ``seconds`` pass."""
    end = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, f"exited {proc.returncode} first: {proc.communicate()}"
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.2)
