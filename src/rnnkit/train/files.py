"""Files that are never half-written: atomic writes, JSON, safetensors, optimiser state.

No pickle anywhere: tensors go to safetensors, everything else to JSON. Every file is
written to a temporary name in the same folder, flushed to disk, and renamed over its
destination (rename is atomic on POSIX): a reader sees the old file or the new one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import socket
import tempfile
import zlib
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

TEMP_SUFFIX = ".tmp"  # every temporary file ends so: a run folder removes a kill's by it
# atomic_write's temporary files: ".<name>.rnnkit_<pid>_<host>_<random>.tmp", hidden, and
# named by the process that writes them (<host>: a hash of the machine's name, for folders
# shared between machines), so that a later write can tell a killed writer's leftover from
# a file another process is still writing.
_OWNED_TEMP = re.compile(
    r"\.(?P<name>.+)\.rnnkit_(?P<pid>\d+)_(?P<host>[0-9a-f]{8})_[a-z0-9_]+\.tmp"
)


def _host() -> str:
    return f"{zlib.crc32(socket.gethostname().encode('utf-8')):08x}"


def temp_prefix(path: Path) -> str:
    """The start of the name of :func:`atomic_write`'s temporary file for ``path``."""
    return f".{path.name}.rnnkit_{os.getpid()}_{_host()}_"


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new, never half.

    A symlink at ``path`` is replaced, never followed. A temporary file of ``path`` that a
    killed write left behind (its process is gone) is removed once the new file is in place.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # the bytes are on disk before the name points to them
        os.chmod(tmp, 0o644)  # mkstemp makes files private; run folders are shared results
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    remove_stale_temps(path)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes, as run folders record a user's data file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def refuse_same_file(
    test_flag: str,
    test: str | os.PathLike[str],
    data_flag: str,
    data: str | os.PathLike[str],
    otherwise: str = "a seeded split",
) -> None:
    """Refuse a test file that is the training file, by path or by content: its scores
    would be of the examples trained on, reported as held-out ones. ``otherwise`` is
    the test a run without ``test_flag`` makes."""
    if os.path.samefile(test, data) or file_sha256(test) == file_sha256(data):
        raise ValueError(
            f"{test_flag} {test} holds the same bytes as {data_flag} {data}; a test split "
            f"must be other examples (leave out {test_flag} for {otherwise})"
        )


def writable_file(where: str, name: str, path: object, overwrite: object) -> Path:
    """The file ``path`` (argument ``name`` of ``where``) may be written to, or a one-line
    refusal before anything is: an existing file is replaced only with ``overwrite=True``,
    a directory never, and the folder must exist."""
    # "no" would read as True and replace the user's file.
    if not isinstance(overwrite, bool):
        raise TypeError(f"{where}: overwrite must be True or False; got {overwrite!r}")
    if not isinstance(path, (str, os.PathLike)):
        # Path(5) said "expected str, bytes or os.PathLike object", naming no argument.
        raise TypeError(f"{where}: {name} must be a file path; got {type(path).__name__}")
    target = Path(path)
    if target.is_dir():
        # Replacing it would lose its files; the atomic rename fails on it in the OS's words.
        raise ValueError(
            f"{where}: {name} must be the path of a file; {target} is a directory (a directory "
            "is never replaced)"
        )
    if (target.exists() or target.is_symlink()) and not overwrite:
        raise ValueError(f"{where}: {target} exists; pass overwrite=True to replace it")
    if not target.parent.is_dir():
        raise ValueError(f"{where}: the folder of {target} does not exist")
    return target


def temp_folder(path: Path) -> Path:
    """A new, private folder beside ``path`` in which to assemble it before renaming it
    into place, named as :func:`atomic_write`'s temporaries are (a folder ending in
    ``.tmp``), so that :func:`remove_stale_temps` with ``folders=True`` finds it when its
    process is killed."""
    return Path(tempfile.mkdtemp(dir=path.parent, prefix=temp_prefix(path), suffix=TEMP_SUFFIX))


def remove_stale_temps(path: Path, *, folders: bool = False) -> list[Path]:
    """Remove the temporary files of ``path`` that :func:`atomic_write` left when its
    process was killed (with ``folders``: the folders of :func:`temp_folder` instead):
    those named by a process of this machine that no longer runs. Another process's write
    in progress, another machine's, any other path's and anything rnnkit did not name are
    left alone, and so is a symbolic link. Best effort: what cannot be removed stays.
    Returns what was removed."""
    removed = []
    for entry in _stale(path):
        try:
            if folders and entry.is_dir(follow_symlinks=False):
                # Whole or not at all is not possible for a folder; what is left of it is
                # tried again by the next save.
                shutil.rmtree(entry.path, ignore_errors=True)
                if not os.path.lexists(entry.path):
                    removed.append(Path(entry.path))
            elif not folders and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            pass
    return removed


def _stale(path: Path) -> list[os.DirEntry[str]]:
    """The entries beside ``path`` named as its temporaries by a process of this machine
    that no longer runs."""
    host = _host()
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return []
    stale = []
    for entry in entries:
        found = _OWNED_TEMP.fullmatch(entry.name)
        if (
            found is not None
            and found["name"] == path.name
            and found["host"] == host
            and not _running(int(found["pid"]))
        ):
            stale.append(entry)
    return stale


def _running(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (ours counts: another thread of this
    process may be writing the same file)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: nothing is sent, only whether the process exists
    except ProcessLookupError:
        return False
    except (OverflowError, OSError):
        return True  # another user's process, or not knowable: kept
    return True


def marked(path: Path, mark: str) -> bool:
    """Whether ``path`` is a plain file whose first 4 KiB hold ``mark``: how rnnkit knows
    a file it wrote (a model card's comment, a figure's metadata) from a user's of the
    same name. A symbolic link never is."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with path.open("rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return mark.encode("utf-8") in head


def figure_bytes(
    fig: Any,
    fmt: str = "png",
    *,
    dpi: float | None = None,
    colours: int | None = None,
    software: str | None = None,
) -> bytes:
    """``fig`` (a matplotlib Figure on its own canvas) rendered as ``fmt`` bytes, at
    ``dpi`` (default: the figure's own).

    For a PNG, ``colours`` reduces it to a palette of that many colours (figures of flat
    colours and lines lose nothing visible and shrink several times), and ``software``
    is written as its "Software" text chunk, which :func:`marked` finds: the mark by which
    rnnkit later knows the file as its own. matplotlib and Pillow are imported here, when a
    figure is written, never when rnnkit is imported.
    """
    if fmt != "png" and (colours is not None or software is not None):
        raise ValueError(f"colours and software apply to a PNG figure; got format {fmt!r}")
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, **({} if dpi is None else {"dpi": dpi}))
    if fmt != "png" or (colours is None and software is None):
        return buffer.getvalue()
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    buffer.seek(0)
    with Image.open(buffer) as image:
        small = image.convert("RGB")
        if colours is not None:
            # Octree without dithering keeps colour maps smooth (median cut shifts their
            # ends) and flat areas flat.
            small = small.quantize(
                colors=colours, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
            )
    extra: dict[str, Any] = {}
    if software is not None:
        info = PngInfo()
        info.add_text("Software", software)
        extra["pnginfo"] = info
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True, **extra)
    return out.getvalue()


def write_figure(
    fig: Any,
    path: Path,
    fmt: str = "png",
    *,
    dpi: float | None = None,
    colours: int | None = None,
    software: str | None = None,
) -> Path:
    """:func:`figure_bytes` of ``fig`` written with :func:`atomic_write` to ``path``: a
    kill leaves the old file or the new one, and a symbolic link at ``path`` is replaced,
    never followed. Nothing is written when drawing the figure fails. Returns ``path``."""
    atomic_write(path, figure_bytes(fig, fmt, dpi=dpi, colours=colours, software=software))
    return path


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def read_json(path: Path) -> Any:
    """The JSON in ``path``; a one-line ValueError names the file when it is not JSON."""
    if path.is_symlink():
        raise ValueError(f"{path} is a symbolic link; rnnkit does not follow links in a run")
    try:
        # utf-8-sig: a byte-order mark, as some editors write, is not part of the JSON.
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path.parent} has no {path.name}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from None


def save_tensors(
    path: Path, tensors: dict[str, Tensor], meta: dict[str, str] | None = None
) -> None:
    # safetensors wants contiguous CPU tensors that share no memory.
    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    atomic_write(path, st_save(flat, metadata=meta))


def load_tensors(path: Path) -> dict[str, Tensor]:
    """The tensors in ``path``; a one-line error when it is missing, truncated or corrupt."""
    if path.is_symlink():
        raise ValueError(f"{path} is a symbolic link; rnnkit does not follow links in a run")
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent} has no {path.name}")
    try:
        return st_load(path.read_bytes())
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise ValueError(f"{path} is truncated or corrupt ({' '.join(str(err).split())})") from None


def tensors_meta(path: Path) -> dict[str, str]:
    """The string metadata of a safetensors file (its header only)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError):
        return {}


def optimizer_to_tensors(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """An optimiser's state_dict split into tensors (safetensors) and the rest (JSON)."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, entry in sd["state"].items():
        for key, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


_MISSING = object()


def _kind(value: object) -> str:
    """How a message names a JSON value of the wrong kind: its type, or that it is absent."""
    if value is _MISSING:
        return "missing"
    if isinstance(value, list) and not all(isinstance(v, dict) for v in value):
        return "a list holding a non-object"
    return type(value).__name__


def optimizer_from_tensors(
    optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor], info: dict[str, Any]
) -> None:
    """Load what :func:`optimizer_to_tensors` wrote; ValueError when it does not fit."""
    # ``info`` comes from a run's train_state.json, a file a user can edit: its shape is
    # checked here, so that a wrong one is named rather than failing in Python's words
    # (a missing key said only 'scalars', a number 'int' object is not iterable).
    shape = {"param_groups": list, "scalars": dict}
    got = {k: info.get(k, _MISSING) if isinstance(info, dict) else _MISSING for k in shape}
    wrong = [k for k, kind in shape.items() if not isinstance(got[k], kind)]
    if wrong or not all(isinstance(g, dict) for g in got["param_groups"]):
        given = ", ".join(f"{k} {_kind(got[k])}" for k in shape)
        raise ValueError(
            "the optimiser state does not fit the model: expected a list 'param_groups' of "
            f"objects and an object 'scalars'; got {given}"
        )
    state: dict[int, dict[str, Any]] = {}
    try:
        for name, value in tensors.items():
            if name.startswith("optim."):
                _, idx, key = name.split(".", 2)
                state.setdefault(int(idx), {})[key] = value
        for name, value in info["scalars"].items():
            idx, key = name.split(".", 1)
            state.setdefault(int(idx), {})[key] = value
        groups = info["param_groups"]
        for group in groups:
            if "betas" in group:
                group["betas"] = tuple(group["betas"])  # JSON has no tuples
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        # A KeyError's text is the bare key: say that it is a missing entry.
        why = f"it has no entry {err.args[0]!r}" if isinstance(err, KeyError) else str(err)
        raise ValueError(f"the optimiser state: {why}") from None
    flat = [p for g in optimizer.param_groups for p in g["params"]]
    for number, entry in state.items():
        for key, value in entry.items():
            if isinstance(value, Tensor) and value.dim() > 0 and value.shape != flat[number].shape:
                raise ValueError(
                    f"the optimiser's {key} of parameter {number} has shape "
                    f"{tuple(value.shape)}; the model's is {tuple(flat[number].shape)}"
                )
