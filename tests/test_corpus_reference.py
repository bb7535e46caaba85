"""How ``--text FILE|DIR`` is read, against a reference written from
docs/language-model.md: random folders (nested and hidden folders, links to files and
folders with cycles, hard links, named pipes, empty, binary and non-UTF-8 files, BOMs,
CRLF and lone CR line ends, astral characters, names with spaces, newlines or bytes that
are not UTF-8) read by rnnkit and by the reference must give the same files in the same
order, the same text for each, the same split and the same unknown characters."""

from __future__ import annotations

import os
import random
import re
import signal
import stat
import zlib
from collections import Counter
from pathlib import Path

import pytest

from _refusals import raises_exactly, refused
from rnnkit.data import corpus
from rnnkit.data.vocab import UNK_ID, Vocabulary


@pytest.fixture(autouse=True)
def _no_hang():
    """A reader that waits on a named pipe or loops on a cycle fails instead of hanging."""

    def stop(*_: object) -> None:
        # pytest.fail, not an OSError: the reader skips a file whose read raises one.
        pytest.fail("reading the folder took over 20 s: a named pipe or a cycle")

    before = signal.signal(signal.SIGALRM, stop)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, before)


# ---- the reference, from the documentation ----------------------------------------------


def reference_files(root: Path) -> list[tuple[str, str]]:
    """(relative path, text) of every file the docs say a folder contributes, in order."""
    return reference_folder(root)[0]


def reference_folder(root: Path) -> tuple[list[tuple[str, str]], Counter[str]]:
    """:func:`reference_files`, and the files left out counted by the docs' reasons."""
    paths: list[str] = []

    def visit(rel: str, real_above: set[str]) -> None:
        folder = os.path.join(root, rel) if rel else str(root)
        for name in os.listdir(folder):
            if name.startswith("."):
                continue
            sub = f"{rel}/{name}" if rel else name
            full = os.path.join(root, sub)
            if os.path.isdir(full):
                real = os.path.realpath(full)
                if real not in real_above:  # a link back up is a cycle, not followed
                    visit(sub, real_above | {real})
            elif os.path.exists(full) and stat.S_ISREG(os.stat(full).st_mode):
                paths.append(sub)

    visit("", {os.path.realpath(root)})

    def through_link(rel: str) -> bool:
        parts = rel.split("/")
        return any(os.path.islink(os.path.join(root, *parts[: k + 1])) for k in range(len(parts)))

    chosen: dict[tuple[int, int], str] = {}
    for rel in sorted(paths, key=lambda r: (through_link(r), r)):  # own paths win
        st = os.stat(os.path.join(root, rel))
        chosen.setdefault((st.st_dev, st.st_ino), rel)
    out, skipped = [], Counter[str]()
    for rel in sorted(chosen.values()):
        data = Path(root, rel).read_bytes()
        text = reference_text(data)
        if text is not None:
            out.append((rel, text))
        else:
            skipped[reference_reason(data)] += 1
    return out, skipped


def reference_reason(data: bytes) -> str:
    """Why the docs say a folder leaves out a file whose reference_text is None."""
    if not data:
        return "empty"
    if b"\x00" in data:
        return "binary"
    try:
        data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8"
    return "only whitespace"


def reference_text(data: bytes) -> str | None:
    """A file's text, or None for a file a folder skips (empty, binary, not UTF-8, blank)."""
    if b"\x00" in data:
        return None
    if data[:3] == b"\xef\xbb\xbf":
        data = data[3:]  # one leading byte-order mark
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text.strip() == "":
        return None
    return re.sub("\r\n?", "\n", text)  # universal newlines


def reference_splits(named: list[tuple[str, str]]) -> tuple[str, str, str]:
    ended = [t if t.endswith("\n") else t + "\n" for _, t in named]
    if len(named) >= 20:
        parts: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
        for (rel, _), text in zip(named, ended, strict=True):
            bucket = zlib.crc32(os.fsencode(rel)) % 100
            parts["train" if bucket < 90 else "validation" if bucket < 95 else "test"].append(text)
        if all(parts.values()):
            return "".join(parts["train"]), "".join(parts["validation"]), "".join(parts["test"])
    whole = "".join(ended)
    a, b = len(whole) * 90 // 100, len(whole) * 95 // 100
    return whole[:a], whole[a:b], whole[b:]


# ---- random folders ---------------------------------------------------------------------

ALPHABET = "abcdefgh ij\tklm\n.,;:()é→中😀\U0001f600\u00a0"


def _text(rng: random.Random) -> bytes:
    kind = rng.choice(["plain", "plain", "bom", "crlf", "cr", "bad", "nul", "empty", "blank"])
    n = rng.choice([1, 5, 40, 300, 5000])
    body = "".join(rng.choice(ALPHABET) for _ in range(n))
    if rng.random() < 0.2:
        body += "x" * 20000  # a very long line
    data = body.encode("utf-8")
    if kind == "bom":
        data = b"\xef\xbb\xbf" + data
    elif kind == "crlf":
        data = data.replace(b"\n", b"\r\n")
    elif kind == "cr":
        data = data.replace(b"\n", b"\r") + b"\r\r\n"
    elif kind in ("bad", "nul"):
        at = rng.randrange(len(data) + 1)
        data = data[:at] + (b"\xff" if kind == "bad" else b"\x00") + data[at:]
    elif kind == "empty":
        data = b""
    elif kind == "blank":
        data = rng.choice([b" \n", b"\xef\xbb\xbf", b"\r\n\t"])
    return data


def _name(rng: random.Random) -> bytes:
    stem = rng.choice([b"a", b"b c", b"tests", b"x\ny", b"\xff\xfe", b"\xc3\xa9t\xc3\xa9", b"Z"])
    hidden = b"." if rng.random() < 0.1 else b""
    ext = rng.choice([b".txt", b".py", b".md", b"", b".bin"])
    return hidden + stem + b"%d" % rng.randrange(1000) + ext


def make_tree(root: Path, seed: int) -> None:
    """A random folder under ``root`` (bytes names, so that non-UTF-8 names are possible)."""
    rng = random.Random(seed)
    base = os.fsencode(root)
    folders, files = [base], []
    for _ in range(rng.randrange(0, 6)):
        parent = rng.choice(folders)
        name = rng.choice([b"sub", b"tests", b".hidden", b"d d", b"\xff"]) + b"%d" % len(folders)
        folders.append(os.path.join(parent, name))
        os.mkdir(folders[-1])
    for _ in range(rng.choice([3, 12, 30, 45])):
        path = os.path.join(rng.choice(folders), _name(rng))
        if os.path.lexists(path):
            continue
        with open(path, "wb") as f:
            f.write(_text(rng))
        files.append(path)
    for _ in range(rng.randrange(0, 5)):
        where = os.path.join(rng.choice(folders), b"link%d" % rng.randrange(1000))
        if os.path.lexists(where):
            continue
        kind = rng.random()
        if kind < 0.35 and files:
            os.symlink(rng.choice(files), where)  # a file read twice unless deduplicated
        elif kind < 0.7:
            os.symlink(rng.choice(folders), where)  # a folder, often above: a cycle
        elif kind < 0.8:
            os.symlink(os.path.join(base, b"nowhere"), where)  # dangling
        elif kind < 0.9 and files:
            os.link(rng.choice(files), where)  # the same file under another name
        else:
            os.mkfifo(where)  # reading a named pipe would block for ever


def check_against_reference(root: Path, min_count: int) -> None:
    want, skipped = reference_folder(root)
    # The summary names the reasons in the docs' order, with their counts.
    order = ["empty", "only whitespace", "binary", "not UTF-8"]
    note = ", ".join(f"{skipped[why]} {why}" for why in order if skipped[why])
    note = f"{skipped.total()} skipped ({note})" if note else ""
    if not want:
        message = f"folder {root} holds no UTF-8 text files" + (f"; {note}" if note else "")
        raises_exactly(ValueError, message, corpus.read_files, root)
        return
    got = corpus.read_files(root)
    assert [(f.relative_to(root).as_posix(), t) for f, t in got] == want
    c = corpus.read_text(root)
    assert corpus.skipped_note(c.skipped) == note
    assert (c.train, c.validation, c.test) == reference_splits(want)
    assert c.num_files == len(want)
    assert corpus.read_all(root) == "".join(t if t.endswith("\n") else t + "\n" for _, t in want)
    # The unknown class: characters seen fewer than min_count times in training.
    counts = Counter(c.train)
    if max(counts.values()) < min_count:
        return
    vocab = Vocabulary.from_text(c.train, min_count)
    assert vocab.chars == sorted(ch for ch, n in counts.items() if n >= min_count)
    everything = c.train + c.validation + c.test
    ids = vocab.encode(everything).tolist()
    unknown = {ch for ch, i in zip(everything, ids, strict=True) if i == UNK_ID}
    assert unknown == {ch for ch in everything if counts[ch] < min_count}


@pytest.mark.parametrize("seed", range(20))
def test_random_folders_read_as_documented(tmp_path: Path, seed: int):
    root = tmp_path / "text"
    root.mkdir()
    make_tree(root, seed)
    check_against_reference(root, min_count=random.Random(seed).choice([1, 1, 2, 50]))


# ---- each rule on its own ---------------------------------------------------------------


def _lines(n: int, tag: str) -> str:
    return "".join(f"{tag} line {k}\n" for k in range(n))


def test_line_ends_and_a_bom_are_read_as_plain_newlines(tmp_path: Path):
    f = tmp_path / "windows.txt"
    f.write_bytes(b"\xef\xbb\xbfone\r\ntwo\rthree\r\n\r\nfour\xef\xbb\xbf")
    # The leading mark is an encoding mark and goes; one inside the text is a character.
    assert corpus.read_all(f) == "one\ntwo\nthree\n\nfour\ufeff\n"
    assert corpus.read_files(tmp_path) == [(f, "one\ntwo\nthree\n\nfour\ufeff")]


def test_a_link_is_read_once_and_a_cycle_ends(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "s.txt").write_text("sub\n")
    (tmp_path / "b.txt").write_text("b\n")
    os.symlink(tmp_path / "b.txt", tmp_path / "a-link.txt")  # sorts before its target
    os.symlink(tmp_path / "sub", tmp_path / "aaa")
    os.symlink(tmp_path, tmp_path / "sub" / "up")  # a cycle
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "o.txt").write_text("outside\n")
    os.symlink(outside, tmp_path / "linked")
    got = [(f.relative_to(tmp_path).as_posix(), t) for f, t in corpus.read_files(tmp_path)]
    assert got == [("b.txt", "b\n"), ("linked/o.txt", "outside\n"), ("sub/s.txt", "sub\n")]


def test_a_named_pipe_in_a_folder_is_skipped_not_waited_on(tmp_path: Path):
    os.mkfifo(tmp_path / "pipe.txt")
    (tmp_path / "t.txt").write_text("text\n")
    assert corpus.read_files(tmp_path) == [(tmp_path / "t.txt", "text\n")]


def test_folders_named_test_or_tests_are_read_from_a_users_folder(tmp_path: Path):
    for sub in ("test", "tests", "__pycache__", "site-packages"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "f.txt").write_text(f"{sub}\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("hidden\n")
    (tmp_path / ".hidden.txt").write_text("hidden\n")
    got = [f.relative_to(tmp_path).as_posix() for f, _ in corpus.read_files(tmp_path)]
    assert got == ["__pycache__/f.txt", "site-packages/f.txt", "test/f.txt", "tests/f.txt"]


def test_file_names_that_are_not_utf8_split_by_their_bytes(tmp_path: Path):
    names = [b"\xff%d.txt" % k for k in range(25)]
    for k, name in enumerate(names):
        with open(os.path.join(os.fsencode(tmp_path), name), "wb") as f:
            f.write(_lines(3, f"file {k}").encode())
    c = corpus.read_text(tmp_path)  # a UnicodeEncodeError before
    named = reference_files(tmp_path)
    assert len(named) == 25 and (c.train, c.validation, c.test) == reference_splits(named)


def test_min_count_that_leaves_no_character_is_refused(tmp_path: Path, capsys):
    raises_exactly(
        ValueError,
        "Vocabulary.from_text: min_count 4 leaves no character; the most frequent one is "
        "seen 3 time(s)",
        Vocabulary.from_text,
        "aaabbc",
        4,
    )
    assert Vocabulary.from_text("aaabbc", 3).chars == ["a"]
    text = tmp_path / "t.txt"
    text.write_text("abcdefghij" * 100)
    line = refused(
        capsys,
        ["train", "lm", "--text", str(text), "--min-count", "1000", "--steps", "1",
         "--out", str(tmp_path / "run")],
        tmp_path,
    )  # fmt: skip
    assert line == (
        "rnnkit train: error: --min-count 1000 leaves no character of the training text; "
        "the most frequent one is seen 90 time(s)"
    )
