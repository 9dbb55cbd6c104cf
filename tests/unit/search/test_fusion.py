"""The query pipeline's logic on a small index with a fake embedder (no model needed)."""

import numpy as np
import pytest

from kb.documents.chunking import embedding_text
from kb.ingestion.sync import build_index
from kb.search.fusion import RRF_K, minmax, ranks, zscore
from kb.search.pipeline import Searcher
from kb.settings import Settings
from kb.stores.faiss.store import open_current
from tests.fakes import FakeEmbedder

DOCS = {
    "wing.txt": "Wings\nA wing in a propeller slipstream gains lift. The lift increase depends on the angle of attack.",
    "plate.txt": "Plates\nShear flow past a flat plate. The boundary layer thickens downstream.",
    "airship.txt": "Airships\nA zeppelin floats because its gas is lighter than air. Zeppelins were common in 1930.",
}


@pytest.fixture()
def index_and_settings(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in DOCS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    settings = Settings.from_env(environ={}, corpus_dir=corpus, index_dir=tmp_path / "index")
    embedder = FakeEmbedder()
    build_index(settings, embedder=embedder)
    return open_current(settings), settings, embedder


def test_pure_helpers():
    assert list(ranks(np.array([0.1, 0.9, 0.5]))) == [3, 1, 2]
    assert np.allclose(minmax(np.array([1.0, 3.0, 2.0])), [0.0, 1.0, 0.5])
    z = zscore(np.array([1.0, 2.0, 3.0]))
    assert abs(z.mean()) < 1e-9 and abs(z.std() - 1) < 1e-9
    assert not zscore(np.array([2.0, 2.0])).any()


def test_keyword_mode_finds_the_exact_rare_term(index_and_settings):
    index, settings, embedder = index_and_settings
    hits = Searcher(index, embedder, settings).search("zeppelins", 3, mode="keyword")
    assert hits[0].doc_id == "airship.txt"
    assert hits[0].scores["keyword"] > 0 and hits[0].ranks["keyword"] == 1
    assert len(hits) == 1, "passages without any query word are not keyword results"


@pytest.mark.parametrize("fusion", ["zscore", "minmax", "rrf"])
def test_hybrid_results_carry_every_score_and_are_ordered_by_the_fused_one(index_and_settings, fusion):
    index, settings, embedder = index_and_settings
    searcher = Searcher(index, embedder, settings.with_(fusion=fusion, feedback=0))
    hits = searcher.search("lift of a wing", 3, mode="hybrid")
    assert len(hits) == 3
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for hit in hits:
        assert set(hit.scores) == {"dense", "keyword", "fused"} and hit.score == hit.scores["fused"]
        assert 1 <= hit.ranks["dense"] <= 3
        if fusion == "rrf" and hit.ranks["keyword"]:
            expected = 1 / (RRF_K + hit.ranks["dense"]) + 1 / (RRF_K + hit.ranks["keyword"])
            assert hit.score == pytest.approx(expected, abs=1e-6)


def test_the_hybrid_weight_moves_between_keyword_and_dense_order(index_and_settings):
    index, settings, embedder = index_and_settings
    query = "lift of a wing"
    keyword_only = Searcher(index, embedder, settings.with_(hybrid_weight=0.0, feedback=0)).search(query, 3)
    assert keyword_only[0].doc_id == "wing.txt", "the only passage sharing 'lift' and 'wing'"
    dense_only = Searcher(index, embedder, settings.with_(hybrid_weight=1.0, feedback=0)).search(query, 3)
    dense = Searcher(index, embedder, settings).search(query, 3, mode="dense")
    assert [h.passage_id for h in dense_only] == [h.passage_id for h in dense]


def test_dense_mode_scores_are_cosines_of_the_stored_vectors(index_and_settings):
    index, settings, embedder = index_and_settings
    hits = Searcher(index, embedder, settings).search("anything at all", 3, mode="dense")
    query = embedder.encode_query("anything at all")
    for hit in hits:
        stored = FakeEmbedder().encode([embedding_text(hit.title, hit)])[0]  # what was embedded for the passage
        assert hit.score == pytest.approx(float(stored @ query), abs=1e-5)


def test_the_confidence_threshold_marks_hits_and_the_answer(index_and_settings):
    index, settings, embedder = index_and_settings
    strict = Searcher(index, embedder, settings.with_(confidence_threshold=1.01)).answer("wing lift", 3)
    assert not strict.confident and not any(h.confident for h in strict.hits)
    lenient = Searcher(index, embedder, settings.with_(confidence_threshold=-1.0)).answer("wing lift", 3)
    assert lenient.confident and all(h.confident for h in lenient.hits)


def test_spans_stay_exact_whatever_the_mode(index_and_settings):
    index, settings, embedder = index_and_settings
    for mode in ("hybrid", "dense", "keyword"):
        for hit in Searcher(index, embedder, settings).search("zeppelin wing plate", 3, mode=mode):
            assert index.document(hit.doc_id).text[hit.start : hit.end] == hit.text


def test_a_repeated_question_is_answered_from_the_cache_until_the_index_changes(index_and_settings):
    index, settings, embedder = index_and_settings
    searcher = Searcher(index, embedder, settings)
    first = searcher.answer("zeppelin", 3)
    calls = len(embedder.embedded)
    again = searcher.answer("zeppelin", 3)
    assert again is first and len(embedder.embedded) == calls, "no model call, no new search"
    assert searcher.answer("zeppelin", 2) is not first, "a different k is a different answer"
    fresh = Searcher(index, embedder, settings)  # what a new build gets
    assert fresh.answer("zeppelin", 3) is not first
