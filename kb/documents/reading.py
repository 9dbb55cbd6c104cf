"""Read source documents from a folder into Document records.

Supported: .txt, .md, .html, .pdf and .jsonl (see kb/documents/readers.py). A file that cannot be
decoded or parsed is skipped with a warning that names it; the rest are read. Ids come from
the path relative to the corpus folder (or a JSON line's own id), so they are stable across
rebuilds and safe to use in URLs.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from pathlib import Path
from typing import Iterable

from kb.documents.access import FolderAccess
from kb.documents.document import Document, doc_id_for, valid_id
from kb.documents.folder import SUPPORTED_SUFFIXES, corpus_files, default_source, is_own, logical_path
from kb.documents.readers import READERS, Parsed, metadata_problem, reader_for
from kb.errors import UnreadableDocument

log = logging.getLogger(__name__)


def read_corpus(corpus_dir: Path, skipped: list[str] | None = None, max_bytes: int | None = None) -> list[Document]:
    """Every supported file under corpus_dir, sorted by path (see ``read_files``), with its folder's access."""
    documents, _ = read_files(corpus_files(corpus_dir), skipped, max_bytes, FolderAccess.read(corpus_dir))
    return documents


def read_files(files: Iterable[tuple[str, Path, tuple[int, int]]], skipped: list[str] | None = None,
               max_bytes: int | None = None, rules: FolderAccess = FolderAccess(),
               ) -> tuple[list[Document], dict[str, tuple[int, int]]]:
    """The documents of these corpus files, and the (size, mtime_ns) of each file read.

    Unreadable files, and files over ``max_bytes``, are skipped with a warning naming them, and
    their paths appended to ``skipped``. When two files give one id (a .jsonl's own ids), the
    later is disambiguated by a hash of its path.
    """
    documents: list[Document] = []
    read: dict[str, tuple[int, int]] = {}
    seen: dict[str, str] = {}
    for rel, path, stat in files:
        try:
            if max_bytes is not None and stat[0] > max_bytes:
                raise UnreadableDocument(f"{stat[0] / 2**20:.1f} MiB is over the {max_bytes / 2**20:.0f} MiB limit "
                                         "(KB_MAX_DOCUMENT_MB)")
            found = read_document(path, rel, max_bytes, rules)
        except (UnreadableDocument, OSError) as exc:
            log.warning("skipped %s: %s", path, exc)
            if skipped is not None:
                skipped.append(rel)
            continue
        for document in found:
            if document.id in seen:
                suffix = hashlib.sha1(rel.encode("utf-8", "surrogatepass")).hexdigest()[:8]
                log.warning("%s: id %s is taken by %s; using %s-%s", path, document.id, seen[document.id],
                            document.id, suffix)
                document = replace(document, id=f"{document.id}-{suffix}")
            seen[document.id] = rel
            documents.append(document)
        read[rel] = stat
    return documents, read


def read_document(path: Path, relative_path: str | None = None, max_chars: int | None = None,
                  rules: FolderAccess = FolderAccess()) -> list[Document]:
    """Read one file into its Documents (one, or one per JSON line); raises UnreadableDocument."""
    relative_path = relative_path or path.name
    reader = reader_for(relative_path)
    if reader is None:
        raise UnreadableDocument(f"unsupported file type (kb reads {', '.join(SUPPORTED_SUFFIXES)})")
    return documents_from(reader(path.read_bytes()), relative_path, max_chars, rules)


def documents_from(parsed: list[Parsed], relative_path: str, max_chars: int | None = None,
                   rules: FolderAccess = FolderAccess()) -> list[Document]:
    """Documents from a reader's output, for the file at ``relative_path`` in the corpus folder. ``max_chars``
    bounds the text a file yields in all (a compressed PDF stream can expand far beyond the file's size).

    Ids and default sources come from the path, kb's own folder left out (kb/documents/folder.py); access from a
    JSON line's own, else the folder's ``rules`` (never for kb's own folder: what it keeps carries its own)."""
    folder_access = () if is_own(relative_path) else rules.access_of(relative_path)
    base = doc_id_for(logical_path(relative_path))
    documents = []
    total = sum(len(item.text) for item in parsed)
    if max_chars is not None and total > max_chars:
        raise UnreadableDocument(f"its text is {total / 2**20:.1f} M characters, over the {max_chars / 2**20:.0f} M limit")
    for number, item in enumerate(parsed, 1):
        if not item.text.strip():
            raise UnreadableDocument("no text in it")
        problem = metadata_problem(item.metadata, len(item.text))
        if problem:
            raise UnreadableDocument(problem)
        if item.id is not None and not valid_id(item.id):
            raise UnreadableDocument(f"document id {item.id!r} may hold only letters, digits, '.', '_' and '-'")
        doc_id = item.id or (base if len(parsed) == 1 and reader_for(relative_path) is not READERS[".jsonl"]
                             else f"{base}--{number}")
        source = item.source or str(item.metadata.get("source") or default_source(relative_path, doc_id))
        documents.append(
            Document(doc_id, item.title or Path(relative_path).stem, source, item.text, item.metadata, relative_path,
                     access=item.access if item.access is not None else folder_access)
        )
    return documents
