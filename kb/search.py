"""The query pipeline: dense and keyword retrieval, fusion, confidence, highlights -> Hits.

Both retrievers propose candidates; every candidate then gets both scores exactly (a dot
product with its stored vector, and its BM25 score), so fusion never has to guess a
missing score, and each hit reports its rank in each list.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from kb.embed import Embedder
from kb.filters import Filters
from kb.highlight import annotate
from kb.hit import Hit
from kb.index import Index
from kb.keyword import terms
from kb.readers import valid_page_starts
from kb.settings import Settings

MAX_QUERY_CHARS = 1000
MAX_K = 50
DEFAULT_K = 5
RRF_K = 60  # the constant from Cormack et al. (2009)
ANSWER_CACHE_SIZE = 1024  # answers kept per index build


@dataclass
class Answer:
    query: str
    mode: str
    hits: list[Hit]
    confident: bool  # whether any hit clears the "no good match" threshold
    filters: Filters = Filters()

    def to_json(self, k: int, took_ms: float) -> dict:
        """The JSON shape shared by the API and `kb search --json`."""
        body = {"query": self.query, "k": k, "mode": self.mode, "took_ms": round(took_ms, 2),
                "confident": self.confident, "results": [h.to_dict() for h in self.hits]}
        if self.filters:
            body["filters"] = self.filters.to_json()
        return body


class Searcher:
    def __init__(self, index: Index, embedder: Embedder, settings: Settings | None = None) -> None:
        if index.model != embedder.name:
            raise ValueError(f"index built with {index.model!r}, embedder is {embedder.name!r}")
        self.index = index
        self.embedder = embedder
        self.settings = settings or Settings.from_env(environ={})
        if hasattr(index.faiss_index, "hnsw"):
            index.faiss_index.hnsw.efSearch = self.settings.hnsw_ef_search  # KB_HNSW_EF_SEARCH overrides the manifest
        if hasattr(index.faiss_index, "nprobe"):
            index.faiss_index.nprobe = self.settings.ivf_nprobe  # and KB_IVF_NPROBE
        # Answers for this index only: a new build gets a new Searcher, so the cache never serves stale results.
        self._answers: OrderedDict[tuple, Answer] = OrderedDict()
        self._answers_lock = threading.Lock()
        self._positions: dict[str, np.ndarray] | None = None  # passage positions per document, built on first filter

    def search(self, query: str, k: int = DEFAULT_K, mode: str | None = None) -> list[Hit]:
        return self.answer(query, k, mode).hits

    def answer(
        self, query: str, k: int = DEFAULT_K, mode: str | None = None, highlights: bool = True,
        filters: Filters = Filters(),
    ) -> Answer:
        mode = mode or self.settings.search_mode
        key = (query, k, mode, highlights, filters)
        with self._answers_lock:
            cached = self._answers.get(key)
            if cached is not None:
                self._answers.move_to_end(key)
                return cached
        answer = self._answer(query, k, mode, highlights, filters)
        with self._answers_lock:
            self._answers[key] = answer
            if len(self._answers) > ANSWER_CACHE_SIZE:
                self._answers.popitem(last=False)
        return answer

    def _answer(self, query: str, k: int, mode: str, highlights: bool, filters: Filters) -> Answer:
        query_vector = self.embedder.encode_query(query)
        query_terms = terms(query)
        allowed = self._allowed(filters) if filters else None
        positions, scores = self._rank(query_vector, query_terms, k, mode, allowed)
        hits = [self._hit(rank, p, scores, mode) for rank, p in enumerate(positions, 1)]
        threshold = self.settings.confidence_threshold
        for hit in hits:
            hit.confident = hit.scores["dense"] >= threshold
        if highlights:
            annotate(hits, positions, self.index.sentences, query_vector, set(query_terms))
        return Answer(query, mode, hits, any(h.confident for h in hits), filters)

    def _allowed(self, filters: Filters) -> np.ndarray:
        """Positions of the passages whose documents pass the filters."""
        if self._positions is None:
            by_doc: dict[str, list[int]] = {}
            for position, passage in enumerate(self.index.passages):
                by_doc.setdefault(passage.doc_id, []).append(position)
            self._positions = {doc_id: np.asarray(rows, dtype=np.int64) for doc_id, rows in by_doc.items()}
        keep = [self._positions[d.id] for d in self.index.documents.values()
                if d.id in self._positions and filters.matches(d.id, d.source, d.metadata)]
        return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)

    def _rank(self, query_vector: np.ndarray, query_terms: list[str], k: int, mode: str,
              allowed: np.ndarray | None = None):
        index = self.index
        depth = max(k, self.settings.candidates)
        candidates: dict[int, None] = {}
        if mode in ("dense", "hybrid"):
            if allowed is None:
                candidates.update((p, None) for p, _ in index.search(query_vector, depth))
            else:  # exact search over the passages that pass the filters: k results whenever k exist
                subset = np.asarray(index.vectors[allowed]) @ query_vector
                candidates.update((int(allowed[i]), None) for i in _top(subset, depth))
        keyword_all = index.keyword.scores(query_terms)
        if allowed is not None:
            masked = np.zeros_like(keyword_all)
            masked[allowed] = keyword_all[allowed]
            keyword_all = masked
        if mode in ("keyword", "hybrid"):
            for p in _top(keyword_all, depth):
                if keyword_all[p] > 0:
                    candidates[int(p)] = None
        if not candidates:
            return [], {}
        pool = np.fromiter(candidates, dtype=np.int64)
        pool_vectors = np.asarray(index.vectors[pool], dtype=np.float32)
        dense = pool_vectors @ query_vector
        keyword = keyword_all[pool]
        if mode == "dense":
            fused = dense
        elif mode == "keyword":
            fused = keyword
        else:
            fused = self._fuse(dense, keyword)
            if self.settings.feedback > 0 and len(pool) > self.settings.feedback:
                # Pseudo-relevance feedback: move the query towards the best fused passages, re-score the pool.
                top = np.argsort(-fused, kind="stable")[: self.settings.feedback]
                expanded = query_vector + self.settings.feedback_weight * pool_vectors[top].mean(axis=0)
                expanded /= np.linalg.norm(expanded) or 1.0
                fused = self._fuse(pool_vectors @ expanded, keyword)
        order = np.lexsort((-dense, -fused))[:k]  # ties broken by the dense score
        dense_ranks, keyword_ranks = _ranks(dense), _ranks(keyword)
        scores = {
            int(pool[i]): {
                "dense": float(dense[i]),
                "keyword": float(keyword[i]),
                "fused": float(fused[i]),
                "rank_dense": int(dense_ranks[i]),
                "rank_keyword": int(keyword_ranks[i]) if keyword[i] > 0 else None,
            }
            for i in order
        }
        return [int(pool[i]) for i in order], scores

    def _fuse(self, dense: np.ndarray, keyword: np.ndarray) -> np.ndarray:
        fusion, weight = self.settings.fusion, self.settings.hybrid_weight
        if fusion == "rrf":
            return 1.0 / (RRF_K + _ranks(dense)) + 1.0 / (RRF_K + _ranks(keyword))
        normalize = _zscore if fusion == "zscore" else _minmax
        return weight * normalize(dense) + (1 - weight) * normalize(keyword)

    def _hit(self, rank: int, position: int, scores: dict[int, dict], mode: str) -> Hit:
        passage = self.index.passages[position]
        document = self.index.documents[passage.doc_id]
        s = scores[position]
        return Hit(
            rank=rank,
            score=s["fused"],
            passage_id=passage.id,
            doc_id=passage.doc_id,
            title=document.title,
            source=document.source,
            text=passage.text,
            start=passage.start,
            end=passage.end,
            ordinal=passage.ordinal,
            doc_passages=document.passages,
            doc_length=len(document.text),
            heading=passage.heading,
            scores={"dense": s["dense"], "keyword": s["keyword"], "fused": s["fused"]},
            ranks={"dense": s["rank_dense"], "keyword": s["rank_keyword"]},
            metadata=passage_metadata(document.metadata, passage.start, passage.end),
        )


def passage_metadata(metadata: dict, start: int, end: int) -> dict:
    """A passage inherits its document's metadata; a PDF's page offsets become the passage's pages."""
    inherited = {k: v for k, v in metadata.items() if k != "page_starts"}
    page_starts = metadata.get("page_starts")
    if valid_page_starts(page_starts):  # checked when the document came in; a bad stored value is ignored
        first = bisect.bisect_right(page_starts, start)
        last = bisect.bisect_right(page_starts, max(start, end - 1))
        inherited["pages"] = list(range(first, last + 1))
    return inherited


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    if n >= len(scores):
        return np.argsort(-scores, kind="stable")
    part = np.argpartition(-scores, n)[:n]
    return part[np.argsort(-scores[part], kind="stable")]


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based rank of each value, highest first."""
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[np.argsort(-values, kind="stable")] = np.arange(1, len(values) + 1)
    return ranks


def _minmax(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-9:
        return np.ones_like(values)
    return (values - low) / (high - low)


def _zscore(values: np.ndarray) -> np.ndarray:
    spread = float(values.std())
    if spread < 1e-9:
        return np.zeros_like(values)
    return (values - float(values.mean())) / spread
