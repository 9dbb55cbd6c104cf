"""The PostgreSQL store (KB_STORE=postgres): documents, passages, pgvector vectors and BM25 in one database.

The ``documents`` table is the system of record: no re-index ever empties it. Passages, vectors,
sentences and keyword statistics are one generation of derived tables (``g<N>_*``), and a re-index
builds the next generation beside the live one and switches in one transaction (``rederive``).

Writes go to the primary (KB_PG_DSN), each call one transaction under an advisory lock, so two kb
servers writing at once serialize in the database and lose nothing. Reads go to KB_PG_READ_DSN
(a hot standby) when it is set. A snapshot is one REPEATABLE READ, READ ONLY transaction: the
candidates and the records of one answer come from the same state, and a search never takes a
write lock.

Dense search is pgvector's HNSW index (inner product on unit vectors) with iterative index scans
(pgvector 0.8), so a filtered search still returns k passages whenever k match; filters that
leave at most ``EXACT_FILTER_LIMIT`` passages are searched exactly instead. Keyword search reads
postings segments (kb/stores/postgres/postings.py: kb's own stemmed terms, so both stores index the
same terms) and ranks them with kb/stores/bm25.py, from the document frequencies and lengths that
every write keeps exact in ``terms`` and ``stats``, so both stores score alike. An unfiltered search
asks for its candidates in one statement (dense keys, document frequencies, the postings rows the
cache lacks) and for their vectors in a second.
"""

from __future__ import annotations

import calendar
import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from kb.documents.chunking import context_of
from kb.documents.document import Document
from kb.errors import BackupProblem, StoreMismatch, StoreMissing, StoreProblem, StoreUnavailable, StoreUnwritable
from kb.settings import Settings, check_schema_name
from kb.stores.base import (
    EXACT_FILTER_LIMIT,
    Candidates,
    PassageRecord,
    PreparedDocument,
    Snapshot,
    Store,
    StoredDocument,
    check_dimension,
    headings_of,
    rebuild_reason,
    stored_headings,
)
from kb.stores.bm25 import Term, idf, rank, scores_of
from kb.stores.filters import Filters, document_date, postgres_visible, postgres_where
from kb.stores.keys import KeyTable
from kb.stores.postgres.connection import first_line, where_is
from kb.stores.postgres.postings import PostingsCache, decode, fill_segment, merge_once
from kb.stores.postgres.schema import (
    GENERATION_TABLES,
    LATEST,
    generation_tables,
    generation_vector_index,
    migrate,
    version,
)
from kb.stores.querylog import QueryLog
from kb.stores.record import Record, iso_time, time_ns
from kb.stores.sentence_vectors import pack, unpack

log = logging.getLogger(__name__)

WRITE_LOCK = 0x6B62_0002  # advisory lock key for writes ("kb" 2)
BUILD_LOCK = 0x6B62  # with the schema's hash: one build at a time per schema
WATCH_LOCK = 0x6B62_0004  # with the schema's hash: one process watches the corpus folder per schema
REDERIVE_BATCH = 256  # documents read from the record per batch of a re-index
EXPORT_FILE = "documents.jsonl"  # what `kb backup` writes on PostgreSQL
CATCH_UP_ROUNDS = 5  # passes over what was written during a re-index before the switch takes the write lock
POOL_WAIT = 5.0  # seconds to wait for a connection before a request is answered 503
REMEMBERED = 128  # answers of who may read what a store keeps (``remember``): a few callers' groups and filters
_UNKNOWN = object()  # not remembered (an answer may itself be None)
ALIVE_BYPASS = 0.5  # seconds: a connection returned this recently is lent without a check (``_check``)
MAX_POSITIONS = 16383  # the largest position a tsvector keeps


def tsvector_literal(terms: Sequence[str]) -> str:
    """kb's terms as a tsvector, one position per occurrence (tf is the number of positions)."""
    positions: dict[str, list[int]] = {}
    for number, term in enumerate(terms, 1):
        positions.setdefault(term, []).append(min(number, MAX_POSITIONS))
    return " ".join(f"{_quote(term)}:{','.join(map(str, places))}" for term, places in positions.items())


def _quote(term: str) -> str:
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


class PostgresStore(Store):
    """The record is the ``documents`` table (with ``files``, the corpus files' stats); everything else is one
    generation of derived tables, ``g<N>_*``. Writes change the record and the live generation in one
    transaction. A re-index fills generation N+1 beside the live one, from the record, and switches to it
    in one transaction once it has caught up (``rederive``); searches never see a half-filled index, and a
    build killed midway resumes in the generation it was filling."""

    def __init__(self, settings: Settings, generation: int | None = None, derive_only: bool = False) -> None:
        """The live generation (or ``generation``); ``derive_only`` writes that generation's tables alone,
        never the record (a re-index filling the next generation)."""
        from psycopg_pool import ConnectionPool

        self.settings = settings
        self.schema = s = check_schema_name(settings.pg_schema)
        if not settings.pg_dsn:
            raise StoreMissing("KB_STORE=postgres needs KB_PG_DSN, the primary's connection string")
        self.location = f"PostgreSQL {where_is(settings.pg_dsn)} (schema {s})"
        self._read_location = (f"the PostgreSQL read server at {where_is(settings.pg_read_dsn)} (KB_PG_READ_DSN)"
                               if settings.pg_read_dsn else f"the PostgreSQL primary at {where_is(settings.pg_dsn)}")
        self.record = Record(settings.corpus_dir, in_folder=False)
        self._derive_only = derive_only
        self._conn: Any = None  # a connection in a transaction that holds the write lock (the switch's catch-up)
        self._wanted: tuple[str, dict[str, Any], Callable[[], int]] | None = None  # set by for_build
        common = dict(min_size=1, max_size=settings.pg_pool_size, timeout=POOL_WAIT, open=False,
                      check=_check, configure=_configure, reset=_reset, kwargs={"connect_timeout": 5})
        self._writes = ConnectionPool(settings.pg_dsn, name="kb-write", **common)
        self._reads = self._writes if not settings.pg_read_dsn else ConnectionPool(
            settings.pg_read_dsn, name="kb-read", **common)
        self._writes.open(wait=False)
        if self._reads is not self._writes:
            self._reads.open(wait=False)
        self._closed = False
        self._postings = PostingsCache(settings.pg_postings_cache_mb << 20)
        # What searches learnt of who may read what, by snapshot version (a write makes a new one): the passages a
        # filter passes, whether anything is hidden from some groups. The oldest answers go first.
        self._remembered: dict[tuple, Any] = {}
        self._remembered_lock = threading.Lock()
        self._merging: threading.Thread | None = None
        self._merge_wanted = threading.Event()
        try:
            self._load_meta(generation)
        except BaseException:
            self.close()
            raise

    # ---- opening and creating -------------------------------------------------------------

    def _load_meta(self, generation: int | None) -> None:
        with self._read_connection() as conn:
            found = version(conn, self.schema)
            if found == 0:
                raise StoreMissing(f"no kb tables in {self.location}: run `kb db init` (or `kb build`, which "
                                   "creates them)")
            if found < LATEST:
                raise StoreMismatch(f"the kb schema in {self.location} is at version {found}; this kb needs "
                                    f"{LATEST}: run `kb db migrate`")
            if found > LATEST:
                raise StoreMismatch(f"the kb schema in {self.location} is at version {found}, newer than this "
                                    f"kb ({LATEST}): upgrade kb")
            where = "state = 'live'" if generation is None else "number = %s"
            row = conn.execute(f"SELECT number, model, dimension, config FROM {self.schema}.generations WHERE {where}",
                               None if generation is None else (generation,)).fetchone()
            corpus = conn.execute(f"SELECT value FROM {self.schema}.meta WHERE key = 'corpus'").fetchone()
            conn.rollback()
        if row is None:
            raise StoreMissing(f"no live index in {self.location}: run `kb build`")
        self._use(*row)
        self.corpus = corpus[0] if corpus else None

    def _use(self, number: int, model: str, dimension: int, config: dict[str, Any]) -> None:
        self.generation, self.model, self.dimension, self.config = int(number), model, int(dimension), config
        self._sql = _statements(self.schema, self.generation)

    @classmethod
    def create(cls, settings: Settings, model: str, dimension: int, config: dict[str, Any]) -> "PostgresStore":
        """`kb db init`: the schema's tables, if they are not there yet, then the store."""
        import psycopg

        try:
            with psycopg.connect(settings.pg_dsn, connect_timeout=10) as conn:
                migrate(conn, check_schema_name(settings.pg_schema), {"model": model, "dimension": dimension,
                                                               "config": config, "hnsw_m": settings.hnsw_m})
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"PostgreSQL at {where_is(settings.pg_dsn)} is unreachable: "
                                   f"{first_line(exc)}") from None
        return cls(settings)

    # ---- lifecycle (kb/stores/base.py) ----------------------------------------------------------

    @classmethod
    def open(cls, settings: Settings, expected_model: str | None = None) -> "PostgresStore":
        store = cls(settings)
        if expected_model is not None and store.model != expected_model:
            store.close()
            raise StoreMismatch(f"{store.location} holds vectors of model {store.model!r} but KB_MODEL is "
                                f"{expected_model!r}: run `kb build` to derive the index again with it")
        return store

    @classmethod
    def exists(cls, settings: Settings) -> bool:
        import psycopg

        try:
            with psycopg.connect(settings.pg_dsn, connect_timeout=10) as conn:
                return version(conn, settings.pg_schema) > 0
        except psycopg.OperationalError:
            return True  # there may well be one: opening it will say the server is unreachable

    @classmethod
    def evaluation_settings(cls, settings: Settings, name: str) -> Settings:
        plain = "".join(c if c.isalnum() else "_" for c in name.lower())
        return settings.with_(pg_schema=f"{settings.pg_schema}_eval_{plain}"[:51])

    @classmethod
    @contextmanager
    def build_lock(cls, settings: Settings) -> Iterator[None]:
        """A session advisory lock of the schema's, on a connection of its own: one build at a time, whichever
        machine runs it."""
        import psycopg

        try:
            conn = psycopg.connect(settings.pg_dsn, connect_timeout=10, autocommit=True)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"PostgreSQL at {where_is(settings.pg_dsn)} is unreachable: "
                                   f"{first_line(exc)}") from None
        with conn:
            conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (BUILD_LOCK, settings.pg_schema))
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (BUILD_LOCK, settings.pg_schema))

    @classmethod
    def query_log(cls, settings: Settings) -> QueryLog:
        """The schema's queries and clicks tables, on the primary."""
        from kb.stores.postgres.querylog import PostgresQueryLog

        return PostgresQueryLog(settings)

    @classmethod
    def key_table(cls, settings: Settings) -> KeyTable:
        """The schema's keys table, on the primary."""
        from kb.stores.postgres.keys import PostgresKeyTable

        return PostgresKeyTable(settings)

    def facts(self) -> list[tuple[str, dict[str, str], float]]:
        """The index's age (since a document last changed), the pools' connections, and a standby's replay lag."""
        facts: list[tuple[str, dict[str, str], float]] = []
        pools = {"write": self._writes, **({"read": self._reads} if self._reads is not self._writes else {})}
        for name, pool in pools.items():
            stats = pool.get_stats()
            size = stats.get("pool_size", 0)
            facts += [("pg_pool_connections", {"pool": name}, size),
                      ("pg_pool_in_use", {"pool": name}, size - stats.get("pool_available", 0))]
        (age, lag), = self._read(
            f"SELECT extract(epoch FROM now() - max(updated_at)), CASE WHEN pg_is_in_recovery() "
            f"THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END FROM {self.schema}.documents")
        if age is not None:
            facts.append(("index_age_seconds", {}, max(0.0, float(age))))
        if lag is not None:
            facts.append(("pg_replica_lag_seconds", {}, max(0.0, float(lag))))
        return facts

    @classmethod
    def watch_claim(cls, settings: Settings) -> Callable[[], None] | None:
        """A session advisory lock of the schema's, on a connection of its own held open: whichever server takes
        it first watches; PostgreSQL lets it go when that connection ends."""
        import psycopg

        try:
            conn = psycopg.connect(settings.pg_dsn, connect_timeout=10, autocommit=True)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"PostgreSQL at {where_is(settings.pg_dsn)} is unreachable: "
                                   f"{first_line(exc)}") from None
        if not conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (WATCH_LOCK, settings.pg_schema)).fetchone()[0]:
            conn.close()
            return None
        return conn.close

    @classmethod
    def for_build(cls, settings: Settings, config: dict[str, Any], force: bool,
                  dimension: Callable[[], int]) -> tuple["PostgresStore", str | None]:
        try:
            store = cls(settings)
        except StoreMissing:
            return cls.create(settings, settings.model, dimension(), config), None
        why = rebuild_reason(store.config, config, force)
        if why is None:
            store._drop_generations("building")  # a killed re-index for settings no longer wanted
        store._wanted = (settings.model, config, dimension)
        return store, why

    @classmethod
    def backup(cls, settings: Settings, target: Path) -> dict[str, Any]:
        """The record as an export (kb/ingestion/transfer.py), from one REPEATABLE READ transaction while servers go on.
        It carries every document and upload; a restore embeds them again. A copy with the index too is
        PostgreSQL's own: pg_dump (docs/operations.md)."""
        from kb.stores.record import export

        store = cls(settings)
        try:
            with open(target / EXPORT_FILE, "wb") as out:
                documents = export(store, out)
                out.flush()
                os.fsync(out.fileno())
        finally:
            store.close()
        return {"export": EXPORT_FILE, "documents": documents, "schema": settings.pg_schema}

    @classmethod
    def restore(cls, settings: Settings, source: Path, force: bool) -> Path | None:
        """The backup's export, to be imported; refused where it would replace a document that changed since,
        unless ``force``."""
        if not force:
            try:
                store = cls(settings)
            except StoreMissing:
                return source / EXPORT_FILE
            try:
                with open(source / EXPORT_FILE, "rb") as handle:
                    saved = {row["id"]: row["hash"] for row in map(json.loads, filter(bytes.strip, handle))}
                now = store.fingerprints(list(saved))
            finally:
                store.close()
            changed = sorted(doc_id for doc_id, (hash_, _) in now.items() if saved[doc_id] != hash_)
            if changed:
                raise BackupProblem(f"{store.location} holds {len(changed)} document(s) that changed since the backup "
                                    f"({changed[0]}): add --force to replace them with the backup's versions")
        return source / EXPORT_FILE

    def rederive(self, write: Callable[[Store, list[Document]], None]) -> "PostgresStore":
        """Fill the next generation from the record (resuming a killed fill), catch up with what was written
        meanwhile, then switch to it under the write lock; the record itself is only read."""
        model, config, dimension = self._wanted
        target = PostgresStore(self.settings, generation=self._next_generation(model, config, dimension),
                               derive_only=True)
        try:
            for _ in range(CATCH_UP_ROUNDS):
                if not target._catch_up(write, self):
                    break
            self._run_on_primary(generation_vector_index(self.schema, target.generation, self.settings.hnsw_m))
            target._switch(write, self)
        finally:
            target.close()
        self._drop_generations("retired")
        self.close()
        return PostgresStore(self.settings)

    def finish(self, corpus: str | None, written: bool) -> bool:
        if corpus is not None and corpus != self.corpus:
            from psycopg.types.json import Jsonb

            self._write(lambda conn: conn.execute(
                f"INSERT INTO {self.schema}.meta VALUES ('corpus', %s) ON CONFLICT (key) DO UPDATE SET value = "
                "excluded.value", (Jsonb(corpus),)))
            self.corpus = corpus
        return False  # a new generation went live in rederive already

    # ---- connections ------------------------------------------------------------------------

    @contextmanager
    def _read_connection(self) -> Iterator[Any]:
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            with self._reads.connection() as conn:
                yield conn
        except PoolTimeout:
            raise StoreUnavailable(f"{self._read_location} is unreachable (no connection within "
                                   f"{POOL_WAIT:.0f} s); nothing was changed, retry once it answers") from None
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"lost the connection to {self._read_location}: "
                                   f"{first_line(exc)}") from None

    def _write(self, action: Callable[[Any], Any]) -> Any:
        """``action(conn)`` in one transaction on the primary, under the write lock (a re-index's own tables:
        without it); one retry if the connection is lost (writes are idempotent: a document is replaced by id)."""
        import psycopg
        from psycopg_pool import PoolTimeout

        if self._conn is not None:  # inside the switch's transaction, which holds the lock
            return action(self._conn)
        for attempt in (1, 2):
            try:
                with self._writes.connection() as conn:
                    with conn.transaction():
                        if not self._derive_only:
                            conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                            self._follow(conn, writing=True)
                        return action(conn)
            except PoolTimeout:
                raise StoreUnavailable(f"the PostgreSQL primary at {where_is(self.settings.pg_dsn)} is unreachable: "
                                       "the write was not stored; searches go on, retry the write later") from None
            except psycopg.errors.DiskFull:
                raise StoreUnwritable(f"the disk of the PostgreSQL primary at {where_is(self.settings.pg_dsn)} is "
                                      "full: nothing was changed") from None
            except psycopg.errors.ReadOnlySqlTransaction:
                raise StoreUnwritable(f"{where_is(self.settings.pg_dsn)} is a read-only standby: KB_PG_DSN must "
                                      "name the primary") from None
            except psycopg.OperationalError as exc:
                if attempt == 2:
                    raise StoreUnavailable(f"the PostgreSQL primary at {where_is(self.settings.pg_dsn)} is "
                                           f"unreachable ({first_line(exc)}): the write was not stored") from None
                log.warning("lost the connection to the primary during a write, retrying once: %s", first_line(exc))

    def _run_on_primary(self, *statements: str) -> list[tuple]:
        """Statements on a connection of their own to the primary, each committed; the last one's rows."""
        import psycopg

        rows: list[tuple] = []
        try:
            with psycopg.connect(self.settings.pg_dsn, connect_timeout=10, autocommit=True) as conn:
                for statement in statements:
                    cursor = conn.execute(statement)
                    rows = cursor.fetchall() if cursor.description else []
                return rows
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"the PostgreSQL primary at {where_is(self.settings.pg_dsn)} is unreachable: "
                                   f"{first_line(exc)}") from None

    def _follow(self, conn: Any, writing: bool = False, ef_search: int | None = None) -> Any:
        """The live generation as ``conn`` sees it; another process's re-index is followed when this store's
        model and settings fit it (else writes and searches are refused with a sentence that says why). A
        search's snapshot sets HNSW's settings in the same statement (``ef_search``)."""
        if ef_search is None:
            row = conn.execute(self._sql.live).fetchone()
        else:  # a search's snapshot: its transaction begins here, in the same round trip (no parameters: one string)
            cursor = conn.execute(self._sql.begin_search + self._sql.live_for_search.replace("%s", f"'{int(ef_search)}'"))
            cursor.nextset()
            row = cursor.fetchone()
            row = row[:-2] if row is not None else None
        if row is None:
            raise StoreUnavailable(f"{self.location} has no live index: run `kb build`")
        number, model, dimension, config = row[:4]
        if number != self.generation:
            if model != self.model or (writing and config != self.config):
                raise StoreUnavailable(f"{self.location} was re-indexed (model {model!r}, {config}) since this "
                                       f"server started: restart it with the same settings")
            self._use(number, model, dimension, config)
        return row

    # ---- writes ---------------------------------------------------------------------------

    def add(self, documents: Sequence[PreparedDocument]) -> None:
        check_dimension(documents, self.dimension)
        if documents:
            self._write(lambda conn: self._add(conn, documents))
            self._maybe_merge()

    def _add(self, conn: Any, documents: Sequence[PreparedDocument]) -> None:
        from psycopg.types.json import Jsonb

        q = self._sql
        ids = [d.document.id for d in documents]
        self._delete(conn, ids)
        count = sum(len(d.passages) for d in documents)
        keys = iter(row[0] for row in conn.execute(q.new_keys, (count,)).fetchall())
        with conn.cursor() as cursor:
            if not self._derive_only:
                with cursor.copy(q.copy_documents) as copy:
                    for prepared in documents:
                        d = prepared.document
                        copy.write_row((d.id, d.title, d.source, document_date(d.metadata), Jsonb(d.metadata), d.hash,
                                        d.text, d.path, len(d.text), d.original, _moment(d.updated), list(d.access)))
                conn.execute(q.count_access, (ids,))
            with cursor.copy(q.copy_indexed) as copy:
                for prepared in documents:
                    copy.write_row((prepared.document.id, prepared.document.hash, len(prepared.passages)))
            rows = [(next(keys), prepared.document, p) for prepared in documents for p in prepared.passages]
            with cursor.copy(q.copy_passages) as copy:
                for key, document, p in rows:
                    copy.write_row((key, p.passage_id, document.id, p.ordinal, p.start, p.end, p.text,
                                    stored_headings(p.headings), context_of(document.title, p.heading), len(p.terms),
                                    tsvector_literal(p.terms)))
            with cursor.copy(q.copy_vectors) as copy:
                for key, _, p in rows:
                    copy.write_row((key, np.asarray(p.vector, dtype=np.float32)))
            with cursor.copy(q.copy_sentences) as copy:
                for key, _, p in rows:
                    copy.write_row((key, np.asarray(p.sentence_spans, dtype="<i8").tobytes(),
                                    pack(p.sentence_vectors, self.settings.sentence_vectors)))
        conn.execute(q.count_new_terms, (ids,))
        length = float(sum(len(p.terms) for _, _, p in rows))
        conn.execute(q.grow_stats, (len(documents), count, length))
        if rows:
            fill_segment(conn, self.schema, self.generation, rows[0][0], rows[-1][0])  # keys come in order

    def delete(self, doc_ids: Sequence[str]) -> list[str]:
        if not doc_ids:
            return []
        deleted = self._write(lambda conn: self._delete(conn, list(doc_ids), bump=True))
        self._maybe_merge()
        return deleted

    # ---- merging postings segments (kb/stores/postgres/postings.py) ------------------------------

    def _maybe_merge(self) -> None:
        """Merge postings segments in a thread of this store's, while any merge is due (writes go on)."""
        if self._conn is not None or self._closed:
            return  # inside the switch's transaction: the next write after it merges
        self._merge_wanted.set()
        if self._merging is None or not self._merging.is_alive():
            self._merging = threading.Thread(target=self._merge_while_due, name="kb-merge", daemon=True)
            self._merging.start()

    def _merge_while_due(self) -> None:
        from psycopg import IsolationLevel

        try:
            while self._merge_wanted.is_set() and not self._closed:
                self._merge_wanted.clear()
                while not self._closed:
                    with self._writes.connection() as conn:
                        conn.isolation_level = IsolationLevel.REPEATABLE_READ
                        with conn.transaction():
                            merged = merge_once(conn, self.schema, self.generation)
                    if not merged:
                        break
        except Exception as exc:  # noqa: BLE001 - a merge failing must never stop searches or writes
            log.warning("merging keyword postings failed (searches and writes go on): %s", first_line(exc))

    def _delete(self, conn: Any, doc_ids: list[str], bump: bool = False) -> list[str]:
        q = self._sql
        conn.execute(q.delete_passages, (doc_ids,))
        indexed = [row[0] for row in conn.execute(q.delete_indexed, (doc_ids,)).fetchall()]
        conn.execute(q.shrink_documents, (len(indexed), 1 if bump else 0))
        if self._derive_only:
            return indexed
        return [row[0] for row in conn.execute(q.delete_documents, (doc_ids,)).fetchall()]

    def record_files(self, stats: dict[str, tuple[int, int] | None]) -> None:
        if not stats:
            return

        def apply(conn: Any) -> None:
            gone = [path for path, stat in stats.items() if stat is None]
            if gone:
                conn.execute(f"DELETE FROM {self.schema}.files WHERE path = ANY(%s)", (gone,))
            kept = [(path, stat[0], stat[1]) for path, stat in stats.items() if stat is not None]
            if kept:
                with conn.cursor() as cursor:
                    cursor.executemany(f"INSERT INTO {self.schema}.files VALUES (%s, %s, %s) ON CONFLICT (path) "
                                       "DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns", kept)

        self._write(apply)

    # ---- re-indexing into the next generation -------------------------------------------------

    def _next_generation(self, model: str, config: dict[str, Any], dimension: Callable[[], int]) -> int:
        """The generation a re-index fills: a killed one's for the same model and settings, or a new one."""
        s = self.schema
        building = self._read(f"SELECT number, model, config FROM {s}.generations WHERE state = 'building'")
        for number, found_model, found_config in building:
            if found_model == model and found_config == config:
                return int(number)
        self._drop_generations("building")
        size = dimension()

        def make(conn: Any) -> int:
            from psycopg.types.json import Jsonb

            number = conn.execute(f"SELECT coalesce(max(number), 0) + 1 FROM {s}.generations").fetchone()[0]
            conn.execute(f"INSERT INTO {s}.generations (number, model, dimension, config, state) "
                         "VALUES (%s, %s, %s, %s, 'building')", (number, model, size, Jsonb(config)))
            conn.execute(f"INSERT INTO {s}.stats (generation, seq, documents, passages, total_length) "
                         "VALUES (%s, 0, 0, 0, 0)", (number,))
            for statement in generation_tables(s, number, size):
                conn.execute(statement)
            return int(number)

        return self._write(make)

    def _behind(self, conn: Any) -> tuple[list[str], list[str]]:
        """(ids the record holds in another version than this generation, ids this generation holds that the
        record no longer does)."""
        q = self._sql
        return ([row[0] for row in conn.execute(q.behind).fetchall()],
                [row[0] for row in conn.execute(q.orphans).fetchall()])

    def _catch_up(self, write: Callable[[Store, list[Document]], None], record: "PostgresStore") -> int:
        """Bring this generation in line with the record, a batch at a time; how many documents it wrote."""
        with record._read_connection() as conn:
            pending, gone = self._behind(conn)
            conn.rollback()
        if gone:
            self.delete(gone)
        for begin in range(0, len(pending), REDERIVE_BATCH):
            write(self, record._documents(pending[begin:begin + REDERIVE_BATCH]))
        return len(pending) + len(gone)

    def _switch(self, write: Callable[[Store, list[Document]], None], record: "PostgresStore") -> None:
        """Under the write lock: the last catch-up (what was written since), then this generation goes live,
        in one transaction; writers wait for it, searches never see a half-filled index."""
        with self._writes.connection() as conn:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                pending, gone = self._behind(conn)
                self._conn = conn
                try:
                    if gone:
                        self.delete(gone)
                    if pending:
                        write(self, record._documents(pending, conn))
                finally:
                    self._conn = None
                conn.execute(f"UPDATE {self.schema}.generations SET state = 'retired' WHERE state = 'live'")
                conn.execute(f"UPDATE {self.schema}.generations SET state = 'live' WHERE number = %s",
                             (self.generation,))

    def _drop_generations(self, state: str) -> None:
        """Drop the tables of every generation in ``state`` (retired ones after a switch; stale building ones)."""
        s = self.schema

        numbers = self._run_on_primary(f"SELECT number FROM {s}.generations WHERE state = '{state}'")
        for (number,) in numbers:
            tables = ", ".join(f"{s}.g{number}_{table}" for table in GENERATION_TABLES)
            self._run_on_primary(f"DROP TABLE IF EXISTS {tables} CASCADE",
                                 f"DELETE FROM {s}.generations WHERE number = {int(number)}")

    def _documents(self, ids: Sequence[str], conn: Any = None) -> list[Document]:
        """Documents of the record, as a build reads them (for a re-index)."""
        sql = (f"SELECT id, title, source, text, metadata, path, access FROM {self.schema}.documents WHERE id = ANY(%s) "
               "ORDER BY id")
        rows = conn.execute(sql, (list(ids),)).fetchall() if conn is not None else self._read(sql, (list(ids),))
        return [Document(doc_id, title, source, text, metadata, path, access=tuple(access))
                for doc_id, title, source, text, metadata, path, access in rows]

    # ---- reads ----------------------------------------------------------------------------

    def remember(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """``compute()``, kept under ``key`` (which names the snapshot version) for the next searches."""
        found = self._remembered.get(key, _UNKNOWN)  # one look: another thread may drop the key meanwhile
        if found is not _UNKNOWN:
            return found
        found = compute()
        with self._remembered_lock:
            while len(self._remembered) >= REMEMBERED:
                self._remembered.pop(next(iter(self._remembered)))
            self._remembered[key] = found
        return found

    def _read(self, sql: str | Callable[["_Statements"], str], parameters: Any = None) -> list[tuple]:
        """Rows of one query; one that names the live generation's tables (``sql`` given as a function of the
        statements) is asked again of the new live generation when another process switched meanwhile."""
        import psycopg

        for attempt in (1, 2):
            with self._read_connection() as conn:
                try:
                    rows = conn.execute(sql(self._sql) if callable(sql) else sql, parameters).fetchall()
                except psycopg.errors.UndefinedTable:
                    if attempt == 2 or not callable(sql):
                        raise
                    conn.rollback()
                    self._follow(conn)
                    conn.rollback()
                    continue
                conn.rollback()
                return rows
        return []

    def document(self, doc_id: str, groups: Sequence[str] | None = None) -> StoredDocument | None:
        where, parameters = postgres_visible(groups)
        rows = self._read(lambda q: q.document.format(where=where), (doc_id, *parameters))
        return _stored(rows[0]) if rows else None

    def original(self, doc_id: str) -> bytes | None:
        rows = self._read(f"SELECT original FROM {self.schema}.documents WHERE id = %s", (doc_id,))
        return bytes(rows[0][0]) if rows and rows[0][0] is not None else None

    def passage_spans(self, doc_id: str, groups: Sequence[str] | None = None) -> list[tuple[int, int]]:
        where, parameters = postgres_visible(groups)
        return [(start, end) for start, end in self._read(lambda q: q.spans.format(where=where), (doc_id, *parameters))]

    def all_documents(self, groups: Sequence[str] | None = None) -> Iterator[StoredDocument]:
        from psycopg import IsolationLevel

        where, parameters = postgres_visible(groups)
        with self._read_connection() as conn:
            conn.isolation_level, conn.read_only = IsolationLevel.REPEATABLE_READ, True
            with conn.transaction(), conn.cursor(name="kb_all_documents") as cursor:
                cursor.itersize = 200
                cursor.execute(self._sql.everything.format(where=where), parameters)
                for row in cursor:
                    yield replace(_stored(row[:10]), original=None if row[10] is None else bytes(row[10]),
                                  updated=iso_time(_nanoseconds(row[11])))

    def documents(self, offset: int, limit: int, groups: Sequence[str] | None = None) -> tuple[int, list[StoredDocument]]:
        where, parameters = postgres_visible(groups)
        rows = self._read(lambda q: q.listing.format(where=where), (*parameters, limit, offset))
        return self.counts(groups)[0], [_stored(row) for row in rows]

    def counts(self, groups: Sequence[str] | None = None) -> tuple[int, int]:
        where, parameters = postgres_visible(groups)
        if groups is None:
            documents, passages = self._read(lambda q: q.counts)[0]
        else:
            documents, passages = self._read(lambda q: q.visible_counts.format(where=where), parameters)[0]
        return int(documents), int(passages)

    def fingerprints(self, ids: Sequence[str] | None = None) -> dict[str, tuple[str, str]]:
        if ids is None:
            rows = self._read(f"SELECT id, hash, path FROM {self.schema}.documents")
        else:
            rows = self._read(f"SELECT id, hash, path FROM {self.schema}.documents WHERE id = ANY(%s)", (list(ids),))
        return {doc_id: (hash_, path) for doc_id, hash_, path in rows}

    def file_stats(self) -> dict[str, tuple[int, int]]:
        return {path: (size, mtime) for path, size, mtime in
                self._read(f"SELECT path, size, mtime_ns FROM {self.schema}.files")}

    def snapshot(self) -> "PostgresSnapshot":
        return PostgresSnapshot(self)

    def close(self) -> None:
        """Waits for a merge under way (a build's last merge ends before the build does)."""
        if self._closed:
            return
        if self._merging is not None:
            self._merging.join()
        self._closed = True
        self._writes.close()
        if self._reads is not self._writes:
            self._reads.close()


class PostgresSnapshot(Snapshot):
    """One REPEATABLE READ, READ ONLY transaction on a read connection, held until ``close``."""

    def __init__(self, store: PostgresStore) -> None:
        import psycopg
        from psycopg_pool import PoolTimeout

        self.store = store
        self._ef_search = store.settings.hnsw_ef_search
        for attempt in (1, 2):  # a connection lost since the pool checked it: one more try on a fresh one
            _lending.search = True
            try:
                self._conn = store._reads.getconn()
            except PoolTimeout:
                raise StoreUnavailable(f"{store._read_location} is unreachable (no connection within "
                                       f"{POOL_WAIT:.0f} s); nothing was changed, retry once it answers") from None
            finally:
                _lending.search = False
            try:
                self._conn.autocommit = True  # the transaction begins with the first statement, in the same round trip
                number, _, _, _, seq, self._documents, self._passages, self._total_length = \
                    store._follow(self._conn, ef_search=self._ef_search)
                break
            except psycopg.OperationalError as exc:
                store._reads.putconn(self._conn)
                self._conn = None
                store._reads.check()  # the others may be lost too (a restarted server): replaced now
                if attempt == 2:
                    raise StoreUnavailable(f"lost the connection to {store._read_location}: "
                                           f"{first_line(exc)}") from None
            except BaseException:
                self.close()
                raise
        self._generation = int(number)
        self.q = _statements(store.schema, self._generation)
        self.version = (store.location, int(number), int(seq))

    def _run(self, sql: str, parameters: Any = None, binary: bool = False) -> list[tuple]:
        import psycopg

        try:
            return self._conn.execute(sql, parameters, binary=binary).fetchall()
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"lost the connection to {self.store._read_location}: "
                                   f"{first_line(exc)}") from None

    def candidates(self, query_vector: np.ndarray, query_terms: Sequence[str], depth: int, dense: bool,
                   keyword: bool, filters: Filters = Filters()) -> Candidates:
        q = self.q
        query_vector = np.asarray(query_vector, dtype=np.float32)
        if not self._passages:
            return Candidates.empty(self.store.dimension)
        if filters.groups is not None and not filters.asked and not self._hides(filters.groups):
            filters = Filters()  # the caller may read every passage: nothing to filter
        where, parameters = postgres_where(filters)
        # The passages that pass, when at most EXACT_FILTER_LIMIT do (searched exactly); None when more do.
        allowed = self._allowed(filters, where, parameters) if filters else None
        pool: dict[int, None] = {}
        if dense and filters:
            if allowed is not None:
                rows = self._run(q.exact_dense, [allowed.tolist(), query_vector, depth]) if len(allowed) else []
            else:
                self._search_depth(depth)
                rows = self._run(q.filtered_dense.format(where=where), [*parameters, query_vector, depth])
            pool.update((int(key), None) for key, in rows)
        unfiltered_dense = dense and not filters
        if unfiltered_dense:
            self._search_depth(depth)
        terms, covered, dense_found = self._inputs(query_terms, query_vector if unfiltered_dense else None, depth)
        pool.update((key, None) for key in dense_found)
        average = self._total_length / self._passages
        ranked_keys: list[int] = []
        found: dict[int, Any] = dict(dense_found)  # a passage's vector, once read (dense candidates come with theirs)
        if keyword and terms and not filters:
            # Deleted passages keep their postings until a merge: rank a few more than needed, and more again
            # in the rare case that too many of those are deleted ones (their vectors are gone: they are not found).
            dead = max(0, covered - self._passages)
            spare = min(dead, depth)
            while True:
                ranked_keys = rank(terms, average, depth, spare=spare).keys.tolist()
                wanted = [key for key in dict.fromkeys([*pool, *ranked_keys]) if key not in found]
                found.update(self._run(q.vectors, (wanted,), binary=True) if wanted else [])
                live = [key for key in ranked_keys if key in found]
                if len(live) >= depth or spare >= dead or len(ranked_keys) < depth + spare:
                    break
                spare = min(dead, 4 * spare)
            ranked_keys = live[:depth]
        elif keyword and terms:
            if allowed is not None:
                ranked_keys = rank(terms, average, depth, allowed=allowed).keys.tolist()
            else:
                ranked_keys = self._filtered(rank(terms, average, None).keys.tolist(), where, parameters, depth)
        wanted = [key for key in dict.fromkeys([*pool, *ranked_keys]) if key not in found]
        if wanted:
            found.update(self._run(q.vectors, (wanted,), binary=True))
        keys = np.array([key for key in dict.fromkeys([*pool, *ranked_keys]) if key in found], dtype=np.int64)
        if not len(keys):
            return Candidates.empty(self.store.dimension)
        vectors = np.stack([_array(found[key]) for key in keys.tolist()])
        scores = scores_of(terms, average, keys).astype(np.float32)
        return Candidates(keys, vectors @ query_vector, scores, vectors)

    def _allowed(self, filters: Filters, where: str, parameters: list) -> np.ndarray | None:
        """The keys of the passages that pass ``filters``, in order, when at most EXACT_FILTER_LIMIT do (None when
        more do); a caller's next question between two writes reads them from memory, not from the documents."""
        def read() -> np.ndarray | None:
            rows = self._run(self.q.allowed_keys.format(where=where), [*parameters, EXACT_FILTER_LIMIT + 1])
            return None if len(rows) > EXACT_FILTER_LIMIT else np.sort(np.array([k for k, in rows], dtype=np.int64))

        return self.store.remember(("allowed", self.version, filters), read)

    def _hides(self, groups: Sequence[str]) -> bool:
        """Whether any document is hidden from a caller of ``groups`` (a look at the access lists), once a version."""
        def ask() -> bool:
            where, parameters = postgres_visible(groups)
            return bool(self._run(self.q.any_hidden.format(where=where), parameters)[0][0])

        return self.store.remember(("hides", self.version, tuple(groups)), ask)

    def _search_depth(self, depth: int) -> None:
        """HNSW's candidate list for this many results (the snapshot set KB_HNSW_EF_SEARCH when it began)."""
        if depth > self._ef_search:
            self._ef_search = min(1000, depth)
            self._run("SELECT set_config('hnsw.ef_search', %s, true)", (str(self._ef_search),))

    def _inputs(self, query_terms: Sequence[str], query_vector: np.ndarray | None,
                depth: int) -> tuple[list[Term], int, dict[int, Any]]:
        """In one statement: the query terms' document frequencies and postings (the rows the cache lacks), the
        passages the segments hold (deleted ones included) and, given a vector, the dense candidates with their
        vectors, in order."""
        store, q = self.store, self.q
        distinct = sorted(set(query_terms))
        held = store._postings.held(store.schema, self._generation, distinct)
        sql, parameters = q.inputs, {"terms": distinct, "held": held}
        if query_vector is not None:
            sql, parameters = q.inputs_and_dense, {**parameters, "vector": query_vector, "depth": depth}
        rows = self._run(sql, parameters, binary=True)
        df: dict[str, int] = {}
        runs: dict[str, list] = {term: [] for term in distinct}
        covered, dense = 0, {}
        for kind, term, number, bound, reference, keys, tfs, lengths, embedding in rows:
            if kind == 0:
                cache_key = (store.schema, self._generation, int(number), term)
                run = store._postings.get(cache_key) if keys is None else None
                if run is None:
                    if keys is None:  # evicted since ``held`` was read: read it again, alone
                        keys, tfs, lengths = self._run(q.postings_row, (term, number), binary=True)[0]
                    run = decode(keys, tfs, lengths, bound, reference)
                    store._postings.put(cache_key, run)
                runs[term].append(run)
            elif kind == 1:
                df[term] = int(number)
            elif kind == 2:
                covered = int(number)
            else:
                dense[int(number)] = embedding
        repeats = {term: query_terms.count(term) for term in distinct}  # a repeated query word counts each time
        terms = [Term(repeats[term] * idf(self._passages, df[term]), runs[term]) for term in distinct
                 if df.get(term, 0) > 0]
        return terms, covered, dense

    def _filtered(self, ranked: list[int], where: str, parameters: list, depth: int) -> list[int]:
        """The first ``depth`` of a whole keyword ranking that pass a broad filter, checked a batch at a time."""
        kept: list[int] = []
        batch = max(4 * depth, 1000)
        for begin in range(0, len(ranked), batch):
            keys = ranked[begin:begin + batch]
            passing = {key for key, in self._run(self.q.filter_keys.format(where=where), [*parameters, keys])}
            kept.extend(key for key in keys if key in passing)
            if len(kept) >= depth:
                break
        return kept[:depth]

    def records(self, keys: Sequence[int]) -> list[PassageRecord]:
        if not keys:
            return []
        rows = self._run(self.q.records, ([int(k) for k in keys],), binary=True)  # bytea as bytes, not hex
        by_key = {row[0]: row for row in rows}
        records = []
        for key in keys:
            row = by_key.get(int(key))
            if row is None:
                continue
            spans = np.frombuffer(row[13], dtype="<i8").reshape(-1, 2).astype(np.int64)
            vectors = unpack(row[14], len(spans))
            records.append(PassageRecord(int(row[0]), *row[1:7], headings_of(row[7]), *row[8:13], spans, vectors))
        return records

    def counts(self) -> tuple[int, int]:
        return int(self._documents), int(self._passages)

    def close(self) -> None:
        conn, self._conn = getattr(self, "_conn", None), None
        if conn is not None:
            try:
                conn.rollback()
            except Exception:  # noqa: BLE001 - a broken connection is discarded by the pool
                pass
            self.store._reads.putconn(conn)

    def __del__(self) -> None:  # a snapshot dropped without close still returns its connection
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass


def _stored(row: Sequence[Any]) -> StoredDocument:
    """A document from a row of ``_Statements``' brief columns."""
    return StoredDocument(*row[:9], access=tuple(row[9]))


def _moment(iso: str | None) -> Any:
    """A document's update time for its row: the one it carries (an import keeps it), else now."""
    from datetime import datetime, timezone

    if not iso:
        return datetime.now(timezone.utc)
    seconds, micros = divmod(time_ns(iso) // 1000, 10**6)
    return datetime.fromtimestamp(seconds, timezone.utc).replace(microsecond=micros)


def _nanoseconds(moment: Any) -> int:
    return (calendar.timegm(moment.utctimetuple()) * 10**6 + moment.microsecond) * 1000


def _array(vector: Any) -> np.ndarray:
    """A pgvector value as float32 (its loader gives a Vector object)."""
    return np.asarray(vector.to_numpy() if hasattr(vector, "to_numpy") else vector, dtype=np.float32)


def _configure(conn: Any) -> None:
    """Every new connection: pgvector's binary types (once the extension exists)."""
    from pgvector.psycopg import register_vector

    try:
        register_vector(conn)
    except Exception:  # noqa: BLE001 - no vector type yet (before `kb db init`)
        pass
    conn.rollback()


def _reset(conn: Any) -> None:
    """A connection back in the pool forgets a snapshot's settings (the same pool may lend it for a write)."""
    conn.isolation_level, conn.read_only = None, None  # the server's defaults (False would fail on a standby)
    conn.autocommit = False
    conn.kb_returned = time.monotonic()


_lending = threading.local()  # .search: the pool lends this thread's connection to a search's snapshot


def _check(conn: Any) -> None:
    """The pool's check before it lends a connection: a round trip (about 0.2 ms of a 7 ms search here). A search's
    snapshot skips it for a connection returned within ``ALIVE_BYPASS`` seconds, as HikariCP skips it
    (aliveBypassWindowMs): a connection lost meanwhile fails the snapshot's first statement, and the snapshot then
    checks the whole pool and tries once more (``PostgresSnapshot``). Everything else is lent checked."""
    from psycopg_pool import ConnectionPool

    if not getattr(_lending, "search", False) or time.monotonic() - getattr(conn, "kb_returned", 0.0) > ALIVE_BYPASS:
        ConnectionPool.check_connection(conn)


@lru_cache(maxsize=64)
def _statements(schema: str, generation: int) -> "_Statements":
    return _Statements(schema, generation)


class _Statements:
    """The SQL of the store, for one schema and one generation of its derived tables."""

    def __init__(self, s: str, n: int) -> None:
        g = f"{s}.g{n}_"
        self.live = (f"SELECT g.number, g.model, g.dimension, g.config, st.seq, st.documents, st.passages, "
                     f"st.total_length FROM {s}.generations g JOIN {s}.stats st ON st.generation = g.number "
                     "WHERE g.state = 'live'")
        self.begin_search = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; "
        self.live_for_search = self.live.replace(
            " FROM ", ", set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', 'relaxed_order', "
            "true) FROM ", 1)
        self.new_keys = f"SELECT nextval('{s}.passage_keys') FROM generate_series(1, %s)"
        self.copy_documents = (f"COPY {s}.documents (id, title, source, date, metadata, hash, text, path, length, "
                               "original, updated_at, access) FROM STDIN")
        self.copy_indexed = f"COPY {g}indexed (doc_id, hash, passages) FROM STDIN"
        self.copy_passages = (f"COPY {g}passages (key, passage_id, doc_id, ordinal, start_offset, end_offset, text, "
                              "heading, context, length, terms) FROM STDIN")
        self.copy_vectors = f"COPY {g}vectors (key, embedding) FROM STDIN"
        self.copy_sentences = f"COPY {g}sentences (key, spans, vectors) FROM STDIN"
        # Document frequencies and corpus statistics move with every passage that comes or goes.
        self.count_new_terms = (
            f"INSERT INTO {g}terms (term, df) SELECT u.lexeme, count(*) FROM {g}passages p, unnest(p.terms) u "
            f"WHERE p.doc_id = ANY(%s) GROUP BY u.lexeme ORDER BY u.lexeme "
            f"ON CONFLICT (term) DO UPDATE SET df = {g}terms.df + excluded.df")
        self.grow_stats = (f"UPDATE {s}.stats SET seq = seq + 1, documents = documents + %s, passages = passages + %s, "
                           f"total_length = total_length + %s WHERE generation = {n}")
        self.delete_passages = f"""
            WITH gone AS (DELETE FROM {g}passages WHERE doc_id = ANY(%s) RETURNING terms, length),
                 counts AS (SELECT u.lexeme AS term, count(*) AS n FROM gone, unnest(gone.terms) u GROUP BY 1),
                 lowered AS (UPDATE {g}terms t SET df = t.df - counts.n FROM counts WHERE t.term = counts.term
                             RETURNING 1)
            UPDATE {s}.stats SET passages = passages - (SELECT count(*) FROM gone),
                                 total_length = total_length - (SELECT coalesce(sum(length), 0) FROM gone)
            WHERE generation = {n}"""
        self.delete_indexed = f"DELETE FROM {g}indexed WHERE doc_id = ANY(%s) RETURNING doc_id"
        self.delete_documents = f"""
            WITH gone AS (DELETE FROM {s}.documents WHERE id = ANY(%s) RETURNING id, access),
                 counted AS (SELECT access, count(*) AS n FROM gone GROUP BY access),
                 lowered AS (UPDATE {s}.access_sets a SET documents = a.documents - counted.n FROM counted
                             WHERE a.access = counted.access RETURNING 1)
            SELECT id FROM gone"""
        self.count_access = (f"INSERT INTO {s}.access_sets SELECT access, count(*) FROM {s}.documents "
                             "WHERE id = ANY(%s) GROUP BY access ON CONFLICT (access) "
                             f"DO UPDATE SET documents = {s}.access_sets.documents + excluded.documents")
        self.shrink_documents = f"UPDATE {s}.stats SET documents = documents - %s, seq = seq + %s WHERE generation = {n}"
        self.behind = (f"SELECT d.id FROM {s}.documents d LEFT JOIN {g}indexed i ON i.doc_id = d.id "
                       "WHERE i.hash IS DISTINCT FROM d.hash ORDER BY d.id")
        self.orphans = (f"SELECT i.doc_id FROM {g}indexed i LEFT JOIN {s}.documents d ON d.id = i.doc_id "
                        "WHERE d.id IS NULL")
        brief = "d.id, d.title, d.source, d.hash, {text}, coalesce(i.passages, 0), d.metadata, d.path, d.length, d.access"
        joined = f"FROM {s}.documents d LEFT JOIN {g}indexed i ON i.doc_id = d.id"
        # {where}: who may read what (kb/stores/filters.py's postgres_visible), below every read that shows a document.
        self.document = f"SELECT {brief.format(text='d.text')} {joined} WHERE d.id = %s AND {{where}}"
        self.listing = f"SELECT {brief.format(text=chr(39) * 2)} {joined} WHERE {{where}} ORDER BY d.id LIMIT %s OFFSET %s"
        self.everything = f"SELECT {brief.format(text='d.text')}, d.original, d.updated_at {joined} WHERE {{where}} ORDER BY d.id"
        self.visible_counts = (f"SELECT count(*), coalesce(sum(i.passages), 0) FROM {s}.documents d JOIN {g}indexed i "
                               "ON i.doc_id = d.id WHERE {where}")
        self.counts = f"SELECT documents, passages FROM {s}.stats WHERE generation = {n}"
        self.spans = (f"SELECT p.start_offset, p.end_offset FROM {g}passages p JOIN {s}.documents d ON d.id = p.doc_id "
                      "WHERE p.doc_id = %s AND {where} ORDER BY p.ordinal")
        # Whether any document is hidden from a caller (none: a search need not filter): a look at the access lists.
        self.any_hidden = (f"SELECT EXISTS (SELECT 1 FROM {s}.access_sets d WHERE d.documents > 0 "
                           "AND d.access <> '{{}}' AND NOT ({where}))")
        allowed = f"FROM {g}vectors v JOIN {g}passages p ON p.key = v.key JOIN {s}.documents d ON d.id = p.doc_id"
        self.exact_dense = f"SELECT key FROM {g}vectors WHERE key = ANY(%s) ORDER BY embedding <#> %s, key LIMIT %s"
        self.filtered_dense = f"SELECT v.key {allowed} WHERE {{where}} ORDER BY v.embedding <#> %s LIMIT %s"
        self.allowed_keys = (f"SELECT p.key FROM {g}passages p JOIN {s}.documents d ON d.id = p.doc_id WHERE {{where}} "
                             "LIMIT %s")
        self.filter_keys = (f"SELECT p.key FROM {g}passages p JOIN {s}.documents d ON d.id = p.doc_id "
                            "WHERE {where} AND p.key = ANY(%s)")
        # What a search needs before it ranks, in one statement (kind: 0 a postings row, its arrays left out when
        # the cache holds them; 1 a document frequency; 2 the passages the segments hold; 3 a dense candidate,
        # with its vector).
        self.inputs = f"""
            SELECT 0 AS kind, po.term, po.segment, po.bound::float8, sg.reference,
                   CASE WHEN held THEN NULL ELSE po.keys END, CASE WHEN held THEN NULL ELSE po.tfs END,
                   CASE WHEN held THEN NULL ELSE po.lengths END, NULL::vector
            FROM {g}postings po JOIN {g}segments sg ON sg.id = po.segment,
                 LATERAL (SELECT po.term || ':' || po.segment = ANY(%(held)s::text[]) AS held) h
            WHERE po.term = ANY(%(terms)s::text[])
            UNION ALL SELECT 1, term, df, NULL, NULL, NULL, NULL, NULL, NULL FROM {g}terms
                      WHERE term = ANY(%(terms)s::text[])
            UNION ALL SELECT 2, NULL, coalesce(sum(passages), 0), NULL, NULL, NULL, NULL, NULL, NULL FROM {g}segments"""
        self.inputs_and_dense = self.inputs + f"""
            UNION ALL (SELECT 3, NULL, key, NULL, NULL, NULL, NULL, NULL, embedding FROM {g}vectors
                       ORDER BY embedding <#> %(vector)s LIMIT %(depth)s)"""
        self.postings_row = f"SELECT keys, tfs, lengths FROM {g}postings WHERE term = %s AND segment = %s"
        self.vectors = f"SELECT key, embedding FROM {g}vectors WHERE key = ANY(%s)"
        self.records = f"""
            SELECT p.key, p.passage_id, p.doc_id, p.ordinal, p.start_offset, p.end_offset, p.text, p.heading, d.title,
                   d.source, d.metadata, d.length, i.passages, se.spans, se.vectors
            FROM {g}passages p JOIN {s}.documents d ON d.id = p.doc_id JOIN {g}indexed i ON i.doc_id = p.doc_id
            JOIN {g}sentences se ON se.key = p.key
            WHERE p.key = ANY(%s)"""


__all__ = ["PostgresStore", "PostgresSnapshot", "StoreProblem"]
