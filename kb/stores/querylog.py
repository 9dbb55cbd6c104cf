"""The query log's rows and where they are kept: with the record, never in the disposable index.

Each store says where (``Store.query_log``): the FAISS store in SQLite beside its record (corpus/.kb/queries.sqlite,
this module), PostgreSQL in tables of its schema (kb/stores/postgres/querylog.py). What is logged, and when, is
kb/insights/log.py's; the reports are kb/insights/report.py's. No address and no key is ever a column.
"""

from __future__ import annotations

import abc
import contextlib
import json
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence


@dataclass
class LoggedSearch:
    id: int  # random, 53 bits (a JavaScript number): the page's clicks name it
    at: float  # UTC, seconds since the epoch
    query: str  # as asked
    key: str  # its group: kb/insights/log.py's group_key
    origin: str  # page or api
    mode: str
    confident: bool
    nearest: list = field(default_factory=list)  # the first few results: [doc_id, start, end, score]
    cited: list = field(default_factory=list)  # the documents of all its results, each once


@dataclass
class LoggedClick:
    query_id: int
    at: float
    rank: int
    doc_id: str


class QueryLog(abc.ABC):
    @abc.abstractmethod
    def append(self, searches: Sequence[LoggedSearch], clicks: Sequence[LoggedClick]) -> None:
        """Keep these rows, in one transaction."""

    @abc.abstractmethod
    def searches(self, since: float) -> list[LoggedSearch]:
        """The searches made at or after ``since``, oldest first."""

    @abc.abstractmethod
    def clicks(self, since: float) -> list[LoggedClick]:
        """The clicks made at or after ``since``."""

    @abc.abstractmethod
    def prune(self, before: float) -> int:
        """Delete the rows older than ``before``; how many went."""

    @abc.abstractmethod
    def counts(self) -> tuple[int, int]:
        """(searches, clicks) kept."""

    def close(self) -> None:
        pass


def encode(values: list) -> str:
    return json.dumps(values, separators=(",", ":"))


class SqliteQueryLog(QueryLog):
    """The log in a SQLite file of its own (WAL), opened by whoever writes or reads it."""

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS searches (id INTEGER PRIMARY KEY, at REAL NOT NULL, query TEXT NOT NULL, "
        "key TEXT NOT NULL, origin TEXT NOT NULL, mode TEXT NOT NULL, confident INTEGER NOT NULL, "
        "nearest TEXT NOT NULL, cited TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS searches_at ON searches (at)",
        "CREATE TABLE IF NOT EXISTS clicks (query_id INTEGER NOT NULL, at REAL NOT NULL, rank INTEGER NOT NULL, "
        "doc_id TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS clicks_at ON clicks (at)",
    )

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # a log: a power cut may lose its last second, never the record
            for statement in self.SCHEMA:
                conn.execute(statement)
            conn.commit()
            self._conn = conn
        return self._conn

    def append(self, searches: Sequence[LoggedSearch], clicks: Sequence[LoggedClick]) -> None:
        with self._lock, self._db() as conn:
            conn.executemany("INSERT OR IGNORE INTO searches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
                (s.id, s.at, s.query, s.key, s.origin, s.mode, int(s.confident), encode(s.nearest), encode(s.cited))
                for s in searches])
            conn.executemany("INSERT INTO clicks VALUES (?, ?, ?, ?)",
                             [(c.query_id, c.at, c.rank, c.doc_id) for c in clicks])

    def searches(self, since: float) -> list[LoggedSearch]:
        with self._lock:
            rows = self._db().execute("SELECT id, at, query, key, origin, mode, confident, nearest, cited FROM searches "
                                      "WHERE at >= ? ORDER BY at", (since,)).fetchall()
        return [LoggedSearch(i, at, q, key, origin, mode, bool(c), json.loads(n), json.loads(d))
                for i, at, q, key, origin, mode, c, n, d in rows]

    def clicks(self, since: float) -> list[LoggedClick]:
        with self._lock:
            rows = self._db().execute("SELECT query_id, at, rank, doc_id FROM clicks WHERE at >= ?", (since,)).fetchall()
        return [LoggedClick(*row) for row in rows]

    def prune(self, before: float) -> int:
        with self._lock, self._db() as conn:
            gone = conn.execute("DELETE FROM searches WHERE at < ?", (before,)).rowcount
            return gone + conn.execute("DELETE FROM clicks WHERE at < ?", (before,)).rowcount

    def counts(self) -> tuple[int, int]:
        with self._lock:
            db = self._db()
            return (db.execute("SELECT count(*) FROM searches").fetchone()[0],
                    db.execute("SELECT count(*) FROM clicks").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None
