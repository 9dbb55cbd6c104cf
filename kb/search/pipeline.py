"""The query pipeline: dense and keyword retrieval, fusion, confidence, highlights -> Hits.

Both retrievers propose candidates; every candidate then gets both scores exactly (a dot
product with its stored vector, and its BM25 score), so fusion never has to guess a
missing score, and each hit reports its rank in each list.
"""

from __future__ import annotations

import bisect
import functools
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from kb.documents.readers import valid_page_starts
from kb.documents.structure import STRUCTURE_KEYS, code_within
from kb.documents.terms import terms
from kb.embedding.embedder import Embedder
from kb.schemas import SearchAnswer
from kb.search.fusion import fuse, ranks
from kb.search.highlights import annotate
from kb.search.hit import Hit
from kb.settings import Settings
from kb.stores.base import Candidates, PassageRecord, Snapshot, Store
from kb.stores.filters import Filters

MAX_QUERY_CHARS = 1000
MAX_K = 50
MAX_OFFSET = 500  # "more results" reaches this deep into the ranking
DEFAULT_K = 5
ANSWER_CACHE_SIZE = 1024  # answers kept per index build


_HEAD = [name for name in SearchAnswer.model_fields if name not in ("results", "filters")]


@dataclass
class Answer:
    query: str
    mode: str
    hits: list[Hit]
    confident: bool  # whether any hit clears the "no good match" threshold
    filters: Filters = Filters()
    offset: int = 0  # ranked passages skipped before these hits
    more: bool = False  # whether passages are ranked after these

    def next_offset(self, k: int) -> int | None:
        """Where the next page starts, or None when nothing is ranked after this one."""
        return self.offset + k if self.more and self.offset + k <= MAX_OFFSET else None

    def _head(self, k: int, took_ms: float) -> dict:
        """The answer's own fields, as kb/schemas.py's ``SearchAnswer`` orders them (its results and filters apart;
        a test validates the whole against it)."""
        values = {"query": self.query, "k": k, "offset": self.offset, "next_offset": self.next_offset(k),
                  "mode": self.mode, "took_ms": round(took_ms, 2), "confident": self.confident}
        return {name: values[name] for name in _HEAD}

    def to_json(self, k: int, took_ms: float) -> dict:
        """The answer as kb/schemas.py's ``SearchAnswer`` (the API and `kb search --json`)."""
        body = {**self._head(k, took_ms), "results": [h.to_dict() for h in self.hits]}
        if self.filters.asked:
            body["filters"] = self.filters.to_json()
        return body

    def json_text(self, k: int, took_ms: float) -> str:
        """``to_json`` as JSON text, the same keys in the same order. The hits are serialized once per
        answer, so an answer from the cache costs only its few top-level fields (benchmarks/README.md)."""
        head = json.dumps(self._head(k, took_ms))
        tail = f', "filters": {json.dumps(self.filters.to_json())}' if self.filters.asked else ""
        return f'{head[:-1]}, "results": {self._results_text}{tail}}}'

    @functools.cached_property
    def _results_text(self) -> str:
        return json.dumps([h.to_dict() for h in self.hits])


class Searcher:
    """The query pipeline over any store; every answer comes from one snapshot of it."""

    def __init__(self, store: Store, embedder: Embedder, settings: Settings | None = None) -> None:
        if store.model != embedder.name:
            raise ValueError(f"index built with {store.model!r}, embedder is {embedder.name!r}")
        self.store = store
        self.embedder = embedder
        self.settings = settings or Settings.from_env(environ={})
        # Answers keyed by the store's version too: a write makes every cached answer stale at once.
        self._answers: OrderedDict[tuple, Answer] = OrderedDict()
        self._answers_lock = threading.Lock()
        self.answered = 0  # answers given, and how many of them came from the cache (for /metrics)
        self.cache_hits = 0

    def search(self, query: str, k: int = DEFAULT_K, mode: str | None = None) -> list[Hit]:
        return self.answer(query, k, mode).hits

    def answer(
        self, query: str, k: int = DEFAULT_K, mode: str | None = None, highlights: bool = True,
        filters: Filters = Filters(), offset: int = 0,
    ) -> Answer:
        """The best ``k`` passages after the first ``offset`` of the ranking (pages of one ranking agree)."""
        mode = mode or self.settings.search_mode
        with self.store.snapshot() as snapshot:
            key = (snapshot.version, query, k, mode, highlights, filters, offset)
            with self._answers_lock:
                self.answered += 1
                cached = self._answers.get(key)
                if cached is not None:
                    self.cache_hits += 1
                    self._answers.move_to_end(key)
                    return cached
            answer = self._answer(snapshot, query, k, mode, highlights, filters, offset)
        with self._answers_lock:
            self._answers[key] = answer
            if len(self._answers) > ANSWER_CACHE_SIZE:
                self._answers.popitem(last=False)
        return answer

    def _answer(self, snapshot: Snapshot, query: str, k: int, mode: str, highlights: bool, filters: Filters,
                offset: int = 0) -> Answer:
        query_vector = self.embedder.encode_query(query)
        query_terms = terms(query)
        candidates = snapshot.candidates(query_vector, query_terms, max(offset + k + 1, self.settings.candidates),  # +1: is there more?
                                         dense=mode in ("dense", "hybrid"), keyword=mode in ("keyword", "hybrid"),
                                         filters=filters)
        order, fused = self._rank(query_vector, candidates, mode)
        # A few spare: a passage deleted since the candidates were found is simply not returned.
        records = snapshot.records(candidates.keys[order[offset : offset + k + 8]].tolist())[:k]
        position = {int(key): i for i, key in enumerate(candidates.keys)}
        dense_ranks, keyword_ranks = ranks(candidates.dense), ranks(candidates.keyword)
        hits = []
        for rank, record in enumerate(records, offset + 1):
            i = position[record.key]
            hits.append(self._hit(rank, record, {
                "dense": float(candidates.dense[i]), "keyword": float(candidates.keyword[i]), "fused": float(fused[i]),
                "rank_dense": int(dense_ranks[i]),
                "rank_keyword": int(keyword_ranks[i]) if candidates.keyword[i] > 0 else None,
            }))
        threshold = self.settings.confidence_threshold
        for hit in hits:
            hit.confident = hit.scores["dense"] >= threshold
        if highlights:
            annotate(hits, records, query_vector, set(query_terms))
        return Answer(query, mode, hits, any(h.confident for h in hits), filters, offset, len(order) > offset + k)

    def _rank(self, query_vector: np.ndarray, candidates: Candidates, mode: str) -> tuple[np.ndarray, np.ndarray]:
        """Pool positions best first, and the score each is ordered by."""
        dense, keyword = candidates.dense, candidates.keyword
        if not len(dense):
            return np.zeros(0, dtype=np.int64), dense
        if mode == "dense":
            fused = dense
        elif mode == "keyword":
            fused = keyword
        else:
            fused = self._fuse(dense, keyword)
            if self.settings.feedback > 0 and len(dense) > self.settings.feedback:
                # Pseudo-relevance feedback: move the query towards the best fused passages, re-score the pool.
                top = np.argsort(-fused, kind="stable")[: self.settings.feedback]
                expanded = query_vector + self.settings.feedback_weight * candidates.vectors[top].mean(axis=0)
                expanded /= np.linalg.norm(expanded) or 1.0
                fused = self._fuse(candidates.vectors @ expanded, keyword)
        return np.lexsort((-dense, -fused)), fused  # ties broken by the dense score

    def _fuse(self, dense: np.ndarray, keyword: np.ndarray) -> np.ndarray:
        return fuse(dense, keyword, self.settings.fusion, self.settings.hybrid_weight)

    def _hit(self, rank: int, record: PassageRecord, s: dict) -> Hit:
        return Hit(
            rank=rank,
            score=s["fused"],
            passage_id=record.passage_id,
            doc_id=record.doc_id,
            title=record.title,
            source=record.source,
            text=record.text,
            start=record.start,
            end=record.end,
            ordinal=record.ordinal,
            doc_passages=record.doc_passages,
            doc_length=record.doc_length,
            heading=record.heading,
            headings=list(record.headings),
            code=code_within(record.metadata.get("code"), record.start, record.end),
            scores={"dense": s["dense"], "keyword": s["keyword"], "fused": s["fused"]},
            ranks={"dense": s["rank_dense"], "keyword": s["rank_keyword"]},
            metadata=passage_metadata(record.metadata, record.start, record.end),
        )


def passage_metadata(metadata: dict, start: int, end: int) -> dict:
    """A passage inherits its document's metadata; a PDF's page offsets become the passage's pages."""
    inherited = {k: v for k, v in metadata.items() if k not in STRUCTURE_KEYS}
    page_starts = metadata.get("page_starts")
    if valid_page_starts(page_starts):  # checked when the document came in; a bad stored value is ignored
        first = bisect.bisect_right(page_starts, start)
        last = bisect.bisect_right(page_starts, max(start, end - 1))
        inherited["pages"] = list(range(first, last + 1))
    return inherited
