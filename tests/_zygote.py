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
            for fd, name in ((1, "stdout"), (2, "stderr")):
                log = os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                os.dup2(log, fd)
            sys.stdin = open(os.devnull)
            sys.argv = request["argv"]
            os.environ.update(request["env"])
            if request["cwd"]:
                os.chdir(request["cwd"])
            if request["path"]:  # a script's own folder, as python SCRIPT puts it first
                sys.path.insert(0, request["path"])
            signal.alarm(request["timeout"])  # a hung child ends as SIGALRM, not a hung test
            name = request["argv"][0]  # "-c", or the script's path
            scope = {"__name__": "__main__"}
            if name != "-c":
                scope["__file__"] = name
            exec(compile(request["code"], name, "exec"), scope)
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
    """:meth:`run` is ``subprocess.run([python, "-c", code, *args])`` and :meth:`script`
    ``subprocess.run([python, script, *args])``, each on a child forked from a process
    that imported ``preload`` (module names) once."""

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
        return self._ask(code, ["-c", *args], log, log, timeout=timeout)

    def script(
        self,
        path: Path,
        args: list[str],
        logs: Path,
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        timeout: int = 300,
    ) -> subprocess.CompletedProcess[str]:
        """The script run as ``python path *args`` would run it, in ``cwd`` with ``env``
        added; its output is kept in the folder ``logs`` (made here)."""
        logs.mkdir(parents=True, exist_ok=True)
        out, err = logs / "stdout", logs / "stderr"
        for f in (out, err):
            f.write_text("")
        code = self._ask(
            path.read_text(encoding="utf-8"), [str(path), *args], out, err,
            cwd=cwd, env=env, path=path.parent, timeout=timeout,
        )  # fmt: skip
        return subprocess.CompletedProcess(
            [str(path), *args], code, out.read_text(), err.read_text()
        )

    def _ask(
        self,
        code: str,
        argv: list[str],
        stdout: Path,
        stderr: Path,
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        path: Path | None = None,
        timeout: int,
    ) -> int:
        assert self._server.stdin is not None and self._server.stdout is not None
        request = {
            "code": code, "argv": argv, "stdout": str(stdout), "stderr": str(stderr),
            "cwd": str(cwd or ""), "env": env or {}, "path": str(path or ""),
            "timeout": timeout,
        }  # fmt: skip
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
