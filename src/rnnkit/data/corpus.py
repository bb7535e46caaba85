"""Text corpora that work offline: the standard library's own sources, or a user's files.

The default corpus is the Python standard library's ``.py`` files of the running
interpreter (tests and installed packages left out): about 12 MB of real text on every
Python install. The file list is walked in sorted order, and each file goes to the
train, validation or test split by a checksum of its relative path, so the split is
deterministic, is "by file" (no test file was half seen in training), and a file keeps
its split when others are added.

The ``docs`` corpus is English prose from the same install: every docstring of the
standard library's modules, classes and functions (one document per module, in source
order) and the reference topics ``help()`` shows (``pydoc_data.topics``, one document per
topic), about 2.2 million characters, split by document the same way.

``--text FILE|DIR`` reads one UTF-8 file, or every UTF-8 text file under a folder
(split by file as above when there are enough files, else by position: the first 90% of
the characters train, the next 5% validate, the last 5% test). A folder is read as
:func:`text_files` lists it; each file's leading byte-order mark is dropped and its line
ends ("\\r\\n" or a lone "\\r") are read as "\\n" (:func:`read_corpus_file`).
"""

from __future__ import annotations

import ast
import hashlib
import os
import sys
import sysconfig
import zlib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

SPLITS = ("train", "validation", "test")
# Percent buckets of crc32(path) % 100: [0, 90) train, [90, 95) validation, [95, 100) test.
_TRAIN_BELOW, _VALIDATION_BELOW = 90, 95
# With fewer files than this, a by-file split can leave a split empty or tiny.
_MIN_FILES_FOR_FILE_SPLIT = 20
_SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}


@dataclass(frozen=True)
class Corpus:
    """The three splits of a text corpus and where they came from."""

    train: str
    validation: str
    test: str
    source: dict[str, Any]  # how to read it again: {"kind": "stdlib" | "docs" | "text", ...}
    num_files: int
    # Files of a --text folder left out, by why: {"binary": 2, "not UTF-8": 1, ...}.
    skipped: dict[str, int] = field(default_factory=dict)

    def split(self, name: str) -> str:
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}; got {name!r}")
        return {"train": self.train, "validation": self.validation, "test": self.test}[name]

    def digest(self) -> str:
        """The SHA-256 of the three splits: a resumed run checks it reads the same text."""
        h = hashlib.sha256()
        for name in SPLITS:
            data = self.split(name).encode("utf-8", "surrogatepass")
            h.update(len(data).to_bytes(8, "little") + data)  # lengths: no split runs on
        return h.hexdigest()

    def describe(self) -> str:
        sizes = ", ".join(f"{name} {len(self.split(name)):,}" for name in SPLITS)
        where = self.source.get("path") or NAMED[self.source.get("kind", "stdlib")]
        skipped = f", {note}" if (note := skipped_note(self.skipped)) else ""
        return f"{where}: {self.num_files} file(s){skipped}; characters: {sizes}"


# The corpora that every Python install holds, by the name --corpus takes.
NAMED = {
    "stdlib": "the Python standard library",
    "docs": "the Python standard library's docstrings and help topics",
}


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files() -> list[Path]:
    """The standard library's ``.py`` files in a deterministic (sorted) order."""
    root = stdlib_root()
    files = _walk(root, suffix=".py")
    if not files:
        raise OSError(f"no .py files under the standard library folder {root}")
    return files


def load_corpus(source: dict[str, Any] | None = None) -> Corpus:
    """Read the corpus described by ``source`` (None: the default standard-library corpus)."""
    if source is not None and not isinstance(source, dict):
        # dict("stdlib") said "dictionary update sequence element #0 has length 1".
        raise TypeError(
            f"load_corpus: source must be a dict such as {{'kind': 'stdlib'}} or None; got "
            f"{type(source).__name__}"
        )
    source = dict(source or {"kind": "stdlib"})
    kind = source.get("kind")
    # Other keys (the vocabulary's min_count, the Python version read) describe the run.
    if kind == "stdlib":
        root = stdlib_root()
        named = [(f, _read_lenient(f)) for f in stdlib_files()]
        named = [(f, t) for f, t in named if t]
        source = {"kind": "stdlib", "python": sys.version.split()[0]}
        return _split(root, named, source)
    if kind == "docs":
        source = {"kind": "docs", "python": sys.version.split()[0]}
        return _split(stdlib_root(), docs_texts(), source)
    if kind == "text":
        return read_text(source.get("path", ""))
    raise ValueError(f"corpus source kind must be 'stdlib', 'docs' or 'text'; got {kind!r}")


def docs_texts() -> list[tuple[Path, str]]:
    """``(path, prose)`` of the ``docs`` corpus: each standard-library module's
    docstrings, then each ``help()`` topic as if it were a file ``pydoc_data/topics/NAME``."""
    named = []
    for path in stdlib_files():
        text = _docstrings(_read_lenient(path))
        if text:
            named.append((path, text))
    topics = _help_topics()
    topic_dir = stdlib_root() / "pydoc_data" / "topics"
    named += [(topic_dir / name, topics[name]) for name in sorted(topics) if topics[name].strip()]
    if not named:
        raise OSError(f"no docstrings or help topics under {stdlib_root()}")
    return named


def _help_topics() -> dict[str, str]:
    """The reference topics ``help()`` shows, by name; none where the install has none."""
    try:
        from pydoc_data.topics import topics  # a Python install may leave it out
    except ImportError:
        return {}
    return topics


def _docstrings(source: str) -> str:
    """The docstrings of a module's source, module first, then in source order."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):  # files for other Python versions, lib2to3 data
        return ""
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    nodes = sorted(
        (n for n in ast.walk(tree) if isinstance(n, kinds)), key=lambda n: getattr(n, "lineno", 0)
    )
    docs = [ast.get_docstring(n, clean=True) for n in nodes]
    return "\n\n".join(d for d in docs if d and d.strip())


def read_text(path: str | os.PathLike[str]) -> Corpus:
    """The corpus of one UTF-8 file, or of every UTF-8 text file under a folder."""
    named, skipped = read_files_counted(path)
    p = Path(path)
    source = {"kind": "text", "path": str(p.resolve())}
    return replace(_split(p if p.is_dir() else p.parent, named, source), skipped=skipped)


def read_all(path: str | os.PathLike[str]) -> str:
    """All the text of a file or folder, unsplit (what ``rnnkit eval --text`` scores)."""
    return _join(text for _, text in read_files(path))


def read_files(path: str | os.PathLike[str]) -> list[tuple[Path, str]]:
    """``(path, text)`` of a UTF-8 file, or of the UTF-8 text files under a folder."""
    return read_files_counted(path)[0]


def read_files_counted(
    path: str | os.PathLike[str],
) -> tuple[list[tuple[Path, str]], dict[str, int]]:
    """:func:`read_files`, and how many files of a folder were skipped, by why."""
    if not os.fspath(path):
        raise ValueError("--text needs a file or folder path; got an empty string")
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"text file or folder not found: {p}")
    if p.is_dir():
        named, skipped = [], Counter[str]()
        for f in text_files(p):
            text, why = _read_or_why(f)
            if why:
                skipped[why] += 1
            else:
                named.append((f, _newlines(text)))
        why_skipped = {why: skipped[why] for why in _SKIPPED if skipped[why]}
        if not named:
            note = f"; {skipped_note(why_skipped)}" if why_skipped else ""
            raise ValueError(f"folder {p} holds no UTF-8 text files{note}")
        return named, why_skipped
    return [(p, read_corpus_file(p))], {}


# Why a folder's file is left out, in the order a summary names them.
_SKIPPED = ("empty", "only whitespace", "binary", "not UTF-8", "unreadable")


def skipped_note(skipped: Mapping[str, int]) -> str:
    """ "3 skipped (2 binary, 1 not UTF-8)", or "" when no file was skipped."""
    total = sum(skipped.values())
    if not total:
        return ""
    return f"{total} skipped ({', '.join(f'{n} {why}' for why, n in skipped.items())})"


def read_corpus_file(path: Path) -> str:
    """One file's text as the language model reads it: :func:`read_text_file`, with
    "\\r\\n" and lone "\\r" line ends read as "\\n"."""
    return _newlines(read_text_file(path))


def _newlines(text: str) -> str:
    # What Python's text files do: a file saved on Windows trains the model it would
    # have trained saved elsewhere, and no "\r" costs a class or is scored.
    return text.replace("\r\n", "\n").replace("\r", "\n")


# Byte-order marks of the Unicode encodings other than UTF-8 (UTF-32's first: UTF-32-LE's
# begins with UTF-16-LE's). Such a file (Windows Notepad's "Unicode") holds NUL bytes, yet
# it is text in another encoding, not a binary file.
_OTHER_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def _other_unicode(data: bytes) -> str:
    """ "UTF-16" or "UTF-32" for bytes that begin with that encoding's mark, else ""."""
    return next((name for bom, name in _OTHER_BOMS if data.startswith(bom)), "")


def read_text_file(path: Path) -> str:
    """One file's text; a one-line ValueError if it is empty, binary or not UTF-8."""
    data = path.read_bytes()
    if not data:
        raise ValueError(f"text file {path} is empty")
    if encoding := _other_unicode(data):
        raise ValueError(
            f"{path} is not UTF-8 text; got {encoding} (the file begins with its "
            "byte-order mark): save it as UTF-8"
        )
    if b"\x00" in data:
        raise ValueError(f"{path} is a binary file (it contains NUL bytes); expected UTF-8 text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path} is not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start})"
        ) from None
    if not text.strip():
        raise ValueError(f"text file {path} holds only whitespace")
    return text


def _read_lenient(path: Path) -> str:
    """A file's text, or '' for files a folder scan skips (binary, not UTF-8, empty)."""
    return _read_or_why(path)[0]


def _read_or_why(path: Path) -> tuple[str, str]:
    """``(text, "")``, or ``("", why)`` for a file a folder scan skips: the checks of
    :func:`read_text_file`, with the reason named as in _SKIPPED."""
    try:
        data = path.read_bytes()
    except OSError:  # no permission, or removed while the folder is read
        return "", "unreadable"
    if not data:
        return "", "empty"
    if _other_unicode(data):
        return "", "not UTF-8"
    if b"\x00" in data:
        return "", "binary"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return "", "not UTF-8"
    return (text, "") if text.strip() else ("", "only whitespace")


def text_files(root: Path) -> list[Path]:
    """The files a ``--text`` folder is read from, sorted by relative path.

    Hidden files and folders (names starting with ".") are left out, and so is anything
    that is not a regular file (a named pipe would block the read for ever), and so is an
    rnnkit run folder inside it: ``--text .`` with the default ``--out runs/...`` writes
    the run into the folder it reads, whose files would join the text of the next run and
    change the text a ``--resume`` of this one reads. Links to
    files and folders are followed, but a link back to a folder above it is not (a cycle),
    and each file is read once: under its own path when the folder holds it outside any
    link, else under the first of its paths in sorted order.
    """
    # Imported here: rnnkit.train imports the models, which import this package.
    from rnnkit.train.runfolder import is_run_folder

    found: list[tuple[bool, str, Path]] = []  # (reached through a link, relative path, path)
    pending = [(root, False, frozenset({_identity(root)}))]
    while pending:  # a stack rather than recursion: no folder depth overflows it
        folder, linked, above = pending.pop()
        for entry in _entries(folder, is_root=folder == root):
            path, via_link = Path(entry.path), linked or entry.is_symlink()
            if entry.is_dir():  # follows a link
                here = _identity(path)
                if here is not None and here not in above and not is_run_folder(path):
                    pending.append((path, via_link, above | {here}))
            elif entry.is_file():
                found.append((via_link, path.relative_to(root).as_posix(), path))
    kept, seen = [], set()
    for _, rel, path in sorted(found, key=lambda f: f[:2]):  # own paths first
        here = _identity(path)
        if here is not None and here not in seen:
            seen.add(here)
            kept.append((rel, path))
    return [path for _, path in sorted(kept, key=lambda f: f[0])]


def _entries(folder: Path, is_root: bool) -> list[os.DirEntry[str]]:
    """The entries of ``folder`` not hidden; a subfolder that cannot be listed has none."""
    try:
        with os.scandir(folder) as it:
            return [e for e in it if not e.name.startswith(".")]
    except OSError:
        if is_root:  # the folder the user named: say why it cannot be read
            raise
        return []


def _identity(path: Path) -> tuple[int, int] | None:
    """The device and inode of what ``path`` names (links followed); None if gone."""
    try:
        st = path.stat()
    except OSError:  # a dangling link, or a file removed while the folder is read
        return None
    return st.st_dev, st.st_ino


def _walk(root: Path, suffix: str | None) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        # Pruning in place keeps os.walk out of tests, installed packages and caches.
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for name in filenames:
            if name.startswith(".") or (suffix is not None and not name.endswith(suffix)):
                continue
            found.append(Path(dirpath) / name)
    return sorted(found, key=lambda f: f.relative_to(root).as_posix())


def file_split(root: Path, path: Path) -> str:
    """The split of a file under ``root``: "train", "validation" or "test" by
    ``crc32(relative path) % 100`` (every task that splits files by file uses this rule)."""
    # crc32 rather than hash(): Python salts str hashes per process.
    # surrogateescape: a file name that is not UTF-8 hashes as the bytes it is on disk.
    rel = path.relative_to(root).as_posix().encode("utf-8", "surrogateescape")
    b = zlib.crc32(rel) % 100
    return "train" if b < _TRAIN_BELOW else "validation" if b < _VALIDATION_BELOW else "test"


def _split(root: Path, named: list[tuple[Path, str]], source: dict[str, Any]) -> Corpus:
    parts: dict[str, list[str]] = {name: [] for name in SPLITS}
    if len(named) >= _MIN_FILES_FOR_FILE_SPLIT:
        for path, text in named:
            parts[file_split(root, path)].append(text)
    if not all(parts.values()):
        whole = _join(text for _, text in named)
        n = len(whole)
        a, b = n * _TRAIN_BELOW // 100, n * _VALIDATION_BELOW // 100
        return Corpus(whole[:a], whole[a:b], whole[b:], source, len(named))
    train, validation, test = (_join(parts[name]) for name in SPLITS)
    return Corpus(train, validation, test, source, len(named))


def _join(texts: Any) -> str:
    # Every file ends in a newline, so one file's last line never runs into the next.
    return "".join(t if t.endswith("\n") else t + "\n" for t in texts)
