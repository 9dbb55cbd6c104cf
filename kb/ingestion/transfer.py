"""`kb export` and `kb import`: a knowledge base's documents as JSON lines, to move it between stores or keep it aside.

One document a line, by id, every field always present and in this order:

    {"id", "title", "source", "text", "metadata", "access", "hash", "updated", "file"}

``id`` to ``access`` are the fields of the .jsonl line format (kb/documents/readers.py), metadata keys sorted, access
the groups that may read it ([] public; an export of an older kb, without it, imports as public); ``hash`` is the content hash
(checked on import); ``updated`` is when the document last changed, ISO 8601 UTC (an import keeps it); ``file`` is
null, or for an uploaded file {"name", "data"}: its name and original bytes in base64, so an import reads the file
again exactly as the upload was read. A document of a corpus file is exported as JSON: an import keeps its text,
metadata and source, so its passages come out the same.

Export -> import -> export gives the same bytes. An import writes through the normal write path (kb/ingestion/writes.py),
``IMPORT_BATCH`` documents to a transaction; killed, it is resumed by running it again: a document already there
with the same content is skipped without being embedded again.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING, Any, Callable, Iterable, Iterator

from kb.documents.access import parse_access
from kb.documents.document import Document
from kb.documents.readers import parse_record
from kb.errors import ImportProblem, UnreadableDocument
from kb.stores.record import Record, time_ns

if TYPE_CHECKING:
    from kb.ingestion.writes import Library

IMPORT_BATCH = 64  # documents per write (one transaction) during an import


def documents_of(row: Any, number: int, record: Record, max_chars: int) -> list[Document]:
    """The document an export line describes, as the record will keep it (ImportProblem when it is not one)."""
    from kb.ingestion.writes import check_file_name

    where = f"line {number}"
    if not isinstance(row, dict) or not isinstance(row.get("id"), str) or "hash" not in row:
        raise ImportProblem(f"{where} is not a document that `kb export` wrote (it needs id, text and hash)")
    updated = row.get("updated")
    try:
        if updated is not None:
            time_ns(updated)
        upload = row.get("file")
        if upload:
            name = check_file_name(str(upload.get("name", "")))
            access = parse_access(row["access"], where) if row.get("access") else None  # kept, never dropped
            documents = record.uploaded(name, base64.b64decode(upload["data"], validate=True), max_chars, access)
        else:
            fields = {key: row.get(key) for key in ("id", "title", "source", "text", "metadata", "access")}
            parsed = parse_record({key: value for key, value in fields.items() if value is not None}, where)
            documents = [record.json_document(parsed, row["id"])]
            if documents[0].content_hash != row["hash"]:
                raise ImportProblem(f"{where}: document {row['id']!r} does not match its content hash (the file was "
                                    "changed or damaged after it was exported)")
    except ImportProblem:
        raise
    except (UnreadableDocument, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ImportProblem(f"{where}: {getattr(exc, 'message', None) or exc}") from None
    return [replace(document, updated=updated) for document in documents]


def read_rows(stream: IO[bytes], tick: Callable[[int], None] | None = None) -> Iterator[tuple[int, Any]]:
    """(line number, JSON value) of each non-blank line."""
    for number, raw in enumerate(stream, 1):
        if tick:
            tick(len(raw))
        if not raw.strip():
            continue
        try:
            yield number, json.loads(raw)
        except ValueError:
            raise ImportProblem(f"line {number} is not valid JSON") from None


@dataclass
class ImportReport:
    documents: int = 0
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    passages_embedded: int = 0

    def summary(self) -> str:
        return (f"imported {self.documents} documents: {self.added} added, {self.changed} changed, {self.unchanged} "
                f"already there; {self.passages_embedded} passages embedded")


def import_rows(rows: Iterable[tuple[int, Any]], library: "Library", max_chars: int) -> ImportReport:
    """Write the documents of export lines through ``library`` (kb/ingestion/writes.py), ``IMPORT_BATCH`` to a
    transaction. A document held by one of this knowledge base's own files (an export of it, imported again)
    is already there when its content is the same, and a conflict (ImportProblem) when it is not."""
    report, batch = ImportReport(), []

    def flush() -> None:
        held = library.store.fingerprints([document.id for document, _ in batch])
        fresh = []
        for document, number in batch:
            hash_, path = held.get(document.id, (None, ""))
            if not path or path == document.path:
                fresh.append(document)
            elif hash_ == document.content_hash:
                report.unchanged += 1
            else:
                raise ImportProblem(f"line {number}: document {document.id!r} belongs to the file {path} here, "
                                    "whose text differs; rename that file or the document, then import again")
        if fresh:
            done = library.write(fresh)
            report.added += len(done.added)
            report.changed += len(done.changed)
            report.unchanged += len(done.unchanged)
            report.passages_embedded += done.passages_embedded
        report.documents += len(batch)
        batch.clear()

    for number, row in rows:
        batch.extend((document, number) for document in documents_of(row, number, library.store.record, max_chars))
        if len(batch) >= IMPORT_BATCH:
            flush()
    if batch:
        flush()
    return report
