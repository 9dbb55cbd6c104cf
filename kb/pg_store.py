"""The PostgreSQL store (KB_STORE=postgres): documents, passages, pgvector vectors and BM25 in one database.

Writes go to the primary (KB_PG_DSN), each call one transaction under an advisory lock, so two kb
servers writing at once serialize in the database and lose nothing. Reads go to KB_PG_READ_DSN
(a hot standby) when it is set. A snapshot is one REPEATABLE READ, READ ONLY transaction: the
candidates and the records of one answer come from the same state, and a search never takes a
write lock.

Dense search is pgvector's HNSW index (inner product on unit vectors) with iterative index scans
(pgvector 0.8), so a filtered search still returns k passages whenever k match; filters that
leave at most ``EXACT_FILTER_LIMIT`` passages are searched exactly instead. Keyword search uses
PostgreSQL's full-text machinery: each passage's terms (kb's own stemmed words, so both stores
index the same terms) are a ``tsvector`` with a GIN index, matched with ``@@``; the score is
BM25, computed in SQL from the term counts in the ``tsvector`` and document frequencies and
lengths that every write keeps exact in ``terms`` and ``stats``, so both stores score alike.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from kb.filters import Filters, document_date, metadata_text
from kb.keyword import B, K1
from kb.pg_schema import LATEST, check_name, migrate, version
from kb.prepare import context_of
from kb.sentence_vectors import pack, unpack
from kb.settings import Settings
from kb.store import (Candidates, PassageRecord, PreparedDocument, Snapshot, Store, StoreMismatch, StoreMissing,
                      StoreProblem, StoreUnavailable, StoreUnwritable, StoredDocument, check_dimension, headings_of,
                      stored_headings)

log = logging.getLogger(__name__)

WRITE_LOCK = 0x6B62_0002  # advisory lock key for writes ("kb" 2)
EXACT_FILTER_LIMIT = 20_000  # filtered dense search is exact up to this many allowed passages (as the FAISS store)
POOL_WAIT = 5.0  # seconds to wait for a connection before a request is answered 503
MAX_POSITIONS = 16383  # the largest position a tsvector keeps


def where_is(dsn: str) -> str:
    """host:port/database of a connection string, never its password (for messages)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - a malformed string is reported by the connection itself
        return "the configured database"
    return f"{parts.get('host') or 'localhost'}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"


def tsvector_literal(terms: Sequence[str]) -> str:
    """kb's terms as a tsvector, one position per occurrence (tf is the number of positions)."""
    positions: dict[str, list[int]] = {}
    for number, term in enumerate(terms, 1):
        positions.setdefault(term, []).append(min(number, MAX_POSITIONS))
    return " ".join(f"{_quote(term)}:{','.join(map(str, places))}" for term, places in positions.items())


def tsquery_literal(terms: Sequence[str]) -> str:
    return " | ".join(_quote(term) for term in dict.fromkeys(terms))


def _quote(term: str) -> str:
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


class PostgresStore(Store):
    def __init__(self, settings: Settings) -> None:
        from psycopg_pool import ConnectionPool

        self.settings = settings
        self.schema = s = check_name(settings.pg_schema)
        if not settings.pg_dsn:
            raise StoreMissing("KB_STORE=postgres needs KB_PG_DSN, the primary's connection string")
        self.location = f"PostgreSQL {where_is(settings.pg_dsn)} (schema {s})"
        self._read_location = (f"the PostgreSQL read server at {where_is(settings.pg_read_dsn)} (KB_PG_READ_DSN)"
                               if settings.pg_read_dsn else f"the PostgreSQL primary at {where_is(settings.pg_dsn)}")
        self._sql = _Statements(s)
        common = dict(min_size=1, max_size=settings.pg_pool_size, timeout=POOL_WAIT, open=False,
                      check=ConnectionPool.check_connection, configure=_configure, reset=_reset, kwargs={"connect_timeout": 5})
        self._writes = ConnectionPool(settings.pg_dsn, name="kb-write", **common)
        self._reads = self._writes if not settings.pg_read_dsn else ConnectionPool(
            settings.pg_read_dsn, name="kb-read", **common)
        self._writes.open(wait=False)
        if self._reads is not self._writes:
            self._reads.open(wait=False)
        self._closed = False
        try:
            self._load_meta()
        except BaseException:
            self.close()
            raise

    # ---- opening and creating -------------------------------------------------------------

    def _load_meta(self) -> None:
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
            meta = {key: value for key, value in conn.execute(f"SELECT key, value FROM {self.schema}.meta")}
            conn.rollback()
        self.model, self.dimension, self.config = meta["model"], int(meta["dimension"]), meta["config"]

    @classmethod
    def create(cls, settings: Settings, model: str, dimension: int, config: dict[str, Any]) -> "PostgresStore":
        """`kb db init`: the schema's tables, if they are not there yet, then the store."""
        import psycopg

        try:
            with psycopg.connect(settings.pg_dsn, connect_timeout=10) as conn:
                migrate(conn, check_name(settings.pg_schema), {"model": model, "dimension": dimension,
                                                               "config": config, "hnsw_m": settings.hnsw_m})
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"PostgreSQL at {where_is(settings.pg_dsn)} is unreachable: "
                                   f"{_first_line(exc)}") from None
        return cls(settings)

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
                                   f"{_first_line(exc)}") from None

    def _write(self, action: Callable[[Any], Any]) -> Any:
        """``action(conn)`` in one transaction on the primary, under the write lock; one retry if the
        connection is lost (writes are idempotent: a document is replaced by id)."""
        import psycopg
        from psycopg_pool import PoolTimeout

        for attempt in (1, 2):
            try:
                with self._writes.connection() as conn:
                    with conn.transaction():
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
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
                                           f"unreachable ({_first_line(exc)}): the write was not stored") from None
                log.warning("lost the connection to the primary during a write, retrying once: %s", _first_line(exc))

    # ---- writes ---------------------------------------------------------------------------

    def add(self, documents: Sequence[PreparedDocument]) -> None:
        check_dimension(documents, self.dimension)
        if documents:
            self._write(lambda conn: self._add(conn, documents))

    def _add(self, conn: Any, documents: Sequence[PreparedDocument]) -> None:
        from psycopg.types.json import Jsonb

        q = self._sql
        ids = [d.document.id for d in documents]
        self._delete(conn, ids)
        count = sum(len(d.passages) for d in documents)
        keys = iter(row[0] for row in conn.execute(q.new_keys, (count,)).fetchall())
        with conn.cursor() as cursor:
            with cursor.copy(q.copy_documents) as copy:
                for prepared in documents:
                    d = prepared.document
                    copy.write_row((d.id, d.title, d.source, document_date(d.metadata), Jsonb(d.metadata), d.hash, d.text,
                                    d.passages, d.path, len(d.text)))
            rows = [(next(keys), prepared.document, p) for prepared in documents for p in prepared.passages]
            with cursor.copy(q.copy_passages) as copy:
                for key, document, p in rows:
                    copy.write_row((key, p.passage_id, document.id, p.ordinal, p.start, p.end, p.text, stored_headings(p.headings),
                                    context_of(document.title, p.heading), len(p.terms), tsvector_literal(p.terms)))
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

    def delete(self, doc_ids: Sequence[str]) -> list[str]:
        if not doc_ids:
            return []
        return self._write(lambda conn: self._delete(conn, list(doc_ids), bump=True))

    def _delete(self, conn: Any, doc_ids: list[str], bump: bool = False) -> list[str]:
        q = self._sql
        conn.execute(q.delete_passages, (doc_ids,))
        existed = [row[0] for row in conn.execute(q.delete_documents, (doc_ids,)).fetchall()]
        conn.execute(q.shrink_documents, (len(existed), 1 if bump else 0))
        return existed

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

    def reset(self, model: str, config: dict[str, Any]) -> None:
        """Delete every document, in one transaction, and record the model and settings of the vectors to come
        (a full rebuild on this database then adds everything again)."""
        def apply(conn: Any) -> None:
            conn.execute(f"TRUNCATE {self.schema}.documents, {self.schema}.passages, {self.schema}.vectors, "
                         f"{self.schema}.sentences, {self.schema}.terms, {self.schema}.files")
            conn.execute(f"UPDATE {self.schema}.stats SET seq = seq + 1, documents = 0, passages = 0, total_length = 0")
            for key, value in (("model", model), ("config", config)):
                conn.execute(f"UPDATE {self.schema}.meta SET value = %s WHERE key = %s", (json.dumps(value), key))

        self._write(apply)
        self.model, self.config = model, config

    # ---- reads ----------------------------------------------------------------------------

    def _read(self, sql: str, parameters: Any = None) -> list[tuple]:
        with self._read_connection() as conn:
            rows = conn.execute(sql, parameters).fetchall()
            conn.rollback()
        return rows

    def document(self, doc_id: str) -> StoredDocument | None:
        rows = self._read(f"SELECT id, title, source, hash, text, passages, metadata, path, length FROM "
                          f"{self.schema}.documents WHERE id = %s", (doc_id,))
        return StoredDocument(*rows[0]) if rows else None

    def passage_spans(self, doc_id: str) -> list[tuple[int, int]]:
        return [(start, end) for start, end in self._read(
            f"SELECT start_offset, end_offset FROM {self.schema}.passages WHERE doc_id = %s ORDER BY ordinal", (doc_id,))]

    def documents(self, offset: int, limit: int) -> tuple[int, list[StoredDocument]]:
        with self._read_connection() as conn:
            total = conn.execute(f"SELECT documents FROM {self.schema}.stats").fetchone()[0]
            rows = conn.execute(f"SELECT id, title, source, hash, '', passages, metadata, path, length FROM "
                                f"{self.schema}.documents ORDER BY id LIMIT %s OFFSET %s", (limit, offset)).fetchall()
            conn.rollback()
        return int(total), [StoredDocument(*row) for row in rows]

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
        if self._closed:
            return
        self._closed = True
        self._writes.close()
        if self._reads is not self._writes:
            self._reads.close()


class PostgresSnapshot(Snapshot):
    """One REPEATABLE READ, READ ONLY transaction on a read connection, held until ``close``."""

    def __init__(self, store: PostgresStore) -> None:
        import psycopg
        from psycopg import IsolationLevel
        from psycopg_pool import PoolTimeout

        self.store, self.q = store, store._sql
        for attempt in (1, 2):  # a connection lost since the pool checked it: one more try on a fresh one
            try:
                self._conn = store._reads.getconn()
            except PoolTimeout:
                raise StoreUnavailable(f"{store._read_location} is unreachable (no connection within "
                                       f"{POOL_WAIT:.0f} s); nothing was changed, retry once it answers") from None
            try:
                self._conn.isolation_level, self._conn.read_only = IsolationLevel.REPEATABLE_READ, True
                seq, self._documents, self._passages = self._conn.execute(self.q.stats).fetchone()
                break
            except psycopg.OperationalError as exc:
                store._reads.putconn(self._conn)
                self._conn = None
                if attempt == 2:
                    raise StoreUnavailable(f"lost the connection to {store._read_location}: "
                                           f"{_first_line(exc)}") from None
        self.version = (store.location, int(seq))

    def _run(self, sql: str, parameters: Any = None, binary: bool = False) -> list[tuple]:
        import psycopg

        try:
            return self._conn.execute(sql, parameters, binary=binary).fetchall()
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"lost the connection to {self.store._read_location}: "
                                   f"{_first_line(exc)}") from None

    def candidates(self, query_vector: np.ndarray, query_terms: Sequence[str], depth: int, dense: bool,
                   keyword: bool, filters: Filters = Filters()) -> Candidates:
        settings, q = self.store.settings, self.q
        query_vector = np.asarray(query_vector, dtype=np.float32)
        where, parameters = filter_sql(filters)
        pool: dict[int, None] = {}
        if dense and self._passages:
            if filters and self._run(q.count_allowed.format(where=where), parameters)[0][0] <= EXACT_FILTER_LIMIT:
                rows = self._run(q.exact_dense.format(where=where), [*parameters, query_vector, depth])
            else:
                self._run("SELECT set_config('hnsw.ef_search', %s, true), "
                          "set_config('hnsw.iterative_scan', 'relaxed_order', true)",
                          (str(min(1000, max(settings.hnsw_ef_search, depth))),))
                sql = q.filtered_dense.format(where=where) if filters else q.dense
                rows = self._run(sql, [*parameters, query_vector, depth] if filters else [query_vector, depth])
            pool.update((int(key), None) for key, in rows)
        keyword_scores: dict[int, float] = {}
        if query_terms and self._passages:
            if keyword:
                rows = self._run(q.keyword_top.format(where=where),
                                 [list(query_terms), list(query_terms), tsquery_literal(query_terms), *parameters, depth])
                keyword_scores.update((int(key), float(score)) for key, score in rows)
                pool.update((key, None) for key in keyword_scores)
            rest = [key for key in pool if key not in keyword_scores]
            if rest:
                rows = self._run(q.keyword_of, [list(query_terms), list(query_terms), tsquery_literal(query_terms), rest])
                keyword_scores.update((int(key), float(score)) for key, score in rows)
        if not pool:
            return Candidates.empty(self.store.dimension)
        keys = np.fromiter(pool, dtype=np.int64)
        found = dict(self._run(q.vectors, (keys.tolist(),), binary=True))  # vectors as binary: 4x faster to load
        keep = np.array([key in found for key in keys.tolist()], dtype=bool)
        keys = keys[keep]  # (in one snapshot nothing disappears; kept for safety)
        vectors = np.stack([_array(found[key]) for key in keys.tolist()]) if len(keys) else \
            np.zeros((0, self.store.dimension), np.float32)
        scores = np.asarray([keyword_scores.get(key, 0.0) for key in keys.tolist()], dtype=np.float32)
        return Candidates(keys, vectors @ query_vector, scores, vectors)

    def records(self, keys: Sequence[int]) -> list[PassageRecord]:
        if not keys:
            return []
        rows = self._run(self.q.records, ([int(k) for k in keys],))
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


def filter_sql(filters: Filters) -> tuple[str, list[Any]]:
    """A WHERE clause over the documents (alias ``d``) that keeps what ``filters.matches`` keeps."""
    from psycopg.types.json import Jsonb

    where, parameters = ["true"], []
    if filters.doc_ids:
        where.append("d.id = ANY(%s)")
        parameters.append(list(filters.doc_ids))
    if filters.sources:
        where.append("d.source = ANY(%s)")
        parameters.append(list(filters.sources))
    for key, value in filters.metadata:
        # jsonb containment (the GIN index answers it): the value as a string, or as the JSON scalar it spells.
        options = ["d.metadata @> %s"]
        parameters.append(Jsonb({key: value}))
        scalar = _json_scalar(value)
        if scalar is not None:
            options.append("d.metadata @> %s")
            parameters.append(Jsonb({key: scalar[0]}))
        where.append(f"({' OR '.join(options)})")
    if filters.date_from or filters.date_to:
        where.append("d.date IS NOT NULL")
    if filters.date_from:
        where.append("d.date >= %s")
        parameters.append(filters.date_from)
    if filters.date_to:
        where.append("d.date <= %s")
        parameters.append(filters.date_to)
    return " AND ".join(where), parameters


def _json_scalar(value: str) -> tuple[Any] | None:
    """(x,) when ``value`` is the JSON text of a non-string scalar x (5, 1.5, true, null), as metadata_text writes it."""
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    if isinstance(parsed, (dict, list, str)) or metadata_text(parsed) != value:
        return None
    return (parsed,)


def _array(vector: Any) -> np.ndarray:
    """A pgvector value as float32 (its loader gives a Vector object)."""
    return np.asarray(vector.to_numpy() if hasattr(vector, "to_numpy") else vector, dtype=np.float32)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


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


class _Statements:
    """The SQL of the store, for one schema."""

    def __init__(self, s: str) -> None:
        self.new_keys = f"SELECT nextval('{s}.passage_keys') FROM generate_series(1, %s)"
        self.copy_documents = (f"COPY {s}.documents (id, title, source, date, metadata, hash, text, passages, path, "
                               "length) FROM STDIN")
        self.copy_passages = (f"COPY {s}.passages (key, passage_id, doc_id, ordinal, start_offset, end_offset, text, "
                              "heading, context, length, terms) FROM STDIN")
        self.copy_vectors = f"COPY {s}.vectors (key, embedding) FROM STDIN"
        self.copy_sentences = f"COPY {s}.sentences (key, spans, vectors) FROM STDIN"
        # Document frequencies and corpus statistics move with every passage that comes or goes.
        self.count_new_terms = (
            f"INSERT INTO {s}.terms (term, df) SELECT u.lexeme, count(*) FROM {s}.passages p, unnest(p.terms) u "
            f"WHERE p.doc_id = ANY(%s) GROUP BY u.lexeme ORDER BY u.lexeme "
            f"ON CONFLICT (term) DO UPDATE SET df = {s}.terms.df + excluded.df")
        self.grow_stats = (f"UPDATE {s}.stats SET seq = seq + 1, documents = documents + %s, passages = passages + %s, "
                           "total_length = total_length + %s")
        self.delete_passages = f"""
            WITH gone AS (DELETE FROM {s}.passages WHERE doc_id = ANY(%s) RETURNING terms, length),
                 counts AS (SELECT u.lexeme AS term, count(*) AS n FROM gone, unnest(gone.terms) u GROUP BY 1),
                 lowered AS (UPDATE {s}.terms t SET df = t.df - counts.n FROM counts WHERE t.term = counts.term
                             RETURNING 1)
            UPDATE {s}.stats SET passages = passages - (SELECT count(*) FROM gone),
                                 total_length = total_length - (SELECT coalesce(sum(length), 0) FROM gone)"""
        self.delete_documents = f"DELETE FROM {s}.documents WHERE id = ANY(%s) RETURNING id"
        self.shrink_documents = f"UPDATE {s}.stats SET documents = documents - %s, seq = seq + %s"
        self.stats = f"SELECT seq, documents, passages FROM {s}.stats"
        allowed = f"FROM {s}.vectors v JOIN {s}.passages p ON p.key = v.key JOIN {s}.documents d ON d.id = p.doc_id"
        self.count_allowed = f"SELECT count(*) FROM {s}.passages p JOIN {s}.documents d ON d.id = p.doc_id WHERE {{where}}"
        self.exact_dense = (f"WITH allowed AS MATERIALIZED (SELECT v.key, v.embedding {allowed} WHERE {{where}}) "
                            "SELECT key FROM allowed ORDER BY embedding <#> %s, key LIMIT %s")
        self.dense = f"SELECT key FROM {s}.vectors ORDER BY embedding <#> %s LIMIT %s"
        self.filtered_dense = f"SELECT v.key {allowed} WHERE {{where}} ORDER BY v.embedding <#> %s LIMIT %s"
        # BM25 (Lucene's): idf = ln(1 + (N - df + 0.5) / (df + 0.5)); a repeated query word counts each time.
        # A passage's term counts are read from its tsvector after setweight/ts_filter keep only the query's
        # lexemes (unnesting the whole tsvector cost 70 ms a Cranfield query, almost all of it here).
        bm25 = f"""
            WITH q AS (SELECT term, count(*) AS n FROM unnest(%s::text[]) AS term GROUP BY term),
                 st AS (SELECT passages, total_length / greatest(passages, 1) AS average FROM {s}.stats),
                 w AS (SELECT q.term, q.n * ln(1 + (st.passages - t.df + 0.5) / (t.df + 0.5)) AS idf
                       FROM q JOIN {s}.terms t ON t.term = q.term, st WHERE t.df > 0)
            SELECT p.key, sum(w.idf * x.tf / (x.tf + {K1} * (1 - {B} + {B} * p.length / st.average))) AS score
            FROM {s}.passages p JOIN {s}.documents d ON d.id = p.doc_id CROSS JOIN st
            CROSS JOIN LATERAL (SELECT u.lexeme, cardinality(u.positions)::float8 AS tf
                                FROM unnest(ts_filter(setweight(p.terms, 'A', %s::text[]), '{{{{a}}}}')) u) x
            JOIN w ON w.term = x.lexeme
            WHERE p.terms @@ %s::tsquery AND {{where}} GROUP BY p.key"""
        self.keyword_top = bm25 + " ORDER BY score DESC, p.key LIMIT %s"
        self.keyword_of = bm25.format(where="p.key = ANY(%s)")
        self.vectors = f"SELECT key, embedding FROM {s}.vectors WHERE key = ANY(%s)"
        self.records = f"""
            SELECT p.key, p.passage_id, p.doc_id, p.ordinal, p.start_offset, p.end_offset, p.text, p.heading, d.title,
                   d.source, d.metadata, d.length, d.passages, se.spans, se.vectors
            FROM {s}.passages p JOIN {s}.documents d ON d.id = p.doc_id JOIN {s}.sentences se ON se.key = p.key
            WHERE p.key = ANY(%s)"""


__all__ = ["PostgresStore", "PostgresSnapshot", "StoreProblem"]
