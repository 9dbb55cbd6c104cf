"""The default store: a folder on one disk with a SQLite record file and FAISS and BM25 in memory.

    index/current -> store-1795806900123456789       (symlink; moved only by a full rebuild)
    store-.../manifest.json                           format, model, dimension, chunk settings
    store-.../records.sqlite                          documents, passages (vectors, terms, sentences), change log
    store-.../checkpoints/latest.json, seq-.../       FAISS index, BM25 arrays and slot map at a sequence number

A write is one SQLite transaction (durable at commit), then every process applies it to its
in-memory indexes from the change log: the writing process at once, others within
``POLL_SECONDS``. Readers search the in-memory indexes under a shared lock and read the
passages they keep from SQLite; a passage deleted meanwhile is simply not found there, so a
reader never sees a document with half of its passages.

Background maintenance, bounded and amortized: a checkpoint after ``checkpoint_every`` changes
(so a restart replays little), and a rebuild of the in-memory indexes when a quarter of the
slots are deleted or the store outgrows its index type (flat to HNSW); searches go on meanwhile.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from kb.filters import Filters
from kb.memory import MemoryIndex
from kb.settings import Settings
from kb.sqlite_db import RecordDB
from kb.store import (Candidates, PassageRecord, PreparedDocument, Snapshot, Store, StoreCorrupt, StoreMismatch,
                      StoreMissing, StoreProblem, StoreUnwritable, StoredDocument, check_dimension)
from kb.vectors import ann_spec

log = logging.getLogger(__name__)

FORMAT_VERSION = 4
CURRENT = "current"
MANIFEST = "manifest.json"
RECORDS = "records.sqlite"
CHECKPOINTS = "checkpoints"
POLL_SECONDS = 0.5  # how often a reader looks for writes made by other processes
EXACT_FILTER_LIMIT = 20_000  # filtered dense search is exact up to this many allowed passages
REBUILD_DELETED_SHARE = 0.25


def current_folder(root: Path) -> Path | None:
    try:
        return (Path(root) / os.readlink(Path(root) / CURRENT)).resolve()
    except OSError:
        return None


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreMissing(f"{path} is missing: run `kb build` to create the index") from None
    except (ValueError, UnicodeDecodeError):
        raise StoreCorrupt(f"{path} is not valid JSON: run `kb build --force` to rebuild the index") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        found = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise StoreMismatch(f"{path} has index format {found!r}, this kb reads format {FORMAT_VERSION}: "
                            "run `kb build` to rebuild the index")
    return manifest


class FaissStore(Store):
    def __init__(self, folder: Path, settings: Settings, memory: MemoryIndex | None = None, lazy: bool = False) -> None:
        """Open a store folder; its in-memory indexes load now, or with ``lazy`` on first use."""
        self.folder = Path(folder)
        self.location = str(self.folder)
        self.settings = settings
        manifest = read_manifest(self.folder)
        self.model, self.dimension, self.config = manifest["model"], int(manifest["dimension"]), manifest["config"]
        self.manifest = manifest
        self.db = RecordDB(self.folder / RECORDS, settings.sentence_vectors)
        if not (self.folder / RECORDS).exists():
            raise StoreCorrupt(f"{self.folder / RECORDS} is missing: run `kb build --force` to rebuild the index")
        self.db.meta()  # a damaged file says so now, not at the first search
        self._catch_up_lock = threading.Lock()
        self._maintenance: threading.Thread | None = None
        self._checked = 0.0
        self._memory = memory  # loaded on first use: a sync with nothing to write never builds it
        self._checkpointed = memory.seq if memory is not None else 0
        if not lazy:
            self.memory

    @property
    def memory(self) -> MemoryIndex:
        """The in-memory FAISS and BM25 indexes, loaded (checkpoint, then the log after it) on first use."""
        if self._memory is None:
            with self._catch_up_lock:
                if self._memory is None:
                    memory = self._open_memory()
                    self._checkpointed = memory.seq
                    self._memory = memory
        return self._memory

    # ---- opening and creating -------------------------------------------------------------

    @classmethod
    def create(cls, root: Path, settings: Settings, model: str, dimension: int, config: dict[str, Any]) -> "FaissStore":
        """A new, empty store folder under ``root`` (not yet current: see ``make_current``)."""
        root = Path(root)
        folder = root / f"store-{time.time_ns()}"
        try:
            folder.mkdir(parents=True)
            manifest = {"format_version": FORMAT_VERSION, "model": model, "dimension": dimension, "config": config,
                        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            RecordDB(folder / RECORDS).create({"model": model, "dimension": dimension})
            (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        except OSError as exc:
            raise StoreUnwritable(f"cannot create the index in {root} ({exc.strerror or exc}): free some space or "
                                  f"make {root} writable; the previous index is unchanged") from None
        wanted = ann_spec(0, settings.index_type, settings.hnsw_threshold, settings.hnsw_m)
        return cls(folder, settings, memory=MemoryIndex(dimension, wanted))

    def make_current(self) -> None:
        root = self.folder.parent
        link = root / f".{CURRENT}-{self.folder.name}"
        os.symlink(self.folder.name, link)
        os.replace(link, root / CURRENT)
        from kb.files import fsync_dir

        fsync_dir(root)

    def _open_memory(self) -> MemoryIndex:
        checkpoints = self.folder / CHECKPOINTS
        memory = None
        if (checkpoints / "latest.json").exists():
            try:
                memory = MemoryIndex.load(checkpoints, self.dimension)
            except Exception as exc:  # noqa: BLE001 - a damaged checkpoint is rebuilt from the records
                log.warning("checkpoint in %s unreadable, rebuilding the in-memory index from %s: %s",
                            checkpoints, RECORDS, exc)
        if memory is None:
            memory = self._build_memory()
        self._catch_up(memory)
        return memory

    def _build_memory(self) -> MemoryIndex:
        seq = self.db.seq()
        documents, passages = self.db.counts()
        spec = self._wanted_spec(passages)
        return MemoryIndex.build(self.dimension, spec, self.db.all_passages(), seq)

    def _wanted_spec(self, passages: int) -> dict[str, Any]:
        s = self.settings
        return ann_spec(passages, s.index_type, s.hnsw_threshold, s.hnsw_m)

    # ---- writes ---------------------------------------------------------------------------

    def add(self, documents: Sequence[PreparedDocument]) -> None:
        check_dimension(documents, self.dimension)
        if documents:
            self.db.write(documents, [])
            self.refresh(force=True)

    def delete(self, doc_ids: Sequence[str]) -> list[str]:
        if not doc_ids:
            return []
        _, existed = self.db.write([], doc_ids)
        self.refresh(force=True)
        return existed

    def record_files(self, stats: dict[str, tuple[int, int] | None]) -> None:
        if stats:
            self.db.record_files(stats)

    # ---- reads ----------------------------------------------------------------------------

    def document(self, doc_id: str) -> StoredDocument | None:
        return self.db.document(doc_id)

    def documents(self, offset: int, limit: int) -> tuple[int, list[StoredDocument]]:
        return self.db.documents(offset, limit)

    def passage_spans(self, doc_id: str) -> list[tuple[int, int]]:
        return self.db.passage_spans(doc_id)

    def fingerprints(self, ids: Sequence[str] | None = None) -> dict[str, tuple[str, str]]:
        return self.db.fingerprints(ids)

    def file_stats(self) -> dict[str, tuple[int, int]]:
        return self.db.file_stats()

    def counts(self) -> tuple[int, int]:
        """From the record alone: a build that wrote nothing never loads FAISS and BM25 for this."""
        return self.db.counts()

    def snapshot(self) -> "FaissSnapshot":
        self.refresh()
        return FaissSnapshot(self, self.memory)

    # ---- keeping up -----------------------------------------------------------------------

    def refresh(self, force: bool = False) -> None:
        """Apply the writes logged since this process last looked (at most every POLL_SECONDS unless forced)."""
        now = time.monotonic()
        if not force and now - self._checked < POLL_SECONDS:
            return
        self._checked = now
        self.memory  # loaded first (it takes the same lock)
        with self._catch_up_lock:
            self._catch_up(self._memory)
        self._maybe_maintain()

    def _catch_up(self, memory: MemoryIndex) -> None:
        while True:
            changes = self.db.changes_since(memory.seq, 4096)
            if not changes:
                return
            payloads = self.db.passage_payloads([pid for _, pid, op in changes if op])
            memory.apply(changes, payloads)

    def _maybe_maintain(self) -> None:
        if self._maintenance is not None and self._maintenance.is_alive():
            return
        memory = self.memory
        deleted_share = memory.vectors.deleted / max(1, memory.size)
        wrong_type = memory.spec != self._wanted_spec(memory.live)
        if (deleted_share > REBUILD_DELETED_SHARE and memory.size > 100) or (wrong_type and memory.live > 0):
            self._start(self._rebuild, "rebuild")
        elif memory.seq - self._checkpointed >= self.settings.checkpoint_every:
            self._start(self.checkpoint, "checkpoint")

    def _start(self, job, name: str) -> None:
        self._maintenance = threading.Thread(target=self._guard, args=(job, name), name=f"kb-{name}", daemon=True)
        self._maintenance.start()

    def _guard(self, job, name: str) -> None:
        try:
            job()
        except Exception as exc:  # noqa: BLE001 - maintenance failing must never stop searches or writes
            log.warning("index %s failed (searches and writes go on): %s", name, exc)

    def checkpoint(self) -> None:
        """Save the in-memory indexes, so the next start replays only what comes after."""
        path = self.memory.save(self.folder / CHECKPOINTS)
        self._checkpointed = self.memory.seq
        log.info("checkpoint %s", path.name)

    def _rebuild(self) -> None:
        """A fresh in-memory index without deleted slots (and of the right type), swapped in when caught up."""
        began = time.perf_counter()
        fresh = self._build_memory()
        with self._catch_up_lock:
            self._catch_up(fresh)
            self._memory = fresh
        log.info("rebuilt the in-memory index (%s, %d passages) in %.1fs", fresh.spec["type"], fresh.live,
                 time.perf_counter() - began)
        self.checkpoint()

    def close(self) -> None:
        if self._maintenance is not None:
            self._maintenance.join()
        self.db.close()


class FaissSnapshot(Snapshot):
    def __init__(self, store: FaissStore, memory: MemoryIndex) -> None:
        self.store, self.memory = store, memory
        self.version = (store.folder.name, id(memory), memory.seq)

    def candidates(self, query_vector: np.ndarray, query_terms: Sequence[str], depth: int, dense: bool,
                   keyword: bool, filters: Filters = Filters()) -> Candidates:
        memory, settings = self.memory, self.store.settings
        query_vector = np.asarray(query_vector, dtype=np.float32)
        allowed = self._allowed(filters) if filters else None
        with memory.lock.read():
            size = memory.size
            if allowed is not None:
                allowed = allowed[allowed < size]
            pool: dict[int, None] = {}
            if dense:
                if allowed is not None and len(allowed) <= EXACT_FILTER_LIMIT:
                    exact = memory.vectors.vectors(allowed) @ query_vector if len(allowed) else np.zeros(0)
                    pool.update((int(allowed[i]), None) for i in _top(exact, depth))
                else:
                    found = memory.vectors.search(query_vector, depth, settings.hnsw_ef_search, settings.ivf_nprobe,
                                                  allowed)
                    pool.update((slot, None) for slot, _ in found)
            scores = memory.keyword.scores(query_terms, size)
            if allowed is not None:
                masked = np.zeros_like(scores)
                masked[allowed] = scores[allowed]
                scores = masked
            if keyword:
                pool.update((int(slot), None) for slot in _top(scores, depth) if scores[slot] > 0)
            if not pool:
                return Candidates.empty(memory.dimension)
            slots = np.fromiter(pool, dtype=np.int64)
            vectors = memory.vectors.vectors(slots).astype(np.float32, copy=False)
            keys = memory.slot_pids.view()[slots].copy()
            keyword_scores = scores[slots]
        return Candidates(keys, vectors @ query_vector, keyword_scores, vectors)

    def _allowed(self, filters: Filters) -> np.ndarray:
        """Slots of the passages whose documents pass the filters."""
        where, parameters = ["1"], []
        if filters.doc_ids:
            where.append(f"d.id IN ({','.join('?' * len(filters.doc_ids))})")
            parameters += list(filters.doc_ids)
        if filters.sources:
            where.append(f"d.source IN ({','.join('?' * len(filters.sources))})")
            parameters += list(filters.sources)
        rows = self.store.db.filtered_pids(" AND ".join(where), parameters)
        verdicts: dict[str, bool] = {}
        pids = []
        for pid, doc_id, source, metadata in rows:
            if doc_id not in verdicts:
                verdicts[doc_id] = filters.matches(doc_id, source, json.loads(metadata))
            if verdicts[doc_id]:
                pids.append(pid)
        slots = [self.memory.pid_slots.get(pid) for pid in pids]
        return np.asarray(sorted(s for s in slots if s is not None), dtype=np.int64)

    def records(self, keys: Sequence[int]) -> list[PassageRecord]:
        return self.store.db.records([int(k) for k in keys])

    def counts(self) -> tuple[int, int]:
        """Documents (from the records) and passages (from memory, no table scan)."""
        return self.store.db.document_count(), self.memory.live


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    if n >= len(scores):
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, n)[:n]
    return part[np.argsort(-scores[part], kind="stable")]


def open_current(settings: Settings, expected_model: str | None = None) -> FaissStore:
    """The store ``current`` points at in KB_INDEX_DIR; StoreProblem when there is none or it is damaged."""
    folder = current_folder(settings.index_dir)
    if folder is None:
        raise StoreMissing(f"no index in {settings.index_dir}/: run `kb build` to create it")
    store = FaissStore(folder, settings)
    if expected_model is not None and store.model != expected_model:
        raise StoreMismatch(f"{folder / MANIFEST} was built with model {store.model!r} but KB_MODEL is "
                            f"{expected_model!r}: run `kb build` to rebuild the index")
    return store


__all__ = ["FaissStore", "FaissSnapshot", "open_current", "current_folder", "StoreProblem"]
