"""Adding and removing documents while kb runs: each write costs its own documents, not the corpus.

A write reads, chunks and embeds only its documents, then stores them in one transaction of the
store, which is durable when it returns: the write is acknowledged after that, and searches see
it at once. Concurrent writes are grouped: whoever finds the writer free takes every write
waiting at that moment and stores them in one update (as queries are micro-batched), so four
writing clients do not serialize into four updates. While a write embeds, queries go first
(the model is held one small slice of passages at a time).
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from kb.documents.document import Document, slug, valid_id
from kb.documents.folder import is_own
from kb.documents.readers import parse_record, reader_for
from kb.embedding.batching import MicroBatcher
from kb.embedding.prepare import build_config, prepare
from kb.errors import DocumentError, StoreUnavailable, StoreUnwritable, UnreadableDocument, WorkerFailed
from kb.ingestion.sync import BuildReport
from kb.settings import Settings
from kb.stores.base import PreparedDocument, Store

WRITE_SLICE = 8  # passages embedded per hold of the model while a server writes (queries pass between slices)
MAX_NAME_BYTES = 255  # what Linux file systems allow in one name


Preparer = Callable[[Sequence[Document], Settings], list[PreparedDocument]]


class Library:
    def __init__(self, settings: Settings, embedder: Any, store: Callable[[], Store],
                 preparer: Preparer | None = None) -> None:
        """``preparer`` chunks and embeds a write's documents (a server passes its worker process's);
        by default they are embedded here, a slice at a time, queries first."""
        self.settings = settings
        self.embedder = embedder
        self._store = store  # the current store (a server's follows full rebuilds)
        self._prepare = preparer or (lambda documents, settings: prepare(documents, embedder, settings,
                                                                          slice_size=WRITE_SLICE))
        # Writes waiting at the moment the writer frees up are stored together, as queries are embedded together.
        self._writer = MicroBatcher(self._write_group, max_batch=10_000)

    @property
    def groups(self) -> int:
        """Store updates made (for tests and benchmarks)."""
        return self._writer.batches

    @property
    def writes(self) -> int:
        """Writes those updates carried."""
        return self._writer.texts

    @property
    def queued(self) -> int:
        """Writes waiting for the writer (for /metrics)."""
        return self._writer.waiting

    @property
    def store(self) -> Store:
        """The store written to now (a server's follows a rebuild)."""
        return self._store()

    def add_record(self, record: Any, groups: Sequence[str] | None = None) -> tuple[dict, BuildReport]:
        """A JSON document {id?, title, text, source?, date?, metadata?, access?}; an existing id is replaced.
        ``groups``: the writer's (None: one who may write anything; see ``write``)."""
        try:
            parsed = parse_record(record, "the document")
        except UnreadableDocument as exc:
            raise DocumentError("invalid_document", str(exc)) from None
        doc_id = parsed.id or _new_id(parsed.title)
        if not valid_id(doc_id):
            raise DocumentError("invalid_id", f"document id {doc_id[:80]!r} may hold only letters, digits, '.', '_' and '-'")
        report = self.write([self._store().record.json_document(parsed, doc_id)], groups)
        return self.describe(doc_id), report

    def add_file(self, name: str, data: bytes, groups: Sequence[str] | None = None,
                 access: Sequence[str] | None = None) -> tuple[list[dict], BuildReport]:
        """A file of a supported type (an upload, or `kb add`): read before anything is stored, then kept
        where the store keeps what kb is given (kb/stores/record.py). ``access``: the groups that may read what
        it holds (a .jsonl line's own access wins); None or (): public."""
        safe = check_file_name(name)
        if reader_for(safe) is None:
            raise DocumentError("unsupported_type", f"kb cannot read {Path(safe).suffix or 'files without a type'}; "
                                "send .txt, .md, .html, .pdf or .jsonl")
        try:
            documents = self._store().record.uploaded(safe, data, self.settings.max_upload_mb * 2**20, access)
        except UnreadableDocument as exc:
            raise DocumentError("unreadable_document", f"{safe}: {exc}") from None
        report = self.write(documents, groups)
        return [self.describe(d.id) for d in documents], report

    def remove(self, doc_id: str, groups: Sequence[str] | None = None) -> BuildReport:
        """Delete a document; one from a file loses its file too (else the next sync would bring it back). A writer
        of ``groups`` deletes only documents they may read (any other is not found)."""
        store = self._store()
        stored = store.document(doc_id, groups)
        if stored is None:
            raise DocumentError("not_found", f"no document with id {doc_id!r}")
        if stored.path:
            siblings = [other for other, (_, path) in store.fingerprints().items()
                        if path == stored.path and other != doc_id]
            if siblings:
                raise DocumentError("shared_file", f"document {doc_id!r} comes from {stored.path} with "
                                    f"{len(siblings)} other document(s); edit that file instead")
        with store.record.locked():
            store = self._store()  # the live one: a rebuild switches under this lock (kb/ingestion/sync.py)
            changes = _store(store.record.forget, stored.path)
            try:
                store.delete([doc_id])
                if stored.path:
                    store.record_files({stored.path: None})
            except StoreUnwritable as exc:
                changes.rollback()
                raise DocumentError("index_unwritable", f"the document is not deleted: {exc}") from None
            except StoreUnavailable as exc:
                changes.rollback()
                raise DocumentError("store_unavailable", f"the document is not deleted: {exc}") from None
            except BaseException:
                changes.rollback()
                raise
            changes.keep()
        report = BuildReport(removed=[doc_id], written=True, reason="document deleted")
        with store.snapshot() as snapshot:
            report.documents, report.passages = snapshot.counts()
        return report

    def describe(self, doc_id: str) -> dict:
        """What the store holds for a document: id, title, source, path, passage count."""
        document = self._store().document(doc_id)
        return {"id": doc_id, **{k: getattr(document, k, None) for k in ("title", "source", "path", "passages")}}

    def write(self, documents: list[Document], groups: Sequence[str] | None = None) -> BuildReport:
        """Documents as the record keeps them (``record.json_document``, ``record.uploaded``), written as one
        write: kept in the record, then indexed, in one transaction with whatever other writes wait meanwhile.
        A document may not replace one of another file (409 id_taken).

        A writer of ``groups`` (a key with --write, kb/stores/keys.py) gives documents no access but within their
        groups, and replaces only documents they may read (403 forbidden)."""
        store = self._store()
        known = store.fingerprints([d.id for d in documents])
        if groups is not None:
            for document in documents:
                outside = sorted(set(document.access) - set(groups))
                if outside:
                    raise DocumentError("forbidden", f"document {document.id!r} names group(s) {', '.join(outside)}, "
                                        "which your key is not in; a key gives documents only its own groups")
                if document.id in known and store.document(document.id, groups) is None:
                    raise DocumentError("forbidden", f"document id {document.id!r} belongs to a document your key "
                                        "may not read, so it may not replace it; choose another id")
        for document in documents:
            path = known.get(document.id, ("", ""))[1]
            if path and path != document.path and is_own(path):  # e.g. an upload sent again with(out) access
                raise DocumentError("id_taken", f"id {document.id!r} is kept as {path}, which this write would not "
                                    f"replace; delete document {document.id!r} first, then send it again")
            if path and path != document.path:
                raise DocumentError("id_taken", f"id {document.id!r} belongs to the file {path}; change that file, "
                                    "or choose another id")
        return self._submit(documents)

    # ---- grouped writes -------------------------------------------------------------------

    def _prepared(self, documents: list[Document]) -> list[PreparedDocument]:
        """Chunked and embedded (without the originals' bytes), then given their originals back for the store."""
        if not documents:
            return []
        try:
            prepared = self._prepare([replace(d, original=None) for d in documents], self.settings)
        except WorkerFailed as exc:
            raise DocumentError("embedding_failed", f"{exc}; nothing was stored, try again") from None
        originals = {d.id: d.original for d in documents}
        return [replace(p, document=replace(p.document, original=originals.get(p.document.id))) for p in prepared]

    def _submit(self, documents: list[Document]) -> BuildReport:
        try:
            return self._writer.encode(documents)
        except StoreUnwritable as exc:
            raise DocumentError("storage_unwritable", str(exc)) from None
        except StoreUnavailable as exc:
            raise DocumentError("store_unavailable", str(exc)) from None

    def _write_group(self, group: Sequence[list[Document]]) -> list[BuildReport]:
        """One store transaction for every write in the group; a report for each write.

        Each document is kept in the store's record first (a file written durably, on the FAISS store), then
        indexed; if indexing fails, the record is rolled back, so a refused write leaves nothing behind."""
        writing = getattr(self.embedder, "writing", contextlib.nullcontext)
        with writing():
            return self._write_group_now(group)

    def _write_group_now(self, group: Sequence[list[Document]]) -> list[BuildReport]:
        store = self._store()
        latest: dict[str, Document] = {}  # the last write of an id in the group wins, whole
        for documents in group:
            for document in documents:
                latest[document.id] = document
        known = store.fingerprints(list(latest))
        fresh = [d for d in latest.values() if known.get(d.id) != d.fingerprint]
        prepared = self._prepared(fresh)  # embedded before any lock is taken: it can take minutes
        with store.record.locked():  # another process may write the same ids: record and index change together
            store = self._store()  # the live one: a rebuild switches under this lock (kb/ingestion/sync.py)
            if store.config != build_config(self.settings):
                raise DocumentError("store_unavailable", f"the index in {store.location} was rebuilt with other "
                                    "settings since this server started: restart it; nothing was stored")
            now = store.fingerprints(list(latest))
            done = {d.id for d in fresh}
            prepared += self._prepared([d for d in latest.values() if d.id not in done
                                        and now.get(d.id) != d.fingerprint])
            changes = _store(store.record.save, list(latest.values()))
            try:
                store.add(prepared)
                store.record_files(store.record.stats([d.path for d in latest.values()]))
            except BaseException:
                changes.rollback()
                raise
            changes.keep()
        embedded = {p.document.id: len(p.passages) for p in prepared}
        with store.snapshot() as snapshot:
            counts = snapshot.counts()
        reports = []
        for documents in group:
            report = BuildReport(written=True, reason="documents written", documents=counts[0], passages=counts[1])
            for document in documents:
                if document.id in embedded:
                    (report.changed if document.id in known else report.added).append(document.id)
                    report.passages_embedded += embedded[document.id]
                else:
                    report.unchanged.append(document.id)
            reports.append(report)
        return reports


def check_file_name(name: str) -> str:
    """The plain file name of an upload, or a DocumentError (400) that names what is wrong with it."""
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise DocumentError("invalid_name", f"file name {name[:80]!r} holds a NUL or another control character")
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        raise DocumentError("name_too_long",
                            f"file name is {size} bytes long; the limit is {MAX_NAME_BYTES} bytes (UTF-8)")
    safe = Path(name).name
    if not safe or safe.startswith(".") or safe != name.replace("\\", "/").split("/")[-1]:
        raise DocumentError("invalid_name", f"file name {name[:80]!r} must be a plain name without folders")
    return safe


def _store(action, *args):
    """A write to the record; a full or read-only disk is a 507 that changed nothing (writes are atomic)."""
    try:
        return action(*args)
    except OSError as exc:
        raise DocumentError("storage_unwritable",
                            f"could not store the document ({exc.strerror or exc}); nothing was changed") from None


def _new_id(title: str) -> str:
    import uuid

    stem = slug(title.lower())[:60].strip("-.") or "doc"
    return f"{stem}-{uuid.uuid4().hex[:8]}"
