"""Serve from the current store: follow writes as they are logged, and a full rebuild when `current` moves.

(On PostgreSQL there is one store, which every server reads: nothing to follow.)

Writes into the store (by this process or any other) reach searches through the store's own
change log (kb/faiss_store.py). Only a full rebuild (`kb build --force`, or new model or chunk
settings) makes a new store folder; at most every ``check_every`` seconds a request looks at
where `current` points (one readlink), and a new store that fails to open is logged and
skipped while the previous one keeps answering.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from kb.embed import Embedder
from kb.faiss_store import current_folder, open_current
from kb.search import Searcher
from kb.settings import Settings
from kb.stores import open_store

log = logging.getLogger(__name__)


class LiveSearcher:
    def __init__(self, embedder: Embedder, settings: Settings, check_every: float = 1.0) -> None:
        self.embedder = embedder
        self.settings = settings
        self.check_every = check_every
        self._lock = threading.Lock()
        store = open_store(settings, expected_model=embedder.name)
        self._searcher = Searcher(store, embedder, settings)
        # A FAISS store is replaced by a full rebuild (`current` moves); a database store stays the same.
        self._path: Path | None = getattr(store, "folder", None)
        self._rejected: Path | None = None
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

    def _maybe_reopen(self) -> None:
        if self._path is None:
            return
        path = current_folder(self.settings.index_dir)
        if path is None or path == self._path or path == self._rejected:
            return
        try:
            searcher = Searcher(open_current(self.settings, expected_model=self.embedder.name), self.embedder,
                                self.settings)
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with the new store, keep serving the old one
            self._rejected = path
            log.error("kept serving %s; the new index %s did not load: %s", self._path, path, exc)
            return
        self._searcher, self._path = searcher, path
        log.info("now serving %s", path)
