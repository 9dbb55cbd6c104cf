"""The store interface: everything above it (fusion, highlights, confidence, the API, the page,
`kb eval`) uses only this, so the same kb runs on FAISS files or on PostgreSQL.

A store holds documents and their passages, each passage with its vector, its keyword terms and
its sentences (spans and late-chunked vectors, for highlights). Writes are whole documents, one
transaction each call: a reader sees a document with all of its passages or not at all. Reads go
through a ``Snapshot``: the query path asks it for candidates (the dense and keyword lists and
both exact scores of each), then for the records of the passages it keeps.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterator, Sequence

import numpy as np

from kb.stores.filters import Filters

# A filtered dense search that leaves at most this many passages is searched exactly, on every store: an
# approximate index searched with a selective filter can miss passages that match.
EXACT_FILTER_LIMIT = 20_000

if TYPE_CHECKING:
    from kb.documents.document import Document
    from kb.settings import Settings
    from kb.stores.keys import KeyTable
    from kb.stores.querylog import QueryLog
    from kb.stores.record import Record


@dataclass(frozen=True)
class StoredDocument:
    id: str
    title: str
    source: str
    hash: str
    text: str
    passages: int
    metadata: dict[str, Any] = field(default_factory=dict)
    path: str = ""  # the corpus file that holds it, relative; "" for a document the store keeps itself
    length: int = -1  # characters in the text (listings leave the text out but keep this)
    original: bytes | None = field(default=None, repr=False, compare=False)  # an upload's bytes, to be kept
    updated: str | None = None  # when the record last changed, ISO 8601 UTC to the microsecond (kb/stores/record.py)
    access: tuple[str, ...] = ()  # the groups that may read it, sorted; () public (kb/documents/access.py)

    def __post_init__(self) -> None:
        if self.length < 0:
            object.__setattr__(self, "length", len(self.text))


@dataclass
class PreparedPassage:
    """A passage ready to store: its span, context, vector, keyword terms and sentences."""

    passage_id: str
    ordinal: int
    start: int
    end: int
    text: str
    headings: tuple[str, ...]  # the heading path above it, outermost first
    vector: np.ndarray  # float32 [dimension], unit length
    terms: list[str]  # what BM25 indexes (from the context line and the text)
    sentence_spans: np.ndarray  # int64 [sentences, 2], absolute offsets in the document
    sentence_vectors: np.ndarray  # float16 [sentences, dimension]

    @property
    def heading(self) -> str:
        return self.headings[-1] if self.headings else ""


def stored_headings(headings: Sequence[str]) -> str:
    """A heading path as stores keep it, in one text column: one heading a line (headings are one line each)."""
    return "\n".join(headings)


def headings_of(stored: str) -> tuple[str, ...]:
    return tuple(stored.split("\n")) if stored else ()


@dataclass
class PreparedDocument:
    document: StoredDocument
    passages: list[PreparedPassage]


@dataclass
class PassageRecord:
    """What a hit shows of a passage and its document."""

    key: int
    passage_id: str
    doc_id: str
    ordinal: int
    start: int
    end: int
    text: str
    headings: tuple[str, ...]
    title: str
    source: str
    metadata: dict[str, Any]
    doc_length: int
    doc_passages: int
    sentence_spans: np.ndarray  # int64 [sentences, 2]
    sentence_vectors: np.ndarray  # float32 [sentences, dimension]

    @property
    def heading(self) -> str:
        return self.headings[-1] if self.headings else ""


@dataclass
class Candidates:
    """The pool a query ranks: each candidate's key, exact dense and keyword scores, and vector."""

    keys: np.ndarray  # int64
    dense: np.ndarray  # float32, cosine to the query
    keyword: np.ndarray  # float32, the keyword score (0 when no query word matches)
    vectors: np.ndarray  # float32 [candidates, dimension]

    @classmethod
    def empty(cls, dimension: int) -> "Candidates":
        return cls(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32),
                   np.zeros((0, dimension), np.float32))


def check_dimension(documents: Sequence[PreparedDocument], dimension: int) -> None:
    """ValueError when a passage's vector does not fit the store (a store holds one model's vectors)."""
    for prepared in documents:
        for passage in prepared.passages:
            if len(passage.vector) != dimension:
                raise ValueError(f"a {len(passage.vector)}-dimension vector for a {dimension}-dimension store")


def rebuild_reason(old_config: Any, config: dict[str, Any], force: bool) -> str | None:
    """Why an index derived with ``old_config`` must be derived again for ``config`` (None: it need not)."""
    if force:
        return "forced full rebuild"
    if old_config == config:
        return None
    if not isinstance(old_config, dict):
        return "settings changed (none recorded), re-embedding everything"
    changed = ", ".join(f"{key}: {old_config.get(key)!r} -> {value!r}" for key, value in config.items()
                        if old_config.get(key) != value)
    return f"settings changed ({changed}), re-embedding everything"


class Snapshot(abc.ABC):
    """One consistent view of the store: nothing written after it was taken is seen through it."""

    version: Any = None  # changes with every write the snapshot can see (answers are cached by it)

    @abc.abstractmethod
    def candidates(self, query_vector: np.ndarray, query_terms: Sequence[str], depth: int, dense: bool,
                   keyword: bool, filters: Filters = Filters()) -> Candidates:
        """The top ``depth`` of the dense list and of the keyword list (those asked for), joined,
        with both scores exact for every candidate; only passages whose documents pass ``filters``."""

    @abc.abstractmethod
    def records(self, keys: Sequence[int]) -> list[PassageRecord]:
        """The passages with these keys, in that order; a key deleted since is left out."""

    @abc.abstractmethod
    def counts(self) -> tuple[int, int]:
        """(documents, passages)."""

    def close(self) -> None:
        pass

    def __enter__(self) -> "Snapshot":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Store(abc.ABC):
    """Documents, passages, vectors and keyword terms, with transactional writes.

    A store has a system of record (``record``, kb/stores/record.py) and an index derived from it. It owns its
    whole lifecycle: opening and creating itself, deriving a new index from its record when the old one
    no longer fits (``for_build``, ``rederive``, ``finish``), and following other processes' changes
    (``refresh``, ``successor``). kb/stores/__init__.py picks the class from KB_STORE; nothing else asks which it is.
    """

    model: str
    dimension: int
    config: dict[str, Any]
    location: str  # for messages: the folder or the server
    record: "Record"
    corpus: str | None = None  # the corpus folder (resolved) the store was last brought in line with
    # Whether the corpus folder is this store's record, so that a server brings the index in line with it
    # before serving (FAISS); a database store is its own record, and `kb build` syncs a folder into it.
    record_is_corpus_folder: bool = False

    # ---- lifecycle ------------------------------------------------------------------------

    @classmethod
    @abc.abstractmethod
    def open(cls, settings: "Settings", expected_model: str | None = None) -> "Store":
        """The configured store; StoreProblem when there is none, it is damaged, or it holds another model's vectors."""

    @classmethod
    @abc.abstractmethod
    def exists(cls, settings: "Settings") -> bool:
        """Whether there is a store to open (without loading it)."""

    @classmethod
    @abc.abstractmethod
    def evaluation_settings(cls, settings: "Settings", name: str) -> "Settings":
        """Settings for a dataset's own store, beside the knowledge base's and never mixed with it."""

    @classmethod
    @abc.abstractmethod
    def build_lock(cls, settings: "Settings") -> ContextManager[None]:
        """Held by `kb build` (and a server's start-up sync): one at a time per store."""

    @classmethod
    @abc.abstractmethod
    def query_log(cls, settings: "Settings") -> "QueryLog":
        """Where this store keeps the query log (kb/stores/querylog.py): with its record, never in the index."""

    @classmethod
    @abc.abstractmethod
    def key_table(cls, settings: "Settings") -> "KeyTable":
        """Where this store keeps the keys that name callers (kb/stores/keys.py): with its record, never in the index."""

    def facts(self) -> list[tuple[str, dict[str, str], float]]:
        """Gauges for /metrics beyond counts, as (name without kb_, labels, value): what this kind of store can
        tell (the index's age; on PostgreSQL, its pools and a standby's lag)."""
        return []

    @classmethod
    @abc.abstractmethod
    def watch_claim(cls, settings: "Settings") -> Callable[[], None] | None:
        """The right to watch the corpus folder for this store, for as long as the process holds it: a function
        that gives it up, or None when another process has it (kb/ingestion/watch.py: one watcher per store, so
        two servers never race to write the same change)."""

    @classmethod
    @abc.abstractmethod
    def for_build(cls, settings: "Settings", config: dict[str, Any], force: bool,
                  dimension: Callable[[], int]) -> tuple["Store", str | None]:
        """The store a build writes to (created when there is none), and why its index must be derived
        again from the record (another model, chunking or format, ``force``, a damaged file), or None."""

    @abc.abstractmethod
    def rederive(self, write: Callable[["Store", list["Document"]], None]) -> "Store":
        """Derive a new index beside the live one from what only the record holds, with ``write(target,
        documents)`` (chunk, embed, store), and return the store to go on with."""

    @abc.abstractmethod
    def finish(self, corpus: str | None, written: bool) -> bool:
        """A build is done: make its index the live one, and remember the corpus folder it came from; whether a
        new index became live."""

    @classmethod
    @abc.abstractmethod
    def backup(cls, settings: "Settings", target: Path) -> dict[str, Any]:
        """Write a consistent copy of the store's record, and of what restores it fastest, into the empty folder
        ``target``, while other processes go on serving and writing; facts for the backup's manifest."""

    @classmethod
    @abc.abstractmethod
    def restore(cls, settings: "Settings", source: Path, force: bool) -> Path | None:
        """Put a backup of this kind of store back where ``settings`` point; an export file still to be imported
        through the write path, if any. Refuses (BackupProblem) where it would overwrite documents, unless
        ``force``, which sets them aside first."""

    @property
    def live(self) -> bool:
        """Whether this is the index searches use now (a build's new index is not, until ``finish``)."""
        return True

    def successor(self) -> "Store | None":
        """A newer store that replaced this one (another process rebuilt it), opened; None when there is none."""
        return None

    # ---- writes ---------------------------------------------------------------------------

    @abc.abstractmethod
    def add(self, documents: Sequence[PreparedDocument]) -> None:
        """Add or replace these documents (by id), all in one transaction; durable on return."""

    @abc.abstractmethod
    def delete(self, doc_ids: Sequence[str]) -> list[str]:
        """Delete these documents in one transaction; returns the ids that existed."""

    # ---- reads ----------------------------------------------------------------------------

    # Reads that show documents take the caller's ``groups`` (kb/stores/filters.py: None reads everything) and
    # answer as if the documents the caller may not read were not there.

    @abc.abstractmethod
    def document(self, doc_id: str, groups: Sequence[str] | None = None) -> StoredDocument | None:
        ...

    @abc.abstractmethod
    def documents(self, offset: int, limit: int, groups: Sequence[str] | None = None) -> tuple[int, list[StoredDocument]]:
        """(total, one page of documents by id, without their text)."""

    @abc.abstractmethod
    def passage_spans(self, doc_id: str, groups: Sequence[str] | None = None) -> list[tuple[int, int]]:
        """(start, end) of each passage of the document, by ordinal (none for an unknown id)."""

    @abc.abstractmethod
    def fingerprints(self, ids: Sequence[str] | None = None) -> dict[str, tuple[str, str]]:
        """doc id -> (content hash, corpus path) of these documents (all when None): what a write compares."""

    @abc.abstractmethod
    def original(self, doc_id: str) -> bytes | None:
        """The original bytes of an uploaded document (None for any other)."""

    @abc.abstractmethod
    def all_documents(self, groups: Sequence[str] | None = None) -> Iterator[StoredDocument]:
        """Every document ``groups`` may read (None: every one), whole (text, an upload's original bytes, when it
        last changed), by id, from one consistent state of the store, streamed (for `kb export`, `GET /api/export`)."""

    @abc.abstractmethod
    def snapshot(self) -> Snapshot:
        ...

    @abc.abstractmethod
    def counts(self, groups: Sequence[str] | None = None) -> tuple[int, int]:
        """(documents, passages) now."""

    def file_stats(self) -> dict[str, tuple[int, int]]:
        """corpus path -> (size, mtime_ns) when it was last read (stores without a corpus: none)."""
        return {}

    def record_files(self, stats: dict[str, tuple[int, int] | None]) -> None:
        """Remember (or, with None, forget) corpus files' stats once their documents are stored."""

    def refresh(self) -> None:
        """Catch up with writes other processes made."""

    def close(self) -> None:
        pass
