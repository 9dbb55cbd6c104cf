"""The PostgreSQL schema, as numbered migrations: `kb db init` and `kb db migrate` apply the missing ones.

Every table lives in one PostgreSQL schema (KB_PG_SCHEMA, ``kb`` by default), so one database can
hold several knowledge bases (`kb eval` keeps its datasets apart this way). Each migration runs in
its own transaction, under an advisory lock, and records its number in ``schema_version``: running
either command twice, or from two machines at once, changes nothing the second time. A server
checks the version at start and names the command to run when it is behind.

The vector column's dimension comes from the model, so the first migration needs it; it is
recorded in ``meta`` with the model's name and the chunk settings the vectors depend on.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from kb.errors import SchemaBehind
from kb.settings import check_schema_name

MIGRATION_LOCK = 0x6B62_0001  # advisory lock key for migrations ("kb" 1)


def _v1(s: str, meta: dict[str, Any]) -> list[str]:
    dimension = int(meta["dimension"])
    return [
        "CREATE EXTENSION IF NOT EXISTS vector",
        f"CREATE SCHEMA IF NOT EXISTS {s}",
        f"CREATE TABLE {s}.meta (key text PRIMARY KEY, value jsonb NOT NULL)",
        # One row: the change counter (a snapshot's version) and the BM25 corpus statistics.
        f"""CREATE TABLE {s}.stats (one boolean PRIMARY KEY DEFAULT true CHECK (one), seq bigint NOT NULL,
            documents bigint NOT NULL, passages bigint NOT NULL, total_length double precision NOT NULL)""",
        f"INSERT INTO {s}.stats VALUES (true, 0, 0, 0, 0)",
        f"""CREATE TABLE {s}.documents (
            id text PRIMARY KEY, title text NOT NULL, source text NOT NULL,
            date text,  -- metadata.date's YYYY-MM-DD, when it has one (what date filters compare)
            metadata jsonb NOT NULL, hash text NOT NULL, text text NOT NULL, passages integer NOT NULL,
            path text NOT NULL DEFAULT '', length integer NOT NULL)""",
        f"CREATE INDEX ON {s}.documents (source)",
        f"CREATE INDEX ON {s}.documents (date)",
        f"CREATE INDEX ON {s}.documents (path)",
        f"CREATE INDEX ON {s}.documents USING gin (metadata jsonb_path_ops)",
        f"""CREATE TABLE {s}.passages (
            key bigint PRIMARY KEY, passage_id text NOT NULL,
            doc_id text NOT NULL REFERENCES {s}.documents (id) ON DELETE CASCADE,
            ordinal integer NOT NULL, start_offset integer NOT NULL, end_offset integer NOT NULL,
            text text NOT NULL, heading text NOT NULL, context text NOT NULL,
            length real NOT NULL,  -- keyword terms in the passage (BM25's document length)
            terms tsvector NOT NULL)  -- kb's own stemmed terms, with positions (tf = how many)""",
        f"CREATE SEQUENCE {s}.passage_keys OWNED BY {s}.passages.key",
        f"CREATE INDEX ON {s}.passages (doc_id)",
        f"CREATE INDEX ON {s}.passages USING gin (terms)",
        f"""CREATE TABLE {s}.vectors (key bigint PRIMARY KEY REFERENCES {s}.passages (key) ON DELETE CASCADE,
            embedding vector({dimension}) NOT NULL)""",
        f"CREATE INDEX ON {s}.vectors USING hnsw (embedding vector_ip_ops) WITH (m = {int(meta.get('hnsw_m', 16))}, "
        "ef_construction = 64)",
        f"""CREATE TABLE {s}.sentences (key bigint PRIMARY KEY REFERENCES {s}.passages (key) ON DELETE CASCADE,
            spans bytea NOT NULL,  -- int64 [sentences, 2], little-endian
            vectors bytea NOT NULL)  -- float16 [sentences, dimension]: late-chunked, for highlights""",
        # BM25's document frequencies of the live passages, kept exact by every write.
        f"CREATE TABLE {s}.terms (term text PRIMARY KEY, df bigint NOT NULL)",
        f"CREATE TABLE {s}.files (path text PRIMARY KEY, size bigint NOT NULL, mtime_ns bigint NOT NULL)",
    ]


def _v2(s: str, meta: dict[str, Any]) -> list[str]:
    """The documents table becomes the record; everything derived from it moves into generation 1.

    A re-index (another model or chunking, `kb build --force`) builds generation N+1 beside the live one
    and switches in one transaction (kb/stores/postgres/store.py): the record is never emptied. The derived tables lose
    their foreign key to the record (a document's rows go with it in the same transaction, generation by
    generation), and the passage key sequence is shared by all generations.
    """
    return [
        f"""CREATE TABLE {s}.generations (number integer PRIMARY KEY, model text NOT NULL, dimension integer NOT NULL,
            config jsonb NOT NULL, state text NOT NULL CHECK (state IN ('building', 'live', 'retired')),
            created_at timestamptz NOT NULL DEFAULT now())""",
        f"""INSERT INTO {s}.generations (number, model, dimension, config, state)
            SELECT 1, (SELECT value #>> '{{}}' FROM {s}.meta WHERE key = 'model'),
                   (SELECT (value #>> '{{}}')::integer FROM {s}.meta WHERE key = 'dimension'),
                   (SELECT value FROM {s}.meta WHERE key = 'config'), 'live'""",
        f"DELETE FROM {s}.meta WHERE key IN ('model', 'dimension', 'config')",
        f"ALTER TABLE {s}.stats DROP CONSTRAINT stats_pkey, DROP COLUMN one, ADD COLUMN generation integer",
        f"UPDATE {s}.stats SET generation = 1",
        f"ALTER TABLE {s}.stats ADD PRIMARY KEY (generation)",
        f"CREATE TABLE {s}.g1_indexed AS SELECT id AS doc_id, hash, passages FROM {s}.documents",
        f"ALTER TABLE {s}.g1_indexed ADD PRIMARY KEY (doc_id)",
        f"ALTER TABLE {s}.documents DROP COLUMN passages, ADD COLUMN original bytea, "
        "ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now()",
        f"ALTER TABLE {s}.passages DROP CONSTRAINT IF EXISTS passages_doc_id_fkey",
        f"ALTER SEQUENCE {s}.passage_keys OWNED BY NONE",
        *(f"ALTER TABLE {s}.{table} RENAME TO g1_{table}" for table in ("passages", "vectors", "sentences", "terms")),
    ]


def generation_tables(s: str, number: int, dimension: int) -> list[str]:
    """The derived tables of one generation (what _v1 made and _v2 renamed into generation 1, with _v3's
    postings)."""
    g = f"{s}.g{number}_"
    return [
        f"CREATE TABLE {g}indexed (doc_id text PRIMARY KEY, hash text NOT NULL, passages integer NOT NULL)",
        f"""CREATE TABLE {g}passages (key bigint PRIMARY KEY, passage_id text NOT NULL, doc_id text NOT NULL,
            ordinal integer NOT NULL, start_offset integer NOT NULL, end_offset integer NOT NULL, text text NOT NULL,
            heading text NOT NULL, context text NOT NULL, length real NOT NULL, terms tsvector NOT NULL)""",
        f"CREATE INDEX ON {g}passages (doc_id)",
        f"""CREATE TABLE {g}vectors (key bigint PRIMARY KEY REFERENCES {g}passages (key) ON DELETE CASCADE,
            embedding vector({int(dimension)}) NOT NULL)""",
        f"""CREATE TABLE {g}sentences (key bigint PRIMARY KEY REFERENCES {g}passages (key) ON DELETE CASCADE,
            spans bytea NOT NULL, vectors bytea NOT NULL)""",
        f"CREATE TABLE {g}terms (term text PRIMARY KEY, df bigint NOT NULL)",
        *postings_tables(s, number),
    ]


def postings_tables(s: str, number: int) -> list[str]:
    """A generation's keyword postings, in segments (kb/stores/postgres/postings.py).

    A segment covers the passages whose keys lie in [lo, hi]: a write makes one, merges join neighbours. Its
    postings are one row per term: the passage keys in order, the term's count in each and each passage's
    length, as big-endian int8, int2 and float4 arrays (``bound``: the highest BM25 term weight among them,
    with the average length ``reference``). ``passages`` counts those the segment held when it was made;
    deleted ones stay in its postings until a merge.
    """
    g = f"{s}.g{number}_"
    return [
        f"""CREATE TABLE {g}segments (id bigint PRIMARY KEY, lo bigint NOT NULL, hi bigint NOT NULL,
            passages integer NOT NULL, reference double precision NOT NULL)""",
        f"""CREATE TABLE {g}postings (term text NOT NULL, segment bigint NOT NULL, count integer NOT NULL,
            bound real NOT NULL, keys bytea NOT NULL, tfs bytea NOT NULL, lengths bytea NOT NULL,
            PRIMARY KEY (term, segment))""",
        f"CREATE INDEX ON {g}postings (segment)",
    ]


def _v3(s: str, meta: dict[str, Any]) -> list[Any]:
    """Keyword search reads postings segments instead of scoring every matching passage's tsvector in SQL.

    Every generation gets its postings tables, filled with one segment of all its passages; the GIN index on
    the tsvectors goes (nothing searches them any more; they stay, as the terms a delete takes back).
    """
    def add_postings(conn: Any) -> None:
        from kb.stores.postgres.postings import SEGMENT_IDS, fill_segment

        conn.execute(f"CREATE SEQUENCE IF NOT EXISTS {s}.{SEGMENT_IDS}")
        for (number,) in conn.execute(f"SELECT number FROM {s}.generations ORDER BY number").fetchall():
            for statement in postings_tables(s, number):
                conn.execute(statement)
            gin = conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = %s AND "
                               "indexdef LIKE '%%USING gin (terms)%%'", (s, f"g{number}_passages")).fetchall()
            for (name,) in gin:
                conn.execute(f'DROP INDEX {s}."{name}"')
            span = conn.execute(f"SELECT min(key), max(key) FROM {s}.g{number}_passages").fetchone()
            if span[0] is not None:
                fill_segment(conn, s, number, span[0], span[1])

    return [add_postings]


def _v4(s: str, meta: dict[str, Any]) -> list[Any]:
    """The query log (kb/stores/postgres/querylog.py): with the record, never in a generation; and an index on
    when documents changed, for /metrics' index age (a max() that reads one index entry, not the table)."""
    return [
        f"CREATE INDEX ON {s}.documents (updated_at)",
        f"""CREATE TABLE {s}.queries (id bigint PRIMARY KEY, at double precision NOT NULL, query text NOT NULL,
            key text NOT NULL, origin text NOT NULL, mode text NOT NULL, confident boolean NOT NULL,
            nearest text NOT NULL, cited text NOT NULL)""",
        f"CREATE INDEX ON {s}.queries (at)",
        f"""CREATE TABLE {s}.clicks (query_id bigint NOT NULL, at double precision NOT NULL, rank integer NOT NULL,
            doc_id text NOT NULL)""",
        f"CREATE INDEX ON {s}.clicks (at)",
    ]


def _v5(s: str, meta: dict[str, Any]) -> list[Any]:
    """Who may read what: each document's access groups ('{}': public), the distinct access lists with how many
    documents have each (so that whether anything is hidden from a caller is a look at a few rows, not at every
    document), and the keys that name callers and their groups (kb/stores/keys.py), stored hashed. All are the
    record's: never in a generation."""
    return [
        f"ALTER TABLE {s}.documents ADD COLUMN access text[] NOT NULL DEFAULT '{{}}'",
        f"CREATE INDEX ON {s}.documents USING gin (access) WHERE access <> '{{}}'",
        f"CREATE INDEX ON {s}.documents (id) WHERE access = '{{}}'",
        f"CREATE TABLE {s}.access_sets (access text[] PRIMARY KEY, documents bigint NOT NULL)",
        f"INSERT INTO {s}.access_sets SELECT access, count(*) FROM {s}.documents GROUP BY access",
        f"""CREATE TABLE {s}.keys (name text PRIMARY KEY, hash text NOT NULL UNIQUE, groups text[] NOT NULL,
            write boolean NOT NULL, created double precision NOT NULL)""",
    ]


def generation_vector_index(s: str, number: int, hnsw_m: int) -> str:
    """The HNSW index of a generation's vectors, made once its first fill is loaded (faster than row by row)."""
    return (f"CREATE INDEX IF NOT EXISTS g{number}_vectors_hnsw ON {s}.g{number}_vectors USING hnsw "
            f"(embedding vector_ip_ops) WITH (m = {int(hnsw_m)}, ef_construction = 64)")


GENERATION_TABLES = ("indexed", "passages", "vectors", "sentences", "terms", "segments", "postings")

MIGRATIONS: list[Callable[[str, dict[str, Any]], list[Any]]] = [_v1, _v2, _v3, _v4, _v5]
LATEST = len(MIGRATIONS)


def version(conn: Any, schema: str) -> int:
    """The schema's migration number (0: no kb tables yet)."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.schema_version",)).fetchone()
    if not row[0]:
        return 0
    return int(conn.execute(f"SELECT coalesce(max(version), 0) FROM {schema}.schema_version").fetchone()[0])


def migrate(conn: Any, schema: str, meta: dict[str, Any] | None = None) -> list[int]:
    """Apply every missing migration, each in its own transaction; the numbers applied (none: up to date).

    ``meta`` (model, dimension, config) is needed only when the schema is new.
    """
    check_schema_name(schema)
    applied = []
    conn.rollback()  # whatever was read before (the version, say) ends here: each migration is its own transaction
    conn.autocommit = True  # so that conn.transaction() below is a real transaction, not a savepoint
    for number in range(1, LATEST + 1):
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            current = version(conn, schema)
            if current >= number:
                continue
            if number == 1:
                if meta is None:
                    raise SchemaBehind(f"schema {schema!r} does not exist yet: run `kb db init`")
                conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
                conn.execute(f"CREATE TABLE {schema}.schema_version (version integer PRIMARY KEY, "
                             "applied_at timestamptz NOT NULL DEFAULT now())")
            for statement in MIGRATIONS[number - 1](schema, meta or {}):
                statement(conn) if callable(statement) else conn.execute(statement)
            if number == 1:
                for key in ("model", "dimension", "config"):
                    conn.execute(f"INSERT INTO {schema}.meta VALUES (%s, %s)", (key, json.dumps(meta[key])))
            conn.execute(f"INSERT INTO {schema}.schema_version (version) VALUES (%s)", (number,))
            applied.append(number)
    return applied


def drop(conn: Any, schema: str) -> None:
    """Remove the schema and everything in it (`kb db reset`)."""
    check_schema_name(schema)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
