"""`kb db`: create, upgrade, inspect or drop kb's tables in a PostgreSQL schema, and run a local PostgreSQL.

Each function does one thing and returns what to say; the command line (kb/cli.py) only prints it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from kb.errors import StoreUnavailable
from kb.settings import Settings
from kb.stores.postgres import schema as pg_schema
from kb.stores.postgres.cluster import LocalCluster
from kb.stores.postgres.connection import where_is


def start_local(data: Path, port: int) -> tuple[LocalCluster, str]:
    """A local PostgreSQL with pgvector in ``data`` on 127.0.0.1:``port``, made and started when it is not."""
    cluster = LocalCluster(data, port).ensure_running()
    return cluster, f"PostgreSQL with pgvector in {cluster.data}, listening on 127.0.0.1:{cluster.port}"


def stop_local(data: Path, port: int) -> str:
    cluster = LocalCluster(data, port)
    cluster.stop()
    return f"stopped the PostgreSQL in {cluster.data}"


def _connected(settings: Settings, action: Callable[[Any], str]) -> str:
    import psycopg

    where = where_is(settings.pg_dsn)
    try:
        with psycopg.connect(settings.pg_dsn, connect_timeout=10) as conn:
            return action(conn)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreUnavailable(f"PostgreSQL at {where} is unreachable or refused: {first}") from None


def status(settings: Settings) -> str:
    schema = settings.pg_schema
    return _connected(settings, lambda conn: f"schema {schema} at {where_is(settings.pg_dsn)}: version "
                      f"{pg_schema.version(conn, schema)} (this kb: {pg_schema.LATEST})")


def migrate(settings: Settings, meta: Callable[[], dict[str, Any]] | None = None) -> str:
    """Apply the missing schema versions (``meta()``, the model's name, dimension and settings, makes a new one)."""
    schema = settings.pg_schema

    def apply(conn: Any) -> str:
        first = meta() if meta is not None and pg_schema.version(conn, schema) == 0 else None
        applied = pg_schema.migrate(conn, schema, first)
        done = f"applied schema version(s) {', '.join(map(str, applied))}" if applied else "already up to date"
        return f"schema {schema} at {where_is(settings.pg_dsn)}: {done} (version {pg_schema.LATEST})"

    return _connected(settings, apply)


def reset(settings: Settings) -> str:
    """Drop the schema and every document in it (the record too: there is no undo)."""
    schema = settings.pg_schema

    def drop(conn: Any) -> str:
        pg_schema.drop(conn, schema)
        return f"dropped schema {schema} at {where_is(settings.pg_dsn)}"

    return _connected(settings, drop)
