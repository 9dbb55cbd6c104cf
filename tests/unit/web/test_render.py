from kb.search.hit import Hit
from web.render import marked_passage


def make_hit(text, start=100, highlights=(), terms=()):
    return Hit(rank=1, score=1.0, passage_id="p", doc_id="d", title="t", source="s", text=text, start=start,
               end=start + len(text), ordinal=0, doc_passages=1, doc_length=1000,
               highlights=list(highlights), terms=list(terms))


def test_sentences_and_terms_are_marked_at_absolute_offsets():
    text = "First one. The answer is here. Last."
    s = text.index("The answer")
    hit = make_hit(text, highlights=[{"start": 100 + s, "end": 100 + s + len("The answer is here.")}],
                   terms=[{"start": 100 + s + 4, "end": 100 + s + 10, "term": "answer"}])
    assert str(marked_passage(hit)) == (
        'First one. <mark class="answer">The <strong class="term">answer</strong> is here.</mark> Last.'
    )


def test_everything_is_escaped():
    text = '<script>alert(1)</script> "x" & y'
    html = str(marked_passage(make_hit(text, highlights=[{"start": 100, "end": 100 + len(text)}])))
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp;" in html
