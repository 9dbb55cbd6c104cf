"""The query log's rows and where they are kept: with the record, never in the disposable index.

Each store says where (``Store.query_log``): the FAISS store in SQLite beside its record (corpus/.kb/queries.sqlite,
this module), PostgreSQL in tables of its schema (kb/stores/postgres/querylog.py). What is logged, and when, is
kb/insights/log.py's; the reports are kb/insights/report.py's. No address and no key is ever a column.
"""

from __future__ import annotations

import abc
import contextlib
import json
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence


@dataclass
class LoggedSearch:
    id: int  # random, 53 bits (a JavaScript number): the page's clicks name it
    at: float  # UTC, seconds since the epoch
    query: str  # as asked
    key: str  # its group: kb/insights/log.py's group_key
    origin: str  # page or api
    mode: str
    confident: bool
    nearest: list = field(default_factory=list)  # the first few results: [doc_id, start, end, score]
    cited: list = field(default_factory=list)  # the documents of all its results, each once


@dataclass
class LoggedClick:
    query_id: int
    at: float
    rank: int
    doc_id: str


@dataclass
class LogSummary:
    """What a report needs from the searches made since some time, counted where they are kept (SQL), so that a
    report over a million rows does not read them all. Groups are by ``key``; each list is at most ``limit`` long."""
    searches: int = 0
    unanswered: int = 0
    groups: int = 0
    top: list = field(default_factory=list)  # (key, searches, unanswered, last at), most searched first
    missed: list = field(default_factory=list)  # (key, unanswered searches, last at, nearest of the last), most first
    wordings: dict = field(default_factory=dict)  # key of top or missed -> [(query, searches)], most, then first, first
    days: dict = field(default_factory=dict)  # UTC day number (at // 86400) -> (searches, unanswered)
    cited: dict = field(default_factory=dict)  # doc id -> searches it was among the results of
    page_searches: int = 0
    clicked_searches: int = 0  # page searches after which a result was opened
    clicks: int = 0  # of page searches
    rank_sum: int = 0  # of those clicks


def summarize(searches: Sequence[LoggedSearch], clicks: Sequence[LoggedClick], since: float, limit: int) -> LogSummary:
    """The summary in Python, from rows: what each store's SQL must agree with (tests compare them)."""
    from collections import Counter, defaultdict

    rows = sorted((s for s in searches if s.at >= since), key=lambda s: s.at)
    groups: dict[str, list[LoggedSearch]] = defaultdict(list)
    for row in rows:
        groups[row.key].append(row)
    order = sorted(groups, key=lambda key: (-len(groups[key]), -groups[key][-1].at, key))
    top = [(key, len(groups[key]), sum(not r.confident for r in groups[key]), groups[key][-1].at)
           for key in order[:limit]]
    missed_groups = {key: [r for r in group if not r.confident] for key, group in groups.items()}
    missed_keys = sorted((key for key, group in missed_groups.items() if group),
                         key=lambda key: (-len(missed_groups[key]), -missed_groups[key][-1].at, key))[:limit]
    missed = [(key, len(missed_groups[key]), missed_groups[key][-1].at, missed_groups[key][-1].nearest)
              for key in missed_keys]
    wordings = {}
    for key in {key for key, *_ in top} | set(missed_keys):
        counts = Counter(r.query for r in groups[key])  # Counter keeps first-seen order among equals
        wordings[key] = counts.most_common()
    days: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        day = days[int(row.at // 86400)]
        day[0] += 1
        day[1] += not row.confident
    page = {r.id for r in rows if r.origin == "page"}
    page_clicks = [c for c in clicks if c.at >= since and c.query_id in page]
    return LogSummary(
        searches=len(rows), unanswered=sum(not r.confident for r in rows), groups=len(groups), top=top,
        missed=missed, wordings=wordings, days={d: tuple(v) for d, v in days.items()},
        cited=dict(Counter(doc_id for r in rows for doc_id in r.cited)), page_searches=len(page),
        clicked_searches=len({c.query_id for c in page_clicks}), clicks=len(page_clicks),
        rank_sum=sum(c.rank for c in page_clicks))


class QueryLog(abc.ABC):
    @abc.abstractmethod
    def append(self, searches: Sequence[LoggedSearch], clicks: Sequence[LoggedClick]) -> None:
        """Keep these rows, in one transaction."""

    @abc.abstractmethod
    def summary(self, since: float, limit: int) -> LogSummary:
        """What a report needs of the searches made at or after ``since`` (``summarize`` says what each field is)."""

    @abc.abstractmethod
    def prune(self, before: float) -> int:
        """Delete the rows older than ``before``; how many went."""

    @abc.abstractmethod
    def counts(self) -> tuple[int, int]:
        """(searches, clicks) kept."""

    def close(self) -> None:
        pass


def encode(values: list) -> str:
    return json.dumps(values, separators=(",", ":"))


class SqliteQueryLog(QueryLog):
    """The log in a SQLite file of its own (WAL), opened by whoever writes or reads it."""

    SCHEMA = (
        "CREATE TABLE IF NOT EXISTS searches (id INTEGER PRIMARY KEY, at REAL NOT NULL, query TEXT NOT NULL, "
        "key TEXT NOT NULL, origin TEXT NOT NULL, mode TEXT NOT NULL, confident INTEGER NOT NULL, "
        "nearest TEXT NOT NULL, cited TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS searches_at ON searches (at)",
        "CREATE TABLE IF NOT EXISTS clicks (query_id INTEGER NOT NULL, at REAL NOT NULL, rank INTEGER NOT NULL, "
        "doc_id TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS clicks_at ON clicks (at)",
    )

    def __init__(self, path: Path, make_folder: Callable[[], Any] | None = None) -> None:
        self.path = Path(path)
        self._make_folder = make_folder or (lambda: self.path.parent.mkdir(parents=True, exist_ok=True))
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._make_folder()
            conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # a log: a power cut may lose its last second, never the record
            for statement in self.SCHEMA:
                conn.execute(statement)
            conn.commit()
            self._conn = conn
        return self._conn

    def append(self, searches: Sequence[LoggedSearch], clicks: Sequence[LoggedClick]) -> None:
        with self._lock, self._db() as conn:
            conn.executemany("INSERT OR IGNORE INTO searches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
                (s.id, s.at, s.query, s.key, s.origin, s.mode, int(s.confident), encode(s.nearest), encode(s.cited))
                for s in searches])
            conn.executemany("INSERT INTO clicks VALUES (?, ?, ?, ?)",
                             [(c.query_id, c.at, c.rank, c.doc_id) for c in clicks])

    def summary(self, since: float, limit: int) -> LogSummary:
        with self._lock:
            db = self._db()
            return summary_in_sql(
                lambda sql, args=(): db.execute(sql, args).fetchall(), "searches", "clicks", since, limit,
                day="CAST(at / 86400 AS INTEGER)", cited="searches, json_each(searches.cited) AS each_cited",
                cited_value="each_cited.value",
                last_nearest="nearest",  # SQLite: a bare column beside max() comes from the row that has the max
                unconfident="confident = 0", marker="?", scan="+")

    def prune(self, before: float) -> int:
        with self._lock, self._db() as conn:
            gone = conn.execute("DELETE FROM searches WHERE at < ?", (before,)).rowcount
            return gone + conn.execute("DELETE FROM clicks WHERE at < ?", (before,)).rowcount

    def counts(self) -> tuple[int, int]:
        with self._lock:
            db = self._db()
            return (db.execute("SELECT count(*) FROM searches").fetchone()[0],
                    db.execute("SELECT count(*) FROM clicks").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.close()
                self._conn = None


def summary_in_sql(query, searches: str, clicks: str, since: float, limit: int, *, day: str, cited: str,
                   cited_value: str, last_nearest: str, unconfident: str, marker: str,
                   scan: str = "") -> LogSummary:
    """``LogSummary`` by SQL that both stores speak, with their own spelling of the few parts that differ.

    ``scan``: "+" makes SQLite read the table through rather than through the index on ``at`` (a report's window
    is most of the table, where the index costs a lookup a row: 3.5x slower, measured at 200,000 rows).
    """
    m = marker
    searches_n, unanswered, groups = query(
        f"SELECT count(*), count(*) FILTER (WHERE {unconfident}), count(DISTINCT key) FROM {searches} "
        f"WHERE {scan}at >= {m}", (since,))[0]
    top = query(f"SELECT key, count(*), count(*) FILTER (WHERE {unconfident}), max(at) FROM {searches} "
                f"WHERE {scan}at >= {m} GROUP BY key ORDER BY count(*) DESC, max(at) DESC, key LIMIT {int(limit)}",
                (since,))
    missed = query(f"SELECT key, count(*), max(at), {last_nearest} FROM {searches} "
                   f"WHERE {scan}at >= {m} AND {unconfident} "
                   f"GROUP BY key ORDER BY count(*) DESC, max(at) DESC, key LIMIT {int(limit)}", (since,))
    keys = sorted({row[0] for row in top} | {row[0] for row in missed})
    wordings: dict = {key: [] for key in keys}
    if keys:
        marks = ", ".join([m] * len(keys))
        for key, wording, count, _ in query(
                f"SELECT key, query, count(*), min(at) FROM {searches} WHERE {scan}at >= {m} AND key IN ({marks}) "
                f"GROUP BY key, query ORDER BY key, count(*) DESC, min(at)", (since, *keys)):
            wordings[key].append((wording, count))
    days = {int(d): (n, u) for d, n, u in query(
        f"SELECT {day} AS d, count(*), count(*) FILTER (WHERE {unconfident}) FROM {searches} WHERE {scan}at >= {m} "
        f"GROUP BY d", (since,))}
    cited_counts = dict(query(
        f"SELECT {cited_value}, count(*) FROM {cited} WHERE {scan}at >= {m} GROUP BY {cited_value}", (since,)))
    page = query(f"SELECT count(*) FROM {searches} WHERE {scan}at >= {m} AND origin = 'page'", (since,))[0][0]
    clicked, click_count, rank_sum = query(
        f"SELECT count(DISTINCT c.query_id), count(*), coalesce(sum(c.rank), 0) FROM {clicks} AS c "
        f"JOIN {searches} AS s ON s.id = c.query_id "
        f"WHERE {scan}c.at >= {m} AND {scan}s.at >= {m} AND s.origin = 'page'",
        (since, since))[0]
    return LogSummary(
        searches=searches_n, unanswered=unanswered or 0, groups=groups, top=[tuple(row) for row in top],
        missed=[(key, n, at, json.loads(nearest) if isinstance(nearest, str) else nearest) for key, n, at, nearest
                in missed],
        wordings=wordings, days=days, cited=cited_counts, page_searches=page, clicked_searches=clicked,
        clicks=click_count, rank_sum=int(rank_sum))
