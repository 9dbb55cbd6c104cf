"""An empty knowledge base is a normal state: built, served, searched, filled and emptied again."""

import json
import os
import subprocess
import sys
import urllib.parse

from tests.e2e.conftest import call as _call
from tests.e2e.conftest import start_server

KEY = "empty-key"


def call(base, method, path, body=None):
    return _call(base, method, path, body, key=KEY)


def search(base, question):
    return call(base, "GET", "/api/search?" + urllib.parse.urlencode({"q": question}))


def assert_empty(base):
    status, health = call(base, "GET", "/api/health")
    assert status == 200 and health["status"] == "ok" and (health["passages"], health["documents"]) == (0, 0), health
    status, answer = search(base, "Which airship crossed the Atlantic?")
    assert status == 200 and answer["results"] == [] and answer["confident"] is False, answer
    status, page = call(base, "GET", "/")
    assert status == 200 and 'id="empty"' in page and "POST /api/documents" in page and "kb build" in page
    status, listed = call(base, "GET", "/api/documents")
    assert status == 200 and listed["total"] == 0


def test_the_whole_life_of_an_empty_knowledge_base(tmp_path):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    env = {**os.environ, "KB_CORPUS_DIR": str(corpus), "KB_INDEX_DIR": str(index), "HF_HUB_OFFLINE": "1"}
    built = subprocess.run([sys.executable, "-m", "kb.cli", "build", "--json"], env=env, capture_output=True,
                           text=True, timeout=300)
    assert built.returncode == 0 and "Traceback" not in built.stderr, built.stderr
    report = json.loads(built.stdout.strip().splitlines()[-1])
    assert report["written"] and (report["documents"], report["passages"]) == (0, 0)

    server = start_server(index, tmp_path / "serve.log", {"KB_API_KEY": KEY}, corpus_dir=corpus)
    try:
        assert_empty(server.base)
        note = {"id": "first", "title": "Airships", "text": "The Graf Zeppelin crossed the Atlantic in 1928."}
        status, added = call(server.base, "POST", "/api/documents", note)
        assert status == 201, added
        status, answer = search(server.base, "Which airship crossed the Atlantic?")
        assert status == 200 and [r["doc_id"] for r in answer["results"]] == ["first"]
        status, page = call(server.base, "GET", "/")
        assert 'id="empty"' not in page
        status, deleted = call(server.base, "DELETE", "/api/documents/first")
        assert status == 200 and deleted["index"]["passages"] == 0, deleted
        assert_empty(server.base)
    finally:
        server.stop()
    assert "Traceback" not in server.output(), server.output()[-3000:]
    # Emptied through the API, the index still builds and serves.
    again = subprocess.run([sys.executable, "-m", "kb.cli", "build", "--json"], env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    server = start_server(index, tmp_path / "serve2.log", {"KB_API_KEY": KEY}, corpus_dir=corpus)
    try:
        assert_empty(server.base)
    finally:
        server.stop()
