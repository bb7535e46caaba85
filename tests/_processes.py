"""Processes of a script under test: started in a group of their own, the group's live
processes, a file the script is to write, and nothing left running after the test."""

from __future__ import annotations

import contextlib
import os
import signal
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


STARTED: list[int] = []  # the process groups start() made, for kill_started()


def start(
    command: list[str], cwd: Path, env: dict[str, str], *, ctrl_c: bool = False
) -> subprocess.Popen[str]:
    """``command`` in a process group of its own (its workers join it, which ``group``
    checks), output captured; ``ctrl_c``: SIGINT reaches it as it reaches a terminal's
    foreground job (a shell's background job ignores it)."""
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) if ctrl_c else None,
    )
    STARTED.append(proc.pid)
    return proc


def kill_started() -> None:
    """Kill whatever is left running in the process groups start() made."""
    while STARTED:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(STARTED.pop(), signal.SIGKILL)
