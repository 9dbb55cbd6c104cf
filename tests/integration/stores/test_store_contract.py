"""The store contract, checked against a brute-force NumPy oracle. Every store kb has must pass it.

Documents with random unit vectors and random words are written, replaced and deleted; after
each step the store's candidates must match what exhaustive search over the live passages gives:
exactly for flat search and BM25, recall@10 of at least 0.95 for HNSW; filters, the caller's groups among
them (who may read what), must give the same answers as filtering first; every record must be an exact span of its
document; a document the caller may not read is neither read, listed, nor counted.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from kb.embedding.prepare import build_config
from kb.settings import Settings
from kb.stores.base import PreparedDocument, PreparedPassage, StoredDocument
from kb.stores.filters import Filters

DIMENSION = 16
WORDS = [f"w{n}" for n in range(60)]


ACCESS = [(), ("a",), ("b",), ("a", "b")]  # document n gets ACCESS[n % 4]


def make_document(rng: np.random.Generator, doc_id: str, passages: int, topic: str) -> PreparedDocument:
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(3, 12))) for _ in range(passages)]
    text, spans = "", []
    for piece in texts:
        start = len(text)
        text += piece + ". "
        spans.append((start, start + len(piece) + 1))
    items = []
    for ordinal, ((start, end), piece) in enumerate(zip(spans, texts)):
        vector = rng.normal(size=DIMENSION).astype(np.float32)
        vector /= np.linalg.norm(vector)
        items.append(PreparedPassage(f"{doc_id}:{ordinal}", ordinal, start, end, text[start:end], "", vector,
                                     piece.split(), np.array([[start, end]]), vector[None, :].astype(np.float16)))
    document = StoredDocument(doc_id, doc_id.title(), f"src/{topic}", f"hash-{doc_id}-{rng.integers(1 << 30)}", text,
                              len(items), {"topic": topic}, "", access=ACCESS[int(doc_id[3:]) % 4])
    return PreparedDocument(document, items)


class Oracle:
    """What the store should hold: the live documents, searched exhaustively."""

    def __init__(self) -> None:
        self.documents: dict[str, PreparedDocument] = {}

    def passages(self, filters: Filters = Filters()):
        return [(doc_id, p) for doc_id, d in sorted(self.documents.items()) for p in d.passages
                if filters.matches(doc_id, d.document.source, d.document.metadata, d.document.access)]

    def dense(self, query: np.ndarray, k: int, filters: Filters = Filters()) -> list[str]:
        rows = self.passages(filters)
        scores = np.array([p.vector @ query for _, p in rows])
        return [rows[i][1].passage_id for i in np.argsort(-scores, kind="stable")[:k]]

    def keyword(self, query_terms: list[str], filters: Filters = Filters()) -> dict[str, float]:
        rows = self.passages()  # statistics over every live passage; filters only choose among them
        scores = bm25([p.terms for _, p in rows], query_terms)
        allowed = {p.passage_id for _, p in self.passages(filters)}
        return {p.passage_id: float(s) for (_, p), s in zip(rows, scores) if s > 0 and p.passage_id in allowed}


def bm25(passages: list[list[str]], query_terms: list[str]) -> np.ndarray:
    """Lucene's BM25 (k1 1.5, b 0.75), passage by passage; a repeated query word counts each time."""
    if not passages:
        return np.zeros(0)
    average = sum(map(len, passages)) / len(passages)
    df = Counter(term for passage in passages for term in set(passage))
    scores = np.zeros(len(passages))
    for term in query_terms:
        if not df[term]:
            continue
        idf = math.log(1 + (len(passages) - df[term] + 0.5) / (df[term] + 0.5))
        for i, passage in enumerate(passages):
            tf = passage.count(term)
            scores[i] += idf * tf / (tf + 1.5 * (1 - 0.75 + 0.75 * len(passage) / average))
    return scores


def faiss_store(tmp_path, index_type: str):
    from kb.stores.faiss.store import FaissStore

    settings = Settings.from_env(environ={}, index_dir=tmp_path / "index", index_type=index_type, hnsw_threshold=0)
    return FaissStore.create(settings.index_dir, settings, "fake", DIMENSION, build_config(settings))


def postgres_store(request):
    """A real PostgreSQL with pgvector (HNSW, iterative scans), in a schema of its own."""
    from kb.stores.postgres.store import PostgresStore

    settings = request.getfixturevalue("pg_settings")
    return PostgresStore.create(settings, "fake", DIMENSION, build_config(settings))


STORES = {"faiss-flat": lambda request, tmp_path: faiss_store(tmp_path, "flat"),
          "faiss-hnsw": lambda request, tmp_path: faiss_store(tmp_path, "hnsw"),
          "postgres-hnsw": lambda request, tmp_path: postgres_store(request)}


@pytest.fixture(params=sorted(STORES))
def store(request, tmp_path):
    made = STORES[request.param](request, tmp_path)
    made.kind = request.param
    if request.param == "faiss-hnsw":
        assert made.memory.spec["type"] == "hnsw"
    yield made
    made.close()


def candidate_ids(store, query_vector, query_terms, k, dense, keyword, filters=Filters()):
    with store.snapshot() as snapshot:
        found = snapshot.candidates(query_vector, query_terms, k, dense, keyword, filters)
        records = {r.key: r for r in snapshot.records(found.keys.tolist())}
    return found, records


def check(store, oracle: Oracle, rng: np.random.Generator, filters: Filters = Filters()) -> None:
    recalls = []
    for _ in range(15):
        query = rng.normal(size=DIMENSION).astype(np.float32)
        query /= np.linalg.norm(query)
        terms = list(rng.choice(WORDS, size=3))
        found, records = candidate_ids(store, query, terms, 10, True, False, filters)
        got = [records[k].passage_id for k in found.keys.tolist()]
        expected = oracle.dense(query, 10, filters)
        assert len(got) == len(expected), "k results whenever k passages match"
        if store.kind.endswith("flat") or filters:
            assert got == expected
        recalls.append(len(set(got) & set(expected)) / max(1, len(expected)))
        for key, score in zip(found.keys.tolist(), found.dense):
            vector = next(p.vector for _, p in oracle.passages() if p.passage_id == records[key].passage_id)
            assert score == pytest.approx(float(vector @ query), abs=1e-5), "exact cosine for every candidate"
        found, records = candidate_ids(store, query, terms, 1000, False, True, filters)
        got_scores = {records[k].passage_id: float(s) for k, s in zip(found.keys.tolist(), found.keyword)}
        expected_scores = oracle.keyword(terms, filters)
        assert got_scores.keys() == expected_scores.keys()
        for passage_id, score in expected_scores.items():
            assert got_scores[passage_id] == pytest.approx(score, rel=1e-4, abs=1e-5)
        # A short list: the store may stop reading long posting lists early, and must still find the best five.
        found, _ = candidate_ids(store, query, terms, 5, False, True, filters)
        best = sorted(expected_scores.values(), reverse=True)[:5]
        assert sorted(found.keyword.tolist(), reverse=True) == pytest.approx(best, rel=1e-4, abs=1e-5)
        for record in records.values():
            document = oracle.documents[record.doc_id].document
            assert document.text[record.start : record.end] == record.text
            assert (record.title, record.source, record.doc_passages) == (document.title, document.source,
                                                                          document.passages)
    assert np.mean(recalls) >= 0.95


def test_the_store_keeps_its_contract_through_writes_replacements_and_deletes(store):
    rng = np.random.default_rng(11)
    oracle = Oracle()
    with store.snapshot() as snapshot:
        assert snapshot.counts() == (0, 0)
        assert len(snapshot.candidates(np.ones(DIMENSION, np.float32), ["w1"], 10, True, True).keys) == 0
    documents = [make_document(rng, f"doc{n}", int(rng.integers(1, 6)), ["red", "blue"][n % 2]) for n in range(60)]
    store.add(documents[:30])
    store.add(documents[30:])
    oracle.documents.update({d.document.id: d for d in documents})
    check(store, oracle, rng)
    replaced = [make_document(rng, f"doc{n}", int(rng.integers(1, 6)), "green") for n in range(0, 20, 2)]
    store.add(replaced)
    oracle.documents.update({d.document.id: d for d in replaced})
    deleted = [f"doc{n}" for n in range(1, 40, 3)]
    assert sorted(store.delete(deleted + ["no-such-doc"])) == sorted(deleted)
    for doc_id in deleted:
        del oracle.documents[doc_id]
    check(store, oracle, rng)
    check(store, oracle, rng, Filters(metadata=(("topic", "green"),)))
    check(store, oracle, rng, Filters(doc_ids=("doc2", "doc5", "doc30"), sources=("src/green", "src/blue")))
    for groups in [("a",), (), ("b", "c"), ("a", "b")]:  # who may read what: a filter like the others
        check(store, oracle, rng, Filters(groups=groups))
        visible = {doc_id for doc_id, d in oracle.documents.items() if Filters(groups=groups).matches(
            doc_id, d.document.source, d.document.metadata, d.document.access)}
        total, page = store.documents(0, 100, groups)
        assert total == len(visible) and [d.id for d in page] == sorted(visible)
        assert [d.id for d in store.all_documents(groups)] == sorted(visible)  # what an export gives the caller
        assert store.counts(groups) == (len(visible), sum(len(oracle.documents[i].passages) for i in visible))
        for doc_id in oracle.documents:
            shown = store.document(doc_id, groups)
            assert (shown is not None) == (doc_id in visible)
            assert bool(store.passage_spans(doc_id, groups)) == (doc_id in visible)
            assert shown is None or shown.access == oracle.documents[doc_id].document.access
    check(store, oracle, rng, Filters(metadata=(("topic", "green"),), groups=("b",)))
    with store.snapshot() as snapshot:
        assert snapshot.counts() == (len(oracle.documents), len(oracle.passages()))
    assert store.document("doc1") is None and store.document("doc0").metadata == {"topic": "green"}
    for doc_id, prepared in oracle.documents.items():
        assert store.passage_spans(doc_id) == [(p.start, p.end) for p in prepared.passages], "by ordinal"
    assert store.passage_spans("doc1") == []
    total, page = store.documents(0, 10)
    assert total == len(oracle.documents) and [d.id for d in page] == sorted(oracle.documents)[:10]
    store.delete(list(oracle.documents))
    with store.snapshot() as snapshot:
        assert snapshot.counts() == (0, 0), "back to empty"
        assert len(snapshot.candidates(np.ones(DIMENSION, np.float32), ["w1"], 10, True, True).keys) == 0
