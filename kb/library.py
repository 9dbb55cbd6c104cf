"""Adding and removing documents while kb runs: stored durably first, then indexed.

A document given to kb (by `kb add`, or the API) is written into the corpus folder, flushed
to disk, and only then indexed; the write is acknowledged after the new index is in place.
If kb stops in between, the document is on disk and the next `kb build` or `kb serve`
(which builds before serving) indexes it: nothing acknowledged is lost.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Callable

from kb.build import BuildReport, build_index
from kb.files import remove_durably, write_atomically
from kb.index import IndexStore, IndexUnwritable
from kb.ingest import documents_from, slug, valid_id
from kb.readers import UnreadableDocument, parse_record, reader_for
from kb.settings import Settings

API_FOLDER = "api"  # corpus/api/<id>.jsonl: documents sent as JSON
UPLOAD_FOLDER = "uploads"  # corpus/uploads/<name>: files sent by upload or `kb add`


class DocumentError(ValueError):
    """A document kb will not take; ``status`` is the HTTP status that fits."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Library:
    def __init__(self, settings: Settings, embedder: Any = None, on_change: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.embedder = embedder
        self.on_change = on_change
        self._lock = threading.Lock()

    @property
    def corpus(self) -> Path:
        return Path(self.settings.corpus_dir)

    def add_record(self, record: Any) -> tuple[dict, BuildReport]:
        """A JSON document {id?, title, text, source?, date?, metadata?}; an existing id is replaced."""
        try:
            parsed = parse_record(record, "the document")
        except UnreadableDocument as exc:
            raise DocumentError(400, "invalid_document", str(exc)) from None
        doc_id = parsed.id or _new_id(parsed.title)
        if not valid_id(doc_id):
            raise DocumentError(400, "invalid_id", f"document id {doc_id[:80]!r} may hold only letters, digits, '.', '_' and '-'")
        row = {"id": doc_id, "title": parsed.title, "text": parsed.text}
        metadata = dict(parsed.metadata)
        for key in ("source", "date"):
            if key in metadata:
                row[key] = metadata.pop(key)
        if metadata:
            row["metadata"] = metadata
        data = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
        path = self.corpus / API_FOLDER / f"{doc_id}.jsonl"
        with self._lock:
            self._check_not_elsewhere(doc_id, path)
            _store(write_atomically, path, data)
            report = self._reindex()
        return self.describe(doc_id), report

    def add_file(self, name: str, data: bytes) -> tuple[list[dict], BuildReport]:
        """A file of a supported type; it is read before it is stored, so a bad file changes nothing."""
        safe = check_file_name(name)
        reader = reader_for(safe)
        if reader is None:
            raise DocumentError(415, "unsupported_type", f"kb cannot read {Path(safe).suffix or 'files without a type'}; "
                                "send .txt, .md, .html, .pdf or .jsonl")
        relative = f"{UPLOAD_FOLDER}/{safe}"
        try:
            documents = documents_from(reader(data), relative, self.settings.max_upload_mb * 2**20)
        except UnreadableDocument as exc:
            raise DocumentError(422, "unreadable_document", f"{safe}: {exc}") from None
        with self._lock:
            for document in documents:
                self._check_not_elsewhere(document.id, self.corpus / relative)
            _store(write_atomically, self.corpus / relative, data)
            report = self._reindex()
        return [self.describe(d.id) for d in documents], report

    def add_path(self, source: Path) -> tuple[list[dict], BuildReport]:
        """`kb add`: copy a file into the corpus's uploads folder and index it."""
        return self.add_file(source.name, Path(source).read_bytes())

    def remove(self, doc_id: str) -> BuildReport:
        """Delete the document's file from the corpus, then drop it from the index."""
        with self._lock:
            documents = self._manifest_documents()
            stored = documents.get(doc_id)
            if stored is None:
                raise DocumentError(404, "not_found", f"no document with id {doc_id!r}")
            if not stored.get("path"):
                raise DocumentError(409, "not_removable", f"document {doc_id!r} has no file in the corpus to remove")
            siblings = [other for other, d in documents.items() if d.get("path") == stored["path"] and other != doc_id]
            if siblings:
                raise DocumentError(409, "shared_file", f"document {doc_id!r} comes from {stored['path']} with "
                                    f"{len(siblings)} other document(s); edit that file instead")
            path = self.corpus / stored["path"]
            if path.exists():
                _store(remove_durably, path)
            return self._reindex()

    def describe(self, doc_id: str) -> dict:
        """What the index holds for a document: id, title, source, path, passage count."""
        entry = self._manifest_documents().get(doc_id, {})
        return {"id": doc_id, **{k: entry.get(k) for k in ("title", "source", "path", "passages")}}

    def _check_not_elsewhere(self, doc_id: str, target: Path) -> None:
        stored = self._manifest_documents().get(doc_id)
        expected = target.relative_to(self.corpus).as_posix()
        if stored and stored.get("path") and stored["path"] != expected:
            raise DocumentError(409, "id_taken", f"id {doc_id!r} belongs to {stored['path']}; choose another id")

    def _reindex(self) -> BuildReport:
        try:
            report = build_index(self.settings, embedder=self.embedder)
        except IndexUnwritable as exc:
            raise DocumentError(507, "index_unwritable", f"the corpus is updated but the index is not: {exc}") from None
        if self.on_change:
            self.on_change()
        return report

    def _manifest_documents(self) -> dict[str, dict]:
        manifest = IndexStore(self.settings.index_dir).read_manifest() or {}
        return manifest.get("documents", {})


def _store(action, *args) -> None:
    """A corpus write; a full or read-only disk is a 507 that changed nothing (the write is atomic)."""
    try:
        action(*args)
    except OSError as exc:
        raise DocumentError(507, "storage_unwritable",
                            f"could not store the document ({exc.strerror or exc}); nothing was changed") from None


MAX_NAME_BYTES = 255  # what Linux file systems allow in one name


def check_file_name(name: str) -> str:
    """The plain file name of an upload, or a DocumentError (400) that names what is wrong with it."""
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise DocumentError(400, "invalid_name", f"file name {name[:80]!r} holds a NUL or another control character")
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        raise DocumentError(400, "name_too_long",
                            f"file name is {size} bytes long; the limit is {MAX_NAME_BYTES} bytes (UTF-8)")
    safe = Path(name).name
    if not safe or safe.startswith(".") or safe != name.replace("\\", "/").split("/")[-1]:
        raise DocumentError(400, "invalid_name", f"file name {name[:80]!r} must be a plain name without folders")
    return safe


def _new_id(title: str) -> str:
    import uuid

    stem = slug(title.lower())[:60].strip("-.") or "doc"
    return f"{stem}-{uuid.uuid4().hex[:8]}"
