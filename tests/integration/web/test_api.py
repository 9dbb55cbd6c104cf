"""The JSON API and the page through Flask's test client, over the real seed index."""

import html as htmllib
import re

import pytest

from kb.evaluation.questions import load_questions
from tests.conftest import SEED_QUESTIONS, all_passages

QUESTION = load_questions(SEED_QUESTIONS)[0]


def visible(markup: str) -> str:
    """The text a browser would show (tags dropped, entities decoded)."""
    return htmllib.unescape(re.sub(r"<[^>]+>", "", markup))


def error_of(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    return body["error"]


def test_get_search_answers_with_the_documented_shape(client):
    response = client.get("/api/search", query_string={"q": QUESTION.q, "k": 3})
    assert response.status_code == 200
    body = response.get_json()
    assert body["query"] == QUESTION.q and body["k"] == 3 and body["took_ms"] >= 0
    assert len(body["results"]) == 3
    first = body["results"][0]
    for key, kind in [("rank", int), ("score", float), ("text", str), ("doc_id", str), ("passage_id", str),
                      ("title", str), ("source", str), ("start", int), ("end", int)]:
        assert isinstance(first[key], kind), key
    assert QUESTION.evidence in first["text"]
    assert [r["rank"] for r in body["results"]] == [1, 2, 3]


def test_post_search_gives_the_same_passages_as_get(client):
    got = client.get("/api/search", query_string={"q": QUESTION.q}).get_json()
    posted = client.post("/api/search", json={"q": QUESTION.q}).get_json()
    assert posted["k"] == 5
    assert [r["passage_id"] for r in posted["results"]] == [r["passage_id"] for r in got["results"]]


def test_health_reports_the_loaded_index(client, seed_index):
    body = client.get("/api/health").get_json()
    assert body == {"status": "ok", "passages": len(all_passages(seed_index)), "documents": 1,
                    "model": "all-MiniLM-L6-v2", "sync": {"mode": "off"}}  # an app without kb serve's folder watch


@pytest.mark.parametrize(
    "query, code",
    [
        ({}, "missing_query"),
        ({"q": ""}, "blank_query"),
        ({"q": "   \t "}, "blank_query"),
        ({"q": "x" * 1001}, "query_too_long"),
        ({"q": "ok", "k": "abc"}, "invalid_k"),
        ({"q": "ok", "k": "2.5"}, "invalid_k"),
        ({"q": "ok", "k": "1e9"}, "invalid_k"),
        ({"q": "ok", "k": "0"}, "k_out_of_range"),
        ({"q": "ok", "k": "-1"}, "k_out_of_range"),
        ({"q": "ok", "k": "51"}, "k_out_of_range"),
    ],
)
def test_bad_get_parameters_get_a_400_that_names_the_problem(client, query, code):
    assert error_of(client.get("/api/search", query_string=query), 400)["code"] == code


def test_a_query_of_exactly_1000_characters_is_accepted(client):
    assert client.get("/api/search", query_string={"q": "a" * 1000}).status_code == 200


@pytest.mark.parametrize(
    "body, code",
    [
        ({}, "missing_query"),
        ({"q": "  "}, "blank_query"),
        ({"q": 42}, "invalid_query"),
        ({"q": "x" * 1001}, "query_too_long"),
        ({"q": "ok", "k": "5"}, "invalid_k"),
        ({"q": "ok", "k": 2.5}, "invalid_k"),
        ({"q": "ok", "k": True}, "invalid_k"),
        ({"q": "ok", "k": 0}, "k_out_of_range"),
        ({"q": "ok", "k": 51}, "k_out_of_range"),
        ({"q": "ok", "extra": 1}, "unknown_field"),
        ([1, 2], "invalid_body"),
        ("just a string", "invalid_body"),
    ],
)
def test_bad_post_bodies_get_a_400_that_names_the_problem(client, body, code):
    assert error_of(client.post("/api/search", json=body), 400)["code"] == code


def test_malformed_json_is_a_400(client):
    response = client.post("/api/search", data='{"q": "unterminated', content_type="application/json")
    assert error_of(response, 400)["code"] == "malformed_json"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_wrong_content_type_is_a_415(client, content_type):
    response = client.post("/api/search", data='{"q": "oil"}', content_type=content_type)
    assert error_of(response, 415)["code"] == "unsupported_media_type"


def test_unknown_paths_and_methods_answer_json(client):
    assert error_of(client.get("/api/nothing-here"), 404)["code"] == "not_found"
    response = client.delete("/api/search")
    assert error_of(response, 405)["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]
    assert error_of(client.post("/api/health"), 405)["code"] == "method_not_allowed"


def test_the_page_renders_results_as_an_ordered_list(client):
    response = client.get("/", query_string={"q": QUESTION.q})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<label for="q">' in html and 'id="q"' in html
    assert html.count('<li class="result"') == 5
    first = visible(html.split('<li class="result"')[1])
    assert QUESTION.evidence in first
    assert "passage " in first and "characters " in first and "score " in first


def test_the_empty_page_has_a_search_box_and_no_results(client):
    html = client.get("/").get_data(as_text=True)
    assert 'id="q"' in html and 'id="results"' not in html


def test_the_page_escapes_what_it_echoes(client):
    attack = '"><img src=x onerror=alert(1)><script>alert(1)</script>'
    html = client.get("/", query_string={"q": attack}).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_page_explains_bad_input_instead_of_failing(client):
    response = client.get("/", query_string={"q": "x" * 1001})
    assert response.status_code == 400
    assert "limit is 1,000" in response.get_data(as_text=True)


def test_the_document_page_marks_the_cited_span(client, seed_index):
    passage = all_passages(seed_index)[3]
    response = client.get(f"/documents/{passage.doc_id}", query_string={"start": passage.start, "end": passage.end})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html.count('<mark id="passage" class="cited">') == 1
    marked = html.split('<mark id="passage" class="cited">')[1].split("</mark>")[0]
    assert marked.replace("&#39;", "'").replace("&#34;", '"').replace("&amp;", "&") == passage.text
    assert client.get("/documents/no-such-doc").status_code == 404


def test_more_results_continue_the_same_ranking_page_by_page(client):
    whole = client.get("/api/search", query_string={"q": QUESTION.q, "k": 6}).get_json()
    first = client.get("/api/search", query_string={"q": QUESTION.q, "k": 3}).get_json()
    assert first["offset"] == 0 and first["next_offset"] == 3
    second = client.post("/api/search", json={"q": QUESTION.q, "k": 3, "offset": first["next_offset"]}).get_json()
    assert second["offset"] == 3
    paged = [r["passage_id"] for r in first["results"] + second["results"]]
    assert paged == [r["passage_id"] for r in whole["results"]] and len(set(paged)) == 6
    assert [r["rank"] for r in second["results"]] == [4, 5, 6]
    # The seed article has 9 passages: the last page says there is nothing after it.
    last = client.get("/api/search", query_string={"q": QUESTION.q, "k": 5, "offset": 6}).get_json()
    assert len(last["results"]) == 3 and last["next_offset"] is None
    beyond = client.get("/api/search", query_string={"q": QUESTION.q, "offset": 40}).get_json()
    assert beyond["results"] == [] and beyond["next_offset"] is None


@pytest.mark.parametrize("query, code", [({"offset": "-1"}, "offset_out_of_range"), ({"offset": "x"}, "invalid_offset"),
                                         ({"offset": "501"}, "offset_out_of_range")])
def test_a_bad_offset_is_a_400_naming_it(client, query, code):
    error = error_of(client.get("/api/search", query_string={"q": QUESTION.q, **query}), 400)
    assert error["code"] == code and "offset" in error["message"]
    error = error_of(client.post("/api/search", json={"q": QUESTION.q, "offset": "3"}), 400)
    assert error["code"] == "invalid_offset"
