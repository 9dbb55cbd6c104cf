"""The PostgreSQL store's keyword postings: segments, merged as they pile up, and a cache of what searches read.

Scoring BM25 in SQL (every matching passage's tsvector, row by row) cost 580 ms a query at 100,000 passages
(benchmarks/README.md). Here the database keeps postings the way search engines do and kb ranks them with
kb/stores/bm25.py, as the FAISS store does:

- **Segments** (Lucene's design): a write makes one segment of its passages, with one row per term that holds
  the passage keys in order, the term's count in each and each passage's length, as arrays
  (kb/stores/postgres/schema.py, ``postings_tables``). A segment never changes; a deleted passage's postings
  stay in it (the caller asks for a few spare results and drops the deleted ones) until a merge.
- **Merges** (Lucene's LogMergePolicy): ``MERGE_FACTOR`` neighbouring segments of one size level become one,
  built again from the live passages, in one transaction that readers see whole or not at all. A segment that
  has lost a large share of its passages is rebuilt alone. Merges run in a thread of the writing process,
  one at a time per generation (an advisory lock), so writes never wait for them.
- **The cache**: a segment's rows never change, so a search keeps the runs it decoded (by schema,
  generation, segment and term, up to KB_PG_POSTINGS_CACHE_MB) and asks the database only for the rows
  it does not hold, in the same statement that reads the document frequencies and the dense candidates.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from math import floor, log10
from typing import Any, Sequence

import numpy as np

from kb.documents.terms import K1, B
from kb.stores.bm25 import Run

log = logging.getLogger(__name__)

SEGMENT_IDS = "segment_ids"  # the sequence that numbers segments (shared by generations)
MERGE_FACTOR = 10  # neighbouring segments of one size level merged at once
MAX_MERGED = 250_000  # passages: merges never make a larger segment
DEAD_SHARE = 0.25  # a segment whose deleted passages pass this share is rebuilt alone
MERGE_LOCK = 0x6B62_0003  # advisory lock key for merges ("kb" 3), with the generation


def fill_segment(conn: Any, s: str, number: int, lo: int, hi: int) -> int | None:
    """A new segment of generation ``number``'s passages with keys in [lo, hi] and its postings, in the caller's
    transaction; its id (None when no passage lies there)."""
    g = f"{s}.g{number}_"
    count = conn.execute(f"SELECT count(*) FROM {g}passages WHERE key BETWEEN %s AND %s", (lo, hi)).fetchone()[0]
    if not count:
        return None
    average = conn.execute(f"SELECT total_length / greatest(passages, 1) FROM {s}.stats WHERE generation = %s",
                           (number,)).fetchone()[0]
    reference = float(average) if average and average > 0 else 1.0
    segment = conn.execute(f"SELECT nextval('{s}.{SEGMENT_IDS}')").fetchone()[0]
    conn.execute(f"INSERT INTO {g}segments (id, lo, hi, passages, reference) VALUES (%s, %s, %s, %s, %s)",
                 (segment, lo, hi, count, reference))
    # One row per term; the three arrays in key order. tf is the lexeme's positions in the tsvector.
    conn.execute(f"""
        INSERT INTO {g}postings (term, segment, count, bound, keys, tfs, lengths)
        SELECT u.lexeme, %(segment)s, count(*),
               max(x.tf / (x.tf + {K1} * (1 - {B} + {B} * p.length / %(reference)s))),
               string_agg(int8send(p.key), ''::bytea ORDER BY p.key),
               string_agg(int2send(x.tf::int2), ''::bytea ORDER BY p.key),
               string_agg(float4send(p.length), ''::bytea ORDER BY p.key)
        FROM {g}passages p CROSS JOIN LATERAL unnest(p.terms) u
             CROSS JOIN LATERAL (SELECT cardinality(u.positions)::float8 AS tf) x
        WHERE p.key BETWEEN %(lo)s AND %(hi)s
        GROUP BY u.lexeme""", {"segment": segment, "reference": reference, "lo": lo, "hi": hi})
    return int(segment)


def level(passages: int) -> int:
    return floor(log10(max(passages, 1)))


def plan_merge(segments: Sequence[tuple[int, int, int, int]]) -> list[int]:
    """Ids of neighbouring segments to merge next: the first ``MERGE_FACTOR`` neighbours of one size level
    whose merge stays within ``MAX_MERGED`` passages (none: nothing to merge). ``segments``: (id, lo, hi,
    passages) in key order."""
    run: list[tuple[int, int, int, int]] = []
    for segment in segments:
        if run and level(segment[3]) != level(run[-1][3]):
            run = []
        run.append(segment)
        if len(run) == MERGE_FACTOR:
            if sum(s[3] for s in run) <= MAX_MERGED:
                return [s[0] for s in run]
            run = run[1:]
    return []


def plan_cleanup(live_counts: Sequence[tuple[int, int, int]]) -> list[int]:
    """The segment with the largest share of deleted passages, when that share passes ``DEAD_SHARE``.
    ``live_counts``: (id, passages when made, live passages now)."""
    worst = max(live_counts, key=lambda row: (row[1] - row[2]) / max(row[1], 1), default=None)
    if worst is None or (worst[1] - worst[2]) <= DEAD_SHARE * worst[1]:
        return []
    return [worst[0]]


def merge(conn: Any, s: str, number: int, ids: list[int]) -> None:
    """Replace segments ``ids`` (neighbours) by one built from their live passages, in the caller's transaction."""
    g = f"{s}.g{number}_"
    lo, hi = conn.execute(f"SELECT min(lo), max(hi) FROM {g}segments WHERE id = ANY(%s)", (ids,)).fetchone()
    conn.execute(f"DELETE FROM {g}postings WHERE segment = ANY(%s)", (ids,))
    conn.execute(f"DELETE FROM {g}segments WHERE id = ANY(%s)", (ids,))
    fill_segment(conn, s, number, lo, hi)


def merge_once(conn: Any, s: str, number: int) -> bool:
    """One merge of generation ``number``, if one is due and no other process is merging it; whether one ran.
    ``conn`` is in a REPEATABLE READ transaction (one view of the passages for the whole merge)."""
    if not conn.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", (MERGE_LOCK, number)).fetchone()[0]:
        return False
    g = f"{s}.g{number}_"
    segments = conn.execute(f"SELECT id, lo, hi, passages FROM {g}segments ORDER BY lo").fetchall()
    ids = plan_merge(segments)
    if not ids:
        covered = sum(row[3] for row in segments)
        live = conn.execute(f"SELECT passages FROM {s}.stats WHERE generation = %s", (number,)).fetchone()[0]
        if covered - live > DEAD_SHARE * covered and covered - live >= MERGE_FACTOR:
            counts = conn.execute(f"SELECT sg.id, sg.passages, (SELECT count(*) FROM {g}passages p "
                                  f"WHERE p.key BETWEEN sg.lo AND sg.hi) FROM {g}segments sg").fetchall()
            ids = plan_cleanup(counts)
    if not ids:
        return False
    merge(conn, s, number, ids)
    return True


def decode(keys: bytes, tfs: bytes, lengths: bytes, bound: float, reference: float) -> Run:
    """A postings row's arrays as a run for kb/stores/bm25.py."""
    return Run(np.frombuffer(keys, dtype=">i8").astype(np.int64), np.frombuffer(tfs, dtype=">i2").astype(np.float32),
               np.frombuffer(lengths, dtype=">f4").astype(np.float32), float(bound), float(reference))


class PostingsCache:
    """Decoded runs by (schema, generation, segment, term), least recently used first out, up to ``limit``
    bytes. Shared by a store's threads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._runs: OrderedDict[tuple[str, int, int, str], Run] = OrderedDict()
        self._segments: dict[tuple[str, int, str], set[int]] = {}  # the segments held of each term
        self._lock = threading.Lock()

    @staticmethod
    def _bytes(run: Run) -> int:
        return run.keys.nbytes + run.tf.nbytes + run.lengths.nbytes

    def get(self, key: tuple[str, int, int, str]) -> Run | None:
        with self._lock:
            run = self._runs.get(key)
            if run is not None:
                self._runs.move_to_end(key)
            return run

    def held(self, schema: str, generation: int, terms: Sequence[str]) -> list[str]:
        """``term:segment`` of every run held for these terms (what a search need not be sent again)."""
        with self._lock:
            return [f"{term}:{segment}" for term in set(terms)
                    for segment in self._segments.get((schema, generation, term), ())]

    def put(self, key: tuple[str, int, int, str], run: Run) -> None:
        size = self._bytes(run)
        if size > self.limit:
            return
        with self._lock:
            if key in self._runs:
                return
            self._runs[key] = run
            self._segments.setdefault((key[0], key[1], key[3]), set()).add(key[2])
            self.size += size
            while self.size > self.limit:
                (schema, generation, segment, term), old = self._runs.popitem(last=False)
                held = self._segments[(schema, generation, term)]
                held.discard(segment)
                if not held:
                    del self._segments[(schema, generation, term)]
                self.size -= self._bytes(old)
