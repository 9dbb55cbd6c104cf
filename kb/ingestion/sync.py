"""`kb build`: bring the store in line with the corpus folder, through the same write path as the API.

Only files whose size or modification time changed are read again, only documents whose content
hash changed are embedded, and documents are written in batches, each one transaction: a build
killed midway keeps every batch it committed and the next build carries on from there.
Documents a store keeps itself (the PostgreSQL store's API documents) are left alone. When the
index no longer fits (another model, chunk settings or index format, ``--force``, a damaged index
file), the store derives a new index from its record, beside the live one, and switches to it only
when it is complete (each store's ``for_build`` and ``rederive``); nothing in the record is touched.
The store remembers the corpus folder it was synced with: pointing kb at another folder switches
the index to that folder's documents (one line says so), and pointing it back brings them back.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from kb.documents.access import ACCESS_FILE, FolderAccess, access_file_stat
from kb.documents.chunking import Chunked, chunk_all
from kb.documents.document import Document
from kb.documents.folder import corpus_files, tidy
from kb.documents.reading import read_files
from kb.embedding.embedder import Embedder, embedder_for
from kb.embedding.prepare import build_config, embed_chunked
from kb.embedding.worker import SMALL_WRITE
from kb.errors import StoreUnwritable
from kb.settings import Settings
from kb.stores import store_class
from kb.stores.base import PreparedDocument, Store

log = logging.getLogger(__name__)

ProgressFactory = Callable[[int], Callable[[int], None]]
COMMIT_BATCHES = 16  # embedding batches (KB_BATCH_SIZE passages each) per build transaction: 512 by default
COMMIT_CHARS = 64_000  # characters of documents per transaction when a write worker embeds them (``_write_prepared``)
Prepare = Callable[[list[Document], Settings], list[PreparedDocument]]  # chunk and embed, elsewhere (a write worker)


@dataclass
class BuildReport:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # files changed within the settle time: left for a later sync
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
        listed = {key: data.pop(key) for key in ("added", "changed", "removed", "unchanged", "skipped_files", "held")}
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


def build_index(
    settings: Settings,
    force: bool = False,
    embedder: Embedder | None = None,
    progress: ProgressFactory | None = None,
    documents: list[Document] | None = None,
    settle: float = 0.0,
    live: Store | None = None,
    prepare: Prepare | None = None,
) -> BuildReport:
    """Bring the store in line with the corpus folder (or with exactly ``documents``).

    When the index no longer fits (another model, chunking or index format, ``force``, a damaged file),
    the store derives a new one from its record first (kb/stores/record.py), beside the live one. A file
    modified less than ``settle`` seconds ago is left as the index has it (``report.held``): it may still be
    being written (kb serve's folder watch, kb/ingestion/watch.py). ``live``: a server's live store, written
    in place when it fits this folder and these settings (no store opened and loaded again, no checkpoint:
    its log keeps the writes, as for API writes). ``prepare``: where a write larger than SMALL_WRITE characters is
    chunked and embedded (a server's write worker, so that its searches never wait for the model)."""
    began = time.perf_counter()
    report = BuildReport()
    if documents is None and not Path(settings.corpus_dir).is_dir():
        raise FileNotFoundError(f"corpus folder {settings.corpus_dir} does not exist (set KB_CORPUS_DIR)")
    kind = store_class(settings)
    models = _Models(settings, embedder, prepare)
    folder = None if documents is not None else str(Path(settings.corpus_dir).resolve())
    with kind.build_lock(settings):
        owned = not (live is not None and not force and live.config == build_config(settings)
                     and live.corpus in (None, folder))
        store, why = kind.for_build(settings, build_config(settings), force, models.dimension) if owned else (live, None)
        try:
            if why is not None:
                log.warning(why)
                report.reason = why
                store = store.rederive(lambda target, batch: _write(target, settings, models.embedder(), batch,
                                                                    report, progress))
            if folder is not None and store.corpus not in (None, folder):
                log.warning("switching the index from %s to %s (the documents of %s stay there: point "
                            "KB_CORPUS_DIR back at it to have them again)", store.corpus, folder, store.corpus)
                report.reason = report.reason or f"corpus folder changed from {store.corpus}"
            if folder is not None:
                tidy(Path(settings.corpus_dir))
            wanted, files_read, files_gone = _wanted(store, settings, documents, report, settle)
            try:
                _sync(store, settings, models, progress, report, documents, wanted, files_read, files_gone)
                with store.record.locked():  # no write to the record comes between the last look and the switch
                    if not store.live:  # catch up with what writers added to the record meanwhile
                        caught = BuildReport()
                        _sync(store, settings, models, progress, caught, documents, *_wanted(store, settings, documents,
                                                                                           caught))
                        for key in ("added", "changed", "removed"):
                            getattr(report, key).extend(getattr(caught, key))
                        report.passages_embedded += caught.passages_embedded
                        report.written = report.written or caught.written
                    made = (store.finish(folder, written=report.written or why is not None)
                            if owned or store.corpus != folder else False)
            except OSError as exc:  # a write failed (SQLite's own failures are StoreUnwritable already)
                raise StoreUnwritable(f"cannot write the index at {exc.filename or store.location} "
                                      f"({exc.strerror or exc}): free some space or make it writable, then run "
                                      "`kb build` again; what was written before is kept") from None
            report.written = report.written or why is not None or made
            report.reason = report.reason or ("documents changed" if report.written else "nothing changed")
            report.documents, report.passages = store.counts()
            report.index_path = store.location
        finally:
            if owned:
                store.close()
    report.seconds = time.perf_counter() - began
    return report


class _Models:
    """The embedder, loaded only when something has to be embedded (a build that changes nothing needs none)."""

    def __init__(self, settings: Settings, embedder: Embedder | None, prepare: Prepare | None = None) -> None:
        self.settings, self._embedder, self.prepare = settings, embedder, prepare

    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = embedder_for(self.settings)
        return self._embedder

    def dimension(self) -> int:
        return self.embedder().dimension


def _sync(store: Store, settings: Settings, models: _Models, progress: ProgressFactory | None,
          report: BuildReport, documents: list[Document] | None, wanted: list[Document],
          files_read: dict[str, tuple[int, int]], files_gone: list[str]) -> None:
    fingerprints = store.fingerprints()
    to_write: list[Document] = []
    for document in wanted:
        known = fingerprints.get(document.id)
        if known is None:
            report.added.append(document.id)
            to_write.append(document)
        elif known != document.fingerprint:
            report.changed.append(document.id)
            to_write.append(document)
        else:
            report.unchanged.append(document.id)
    keep = {d.id for d in wanted}
    if documents is not None:
        report.removed = sorted(set(fingerprints) - keep)
    else:  # documents whose file is gone, or no longer holds them; documents the store keeps itself stay
        read_paths = set(files_read) | set(files_gone)
        report.removed = sorted(doc_id for doc_id, (_, path) in fingerprints.items()
                                if path and path in read_paths and doc_id not in keep)
        report.unchanged += [doc_id for doc_id, (_, path) in fingerprints.items()
                             if path and path not in read_paths and doc_id not in keep]
    if to_write or report.removed:
        if models.prepare is not None and sum(len(d.text) for d in to_write) > SMALL_WRITE:
            _write_prepared(store, settings, models.prepare, to_write, report, progress)
        else:  # here: a few passages, on the engine queries keep warm (``Embedder._passages_on_onnx``)
            _write(store, settings, models.embedder(), to_write, report, progress)
        store.delete(report.removed)
    store.record_files({**files_read, **{path: None for path in files_gone}})
    report.written = bool(to_write or report.removed)


def _wanted(store: Store, settings: Settings, documents: list[Document] | None, report: BuildReport,
            settle: float = 0.0) -> tuple[list[Document], dict[str, tuple[int, int]], list[str]]:
    """(documents read, stats of the files read, corpus paths that are gone)."""
    if documents is not None:
        return list(documents), {}, []
    known = store.file_stats()
    corpus = Path(settings.corpus_dir)
    listed = list(corpus_files(corpus))
    seen = {relative for relative, _, _ in listed}
    rules, rules_stat = FolderAccess.read(corpus), access_file_stat(corpus)  # unreadable rules: no sync at all
    changed = [entry for entry in listed if known.get(entry[0]) != entry[2]]  # unchanged files are not even opened
    if known.get(ACCESS_FILE) != rules_stat:  # the rules changed: every file is read again (only access may differ)
        changed = listed
    if settle > 0:
        now = time.time_ns()
        quiet = now - int(settle * 1e9)
        recent = {entry[0] for entry in changed if quiet < entry[2][1] <= now + 10**9}  # (a future mtime: a skewed clock)
        report.held = sorted(recent)
        changed = [entry for entry in changed if entry[0] not in recent]
    found, read = read_files(changed, report.skipped_files, settings.max_document_mb * 2**20, rules)
    if rules_stat is not None:
        read[ACCESS_FILE] = rules_stat
        seen.add(ACCESS_FILE)
    gone = [path for path in known if path not in seen]
    return found, read, gone


def _write_prepared(store: Store, settings: Settings, prepare: Prepare, documents: Sequence[Document],
                    report: BuildReport, progress: ProgressFactory | None) -> None:
    """Documents chunked and embedded by ``prepare``, about COMMIT_CHARS characters a transaction; progress counts
    documents. In a server that is the write worker, a process at lower priority: a drop of a thousand files
    kept searches waiting for the model (p95 906 ms against 15 ms idle, benchmarks/watch.py) when the server
    embedded them itself."""
    tick = progress(len(documents)) if progress else None
    batch: list[Document] = []
    size = 0
    for document in [*documents, None]:
        if document is not None:
            batch.append(document)
            size += len(document.text)
        if batch and (document is None or size >= COMMIT_CHARS):
            originals = {d.id: d.original for d in batch}  # the worker gets no file bytes; the store keeps them
            prepared = [replace(p, document=replace(p.document, original=originals.get(p.document.id)))
                        for p in prepare([replace(d, original=None) for d in batch], settings)]
            store.add(prepared)
            report.passages_embedded += sum(len(p.passages) for p in prepared)
            if tick:
                tick(len(batch))
            batch, size = [], 0


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
