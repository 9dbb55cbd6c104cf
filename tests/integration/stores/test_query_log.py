"""Each store's query log counts in SQL what the report needs, and must agree with the same counting in Python
(kb/stores/querylog.py's ``summarize``) on the same rows: SQLite (the FAISS store's) and a real PostgreSQL."""

from __future__ import annotations

import random

import pytest

from kb.insights.log import group_key
from kb.stores.querylog import LoggedClick, LoggedSearch, SqliteQueryLog, summarize

QUESTIONS = ["Oil prices?", "oil prices", "OIL PRICES!", "router password", "Router passwords?", "jet engines",
             "Who is he?", "wing flutter at high speed", "Wing flutter, at high speeds"]
DOCS = [f"doc-{n}" for n in range(8)]
NOW = 1_796_000_000.0


def rows(seed: int = 3) -> tuple[list[LoggedSearch], list[LoggedClick]]:
    rng = random.Random(seed)
    searches = []
    for n in range(300):
        query = rng.choice(QUESTIONS)
        cited = rng.sample(DOCS, rng.randint(0, 5))
        searches.append(LoggedSearch(rng.getrandbits(53), NOW - rng.random() * 10 * 86400, query, group_key(query),
                                     rng.choice(["page", "page", "api"]), "hybrid", rng.random() < 0.6,
                                     [[doc, rng.randrange(100), rng.randrange(100, 200), round(rng.random(), 4)]
                                      for doc in cited[:3]], cited))
    clicks = [LoggedClick(rng.choice(searches).id if rng.random() < 0.9 else 12345, NOW - rng.random() * 10 * 86400,
                          rng.randint(1, 5), rng.choice(DOCS)) for _ in range(80)]
    return searches, clicks


def check(log) -> None:
    searches, clicks = rows()
    log.append(searches, clicks)
    for since, limit in ((NOW - 5 * 86400, 3), (0.0, 20), (NOW + 1, 5)):
        assert log.summary(since, limit) == summarize(searches, clicks, since, limit), (since, limit)


def test_sqlite_counts_as_python_does(tmp_path):
    log = SqliteQueryLog(tmp_path / "queries.sqlite")
    try:
        check(log)
    finally:
        log.close()


def test_postgres_counts_as_python_does(pg_settings):
    import psycopg

    from kb.stores.postgres.querylog import PostgresQueryLog
    from kb.stores.postgres.schema import _v4

    with psycopg.connect(pg_settings.pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {pg_settings.pg_schema}")
        for statement in _v4(pg_settings.pg_schema, {}):  # the log's tables (there are no documents here)
            if ".documents " not in statement:
                conn.execute(statement)
    log = PostgresQueryLog(pg_settings)
    try:
        check(log)
    finally:
        log.close()


@pytest.mark.parametrize("seed", [1, 2])
def test_summaries_of_other_rows_agree_too(tmp_path, seed):
    log = SqliteQueryLog(tmp_path / "queries.sqlite")
    try:
        searches, clicks = rows(seed)
        log.append(searches, clicks)
        assert log.summary(NOW - 3 * 86400, 4) == summarize(searches, clicks, NOW - 3 * 86400, 4)
    finally:
        log.close()
