"""A document, as kb reads and stores it, and its id: stable, URL-safe, and one rule for every way in."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"  # and no ".." (see valid_id)
_VALID_ID = re.compile(ID_PATTERN)

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
    access: tuple[str, ...] = ()  # the groups that may read it, sorted; () public (kb/documents/access.py)

    @property
    def content_hash(self) -> str:
        return content_hash(self.title, self.text, self.metadata, self.access)

    @property
    def fingerprint(self) -> tuple[str, str]:
        """(content hash, path): what a store keeps of a document to tell whether a new version changed it
        (``Store.fingerprints``); equal fingerprints, nothing to embed or write."""
        return self.content_hash, self.path


def content_hash(title: str, text: str, metadata: dict[str, Any] | None = None, access: tuple[str, ...] = ()) -> str:
    """What a write compares; a change of access is a change (a public document's hash is what it always was)."""
    meta = json.dumps(metadata or {}, sort_keys=True, ensure_ascii=False, default=str)
    groups = f"\0{','.join(access)}" if access else ""
    return hashlib.sha256(f"{title}\0{text}\0{meta}{groups}".encode("utf-8")).hexdigest()


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
