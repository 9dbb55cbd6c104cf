"""The query log: which searches are kept (KB_QUERY_LOG), how they are grouped, and writing them off the request path.

A search is recorded in memory and written by a thread of its own, a batch every half second, so logging never
slows a search; a report flushes first, so a search is in it at once. The search page asks as you type: its
answers are held as *pending* until the page says the question settled (a pause, Enter, or a click on a result:
``settle``, ``click``), so "Has", "Has an" and "Has an American" are not three questions. A page loaded whole
(a form sent without the script, a shared link) is settled already.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable

from kb.documents.terms import terms
from kb.stores.querylog import LoggedClick, LoggedSearch, QueryLog

if TYPE_CHECKING:
    from kb.search.pipeline import Answer
    from kb.settings import Settings

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5  # a search is written within this (a report flushes first anyway)
PRUNE_SECONDS = 3600.0  # rows older than KB_QUERY_LOG_DAYS go this often
PENDING = 10_000  # unsettled page searches held (the oldest are dropped)
NEAREST = 3  # results kept with a search: what an "unanswered" report shows
MAX_QUERY = 500  # characters of a query kept
_WORD = re.compile(r"\w+")


def group_key(query: str) -> str:
    """What groups a query with its variants: its indexed terms (lower case, no stop words, stemmed), each once,
    sorted; for a query of stop words alone, its lower-cased words. Case, punctuation, plurals and word order
    do not split a group."""
    words = sorted(set(terms(query))) or _WORD.findall(query.lower())
    return " ".join(words)[:MAX_QUERY]


class QueryLogger:
    def __init__(self, settings: "Settings", open_log: Callable[[], QueryLog]) -> None:
        self.settings = settings
        self._open_log = open_log
        self._log: QueryLog | None = None
        self._lock = threading.Lock()
        self._searches: list[LoggedSearch] = []
        self._clicks: list[LoggedClick] = []
        self._pending: OrderedDict[int, LoggedSearch] = OrderedDict()
        self._known: OrderedDict[int, None] = OrderedDict()  # recent settled ids: a click must name one
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._pruned: float | None = None  # when the log was last pruned (monotonic); at the first flush
        self._flushing = threading.Lock()

    @property
    def log(self) -> QueryLog:
        if self._log is None:
            self._log = self._open_log()
        return self._log

    def wants(self, origin: str, keyed: bool = False) -> bool:
        """Whether a search from ``origin`` (page or api), presenting a key or not, is kept: the one home of
        KB_QUERY_LOG and KB_QUERY_LOG_KEYED."""
        mode = self.settings.query_log
        if mode == "off":
            return False
        if origin == "page":
            return True
        return mode == "on" and (not keyed or self.settings.query_log_keyed == "on")

    def search(self, answer: "Answer", origin: str, settled: bool = True) -> int:
        """Record a search (the caller has checked ``wants``); its id, which the page's clicks name."""
        hits = answer.hits
        row = LoggedSearch(
            id=secrets.randbits(53), at=time.time(), query=answer.query[:MAX_QUERY], key=group_key(answer.query),
            origin=origin, mode=answer.mode, confident=bool(answer.confident and hits),
            nearest=[[h.doc_id, h.start, h.end, round(float(h.score), 4)] for h in hits[:NEAREST]],
            cited=list(dict.fromkeys(h.doc_id for h in hits)))
        with self._lock:
            if settled:
                self._keep(row)
            else:
                self._pending[row.id] = row
                if len(self._pending) > PENDING:
                    self._pending.popitem(last=False)
        self._start()
        return row.id

    def settle(self, query_id: int) -> bool:
        """The page's question ``query_id`` settled: keep it. False when no pending search has that id."""
        with self._lock:
            row = self._pending.pop(query_id, None)
            if row is not None:
                self._keep(row)
        return row is not None

    def click(self, query_id: int, rank: int, doc_id: str) -> bool:
        """A result of search ``query_id`` was opened (its search settles). False for a search kb does not know."""
        self.settle(query_id)
        with self._lock:
            if query_id not in self._known:
                return False
            self._clicks.append(LoggedClick(query_id, time.time(), rank, doc_id))
        self._start()
        return True

    def _keep(self, row: LoggedSearch) -> None:
        self._searches.append(row)
        self._known[row.id] = None
        if len(self._known) > PENDING:
            self._known.popitem(last=False)

    # ---- writing, off the request path --------------------------------------------------------------

    def flush(self) -> None:
        """Write what is waiting, now (a report calls this first)."""
        with self._flushing:
            with self._lock:
                searches, self._searches = self._searches, []
                clicks, self._clicks = self._clicks, []
            if searches or clicks:
                try:
                    self.log.append(searches, clicks)
                except Exception as exc:  # noqa: BLE001 - the log must never take a search down with it
                    log.warning("the query log could not write %d searches: %s", len(searches), exc)
            if self._pruned is None or time.monotonic() - self._pruned > PRUNE_SECONDS:
                self._pruned = time.monotonic()
                self.prune()

    def prune(self, now: float | None = None) -> int:
        """Delete what is older than KB_QUERY_LOG_DAYS; how many rows went."""
        try:
            return self.log.prune((now or time.time()) - self.settings.query_log_days * 86400)
        except Exception as exc:  # noqa: BLE001
            log.warning("the query log could not be pruned: %s", exc)
            return 0

    def _start(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="kb-query-log", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()
        if self._log is not None:
            self._log.close()
