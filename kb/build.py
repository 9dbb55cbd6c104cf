"""`kb build`: bring the store in line with the corpus folder, through the same write path as the API.

Only files whose size or modification time changed are read again, only documents whose content
hash changed are embedded, and documents are written in batches, each one transaction: a build
killed midway keeps every batch it committed and the next build carries on from there.
Documents sent through the API (they have no corpus file) are left alone. A change of model or
chunk settings (or ``--force``) builds a new store beside the old one, carrying the API's
documents over, and makes it current only when it is complete.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from kb.embed import Embedder, embedder_for
from kb.faiss_store import FaissStore, current_folder
from kb.ingest import Document, corpus_files, read_files
from kb.prepare import Chunked, build_config, chunk_all, embed_chunked
from kb.settings import Settings
from kb.store import PreparedDocument, Store, StoreMismatch, StoreMissing, StoreProblem, StoreUnwritable

log = logging.getLogger(__name__)

ProgressFactory = Callable[[int], Callable[[int], None]]
COMMIT_BATCHES = 16  # embedding batches (KB_BATCH_SIZE passages each) per build transaction: 512 by default


@dataclass
class BuildReport:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)
    passages_embedded: int = 0
    passages: int = 0
    documents: int = 0
    seconds: float = 0.0
    written: bool = False
    reason: str = ""
    index_path: str = ""

    def to_json(self, ids: bool = False) -> dict[str, Any]:
        """Counts under the plain keys; with ``ids``, the document ids of each kind under ``ids``
        (left out by default: they grow with the corpus, 70 KB for 5,000 documents)."""
        data = asdict(self)
        listed = {key: data.pop(key) for key in ("added", "changed", "removed", "unchanged", "skipped_files")}
        counts = {**{key: len(value) for key, value in listed.items()}, **data}
        return {**counts, "ids": listed} if ids else counts

    def summary(self) -> str:
        if not self.written:
            return f"index up to date: {self.documents} documents, {self.passages} passages ({self.reason})"
        return (
            f"index built in {self.seconds:.1f}s: {len(self.added)} added, {len(self.changed)} changed, "
            f"{len(self.removed)} removed, {len(self.unchanged)} unchanged documents; "
            f"{self.passages_embedded} of {self.passages} passages embedded ({self.reason})"
        )


@contextlib.contextmanager
def build_lock(root: Path) -> Iterator[None]:
    """One build at a time per index folder (API writes go straight to the store's transactions)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        handle = open(root / ".lock", "a")
    except OSError as exc:
        raise StoreUnwritable(f"cannot write the new index to {root} ({exc.strerror or exc}): free some space or make "
                              f"{root} writable, then run `kb build` again; the previous index is unchanged") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_index(
    settings: Settings,
    force: bool = False,
    embedder: Embedder | None = None,
    progress: ProgressFactory | None = None,
    documents: list[Document] | None = None,
) -> BuildReport:
    """Bring the store in line with the corpus folder (or with exactly ``documents``)."""
    began = time.perf_counter()
    report = BuildReport()
    root = Path(settings.index_dir)
    if documents is None and not Path(settings.corpus_dir).is_dir():
        raise FileNotFoundError(f"corpus folder {settings.corpus_dir} does not exist (set KB_CORPUS_DIR)")
    with build_lock(root):
        if settings.store == "postgres":
            store, reason, carried = _open_or_reset_database(settings, force, embedder)
            fresh = False
        else:
            _remove_unfinished(root)
            store, reason, carried = _open_or_create(root, settings, force, embedder)
            fresh = current_folder(root) != store.folder
        try:
            wanted, files_read, files_gone = _wanted(store, settings, documents, report, fresh)
            try:
                _sync(store, settings, embedder, progress, report, documents, wanted + [
                    d for d in carried if d.id not in {w.id for w in wanted}], files_read, files_gone, fresh)
            except OSError as exc:  # a write failed (SQLite's own failures are StoreUnwritable already)
                raise StoreUnwritable(f"cannot write the new index to {exc.filename or root} ({exc.strerror or exc}): "
                                      f"free some space or make {root} writable, then run `kb build` again; "
                                      "what was written before is kept") from None
            report.reason = reason if report.written else "nothing changed"
        finally:
            store.close()
    report.seconds = time.perf_counter() - began
    return report


def _remove_unfinished(root: Path) -> None:
    """Store folders a killed full rebuild left behind (never current), and stale links; the current one stays."""
    current = current_folder(root)
    for folder in [*root.glob("store-*"), *root.glob("build-*"), *root.glob(".tmp-build-*")]:  # build-*: format 3
        if folder.resolve() != current:
            shutil.rmtree(folder, ignore_errors=True)
    for link in root.glob(".current-store-*"):
        link.unlink(missing_ok=True)


def _sync(store: Store, settings: Settings, embedder: Embedder | None, progress: ProgressFactory | None,
          report: BuildReport, documents: list[Document] | None, wanted: list[Document],
          files_read: dict[str, tuple[int, int]], files_gone: list[str], fresh: bool) -> None:
    fingerprints = store.fingerprints()
    to_write: list[Document] = []
    for document in wanted:
        known = fingerprints.get(document.id)
        if known is None:
            report.added.append(document.id)
            to_write.append(document)
        elif known[0] != document.content_hash or known[1] != document.path:
            report.changed.append(document.id)
            to_write.append(document)
        else:
            report.unchanged.append(document.id)
    keep = {d.id for d in wanted}
    if documents is not None:
        report.removed = sorted(set(fingerprints) - keep)
    else:  # corpus documents whose file is gone, or no longer holds them; API documents stay
        read_paths = set(files_read) | set(files_gone)
        report.removed = sorted(doc_id for doc_id, (_, path) in fingerprints.items()
                                if path and path in read_paths and doc_id not in keep)
        report.unchanged += [doc_id for doc_id, (_, path) in fingerprints.items()
                             if path and path not in read_paths and doc_id not in keep]
    if to_write or report.removed:
        embedder = embedder or embedder_for(settings)
        _write(store, settings, embedder, to_write, report, progress)
        store.delete(report.removed)
    store.record_files({**files_read, **{path: None for path in files_gone}})
    report.written = bool(to_write or report.removed or fresh)
    if report.written and isinstance(store, FaissStore):
        store.checkpoint()
    if fresh:
        store.make_current()
    report.documents, report.passages = store.counts()
    report.index_path = store.location


def _open_or_create(root: Path, settings: Settings, force: bool, embedder: Embedder | None
                    ) -> tuple[FaissStore, str, list[Document]]:
    """The current store when it fits the settings; else a new one, with the API's documents to carry over."""
    config = build_config(settings)
    reason, old = "no previous index", None
    folder = current_folder(root)
    if folder is not None:
        try:
            old = FaissStore(folder, settings, lazy=True)  # a sync that writes nothing needs no FAISS or BM25
        except StoreProblem as exc:
            reason = f"previous index unreadable, rebuilding everything: {exc}"
            log.warning(reason)
    if old is not None and old.config == config and not force:
        return old, "documents changed", []
    carried: list[Document] = []
    if old is not None:
        reason = "forced full rebuild" if old.config == config else \
            f"settings changed ({_config_change(old.config, config)}), re-embedding everything"
        log.warning(reason)
        carried = _api_documents(old)
        old.close()
    embedder = embedder or embedder_for(settings)
    return FaissStore.create(root, settings, settings.model, embedder.dimension, config), reason, carried


def _open_or_reset_database(settings: Settings, force: bool, embedder: Embedder | None
                            ) -> tuple[Store, str, list[Document]]:
    """The database store (its tables created when missing); emptied first when the model or chunk
    settings changed (or with ``force``), with the API's documents to carry over.

    Searches see the store fill up again during such a rebuild (a FAISS rebuild builds a new store
    beside the old one instead); the README says so.
    """
    from kb.pg_store import PostgresStore

    config = build_config(settings)
    try:
        store = PostgresStore(settings)
    except StoreMissing:
        embedder = embedder or embedder_for(settings)
        return PostgresStore.create(settings, settings.model, embedder.dimension, config), "no previous index", []
    if store.config == config and store.model == settings.model and not force:
        return store, "documents changed", []
    embedder = embedder or embedder_for(settings)
    if embedder.dimension != store.dimension:
        store.close()
        raise StoreMismatch(f"{store.location} holds {store.dimension}-dimension vectors and {settings.model} makes "
                            f"{embedder.dimension}: run `kb db reset` (it deletes every document, the API's too), "
                            "then `kb build`")
    reason = "forced full rebuild" if store.config == config else \
        f"settings changed ({_config_change(store.config, config)}), re-embedding everything"
    log.warning(reason)
    carried = _api_documents(store)
    store.reset(settings.model, config)
    return store, reason, carried


def _api_documents(store: Store) -> list[Document]:
    """Documents sent through the API live only in the store: a rebuild must carry them over."""
    found = []
    for doc_id, (_, path) in store.fingerprints().items():
        if not path:
            stored = store.document(doc_id)
            found.append(Document(stored.id, stored.title, stored.source, stored.text, stored.metadata, ""))
    return found


def _wanted(store: Store, settings: Settings, documents: list[Document] | None, report: BuildReport,
            fresh: bool) -> tuple[list[Document], dict[str, tuple[int, int]], list[str]]:
    """(documents read, stats of the files read, corpus paths that are gone)."""
    if documents is not None:
        return list(documents), {}, []
    known = {} if fresh else store.file_stats()
    listed = list(corpus_files(Path(settings.corpus_dir)))
    seen = {relative for relative, _, _ in listed}
    changed = [entry for entry in listed if known.get(entry[0]) != entry[2]]  # unchanged files are not even opened
    found, read = read_files(changed, report.skipped_files, settings.max_document_mb * 2**20)
    gone = [path for path in known if path not in seen]
    return found, read, gone


def _write(store: Store, settings: Settings, embedder: Embedder, documents: Sequence[Document],
           report: BuildReport, progress: ProgressFactory | None) -> None:
    """Chunk everything, then embed and store about COMMIT_BATCHES embedding batches per transaction."""
    chunked = chunk_all(documents, embedder, settings)
    total = sum(len(passages) for _, passages in chunked)
    log.info("embedding %d passages of %d documents", total, len(documents))
    tick = progress(total) if progress else None
    batch: Chunked = []
    size = 0
    for item in [*chunked, None]:
        if item is not None:
            batch.append(item)
            size += len(item[1])
        if batch and (item is None or size >= COMMIT_BATCHES * settings.batch_size):
            prepared: list[PreparedDocument] = embed_chunked(batch, embedder, settings, tick)
            store.add(prepared)
            report.passages_embedded += size
            batch, size = [], 0


def _config_change(old: Any, new: dict[str, Any]) -> str:
    if not isinstance(old, dict):
        return "no recorded settings"
    return ", ".join(f"{key}: {old.get(key)!r} -> {value!r}" for key, value in new.items() if old.get(key) != value)
