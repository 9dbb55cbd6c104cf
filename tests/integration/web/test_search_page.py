"""The search page's server side: the results fragment and its states, hashed static files, the document view."""

import hashlib
import re

import pytest

from kb.evaluation.questions import load_questions
from tests.conftest import SEED_QUESTIONS, all_passages
from tests.integration.web.test_serving import _loading_app
from web.assets import FOLDER

QUESTION = load_questions(SEED_QUESTIONS)[0]


def fragment(client, **query):
    response = client.get("/results", query_string=query)
    return response.status_code, response.get_data(as_text=True)


def test_the_results_fragment_is_the_pages_results_area_alone(client):
    status, html = fragment(client, q=QUESTION.q)
    assert status == 200 and html.startswith('<div id="answer"') and "<html" not in html
    assert 'data-announce="5 passages"' in html and html.count('<li class="result') == 5
    page = client.get("/", query_string={"q": QUESTION.q}).get_data(as_text=True)
    results = re.compile(r'<ol id="results".*?</ol>', re.S)
    assert results.search(page).group(0) == results.search(html).group(0), "one way to draw a result"


@pytest.mark.parametrize("query, message", [({"q": " "}, "q is blank"), ({"q": "oil", "k": "99"}, "k must be between"),
                                            ({"q": "oil", "mode": "magic"}, "mode must be one of"),
                                            ({"q": "oil", "offset": "-3"}, "offset must be between")])
def test_bad_questions_are_a_friendly_line_with_a_4xx(client, query, message):
    status, html = fragment(client, **query)
    assert status == 400 and 'id="error"' in html and message in html and "{" not in html
    assert 'data-announce="Error: ' in html


def test_while_kb_starts_the_page_and_fragment_say_so_with_a_503(seed_settings):
    app = _loading_app(seed_settings)
    client = app.test_client()
    for path in ("/", "/results"):
        response = client.get(path, query_string={"q": "oil"})
        html = response.get_data(as_text=True)
        assert response.status_code == 503 and 'data-code="loading"' in html and "kb is starting" in html
    app.extensions["kb"].error = "the model folder is missing"
    for path in ("/", "/results"):
        response = client.get(path, query_string={"q": "oil"})
        html = response.get_data(as_text=True)
        assert response.status_code == 503 and 'data-code="failed"' in html and "kb could not start" in html
        assert "the model folder is missing" in html


def test_more_results_pages_continue_the_ranking_and_trim_against_earlier_pages(client):
    status, first = fragment(client, q=QUESTION.q, k=3)
    assert 'id="more"' in first and 'data-offset="3"' in first
    status, second = fragment(client, q=QUESTION.q, k=3, offset=3)
    assert status == 200 and '<ol id="results" start="4">' in second and "Passages 4–6" in second
    assert 'data-announce="3 more passages"' in second
    status, last = fragment(client, q=QUESTION.q, k=5, offset=5)
    assert "Passages 6–9" in last and 'id="more"' not in last, "nothing is ranked after the ninth passage"


def test_static_files_have_hashed_names_and_are_cached_for_a_year(client):
    page = client.get("/").get_data(as_text=True)
    for name in ("style.css", "search.js"):
        stem, suffix = name.split(".")
        found = re.search(rf'/static/({stem}\.([0-9a-f]{{12}})\.{suffix})"', page)
        assert found, name
        body = (FOLDER / name).read_bytes()
        assert hashlib.sha256(body).hexdigest()[:12] == found.group(2)
        response = client.get(f"/static/{found.group(1)}")
        assert response.status_code == 200 and response.get_data() == body
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        response.close()
        plain = client.get(f"/static/{name}")
        assert plain.status_code == 200 and plain.headers["Cache-Control"] == "no-cache"
        plain.close()
    assert client.get("/static/style.000000000000.css").status_code == 404
    assert client.get("/static/../app.py").status_code == 404


def test_the_document_view_marks_the_answering_sentences_and_links_the_neighbours(client, seed_index):
    passages = all_passages(seed_index)
    cited = passages[3]
    marks = f"{cited.start}-{cited.start + 30},{cited.end - 30}-{cited.end}"
    html = client.get(f"/documents/{cited.doc_id}", query_string={"start": cited.start, "end": cited.end, "q": "oil",
                                                                  "hl": marks + ",0-99999,x-y,5"}).get_data(as_text=True)
    inside = html.split('<mark id="passage" class="cited">')[1].split("</article>")[0]
    assert inside.count('<mark class="answer">') == 2, "bad marks and marks outside the passage are ignored"
    assert "Passage 4 of 9" in html
    previous, following = passages[2], passages[4]
    assert f"start={previous.start}&amp;end={previous.end}&amp;q=oil#passage" in html
    assert f"start={following.start}&amp;end={following.end}&amp;q=oil#passage" in html
    first = client.get(f"/documents/{cited.doc_id}", query_string={"start": passages[0].start, "end": passages[0].end})
    text = first.get_data(as_text=True)
    assert "Passage 1 of 9" in text and 'rel="prev"' not in text and 'rel="next"' in text


def test_a_result_shows_its_documents_date_when_it_has_one(app):
    from flask import render_template

    from kb.search.hit import Hit
    from kb.search.pipeline import Answer
    from web.render import marked_passage
    from web.results import shown_results

    def hit(rank, metadata):
        return Hit(rank=rank, score=1.0, passage_id=f"p{rank}", doc_id=f"d{rank}", title="T", source="s", text="Some text.",
                   start=0, end=10, ordinal=0, doc_passages=1, doc_length=10, scores={"dense": 0.9, "keyword": 0.0,
                   "fused": 1.0}, ranks={"dense": rank, "keyword": None}, confident=True, metadata=metadata)

    hits = [hit(1, {"date": "2025-03-14"}), hit(2, {})]
    with app.test_request_context("/"):
        html = render_template("answer.html", query="q", k=5, offset=0, answer=Answer("q", "hybrid", hits, True),
                               shown=shown_results(hits), error=None, not_ready=None, empty=False, took_ms=1.0,
                               marked_passage=marked_passage)
    assert html.count('<time class="date" datetime="2025-03-14">2025-03-14</time>') == 1
    assert html.count("<time") == 1, "no date line for a document without one"
