"""Readiness and response headers of the app."""

import re
import time

import kb
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
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all(re.search(r'src="/static/[^"]+\.js"', attrs) and not body.strip() for attrs, body in scripts)
    assert html.count("<script") == len(scripts)
    assert "style=" not in html and "<style" not in html


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
    app = create_app(settings, base=kb.open(settings))  # never loaded: the app is switched to Loading at once
    app.extensions["kb"] = Loading()
    return app


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


def test_requests_are_logged_as_json_lines_without_keys(client, caplog):
    import json
    import logging

    from web.logs import JsonFormatter

    with caplog.at_level(logging.INFO, logger="kb.requests"):
        client.get("/api/search", query_string={"q": "oil prices", "k": 3})
        client.get("/api/nope")
        client.get("/api/search", query_string={"q": "oil prices", "k": 3},  # a key kb does not know: refused
                   headers={"Authorization": "Bearer secret-key-value"})
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name == "kb.requests"]
    entries = [json.loads(line) for line in lines]
    assert entries[0]["method"] == "GET" and entries[0]["path"] == "/api/search"
    assert entries[0]["status"] == 200 and entries[0]["results"] == 3 and entries[0]["latency_ms"] > 0
    assert entries[1]["status"] == 404 and entries[1]["results"] is None
    assert entries[2]["status"] == 401
    assert not any("secret-key-value" in line or "oil prices" in line for line in lines)


def test_writes_are_rate_limited_with_retry_after(tmp_path, embedder):
    import shutil

    from kb.ingestion.sync import build_index
    from kb.settings import Settings
    from tests.conftest import SEED_CORPUS

    shutil.copytree(SEED_CORPUS, tmp_path / "corpus")
    settings = Settings.from_env(environ={}, corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "index",
                                 api_key="k", write_rate_limit="2/minute")
    build_index(settings, embedder=embedder)
    client = create_app(settings, base=kb.open(settings, serving=True, embedder=embedder)).test_client()
    statuses = [client.delete("/api/documents/none", headers={"Authorization": "Bearer k"}).status_code for _ in range(3)]
    assert statuses == [404, 404, 429]
    limited = client.delete("/api/documents/none", headers={"Authorization": "Bearer k"})
    assert limited.get_json()["error"]["code"] == "rate_limited" and int(limited.headers["Retry-After"]) > 0
    assert client.get("/api/search", query_string={"q": "oil"}).status_code == 200, "reads are not limited by default"
