"""Serve from the newest good build: pick up a new index when `current` moves, keep the old one if it is bad."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from kb.embed import Embedder
from kb.index import IndexStore
from kb.search import Searcher
from kb.settings import Settings

log = logging.getLogger(__name__)


class LiveSearcher:
    """A Searcher that follows the index folder's `current` build.

    At most every ``check_every`` seconds a request looks at where `current` points (one
    readlink); when it moved, the new build is loaded and swapped in whole. A build that
    fails to load is logged and skipped; the previous one keeps answering.
    """

    def __init__(self, store: IndexStore, embedder: Embedder, settings: Settings | None = None,
                 check_every: float = 1.0) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings or Settings.from_env()
        self.check_every = check_every
        self._lock = threading.Lock()
        self._searcher = self._make(store.load(expected_model=embedder.name))
        self._path: Path | None = self._searcher.index.path
        self._rejected: Path | None = None
        self._checked = time.monotonic()

    def current(self) -> Searcher:
        now = time.monotonic()
        if now - self._checked >= self.check_every and self._lock.acquire(blocking=False):
            try:
                self._checked = now
                self._maybe_reload()
            finally:
                self._lock.release()
        return self._searcher

    def refresh(self) -> None:
        """Look for a new build now (after a write this process made), not at the next timed check."""
        with self._lock:
            self._checked = time.monotonic()
            self._maybe_reload()

    def _maybe_reload(self) -> None:
        path = self.store.current_path()
        if path is None or path == self._path or path == self._rejected:
            return
        try:
            searcher = self._make(self.store.load(expected_model=self.embedder.name))
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with the new build, keep serving the old one
            self._rejected = path
            log.error("kept serving %s; the new index %s did not load: %s", self._path, path, exc)
            return
        self._searcher, self._path = searcher, path
        log.info("now serving %s (%d passages)", path, len(searcher.index.passages))

    def _make(self, index) -> Searcher:
        return Searcher(index, self.embedder, self.settings)
