"""The durable half of the FAISS store: documents, passages and a change log in one SQLite file.

WAL mode with ``synchronous=FULL``: a write is on disk when its transaction commits, readers
never block the writer nor each other, and a crash at any moment leaves the last committed
state. Every write bumps a sequence number and logs which passages it added and removed, so
each process's in-memory indexes (kb/stores/faiss/memory.py) can catch up with writes made by any process.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from kb.errors import StoreCorrupt, StoreUnwritable
from kb.stores.base import PassageRecord, PreparedDocument, StoredDocument, headings_of, stored_headings
from kb.stores.filters import sqlite_visible
from kb.stores.sentence_vectors import pack, unpack

SCHEMA_VERSION = 2  # 2: documents.access
ADDED, REMOVED = 1, 0

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL, path TEXT NOT NULL, hash TEXT NOT NULL,
    text TEXT NOT NULL, metadata TEXT NOT NULL, length INTEGER NOT NULL, passages INTEGER NOT NULL,
    seq INTEGER NOT NULL, access TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS documents_path ON documents(path);
CREATE TABLE IF NOT EXISTS passages (
    pid INTEGER PRIMARY KEY AUTOINCREMENT, passage_id TEXT NOT NULL, doc_id TEXT NOT NULL,
    ordinal INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL, heading TEXT NOT NULL,
    text TEXT NOT NULL, terms TEXT NOT NULL, vector BLOB NOT NULL, spans BLOB NOT NULL,
    sentence_vectors BLOB NOT NULL, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS passages_doc ON passages(doc_id);
CREATE TABLE IF NOT EXISTS changes (seq INTEGER NOT NULL, pid INTEGER NOT NULL, op INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS changes_seq ON changes(seq);
CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL);
"""


class RecordDB:
    """One SQLite file; a connection per thread (sqlite3 connections are not shared across threads)."""

    def __init__(self, path: Path, sentence_format: str = "float16") -> None:
        self.path = Path(path)
        self.sentence_format = sentence_format  # how new sentence vectors are stored (kb/stores/sentence_vectors.py)
        self._local = threading.local()
        self._write_lock = threading.Lock()  # one writing thread per process; SQLite serializes processes

    def connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA busy_timeout=60000")
            except sqlite3.DatabaseError as exc:
                raise _problem(self.path, exc) from None
            self._local.conn = conn
        return conn

    def create(self, meta: dict[str, Any]) -> None:
        conn = self.connection()
        with self._transaction(conn):
            for statement in SCHEMA.strip().split(";"):
                if statement.strip():
                    conn.execute(statement)
            for key, value in {**meta, "schema_version": SCHEMA_VERSION, "seq": 0}.items():
                conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    def meta(self) -> dict[str, Any]:
        try:
            rows = self.connection().execute("SELECT key, value FROM meta").fetchall()
        except sqlite3.DatabaseError as exc:
            raise _problem(self.path, exc) from None
        return {key: json.loads(value) for key, value in rows}

    def _transaction(self, conn: sqlite3.Connection):
        return _Transaction(conn, self.path)

    # ---- writes ---------------------------------------------------------------------------

    def write(self, documents: Sequence[PreparedDocument], deletions: Sequence[str]) -> tuple[int, list[str]]:
        """Replace ``documents`` and delete ``deletions`` in one transaction; (seq, ids that were deleted)."""
        conn = self.connection()
        with self._write_lock, self._transaction(conn):
            seq = json.loads(conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[0]) + 1
            conn.execute("UPDATE meta SET value = ? WHERE key = 'seq'", (json.dumps(seq),))
            existed = []
            for doc_id in [*deletions, *(d.document.id for d in documents)]:
                removed = [pid for (pid,) in conn.execute("SELECT pid FROM passages WHERE doc_id = ?", (doc_id,))]
                conn.execute("DELETE FROM passages WHERE doc_id = ?", (doc_id,))
                if conn.execute("DELETE FROM documents WHERE id = ?", (doc_id,)).rowcount:
                    existed.append(doc_id)
                conn.executemany("INSERT INTO changes VALUES (?, ?, ?)", [(seq, pid, REMOVED) for pid in removed])
            for prepared in documents:
                d = prepared.document
                conn.execute(
                    "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (d.id, d.title, d.source, d.path, d.hash, d.text, json.dumps(d.metadata, ensure_ascii=False),
                     len(d.text), len(prepared.passages), seq, json.dumps(list(d.access))))
                for p in prepared.passages:
                    cursor = conn.execute(
                        "INSERT INTO passages (passage_id, doc_id, ordinal, start, \"end\", heading, text, terms, vector,"
                        " spans, sentence_vectors, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (p.passage_id, d.id, p.ordinal, p.start, p.end, stored_headings(p.headings), p.text, " ".join(p.terms),
                         np.asarray(p.vector, np.float32).tobytes(),
                         np.asarray(p.sentence_spans, np.int64).reshape(-1, 2).tobytes(),
                         pack(p.sentence_vectors, self.sentence_format), seq))
                    conn.execute("INSERT INTO changes VALUES (?, ?, ?)", (seq, cursor.lastrowid, ADDED))
        return seq, [i for i in existed if i in set(deletions)]

    def record_files(self, stats: dict[str, tuple[int, int] | None]) -> None:
        conn = self.connection()
        with self._write_lock, self._transaction(conn):
            for path, stat in stats.items():
                if stat is None:
                    conn.execute("DELETE FROM files WHERE path = ?", (path,))
                else:
                    conn.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?)", (path, *stat))

    # ---- reads ----------------------------------------------------------------------------

    def seq(self) -> int:
        return json.loads(self._read("SELECT value FROM meta WHERE key = 'seq'")[0][0])

    def changes_since(self, seq: int, limit: int) -> list[tuple[int, int, int]]:
        """(seq, pid, op) of the changes after ``seq``, oldest first, whole sequence numbers only."""
        rows = self._read("SELECT seq, pid, op FROM changes WHERE seq > ? ORDER BY seq, rowid LIMIT ?", (seq, limit))
        if len(rows) == limit:  # never split one write: drop the last, possibly partial, sequence number
            last = rows[-1][0]
            trimmed = [r for r in rows if r[0] != last]
            rows = trimmed or self._read("SELECT seq, pid, op FROM changes WHERE seq = ? ORDER BY rowid", (last,))
        return rows

    def passage_payloads(self, pids: Sequence[int]) -> dict[int, tuple[bytes, str, str]]:
        """pid -> (vector bytes, terms, its document's access as JSON) of the passages that still exist."""
        found: dict[int, tuple[bytes, str, str]] = {}
        for chunk in _chunks(list(pids), 500):
            marks = ",".join("?" * len(chunk))
            for pid, vector, terms, access in self._read(
                    f"SELECT p.pid, p.vector, p.terms, d.access FROM passages p JOIN documents d ON d.id = p.doc_id"
                    f" WHERE p.pid IN ({marks})", chunk):
                found[pid] = (vector, terms, access)
        return found

    def all_passages(self, batch: int = 5000) -> Iterator[list[tuple[int, bytes, str, str]]]:
        """Every (pid, vector bytes, terms, access JSON), in pid order, a batch at a time."""
        last = -1
        while True:
            rows = self._read("SELECT p.pid, p.vector, p.terms, d.access FROM passages p JOIN documents d"
                              " ON d.id = p.doc_id WHERE p.pid > ? ORDER BY p.pid LIMIT ?", (last, batch))
            if not rows:
                return
            yield rows
            last = rows[-1][0]

    def records(self, pids: Sequence[int]) -> list[PassageRecord]:
        if not pids:
            return []
        marks = ",".join("?" * len(pids))
        rows = self._read(
            "SELECT p.pid, p.passage_id, p.doc_id, p.ordinal, p.start, p.\"end\", p.text, p.heading, d.title, d.source,"
            f" d.metadata, d.length, d.passages, p.spans, p.sentence_vectors FROM passages p JOIN documents d"
            f" ON d.id = p.doc_id WHERE p.pid IN ({marks})", list(pids))
        by_pid = {row[0]: row for row in rows}
        records = []
        for pid in pids:
            row = by_pid.get(pid)
            if row is None:
                continue
            spans = np.frombuffer(row[13], dtype=np.int64).reshape(-1, 2)
            vectors = unpack(row[14], len(spans))
            records.append(PassageRecord(pid, row[1], row[2], row[3], row[4], row[5], row[6], headings_of(row[7]), row[8], row[9],
                                         json.loads(row[10]), row[11], row[12], spans, vectors))
        return records

    def document(self, doc_id: str, groups: Sequence[str] | None = None) -> StoredDocument | None:
        where, parameters = sqlite_visible(groups)
        rows = self._read(f"SELECT {BRIEF.format(text='d.text')} FROM documents d WHERE d.id = ? AND {where}",
                          (doc_id, *parameters))
        return _document(rows[0]) if rows else None

    def all_documents(self, batch: int = 500, groups: Sequence[str] | None = None) -> Iterator[StoredDocument]:
        """Every document ``groups`` may read, with its text, by id, from one read transaction on a connection of
        its own."""
        where, parameters = sqlite_visible(groups)
        try:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            conn.execute("BEGIN")  # a read transaction: one state of the file, whatever is written meanwhile
        except sqlite3.DatabaseError as exc:
            raise _problem(self.path, exc) from None
        try:
            last = ""
            while True:
                rows = conn.execute(f"SELECT {BRIEF.format(text='d.text')} FROM documents d"
                                    f" WHERE d.id > ? AND {where} ORDER BY d.id LIMIT ?",
                                    (last, *parameters, batch)).fetchall()
                if not rows:
                    return
                for row in rows:
                    yield _document(row)
                last = rows[-1][0]
        except sqlite3.DatabaseError as exc:
            raise _problem(self.path, exc) from None
        finally:
            conn.close()

    def passage_spans(self, doc_id: str, groups: Sequence[str] | None = None) -> list[tuple[int, int]]:
        where, parameters = sqlite_visible(groups)
        return [(start, end) for start, end in self._read(
            f'SELECT p.start, p."end" FROM passages p JOIN documents d ON d.id = p.doc_id WHERE p.doc_id = ? AND {where}'
            " ORDER BY p.ordinal", (doc_id, *parameters))]

    def documents(self, offset: int, limit: int, groups: Sequence[str] | None = None) -> tuple[int, list[StoredDocument]]:
        where, parameters = sqlite_visible(groups)
        total = self._read(f"SELECT count(*) FROM documents d WHERE {where}", parameters)[0][0]
        rows = self._read(f"SELECT {BRIEF.format(text=chr(39) * 2)} FROM documents d WHERE {where}"
                          " ORDER BY d.id LIMIT ? OFFSET ?", (*parameters, limit, offset))
        return total, [_document(row) for row in rows]

    def fingerprints(self, ids: Sequence[str] | None = None) -> dict[str, tuple[str, str]]:
        if ids is None:
            return {doc_id: (hash_, path) for doc_id, hash_, path in self._read("SELECT id, hash, path FROM documents")}
        found = {}
        for chunk in _chunks(list(ids), 500):
            marks = ",".join("?" * len(chunk))
            found.update({doc_id: (hash_, path) for doc_id, hash_, path in
                          self._read(f"SELECT id, hash, path FROM documents WHERE id IN ({marks})", chunk)})
        return found

    def file_stats(self) -> dict[str, tuple[int, int]]:
        return {path: (size, mtime) for path, size, mtime in self._read("SELECT path, size, mtime_ns FROM files")}

    def filtered_pids(self, where: str, parameters: Sequence[Any]) -> list[tuple[int, str, str, str]]:
        """(pid, doc id, source, metadata JSON) of the passages whose documents match a WHERE clause."""
        return self._read("SELECT p.pid, d.id, d.source, d.metadata FROM passages p JOIN documents d ON d.id = p.doc_id"
                          f" WHERE {where}", parameters)

    def document_count(self) -> int:
        return self._read("SELECT count(*) FROM documents")[0][0]

    def counts(self, groups: Sequence[str] | None = None) -> tuple[int, int]:
        if groups is not None:
            where, parameters = sqlite_visible(groups)
            return self._read(f"SELECT count(*), coalesce(sum(d.passages), 0) FROM documents d WHERE {where}", parameters)[0]
        documents = self._read("SELECT count(*) FROM documents")[0][0]
        passages = self._read("SELECT count(*) FROM passages")[0][0]
        return documents, passages

    def _read(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple]:
        try:
            return self.connection().execute(sql, parameters).fetchall()
        except sqlite3.DatabaseError as exc:
            raise _problem(self.path, exc) from None

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error; disk errors become StoreUnwritable."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn, self.path = conn, path

    def __enter__(self) -> None:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise _problem(self.path, exc, writing=True) from None

    def __exit__(self, kind, exc, tb) -> bool:
        if kind is None:
            try:
                self.conn.execute("COMMIT")
                return False
            except sqlite3.DatabaseError as error:
                exc = error
        try:
            self.conn.execute("ROLLBACK")
        except sqlite3.DatabaseError:
            pass
        if isinstance(exc, sqlite3.DatabaseError):
            raise _problem(self.path, exc, writing=True) from None
        return False


def _problem(path: Path, exc: sqlite3.DatabaseError, writing: bool = False) -> Exception:
    """A full or read-only disk (or any I/O error while writing) is unwritable; anything else while reading is damage."""
    message = str(exc)
    if any(word in message for word in ("full", "readonly", "read-only")) or (writing and "disk I/O" in message):
        return StoreUnwritable(f"cannot write to {path} ({message}): free some space or make it writable; "
                               "nothing was changed")
    return StoreCorrupt(f"{path} cannot be read ({message}): run `kb build --force` to rebuild the index")


BRIEF = "d.id, d.title, d.source, d.hash, {text}, d.passages, d.metadata, d.path, d.length, d.access"


def _document(row: tuple) -> StoredDocument:
    return StoredDocument(id=row[0], title=row[1], source=row[2], hash=row[3], text=row[4], passages=row[5],
                          metadata=json.loads(row[6]), path=row[7], length=row[8], access=tuple(json.loads(row[9])))


def _chunks(items: list, size: int) -> Iterator[list]:
    for begin in range(0, len(items), size):
        yield items[begin : begin + size]
