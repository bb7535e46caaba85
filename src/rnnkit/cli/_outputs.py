"""The files a command writes for the user: never over a file they saved, unless asked.

Every command that writes a named file (`rnnkit forecast --out/--plot`, `rnnkit translate
--plot`, `rnnkit eval --out DIR`, `rnnkit train --out RUN`) checks its outputs here before
it reads or computes anything, so a refused command leaves the disk as it was; the files
themselves are written atomically (:func:`rnnkit.train.files.atomic_write`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rnnkit.train.files import atomic_write
from rnnkit.train.runfolder import enclosing_run


def check_new_file(flag: str, name: str, force: bool, suffix: str | None = None) -> Path:
    """``name`` as a path a command may write: in an existing folder, not a folder itself,
    ending in ``suffix`` when one is given, and not an existing file unless ``force``."""
    path = Path(name)
    if suffix is not None and path.suffix.lower() != suffix:
        raise ValueError(f"{flag}: expected a file name ending in {suffix}; got {name}")
    if path.is_dir():
        raise ValueError(f"{flag}: {name} is a folder; expected a file name")
    if not path.parent.is_dir():
        raise ValueError(
            f"{flag}: the folder of {name} does not exist; expected a file name in an "
            "existing folder"
        )
    if (path.exists() or path.is_symlink()) and not force:
        raise ValueError(f"{flag} {name} exists; pass --force to replace it")
    _check_writable(flag, path.parent, f"the folder of {name}")
    return path


def check_out_folder(flag: str, name: str) -> None:
    """Refuse ``name`` as a folder to write into when it is a symbolic link (never
    followed, even to a folder: what a command writes stays where it says) or a file."""
    out = Path(name)
    if out.is_symlink():
        raise ValueError(
            f"{flag}: {name} is a symbolic link; expected a folder (rnnkit does not follow links)"
        )
    if out.exists() and not out.is_dir():
        raise ValueError(f"{flag}: {name} is a file; expected a folder")


def check_new_folder(flag: str, name: str) -> None:
    """:func:`check_out_folder`, and a new folder only inside an existing folder this
    process may write to (an existing one must be writable itself): refused before the
    work rather than when its files are written."""
    check_out_folder(flag, name)
    out = Path(name)
    if out.exists():
        _check_writable(flag, out, f"the folder {name}")
        return
    if not out.parent.is_dir():
        raise ValueError(
            f"{flag}: the folder that would hold {name} does not exist; expected an "
            "existing folder or a new one inside an existing folder"
        )
    _check_writable(flag, out.parent, f"the folder that would hold {name}")


def _check_writable(flag: str, folder: Path, what: str) -> None:
    # Only what permissions say: a root process passes, and a file system may still
    # refuse (/sys); make_folder and write_output name that refusal when it comes.
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{flag}: {what} is not writable; expected a folder you may write to")


def make_folder(flag: str, out: Path) -> None:
    """``out.mkdir()``, the system's refusal said in one line naming ``flag``."""
    try:
        out.mkdir()
    except OSError as err:
        raise type(err)(
            f"{flag}: cannot make the folder {out} ({err.strerror or err}); expected an "
            "existing folder or a new one in a folder you may write to"
        ) from None


def probe_new_folder(flag: str, name: str) -> None:
    """Make, and remove at once, the first missing folder of ``name`` (a run folder is
    made with its parents), so that the system's refusal - a file in the path, or a file
    system that refuses even a root process whose permissions pass (/sys) - is said now in
    one line naming ``flag``, not later by the run folder. Nothing is left behind; an
    existing ``name``, or one in a run folder (where not even a passing folder may be
    made: a kill would leave it there), is left to :func:`check_out_folder` and the run
    folder to judge."""
    if enclosing_run(name) is not None:
        return
    missing = None
    for folder in (Path(name), *Path(name).parents):
        if folder.exists() or folder.is_symlink():
            break
        missing = folder
    if missing is not None:
        make_folder(flag, missing)
        missing.rmdir()  # made empty just now: the run folder makes it again


def write_output(flag: str, path: Path, data: bytes) -> None:
    """:func:`~rnnkit.train.files.atomic_write`, the system's refusal (permissions, a
    read-only or full disk) said in one line naming ``flag`` and ``path``, not the
    temporary file it writes first."""
    with writing(flag, path):
        atomic_write(path, data)


@contextmanager
def writing(flag: str, path: Path | str) -> Iterator[None]:
    """Whatever writes ``path`` inside it: an OSError said in one line naming ``flag``
    and ``path``."""
    try:
        yield
    except OSError as err:
        raise type(err)(
            f"{flag}: cannot write {path} ({err.strerror or err}); expected a file in a "
            "folder you may write to"
        ) from None


def check_outside_runs(flag: str, name: str | Path, *, folder: bool = False) -> None:
    """Refuse an output that would land in a run folder, at any depth (``folder``: the
    output is a folder to write into, refused when it is a run folder itself): a run
    holds only what rnnkit writes, and anything else there makes its ``--resume`` refuse
    it (and a --force could replace its weights)."""
    run = enclosing_run(name, itself=folder)
    if run is not None:
        raise ValueError(
            f"{flag} {name}: expected a path outside any run folder; got one inside the run "
            f"folder {run}"
        )


def check_figure_format(flag: str, name: str) -> None:
    """Refuse a figure name whose extension matplotlib cannot write (none means PNG), now
    rather than after the work that draws it."""
    from matplotlib.backend_bases import FigureCanvasBase

    kind = Path(name).suffix.lstrip(".").lower()
    formats = FigureCanvasBase.get_supported_filetypes()
    if kind and kind not in formats:
        raise ValueError(
            f"{flag}: expected a file name ending in a figure format ({', '.join(sorted(formats))}"
            f"); got {name}"
        )


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two names point to the same file (or would, once written)."""
    if os.path.abspath(a) == os.path.abspath(b):
        return True
    return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)


@contextmanager
def staged_folder(flag: str, name: str, force: bool, own: bool) -> Iterator[Path]:
    """A scratch folder for the files a command writes into the folder ``name``; on a clean
    exit each is written there atomically (:func:`~rnnkit.train.files.atomic_write`: a
    symbolic link replaced, never followed). A file already there is refused, before any
    is written, unless ``force`` or ``own`` (the folder is a run folder whose figures the
    command itself wrote). ``name`` is made when its parent exists; on an error nothing is
    left behind. The scratch folder lies in the system's temporary folder, not in ``name``:
    a killed command must not leave a folder in a run folder, which would then hold
    something rnnkit does not own and refuse ``--resume``."""
    out = Path(name)
    check_new_folder(flag, name)
    made = not out.exists()
    if made:
        make_folder(flag, out)
    stage = Path(tempfile.mkdtemp(prefix="rnnkit-out-"))
    try:
        yield stage
        files = sorted(stage.iterdir())
        taken = [f.name for f in files if (out / f.name).exists() or (out / f.name).is_symlink()]
        if taken and not (force or own):
            raise ValueError(
                f"{flag} {name} already holds {', '.join(taken)}; pass --force to replace "
                "it, or name another folder"
            )
        for f in files:
            write_output(flag, out / f.name, f.read_bytes())
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if made and not any(out.iterdir()):
            out.rmdir()
