"""kb: a knowledge base you question in plain words. Documents in, the passages that answer a question out.

    import kb

    with kb.open() as base:                      # settings from KB_* variables; or kb.open(kb.Settings(...))
        base.add({"id": "note-1", "title": "Airships", "text": "The Graf Zeppelin crossed the Atlantic in 1928."})
        answer = base.search("Which airship crossed the Atlantic?", k=3)
        for hit in answer.hits:
            print(hit.rank, hit.title, hit.text)
        base.get("note-1").text, base.list(limit=20), base.delete("note-1")

``KnowledgeBase`` is the one front door: the command line, the web app and the benchmarks all go through it.
Its parts live in packages a newcomer can name from the tree: kb.documents (reading), kb.embedding,
kb.stores (where documents live, and the index derived from them), kb.search, kb.ingestion (sync, writes,
export and import, backup) and kb.evaluation. docs/python.md describes this API.
"""

from __future__ import annotations

import threading
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator, Sequence

from kb.errors import DocumentError, Forbidden, KbError, StoreProblem
from kb.settings import Settings

if TYPE_CHECKING:
    from kb.embedding.embedder import Embedder
    from kb.ingestion.sync import BuildReport
    from kb.ingestion.transfer import ImportReport
    from kb.ingestion.watch import FolderWatch
    from kb.insights.log import QueryLogger
    from kb.search.pipeline import Answer
    from kb.stores.base import Store, StoredDocument
    from kb.stores.filters import Filters
    from kb.stores.keys import Caller, KeyTable

__all__ = ["open", "KnowledgeBase", "Settings", "KbError", "DocumentError", "StoreProblem"]


def open(settings: Settings | None = None, *, serving: bool = False,  # noqa: A001 - kb.open, like io.open
         embedder: "Embedder | None" = None) -> "KnowledgeBase":
    """The knowledge base ``settings`` describe (KB_* variables when None). Nothing is loaded until it is used.

    ``serving``: writes are embedded as a server embeds them (KB_WRITE_EMBEDDING: a worker process of lower
    priority, or in slices that let queries pass); otherwise in whole batches, the fastest when nothing else runs.
    """
    return KnowledgeBase(settings or Settings.from_env(), serving=serving, embedder=embedder)


class KnowledgeBase:
    """Search, read and write one knowledge base; it follows writes and a new index made by other processes."""

    def __init__(self, settings: Settings, serving: bool = False, embedder: "Embedder | None" = None) -> None:
        self.settings = settings
        self.serving = serving
        self._embedder = embedder
        self._searcher = None
        self._library = None
        self._lock = threading.RLock()  # the library asks for the searcher while it holds it
        self.watching: "FolderWatch | None" = None
        self._queries: "QueryLogger | None" = None
        self._keys: "KeyTable | None" = None

    # ---- the parts, loaded on first use ---------------------------------------------------------

    @property
    def embedder(self) -> "Embedder":
        if self._embedder is None:
            from kb.embedding.embedder import embedder_for

            self._embedder = embedder_for(self.settings)
            self._embedder.batcher.max_batch = self.settings.query_batch
        return self._embedder

    @property
    def searcher(self):
        """The live searcher (kb/search/live.py); its store is opened before the model is loaded, so a missing
        index is reported at once."""
        if self._searcher is not None:  # every search asks: no lock once it exists
            return self._searcher
        with self._lock:
            if self._searcher is None:
                from kb.search.live import LiveSearcher
                from kb.stores import open_store

                store = open_store(self.settings, expected_model=self.settings.model)
                self._searcher = LiveSearcher(self.embedder, self.settings, store=store)
            return self._searcher

    @property
    def store(self) -> "Store":
        """The live store (a new index made by another process is followed)."""
        return self.searcher.current().store

    @property
    def library(self):
        """The writer (kb/ingestion/writes.py): every write kept in the store's record, then indexed."""
        with self._lock:
            if self._library is None:
                self._library = self._make_library()
            return self._library

    def _make_library(self):
        from kb.embedding.prepare import prepare
        from kb.ingestion.sync import build_index
        from kb.ingestion.writes import Library
        from kb.stores import store_exists

        if not store_exists(self.settings):  # a first write makes the (empty) store
            build_index(self.settings, embedder=self.embedder)
        searcher = self.searcher
        preparer = None
        if not self.serving:
            embedder = self.embedder
            preparer = lambda documents, settings: prepare(documents, embedder, settings)  # noqa: E731
        else:
            preparer = self._worker_prepare()
        return Library(self.settings, self.embedder, store=lambda: searcher.fresh_store(), preparer=preparer)

    def _worker_prepare(self):
        """Where a server embeds writes under KB_WRITE_EMBEDDING=process: its write worker's ``prepare`` (None: inline,
        or not a server). The API's writes and the folder watch's large syncs both go there."""
        if not (self.serving and self.settings.write_embedding == "process"):
            return None
        from kb.embedding.worker import get_write_worker

        return get_write_worker(self.settings).prepare

    def warm_up(self) -> None:
        """Load the model and the index now, and answer one question, so the first real one pays for nothing."""
        self.searcher.current().answer("warm up", 1)

    # ---- reading -----------------------------------------------------------------------------------

    # Every read takes an optional ``caller`` (kb/stores/keys.py): what it shows is what that caller may read, as if
    # nothing else were there (the store filters, below ranking, counting and listing). None: everything.

    def search(self, query: str, k: int = 5, mode: str | None = None, filters: "Filters | None" = None,
               offset: int = 0, highlights: bool = True, caller: "Caller | None" = None) -> "Answer":
        """The ``k`` passages that best answer ``query`` after the first ``offset`` (see kb/search/pipeline.py)."""
        from dataclasses import replace

        from kb.stores.filters import Filters

        filters = replace(filters or Filters(), groups=_groups(caller))  # and answers are cached by the groups too
        return self.searcher.current().answer(query, k, mode, highlights=highlights, filters=filters, offset=offset)

    def get(self, doc_id: str, caller: "Caller | None" = None) -> "StoredDocument | None":
        """A document, whole (None when there is none with this id, or the caller may not read it)."""
        return self.store.document(doc_id, _groups(caller))

    def around(self, doc_id: str, at: int, window: int = 1, caller: "Caller | None" = None) -> list[tuple[int, int, int]]:
        """The passage of ``doc_id`` that holds character ``at`` (the last to start at or before it) and ``window``
        passages each side, as (ordinal, start, end); none for an unknown id."""
        spans = self.passage_spans(doc_id, caller)
        held = max((ordinal for ordinal, (start, _) in enumerate(spans) if start <= at), default=0)
        return [(ordinal, *spans[ordinal]) for ordinal in range(max(0, held - window), min(len(spans), held + window + 1))]

    # ---- insights -------------------------------------------------------------------------------------

    @property
    def queries(self) -> "QueryLogger":
        """The query log (KB_QUERY_LOG): what the server and the page record, and what the reports read."""
        if self._queries is not None:  # every search asks: no lock once it exists
            return self._queries
        with self._lock:
            if self._queries is None:
                from kb.insights.log import QueryLogger
                from kb.stores import store_class

                self._queries = QueryLogger(self.settings, lambda: store_class(self.settings).query_log(self.settings))
            return self._queries

    def insights(self, days: int = 30, caller: "Caller | None" = None) -> dict[str, Any]:
        """The insights report for the last ``days`` days (kb/insights/report.py), with every search made so far.
        It counts every caller's questions over every document: Forbidden unless ``caller`` may read them all."""
        import time

        from kb.insights.report import LIMIT, report, window_start

        if not self.reads_everything(caller):
            raise Forbidden("the insights report counts everyone's questions over every document; it needs a key "
                            "that may read every document (KB_API_KEY or KB_READ_KEY)")

        self.queries.flush()
        now = time.time()
        store = self.store

        def passage(doc_id: str, start: int, end: int) -> str | None:
            document = store.document(doc_id)
            return document.text[start:end] if document is not None else None

        summary = self.queries.log.summary(window_start(days, now), LIMIT)
        return report(summary, self._titles(), passage, days, now)

    def _titles(self) -> Iterator[tuple[str, str]]:
        offset = 0
        while True:
            _, page = self.store.documents(offset, 1000)
            yield from ((document.id, document.title) for document in page)
            if len(page) < 1000:
                return
            offset += 1000

    def passage_spans(self, doc_id: str, caller: "Caller | None" = None) -> list[tuple[int, int]]:
        """(start, end) of each passage of the document, by ordinal (none for an unknown id)."""
        return self.store.passage_spans(doc_id, _groups(caller))

    def list(self, offset: int = 0, limit: int = 20, caller: "Caller | None" = None) -> tuple[int, list["StoredDocument"]]:
        """(how many documents there are, ``limit`` of them by id from ``offset``, without their text)."""
        return self.store.documents(offset, limit, _groups(caller))

    def counts(self, caller: "Caller | None" = None) -> tuple[int, int]:
        """(documents, passages)."""
        return self.store.counts(_groups(caller))

    def reads_everything(self, caller: "Caller | None") -> bool:
        """Whether ``caller`` may read every document there is now: what the insights and /metrics, which count
        every caller's questions and every document, ask of whoever reads them."""
        return caller is None or caller.everything or self.counts(caller)[0] == self.counts()[0]

    @property
    def keys(self) -> "KeyTable":
        """The keys that name callers (kb/stores/keys.py), where the store keeps them."""
        if self._keys is not None:
            return self._keys
        with self._lock:
            if self._keys is None:
                from kb.stores import store_class

                self._keys = store_class(self.settings).key_table(self.settings)
            return self._keys

    # ---- writing ----------------------------------------------------------------------------------

    # A ``caller`` that may write only for its groups (`kb keys add --write`) writes documents of those groups or
    # public ones, and replaces or deletes only documents it may read (kb/ingestion/writes.py).

    def add(self, record: dict[str, Any], caller: "Caller | None" = None) -> tuple[dict, "BuildReport"]:
        """A document as JSON {id?, title, text, source?, date?, metadata?, access?}; an existing id is replaced."""
        return self.library.add_record(record, _groups(caller))

    def add_file(self, name: str, data: bytes, caller: "Caller | None" = None,
                 access: Sequence[str] | None = None) -> tuple[list[dict], "BuildReport"]:
        """A file of a supported type (.txt .md .html .pdf .jsonl), kept as it came; with ``access``, readable by
        those groups only (kept as the document read from it, docs/access.md)."""
        return self.library.add_file(name, data, _groups(caller), access)

    def delete(self, doc_id: str, caller: "Caller | None" = None) -> "BuildReport":
        """Delete a document (DocumentError ``not_found`` when there is none, or the caller may not read it)."""
        return self.library.remove(doc_id, _groups(caller))

    def build(self, force: bool = False, progress: Callable | None = None) -> "BuildReport":
        """Bring the index in line with the corpus folder (`kb build`)."""
        from kb.ingestion.sync import build_index

        report = build_index(self.settings, force=force, embedder=self._embedder, progress=progress)
        if self._searcher is not None:
            self._searcher.refresh()
        return report

    def watch(self) -> "FolderWatch":
        """Keep the index in step with the corpus folder from now on (kb/ingestion/watch.py), unless KB_WATCH=off,
        another process watches this store, or the index holds another folder's documents (`kb build` switches)."""
        from kb.ingestion.sync import build_index
        from kb.ingestion.watch import FolderWatch
        from kb.stores import store_class

        prepare = self._worker_prepare()  # large syncs are embedded where API writes are

        def sync(**options: Any) -> "BuildReport":
            report = build_index(self.settings, embedder=self.embedder, live=self.searcher.fresh_store(),
                                 prepare=prepare, **options)
            if report.written and self._searcher is not None:
                self._searcher.refresh()
            return report

        kind = store_class(self.settings)
        self.watching = FolderWatch(self.settings, sync, claim=lambda: kind.watch_claim(self.settings),
                                    owner=lambda: self.store.corpus)
        self.watching.start()
        return self.watching

    # ---- moving documents in and out ----------------------------------------------------------------

    def export(self, out: IO[bytes], tick: Callable[[int], None] | None = None) -> int:
        """Every document as JSON lines (kb/stores/record.py), from one consistent state; how many."""
        from kb.stores import open_store
        from kb.stores.record import export

        store = open_store(self.settings)  # no model needed
        try:
            return export(store, out, tick)
        finally:
            store.close()

    def export_lines(self, caller: "Caller | None" = None) -> Iterator[bytes]:
        """The export lines of the documents ``caller`` may read, from the live store (`GET /api/export`)."""
        from kb.stores.record import export_lines

        return export_lines(self.store, _groups(caller))

    def load(self, stream: IO[bytes], tick: Callable[[int], None] | None = None) -> "ImportReport":
        """Import `kb export`'s lines through the write path, a batch to a transaction (`kb import`)."""
        from kb.ingestion.transfer import import_rows, read_rows

        return import_rows(read_rows(stream, tick), self.library, self.settings.max_upload_mb * 2**20)

    # ---- the end --------------------------------------------------------------------------------------

    def close(self) -> None:
        if self.watching is not None:
            self.watching.stop()
        if self._queries is not None:
            self._queries.close()
        if self._keys is not None:
            self._keys.close()
        if self._searcher is not None:
            self._searcher.store.close()

    def __enter__(self) -> "KnowledgeBase":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _groups(caller: "Caller | None") -> tuple[str, ...] | None:
    """What the store is told of a caller: the groups it reads (None: every document)."""
    return None if caller is None else caller.groups
