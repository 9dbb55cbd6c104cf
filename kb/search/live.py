"""Serve from the current store: follow writes as they are made, and a new index when one replaces it.

Writes into the store (by this process or any other) reach searches through the store itself (the
FAISS store's change log, PostgreSQL's transactions). When another process derives a new index
(`kb build --force`, new model or chunk settings), the store names its successor: at most every
``check_every`` seconds a request asks (on the FAISS store, one readlink), and a successor that fails
to open is logged once and skipped while the previous store keeps answering.
"""

from __future__ import annotations

import logging
import threading
import time

from kb.embedding.embedder import Embedder
from kb.search.pipeline import Searcher
from kb.settings import Settings
from kb.stores import open_store
from kb.stores.base import Store

log = logging.getLogger(__name__)


class LiveSearcher:
    def __init__(self, embedder: Embedder, settings: Settings, check_every: float = 1.0, store: Store | None = None
                 ) -> None:
        """Over ``store``, or the configured one (opened now)."""
        self.embedder = embedder
        self.settings = settings
        self.check_every = check_every
        self._lock = threading.Lock()
        store = store or open_store(settings, expected_model=embedder.name)
        self._searcher = Searcher(store, embedder, settings)
        self._rejected: str | None = None
        self._checked = time.monotonic()

    @property
    def store(self):
        return self._searcher.store

    def current(self) -> Searcher:
        now = time.monotonic()
        if now - self._checked >= self.check_every and self._lock.acquire(blocking=False):
            try:
                self._checked = now
                self._maybe_reopen()
            finally:
                self._lock.release()
        return self._searcher

    def refresh(self) -> None:
        """Look for a new store now (after a rebuild this process made), not at the next timed check."""
        with self._lock:
            self._checked = time.monotonic()
            self._maybe_reopen()

    def fresh_store(self):
        """The live store, looked up now: what a write goes to (it must never land in a store just replaced)."""
        self.refresh()
        return self.store

    def _maybe_reopen(self) -> None:
        old = self._searcher.store
        try:
            store = old.successor()
            if store is None:
                return
            searcher = Searcher(store, self.embedder, self.settings)
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with the new store, keep serving the old one
            if str(exc) != self._rejected:
                self._rejected = str(exc)
                log.error("kept serving %s; the new index did not load: %s", old.location, exc)
            return
        self._searcher = searcher
        log.info("now serving %s", store.location)
