"""A connection of its own to the primary (autocommit), for the record's small side tables (the query log, the key
table): opened on first use, and once more when it was lost, so a restarted server costs one retry, not an error;
a primary still unreachable is StoreUnavailable (503), as for the store's own connections. Also the two helpers
every message about a connection uses."""

from __future__ import annotations

import threading
from typing import Any, Callable, TypeVar

from kb.errors import StoreUnavailable
from kb.settings import Settings, check_schema_name

T = TypeVar("T")


def where_is(dsn: str) -> str:
    """host:port/database of a connection string, never its password (for messages)."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - a malformed string is reported by the connection itself
        return "the configured database"
    return f"{parts.get('host') or 'localhost'}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class OwnConnection:
    def __init__(self, settings: Settings) -> None:
        self.dsn, self.schema = settings.pg_dsn, check_schema_name(settings.pg_schema)
        self._lock = threading.Lock()
        self._conn: Any = None

    def run(self, work: Callable[[Any], T]) -> T:
        """``work(connection)``, one caller at a time; again on a fresh connection if the first one was lost."""
        import psycopg

        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = psycopg.connect(self.dsn, connect_timeout=10, autocommit=True)
                    return work(self._conn)
                except psycopg.OperationalError as exc:
                    if self._conn is not None:
                        self._conn.close()
                        self._conn = None
                    if attempt == 2:
                        raise StoreUnavailable(f"the PostgreSQL primary at {where_is(self.dsn)} is unreachable: "
                                               f"{first_line(exc)}") from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
