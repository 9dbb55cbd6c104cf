"""The key table on PostgreSQL: the ``keys`` table of the schema (migration 5), on the primary (kb/stores/keys.py)."""

from __future__ import annotations

import threading
from typing import Any

from kb.settings import Settings, check_schema_name
from kb.stores.keys import KeyInfo, KeyTable


class PostgresKeyTable(KeyTable):
    """One connection of its own (autocommit), opened on first use and again after it is lost."""

    def __init__(self, settings: Settings) -> None:
        self.dsn, self.s = settings.pg_dsn, check_schema_name(settings.pg_schema)
        self._lock = threading.Lock()
        self._conn: Any = None

    def _run(self, sql: str, parameters: Any = ()) -> Any:
        import psycopg

        with self._lock:
            for attempt in (1, 2):
                if self._conn is None or self._conn.closed:
                    self._conn = psycopg.connect(self.dsn, connect_timeout=10, autocommit=True)
                try:
                    cursor = self._conn.execute(sql, parameters)
                    return cursor.rowcount, (cursor.fetchall() if cursor.description else [])
                except psycopg.OperationalError:
                    self._conn.close()
                    self._conn = None
                    if attempt == 2:
                        raise

    def _insert(self, info: KeyInfo, hashed: str) -> bool:
        count, _ = self._run(f"INSERT INTO {self.s}.keys VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                             (info.name, hashed, list(info.groups), info.write, info.created))
        return count > 0

    def keys(self) -> list[tuple[KeyInfo, str]]:
        _, rows = self._run(f"SELECT name, groups, write, created, hash FROM {self.s}.keys ORDER BY name")
        return [(KeyInfo(name, tuple(groups), write, created), hashed) for name, groups, write, created, hashed in rows]

    def revoke(self, name: str) -> bool:
        count, _ = self._run(f"DELETE FROM {self.s}.keys WHERE name = %s", (name,))
        return count > 0

    def _find(self, hashed: str) -> KeyInfo | None:
        _, rows = self._run(f"SELECT name, groups, write, created FROM {self.s}.keys WHERE hash = %s", (hashed,))
        return KeyInfo(rows[0][0], tuple(rows[0][1]), rows[0][2], rows[0][3]) if rows else None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
