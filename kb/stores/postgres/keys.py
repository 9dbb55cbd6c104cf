"""The key table on PostgreSQL: the ``keys`` table of the schema (migration 5), on the primary (kb/stores/keys.py)."""

from __future__ import annotations

from typing import Any

from kb.settings import Settings
from kb.stores.keys import KeyInfo, KeyTable
from kb.stores.postgres.connection import OwnConnection


class PostgresKeyTable(KeyTable):
    """On a connection of its own (kb/stores/postgres/connection.py)."""

    def __init__(self, settings: Settings) -> None:
        self._db = OwnConnection(settings)
        self.s = self._db.schema

    def _run(self, sql: str, parameters: Any = ()) -> tuple[int, list[tuple]]:
        """(rows affected, rows returned) of one statement."""
        def statement(conn: Any) -> tuple[int, list[tuple]]:
            cursor = conn.execute(sql, parameters)
            return cursor.rowcount, (cursor.fetchall() if cursor.description else [])

        return self._db.run(statement)

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
        self._db.close()
