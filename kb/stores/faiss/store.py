"""The default store: the corpus folder as its record, and an index derived from it in one folder.

    corpus/ (with corpus/.kb/)                        the record: every document, as files (kb/documents/folder.py)
    index/current -> store-1795806900123456789       (symlink; moved only when a new index is derived)
    store-.../manifest.json                           format, model, dimension, chunk settings, corpus folder
    store-.../records.sqlite                          documents, passages (vectors, terms, sentences), change log
    store-.../checkpoints/latest.json, seq-.../       FAISS index, BM25 arrays and slot map at a sequence number

Everything under index/ is derived: a damaged file, an older format, `make clean` or `kb build --force`
costs embedding time, never a document. A new index (another model, chunking or format) is built in a
store folder beside the live one from the corpus folder and made current when complete; a build killed
midway resumes in that folder. An index of format 4, whose records.sqlite was the only home of the
documents sent through the API, first has those documents written into the corpus folder.

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

import contextlib
import filecmp
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from kb.documents.access import ACCESS_FILE
from kb.documents.folder import (
    KB_FOLDER,
    corpus_files,
    ensure_own_folder,
    exclusive,
    fsync_dir,
    fsync_file,
    own_folder,
    write_durably,
)
from kb.documents.readers import Parsed
from kb.errors import BackupProblem, StoreCorrupt, StoreMismatch, StoreMissing, StoreProblem, StoreUnwritable
from kb.settings import Settings
from kb.stores.base import (
    EXACT_FILTER_LIMIT,
    Candidates,
    PassageRecord,
    PreparedDocument,
    Snapshot,
    Store,
    StoredDocument,
    check_dimension,
    rebuild_reason,
)
from kb.stores.bm25 import rank, scores_of
from kb.stores.faiss.memory import LATEST, MemoryIndex
from kb.stores.faiss.records import RecordDB
from kb.stores.faiss.vectors import ann_spec
from kb.stores.filters import Filters
from kb.stores.keys import KeyTable
from kb.stores.querylog import QueryLog
from kb.stores.record import Record

log = logging.getLogger(__name__)

FORMAT_VERSION = 6  # 6: documents carry access; 5: the corpus folder is the record (4 kept API documents in records.sqlite)
CURRENT = "current"
MANIFEST = "manifest.json"
RECORDS = "records.sqlite"
CHECKPOINTS = "checkpoints"
POLL_SECONDS = 0.5  # how often a reader looks for writes made by other processes
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
    record_is_corpus_folder = True

    def __init__(self, folder: Path, settings: Settings, memory: MemoryIndex | None = None, lazy: bool = False) -> None:
        """Open a store folder; its in-memory indexes load now, or with ``lazy`` on first use."""
        self.folder = Path(folder)
        self.location = str(self.folder)
        self.settings = settings
        manifest = read_manifest(self.folder)
        self.model, self.dimension, self.config = manifest["model"], int(manifest["dimension"]), manifest["config"]
        self.manifest = manifest
        self.corpus = manifest.get("corpus")
        self.record = Record(settings.corpus_dir, in_folder=True)
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
    def create(cls, root: Path, settings: Settings, model: str, dimension: int, config: dict[str, Any],
               corpus: str | None = None) -> "FaissStore":
        """A new, empty store folder under ``root`` (not yet current: see ``finish``)."""
        root = Path(root)
        folder = root / f"store-{time.time_ns()}"
        try:
            folder.mkdir(parents=True)
            manifest = {"format_version": FORMAT_VERSION, "model": model, "dimension": dimension, "config": config,
                        "corpus": corpus, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
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
        link.unlink(missing_ok=True)
        os.symlink(self.folder.name, link)
        os.replace(link, root / CURRENT)
        fsync_dir(root)

    # ---- lifecycle (kb/stores/base.py) ----------------------------------------------------------

    @classmethod
    def open(cls, settings: Settings, expected_model: str | None = None) -> "FaissStore":
        return open_current(settings, expected_model)

    @classmethod
    def exists(cls, settings: Settings) -> bool:
        return current_folder(settings.index_dir) is not None

    @classmethod
    def evaluation_settings(cls, settings: Settings, name: str) -> Settings:
        return settings.with_(index_dir=Path(settings.index_dir) / "eval" / name)

    @classmethod
    @contextlib.contextmanager
    def build_lock(cls, settings: Settings) -> Iterator[None]:
        """One build at a time per index folder (API writes go straight to the store's transactions)."""
        root = Path(settings.index_dir)
        try:
            root.mkdir(parents=True, exist_ok=True)
            handle = open(root / ".lock", "a")
        except OSError as exc:
            raise StoreUnwritable(f"cannot write the index to {root} ({exc.strerror or exc}): free some space or "
                                  f"make {root} writable, then run `kb build` again; the previous index is "
                                  "unchanged") from None
        with handle, exclusive(handle):
            yield

    @classmethod
    def query_log(cls, settings: Settings) -> QueryLog:
        """SQLite beside the record: corpus/.kb/queries.sqlite."""
        from kb.stores.querylog import SqliteQueryLog

        corpus = Path(settings.corpus_dir)  # corpus/.kb/ made with its .gitignore: never in the user's git status
        return SqliteQueryLog(corpus / KB_FOLDER / "queries.sqlite", lambda: ensure_own_folder(corpus))

    @classmethod
    def key_table(cls, settings: Settings) -> KeyTable:
        """SQLite beside the record: corpus/.kb/keys.sqlite."""
        from kb.stores.keys import SqliteKeyTable

        corpus = Path(settings.corpus_dir)
        return SqliteKeyTable(corpus / KB_FOLDER / "keys.sqlite", lambda: ensure_own_folder(corpus))

    def facts(self) -> list[tuple[str, dict[str, str], float]]:
        """The index's age: seconds since its records last changed (a write, a sync, a build)."""
        changed = [p.stat().st_mtime for p in (self.folder / RECORDS, self.folder / f"{RECORDS}-wal") if p.exists()]
        return [("index_age_seconds", {}, max(0.0, time.time() - max(changed)))] if changed else []

    @classmethod
    def watch_claim(cls, settings: Settings) -> Callable[[], None] | None:
        """An exclusive lock (flock) on ``.watch.lock`` in the index folder, held open; the kernel lets it go when
        the process ends, however it ends."""
        import fcntl

        root = Path(settings.index_dir)
        root.mkdir(parents=True, exist_ok=True)
        handle = open(root / ".watch.lock", "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        return handle.close

    @classmethod
    def for_build(cls, settings: Settings, config: dict[str, Any], force: bool,
                  dimension: Callable[[], int]) -> tuple["FaissStore", str | None]:
        """The current store when it fits; else a store folder beside it (a killed build's, resumed, or a new
        one), to be filled from the corpus folder and made current by ``finish``."""
        root = Path(settings.index_dir)
        current = current_folder(root)
        why = None
        if current is not None:
            found = _format_of(current)
            if isinstance(found, int) and found < FORMAT_VERSION:
                why = _adopt(current, settings)
            else:
                try:
                    live = cls(current, settings, lazy=True)  # a sync that writes nothing needs no FAISS or BM25
                except StoreProblem as exc:
                    why = (f"previous index unreadable, rebuilding it from {settings.corpus_dir}, which holds every "
                           f"document: {exc}")
                else:
                    why = rebuild_reason(live.config, config, force)
                    if why is None:
                        _remove_leftovers(root, keep=[current])
                        return live, None
                    live.close()
        corpus = str(Path(settings.corpus_dir).resolve())
        target = _resumable(root, current, config, settings, corpus) or \
            cls.create(root, settings, settings.model, dimension(), config, corpus)
        _remove_leftovers(root, keep=[current, target.folder])
        return target, why

    @classmethod
    def backup(cls, settings: Settings, target: Path) -> dict[str, Any]:
        """The index first (its records.sqlite by SQLite's online backup API, its newest checkpoint), then the
        record (every file kb reads in the corpus folder, with its modification time): what the record gained
        meanwhile is indexed by the restored server's start-up sync, so nothing acknowledged before the backup
        began is missing, and nothing is embedded again but what came after."""
        folder = current_folder(settings.index_dir)
        if folder is None:
            raise StoreMissing(f"no index in {settings.index_dir}/ to back up: run `kb build` first")
        store = cls(folder, settings, lazy=True)
        try:
            index = target / "index" / store.folder.name
            index.mkdir(parents=True)
            shutil.copy2(store.folder / MANIFEST, index / MANIFEST)
            _copy_checkpoint(store.folder / CHECKPOINTS, index / CHECKPOINTS)
            with contextlib.closing(sqlite3.connect(store.folder / RECORDS)) as source, \
                    contextlib.closing(sqlite3.connect(index / RECORDS)) as copy:
                source.backup(copy)
            with contextlib.closing(RecordDB(index / RECORDS)) as copied:  # closed before the copy is flushed: its
                documents, passages = copied.counts()  # WAL file goes with it, not midway through the flush below
        finally:
            store.close()
        corpus = Path(settings.corpus_dir)
        files = [relative for relative, _, _ in corpus_files(corpus)]
        if (own_folder(corpus) / ".gitignore").exists():
            files.append(f"{KB_FOLDER}/.gitignore")
        if (corpus / ACCESS_FILE).exists():  # who may read the folder's documents is part of the record
            files.append(ACCESS_FILE)
        for relative in files:
            (target / "corpus" / relative).parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copy2(corpus / relative, target / "corpus" / relative)
            except FileNotFoundError:  # deleted since it was listed: its deletion is what the restore will see
                continue
        for path in sorted(target.rglob("*"), reverse=True):
            fsync_file(path) if path.is_file() else fsync_dir(path)
        return {"index": f"index/{store.folder.name}", "corpus": str(corpus.resolve()), "documents": documents,
                "passages": passages, "files": len(files)}

    @classmethod
    def restore(cls, settings: Settings, source: Path, force: bool) -> Path | None:
        """The backup's corpus folder into KB_CORPUS_DIR (refused where that holds a document the backup does not
        hold alike, unless ``force`` sets it aside), and its index as the current store: nothing is embedded."""
        corpus, saved = Path(settings.corpus_dir), source / "corpus"
        kept = {relative: path for relative, path, _ in corpus_files(saved)} if saved.is_dir() else {}
        if corpus.is_dir():
            differing = [relative for relative, path, _ in corpus_files(corpus)
                         if relative not in kept or not filecmp.cmp(path, kept[relative], shallow=False)]
            if differing and not force:
                raise BackupProblem(f"{corpus} holds documents the backup does not ({differing[0]}"
                                    f"{f' and {len(differing) - 1} more' if len(differing) > 1 else ''}): restore "
                                    f"into an empty KB_CORPUS_DIR, or add --force to set {corpus} aside first")
            if differing:
                aside = corpus.with_name(f"{corpus.name}.before-restore-{time.strftime('%Y%m%d-%H%M%S')}")
                os.replace(corpus, aside)
                log.warning("set %s aside as %s before restoring", corpus, aside)
        if saved.is_dir():
            shutil.copytree(saved, corpus, dirs_exist_ok=True)
        root = Path(settings.index_dir)
        root.mkdir(parents=True, exist_ok=True)
        [index] = [folder for folder in (source / "index").iterdir() if folder.is_dir()]
        folder = root / f"store-{time.time_ns()}"
        shutil.copytree(index, folder)
        manifest = {**read_manifest(folder), "corpus": str(corpus.resolve())}
        write_durably(folder / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
        store = cls(folder, settings, lazy=True)
        store.make_current()
        store.close()
        return None

    def rederive(self, write: Callable[[Store, list[Any]], None]) -> "FaissStore":
        """This store is the new index beside the live one; the corpus folder, its record, fills it (the sync)."""
        return self

    def finish(self, corpus: str | None, written: bool) -> bool:
        if corpus is not None and corpus != self.corpus:
            self.manifest = {**self.manifest, "corpus": corpus}
            write_durably(self.folder / MANIFEST, json.dumps(self.manifest, indent=2, sort_keys=True).encode())
            self.corpus = corpus
        current = self.live
        if written or not current:
            self.checkpoint()
        if not current:
            self.make_current()
        return not current

    @property
    def live(self) -> bool:
        return current_folder(self.folder.parent) == self.folder

    def successor(self) -> "FaissStore | None":
        folder = current_folder(self.settings.index_dir)
        if folder is None or folder == self.folder:
            return None
        return open_current(self.settings, expected_model=self.model)

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

    def document(self, doc_id: str, groups: Sequence[str] | None = None) -> StoredDocument | None:
        return self.db.document(doc_id, groups)

    def documents(self, offset: int, limit: int, groups: Sequence[str] | None = None) -> tuple[int, list[StoredDocument]]:
        return self.db.documents(offset, limit, groups)

    def passage_spans(self, doc_id: str, groups: Sequence[str] | None = None) -> list[tuple[int, int]]:
        return self.db.passage_spans(doc_id, groups)

    def original(self, doc_id: str) -> bytes | None:
        stored = self.db.document(doc_id)
        return self.record.original(stored.path) if stored is not None else None

    def all_documents(self, groups: Sequence[str] | None = None) -> Iterator[StoredDocument]:
        for document in self.db.all_documents(groups=groups):
            yield replace(document, original=self.record.original(document.path),
                          updated=self.record.updated(document.path))

    def fingerprints(self, ids: Sequence[str] | None = None) -> dict[str, tuple[str, str]]:
        return self.db.fingerprints(ids)

    def file_stats(self) -> dict[str, tuple[int, int]]:
        return self.db.file_stats()

    def counts(self, groups: Sequence[str] | None = None) -> tuple[int, int]:
        """From the record alone: a build that wrote nothing never loads FAISS and BM25 for this."""
        return self.db.counts(groups)

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
        # The filters asked, from the record; who may read what, from memory's mask below (asked once, not twice).
        allowed = self._allowed(replace(filters, groups=None)) if filters.asked else None
        with memory.lock.read():
            size = memory.size
            visible = memory.visible_slots(filters.groups)  # who may read what: a mask, before anything is ranked
            if visible is not None:
                allowed = visible if allowed is None else np.intersect1d(allowed, visible, assume_unique=True)
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
            query = memory.keyword.query(query_terms, size)
            average = memory.keyword.average
            if keyword:
                dead = None if memory.keyword.live == size else np.flatnonzero(~memory.keyword.alive.view()[:size])
                ranked = rank(query, average, depth, allowed, dead)
                pool.update((int(slot), None) for slot in ranked.keys)
            if not pool:
                return Candidates.empty(memory.dimension)
            slots = np.fromiter(pool, dtype=np.int64)
            vectors = memory.vectors.vectors(slots).astype(np.float32, copy=False)
            keys = memory.slot_pids.view()[slots].copy()
            keyword_scores = scores_of(query, average, slots).astype(np.float32)
        return Candidates(keys, vectors @ query_vector, keyword_scores, vectors)

    def _allowed(self, filters: Filters) -> np.ndarray:
        """Slots of the passages whose documents pass the filters."""
        rows = self.store.db.filtered_pids(*filters.sqlite_prefilter())
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


def _format_of(folder: Path) -> Any:
    """The format_version a store folder's manifest names (None when it cannot be read)."""
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("format_version")
    except (OSError, ValueError, AttributeError):
        return None


def _adopt(folder: Path, settings: Settings) -> str:
    """An index of an older format is derived again; first, the documents it alone kept (format 4: those sent
    through the API, in its records.sqlite) are written into the record. A file that cannot be read is kept
    aside under its own name, never deleted, and the reason says where."""
    found = _format_of(folder)
    if found != 4:  # format 3 and before kept them in the corpus folder already (corpus/api/)
        return f"index format {found} is derived again from {settings.corpus_dir} (this kb writes format {FORMAT_VERSION})"
    try:
        with contextlib.closing(sqlite3.connect(folder / RECORDS)) as conn:
            rows = conn.execute("SELECT id, title, source, text, metadata FROM documents WHERE path = ''").fetchall()
        record = Record(settings.corpus_dir, in_folder=True)
        documents = [record.json_document(Parsed(title, text, json.loads(metadata), doc_id, source), doc_id)
                     for doc_id, title, source, text, metadata in rows]
        record.save(documents).keep()
    except Exception as exc:  # noqa: BLE001 - whatever is wrong, the old folder is kept for a person to look at
        kept = folder.parent / f"unreadable-{folder.name}"
        os.replace(folder, kept)
        return (f"index format {found} is derived again from {settings.corpus_dir}, but its documents sent through "
                f"the API could not be read ({exc}); the old index is kept in {kept}")
    moved = f"; its {len(documents)} documents sent through the API are now in {record.corpus}/.kb/documents/" \
        if documents else ""
    return f"index format {found} is derived again from {settings.corpus_dir} (this kb writes format {FORMAT_VERSION}){moved}"


def _resumable(root: Path, current: Path | None, config: dict[str, Any], settings: Settings,
               corpus: str) -> FaissStore | None:
    """The newest store folder a killed build left beside the current one, if it is being built for the same
    model, settings and corpus folder: the build carries on in it."""
    for folder in sorted(root.glob("store-*"), reverse=True):
        if folder == current or _format_of(folder) != FORMAT_VERSION:
            continue
        try:
            store = FaissStore(folder, settings, lazy=True)
        except StoreProblem:
            continue
        if store.model == settings.model and store.config == config and store.corpus == corpus:
            return store
        store.close()
    return None


def _copy_checkpoint(source: Path, target: Path, attempts: int = 5) -> None:
    """The newest checkpoint, copied whole; a server may replace it meanwhile, so a vanished one is looked up
    again (after ``attempts``, none: a restored store then builds its in-memory indexes from its records)."""
    for _ in range(attempts):
        try:
            name = json.loads((source / LATEST).read_text(encoding="utf-8"))["checkpoint"]
            shutil.copytree(source / name, target / name)
        except (OSError, ValueError, KeyError, shutil.Error):
            shutil.rmtree(target, ignore_errors=True)
            continue
        write_durably(target / LATEST, json.dumps({"checkpoint": name}).encode())
        return


def _remove_leftovers(root: Path, keep: list[Path | None]) -> None:
    """Store folders no build will use again (a finished build's predecessor, a killed build's for other
    settings) and stale links; ``keep`` stays. Everything here is derived: nothing of the record is lost."""
    kept = {folder.resolve() for folder in keep if folder is not None}
    for folder in [*root.glob("store-*"), *root.glob("build-*"), *root.glob(".tmp-build-*")]:  # build-*: format 3
        if folder.resolve() not in kept:
            shutil.rmtree(folder, ignore_errors=True)
    for link in root.glob(".current-store-*"):
        link.unlink(missing_ok=True)


__all__ = ["FaissStore", "FaissSnapshot", "open_current", "current_folder", "StoreProblem"]
