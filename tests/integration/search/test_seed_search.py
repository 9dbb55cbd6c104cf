"""A real index of the seed article, built with the real model and real FAISS."""

import pytest

from kb.evaluation.questions import first_hit_rank, hit_rates, load_questions
from kb.search.pipeline import Searcher
from tests.conftest import SEED_QUESTIONS, all_documents, all_passages

# Held out: kb's settings are tuned on the "tune" half of the question set (benchmarks/fusion_sweep.py
# reads only that half); the floors below are asserted on the other half. (The defaults were chosen
# on the whole set before it was split, so this half is held out from every change made since.)
QUESTIONS = [q for q in load_questions(SEED_QUESTIONS, split="test") if q.evidence]
# Named questions every build must answer first, from the held-out half.
MUST_ANSWER_FIRST = [q for q in QUESTIONS if q.q in {
    "Has an American president ever visited Kazakhstan?",
    "When did the U.S. Congress pass the Jackson-Vanik Amendment?",
    "How rich was Kazakhstan per person at independence compared with now?",
    "How would more oil from Kazakhstan help ordinary Americans?",
    "Which route could carry critical minerals without going through Iran?",
    "What does Runde consider the country's greatest resource?",
    "Which international organization of market democracies does Kazakhstan want to join?",
}]


def test_the_seed_index_covers_the_article_with_exact_spans(seed_index):
    (document,) = all_documents(seed_index).values()
    passages = all_passages(seed_index)
    assert document.title.startswith("Trump's Kazakhstan Trip")
    assert len(passages) >= 8
    for passage in passages:
        assert document.text[passage.start : passage.end] == passage.text
    covered = set()
    for passage in passages:
        covered.update(range(passage.start, passage.end))
    assert all(i in covered for i, ch in enumerate(document.text) if not ch.isspace())


def test_nothing_the_model_reads_is_truncated(seed_index, embedder):
    from kb.documents.chunking import embedding_text

    passages = all_passages(seed_index)
    longest = max(embedder.count_tokens(embedding_text(p.title, p)) for p in passages)
    assert longest <= embedder.max_tokens
    assert max(embedder.count_tokens(p.text) for p in passages) <= min(seed_index.config["chunk_tokens"], embedder.max_tokens)


def test_the_vectors_are_unit_length(seed_index):
    import numpy as np

    vectors = seed_index.memory.vectors.vectors(np.arange(seed_index.memory.size))
    assert len(vectors) == len(all_passages(seed_index)) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


@pytest.mark.parametrize("question", MUST_ANSWER_FIRST, ids=lambda q: q.q[:50])
def test_the_answering_passage_comes_first(seed_index, embedder, question):
    hits = Searcher(seed_index, embedder).search(question.q, 5)
    assert first_hit_rank(hits, question.evidence) == 1, [h.text[:80] for h in hits]


def test_hit_rates_over_the_whole_question_set(seed_index, embedder):
    rates = hit_rates(Searcher(seed_index, embedder).search, QUESTIONS)
    print(f"\nheld-out seed questions: {rates}")
    assert rates["questions"] >= 20, "a floor over a handful of questions means little"
    # Measured on this half: hit@1 0.846, hit@3 0.962 (26 questions); a floor a few questions below.
    assert rates["hit@1"] >= 0.75 and rates["hit@3"] >= 0.88


def test_results_are_ordered_best_first_and_carry_citations(seed_index, embedder):
    hits = Searcher(seed_index, embedder).search("Jackson-Vanik Amendment", 5)
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    text = seed_index.document(hits[0].doc_id).text
    for hit in hits:
        assert text[hit.start : hit.end] == hit.text
        assert hit.source == "astana-times-runde-interview.txt"


def test_the_api_body_is_the_json_shape_and_a_cached_answer_is_serialized_once(seed_index, embedder, seed_settings):
    import json

    from kb.stores.filters import Filters

    searcher = Searcher(seed_index, embedder, seed_settings)
    for filters in (Filters(), Filters(sources=("astana-times-runde-interview.txt",))):
        answer = searcher.answer("Has an American president ever visited Kazakhstan?", 3, filters=filters)
        assert answer.hits and json.loads(answer.json_text(3, 1.234)) == answer.to_json(3, 1.234)
        again = searcher.answer("Has an American president ever visited Kazakhstan?", 3, filters=filters)
        assert again is answer and again._results_text is answer._results_text  # the cache's answer, text made once
