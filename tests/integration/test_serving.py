"""Readiness and response headers of the app."""

import time

from web.app import SECURITY_HEADERS, Loading, create_app


def test_every_response_carries_the_security_headers(client):
    for path in ("/", "/?q=oil", "/api/search?q=oil", "/api/health", "/api/nope", "/static/style.css"):
        response = client.get(path)
        response.close()  # the stylesheet is streamed from its file
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (path, name)
    assert "script-src 'self'" in SECURITY_HEADERS["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in SECURITY_HEADERS["Content-Security-Policy"]


def test_the_page_has_no_inline_script_or_style(client):
    html = client.get("/", query_string={"q": "oil"}).get_data(as_text=True)
    assert "<script" not in html and "style=" not in html and "<style" not in html


def test_while_loading_everything_answers_503_and_health_says_loading(seed_settings):
    app = _loading_app(seed_settings)
    client = app.test_client()
    health = client.get("/api/health")
    assert health.status_code == 503 and health.get_json()["status"] == "loading"
    search = client.get("/api/search", query_string={"q": "oil"})
    assert search.status_code == 503 and search.get_json()["error"]["code"] == "loading"
    assert client.get("/", query_string={"q": "oil"}).status_code == 503
    assert client.post("/api/documents", json={"text": "x"}).status_code in (403, 503)


def _loading_app(settings):
    app = create_app(settings, searcher=_Never())
    app.extensions["kb"] = Loading()
    app.extensions.pop("kb_library", None)
    return app


class _Never:
    """A searcher stand-in that is never consulted (the app is switched to Loading at once)."""

    embedder = None

    def refresh(self):
        raise AssertionError("not used")


def test_a_server_that_cannot_load_says_why_in_its_health(seed_settings, tmp_path):
    broken = seed_settings.with_(index_dir=tmp_path / "no-index")
    app = create_app(broken, background=True)
    client = app.test_client()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = client.get("/api/health").get_json()
        if body["status"] != "loading":
            break
        time.sleep(0.1)
    assert body["status"] == "failed" and "kb build" in body["message"]
