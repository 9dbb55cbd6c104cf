"""Hand-written hostile and odd input: always a clear 4xx JSON error or a correct 200, never a 500."""


import pytest


def is_json_error(response, status):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:200])
    body = response.get_json()
    assert body and set(body["error"]) == {"code", "message"}
    return body["error"]["code"]


@pytest.mark.parametrize("q", ["🙂🚀 президент", "هل زار رئيس أمريكي كازاخستان؟", "a\u200fb", "x" * 1000, "'; DROP TABLE--"])
def test_odd_but_valid_queries_answer_200(client, q):
    response = client.get("/api/search", query_string={"q": q})
    assert response.status_code == 200 and response.get_json()["query"] == q.strip()


@pytest.mark.parametrize("raw_query, code", [
    (b"q=%00abc", "invalid_query"),
    (b"q=" + b"a" * (1024 * 1024), "query_too_long"),
    (b"q=%20%20%20", "blank_query"),
    (b"q=ok&k=1e9", "invalid_k"),
    (b"q=ok&k=9999999999999999999999", "invalid_k"),
    (b"q=ok&k=", "invalid_k"),
    (b"q=ok&mode=", "invalid_mode"),  # the published enum has no empty mode
])
def test_hostile_query_strings(client, raw_query, code):
    response = client.get("/api/search?" + raw_query.decode("latin-1"))
    if code is None:
        assert response.status_code == 200
    else:
        assert is_json_error(response, 400) == code


def test_invalid_utf8_in_the_query_string_is_handled(client):
    response = client.get("/api/search?q=%ff%fe%fd")
    assert response.status_code in (200, 400)
    assert response.get_json() is not None


def test_repeated_parameters_take_the_first(client):
    response = client.get("/api/search?q=oil&q=gas&k=2&k=40")
    assert response.status_code == 200
    body = response.get_json()
    assert body["query"] == "oil" and body["k"] == 2


@pytest.mark.parametrize("body", [
    "[" * 100000 + "]" * 100000,
    '{"q": ' + "[" * 50000 + "]" * 50000 + "}",
    '"just a string"',
    "null",
    "12",
    '{"q": "ok", "k": 1e400}',
])
def test_hostile_json_bodies(client, body):
    response = client.post("/api/search", data=body, content_type="application/json")
    assert 400 <= response.status_code < 500
    assert response.get_json()["error"]["code"]


def test_a_body_over_the_limit_is_413(client, app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    response = client.post("/api/search", data=b"{" + b" " * (limit + 1) + b"}", content_type="application/json")
    assert is_json_error(response, 413) == "payload_too_large"


def test_head_options_and_trailing_slashes(client):
    head = client.head("/api/search?q=oil")
    assert head.status_code == 200 and head.get_data() == b""
    options = client.options("/api/search")
    assert options.status_code == 200 and "GET" in options.headers["Allow"]
    assert is_json_error(client.get("/api/search/?q=oil"), 404) == "not_found"
    assert is_json_error(client.get("/api/health/"), 404) == "not_found"


def test_nothing_under_api_answers_html(client):
    for method, path in [("GET", "/api/"), ("PUT", "/api/search"), ("PATCH", "/api/documents"), ("GET", "/api/../etc")]:
        response = client.open(path, method=method)
        assert response.mimetype == "application/json", (method, path, response.status_code)
        assert 400 <= response.status_code < 500
