import numpy as np

from kb.documents.terms import term_spans, terms
from kb.stores.faiss.keyword import KeywordIndex


def test_terms_are_stemmed_lower_cased_and_without_stop_words():
    assert terms("The Visits were VISITED by the president") == ["visit", "visit", "presid"]


def test_term_spans_find_inflected_forms_at_exact_offsets():
    text = "Presidents visit; a president visited."
    spans = term_spans(text, set(terms("president visits")))
    assert [(text[s:e], w) for s, e, w in spans] == [
        ("Presidents", "Presidents"), ("visit", "visit"), ("president", "president"), ("visited", "visited"),
    ]
    assert term_spans(text, set()) == []


def test_bm25_ranks_the_passage_with_the_rare_term_first_and_survives_a_save(tmp_path):
    texts = ["wind tunnel tests of a wing", "boundary layer on a flat plate", "a zeppelin in a wind tunnel"]
    index = KeywordIndex.build(texts)
    scores = index.scores(terms("zeppelin tunnel"))
    assert int(np.argmax(scores)) == 2 and scores[1] == 0
    index.save(tmp_path)
    again = KeywordIndex.load(tmp_path)
    assert np.allclose(again.scores(terms("zeppelin tunnel")), scores)
    assert again.size == 3


def test_a_query_with_no_indexed_word_scores_zero():
    index = KeywordIndex.build(["alpha beta", "gamma delta"])
    assert not index.scores(terms("omega")).any()
    assert not index.scores([]).any()


def test_no_passages_or_only_stop_words_are_indexes_too(tmp_path):
    """bm25s cannot index an empty vocabulary (max() of an empty sequence); kb can, and saves it."""
    from kb.stores.faiss.keyword import KeywordIndex

    for texts in ([], ["The and of.", "It is what it is."]):
        index = KeywordIndex.build(texts)
        assert index.size == len(texts)
        index.save(tmp_path / str(len(texts)))
        loaded = KeywordIndex.load(tmp_path / str(len(texts)))
        assert loaded.size == len(texts)
        assert loaded.scores(["wing"]).tolist() == [0.0] * len(texts)


def test_scores_are_bm25s_lucene_scores_and_stay_exact_after_deletes():
    """The same numbers bm25s gave (kb used it before), and after deletes those of a fresh index of the rest."""
    import bm25s

    texts = ["wind tunnel tests of a wing at high speed", "boundary layer on a flat plate in a wind tunnel",
             "a zeppelin in a wind tunnel", "heat transfer in a boundary layer", "wing flutter at high speed"]
    tokens = [terms(t) for t in texts]
    vocab: dict = {}
    ids = [[vocab.setdefault(t, len(vocab)) for t in doc] for doc in tokens]
    reference = bm25s.BM25(method="lucene")
    reference.index(bm25s.tokenization.Tokenized(ids=ids, vocab=vocab), show_progress=False)
    index = KeywordIndex.build(texts)
    for query in ("wind tunnel", "boundary layer speed", "zeppelin wing wing"):
        expected = reference.get_scores_from_ids(reference.get_tokens_ids(terms(query)))
        assert np.allclose(index.scores(terms(query)), expected, atol=1e-5), query
    index.remove(1)
    index.remove(3)
    rest = KeywordIndex.build([texts[0], texts[2], texts[4]])
    for query in ("wind tunnel", "boundary layer speed"):
        got = index.scores(terms(query))
        assert got[1] == got[3] == 0
        assert np.allclose(got[[0, 2, 4]], rest.scores(terms(query)), atol=1e-6), query
