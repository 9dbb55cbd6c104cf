"""The corpus folder: the files kb reads, and `.kb/`, the sub-folder where kb keeps files of its own.

    corpus/                          the user's documents (.txt .md .html .htm .pdf .jsonl), in any sub-folders
    corpus/.kb/.gitignore            "*": nothing kb writes ever shows in `git status`
    corpus/.kb/documents/ID.jsonl    a document sent as JSON (the API, `kb import`): one line {id, title, text, metadata}
    corpus/.kb/uploads/NAME          a file uploaded (the API, `kb add`): its original bytes

On the FAISS store this folder is the system of record (kb/stores/record.py): everything in the index
can be derived from it again, and a copy of it is a backup. Names that start with a dot are
skipped, except `.kb/documents/` and `.kb/uploads/`; so are the temporary files a durable write
makes and the links that let a write be rolled back.

Writes here are durable before anything says they happened: a file is written beside its target,
flushed, renamed over it, and the folder flushed. Each write or removal returns a ``Change`` that
can be rolled back until it is kept (the index transaction that follows may still fail).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import re
import threading
from pathlib import Path, PurePosixPath
from typing import IO, Callable, Iterator

from kb.documents.readers import READERS

KB_FOLDER = ".kb"
DOCUMENTS = "documents"  # .kb/documents/ID.jsonl
UPLOADS = "uploads"  # .kb/uploads/NAME
SUPPORTED_SUFFIXES = tuple(READERS)
GITIGNORE = ("# kb's own files: documents sent through its API, uploads, and what kb keeps beside them.\n"
             "# They belong to this corpus folder: back it up whole. Never committed.\n*\n")
_LEFTOVER = re.compile(r"^\..+\.(?:tmp|undo)-(\d+)-\d+$")  # .NAME.tmp-PID-N, .NAME.undo-PID-N
_counter = itertools.count()
_counter_lock = threading.Lock()


def own_folder(corpus: Path) -> Path:
    return Path(corpus) / KB_FOLDER


def ensure_own_folder(corpus: Path) -> Path:
    """``corpus/.kb/`` with its .gitignore (made on first use); OSError when the folder cannot be written."""
    folder = own_folder(corpus)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        folder.mkdir(parents=True, exist_ok=True)
        write_durably(ignore, GITIGNORE.encode())
    return folder


def document_path(doc_id: str) -> str:
    """Where a document sent as JSON lives, relative to the corpus folder."""
    return f"{KB_FOLDER}/{DOCUMENTS}/{doc_id}.jsonl"


def upload_path(name: str) -> str:
    """Where an uploaded file lives, relative to the corpus folder (``name`` is a plain file name)."""
    return f"{KB_FOLDER}/{UPLOADS}/{name}"


def is_own(relative: str) -> bool:
    """Whether a corpus path is one of kb's own files (under .kb/: what kb was given, written and removed by kb)."""
    return relative.startswith(f"{KB_FOLDER}/")


def logical_path(relative: str) -> str:
    """What ids and sources are made from: a path under .kb/ without that prefix (.kb/uploads/a.pdf: uploads/a.pdf)."""
    return relative[len(KB_FOLDER) + 1:] if is_own(relative) else relative


def default_source(relative: str, doc_id: str) -> str:
    """A document's source when it names none: api/ID for a document sent as JSON, else its file's path."""
    if relative.startswith(f"{KB_FOLDER}/{DOCUMENTS}/"):
        return f"api/{doc_id}"
    return logical_path(relative)


def corpus_files(corpus: Path) -> Iterator[tuple[str, Path, tuple[int, int]]]:
    """(relative path, path, (size, mtime_ns)) of every file kb reads under ``corpus``, by path."""
    corpus = Path(corpus)
    if not corpus.is_dir():
        raise FileNotFoundError(f"corpus folder {corpus} does not exist (set KB_CORPUS_DIR)")
    for path in sorted(corpus.rglob("*")):
        relative = path.relative_to(corpus).as_posix()
        if path.suffix.lower() not in SUPPORTED_SUFFIXES or not is_read(relative):
            continue
        try:
            if not path.is_file():
                continue
            stat = path.stat()
        except OSError:
            continue  # gone since it was listed
        yield relative, path, (stat.st_size, stat.st_mtime_ns)


def is_read(relative: str) -> bool:
    """Whether kb reads the file at this relative path (its type aside): no part hidden, but for kb's own files."""
    parts = PurePosixPath(relative).parts
    if len(parts) >= 3 and parts[0] == KB_FOLDER and parts[1] in (DOCUMENTS, UPLOADS):
        parts = parts[2:]
    return not any(part.startswith(".") for part in parts)


# ---- durable writes that can be rolled back ------------------------------------------------------

@contextlib.contextmanager
def exclusive(handle: IO) -> Iterator[None]:
    """An exclusive lock on an open file, across processes, until the block ends (closing the file ends it too)."""
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)



class Change:
    """A file written or removed, durably; ``rollback`` puts the old state back, ``keep`` makes it final."""

    def __init__(self, rollback: Callable[[], None] = lambda: None, keep: Callable[[], None] = lambda: None) -> None:
        self._rollback, self._keep = rollback, keep

    def rollback(self) -> None:
        self._rollback()

    def keep(self) -> None:
        self._keep()


class Changes:
    """Several changes, rolled back (newest first) or kept together."""

    def __init__(self) -> None:
        self.items: list[Change] = []

    def add(self, change: Change) -> None:
        self.items.append(change)

    def rollback(self) -> None:
        for change in reversed(self.items):
            try:
                change.rollback()
            except OSError:  # noqa: PERF203 - best effort: the start-up sync reconciles what is left
                pass
        self.items = []

    def keep(self) -> None:
        for change in self.items:
            try:
                change.keep()
            except OSError:
                pass
        self.items = []


def _beside(path: Path, kind: str) -> Path:
    """A hidden name beside ``path`` for a temporary file or a roll-back link (its name cut to stay within 255 bytes)."""
    with _counter_lock:
        number = next(_counter)
    stem = path.name.encode("utf-8", "surrogatepass")[:100].decode("utf-8", "ignore")
    return path.parent / f".{stem}.{kind}-{os.getpid()}-{number}"


def write_durably(path: Path, data: bytes, mtime_ns: int | None = None) -> None:
    """Write to a temporary file beside ``path``, flush it to disk, rename it over ``path``, flush the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _beside(path, "tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mtime_ns is not None:
            os.utime(tmp, ns=(mtime_ns, mtime_ns))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_file(path: Path, data: bytes, mtime_ns: int | None = None) -> Change:
    """``data`` at ``path`` (nothing is written when it already holds exactly that); the old file comes back on rollback."""
    try:
        same = path.read_bytes() == data and (mtime_ns is None or path.stat().st_mtime_ns == mtime_ns)
    except OSError:
        same = False
    if same:
        return Change()
    backup = None
    if path.exists():
        backup = _beside(path, "undo")
        os.link(path, backup)  # the old version, kept without copying a byte until the write is kept
    try:
        write_durably(path, data, mtime_ns)
    except BaseException:
        if backup is not None:
            backup.unlink(missing_ok=True)
        raise

    def rollback() -> None:
        if backup is not None:
            os.replace(backup, path)
        else:
            path.unlink(missing_ok=True)
        fsync_dir(path.parent)

    return Change(rollback, lambda: backup.unlink(missing_ok=True) if backup is not None else None)


def remove_file(path: Path) -> Change:
    """``path`` removed durably (set aside under a hidden name until the removal is kept)."""
    if not path.exists():
        return Change()
    aside = _beside(path, "undo")
    os.replace(path, aside)
    fsync_dir(path.parent)

    def rollback() -> None:
        os.replace(aside, path)
        fsync_dir(path.parent)

    return Change(rollback, lambda: aside.unlink(missing_ok=True))


def tidy(corpus: Path) -> None:
    """Remove what killed writers left behind: temporary files and roll-back links of processes that are gone."""
    corpus = Path(corpus)
    if not corpus.is_dir():
        return
    for path in corpus.rglob(".*"):
        match = _LEFTOVER.match(path.name)
        if match and not _alive(int(match.group(1))):
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
