import numpy as np

from kb.keyword import KeywordIndex, term_spans, terms


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
    from kb.keyword import KeywordIndex

    for texts in ([], ["The and of.", "It is what it is."]):
        index = KeywordIndex.build(texts)
        assert index.size == len(texts)
        index.save(tmp_path / str(len(texts)))
        loaded = KeywordIndex.load(tmp_path / str(len(texts)))
        assert loaded.size == len(texts)
        assert loaded.scores(["wing"]).tolist() == [0.0] * len(texts)
