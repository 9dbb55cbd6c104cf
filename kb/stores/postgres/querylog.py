"""The query log on PostgreSQL: the ``queries`` and ``clicks`` tables of the schema (migration 4), on the primary."""

from __future__ import annotations

from typing import Any, Sequence

from kb.settings import Settings
from kb.stores.postgres.connection import OwnConnection
from kb.stores.querylog import LoggedClick, LoggedSearch, LogSummary, QueryLog, encode, summary_in_sql


class PostgresQueryLog(QueryLog):
    """On a connection of its own (kb/stores/postgres/connection.py)."""

    def __init__(self, settings: Settings) -> None:
        self._db = OwnConnection(settings)
        self.s = self._db.schema

    def append(self, searches: Sequence[LoggedSearch], clicks: Sequence[LoggedClick]) -> None:
        def write(conn: Any) -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(f"INSERT INTO {self.s}.queries VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                                "ON CONFLICT (id) DO NOTHING", [
                                    (s.id, s.at, s.query, s.key, s.origin, s.mode, s.confident, encode(s.nearest),
                                     encode(s.cited)) for s in searches])
                cur.executemany(f"INSERT INTO {self.s}.clicks VALUES (%s, %s, %s, %s)",
                                [(c.query_id, c.at, c.rank, c.doc_id) for c in clicks])

        self._db.run(write)

    def summary(self, since: float, limit: int) -> LogSummary:
        s = self.s
        return self._db.run(lambda conn: summary_in_sql(
            lambda sql, args=(): conn.execute(sql, args).fetchall(), f"{s}.queries", f"{s}.clicks", since, limit,
            day="floor(at / 86400)::bigint",
            cited=f"{s}.queries, jsonb_array_elements_text(cited::jsonb) AS each_cited", cited_value="each_cited", last_nearest="(array_agg(nearest ORDER BY at DESC))[1]",
            unconfident="NOT confident", marker="%s"))

    def prune(self, before: float) -> int:
        def delete(conn: Any) -> int:
            with conn.transaction():
                gone = conn.execute(f"DELETE FROM {self.s}.queries WHERE at < %s", (before,)).rowcount
                return gone + conn.execute(f"DELETE FROM {self.s}.clicks WHERE at < %s", (before,)).rowcount

        return self._db.run(delete)

    def counts(self) -> tuple[int, int]:
        return self._db.run(lambda conn: conn.execute(
            f"SELECT (SELECT count(*) FROM {self.s}.queries), (SELECT count(*) FROM {self.s}.clicks)").fetchone())

    def close(self) -> None:
        self._db.close()
