"""One process that imports torch and rnnkit once and forks a fresh child for each script
a test would otherwise start as a new Python process.

The kill tests (tests/test_promises.py) start a training process for every point where
it is to be killed: about a hundred processes, each paying 1.5-3 s of imports before a
fraction of a second of training. A child forked from a process that has only imported
(and run no torch operation, so no thread pool exists to be lost in the fork) starts with
the imports done and is otherwise the process a script would be: its own pid, signals,
files and exit status.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_SERVER = r"""
import json, os, signal, sys, traceback
import torch  # noqa: F401 - imported once, here: the children inherit it
for name in sys.argv[1:]:
    __import__(name)
for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:  # the child: the request's script, its output to its log file
        code = 1
        try:
            log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(log, 1)
            os.dup2(log, 2)
            sys.stdin = open(os.devnull)
            sys.argv = ["-c", *request["args"]]
            signal.alarm(request["timeout"])  # a hung child ends as SIGALRM, not a hung test
            exec(compile(request["code"], "<child>", "exec"), {"__name__": "__main__"})
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    print(json.dumps(os.waitstatus_to_exitcode(status)), flush=True)
"""


class Zygote:
    """``run(code, args)`` is ``subprocess.run([python, "-c", code, *args])`` on a child
    forked from a process that imported ``preload`` (module names) once."""

    def __init__(self, preload: list[str]) -> None:
        self._server = subprocess.Popen(
            [sys.executable, "-c", _SERVER, *preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, code: str, args: list[str], log: Path, timeout: int = 300) -> int:
        """The child's exit status (negative: the signal that ended it); its stdout and
        stderr are in ``log``."""
        assert self._server.stdin is not None and self._server.stdout is not None
        request = {"code": code, "args": args, "log": str(log), "timeout": timeout}
        self._server.stdin.write(json.dumps(request) + "\n")
        self._server.stdin.flush()
        answer = self._server.stdout.readline()
        if not answer:
            raise RuntimeError(f"the zygote process ended (exit {self._server.wait()})")
        return int(json.loads(answer))

    def close(self) -> None:
        if self._server.stdin is not None:
            self._server.stdin.close()
        self._server.wait(timeout=30)
