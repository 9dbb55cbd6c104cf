"""Where documents written through kb live: each store's system of record.

kb is given documents four ways: the corpus folder itself, the API (JSON or an uploaded file),
`kb add`, and `kb import`. A document from one of the user's corpus files lives in that file. For
every other one, the store says where it lives (a ``Record``):

- the FAISS store keeps it as a file in the corpus folder's `.kb/` (kb/documents/folder.py), written durably
  *before* the index transaction: the folder alone then holds every document, the index can always
  be derived from it again (`rm -rf index/ && kb build`), and a copy of the folder is a backup;
- the PostgreSQL store keeps it in its `documents` table, in the same transaction as its index rows
  (an upload's original bytes with it); re-indexing derives every other table from that one.

A document sent as JSON is made by reading back the very line kb writes for it, so it is equal,
content hash and all, to what any later read of the record gives.
"""

from __future__ import annotations

import base64
import calendar
import contextlib
import json
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator, Sequence

from kb.documents.document import Document
from kb.documents.folder import (
    Changes,
    default_source,
    document_path,
    ensure_own_folder,
    exclusive,
    remove_file,
    upload_path,
    write_file,
)
from kb.documents.readers import READERS, Parsed, read_jsonl, reader_for
from kb.documents.reading import documents_from

if TYPE_CHECKING:
    from kb.stores.base import Store, StoredDocument


def iso_time(ns: int) -> str:
    """A time in nanoseconds since the epoch as ISO 8601 UTC to the microsecond: 2026-11-30T16:20:00.123456Z."""
    seconds, micros = divmod(ns // 1000, 10**6)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


def time_ns(iso: str) -> int:
    """``iso_time``'s text back in nanoseconds (ValueError for anything else)."""
    moment = datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ")
    return (calendar.timegm(moment.timetuple()) * 10**6 + moment.microsecond) * 1000


def json_line(doc_id: str, title: str, source: str, text: str, metadata: dict[str, Any],
              access: Sequence[str] = ()) -> bytes:
    """A document as the one JSON line kb keeps it in (the .jsonl line format, with its id and source, and its
    access when it has one)."""
    row = {"id": doc_id, "title": title, "source": source, "text": text, "metadata": metadata}
    if access:
        row["access"] = list(access)
    return (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")


class Record:
    """Where a store keeps the documents written through kb: files in the corpus folder (``in_folder``),
    or the store itself."""

    def __init__(self, corpus: Path, in_folder: bool) -> None:
        self.corpus = Path(corpus)
        self.in_folder = in_folder

    def own_path(self, doc_id: str) -> str:
        """The path a document sent as JSON with this id has ("" where the store itself keeps it)."""
        return document_path(doc_id) if self.in_folder else ""

    def json_document(self, parsed: Parsed, doc_id: str) -> Document:
        """A document sent as JSON (already checked by ``parse_record``), as it will be stored."""
        path = document_path(doc_id)
        line = json_line(doc_id, parsed.title, parsed.source or default_source(path, doc_id), parsed.text, parsed.metadata,
                         parsed.access or ())
        [document] = documents_from(read_jsonl(line), path)
        return replace(document, original=line) if self.in_folder else replace(document, path="")

    def uploaded(self, name: str, data: bytes, max_chars: int, access: Sequence[str] | None = None) -> list[Document]:
        """The documents of an uploaded file with this plain ``name`` (UnreadableDocument when it cannot be
        read). A .jsonl file is a batch of documents sent as JSON, each line's own access winning over ``access``.
        Any other file is one document whose original bytes are kept; or, given ``access``, the document read from
        it (text, title, structure) kept as JSON with its access, in one file with it on the FAISS store (no second
        file to fall out of step with the first after a kill), its bytes not kept."""
        reader = reader_for(name)
        parsed = [item if item.access is not None or not access else replace(item, access=tuple(access))
                  for item in reader(data)]
        documents = documents_from(parsed, upload_path(name), max_chars)  # every line of a .jsonl checked, ids given
        if reader is READERS[".jsonl"] or access:
            return [self.json_document(Parsed(d.title, d.text, d.metadata, d.id, d.source, d.access), d.id)
                    for d in documents]
        return [replace(d, original=data, path=d.path if self.in_folder else "") for d in documents]

    def save(self, documents: Sequence[Document]) -> Changes:
        """Write the documents kept as files, durably, before their index transaction; OSError when the disk
        refuses (what was written is rolled back)."""
        changes = Changes()
        if not self.in_folder:
            return changes
        try:
            for document in documents:
                if document.original is not None and document.path:
                    ensure_own_folder(self.corpus)
                    mtime = time_ns(document.updated) if document.updated else None
                    changes.add(write_file(self.corpus / document.path, document.original, mtime))
        except OSError:
            changes.rollback()
            raise
        return changes

    def forget(self, path: str) -> Changes:
        """Remove a document's own file (a corpus file, or one of kb's), durably; rolled back if the index refuses."""
        changes = Changes()
        if path:
            changes.add(remove_file(self.corpus / path))
        return changes

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Held while a write changes the record and the index, so two processes never interleave the two
        (a file lock in kb's own folder; a store that keeps documents itself has its own transactions)."""
        if not self.in_folder:
            yield
            return
        try:
            folder = ensure_own_folder(self.corpus)
            handle = open(folder / ".lock", "a")
        except OSError:
            yield  # a folder kb cannot write: the write itself will say so
            return
        with handle, exclusive(handle):
            yield

    def stats(self, paths: Sequence[str]) -> dict[str, tuple[int, int]]:
        """(size, mtime_ns) of these files of the folder as they are now, for the index to remember."""
        found = {}
        for path in paths:
            if path:
                try:
                    stat = (self.corpus / path).stat()
                except OSError:
                    continue
                found[path] = (stat.st_size, stat.st_mtime_ns)
        return found

    def updated(self, path: str) -> str | None:
        """When a document's file last changed (None for a document without one)."""
        try:
            return iso_time((self.corpus / path).stat().st_mtime_ns) if path else None
        except OSError:
            return None

    def original(self, path: str) -> bytes | None:
        """The original bytes of an uploaded file kept in the folder (None for anything else)."""
        if self.in_folder and path.startswith(upload_path("")):
            try:
                return (self.corpus / path).read_bytes()
            except OSError:
                return None
        return None


# ---- the record's portable form: `kb export`'s JSON lines (kb/ingestion/transfer.py reads them back) ----

def export_line(document: "StoredDocument") -> bytes:
    """A document as its export line (UTF-8, ending in a newline)."""
    upload = None
    if document.original is not None:
        upload = {"name": PurePosixPath(document.source).name, "data": base64.b64encode(document.original).decode()}
    metadata = json.loads(json.dumps(document.metadata, sort_keys=True))  # one order, whichever store kept it
    row = {"id": document.id, "title": document.title, "source": document.source, "text": document.text,
           "metadata": metadata, "access": list(document.access), "hash": document.hash, "updated": document.updated,
           "file": upload}
    return (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")


def export_lines(store: "Store", groups: Sequence[str] | None = None) -> Iterator[bytes]:
    """The export line of every document ``groups`` may read (None: every one), by id, from one consistent state."""
    for document in store.all_documents(groups):
        yield export_line(document)


def export(store: "Store", out: IO[bytes], tick: Callable[[int], None] | None = None) -> int:
    """Write every document of the store to ``out``, by id, from one consistent state; how many."""
    count = 0
    for line in export_lines(store):
        out.write(line)
        count += 1
        if tick:
            tick(1)
    return count
