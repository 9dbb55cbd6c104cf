"""Read source documents from a folder into Document records.

Supported: .txt, .md, .html, .pdf and .jsonl (see kb/readers.py). A file that cannot be
decoded or parsed is skipped with a warning that names it; the rest are read. Ids come from
the path relative to the corpus folder (or a JSON line's own id), so they are stable across
rebuilds and safe to use in URLs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from kb.folder import SUPPORTED_SUFFIXES, corpus_files, default_source, logical_path
from kb.readers import READERS, Parsed, UnreadableDocument, metadata_problem, reader_for

log = logging.getLogger(__name__)

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"  # and no ".." (see valid_id)
_VALID_ID = re.compile(ID_PATTERN)

__all__ = ["Document", "UnreadableDocument", "read_corpus", "read_document", "documents_from", "valid_id",
           "doc_id_for", "slug", "content_hash", "read_files"]


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    source: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    path: str = ""  # the file in the corpus folder that holds it, relative; "" when it has none
    original: bytes | None = field(default=None, repr=False, compare=False)  # an upload's bytes, for a store to keep
    updated: str | None = field(default=None, compare=False)  # when it was last written (an import keeps it)

    @property
    def content_hash(self) -> str:
        return content_hash(self.title, self.text, self.metadata)


def content_hash(title: str, text: str, metadata: dict[str, Any] | None = None) -> str:
    meta = json.dumps(metadata or {}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(f"{title}\0{text}\0{meta}".encode("utf-8")).hexdigest()


def valid_id(doc_id: str) -> bool:
    """Ids are URL- and path-safe: letters, digits, '.', '_' and '-', not starting with a dot.

    A full match: ``re.match`` with ``$`` would also accept a trailing newline ("note\\n").
    """
    return isinstance(doc_id, str) and _VALID_ID.fullmatch(doc_id) is not None and ".." not in doc_id


MAX_ID_CHARS = 200


def slug(text: str) -> str:
    """Letters, digits, '.', '_' and '-' only; every other run of characters becomes one '-'."""
    return _ID_UNSAFE.sub("-", text).strip("-.")


def doc_id_for(relative_path: str) -> str:
    """The id of the document in a corpus file, one rule for `kb build`, `kb add` and uploads.

    A path that is already a valid id (folders joined by '--') is its own id: 'news/wheat.txt'
    is 'news--wheat.txt'. Any other path keeps what it can of its name and adds a hash of the
    whole path, so that distinct files always get distinct, stable ids: 'report (1).pdf' is
    'report-1-<hash>.pdf', 'report [1].pdf' another hash, and '报告.txt' 'doc-<hash>.txt'.
    """
    parts = PurePosixPath(relative_path).parts
    plain = "--".join(parts)
    if parts and all(slug(part) == part and "--" not in part for part in parts) and valid_id(plain):
        return plain
    digest = hashlib.sha1(relative_path.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    *folders, name = parts or ("doc",)
    suffix = slug(PurePosixPath(name).suffix)
    stem = slug(name[: len(name) - len(PurePosixPath(name).suffix)] if suffix else name) or "doc"
    head = "--".join([*(slug(f) or "_" for f in folders), stem])
    room = MAX_ID_CHARS - len(digest) - 1 - (len(suffix) + 1 if suffix else 0)
    head = head[:room].rstrip("-.") or "doc"
    return f"{head}-{digest}" + (f".{suffix}" if suffix else "")


def read_corpus(corpus_dir: Path, skipped: list[str] | None = None, max_bytes: int | None = None) -> list[Document]:
    """Every supported file under corpus_dir, sorted by path (see ``read_files``)."""
    documents, _ = read_files(corpus_files(corpus_dir), skipped, max_bytes)
    return documents


def read_files(files: Iterable[tuple[str, Path, tuple[int, int]]], skipped: list[str] | None = None,
               max_bytes: int | None = None) -> tuple[list[Document], dict[str, tuple[int, int]]]:
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
            found = read_document(path, rel, max_bytes)
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
                document = Document(f"{document.id}-{suffix}", document.title, document.source, document.text,
                                    document.metadata, document.path)
            seen[document.id] = rel
            documents.append(document)
        read[rel] = stat
    return documents, read


def read_document(path: Path, relative_path: str | None = None, max_chars: int | None = None) -> list[Document]:
    """Read one file into its Documents (one, or one per JSON line); raises UnreadableDocument."""
    relative_path = relative_path or path.name
    reader = reader_for(relative_path)
    if reader is None:
        raise UnreadableDocument(f"unsupported file type (kb reads {', '.join(SUPPORTED_SUFFIXES)})")
    return documents_from(reader(path.read_bytes()), relative_path, max_chars)


def documents_from(parsed: list[Parsed], relative_path: str, max_chars: int | None = None) -> list[Document]:
    """Documents from a reader's output, for the file at ``relative_path`` in the corpus folder. ``max_chars``
    bounds the text a file yields in all (a compressed PDF stream can expand far beyond the file's size).

    Ids and default sources come from the path, kb's own folder left out (kb/folder.py)."""
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
            Document(doc_id, item.title or Path(relative_path).stem, source, item.text, item.metadata, relative_path)
        )
    return documents
