"""A connection of its own to the primary (autocommit), for the record's small side tables (the query log, the key
table): opened on first use, and once more when it was lost, so a restarted server costs one retry, not an error."""

from __future__ import annotations

import threading
from typing import Any, Callable, TypeVar

from kb.settings import Settings, check_schema_name

T = TypeVar("T")


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
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self.dsn, connect_timeout=10, autocommit=True)
                try:
                    return work(self._conn)
                except psycopg.OperationalError:
                    self._conn.close()
                    self._conn = None
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
