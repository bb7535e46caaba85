"""Argument checks shared by the benchmark scripts, in the style of rnnkit's commands.

A bad value is refused in one line that names the argument, what was expected and what
was given, with exit status 2, before any data is read, any model trained or any file or
folder written: the scripts run for minutes to hours, and a typo found at the end would
waste the run (or, for an output path, lose its table).

Nothing here imports torch: classify.py sets its thread budget in the environment before
torch, numba and BLAS start, and parses its arguments first.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import multiprocessing.pool
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar, overload

T = TypeVar("T")
N = TypeVar("N")

SEED_MAX = 2**63 - 1  # torch.manual_seed takes a signed 64-bit integer, as rnnkit's --seed
THREADS_MAX = 4096  # as rnnkit's --threads (TrainConfig.threads)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose output files (options of type :func:`new_file`) are never
    written over unasked: the first such option brings ``--overwrite`` with it, and an
    existing file one of them names is refused after parsing, before any work, unless
    ``--overwrite`` is given."""

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        if action.type is new_file and "overwrite" not in {a.dest for a in self._actions}:
            super().add_argument(
                "--overwrite",
                action="store_true",
                help="replace the existing files the output options name (refused without it)",
            )
        return action

    @overload
    def parse_args(
        self, args: Iterable[str] | None = None, namespace: None = None
    ) -> argparse.Namespace: ...
    @overload
    def parse_args(self, args: Iterable[str] | None, namespace: N) -> N: ...
    @overload
    def parse_args(self, *, namespace: N) -> N: ...
    def parse_args(self, args: Iterable[str] | None = None, namespace: Any = None) -> Any:
        parsed = super().parse_args(args, namespace)
        if not getattr(parsed, "overwrite", False):
            for action in self._actions:
                name = getattr(parsed, action.dest, None) if action.type is new_file else None
                if name is not None and (Path(name).exists() or Path(name).is_symlink()):
                    flag = max(action.option_strings, key=len)
                    refuse(
                        self,
                        flag,
                        f"expected a file name that does not exist; got {name}, an existing "
                        "file (--overwrite replaces it)",
                    )
        return parsed


def parser(description: str) -> argparse.ArgumentParser:
    """An ArgumentParser that reports a bad argument in one line (no usage block), exit 2,
    as rnnkit's commands do (``rnnkit.cli._lm_args.one_line_errors``), and refuses to
    write over an existing file unasked (:class:`_Parser`)."""
    p = _Parser(description=description)

    def error(message: str) -> NoReturn:
        print(f"{p.prog}: error: {' '.join(message.split())}", file=sys.stderr)
        sys.exit(2)

    p.error = error  # type: ignore[method-assign]
    return p


def refuse(p: argparse.ArgumentParser, flag: str, message: str) -> NoReturn:
    """A check made after parsing, reported as argparse reports a bad type."""
    p.error(f"argument {flag}: {message}")


def check(
    p: argparse.ArgumentParser, flag: str, kind: Callable[..., T], *given: Any, **kw: Any
) -> T:
    """``kind(*given, **kw)`` for a value checked after parsing (one that needs rnnkit,
    which imports torch), refused as a bad type would be."""
    try:
        return kind(*given, **kw)
    except (argparse.ArgumentTypeError, ValueError) as e:
        refuse(p, flag, str(e))


# ---- stopping ------------------------------------------------------------------------------


def stop_if_signalled(summary: Any, *, saved: bool = True) -> Any:
    """``summary`` (of ``rnnkit.train.train``), unless Ctrl-C or SIGTERM stopped that run:
    then the whole script stops, exit 128 + the signal's number.

    The trainer takes those signals to end its run after the step and save it, then
    returns as at the end of its budget; a script that trains run after run would
    otherwise go on to its next run and ignore the request. ``saved``: whether the run's
    folder stays (False for a run in a temporary folder, removed as the script stops). In
    a pool's worker, run the task through :func:`pool_task`, which hands the stop back to
    the main process (:func:`gather`); there the line is said only by the process the
    signal stopped first (:func:`pool`).
    """
    if summary.stopped_by in ("SIGINT", "SIGTERM"):
        code = 128 + signal.Signals[summary.stopped_by]
        if _STOP is None or _first_stop(_STOP, code, saved):
            kept = "; the run is saved" if saved else ""
            print(f"stopped by {summary.stopped_by}{kept}", file=sys.stderr, flush=True)
        raise SystemExit(code)
    return summary


# The stop a pool's processes share (pool()): CODE, the exit code of the first stop (0
# while none); SAVED, the runs the workers saved as they stopped; MAIN, the signal that
# stopped the main process first (0: none), which its pool reports as it closes; from
# RUNNING on, one slot a worker: the process id of each worker running a task (0: none).
CODE, SAVED, MAIN, RUNNING = 0, 1, 2, 3
_STOP: Any = None  # in a pool's worker: the shared stop the main process watches
_OPEN: Any = None  # in the main process, while its pool is open: the same
_CLOSING = False  # in the main process, while its pool ends its workers
_LATE = 0  # the signal that came meanwhile, for a pool that ends after its work


def _first_stop(stop: Any, code: int, saved: bool = False) -> bool:
    """Record a worker's stop in ``stop``; whether it is the first (the one to report)."""
    with stop.get_lock():
        first = stop[CODE] == 0
        if first:
            stop[CODE] = code
        stop[SAVED] += saved
    return first


class _Pool(multiprocessing.pool.Pool):
    """A pool whose ``with`` block, once its workers have ended, says what stopped the
    main process when a signal did (:func:`exit_on_signals`), and how many runs its
    workers saved as they stopped: one line for them all.

    Ended otherwise (its results all in, an error in a worker or in the main process),
    the stop is shared first, so that a worker stopped after its step by terminate()'s
    SIGTERM says nothing of a signal no one sent: the error's traceback is what is said.
    A signal while the workers end is taken once they have: a second Ctrl-C ends them at
    once (their trainers take it) and is no new stop; one that comes as a pool that did
    its work closes stops the script then."""

    stop: Any = None

    def __exit__(self, *exc: Any) -> None:
        global _OPEN, _CLOSING, _LATE
        _CLOSING, _LATE = True, 0
        try:
            with self.stop.get_lock():
                if self.stop[CODE] == 0:
                    self.stop[CODE] = 1  # no signal's: the workers stop without a word
            super().__exit__(*exc)  # terminate(): a training worker stops after its step
        finally:
            late = _LATE if exc[0] is None else 0  # else already ending: on that
            _OPEN, _CLOSING, _LATE = None, False, 0
            if self.stop[MAIN] or late:
                saved = self.stop[SAVED]
                kept = {0: "", 1: "; the run is saved"}.get(saved, f"; the {saved} runs are saved")
                name = signal.Signals(self.stop[MAIN] or late).name
                print(f"stopped by {name}{kept}", file=sys.stderr, flush=True)
        if late:
            raise SystemExit(128 + late)


def pool(processes: int) -> tuple[Any, Any]:
    """A spawn pool of ``processes`` workers whose tasks run through :func:`pool_task`, and
    the shared stop that :func:`gather` watches.

    Ctrl-C reaches every process of the terminal's group. The workers ignore SIGINT except
    while they train (the trainer takes it: the run ends after its step and is saved); the
    main process unwinds and terminates the pool (SIGTERM, which a worker's trainer would
    then name). The stop is said once: by a worker that a signal stopped on its own, else
    by the main process as its pool closes."""
    global _OPEN
    context = multiprocessing.get_context("spawn")
    stop = context.Array("i", RUNNING + processes)
    # The workers start with SIGINT ignored (importing torch, Ctrl-C would end one in a
    # KeyboardInterrupt traceback); a spawned process keeps an ignored signal ignored.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        workers = _Pool(processes, _watched_by, (stop,), context=context)
    finally:
        signal.signal(signal.SIGINT, previous)
    workers.stop = _OPEN = stop
    return workers, stop


def _watched_by(stop: Any) -> None:
    global _STOP
    _STOP = stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a worker the pool starts later too


def pool_task(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker of :func:`pool`. A stop (:func:`stop_if_signalled`'s
    SystemExit) still ends the worker - so that a terminating pool, whose workers a
    SIGTERM stops after their step, is not left waiting for one - and its code is shared
    first: the pool would start a new worker, hand it the next task and never return this
    one's result, and :func:`gather` ends the script instead. So does a worker killed
    mid-task (the kernel's out-of-memory killer): its slot keeps its process id."""
    slot = _running(_STOP, os.getpid()) if _STOP is not None else None
    try:
        return fn(*args)
    except SystemExit as stop:
        if _STOP is not None:
            _first_stop(_STOP, stop.code if isinstance(stop.code, int) and stop.code else 1)
        raise
    except KeyboardInterrupt:
        # A second Ctrl-C, which the trainer turns into KeyboardInterrupt to stop at once
        # (its last checkpoint kept): the worker ends as the stop asks, without the
        # traceback multiprocessing prints for a worker that ends on an exception.
        if _STOP is None:
            raise
        code = 128 + signal.SIGINT
        _first_stop(_STOP, code)
        raise SystemExit(code) from None
    finally:
        if slot is not None:
            _STOP[slot] = 0


def _running(stop: Any, pid: int) -> int | None:
    """The slot of ``stop`` where a worker's process id says it runs a task."""
    with stop.get_lock():
        free = next((k for k in range(RUNNING, len(stop)) if stop[k] == 0), None)
        if free is not None:
            stop[free] = pid
    return free


def _ended_mid_task(stop: Any) -> int | None:
    """The process id of a worker that ended while it ran a task, None while none did."""
    for k in range(RUNNING, len(stop)):
        pid = stop[k]
        if pid:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:  # gone, and reaped by the pool
                return pid
            except PermissionError:  # another user's process now: this one is gone
                return pid
    return None


def gather(results: Any, stop: Any) -> Iterator[Any]:
    """The results of ``pool.imap_unordered`` over :func:`pool_task`s as they come, until
    a task was stopped: then SystemExit with its code (the pool's ``with`` block then
    terminates the other workers)."""
    from multiprocessing import TimeoutError as Waited

    while True:
        try:
            yield results.next(timeout=0.5)
        except StopIteration:
            return
        except Waited:
            if stop[CODE]:
                raise SystemExit(stop[CODE]) from None
            # A worker killed mid-task (SIGKILL: the out-of-memory killer) never hands its
            # result back, and the pool, which starts another, would wait for it for ever.
            pid = _ended_mid_task(stop)
            if pid is not None:
                print(
                    f"stopped: pool worker {pid} ended in the middle of its run, killed (out "
                    "of memory?); expected each run to end with a result or a stop",
                    file=sys.stderr,
                    flush=True,
                )
                raise SystemExit(1) from None


def exit_on_signals() -> None:
    """Ctrl-C and SIGTERM unwind the main process (exit 130 or 143, no traceback), so that
    a pool's ``with`` block, or a ``finally``, ends the workers instead of leaving them to
    run on. While a :func:`pool` is open, the stop is shared first: its workers then stop
    without a word, and the pool says it as it closes."""

    def unwind(received: int, _: Any) -> None:
        global _LATE
        shared = _OPEN
        if _CLOSING:
            # While the pool ends its workers (a second Ctrl-C): they take Ctrl-C
            # themselves and end at once; unwinding out of terminate() would leave them
            # to an exit that says the stop before they have ended. The pool's exit
            # takes it once they have.
            _LATE = _LATE or received
            return
        if shared is not None:
            with shared.get_lock():
                if shared[CODE] == 0:
                    shared[CODE], shared[MAIN] = 128 + received, received
        sys.exit(128 + received)

    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, unwind)


# ---- numbers ---------------------------------------------------------------------------------


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer; got {text!r}") from None


def int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An integer in [low, high] (no upper bound when ``high`` is None)."""

    def kind(text: str) -> int:
        value = integer(text)
        if value < low or (high is not None and value > high):
            want = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"expected {want}; got {value}")
        return value

    return kind


positive_int = int_in(1)
nonnegative_int = int_in(0)
seed = int_in(0, SEED_MAX)
threads = int_in(1, THREADS_MAX)


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number; got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number; got {text!r}")
    return value


def float_in(
    low: float, high: float | None = None, *, open_low: bool = False
) -> Callable[[str], float]:
    """A finite number in [low, high] ((low, high] with ``open_low``)."""

    def kind(text: str) -> float:
        value = finite_float(text)
        below = value <= low if open_low else value < low
        if below or (high is not None and value > high):
            left = "(" if open_low else "["
            if high is not None:
                want = f"a number in {left}{low:g}, {high:g}]"
            else:
                want = f"a number {'>' if open_low else '>='} {low:g}"
            raise argparse.ArgumentTypeError(f"expected {want}; got {text!r}")
        return value

    return kind


positive_float = float_in(0, open_low=True)
nonnegative_float = float_in(0)


# ---- lists and names -------------------------------------------------------------------------


def one_of(known: Iterable[str], what: str = "") -> Callable[[str], str]:
    """A name from ``known`` (``what``: what the names are, for the message)."""
    names = list(known)

    def kind(text: str) -> str:
        if text not in names:
            of = f" {what}" if what else ""
            raise argparse.ArgumentTypeError(
                f"expected one of the{of} {', '.join(names)}; got {text!r}"
            )
        return text

    return kind


def listed(item: Callable[[str], T], what: str = "values") -> Callable[[str], list[T]]:
    """A comma-separated list of ``item``s: at least one, each once (a repeated one would
    train or time the same thing twice and make two table columns of one name)."""

    def kind(text: str) -> list[T]:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}; got an empty list")
        values, seen = [], set()
        for part in text.split(","):
            try:
                value = item(part.strip())
            except argparse.ArgumentTypeError as e:
                where = f" (in {text!r})" if "," in text else ""
                raise argparse.ArgumentTypeError(f"{e}{where}") from None
            if value in seen:
                raise argparse.ArgumentTypeError(
                    f"expected comma-separated {what}, each once; got {part.strip()!r} twice "
                    f"(in {text!r})"
                )
            seen.add(value)
            values.append(value)
        return values

    return kind


def each_once(p: argparse.ArgumentParser, flag: str, values: list[Any] | None) -> None:
    """For options that take several values (nargs): refuse a repeated one."""
    seen = set()
    for v in values or []:
        if v in seen:
            refuse(p, flag, f"expected each value once; got {v!r} twice")
        seen.add(v)


def device(text: str) -> str:
    """A torch device of the kind the timing scripts run on: cpu, cuda or cuda:N."""
    kind, colon, index = text.partition(":")
    if kind not in ("cpu", "cuda") or (colon and (kind == "cpu" or not index.isdigit())):
        raise argparse.ArgumentTypeError(f"expected cpu, cuda or cuda:N; got {text!r}")
    return text


def no_effect(p: argparse.ArgumentParser, mode: str, others: dict[str, Any]) -> None:
    """Refuse the options of ``others`` (flag: its parsed value, None when not given) in
    ``mode`` (e.g. "with --table-only"): they would have no effect there, and a value
    silently ignored reads as a value used."""
    for other, value in others.items():
        if value is not None:
            p.error(f"argument {other}: has no effect {mode}; got {other} {mode}")


# ---- paths ------------------------------------------------------------------------------------


def nonempty(text: str) -> str:
    """A name to read or write: an empty one would mean the working folder unsaid."""
    if not text:
        raise argparse.ArgumentTypeError("expected a name; got an empty string")
    return text


def new_file(text: str) -> str:
    """A file the script writes (a table, a figure, JSON): a name in an existing folder,
    not a folder itself. Checked before the work, which would else be lost at the end;
    an existing file is refused after parsing unless --overwrite is given (:class:`_Parser`)."""
    path = Path(nonempty(text))
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"expected a file name; got {text}, a folder")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(
            f"expected a file name in an existing folder; got {text}, whose folder does not exist"
        )
    # Only what permissions say (a root process passes): write_file names a later refusal.
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(
            f"expected a file name in a folder you may write to; got {text}, whose folder is "
            "not writable"
        )
    return text


def folder(text: str) -> str:
    """A folder the script writes into (made with its parents if missing): not a file."""
    path = Path(nonempty(text))
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"expected a folder; got {text}, a file")
    return text


def writable(p: argparse.ArgumentParser, flag: str, name: str) -> None:
    """Refuse a folder the script will write into (made with its parents if missing) that
    cannot be: one under a file, or one in a folder this process may not write to - now,
    not when the first file is written after the work."""
    path = Path(name)
    existing = next(f for f in (path, *path.absolute().parents) if f.exists())
    if not existing.is_dir():
        refuse(p, flag, f"expected a folder; got {name}, under the file {existing}")
    if not os.access(existing, os.W_OK | os.X_OK):
        whose = "which" if existing == path else f"whose folder {existing}"
        refuse(p, flag, f"expected a folder you may write to; got {name}, {whose} is not writable")


def existing_folder(text: str) -> str:
    """A folder the script reads."""
    path = Path(nonempty(text))
    if not path.is_dir():
        what = "a file" if path.exists() else "which does not exist"
        raise argparse.ArgumentTypeError(f"expected an existing folder; got {text}, {what}")
    return text


def existing_file(text: str) -> str:
    """A file the script reads."""
    path = Path(nonempty(text))
    if not path.is_file():
        what = "a folder" if path.is_dir() else "which does not exist"
        raise argparse.ArgumentTypeError(f"expected an existing file; got {text}, {what}")
    return text


def write_file(
    p: argparse.ArgumentParser, flag: str, name: str | Path, data: str | bytes, overwrite: bool
) -> None:
    """Write ``data`` (text as UTF-8) to the file ``name`` whole or not at all: into a
    temporary file beside it, then renamed into place. Without ``overwrite`` an existing
    file is never replaced, not even one made while the script ran; the system's refusal
    (permissions, a full or read-only disk) is said in one line naming ``flag``."""
    path = Path(name)
    data = data.encode("utf-8") if isinstance(data, str) else data
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; results are shared
        if overwrite:
            os.replace(tmp, path)
        else:
            _place(tmp, path)
    except FileExistsError:
        refuse(
            p,
            flag,
            f"expected a file name that does not exist; got {name}, a file made while the "
            "script ran (--overwrite replaces it)",
        )
    except OSError as err:
        refuse(
            p,
            flag,
            f"expected a file in a folder you may write to; got {name}, which cannot be "
            f"written ({err.strerror or err})",
        )
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _place(tmp: str, path: Path) -> None:
    """``tmp`` named ``path`` unless ``path`` exists (FileExistsError): a hard link fails
    on an existing name, where a rename would replace it."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links
        if path.exists() or path.is_symlink():
            raise FileExistsError(path) from None
        os.replace(tmp, path)


def figure_bytes(fig: Any, name: str | Path, **savefig: Any) -> bytes:
    """A matplotlib figure as the bytes of the format ``name``'s extension names (none:
    PNG), for :func:`write_file`."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format=Path(name).suffix.lstrip(".").lower() or "png", **savefig)
    return buffer.getvalue()


def cuda_device(p: argparse.ArgumentParser, flag: str, name: str) -> None:
    """Refuse a CUDA device (:func:`device`) this machine does not have, before the work:
    torch would else fail at the first tensor, in a traceback."""
    if not name.startswith("cuda"):
        return
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(name.partition(":")[2] or 0)
    if count == 0:
        refuse(p, flag, f"expected cpu (torch sees no CUDA device on this machine); got {name}")
    if index >= count:
        refuse(p, flag, f"expected cpu, cuda or cuda:N with N < {count}; got {name}")


def empty(path: Path) -> bool:
    """A folder with nothing in it."""
    return path.is_dir() and not any(path.iterdir())


def replaceable_runs(p: argparse.ArgumentParser, flag: str, folders: Iterable[Path]) -> None:
    """Refuse to replace a folder that is neither an rnnkit run folder nor empty: the
    scripts remove the run folder they retrain (a rerun replaces it), and a typo in
    ``flag`` must not remove a folder of the user's."""
    from rnnkit.train.runfolder import is_run_folder

    for f in folders:
        if f.is_symlink() or (f.exists() and not (empty(f) or is_run_folder(f))):
            refuse(
                p,
                flag,
                f"expected a folder whose {f.name} is absent or an rnnkit run folder (it is "
                f"replaced); got {f}, which is not a run folder",
            )


def run_of(p: argparse.ArgumentParser, flag: str, name: str, task: str) -> None:
    """Refuse ``name`` unless it is an rnnkit run folder (or a pretrained folder) of
    ``task``: a wrong one would be found after the parts timed before it."""
    from rnnkit.train.runfolder import RunFolder

    if not name:
        refuse(p, flag, "expected a name; got an empty string")
    path = Path(name)
    if not (path / "config.json").is_file():
        what = "which does not exist" if not path.exists() else "which holds no config.json"
        refuse(p, flag, f"expected an rnnkit {task} run folder; got {name}, {what}")
    try:
        kind = RunFolder(path).read_config().task
    except ValueError as e:
        refuse(p, flag, f"expected an rnnkit {task} run folder; got {name}: {e}")
    if kind != task:
        refuse(p, flag, f"expected an rnnkit {task} run folder; got {name}, a {kind} run")
