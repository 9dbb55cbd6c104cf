"""Keys that name callers: who is asking, the groups they read, whether they may write.

Two keys come from the environment and stay what they were: KB_API_KEY (reads everything, writes) and KB_READ_KEY
(reads everything). Any number more live in a key table kept with the record, never in the disposable index
(``Store.key_table``: corpus/.kb/keys.sqlite beside the FAISS store's record, the ``keys`` table on PostgreSQL),
made with `kb keys add NAME --groups a,b [--write]`, which prints the key once.

A key is 32 random bytes (``secrets.token_urlsafe``), so the table keeps only its SHA-256: a fast hash is enough
for a secret with 256 bits of entropy (a slow, salted hash is for passwords people choose), and it lets a
request find its key by one index lookup. Every request looks its key up again: a revoked key is refused at once,
by every process. kb/stores/filters.py says what the groups let a caller read.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from kb.errors import KeyProblem, StoreProblem

KEY_PREFIX = "kb_"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)


@dataclass(frozen=True)
class Caller:
    """Who is asking: a name for logs, the groups they read (None: every document), whether they may write."""

    name: str
    groups: tuple[str, ...] | None
    write: bool = False

    @property
    def everything(self) -> bool:
        """Whether the caller may read every document (KB_API_KEY, KB_READ_KEY)."""
        return self.groups is None


ADMIN = Caller("KB_API_KEY", None, write=True)
READER = Caller("KB_READ_KEY", None)
ANONYMOUS = Caller("anonymous", ())  # public documents only


@dataclass(frozen=True)
class KeyInfo:
    name: str
    groups: tuple[str, ...]
    write: bool
    created: float  # seconds since the epoch

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "groups": list(self.groups), "write": self.write,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created))}


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise KeyProblem(f"a key's name is 1 to 64 letters, digits or '_.@-', starting with a letter or digit; "
                         f"got {str(name)[:70]!r}")
    return name


class KeyTable(abc.ABC):
    """The keys of one knowledge base. Rows: name, SHA-256 of the key, groups (comma-joined), write, created."""

    def add(self, name: str, groups: Sequence[str], write: bool) -> str:
        """A new key for ``name`` (KeyProblem when the name is taken); the key itself, which is kept nowhere."""
        check_name(name)
        key = new_key()
        if not self._insert(KeyInfo(name, tuple(sorted(set(groups))), write, time.time()), key_hash(key)):
            raise KeyProblem(f"there is a key named {name!r} already: revoke it first, or choose another name")
        return key

    def restore(self, info: KeyInfo, hashed: str) -> bool:
        """Put back a key a backup kept (by its hash); whether it was added (not when the name is taken)."""
        return self._insert(info, hashed)

    @abc.abstractmethod
    def _insert(self, info: KeyInfo, hashed: str) -> bool:
        """Insert the row; False when the name is taken."""

    @abc.abstractmethod
    def keys(self) -> list[tuple[KeyInfo, str]]:
        """Every key, by name, with its hash."""

    @abc.abstractmethod
    def revoke(self, name: str) -> bool:
        """Remove the key named ``name``; whether there was one."""

    @abc.abstractmethod
    def _find(self, hashed: str) -> KeyInfo | None:
        ...

    def caller(self, key: str) -> Caller | None:
        """Who presents ``key`` (None: no such key, or it was revoked)."""
        info = self._find(key_hash(key))
        return None if info is None else Caller(info.name, info.groups, info.write)

    def close(self) -> None:
        pass


class SqliteKeyTable(KeyTable):
    """SQLite (WAL), one connection per thread, made on first use."""

    def __init__(self, path: Path, make_folder: Callable[[], Any] | None = None) -> None:
        self.path = Path(path)
        self._make_folder = make_folder or (lambda: self.path.parent.mkdir(parents=True, exist_ok=True))
        self._local = threading.local()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection; a file or folder that cannot be used is a StoreProblem that names it (a 503 over
        HTTP, one sentence from the CLI), never an unexplained failure."""
        try:
            conn = getattr(self._local, "conn", None)
            if conn is None:
                self._make_folder()
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("CREATE TABLE IF NOT EXISTS keys (name TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, "
                             "groups TEXT NOT NULL, write INTEGER NOT NULL, created REAL NOT NULL)")
                self._local.conn = conn
            yield conn
        except (sqlite3.DatabaseError, OSError) as exc:
            if isinstance(exc, sqlite3.IntegrityError):
                raise
            self.close()  # made again on the next use, once the file is back
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise StoreProblem(f"the key table {self.path} cannot be used ({detail}): put back the corpus folder or "
                               "`kb restore` a backup, or make the keys again with `kb keys add`") from None

    def _insert(self, info: KeyInfo, hashed: str) -> bool:
        try:
            with self._connection() as conn:
                conn.execute("INSERT INTO keys VALUES (?, ?, ?, ?, ?)",
                             (info.name, hashed, ",".join(info.groups), int(info.write), info.created))
        except sqlite3.IntegrityError:
            return False
        return True

    def keys(self) -> list[tuple[KeyInfo, str]]:
        with self._connection() as conn:
            rows = conn.execute("SELECT name, groups, write, created, hash FROM keys ORDER BY name").fetchall()
        return [(_info(name, groups, write, created), hashed) for name, groups, write, created, hashed in rows]

    def revoke(self, name: str) -> bool:
        with self._connection() as conn:
            return conn.execute("DELETE FROM keys WHERE name = ?", (name,)).rowcount > 0

    def _find(self, hashed: str) -> KeyInfo | None:
        with self._connection() as conn:
            row = conn.execute("SELECT name, groups, write, created FROM keys WHERE hash = ?", (hashed,)).fetchone()
        return _info(*row) if row else None

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _info(name: str, groups: str, write: Any, created: float) -> KeyInfo:
    return KeyInfo(name, tuple(group for group in groups.split(",") if group), bool(write), float(created))
